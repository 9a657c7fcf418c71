//! Any bytes on both directions of a connection, cut at arbitrary points: the tracker must emit
//! exchanges without panicking, and at most one per
//! byte of input (no request is emitted twice).
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use shadowtap::capture::Timestamp;
use shadowtap::http1::{Limits, Tracker};
use shadowtap::reassembly::{CloseReason, Direction, EventKind, FlowId, StreamEvent, StreamSink};

fuzz_target!(|data: &[u8]| {
    let client = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 40000));
    let server = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 80));
    let flow = FlowId(1);
    let mut emitted = 0u64;
    {
        let mut tracker = Tracker::new(Limits::default(), |_| emitted += 1);
        let mut ts = 0i64;
        let mut ev = |kind| {
            ts += 1000;
            StreamEvent { flow, ts: Timestamp::from_nanos(ts), kind }
        };
        tracker.event(ev(EventKind::Open { client, server, midstream: false }));
        let mut offsets = [0u64; 2];
        // Each chunk: one control byte (direction, gap or not, length) then that many bytes.
        let mut rest = data;
        while let Some((&ctl, tail)) = rest.split_first() {
            let dir = if ctl & 1 == 0 { Direction::ClientToServer } else { Direction::ServerToClient };
            let len = usize::from(ctl >> 2).min(tail.len());
            let (chunk, tail) = tail.split_at(len);
            rest = tail;
            let offset = offsets[dir.index()];
            if ctl & 2 != 0 {
                tracker.event(ev(EventKind::Gap { dir, offset, len: len as u64 + 1 }));
                offsets[dir.index()] += len as u64 + 1;
            } else {
                let ack = Some(offsets[dir.reverse().index()]);
                tracker.event(ev(EventKind::Data { dir, offset, data: chunk, ack }));
                offsets[dir.index()] += len as u64;
            }
        }
        tracker.event(ev(EventKind::Close { reason: CloseReason::CaptureEnded }));
    }
    assert!(emitted as usize <= data.len());
});
