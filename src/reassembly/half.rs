//! One direction of a connection: where its stream starts in sequence space, what has been
//! delivered, and the out-of-order bytes held above holes.

use super::chunks::{visit, Chunk, Chunks};
use super::limits::{Limits, ReassemblyCounters};
use super::recent::{differing, Recent};
use super::{CloseReason, Direction, EventKind, FlowId, StreamEvent, StreamSink};
use crate::capture::Timestamp;
use crate::wire::SeqNumber;

/// Where events go: the sink and what every event of this call shares.
pub(super) struct Out<'s, S> {
    pub sink: &'s mut S,
    pub flow: FlowId,
    pub ts: Timestamp,
}

impl<S: StreamSink> Out<'_, S> {
    pub fn emit(&mut self, kind: EventKind<'_>) {
        self.sink.event(StreamEvent {
            flow: self.flow,
            ts: self.ts,
            kind,
        });
    }
}

/// What the reassembler shares with every direction of every flow.
pub(super) struct Shared<'a> {
    pub limits: &'a Limits,
    pub counters: &'a mut ReassemblyCounters,
    /// Out-of-order bytes held by all flows.
    pub mem: &'a mut usize,
}

/// Why a hole is being skipped as a gap.
#[derive(Clone, Copy)]
pub(super) enum GapCause {
    Acked,
    NoAck,
    WindowCap,
    TooManyHoles,
    Flush,
}

pub(super) struct Half {
    pub dir: Direction,
    /// Sequence number of stream offset 0.
    base: Option<SeqNumber>,
    /// The next offset to deliver: everything below it has been delivered or declared a gap.
    pub next: u64,
    /// The out-of-order bytes held above holes.
    chunks: Chunks,
    /// The bytes delivered last, to compare retransmissions with (T04); charged to `mem`.
    recent: Recent,
    /// Offset of the FIN, once seen.
    fin: Option<u64>,
    /// End was emitted: nothing more is delivered.
    pub ended: bool,
    /// Highest offset the peer acknowledged.
    acked: u64,
    /// The peer has acknowledged this direction at least once.
    peer_acks: bool,
    /// Any payload was seen.
    pub had_data: bool,
}

impl Half {
    pub fn new(dir: Direction) -> Half {
        Half {
            dir,
            base: None,
            next: 0,
            chunks: Chunks::default(),
            recent: Recent::default(),
            fin: None,
            ended: false,
            acked: 0,
            peer_acks: false,
            had_data: false,
        }
    }

    pub fn base(&self) -> Option<SeqNumber> {
        self.base
    }

    /// Sets where the stream starts (the SYN's sequence number + 1, or the first byte seen).
    pub fn start_at(&mut self, base: SeqNumber) {
        self.base = Some(base);
    }

    /// The stream offset of a sequence number, relative to what was delivered so far, so it
    /// is exact across 2^32 wraps (T06). None before the start is known; negative values are
    /// before the stream's start.
    pub fn offset(&self, seq: SeqNumber) -> Option<i64> {
        let base = self.base?;
        let next_seq = base.add(self.next as u32);
        Some(self.next as i64 + i64::from(seq.diff(next_seq)))
    }

    /// Releases every buffer (the direction ended or the flow is closing).
    pub fn release(&mut self, sh: &mut Shared<'_>) {
        *sh.mem -= self.chunks.held() + self.recent.charged();
        self.recent.release();
        self.chunks.clear();
    }

    /// Handles a segment's payload (`data` then `missing` uncaptured bytes) starting at
    /// stream offset `off`, with the ACK it carried as an offset of the opposite stream.
    pub fn segment<S: StreamSink>(
        &mut self,
        off: i64,
        (data, missing): (&[u8], u64),
        ack: Option<u64>,
        sh: &mut Shared<'_>,
        out: &mut Out<'_, S>,
    ) {
        let len = data.len() as u64 + missing;
        if len == 0 {
            return;
        }
        self.had_data = true;
        if self.ended {
            sh.counters.data_after_close += 1;
            return;
        }
        let end = off + len as i64;
        if end <= 0 {
            sh.counters.before_start += 1;
            return;
        }
        // Bytes before the stream's start (a mid-stream pickup that saw a later segment
        // first) cannot be delivered: cut them.
        let (off, data, missing) = if off < 0 {
            sh.counters.before_start += 1;
            let cut = off.unsigned_abs();
            let take = cut.min(data.len() as u64) as usize;
            (0u64, &data[take..], missing - (cut - take as u64))
        } else {
            (off as u64, data, missing)
        };
        let end = off + data.len() as u64 + missing;
        if end <= self.next {
            if len <= 1 && off + 1 == self.next {
                sh.counters.keepalives += 1;
            } else {
                sh.counters.retransmissions += 1;
                self.check_delivered(off, data, end, sh, out);
            }
            return;
        }
        if off > self.next {
            if self.acked >= off {
                // The peer already acknowledged the bytes in front of this segment: they were
                // lost by the capture, not reordered (T07). Held chunks below it are delivered
                // on the way, so none is left below the delivered point.
                while off > self.next && !self.ended {
                    match self.chunks.first() {
                        Some(first) if first < off => self.skip_hole(GapCause::Acked, sh, out),
                        _ => self.gap(off - self.next, GapCause::Acked, sh, out),
                    }
                }
                if self.ended {
                    return;
                }
            } else if off - self.next > sh.limits.max_ahead {
                sh.counters.out_of_window += 1;
                return;
            } else {
                self.buffer(off, data, missing, ack, sh, out);
                self.enforce_limits(sh, out);
                return;
            }
        }
        self.deliver(off, data, missing, ack, sh, out);
        self.drain(sh, out);
    }

