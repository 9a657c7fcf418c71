//! The client's side of a connection: request heads, bodies (kept up to the body cap, within
//! the memory budget) and the queue of requests waiting for their responses.

use super::{body_done, body_mode, is_http09, Conn, Ctx, Mode, Pending, Take};
use crate::capture::Timestamp;
use crate::http1::head::{self, BodyKind};
use crate::http1::memcap;
use crate::http1::{Flags, Lost, Request};

impl Conn {
    pub(super) fn request_bytes(
        &mut self,
        offset: u64,
        data: &[u8],
        ack: Option<u64>,
        ts: Timestamp,
        cx: &mut Ctx<'_>,
    ) {
        let mut i = 0;
        while i < data.len() {
            let rest = &data[i..];
            let at = offset + i as u64;
            match &mut self.req.mode {
                Mode::Stopped => return,
                Mode::Resync { .. } => {
                    i += self.resync_request(rest, at, ack, ts, cx);
                }
                Mode::Head => i += self.request_head(rest, at, ack, ts, cx),
                Mode::Body(body) => {
                    let Some(p) = self.pending.back_mut().filter(|p| !p.req_done) else {
                        self.req.mode = Mode::Head;
                        continue;
                    };
                    p.body_started = true;
                    let keep = cx.limits.max_body_kept;
                    let budget = &mut *cx.budget;
                    let mut refused = false;
                    let mut append = |b: &[u8]| {
                        p.req.body_len += b.len() as u64;
                        if refused || p.flags.contains(Flags::MEMCAP) {
                            return;
                        }
                        let room = keep.saturating_sub(p.req.body.len());
                        if b.len() > room {
                            p.req.body_kept = false;
                        }
                        let part = &b[..b.len().min(room)];
                        refused = !part.is_empty() && !budget.extend(&mut p.req.body, part, keep);
                    };
                    let fed = body.decode(rest, cx.limits.max_chunk_meta, &mut append);
                    let fed = fed.map(|d| (d.used, d.done && body_done(body, cx.counters)));
                    if refused {
                        // The budget cannot hold this body: counted, not kept, not replayed.
                        cx.counters.memcap_hits += 1;
                        p.flags.insert(Flags::MEMCAP);
                        p.req.body_kept = false;
                        cx.budget.free(&mut p.req.body);
                    }
                    let Ok((used, done)) = fed else {
                        cx.counters.invalid_chunk += 1;
                        p.flags.insert(Flags::INVALID);
                        self.finish_request(ts, cx);
                        self.req.mode = Mode::Resync { budget: None };
                        i = data.len();
                        continue;
                    };
                    i += used;
                    p.req_end = at + used as u64;
                    p.req.last_ts = ts;
                    if done {
                        self.finish_request(ts, cx);
                    }
                }
            }
        }
    }

    /// Parses (or buffers) a request head from `rest`; returns the bytes used.
    pub(super) fn request_head(
        &mut self,
        rest: &[u8],
        at: u64,
        ack: Option<u64>,
        ts: Timestamp,
        cx: &mut Ctx<'_>,
    ) -> usize {
        let (h, used) = match self.req.take_head(rest, (at, ack, ts), cx, head::request) {
            Take::Head(h, used) => (h, used),
            Take::Partial(used) => return used,
            Take::Refused => {
                // The head cannot be held: the direction goes on as after a gap, and the
                // request is counted.
                cx.counters.memcap_hits += 1;
                cx.counters.count_lost(Lost::Memcap);
                self.req.mode = Mode::Resync { budget: None };
                return rest.len();
            }
            Take::Invalid(used) => return self.invalid_request(rest, used, cx),
        };
        self.start_request(h, at + used as u64, ts, cx);
        used
    }

