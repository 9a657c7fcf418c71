//! Per-connection HTTP/1.x state: one parser per direction, the queue of requests waiting
//! for their responses, pairing (FIFO, and the gap rule of RELIABILITY.md's opening list),
//! and protocol detection.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use super::conflict::Taint;
use super::decode::Decoder;
use super::head::{self, After, BodyKind, Parsed};
use super::limits::{HttpCounters, Limits};
use super::memcap::{self, Budget};
use super::{Exchange, Flags, Lost, Request, Response};
use crate::capture::Timestamp;
use crate::reassembly::{CloseReason, Direction, EventKind, FlowId, StreamEvent, StreamSink};

mod detect;
use detect::is_http09;
mod resync;

enum Mode {
    Head,
    Body(Decoder),
    /// Looking for the next message start (after a gap, a parse error, or a mid-stream
    /// pickup); `budget` bounds the look at the start of a connection (H26).
    Resync {
        budget: Option<usize>,
    },
    Stopped,
}

/// One direction's parser.
struct Side {
    mode: Mode,
    /// A partial head, or bytes being scanned for a message start.
    buf: Vec<u8>,
    /// Capture time, stream offset and ACK of the first byte of the head in progress.
    head_ts: Timestamp,
    head_off: u64,
    head_ack: Option<u64>,
    /// Conflicting retransmitted bytes of this direction not yet behind what was emitted.
    taint: Taint,
}

/// What [`Side::take_head`] made of the bytes offered.
enum Take<T> {
    /// A whole head, and the bytes of `rest` it used.
    Head(T, usize),
    /// The head is invalid. Its bytes stay in `buf` when it was buffered (else they start
    /// at `rest[used]`) until the caller frees them; the bytes of `rest` used.
    Invalid(usize),
    /// Still partial, now buffered: all of `rest` used.
    Partial(usize),
    /// Still partial, and the memory budget cannot hold it: nothing buffered.
    Refused,
}

impl Side {
    fn new(mode: Mode) -> Side {
        Side {
            mode,
            buf: Vec::new(),
            head_ts: Timestamp::default(),
            head_off: 0,
            head_ack: None,
            taint: Taint::default(),
        }
    }

    /// Parses a head from `rest` (or from the partial head buffered before it); a partial
    /// head is buffered (up to the head limit) if the memory budget can hold it.
    fn take_head<T>(
        &mut self,
        rest: &[u8],
        (at, ack, ts): (u64, Option<u64>, Timestamp),
        cx: &mut Ctx<'_>,
        mut parse: impl FnMut(&[u8], &Limits, &mut HttpCounters) -> Parsed<T>,
    ) -> Take<T> {
        let limit = cx.limits.max_head;
        if self.buf.is_empty() {
            // Empty lines between messages are allowed (RFC 9112 section 2.2).
            let skip = rest
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if skip == rest.len() {
                return Take::Partial(skip);
            }
            self.head_ts = ts;
            self.head_off = at + skip as u64;
            self.head_ack = ack;
            return match parse(&rest[skip..], cx.limits, cx.counters) {
                Parsed::Partial => {
                    if !cx.budget.extend(&mut self.buf, &rest[skip..], limit) {
                        return Take::Refused;
                    }
                    Take::Partial(rest.len())
                }
                Parsed::Done(h, n) => Take::Head(h, skip + n),
                Parsed::Invalid => Take::Invalid(skip),
            };
        }
        let old = self.buf.len();
        if !cx.budget.extend(&mut self.buf, rest, limit) {
            cx.budget.free(&mut self.buf);
            return Take::Refused;
        }
        match parse(&self.buf, cx.limits, cx.counters) {
            Parsed::Partial => Take::Partial(rest.len()),
            Parsed::Done(h, n) => {
                cx.budget.free(&mut self.buf);
                Take::Head(h, n - old)
            }
            Parsed::Invalid => Take::Invalid(0),
        }
    }
}

struct Pending {
    id: u64,
    req: Request,
    flags: Flags,
    /// The server-stream offset the client had acknowledged when it sent the first byte.
    first_ack: Option<u64>,
    req_done: bool,
    body_started: bool,
    is_head: bool,
    is_connect: bool,
    response: Option<Response>,
    resp_done: bool,
    /// Where the request starts and (so far) ends in the client's stream, and the response
    /// (its first interim one included) in the server's: what conflicts are checked against.
    req_start: u64,
    req_end: u64,
    resp_start: Option<u64>,
    resp_end: u64,
}

