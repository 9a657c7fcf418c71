//! The bodies of the fuzz targets (`fuzz/fuzz_targets/*`), kept in the library so that plain
//! `cargo test` replays the committed corpus (`fuzz/corpus/<target>/`, `tests/fuzz_corpus.rs`)
//! through exactly what the fuzzer runs. Each function takes any bytes and panics only on a
//! broken invariant. Not an API: hidden from the docs and free to change.

mod pipeline;
mod response;

pub use pipeline::{pipeline, Work, EXPANSION};
pub use response::replay_response;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use crate::capture::{CaptureReader, Frame, LinkType, Timestamp};
use crate::http1::Tracker;
use crate::reassembly::{CloseReason, Direction, EventKind, FlowId, StreamEvent, StreamSink};
use crate::reassembly::{Limits as ReassemblyLimits, Reassembler};
use crate::wire::{Decoder, Segment, SeqNumber, TcpFlags};

/// The names of the targets, as `fuzz/Cargo.toml` and the corpus directories spell them.
pub const TARGETS: &[&str] = &[
    "capture_file",
    "wire_decode",
    "reassembly",
    "http1",
    "pipeline",
    "saved_report",
    "replay_response",
];

/// Runs the target called `name` on `data`; `None` for an unknown name.
pub fn run(name: &str, data: &[u8]) -> Option<()> {
    match name {
        "capture_file" => capture_file(data),
        "wire_decode" => wire_decode(data),
        "reassembly" => reassembly(data),
        "http1" => http1(data),
        "pipeline" => {
            pipeline(data);
        }
        "saved_report" => saved_report(data),
        "replay_response" => replay_response(data),
        _ => return None,
    }
    Some(())
}

/// Any bytes as a capture file: the reader must end (error, truncated tail or clean end)
/// without panicking or allocating past its caps.
pub fn capture_file(data: &[u8]) {
    let limits = crate::capture::Limits::default();
    let Ok(mut reader) = CaptureReader::with_limits(data, "fuzz".to_string(), limits) else {
        return;
    };
    let mut frames = 0usize;
    while let Ok(Some(frame)) = reader.next_frame() {
        assert!(frame.data.len() <= data.len());
        frames += 1;
        assert!(frames <= data.len());
    }
}

/// Link types tried by [`wire_decode`], chosen by the input's first byte.
pub const LINKS: [LinkType; 10] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::RAW_BSD12,
    LinkType::RAW_BSD14,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::LINUX_SLL2,
];

/// Any bytes as a frame of any supported link type: decoding must return a segment whose
/// payload lies inside the frame (or the defragmenter's buffer), or count the frame and skip it.
pub fn wire_decode(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut decoder = Decoder::new(crate::wire::Limits::default());
    // The same bytes several times at advancing timestamps, so fragment tables and their
    // timeouts are exercised, not only single-frame decoding.
    for i in 0..4i64 {
        let frame = Frame {
            ts: Timestamp::from_nanos(i * 20_000_000_000),
            link: LINKS[usize::from(selector) % LINKS.len()],
            data: rest,
            orig_len: rest.len() as u32 + u32::from(selector & 0x0f),
        };
        if let Some(seg) = decoder.decode(&frame) {
            assert!(seg.payload.len() <= 65_535 * 2);
        }
    }
}

fn endpoints() -> (SocketAddr, SocketAddr) {
    (
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 40000)),
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 80)),
    )
}

/// Checks that an event stream is well formed: Open first, Close last, per-direction offsets
/// only growing and exactly covered by Data and Gap.
#[derive(Default)]
struct Checker {
    next: HashMap<(FlowId, usize), u64>,
    open: HashMap<FlowId, bool>,
}

impl StreamSink for Checker {
    fn event(&mut self, ev: StreamEvent<'_>) {
        match ev.kind {
            EventKind::Open { .. } => {
                assert!(
                    self.open.insert(ev.flow, true).is_none(),
                    "flow opened twice"
                );
            }
            EventKind::Data {
                dir, offset, data, ..
            } => {
                assert!(self.open.contains_key(&ev.flow), "data before open");
                let next = self.next.entry((ev.flow, dir.index())).or_insert(offset);
                assert_eq!(*next, offset, "data offset not contiguous");
                *next += data.len() as u64;
            }
            EventKind::Gap { dir, offset, len } => {
                let next = self.next.entry((ev.flow, dir.index())).or_insert(offset);
                assert_eq!(*next, offset, "gap offset not contiguous");
                *next += len;
            }
            EventKind::Conflict { dir, offset, len } => {
                // Bytes already delivered, or held above the delivered point: never a range
                // across it, never empty.
                assert!(len > 0, "empty conflict");
                let next = self.next.get(&(ev.flow, dir.index())).copied().unwrap_or(0);
                let end = offset.checked_add(len).expect("conflict range overflows");
                assert!(
                    end <= next || offset >= next,
                    "conflict across the delivered point"
                );
            }
            EventKind::End { .. } => {}
            EventKind::Close { .. } => {
                assert!(self.open.remove(&ev.flow).is_some(), "close without open");
            }
        }
    }
}

