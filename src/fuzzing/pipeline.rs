//! The `pipeline` target: bytes through every stage, with the work they cause counted.
//!
//! An input that starts like a capture file (pcap or pcapng magic) is read as one. Any other
//! input is a compact script of TCP operations that expands into many segments (a burst of
//! thousands of out-of-order segments, a thousand connections with unfinished heads) from a
//! few bytes, so the fuzzer reaches the states that need many segments (RELIABILITY.md T20,
//! L05) within a small input. What each input makes the pipeline do is counted in [`Work`]
//! and checked against the input: at most [`EXPANSION`] bytes fed per input byte, a bounded
//! number of events and of reassembly chunks looked at per segment fed, no more out-of-order
//! bytes held than the reassembler's cap and no more HTTP bytes than the tracker's.

use std::net::{Ipv4Addr, SocketAddr};

use crate::capture::{CaptureReader, Timestamp};
use crate::http1::Tracker;
use crate::pipeline::{self, Chain, Filter, Front};
use crate::reassembly::{Reassembler, StreamEvent, StreamSink};
use crate::settings::Limits;
use crate::wire::{Segment, SeqNumber, TcpFlags};

/// Most bytes (payload and segments) the script may feed per input byte, plus a constant: a
/// four-byte `flows` operation opens 1024 connections of about 1 KiB each.
pub const EXPANSION: u64 = 512 * 1024;
/// Most bytes one input may feed in all, whatever its length.
const MAX_FED_BYTES: u64 = 16 * 1024 * 1024;
/// Segments in one burst, at most.
const MAX_BURST: u16 = 4096;
/// Connections opened by one `flows` operation, at most.
const MAX_FLOWS: u16 = 1024;
/// Events one segment may cause, at most (Open, Data, Gap, Conflict, End, Close, plus the
/// flushes of an eviction counted against the segments that filled the table).
const EVENTS_PER_SEGMENT: u64 = 8;
/// Reassembly chunks one segment may cause to be looked at, at most, on top of one per byte
/// it covers (a segment over many held one-byte chunks walks each of them once): a find on
/// each side of the insert, the pieces walked, the hole count, and later the chunk's removal
/// when it is delivered. A walk over every held chunk per insert (T20, 1 M one-byte segments
/// out of order took 47 s) costs thousands per segment.
const VISITS_PER_SEGMENT: u64 = 16;
/// The HTTP tracker's byte budget here (`--http-memcap`; 128 MiB by default): small enough
/// that a `flows` operation (1024 unfinished heads of up to 1 KiB) runs into it, so what the
/// tracker gives up at its cap is fuzzed and its peak is checked against a cap it reaches.
const HTTP_MEMCAP: usize = 256 * 1024;
/// What burst segments carry, cycled.
const PATTERN: &[u8] = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
/// The start of a head that never ends, for the `flows` operation.
const UNFINISHED_HEAD: &[u8] = b"GET /slow HTTP/1.1\r\nX-Filler: ";
/// First bytes of a pcap (either byte order, either resolution) or pcapng file.
const CAPTURE_MAGICS: &[[u8; 4]] = &[
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x0a, 0x0d, 0x0d, 0x0a],
];

/// What one input made the pipeline do.
#[derive(Debug, Default, Clone, Copy)]
pub struct Work {
    /// Length of the input.
    pub input: u64,
    /// Segments handed to the reassembler.
    pub segments: u64,
    /// Payload bytes handed to the reassembler.
    pub bytes: u64,
    /// Bytes the segments declared but did not capture (cut by the snap length): they take
    /// sequence space as payload does.
    pub missing: u64,
    /// Reassembly chunks looked at (found, walked or removed; `reassembly::chunks_visited`).
    pub visits: u64,
    /// Stream events the reassembler emitted.
    pub events: u64,
    /// Exchanges the HTTP layer emitted.
    pub exchanges: u64,
    /// Most out-of-order bytes the reassembler held at once, as its `tcp.memuse` gauge said
    /// after each segment (the gauge is refreshed by the flow table's periodic sweep).
    pub peak_held: u64,
    /// The reassembler's cap on them (`Limits::memcap`).
    pub memcap: u64,
    /// Most bytes the HTTP tracker held under its budget (`http.memuse_peak`).
    pub http_peak: u64,
    /// The tracker's cap on them (`http1::Limits::memcap`, `--http-memcap`).
    pub http_memcap: u64,
}