struct Conn {
    client: SocketAddr,
    server: SocketAddr,
    midstream: bool,
    /// The reassembler's roles were wrong (mid-stream guess): its client is our server.
    swapped: bool,
    seen_data: bool,
    any_request: bool,
    req: Side,
    resp: Side,
    pending: VecDeque<Pending>,
    next_id: u64,
    /// The pending request the response in progress answers; None for an orphan.
    answering: Option<u64>,
    /// The server stream had a gap since the last response head (pairing rule).
    resp_gap: bool,
}

/// What conn methods share with the tracker.
struct Ctx<'a> {
    limits: &'a Limits,
    counters: &'a mut HttpCounters,
    budget: &'a mut Budget,
    emit: &'a mut dyn FnMut(Exchange),
    flow: FlowId,
}

/// Byte streams in (as a [`StreamSink`]), exchanges out through the `emit` callback.
pub struct Tracker<F: FnMut(Exchange)> {
    limits: Limits,
    counters: HttpCounters,
    budget: Budget,
    emit: F,
    conns: HashMap<FlowId, Conn, ahash::RandomState>,
}

impl<F: FnMut(Exchange)> Tracker<F> {
    pub fn new(limits: Limits, emit: F) -> Tracker<F> {
        Tracker {
            budget: Budget::new(limits.memcap),
            limits,
            counters: HttpCounters::default(),
            emit,
            conns: HashMap::default(),
        }
    }

    pub fn counters(&self) -> &HttpCounters {
        &self.counters
    }

    /// Bytes held under the memory budget now (`http.memuse`).
    pub fn memuse(&self) -> usize {
        self.budget.used()
    }

    /// Bytes really held, counted from the buffers themselves: what the budget's figure must
    /// equal.
    #[cfg(test)]
    pub(super) fn held_bytes(&self) -> usize {
        self.conns.values().map(Conn::held_bytes).sum()
    }
}

impl<F: FnMut(Exchange)> StreamSink for Tracker<F> {
    fn event(&mut self, ev: StreamEvent<'_>) {
        let flow = ev.flow;
        if let EventKind::Open {
            client,
            server,
            midstream,
        } = ev.kind
        {
            let old = self
                .conns
                .insert(flow, Conn::new(client, server, midstream));
            if let Some(old) = old {
                self.budget.release(old.held_bytes());
            }
            return;
        }
        let Some(conn) = self.conns.get_mut(&flow) else {
            return;
        };
        let mut cx = Ctx {
            limits: &self.limits,
            counters: &mut self.counters,
            budget: &mut self.budget,
            emit: &mut self.emit,
            flow,
        };
        match ev.kind {
            EventKind::Open { .. } => {}
            EventKind::Data {
                dir,
                offset,
                data,
                ack,
            } => conn.data(dir, offset, data, ack, ev.ts, &mut cx),
            EventKind::Gap { dir, len, .. } => conn.gap(dir, len, &mut cx),
            EventKind::End { dir, reason } => conn.end(dir, reason, ev.ts, &mut cx),
            EventKind::Conflict { dir, offset, len } => conn.conflict(dir, offset, len, &mut cx),
            EventKind::Close { reason } => {
                conn.close(reason, ev.ts, &mut cx);
                self.conns.remove(&flow);
            }
        }
        self.counters.memuse = self.budget.used() as u64;
        self.counters.memuse_peak = self.budget.peak() as u64;
    }
}

impl Conn {
    fn new(client: SocketAddr, server: SocketAddr, midstream: bool) -> Conn {
        // Mid-stream, both sides start inside unknown messages: skip to the first message
        // start (T13).
        let start = || {
            if midstream {
                Mode::Resync { budget: None }
            } else {
                Mode::Head
            }
        };
        Conn {
            client,
            server,
            midstream,
            swapped: false,
            seen_data: false,
            any_request: false,
            req: Side::new(start()),
            resp: Side::new(start()),
            pending: VecDeque::new(),
            next_id: 0,
            answering: None,
            resp_gap: false,
        }
    }

    fn data(
        &mut self,
        dir: Direction,
        offset: u64,
        data: &[u8],
        ack: Option<u64>,
        ts: Timestamp,
        cx: &mut Ctx<'_>,
    ) {
        if !self.seen_data {
            self.seen_data = true;
            self.first_data(dir, offset, data, cx);
        }
        match self.role(dir) {
            Direction::ClientToServer => self.request_bytes(offset, data, ack, ts, cx),
            Direction::ServerToClient => self.response_bytes(offset, data, ts, cx),
        }
    }

    fn role(&self, dir: Direction) -> Direction {
        if self.swapped {
            dir.reverse()
        } else {
            dir
        }
    }

    fn stop(&mut self, cx: &mut Ctx<'_>) {
        self.req.mode = Mode::Stopped;
        self.resp.mode = Mode::Stopped;
        cx.budget.free(&mut self.req.buf);
        cx.budget.free(&mut self.resp.buf);
    }