    /// Delivers a segment that starts at or before `next`. What it repeats of the bytes
    /// delivered is compared with them, and chunks held inside it are delivered in its place,
    /// compared too: the first copy wins (T03, T04).
    fn deliver<S: StreamSink>(
        &mut self,
        off: u64,
        data: &[u8],
        missing: u64,
        ack: Option<u64>,
        sh: &mut Shared<'_>,
        out: &mut Out<'_, S>,
    ) {
        let end = off + data.len() as u64 + missing;
        if off < self.next {
            sh.counters.retransmissions += 1;
            sh.counters.overlap_bytes += self.next - off;
            self.check_delivered(off, data, end, sh, out);
        }
        while self.next < end {
            let held = self.chunks.first().filter(|&k| k < end);
            self.emit_segment(off, data, held.unwrap_or(end), ack, sh, out);
            if held.is_some() {
                self.take_held(Some((off, data)), sh, out);
            }
        }
    }

    /// Delivers the segment's bytes from `next` up to `stop`: the captured ones as data, the
    /// rest as a gap (C02).
    fn emit_segment<S: StreamSink>(
        &mut self,
        off: u64,
        data: &[u8],
        stop: u64,
        ack: Option<u64>,
        sh: &mut Shared<'_>,
        out: &mut Out<'_, S>,
    ) {
        let data_end = off + data.len() as u64;
        if self.next < data_end && self.next < stop {
            let bytes = &data[(self.next - off) as usize..(stop.min(data_end) - off) as usize];
            self.emit_data(bytes, ack, sh, out);
        }
        self.snaplen_gap(stop, sh, out);
    }

    /// Delivers `bytes` at `next`, keeping them to compare retransmissions with.
    fn emit_data<S: StreamSink>(
        &mut self,
        bytes: &[u8],
        ack: Option<u64>,
        sh: &mut Shared<'_>,
        out: &mut Out<'_, S>,
    ) {
        if bytes.is_empty() {
            return;
        }
        let mut limit = sh.limits.conflict_window;
        if self.recent.growing() {
            // Kept bytes grow only while all reassembly memory is under half the memcap, so
            // they never crowd out out-of-order data (L02).
            let spare = (sh.limits.memcap / 2).saturating_sub(*sh.mem);
            limit = limit.min(self.recent.charged() + spare);
        }
        *sh.mem += self.recent.record(self.next, bytes, limit);
        out.emit(EventKind::Data {
            dir: self.dir,
            offset: self.next,
            data: bytes,
            ack,
        });
        self.next += bytes.len() as u64;
    }

    /// Compares a segment repeating delivered bytes (`[off, next)` of `[off, end)`) with the
    /// bytes kept of them: a difference is a conflict (T04); bytes too old to be kept, or
    /// never seen (a gap), cannot be compared and are counted.
    fn check_delivered<S: StreamSink>(
        &mut self,
        off: u64,
        data: &[u8],
        end: u64,
        sh: &mut Shared<'_>,
        out: &mut Out<'_, S>,
    ) {
        let (lo, hi) = self.recent.span();
        if off < lo || end.min(self.next) > hi {
            sh.counters.retransmit_unchecked += 1;
        }
        if let Some(range) = self.recent.diff(off, data) {
            conflict(self.dir, range, sh, out);
        }
    }

    /// Declares the uncaptured bytes up to `end` a gap (C02).
    fn snaplen_gap<S: StreamSink>(&mut self, end: u64, sh: &mut Shared<'_>, out: &mut Out<'_, S>) {
        if end > self.next {
            sh.counters.gap_snaplen += 1;
            let len = end - self.next;
            sh.counters.reassembly_gap += 1;
            sh.counters.missed_bytes += len;
            out.emit(EventKind::Gap {
                dir: self.dir,
                offset: self.next,
                len,
            });
            self.next = end;
        }
    }