impl Work {
    /// Panics when the work is out of proportion to the input.
    pub fn check(&self) {
        assert!(
            self.bytes + self.segments <= EXPANSION * (self.input + 1),
            "{self:?}"
        );
        assert!(
            self.events <= EVENTS_PER_SEGMENT * (self.segments + 1),
            "{self:?}"
        );
        assert!(self.exchanges <= self.bytes + self.segments, "{self:?}");
        assert!(self.peak_held <= self.memcap, "{self:?}");
        assert!(
            self.visits <= VISITS_PER_SEGMENT * (self.segments + 1) + self.bytes + self.missing,
            "{self:?}"
        );
        assert!(self.http_peak <= self.http_memcap, "{self:?}");
    }
}

/// Counts the events on their way to the HTTP layer.
struct Counting<'a, S> {
    inner: &'a mut S,
    events: u64,
}

impl<S: StreamSink> StreamSink for Counting<'_, S> {
    fn event(&mut self, ev: StreamEvent<'_>) {
        self.events += 1;
        self.inner.event(ev);
    }
}

/// The pipeline's front that counts what each push makes the reassembler do.
#[derive(Default)]
struct Measure {
    work: Work,
}

impl Front for Measure {
    fn push<K: StreamSink>(
        &mut self,
        reassembler: &mut Reassembler,
        seg: &Segment<'_>,
        sink: &mut K,
    ) {
        self.work.segments += 1;
        self.work.bytes += seg.payload.len() as u64;
        self.work.missing += u64::from(seg.missing);
        let mut sink = Counting {
            inner: sink,
            events: 0,
        };
        let visited = crate::reassembly::chunks_visited();
        reassembler.push(seg, &mut sink);
        self.work.visits += crate::reassembly::chunks_visited().wrapping_sub(visited);
        self.work.events += sink.events;
        let held = reassembler.counters().memuse;
        self.work.peak_held = self.work.peak_held.max(held);
    }

    fn finish<K: StreamSink>(&mut self, reassembler: &mut Reassembler, sink: &mut K) {
        let mut sink = Counting {
            inner: sink,
            events: 0,
        };
        let visited = crate::reassembly::chunks_visited();
        reassembler.finish(&mut sink);
        self.work.visits += crate::reassembly::chunks_visited().wrapping_sub(visited);
        self.work.events += sink.events;
    }
}

/// The stages after the wire decoder (the pipeline's chain), counting what they do.
type Stages<F> = Chain<Tracker<F>, Measure>;

/// Any bytes through every stage; returns the work done, checked against the input.
pub fn pipeline(data: &[u8]) -> Work {
    let mut limits = Limits::default();
    limits.http1.memcap = HTTP_MEMCAP;
    let mut exchanges = 0u64;
    let measure = Measure {
        work: Work {
            input: data.len() as u64,
            memcap: limits.reassembly.memcap as u64,
            http_memcap: limits.http1.memcap as u64,
            ..Work::default()
        },
    };
    let tracker = Tracker::new(limits.http1.clone(), |_| exchanges += 1);
    let mut stages = Chain::with_front(
        limits.wire.clone(),
        limits.reassembly.clone(),
        tracker,
        measure,
    );
    if data.len() >= 4 && CAPTURE_MAGICS.iter().any(|m| data[..4] == m[..]) {
        from_capture(data, &limits, &mut stages);
    } else {
        Script::new(data).run(&mut stages);
    }
    stages.finish();
    let mut work = stages.front().work;
    work.http_peak = stages.sink().counters().memuse_peak;
    drop(stages);
    work.exchanges = exchanges;
    work.check();
    work
}

fn from_capture<F: FnMut(crate::http1::Exchange)>(
    data: &[u8],
    limits: &Limits,
    stages: &mut Stages<F>,
) {
    let Ok(mut reader) =
        CaptureReader::with_limits(data, "fuzz".to_string(), limits.capture.clone())
    else {
        return;
    };
    pipeline::drive(&mut reader, &mut Filter::none(), stages, |_| true);
}

/// The interpreter of a script: one connection at a time, each direction's next sequence
/// number tracked so data lands where the operation says.
struct Script<'a> {
    rest: &'a [u8],
    client: SocketAddr,
    server: SocketAddr,
    /// Next sequence number per direction (client, server).
    next: [u32; 2],
    ts: i64,
    fed: u64,
}