    /// Bytes this connection holds under the memory budget, counted from the buffers.
    fn held_bytes(&self) -> usize {
        let pending: usize = self
            .pending
            .iter()
            .map(|p| memcap::head_bytes(&p.req) + p.req.body.capacity())
            .sum();
        let queue = self.pending.capacity() * std::mem::size_of::<Pending>();
        self.req.buf.capacity() + self.resp.buf.capacity() + queue + pending
    }

    /// A head in progress on the client's side will never be whole: it is counted as a
    /// request lost for `why`, and its bytes freed.
    fn lose_head(&mut self, why: Lost, cx: &mut Ctx<'_>) {
        if matches!(self.req.mode, Mode::Head) && !self.req.buf.is_empty() {
            cx.counters.count_lost(why);
        }
        cx.budget.free(&mut self.req.buf);
    }

    /// Retransmitted bytes at `[offset, offset + len)` of `dir` disagreed with what was
    /// delivered: the exchange they belong to is flagged when it is emitted, or counted if it
    /// already was.
    fn conflict(&mut self, dir: Direction, offset: u64, len: u64, cx: &mut Ctx<'_>) {
        let side = match self.role(dir) {
            Direction::ClientToServer => &mut self.req,
            Direction::ServerToClient => &mut self.resp,
        };
        if side.taint.add(offset, len) {
            cx.counters.conflict_after_emit += 1;
        }
    }

    // ----- requests -----

    fn request_bytes(
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
    fn request_head(
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
    fn invalid_request(&mut self, rest: &[u8], used: usize, cx: &mut Ctx<'_>) -> usize {
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
    fn start_request(&mut self, h: head::RequestHead, end: u64, ts: Timestamp, cx: &mut Ctx<'_>) {
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
            req.headers = super::Headers::default();
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

    /// Room in the queue for one more waiting request, with the memory budget's consent:
    /// the queue doubles (up to the pending limit). When the budget refuses, the oldest
    /// waiting request is emitted unanswered to free its slot (as past the pending limit);
    /// false when the queue is empty and cannot grow at all.
    fn make_room(&mut self, cx: &mut Ctx<'_>) -> bool {
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
    fn free_queue(&mut self, cx: &mut Ctx<'_>) {
        cx.budget
            .release(self.pending.capacity() * std::mem::size_of::<Pending>());
        self.pending = VecDeque::new();
    }

    /// The request being received is whole (or as whole as it will get).
    fn finish_request(&mut self, ts: Timestamp, cx: &mut Ctx<'_>) {
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

    // ----- responses -----

    fn response_bytes(&mut self, offset: u64, data: &[u8], ts: Timestamp, cx: &mut Ctx<'_>) {
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

    fn response_head(&mut self, rest: &[u8], at: u64, ts: Timestamp, cx: &mut Ctx<'_>) -> usize {
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
    fn start_response(&mut self, h: head::ResponseHead, end: u64, ts: Timestamp, cx: &mut Ctx<'_>) {
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

    /// The pending request a new final response answers. In order, except after a gap in
    /// the server's stream: then the first request the client sent after it had received
    /// up to this response's start, else the newest; older ones stay unanswered (H28).
    fn pair(&mut self, cx: &mut Ctx<'_>) -> Option<u64> {
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

    fn finish_response(&mut self, ts: Timestamp, whole: bool, cx: &mut Ctx<'_>) {
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

    // ----- gaps, ends, close -----

    fn gap(&mut self, dir: Direction, len: u64, cx: &mut Ctx<'_>) {
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

    fn end(&mut self, dir: Direction, reason: CloseReason, ts: Timestamp, cx: &mut Ctx<'_>) {
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

    fn close(&mut self, reason: CloseReason, ts: Timestamp, cx: &mut Ctx<'_>) {
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

    /// Emits the finished exchanges at the head of the queue, in order.
    fn flush_done(&mut self, cx: &mut Ctx<'_>) {
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

    fn emit(&mut self, mut p: Pending, cx: &mut Ctx<'_>) {
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

/// A body has ended: counts a chunked body's extensions and trailers. Always true.
fn body_done(body: &Decoder, counters: &mut HttpCounters) -> bool {
    let (extensions, trailers) = body.chunk_meta();
    counters.chunk_extensions += u64::from(extensions);
    counters.trailers += u64::from(trailers);
    true
}

/// A gap of `len` bytes in a direction reading `mode`: true when its body's framing
/// survives it (the body goes on, `len` bytes shorter).
fn skip_gap(mode: &mut Mode, len: u64) -> bool {
    match mode {
        Mode::Body(body) => body.skip(len),
        _ => false,
    }
}

fn body_mode(kind: BodyKind) -> Mode {
    Decoder::new(kind).map_or(Mode::Head, Mode::Body)
}