/// Bytes of input per segment in [`reassembly`]: dir, flags, seq(4), ack(4), len(2), dt(1).
const SEGMENT_HEADER: usize = 13;

/// Any sequence of TCP segments between two endpoints: the reassembler must emit a
/// well-formed event stream and never panic.
pub fn reassembly(data: &[u8]) {
    let (client, server) = endpoints();
    let mut reassembler = Reassembler::new(ReassemblyLimits::default());
    let mut sink = Checker::default();
    let mut ts = 1_700_000_000_000_000_000i64;
    let mut rest = data;
    while rest.len() >= SEGMENT_HEADER {
        let (h, tail) = rest.split_at(SEGMENT_HEADER);
        let len = usize::from(u16::from_le_bytes([h[10], h[11]]) & 0x0fff).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        ts += i64::from(h[12]) * 50_000_000;
        let (src, dst) = if h[0] & 1 == 0 {
            (client, server)
        } else {
            (server, client)
        };
        let seg = Segment {
            ts: Timestamp::from_nanos(ts),
            src,
            dst,
            seq: SeqNumber(u32::from_le_bytes([h[2], h[3], h[4], h[5]])),
            ack: SeqNumber(u32::from_le_bytes([h[6], h[7], h[8], h[9]])),
            flags: TcpFlags(h[1] & 0x3f),
            window: 65535,
            payload,
            missing: u32::from(h[0] >> 4) * 100,
        };
        reassembler.push(&seg, &mut sink);
    }
    reassembler.finish(&mut sink);
    assert!(sink.open.is_empty(), "flow left open after finish");
}

/// Any bytes on both directions of a connection, cut at arbitrary points: the tracker must
/// emit exchanges without panicking, and at most one per byte of input.
pub fn http1(data: &[u8]) {
    let (client, server) = endpoints();
    let flow = FlowId(1);
    let mut emitted = 0u64;
    {
        let mut tracker = Tracker::new(crate::http1::Limits::default(), |_| emitted += 1);
        let mut ts = 0i64;
        let mut ev = |kind| {
            ts += 1000;
            StreamEvent {
                flow,
                ts: Timestamp::from_nanos(ts),
                kind,
            }
        };
        tracker.event(ev(EventKind::Open {
            client,
            server,
            midstream: false,
        }));
        let mut offsets = [0u64; 2];
        // Each chunk: one control byte (direction, gap or not, length) then that many bytes.
        let mut rest = data;
        while let Some((&ctl, tail)) = rest.split_first() {
            let dir = if ctl & 1 == 0 {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            };
            let len = usize::from(ctl >> 2).min(tail.len());
            let (chunk, tail) = tail.split_at(len);
            rest = tail;
            let offset = offsets[dir.index()];
            if ctl & 2 != 0 {
                let len = len as u64 + 1;
                tracker.event(ev(EventKind::Gap { dir, offset, len }));
                offsets[dir.index()] += len;
            } else {
                let ack = Some(offsets[dir.reverse().index()]);
                tracker.event(ev(EventKind::Data {
                    dir,
                    offset,
                    data: chunk,
                    ack,
                }));
                offsets[dir.index()] += len as u64;
            }
        }
        tracker.event(ev(EventKind::Close {
            reason: CloseReason::CaptureEnded,
        }));
    }
    assert!(emitted as usize <= data.len());
}

/// Any bytes as a saved report (`shadowtap report`), and as one base64 histogram: reading
/// must refuse or succeed without panicking, inflate and allocate within the bounds of
/// [`crate::report::saved`], and what it reads must render.
pub fn saved_report(data: &[u8]) {
    use crate::report::saved;
    if let Ok(text) = std::str::from_utf8(data) {
        let mut work = saved::Work::default();
        let _ = saved::histogram_counting(text.trim(), &mut work);
        assert!(work.inflated <= saved::MAX_INFLATED + 1, "{work:?}");
        assert!(work.counts <= saved::MAX_COUNTS, "{work:?}");
    }
    use crate::report::replay as render;
    let Ok(report) = render::parse(data) else {
        return;
    };
    if let Ok(stats) = render::stats(&report) {
        let mut merged = crate::replay::stats::Stats::default();
        merged.merge(&stats);
        merged.merge(&stats);
        let merged = render::report(&merged);
        let _ = render::to_json(&merged);
        let _ = render::text(&merged, "fuzz");
    }
}