    /// Delivers the buffered chunks that have become contiguous.
    fn drain<S: StreamSink>(&mut self, sh: &mut Shared<'_>, out: &mut Out<'_, S>) {
        while let Some(off) = self.chunks.first() {
            if off > self.next {
                break;
            }
            self.take_held(None, sh, out);
        }
        self.check_fin(out, sh);
    }

    /// Delivers the first held chunk, which starts at or below `next`, after comparing it with
    /// the segment `over` it, if any (the chunk came first: its bytes are the ones delivered).
    fn take_held<S: StreamSink>(
        &mut self,
        over: Option<(u64, &[u8])>,
        sh: &mut Shared<'_>,
        out: &mut Out<'_, S>,
    ) {
        let Some((start, chunk)) = self.chunks.pop_first(sh.mem) else {
            return;
        };
        if let Some(range) = over.and_then(|(off, data)| diff_at(start, &chunk.data, off, data)) {
            conflict(self.dir, range, sh, out);
        }
        let end = start + chunk.len();
        if end > self.next {
            let skip = self.next.saturating_sub(start) as usize;
            let data: &[u8] = chunk.data.get(skip..).unwrap_or(&[]);
            self.emit_data(data, chunk.ack, sh, out);
            self.snaplen_gap(end, sh, out);
        }
    }

    /// Holds an out-of-order segment; the first copy of a byte wins (T04).
    fn buffer<S: StreamSink>(
        &mut self,
        off: u64,
        data: &[u8],
        missing: u64,
        ack: Option<u64>,
        sh: &mut Shared<'_>,
        out: &mut Out<'_, S>,
    ) {
        sh.counters.ooo_segments += 1;
        let end = off + data.len() as u64 + missing;
        // Cut the new bytes into the pieces no buffered chunk covers yet. Chunks are disjoint,
        // so only the one starting before `off` and those starting inside the new bytes can
        // overlap them.
        let from = match self.chunks.range(..off).next_back() {
            Some((&s, c)) if s + c.len() > off => s,
            _ => off,
        };
        visit(1);
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        let mut pos = off;
        for (&s, c) in self.chunks.range(from..end) {
            visit(1);
            let e = s + c.len();
            if e <= pos {
                continue;
            }
            if s > pos {
                pieces.push((pos, s));
            }
            // Compare the captured bytes both copies have.
            let (a, b) = (pos.max(s), e.min(end).min(s + c.data.len() as u64));
            let new_data_end = off + data.len() as u64;
            let b = b.min(new_data_end);
            if a < b {
                sh.counters.overlap_bytes += b - a;
            }
            if let Some(range) = diff_at(s, &c.data, off, data) {
                conflict(self.dir, range, sh, out);
            }
            pos = pos.max(e);
            if pos >= end {
                break;
            }
        }
        if pos < end {
            pieces.push((pos, end));
        }
        if pieces.is_empty() {
            sh.counters.retransmissions += 1;
            return;
        }
        for (s, e) in pieces {
            let data_end = off + data.len() as u64;
            let captured = if s < data_end {
                &data[(s - off) as usize..(e.min(data_end) - off) as usize]
            } else {
                &[][..]
            };
            let chunk = Chunk {
                data: captured.to_vec(),
                missing: e - s - captured.len() as u64,
                ack,
            };
            if *sh.mem + chunk.cost() > sh.limits.memcap {
                sh.counters.segment_memcap_drop += 1;
                return;
            }
            self.chunks.insert(s, chunk, sh.mem);
        }
    }

    /// Skips holes while a cap is exceeded (L01, T08, T20).
    fn enforce_limits<S: StreamSink>(&mut self, sh: &mut Shared<'_>, out: &mut Out<'_, S>) {
        loop {
            let cause = if self.chunks.holes(self.next) > sh.limits.max_holes {
                sh.counters.too_many_holes += 1;
                GapCause::TooManyHoles
            } else if self.chunks.held() > sh.limits.window {
                sh.counters.flow_cap_hits += 1;
                GapCause::WindowCap
            } else if !self.peer_acks && self.chunks.held() > sh.limits.above_hole_without_acks {
                GapCause::NoAck
            } else {
                return;
            };
            self.skip_hole(cause, sh, out);
        }
    }

    /// Declares the hole in front of the first buffered chunk a gap and delivers what follows.
    fn skip_hole<S: StreamSink>(
        &mut self,
        cause: GapCause,
        sh: &mut Shared<'_>,
        out: &mut Out<'_, S>,
    ) {
        let Some(first) = self.chunks.first() else {
            return;
        };
        if first > self.next {
            self.gap(first - self.next, cause, sh, out);
        }
        self.drain(sh, out);
    }

