//! The server's side of a connection: response heads, interim responses, bodies and the
//! request-dependent framing rules.

use super::{body_done, body_mode, Conn, Ctx, Mode, Take};
use crate::capture::Timestamp;
use crate::http1::head::{self, After, BodyKind};
use crate::http1::{Flags, Response};

impl Conn {
    pub(super) fn response_bytes(
        &mut self,
        offset: u64,
        data: &[u8],
        ts: Timestamp,
        cx: &mut Ctx<'_>,
    ) {
        let mut i = 0;
        while i < data.len() {
            let rest = &data[i..];
            let at = offset + i as u64;
            match &mut self.resp.mode {
                Mode::Stopped => return,
                Mode::Resync { .. } => i += self.resync_response(rest, at, ts, cx),
                Mode::Head => i += self.response_head(rest, at, ts, cx),
                Mode::Body(body) => {
                    let answering = self.answering;
                    let answered = self.pending.iter_mut().find(|p| Some(p.id) == answering);
                    let mut seen = 0u64;
                    let fed = body.decode(rest, cx.limits.max_chunk_meta, &mut |b| {
                        seen += b.len() as u64
                    });
                    let Ok(d) = fed else {
                        cx.counters.invalid_chunk += 1;
                        self.resp_gap = true;
                        self.finish_response(ts, false, cx);
                        self.resp.mode = Mode::Resync { budget: None };
                        i = data.len();
                        continue;
                    };
                    let (used, done) = (d.used, d.done && body_done(body, cx.counters));
                    if let Some(p) = answered {
                        p.resp_end = at + used as u64;
                        if let Some(r) = p.response.as_mut() {
                            r.body_len += seen;
                            r.last_ts = ts;
                        }
                    }
                    i += used;
                    if done {
                        self.finish_response(ts, true, cx);
                    }
                }
            }
        }
    }

    pub(super) fn response_head(
        &mut self,
        rest: &[u8],
        at: u64,
        ts: Timestamp,
        cx: &mut Ctx<'_>,
    ) -> usize {
        match self
            .resp
            .take_head(rest, (at, None, ts), cx, head::response)
        {
            Take::Head(h, used) => {
                self.start_response(h, at + used as u64, ts, cx);
                used
            }
            Take::Partial(used) => used,
            Take::Refused => {
                // The head cannot be held: the server's stream goes on as after a gap.
                cx.counters.memcap_hits += 1;
                self.resp_gap = true;
                self.resp.mode = Mode::Resync { budget: None };
                rest.len()
            }
            Take::Invalid(used) => {
                cx.budget.free(&mut self.resp.buf);
                cx.counters.invalid_response += 1;
                self.resp_gap = true;
                self.resp.mode = Mode::Resync { budget: None };
                used
            }
        }
    }

    /// A whole response head ending at stream offset `end`.
    pub(super) fn start_response(
        &mut self,
        h: head::ResponseHead,
        end: u64,
        ts: Timestamp,
        cx: &mut Ctx<'_>,
    ) {
        let head_off = self.resp.head_off;
        if h.is_interim() {
            // 100 Continue, 103 Early Hints: not the answer (H06).
            cx.counters.interim_responses += 1;
            if let Some(p) = self.pending.iter_mut().find(|p| p.response.is_none()) {
                p.flags.insert(Flags::INTERIM);
                p.resp_start.get_or_insert(head_off);
                p.resp_end = end;
            }
            self.resp.mode = Mode::Head;
            return;
        }
        cx.counters.responses += 1;
        let target = self.pair(cx);
        self.answering = target;
        let head_ts = self.resp.head_ts;
        let Some(p) = self.pending.iter_mut().find(|p| Some(p.id) == target) else {
            cx.counters.unmatched_responses += 1;
            self.resp.mode = body_mode(h.body);
            if matches!(self.resp.mode, Mode::Head) {
                self.answering = None;
            }
            return;
        };
        p.flags.insert(h.flags);
        p.resp_start.get_or_insert(head_off);
        p.resp_end = end;
        let after = h.after(p.is_head, p.is_connect);
        let tunnel = after == After::Tunnel;
        if tunnel {
            if h.status == 101 {
                p.flags.insert(Flags::UPGRADE);
                cx.counters.upgrades += 1;
            } else {
                p.flags.insert(Flags::CONNECT);
                cx.counters.connect += 1;
            }
            cx.counters.tunnels += 1;
        }
        let kind = match after {
            After::Body(kind) => kind,
            After::Tunnel => BodyKind::None,
        };
        if kind == BodyKind::Close {
            p.flags.insert(Flags::CLOSE_DELIMITED);
            cx.counters.close_delimited += 1;
        }
        // A final answer before the body of an `Expect: 100-continue` request means the
        // server refused it: the client will not send that body (H08).
        let rejected = p.flags.contains(Flags::EXPECT_CONTINUE) && !p.req_done && !p.body_started;
        p.response = Some(Response {
            status: h.status,
            version: h.version,
            body_len: 0,
            complete: false,
            first_ts: head_ts,
            last_ts: ts,
        });
        if rejected {
            cx.counters.expect_rejected += 1;
            p.req_done = true;
            p.req.complete = true;
            self.req.mode = Mode::Head;
        }
        self.resp.mode = body_mode(kind);
        if tunnel {
            self.finish_response(ts, true, cx);
            self.stop(cx);
        } else if matches!(self.resp.mode, Mode::Head) {
            self.finish_response(ts, true, cx);
        }
    }

    pub(super) fn finish_response(&mut self, ts: Timestamp, whole: bool, cx: &mut Ctx<'_>) {
        let answering = self.answering.take();
        if let Some(p) = self.pending.iter_mut().find(|p| Some(p.id) == answering) {
            p.resp_done = true;
            if let Some(r) = p.response.as_mut() {
                r.last_ts = ts;
                r.complete = whole && !p.flags.contains(Flags::GAP);
                if !r.complete {
                    cx.counters.response_incomplete += 1;
                }
            }
        }
        if matches!(self.resp.mode, Mode::Body(_)) {
            self.resp.mode = Mode::Head;
        }
        self.flush_done(cx);
    }
}