impl<'a> Script<'a> {
    fn new(data: &'a [u8]) -> Script<'a> {
        Script {
            rest: data,
            client: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 40000)),
            server: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 80)),
            next: [1000, 5000],
            ts: 1_700_000_000_000_000_000,
            fed: 0,
        }
    }

    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.rest.split_first().unwrap_or((&0, &[]));
        self.rest = rest;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = b;
        a
    }

    /// Operations, by the low 3 bits of their first byte; bit 3 is the direction (server to
    /// client when set) where it matters.
    fn run<F: FnMut(crate::http1::Exchange)>(&mut self, stages: &mut Stages<F>) {
        while !self.rest.is_empty() && self.fed < MAX_FED_BYTES {
            let op = self.byte();
            let dir = usize::from(op >> 3 & 1);
            match op & 0x07 {
                0 => self.handshake(stages),
                1 => {
                    let len = usize::from(self.byte());
                    let payload = self.take(len);
                    self.send(stages, dir, TcpFlags::ACK | TcpFlags::PSH, payload);
                }
                2 => {
                    // A hole: bytes skipped, never sent.
                    let skip = u32::from(self.byte()) + 1;
                    self.next[dir] = self.next[dir].wrapping_add(skip);
                }
                3 => self.burst(stages, op, dir),
                4 => self.reconnect(stages),
                5 => self.flows(stages),
                6 => self.ts += i64::from(self.byte()) * 100_000_000,
                _ => {
                    let flags = if op & 0x08 != 0 {
                        TcpFlags::RST
                    } else {
                        TcpFlags::FIN | TcpFlags::ACK
                    };
                    self.send(stages, 0, flags, &[]);
                    self.send(stages, 1, flags, &[]);
                }
            }
        }
    }

    /// One segment from `dir` at its next sequence number.
    fn send<F: FnMut(crate::http1::Exchange)>(
        &mut self,
        stages: &mut Stages<F>,
        dir: usize,
        flags: u8,
        payload: &[u8],
    ) {
        let seq = self.next[dir];
        self.at(stages, dir, seq, flags, payload);
        let advance =
            payload.len() as u32 + u32::from(flags & (TcpFlags::SYN | TcpFlags::FIN) != 0);
        self.next[dir] = seq.wrapping_add(advance);
    }

    /// One segment from `dir` at `seq`.
    fn at<F: FnMut(crate::http1::Exchange)>(
        &mut self,
        stages: &mut Stages<F>,
        dir: usize,
        seq: u32,
        flags: u8,
        payload: &[u8],
    ) {
        let (src, dst) = if dir == 0 {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        self.ts += 1000;
        self.fed += payload.len() as u64 + 1;
        stages.push_segment(&Segment {
            ts: Timestamp::from_nanos(self.ts),
            src,
            dst,
            seq: SeqNumber(seq),
            ack: SeqNumber(self.next[1 - dir]),
            flags: TcpFlags(flags),
            window: 65535,
            payload,
            missing: 0,
        });
    }

    fn handshake<F: FnMut(crate::http1::Exchange)>(&mut self, stages: &mut Stages<F>) {
        self.send(stages, 0, TcpFlags::SYN, &[]);
        self.send(stages, 1, TcpFlags::SYN | TcpFlags::ACK, &[]);
        self.send(stages, 0, TcpFlags::ACK, &[]);
    }

    /// A new connection from the next client port, with its handshake.
    fn reconnect<F: FnMut(crate::http1::Exchange)>(&mut self, stages: &mut Stages<F>) {
        let port = self.client.port().wrapping_add(1).max(1024);
        self.client.set_port(port);
        self.next = [1000u32.wrapping_add(u32::from(port)), 5000];
        self.handshake(stages);
    }

    /// `count` segments of `size` bytes above a one-byte hole, sent in descending order (each
    /// lands below everything held), then the hole filled when bit 7 is set.
    fn burst<F: FnMut(crate::http1::Exchange)>(
        &mut self,
        stages: &mut Stages<F>,
        op: u8,
        dir: usize,
    ) {
        let count = u32::from(self.u16().min(MAX_BURST));
        let size = u32::from(op >> 4 & 0x07) + 1;
        let base = self.next[dir];
        let mut payload = [0u8; 8];
        for i in (0..count).rev() {
            let offset = 1 + i * size;
            for (k, b) in payload.iter_mut().enumerate().take(size as usize) {
                *b = PATTERN[(offset as usize + k) % PATTERN.len()];
            }
            self.at(
                stages,
                dir,
                base.wrapping_add(offset),
                TcpFlags::ACK,
                &payload[..size as usize],
            );
        }
        if op & 0x80 != 0 {
            self.at(stages, dir, base, TcpFlags::ACK, &PATTERN[..1]);
        }
        self.next[dir] = base.wrapping_add(1 + count * size);
    }

    /// `count` connections, each left with an unfinished request head of up to 1 KiB.
    fn flows<F: FnMut(crate::http1::Exchange)>(&mut self, stages: &mut Stages<F>) {
        let count = self.u16().min(MAX_FLOWS);
        let filler = vec![b'x'; usize::from(self.byte()) * 4];
        for _ in 0..count {
            if self.fed >= MAX_FED_BYTES {
                return;
            }
            self.reconnect(stages);
            self.send(stages, 0, TcpFlags::ACK, UNFINISHED_HEAD);
            self.send(stages, 0, TcpFlags::ACK, &filler);
        }
    }
}
