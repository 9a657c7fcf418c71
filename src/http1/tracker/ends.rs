//! Gaps in either direction, a direction's end, and the connection's close.

use super::{skip_gap, Conn, Ctx, Mode};
use crate::capture::Timestamp;
use crate::http1::{Flags, Lost};
use crate::reassembly::{CloseReason, Direction};

impl Conn {
    pub(super) fn gap(&mut self, dir: Direction, len: u64, cx: &mut Ctx<'_>) {
        match self.role(dir) {
            Direction::ClientToServer => {
                let survived = skip_gap(&mut self.req.mode, len);
                match &mut self.req.mode {
                    Mode::Stopped => {}
                    // Inside a Content-Length body the framing survives the hole (H27).
                    Mode::Body(_) if survived => {
                        cx.counters.body_gaps += 1;
                        if let Some(p) = self.pending.back_mut() {
                            p.flags.insert(Flags::GAP);
                        }
                    }
                    Mode::Body(_) => {
                        cx.counters.fatal_gaps_req += 1;
                        if let Some(p) = self.pending.back_mut().filter(|p| !p.req_done) {
                            p.flags.insert(Flags::GAP);
                        }
                        let ts = self
                            .pending
                            .back()
                            .map(|p| p.req.last_ts)
                            .unwrap_or_default();
                        self.finish_request(ts, cx);
                        self.req.mode = Mode::Resync { budget: None };
                    }
                    Mode::Head | Mode::Resync { .. } => {
                        cx.counters.fatal_gaps_req += 1;
                        self.lose_head(Lost::Gap, cx);
                        self.req.mode = Mode::Resync { budget: None };
                    }
                }
            }
            Direction::ServerToClient => {
                let answering = self.answering;
                let current = self.pending.iter_mut().find(|p| Some(p.id) == answering);
                let survived = skip_gap(&mut self.resp.mode, len);
                match &mut self.resp.mode {
                    Mode::Stopped => {}
                    Mode::Body(_) if survived => {
                        cx.counters.body_gaps += 1;
                        if let Some(p) = current {
                            p.flags.insert(Flags::GAP);
                        }
                    }
                    Mode::Body(_) => {
                        cx.counters.fatal_gaps_resp += 1;
                        if let Some(p) = current {
                            p.flags.insert(Flags::GAP);
                        }
                        let ts = self.resp.head_ts;
                        self.finish_response(ts, false, cx);
                        self.resp_gap = true;
                        self.resp.mode = Mode::Resync { budget: None };
                    }
                    Mode::Head | Mode::Resync { .. } => {
                        cx.counters.fatal_gaps_resp += 1;
                        cx.budget.free(&mut self.resp.buf);
                        self.resp_gap = true;
                        self.resp.mode = Mode::Resync { budget: None };
                    }
                }
            }
        }
    }

    pub(super) fn end(
        &mut self,
        dir: Direction,
        reason: CloseReason,
        ts: Timestamp,
        cx: &mut Ctx<'_>,
    ) {
        match self.role(dir) {
            Direction::ClientToServer => {
                if matches!(self.req.mode, Mode::Body(_)) {
                    if let Some(p) = self.pending.back_mut().filter(|p| !p.req_done) {
                        p.flags.insert(Flags::TRUNCATED);
                        cx.counters.request_incomplete += 1;
                    }
                    self.finish_request(ts, cx);
                }
                let why = match reason {
                    CloseReason::Rst => Lost::Aborted,
                    CloseReason::CaptureEnded => Lost::CaptureEnded,
                    CloseReason::Fin
                    | CloseReason::Timeout
                    | CloseReason::Evicted
                    | CloseReason::Reused => Lost::Truncated,
                };
                self.lose_head(why, cx);
                self.req.mode = Mode::Stopped;
            }
            Direction::ServerToClient => {
                if let Mode::Body(body) = &self.resp.mode {
                    // A close-delimited body ends at its sender's FIN (T11); anything else
                    // ending early is cut short.
                    let whole = body.is_close() && reason == CloseReason::Fin;
                    if !whole {
                        let answering = self.answering;
                        if let Some(p) = self.pending.iter_mut().find(|p| Some(p.id) == answering) {
                            p.flags.insert(Flags::TRUNCATED);
                        }
                    }
                    self.finish_response(ts, whole, cx);
                }
                cx.budget.free(&mut self.resp.buf);
                self.resp.mode = Mode::Stopped;
            }
        }
    }

    pub(super) fn close(&mut self, reason: CloseReason, ts: Timestamp, cx: &mut Ctx<'_>) {
        if reason == CloseReason::Rst {
            for p in self.pending.iter_mut().filter(|p| !p.resp_done) {
                p.flags.insert(Flags::RESET);
            }
        }
        // A direction still open ends for the flow's reason: a FIN seen on one side does not
        // end the other.
        let end = if reason == CloseReason::Fin {
            CloseReason::CaptureEnded
        } else {
            reason
        };
        // `role` is its own inverse: these are the event directions whose roles are the
        // client's and the server's.
        self.end(self.role(Direction::ClientToServer), end, ts, cx);
        self.end(self.role(Direction::ServerToClient), end, ts, cx);
        while let Some(p) = self.pending.pop_front() {
            self.emit(p, cx);
        }
        self.free_queue(cx);
    }
}
