//! The property the whole chain must have: however a conversation's segments are cut,
//! reordered, duplicated or placed in sequence space (across 2^32), the exchanges found are
//! the same.

use std::net::SocketAddr;

use proptest::prelude::*;
use shadowtap::capture::Timestamp;
use shadowtap::http1::{Exchange, Limits as HttpLimits, Tracker};
use shadowtap::reassembly::{Limits, Reassembler};
use shadowtap::wire::{Segment, SeqNumber, TcpFlags};

const REQUESTS: &[u8] = b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n\
POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world\
PUT /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
const RESPONSES: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst\
HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n\
HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

/// Cuts `data` at `cuts`, then duplicates and swaps pieces: (offset, bytes) segments.
fn segments(
    data: &[u8],
    cuts: &[usize],
    swaps: &[(usize, usize)],
    dups: &[usize],
) -> Vec<(u32, Vec<u8>)> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % data.len()).collect();
    points.extend([0, data.len()]);
    points.sort_unstable();
    points.dedup();
    let mut segs: Vec<(u32, Vec<u8>)> = points
        .windows(2)
        .map(|w| (w[0] as u32, data[w[0]..w[1]].to_vec()))
        .collect();
    for &d in dups {
        let s = segs[d % segs.len()].clone();
        segs.push(s);
    }
    let n = segs.len();
    for &(a, b) in swaps {
        segs.swap(a % n, b % n);
    }
    segs
}

fn run(client: &[(u32, Vec<u8>)], server: &[(u32, Vec<u8>)], cisn: u32, sisn: u32) -> Vec<String> {
    let c: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let s: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let mut found: Vec<Exchange> = Vec::new();
    {
        // Up to 30 cuts shuffled can open more holes than the default cap of 8, past which
        // the oldest hole is declared a gap on purpose (T20); the property holds within it.
        let limits = Limits {
            max_holes: 64,
            ..Limits::default()
        };
        let mut reassembler = Reassembler::new(limits);
        let mut tracker = Tracker::new(HttpLimits::default(), |e| found.push(e));
        let mut ts = 1_000_000_000i64;
        let mut push = |src,
                        dst,
                        seq: u32,
                        ack: u32,
                        flags: u8,
                        payload: &[u8],
                        r: &mut Reassembler,
                        t: &mut Tracker<_>| {
            ts += 1000;
            let seg = Segment {
                ts: Timestamp(ts),
                src,
                dst,
                seq: SeqNumber(seq),
                ack: SeqNumber(ack),
                flags: TcpFlags(flags),
                window: 65535,
                payload,
                missing: 0,
            };
            r.push(&seg, t);
        };
        let (syn, ack, psh, fin) = (TcpFlags::SYN, TcpFlags::ACK, TcpFlags::PSH, TcpFlags::FIN);
        let (r, t) = (&mut reassembler, &mut tracker);
        push(c, s, cisn, 0, syn, b"", r, t);
        push(s, c, sisn, cisn.wrapping_add(1), syn | ack, b"", r, t);
        push(
            c,
            s,
            cisn.wrapping_add(1),
            sisn.wrapping_add(1),
            ack,
            b"",
            r,
            t,
        );
        for (off, bytes) in client {
            push(
                c,
                s,
                cisn.wrapping_add(1).wrapping_add(*off),
                sisn.wrapping_add(1),
                ack | psh,
                bytes,
                r,
                t,
            );
        }
        let client_end = cisn.wrapping_add(1).wrapping_add(REQUESTS.len() as u32);
        for (off, bytes) in server {
            push(
                s,
                c,
                sisn.wrapping_add(1).wrapping_add(*off),
                client_end,
                ack | psh,
                bytes,
                r,
                t,
            );
        }
        let server_end = sisn.wrapping_add(1).wrapping_add(RESPONSES.len() as u32);
        push(c, s, client_end, server_end, fin | ack, b"", r, t);
        push(
            s,
            c,
            server_end,
            client_end.wrapping_add(1),
            fin | ack,
            b"",
            r,
            t,
        );
        reassembler.finish(&mut tracker);
    }
    found
        .iter()
        .map(|e| {
            format!(
                "{} {} {:?} {} {:?} {:?}",
                e.request.method,
                String::from_utf8_lossy(&e.request.target),
                e.response.as_ref().map(|r| r.status),
                e.request.body_len,
                e.response.as_ref().map(|r| (r.body_len, r.complete)),
                e.flags.names().collect::<Vec<_>>()
            )
        })
        .collect()
}

#[test]
fn the_unsplit_conversation_gives_three_clean_exchanges() {
    let found = run(
        &[(0, REQUESTS.to_vec())],
        &[(0, RESPONSES.to_vec())],
        1000,
        5000,
    );
    assert_eq!(
        found,
        [
            "GET /one Some(200) 0 Some((5, true)) []",
            "POST /two Some(201) 11 Some((4, true)) [\"pipelined\"]",
            "PUT /three Some(404) 3 Some((0, true)) [\"pipelined\"]",
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn segmentation_order_duplication_and_isn_never_change_the_exchanges(
        ccuts in prop::collection::vec(any::<usize>(), 0..30),
        scuts in prop::collection::vec(any::<usize>(), 0..30),
        cswaps in prop::collection::vec((any::<usize>(), any::<usize>()), 0..10),
        sswaps in prop::collection::vec((any::<usize>(), any::<usize>()), 0..10),
        dups in prop::collection::vec(any::<usize>(), 0..4),
        cisn in prop_oneof![any::<u32>(), Just(u32::MAX), Just(u32::MAX - 20), Just(0u32)],
        sisn in prop_oneof![any::<u32>(), Just(u32::MAX - 100)],
    ) {
        let expected = run(&[(0, REQUESTS.to_vec())], &[(0, RESPONSES.to_vec())], 1000, 5000);
        let client = segments(REQUESTS, &ccuts, &cswaps, &dups);
        let server = segments(RESPONSES, &scuts, &sswaps, &dups);
        prop_assert_eq!(run(&client, &server, cisn, sisn), expected);
    }
}