    /// A request head that does not parse: counted as a request seen if it looks like the
    /// start of one (not another protocol's bytes), then the direction looks for the next.
    pub(super) fn invalid_request(&mut self, rest: &[u8], used: usize, cx: &mut Ctx<'_>) -> usize {
        let bytes = if self.req.buf.is_empty() {
            &rest[used..]
        } else {
            &self.req.buf[..]
        };
        let http09 = !self.any_request && is_http09(bytes);
        if http09 || head::looks_like_request(bytes) {
            cx.counters.count_lost(Lost::InvalidRequest);
        }
        cx.budget.free(&mut self.req.buf);
        if http09 {
            // `GET /path` with no version (H26): recognised, never an exchange.
            cx.counters.http09 += 1;
            self.stop(cx);
            return rest.len();
        }
        cx.counters.invalid_request += 1;
        // At the start of a connection a parse error may just mean another protocol:
        // look a little further, then give up (H26).
        let budget = (!self.any_request).then_some(cx.limits.detect_budget);
        self.req.mode = Mode::Resync { budget };
        used
    }

    /// A whole request head ending at stream offset `end`: queued for its response.
    pub(super) fn start_request(
        &mut self,
        h: head::RequestHead,
        end: u64,
        ts: Timestamp,
        cx: &mut Ctx<'_>,
    ) {
        self.any_request = true;
        cx.counters.requests += 1;
        if self.pending.len() >= cx.limits.max_pending {
            cx.counters.excessive_pipelining += 1;
            if let Some(old) = self.pending.pop_front() {
                self.emit(old, cx);
            }
        }
        if !self.make_room(cx) {
            // Not even a slot in the queue: the request goes as after a gap, counted.
            cx.counters.count_lost(Lost::Memcap);
            self.req.mode = Mode::Resync { budget: None };
            return;
        }
        let mut flags = h.flags;
        if self.midstream {
            flags.insert(Flags::MIDSTREAM);
        }
        if self.pending.iter().any(|p| !p.resp_done) {
            flags.insert(Flags::PIPELINED);
            cx.counters.pipelined += 1;
        }
        // Methods are case-sensitive (RFC 9110 section 9.1): `head` and `connect` are
        // extension methods, with the framing of any other request.
        let is_connect = h.method == "CONNECT";
        let is_head = h.method == "HEAD";
        let body = h.body;
        let invalid = flags.contains(Flags::INVALID);
        let mut req = Request {
            method: h.method,
            target: h.target,
            version: h.version,
            headers: h.headers,
            body: Vec::new(),
            body_len: 0,
            body_kept: true,
            complete: false,
            first_ts: self.req.head_ts,
            last_ts: ts,
        };
        if !cx.budget.charge(memcap::head_bytes(&req)) {
            // Kept in the queue, so responses still pair in order, but without its head:
            // counted, never replayed.
            cx.counters.memcap_hits += 1;
            flags.insert(Flags::MEMCAP);
            req.method = String::new();
            req.target = Vec::new();
            req.headers = crate::http1::Headers::default();
        }
        self.next_id += 1;
        self.pending.push_back(Pending {
            id: self.next_id,
            req,
            flags,
            first_ack: self.req.head_ack,
            req_done: false,
            body_started: false,
            is_head,
            is_connect,
            response: None,
            resp_done: false,
            req_start: self.req.head_off,
            req_end: end,
            resp_start: None,
            resp_end: 0,
        });
        // A request body never runs to the close (RFC 9112 section 6.3 item 7).
        self.req.mode = match body {
            BodyKind::Close => Mode::Head,
            kind => body_mode(kind),
        };
        if invalid {
            // Unframeable (RFC 9112 section 6.3): nothing after it on this direction can be
            // trusted (H16).
            self.finish_request(ts, cx);
            self.req.mode = Mode::Stopped;
        } else if matches!(self.req.mode, Mode::Head) {
            self.finish_request(ts, cx);
        }
    }

    /// The request being received is whole (or as whole as it will get).
    pub(super) fn finish_request(&mut self, ts: Timestamp, cx: &mut Ctx<'_>) {
        if let Some(p) = self.pending.iter_mut().rev().find(|p| !p.req_done) {
            p.req_done = true;
            p.req.last_ts = ts;
            p.req.complete = !p.flags.contains(Flags::GAP) && !p.flags.contains(Flags::TRUNCATED);
            if p.req.body_len > cx.limits.max_body_kept as u64 {
                p.flags.insert(Flags::BODY_TOO_LARGE);
                cx.counters.body_too_large += 1;
            }
        }
        if matches!(self.req.mode, Mode::Body(_)) {
            self.req.mode = Mode::Head;
        }
        self.flush_done(cx);
    }
}
