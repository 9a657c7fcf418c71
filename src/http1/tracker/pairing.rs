//! Pairing responses to the requests waiting for them (FIFO, and the gap rule of
//! RELIABILITY.md's opening list), and emitting finished exchanges in order.

use std::collections::VecDeque;

use super::{Conn, Ctx, Pending};
use crate::http1::memcap;
use crate::http1::{Exchange, Flags};

impl Conn {
    /// Room in the queue for one more waiting request, with the memory budget's consent:
    /// the queue doubles (up to the pending limit). When the budget refuses, the oldest
    /// waiting request is emitted unanswered to free its slot (as past the pending limit);
    /// false when the queue is empty and cannot grow at all.
    pub(super) fn make_room(&mut self, cx: &mut Ctx<'_>) -> bool {
        let cap = self.pending.capacity();
        if self.pending.len() < cap {
            return true;
        }
        let slot = std::mem::size_of::<Pending>();
        let target = (cap * 2)
            .max(memcap::QUEUE_KEPT)
            .min(cx.limits.max_pending)
            .max(cap + 1);
        if cx.budget.charge((target - cap) * slot) {
            self.pending.reserve_exact(target - self.pending.len());
            cx.budget.surplus((self.pending.capacity() - target) * slot);
            return true;
        }
        cx.counters.memcap_hits += 1;
        match self.pending.pop_front() {
            Some(old) => {
                self.emit(old, cx);
                true
            }
            None => false,
        }
    }

    /// Frees the queue of waiting requests (it is empty) and gives its bytes back.
    pub(super) fn free_queue(&mut self, cx: &mut Ctx<'_>) {
        cx.budget
            .release(self.pending.capacity() * std::mem::size_of::<Pending>());
        self.pending = VecDeque::new();
    }

    /// The pending request a new final response answers. In order, except after a gap in
    /// the server's stream: then the first request the client sent after it had received
    /// up to this response's start, else the newest; older ones stay unanswered (H28).
    pub(super) fn pair(&mut self, cx: &mut Ctx<'_>) -> Option<u64> {
        let gap = std::mem::take(&mut self.resp_gap);
        let cands: Vec<(u64, Option<u64>)> = self
            .pending
            .iter()
            .filter(|p| p.response.is_none())
            .map(|p| (p.id, p.first_ack))
            .collect();
        let first = cands.first()?.0;
        if !gap || cands.len() < 2 {
            return Some(first);
        }
        cx.counters.gap_pairings += 1;
        let start = self.resp.head_off;
        let chosen = cands
            .iter()
            .find(|(_, ack)| ack.is_some_and(|a| a >= start))
            .or(cands.last())
            .map_or(first, |c| c.0);
        let skipped: Vec<u64> = cands
            .iter()
            .map(|c| c.0)
            .take_while(|&id| id != chosen)
            .collect();
        for id in skipped {
            if let Some(pos) = self.pending.iter().position(|p| p.id == id) {
                if let Some(mut p) = self.pending.remove(pos) {
                    p.flags.insert(Flags::GAP);
                    self.emit(p, cx);
                }
            }
        }
        if let Some(p) = self.pending.iter_mut().find(|p| p.id == chosen) {
            p.flags.insert(Flags::RESYNC);
        }
        Some(chosen)
    }

    /// Emits the finished exchanges at the head of the queue, in order.
    pub(super) fn flush_done(&mut self, cx: &mut Ctx<'_>) {
        while self
            .pending
            .front()
            .is_some_and(|p| p.req_done && p.resp_done)
        {
            if let Some(p) = self.pending.pop_front() {
                self.emit(p, cx);
            }
        }
        if self.pending.is_empty() && self.pending.capacity() > memcap::QUEUE_KEPT {
            self.free_queue(cx);
        }
    }

    pub(super) fn emit(&mut self, mut p: Pending, cx: &mut Ctx<'_>) {
        cx.budget
            .release(memcap::head_bytes(&p.req) + p.req.body.capacity());
        let resp_range = p.resp_start.map(|start| (start, p.resp_end));
        if self.req.taint.covers(p.req_start, p.req_end)
            || resp_range.is_some_and(|(a, b)| self.resp.taint.covers(a, b))
        {
            p.flags.insert(Flags::OVERLAP_CONFLICT);
        }
        self.req.taint.emitted(p.req_end);
        if let Some((_, end)) = resp_range {
            self.resp.taint.emitted(end);
        }
        if !p.req_done {
            p.flags.insert(Flags::TRUNCATED);
            cx.counters.request_incomplete += 1;
        }
        if p.response.as_ref().is_some_and(|r| !r.complete) && !p.flags.contains(Flags::GAP) {
            p.flags.insert(Flags::TRUNCATED);
        }
        if p.response.is_none() {
            cx.counters.unanswered += 1;
        }
        cx.counters.exchanges += 1;
        (cx.emit)(Exchange {
            flow: cx.flow,
            client: self.client,
            server: self.server,
            request: p.req,
            response: p.response,
            flags: p.flags,
        });
    }
}