    fn gap<S: StreamSink>(
        &mut self,
        len: u64,
        cause: GapCause,
        sh: &mut Shared<'_>,
        out: &mut Out<'_, S>,
    ) {
        match cause {
            GapCause::Acked => sh.counters.gap_acked += 1,
            GapCause::NoAck => sh.counters.gap_no_ack += 1,
            GapCause::Flush => sh.counters.gap_flush += 1,
            GapCause::WindowCap | GapCause::TooManyHoles => {}
        }
        sh.counters.reassembly_gap += 1;
        sh.counters.missed_bytes += len;
        out.emit(EventKind::Gap {
            dir: self.dir,
            offset: self.next,
            len,
        });
        self.next += len;
    }

    /// The peer acknowledged up to `ack` (an offset of this stream). A hole below it with
    /// data buffered above it was lost by the capture (T07).
    pub fn peer_ack<S: StreamSink>(&mut self, ack: i64, sh: &mut Shared<'_>, out: &mut Out<'_, S>) {
        self.peer_acks = true;
        if ack <= 0 {
            return;
        }
        // An ACK of the FIN counts one past the data.
        let ack = match self.fin {
            Some(fin) => (ack as u64).min(fin),
            None => ack as u64,
        };
        self.acked = self.acked.max(ack);
        while let Some(first) = self.chunks.first() {
            if first > self.acked || self.ended {
                break;
            }
            self.skip_hole(GapCause::Acked, sh, out);
        }
    }

    /// Records a FIN at `off` and ends the direction when everything before it is delivered.
    pub fn fin<S: StreamSink>(&mut self, off: u64, sh: &mut Shared<'_>, out: &mut Out<'_, S>) {
        if self.fin.is_none() {
            self.fin = Some(off);
        }
        self.check_fin(out, sh);
    }

    fn check_fin<S: StreamSink>(&mut self, out: &mut Out<'_, S>, sh: &mut Shared<'_>) {
        if let Some(fin) = self.fin {
            if !self.ended && self.next >= fin {
                self.ended = true;
                self.release(sh);
                out.emit(EventKind::End {
                    dir: self.dir,
                    reason: CloseReason::Fin,
                });
            }
        }
    }

    /// Flushes before the flow closes without a FIN: every hole becomes a gap, and bytes the
    /// peer acknowledged but the capture missed at the end are a gap too.
    pub fn flush<S: StreamSink>(&mut self, sh: &mut Shared<'_>, out: &mut Out<'_, S>) {
        if self.ended {
            return;
        }
        while !self.chunks.is_empty() && !self.ended {
            self.skip_hole(GapCause::Flush, sh, out);
        }
        if !self.ended && self.acked > self.next {
            self.gap(self.acked - self.next, GapCause::Acked, sh, out);
            self.check_fin(out, sh);
        }
    }

    /// At a RST: deliver what is contiguous, drop the rest without a gap (T09), end.
    pub fn reset<S: StreamSink>(&mut self, sh: &mut Shared<'_>, out: &mut Out<'_, S>) {
        if self.ended {
            return;
        }
        self.drain(sh, out);
        if self.ended {
            return;
        }
        for c in self.chunks.values() {
            sh.counters.rst_discarded_bytes += c.data.len() as u64;
        }
        self.release(sh);
        self.ended = true;
        out.emit(EventKind::End {
            dir: self.dir,
            reason: CloseReason::Rst,
        });
    }
}

/// Where two runs of bytes (`a` at `a_off`, `b` at `b_off`) differ over the offsets both
/// cover: `[first, last + 1)` of the differing offsets.
fn diff_at(a_off: u64, a: &[u8], b_off: u64, b: &[u8]) -> Option<(u64, u64)> {
    let lo = a_off.max(b_off);
    let hi = (a_off + a.len() as u64).min(b_off + b.len() as u64);
    if lo >= hi {
        return None;
    }
    let x = &a[(lo - a_off) as usize..(hi - a_off) as usize];
    let y = &b[(lo - b_off) as usize..(hi - b_off) as usize];
    differing(x, y).map(|(first, last)| (lo + first as u64, lo + last as u64 + 1))
}

/// Counts and reports bytes that came again with different content (T04).
fn conflict<S: StreamSink>(
    dir: Direction,
    (start, end): (u64, u64),
    sh: &mut Shared<'_>,
    out: &mut Out<'_, S>,
) {
    sh.counters.overlap_conflict += 1;
    out.emit(EventKind::Conflict {
        dir,
        offset: start,
        len: end - start,
    });
}
