//! Any sequence of TCP segments between two endpoints: the reassembler must emit a well-formed
//! event stream (Open first, Close last, per-direction offsets only growing and exactly covered
//! by Data and Gap, conflicts either wholly delivered or wholly held) and never panic.
#![no_main]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use shadowtap::capture::Timestamp;
use shadowtap::reassembly::{EventKind, FlowId, Limits, Reassembler, StreamEvent, StreamSink};
use shadowtap::wire::{Segment, SeqNumber, TcpFlags};

/// Bytes of input consumed per segment header: dir, flags, seq(4), ack(4), len(2), dt(1).
const HEADER: usize = 13;

#[derive(Default)]
struct Checker {
    /// Next expected offset per flow and direction.
    next: HashMap<(FlowId, usize), u64>,
    open: HashMap<FlowId, bool>,
}

impl StreamSink for Checker {
    fn event(&mut self, ev: StreamEvent<'_>) {
        match ev.kind {
            EventKind::Open { .. } => {
                assert!(self.open.insert(ev.flow, true).is_none(), "flow opened twice");
            }
            EventKind::Data { dir, offset, data, .. } => {
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
                assert!(end <= next || offset >= next, "conflict across the delivered point");
            }
            EventKind::End { .. } => {}
            EventKind::Close { .. } => {
                assert!(self.open.remove(&ev.flow).is_some(), "close without open");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let client = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 40000));
    let server = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 80));
    let limits = Limits::default();
    let mut reassembler = Reassembler::new(limits);
    let mut sink = Checker::default();
    let mut ts = 1_700_000_000_000_000_000i64;
    let mut rest = data;
    while rest.len() >= HEADER {
        let (h, tail) = rest.split_at(HEADER);
        let len = usize::from(u16::from_le_bytes([h[10], h[11]]) & 0x0fff).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        ts += i64::from(h[12]) * 50_000_000;
        let (src, dst) = if h[0] & 1 == 0 { (client, server) } else { (server, client) };
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
});
