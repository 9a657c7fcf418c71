//! Per-connection HTTP/1.x state: one parser per direction and the queue of requests waiting
//! for their responses. The jobs are in the submodules: `detect` (protocol detection),
//! `requests` and `responses` (each direction's heads and bodies, over `head` and `decode`),
//! `pairing` (FIFO, and the gap rule of RELIABILITY.md's opening list), `resync` (finding the
//! next message start) and `ends` (gaps, ends, close).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use super::conflict::Taint;
use super::decode::Decoder;
use super::head::{BodyKind, Parsed};
use super::limits::{HttpCounters, Limits};
use super::memcap::{self, Budget};
use super::{Exchange, Flags, Lost, Request, Response};
use crate::capture::Timestamp;
use crate::reassembly::{Direction, EventKind, FlowId, StreamEvent, StreamSink};

mod detect;
mod ends;
mod pairing;
mod requests;
mod responses;
mod resync;

use detect::is_http09;

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
