//! Reassembly tests, named for RELIABILITY.md cases T01-T21 and L01-L04.

use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;
use crate::wire::{Segment, SeqNumber, TcpFlags};

const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const FIN: u8 = TcpFlags::FIN;
const RST: u8 = TcpFlags::RST;
const PSH: u8 = TcpFlags::PSH;

/// Records every event; per direction, the stream with each gap written as `~` bytes.
#[derive(Default)]
struct Rec {
    events: Vec<String>,
    streams: Vec<[Vec<u8>; 2]>,
    /// Per flow and direction, the next offset (gaps of any size included).
    next: Vec<[u64; 2]>,
    acks: Vec<(u64, Option<u64>)>,
}

impl StreamSink for Rec {
    fn event(&mut self, ev: StreamEvent<'_>) {
        let f = ev.flow.0 as usize;
        while self.streams.len() < f {
            self.streams.push([Vec::new(), Vec::new()]);
            self.next.push([0, 0]);
        }
        let s = &mut self.streams[f - 1];
        let next = &mut self.next[f - 1];
        let text = match ev.kind {
            EventKind::Open {
                client,
                server,
                midstream,
            } => format!("open {client} {server} {midstream}"),
            EventKind::Data {
                dir,
                offset,
                data,
                ack,
            } => {
                assert_eq!(offset, next[dir.index()], "offsets must be contiguous");
                next[dir.index()] += data.len() as u64;
                s[dir.index()].extend_from_slice(data);
                if dir == Direction::ClientToServer {
                    self.acks.push((offset, ack));
                }
                format!("data {} {offset} {}", dir.index(), data.len())
            }
            EventKind::Gap { dir, offset, len } => {
                assert_eq!(offset, next[dir.index()], "gap offsets must be contiguous");
                next[dir.index()] += len;
                // Large gaps (garbage sequence numbers) are checked by offset only.
                if len < 4096 {
                    s[dir.index()].extend(std::iter::repeat_n(b'~', len as usize));
                }
                format!("gap {} {offset} {len}", dir.index())
            }
            EventKind::End { dir, reason } => format!("end {} {reason:?}", dir.index()),
            EventKind::Conflict { dir, offset, len } => {
                let at = next[dir.index()];
                assert!(len > 0, "empty conflict");
                assert!(
                    offset + len <= at || offset >= at,
                    "a conflict is delivered bytes or held ones, never both"
                );
                format!("conflict {} {offset} {len}", dir.index())
            }
            EventKind::Close { reason } => format!("close {reason:?}"),
        };
        self.events.push(format!("{} {text}", ev.flow.0));
    }
}

impl Rec {
    fn stream(&self, flow: usize, dir: usize) -> String {
        String::from_utf8_lossy(&self.streams[flow - 1][dir]).into_owned()
    }
    fn has(&self, needle: &str) -> bool {
        self.events.iter().any(|e| e.contains(needle))
    }
}

fn client() -> SocketAddr {
    "10.0.0.1:40000".parse().unwrap()
}
fn server() -> SocketAddr {
    "10.0.0.2:80".parse().unwrap()
}

/// A conversation builder: sequence numbers relative to each side's ISN.
struct Conv {
    r: Reassembler,
    rec: Rec,
    cisn: u32,
    sisn: u32,
    ts: i64,
}

impl Conv {
    fn new(limits: Limits, cisn: u32, sisn: u32) -> Conv {
        Conv {
            r: Reassembler::new(limits),
            rec: Rec::default(),
            cisn,
            sisn,
            ts: 1_000_000_000,
        }
    }
    fn default() -> Conv {
        Conv::new(Limits::default(), 1000, 5000)
    }
    /// A segment from the client (`from_client`) at relative seq `rel` (1 = first data byte).
    fn seg(
        &mut self,
        from_client: bool,
        flags: u8,
        rel: u32,
        ack_rel: u32,
        payload: &[u8],
        missing: u32,
    ) -> &mut Self {
        let (src, dst, isn, peer) = if from_client {
            (client(), server(), self.cisn, self.sisn)
        } else {
            (server(), client(), self.sisn, self.cisn)
        };
        let seg = Segment {
            ts: crate::capture::Timestamp(self.ts),
            src,
            dst,
            seq: SeqNumber(isn.wrapping_add(rel)),
            ack: SeqNumber(peer.wrapping_add(ack_rel)),
            flags: TcpFlags(flags),
            window: 65535,
            payload,
            missing,
        };
        self.ts += 1000;
        self.r.push(&seg, &mut self.rec);
        self
    }
    fn c(&mut self, rel: u32, data: &[u8]) -> &mut Self {
        self.seg(true, ACK | PSH, rel, 1, data, 0)
    }
    fn s(&mut self, rel: u32, data: &[u8]) -> &mut Self {
        self.seg(false, ACK | PSH, rel, 1, data, 0)
    }
    fn handshake(&mut self) -> &mut Self {
        self.seg(true, SYN, 0, 0, b"", 0)
            .seg(false, SYN | ACK, 0, 1, b"", 0)
            .seg(true, ACK, 1, 1, b"", 0)
    }
    fn finish(&mut self) -> &mut Self {
        self.r.finish(&mut self.rec);
        self
    }
}

#[test]
fn t01_out_of_order_segments_are_delivered_in_order() {
    let mut t = Conv::default();
    t.handshake().c(6, b"world").c(1, b"hello").finish();
    assert_eq!(t.rec.stream(1, 0), "helloworld");
    assert_eq!(t.r.counters().ooo_segments, 1);
    assert!(!t.rec.has("gap"));
}

#[test]
fn t02_exact_retransmission_is_delivered_once() {
    let mut t = Conv::default();
    t.handshake()
        .c(1, b"hello")
        .c(1, b"hello")
        .c(6, b"!")
        .finish();
    assert_eq!(t.rec.stream(1, 0), "hello!");
    assert_eq!(t.r.counters().retransmissions, 1);
}

#[test]
fn t03_repacketised_retransmission_delivers_only_the_new_tail() {
    let mut t = Conv::default();
    t.handshake().c(1, b"hel").c(1, b"hello").finish();
    assert_eq!(t.rec.stream(1, 0), "hello");
    assert_eq!(t.r.counters().overlap_bytes, 3);
}

#[test]
fn t04_overlap_with_different_bytes_first_copy_wins() {
    let mut t = Conv::default();
    t.handshake()
        .c(4, b"XYZ")
        .c(4, b"lo!")
        .c(1, b"hel")
        .finish();
    assert_eq!(t.rec.stream(1, 0), "helXYZ");
    assert_eq!(t.r.counters().overlap_conflict, 1);
}

#[test]
fn t05_keepalive_is_neither_data_nor_retransmission() {
    let mut t = Conv::default();
    t.handshake()
        .c(1, b"abc")
        .c(3, b"c")
        .seg(true, ACK, 3, 1, b"", 0)
        .finish();
    assert_eq!(t.rec.stream(1, 0), "abc");
    assert_eq!(t.r.counters().keepalives, 1);
    assert_eq!(t.r.counters().retransmissions, 0);
}

#[test]
fn t06_isn_near_2_pow_32_wraps_cleanly() {
    for isn in [0u32, 1, u32::MAX, u32::MAX - 9] {
        let mut t = Conv::new(Limits::default(), isn, isn.wrapping_sub(3));
        t.handshake()
            .c(1, b"0123456789")
            .c(16, b"fghij")
            .c(11, b"abcde")
            .s(1, b"ok")
            .finish();
        assert_eq!(t.rec.stream(1, 0), "0123456789abcdefghij", "isn {isn}");
        assert_eq!(t.rec.stream(1, 1), "ok");
    }
}

#[test]
fn t07_gap_declared_when_peer_acks_unseen_data() {
    let mut t = Conv::default();
    t.handshake().c(1, b"req1").s(1, b"0123456789");
    // Bytes 11..21 of the server stream are lost; the client ACKs them, then more data comes.
    t.seg(true, ACK, 5, 31, b"", 0)
        .s(21, b"KLMNOPQRST")
        .finish();
    assert_eq!(t.rec.stream(1, 1), "0123456789~~~~~~~~~~KLMNOPQRST");
    assert!(t.rec.has("gap 1 10 10"));
    assert_eq!(t.r.counters().missed_bytes, 10);
    assert_eq!(t.r.counters().gap_acked, 1);
}

#[test]
fn t07_data_after_an_acked_hole_is_a_gap_at_once() {
    let mut t = Conv::default();
    t.handshake()
        .s(1, b"01234")
        .seg(true, ACK, 1, 11, b"", 0)
        .s(11, b"abc");
    // No flush yet: the gap and the data must already be out.
    assert!(t.rec.has("gap 1 5 5"));
    assert_eq!(t.rec.stream(1, 1), "01234~~~~~abc");
}

#[test]
fn t08_hole_without_any_ack_is_declared_past_the_cap() {
    let limits = Limits {
        above_hole_without_acks: 100,
        ..Limits::default()
    };
    let mut t = Conv::new(limits, 1000, 5000);
    // One-sided capture: only client data, no ACK flags.
    t.seg(true, PSH, 1, 0, b"start", 0);
    for i in 0..3u32 {
        t.seg(true, PSH, 100 + i * 60, 0, &[b'x'; 60], 0);
    }
    assert!(t.rec.has("gap 0 5 94"));
    assert_eq!(t.r.counters().gap_no_ack, 1);
}

#[test]
fn t09_rst_delivers_contiguous_bytes_without_a_gap() {
    let mut t = Conv::default();
    t.handshake()
        .c(1, b"GET")
        .s(1, b"HTTP")
        .s(10, b"later")
        .seg(false, RST | ACK, 15, 4, b"", 0);
    assert_eq!(t.rec.stream(1, 1), "HTTP");
    assert!(!t.rec.has("gap"));
    assert!(t.rec.has("end 1 Rst") && t.rec.has("end 0 Rst") && t.rec.has("close Rst"));
    assert_eq!(t.r.counters().rst_discarded_bytes, 5);
}

#[test]
fn t10_rst_far_out_of_window_is_ignored() {
    let mut t = Conv::default();
    t.handshake()
        .c(1, b"GET")
        .seg(false, RST, 1 << 30, 0, b"", 0)
        .s(1, b"HTTP")
        .finish();
    assert_eq!(t.r.counters().rst_invalid, 1);
    assert_eq!(t.rec.stream(1, 1), "HTTP");
    assert!(t.rec.has("close CaptureEnded"));
}

#[test]
fn t11_half_close_keeps_the_other_direction() {
    let mut t = Conv::default();
    t.handshake()
        .c(1, b"GET")
        .seg(true, FIN | ACK, 4, 1, b"", 0)
        .s(1, b"body")
        .s(5, b"more");
    assert!(t.rec.has("end 0 Fin"));
    assert_eq!(t.rec.stream(1, 1), "bodymore");
    t.seg(false, FIN | ACK, 9, 5, b"", 0);
    assert!(t.rec.has("end 1 Fin") && t.rec.has("close Fin"));
    assert_eq!(t.r.counters().half_closed, 1);
}

#[test]
fn t12_fin_retransmitted_and_data_after_close_give_one_end() {
    let mut t = Conv::default();
    t.handshake()
        .c(1, b"x")
        .seg(true, FIN | ACK, 2, 1, b"", 0)
        .seg(true, FIN | ACK, 2, 1, b"", 0);
    t.seg(false, FIN | ACK, 1, 3, b"", 0).s(1, b"late").finish();
    assert_eq!(
        t.rec.events.iter().filter(|e| e.contains("end 0")).count(),
        1
    );
    assert_eq!(
        t.rec.events.iter().filter(|e| e.contains("close")).count(),
        1
    );
    assert_eq!(t.r.counters().data_after_close, 1);
}

#[test]
fn t13_midstream_pickup_starts_at_the_first_byte_seen() {
    let mut t = Conv::default();
    t.c(500, b"GET / HTTP/1.1\r\n\r\n")
        .s(900, b"HTTP/1.1 200 OK\r\n")
        .finish();
    assert!(t.rec.has("open 10.0.0.1:40000 10.0.0.2:80 true"));
    assert!(t.rec.has("data 0 0 18"));
    assert_eq!(t.r.counters().midstream_pickups, 1);
}

#[test]
fn t14_syn_ack_first_gives_the_roles() {
    let mut t = Conv::default();
    t.seg(false, SYN | ACK, 0, 1, b"", 0).c(1, b"GET").finish();
    assert!(t.rec.has("open 10.0.0.1:40000 10.0.0.2:80 false"));
    assert_eq!(t.rec.stream(1, 0), "GET");
}

#[test]
fn t14_server_data_first_roles_guessed_from_ports() {
    let mut t = Conv::default();
    t.s(1, b"HTTP/1.1 200 OK\r\n").finish();
    assert!(t.rec.has("open 10.0.0.1:40000 10.0.0.2:80 true"));
}

#[test]
fn t15_syn_with_data_is_delivered_at_isn_plus_one() {
    let mut t = Conv::default();
    t.seg(true, SYN, 0, 0, b"GET", 0)
        .seg(false, SYN | ACK, 0, 4, b"", 0)
        .c(4, b" /")
        .finish();
    assert_eq!(t.rec.stream(1, 0), "GET /");
    assert_eq!(t.r.counters().syn_data, 1);
}

#[test]
fn t16_new_syn_reusing_the_tuple_starts_a_new_flow() {
    let mut t = Conv::default();
    t.handshake().c(1, b"first");
    t.cisn = 777_777;
    t.handshake().c(1, b"second").finish();
    assert!(t.rec.has("1 close Reused"));
    assert_eq!(t.rec.stream(2, 0), "second");
    assert_eq!(t.r.counters().tcp_reuse, 1);
}

#[test]
fn t17_syn_retransmitted_with_another_isn_is_tolerated() {
    let mut t = Conv::default();
    t.seg(true, SYN, 0, 0, b"", 0);
    t.cisn = 99;
    t.handshake().c(1, b"data").finish();
    assert_eq!(t.rec.stream(1, 0), "data");
    assert_eq!(t.r.counters().handshake_anomaly, 1);
    assert_eq!(t.r.counters().sessions, 1);
}

#[test]
fn t19_segment_far_outside_the_window_is_not_buffered() {
    let mut t = Conv::default();
    t.handshake()
        .c(1, b"ok")
        .c((1 << 30) + 100, b"junk")
        .finish();
    assert_eq!(t.r.counters().out_of_window, 1);
    assert_eq!(t.rec.stream(1, 0), "ok");
}

#[test]
fn t20_too_many_holes_skip_the_oldest_as_a_gap() {
    let limits = Limits {
        max_holes: 2,
        ..Limits::default()
    };
    let mut t = Conv::new(limits, 1000, 5000);
    t.handshake().c(1, b"a").c(3, b"c").c(5, b"e").c(7, b"g");
    assert!(t.rec.has("gap 0 1 1"));
    assert_eq!(t.r.counters().too_many_holes, 1);
    t.finish();
    assert_eq!(t.rec.stream(1, 0), "a~c~e~g");
}

#[test]
fn t21_idle_flow_times_out() {
    let mut t = Conv::default();
    t.handshake().c(1, b"GET");
    let later = t.ts + Limits::default().timeout_established_ns + 2_000_000_000;
    // Another connection's packet moves the clock.
    let other = Segment {
        ts: crate::capture::Timestamp(later),
        src: "10.0.0.9:1".parse().unwrap(),
        dst: server(),
        seq: SeqNumber(1),
        ack: SeqNumber(0),
        flags: TcpFlags(SYN),
        window: 0,
        payload: b"",
        missing: 0,
    };
    t.r.push(&other, &mut t.rec);
    assert!(t.rec.has("1 close Timeout"));
    assert_eq!(t.r.counters().timeouts, 1);
}

#[test]
fn c02_snaplen_missing_bytes_are_a_gap_never_data() {
    let mut t = Conv::default();
    t.handshake()
        .seg(false, ACK, 1, 1, b"HTTP/1.1", 20)
        .s(29, b"next")
        .finish();
    assert_eq!(t.rec.stream(1, 1), "HTTP/1.1~~~~~~~~~~~~~~~~~~~~next");
    assert_eq!(t.r.counters().gap_snaplen, 1);
}

#[test]
fn data_events_carry_the_ack_as_an_offset_of_the_other_stream() {
    let mut t = Conv::default();
    t.handshake()
        .s(1, b"hello")
        .seg(true, ACK | PSH, 1, 6, b"GET", 0)
        .finish();
    assert_eq!(t.rec.acks, vec![(0, Some(5))]);
}

#[test]
fn l01_window_cap_declares_the_hole_a_gap() {
    let limits = Limits {
        window: 1000,
        ..Limits::default()
    };
    let mut t = Conv::new(limits, 1000, 5000);
    t.handshake().seg(false, ACK, 0, 1, b"", 0);
    for i in 0..3u32 {
        t.c(100 + i * 500, &[b'x'; 500]);
    }
    assert!(t.r.counters().flow_cap_hits >= 1);
    assert!(t.rec.has("gap 0 0 99"));
}

#[test]
fn l02_memcap_refuses_out_of_order_data_but_in_order_flows() {
    let limits = Limits {
        memcap: 200,
        ..Limits::default()
    };
    let mut t = Conv::new(limits, 1000, 5000);
    t.handshake()
        .c(50, &[b'x'; 100])
        .c(300, &[b'y'; 100])
        .c(1, b"in order")
        .finish();
    assert_eq!(t.r.counters().segment_memcap_drop, 1);
    assert!(t.rec.stream(1, 0).starts_with("in order"));
}

#[test]
fn l03_full_table_evicts_the_least_recently_seen() {
    let limits = Limits {
        max_flows: 16,
        ..Limits::default()
    };
    let mut r = Reassembler::new(limits);
    let mut rec = Rec::default();
    for i in 0..20u16 {
        let seg = Segment {
            ts: crate::capture::Timestamp(i64::from(i) * 1000),
            src: SocketAddr::new("10.0.0.1".parse().unwrap(), 10_000 + i),
            dst: server(),
            seq: SeqNumber(1),
            ack: SeqNumber(0),
            flags: TcpFlags(ACK),
            window: 0,
            payload: b"x",
            missing: 0,
        };
        r.push(&seg, &mut rec);
    }
    assert_eq!(r.counters().evicted, 4);
    assert!(rec.has("1 close Evicted"));
    assert!(r.counters().active <= 16);
}

#[test]
fn memory_is_returned_when_flows_close() {
    let mut t = Conv::default();
    t.handshake().c(10, b"later").seg(true, RST, 1, 0, b"", 0);
    assert_eq!(t.r.mem, 0);
}

/// Segments of one direction of a 2-byte-per-chunk stream, after the handshake.
fn shuffled_stream(
    data: &[u8],
    cuts: &[usize],
    order: &[usize],
    dups: &[usize],
) -> Vec<(u32, Vec<u8>)> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.dedup();
    let mut segs: Vec<(u32, Vec<u8>)> = points
        .windows(2)
        .map(|w| (1 + w[0] as u32, data[w[0]..w[1]].to_vec()))
        .collect();
    for &d in dups {
        if !segs.is_empty() {
            let s = segs[d % segs.len()].clone();
            segs.push(s);
        }
    }
    for (i, &o) in order.iter().enumerate() {
        if !segs.is_empty() {
            let n = segs.len();
            segs.swap(i % n, o % n);
        }
    }
    segs
}

proptest! {
    #[test]
    fn t06_splitting_reordering_duplicating_and_shifting_never_change_the_stream(
        data in prop::collection::vec(any::<u8>(), 1..400),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        order in prop::collection::vec(any::<usize>(), 0..20),
        dups in prop::collection::vec(any::<usize>(), 0..5),
        isn in any::<u32>(),
    ) {
        // Enough holes for 20 cuts and 5 copies: the stream is whole only when no cap is hit.
        let mut t = Conv::new(Limits { max_holes: 32, ..Limits::default() }, isn, isn ^ 0x8000_0000);
        t.handshake();
        for (rel, bytes) in shuffled_stream(&data, &cuts, &order, &dups) {
            t.c(rel, &bytes);
        }
        t.finish();
        prop_assert_eq!(&t.rec.streams[0][0], &data);
        // Copies with the same bytes are never a conflict.
        prop_assert!(!t.rec.has("conflict"));
    }

    /// Segments close together with bytes from a small alphabet overlap and disagree often:
    /// the hole count, the bytes kept and the conflicts stay consistent (the sink checks).
    #[test]
    fn overlapping_disagreeing_segments_keep_events_well_formed(
        segs in prop::collection::vec(
            (any::<bool>(), any::<u8>(), 0u32..300, 0u32..300, prop::collection::vec(0u8..3, 0..40), 0u32..3),
            0..80,
        )
    ) {
        let limits = Limits { max_holes: 3, window: 512, conflict_window: 64, ..Limits::default() };
        let mut t = Conv::new(limits, 0, 0);
        t.handshake();
        for (from_client, flags, seq, ack, payload, missing) in segs {
            // Mostly plain data; now and then a FIN or a RST.
            let flags = flags & (ACK | PSH | if flags > 250 { FIN | RST } else { 0 });
            t.seg(from_client, flags, seq, ack, &payload, missing);
        }
        t.finish();
        prop_assert_eq!(t.r.mem, 0);
    }

    #[test]
    fn garbage_segments_never_panic_and_events_stay_contiguous(
        segs in prop::collection::vec((any::<bool>(), any::<u8>(), any::<u32>(), any::<u32>(), 0usize..64, 0u32..100), 0..60)
    ) {
        let mut t = Conv::new(Limits { max_holes: 3, window: 256, ..Limits::default() }, 0, 0);
        for (from_client, flags, seq, ack, len, missing) in segs {
            t.seg(from_client, flags & 0x3f, seq, ack, &vec![b'z'; len], missing);
        }
        t.finish();
    }
}

fn visits() -> u64 {
    chunks::VISITS.with(|v| v.get())
}

/// The offsets 1..=n in an order that keeps every one of them out of order (byte 0 is held
/// back): descending, ascending above one hole, and eight interleaved stripes (eight holes).
fn scattered_orders(n: u64) -> Vec<(&'static str, Vec<u64>)> {
    let stripe = n / 8;
    let striped = (0..stripe)
        .flat_map(|i| (0..8).map(move |k| 1 + k * stripe + i))
        .collect();
    vec![
        ("descending", (1..=n).rev().collect()),
        ("ascending", (1..=n).collect()),
        ("striped", striped),
    ]
}

/// T20, L01: 100,000 one-byte segments held out of order. Each one costs a bounded number of
/// chunk look-ups, not a walk over every chunk held (which made 1 M such segments take 47 s).
#[test]
fn t20_out_of_order_inserts_look_at_a_bounded_number_of_chunks() {
    const N: u64 = 100_000;
    const PER_INSERT: u64 = 16;
    let limits = Limits {
        window: 64 << 20,
        above_hole_without_acks: 64 << 20,
        ..Limits::default()
    };
    let byte = |off: u64| b'a' + (off % 26) as u8;
    for (name, order) in scattered_orders(N) {
        let mut t = Conv::new(limits.clone(), 1000, 5000);
        t.handshake();
        let start = visits();
        for &off in &order {
            let before = visits();
            t.c(1 + off as u32, &[byte(off)]);
            let cost = visits() - before;
            assert!(
                cost <= PER_INSERT,
                "{name}: inserting offset {off} looked at {cost} chunks"
            );
        }
        assert_eq!(t.r.counters().too_many_holes, 0, "{name}");
        // Byte 0 completes the stream: every held chunk is delivered once.
        t.c(1, &[byte(0)]);
        let total = visits() - start;
        assert!(total <= PER_INSERT * N, "{name}: {total} chunk visits");
        t.finish();
        let want: Vec<u8> = (0..=N).map(byte).collect();
        assert!(t.rec.streams[0][0] == want, "{name}: stream differs");
        assert!(!t.rec.has("gap"), "{name}");
    }
}

/// T07: a segment after an acknowledged hole, below data already held, is delivered; the
/// gap covers only the bytes never seen, and the held data follows.
#[test]
fn t07_segment_after_an_acked_hole_below_held_data_is_delivered() {
    let mut t = Conv::default();
    t.handshake()
        .s(1, b"01234")
        .s(20, b"zz")
        .seg(true, ACK, 1, 11, b"", 0)
        .s(11, b"abcde")
        .s(16, b"fghi")
        .finish();
    assert_eq!(t.rec.stream(1, 1), "01234~~~~~abcdefghizz");
    assert!(t.rec.has("gap 1 5 5"));
    assert_eq!(t.r.counters().missed_bytes, 5);
}

/// T04: a retransmission of delivered bytes that disagrees is reported with the range of the
/// bytes that differ; the first copy is what was delivered.
#[test]
fn t04_retransmission_differing_from_delivered_bytes_is_a_conflict() {
    let mut t = Conv::default();
    t.handshake()
        .c(1, b"GET /good-b HTTP/1.1\r\n")
        .c(1, b"GET /EVIL-b HTTP/1.1\r\n")
        .c(23, b"\r\n");
    assert!(t.r.mem > 0, "the bytes kept are charged");
    t.finish();
    assert_eq!(t.rec.stream(1, 0), "GET /good-b HTTP/1.1\r\n\r\n");
    assert!(t.rec.has("1 conflict 0 5 4"), "{:?}", t.rec.events);
    assert_eq!(t.r.counters().overlap_conflict, 1);
    assert_eq!(t.r.counters().retransmit_unchecked, 0);
    assert_eq!(t.r.mem, 0);
}

/// T04: the conflicting bytes of a re-packetised retransmission (a delivered prefix and new
/// bytes) are found too; its new tail is delivered.
#[test]
fn t04_repacketised_retransmission_differing_in_its_prefix_is_a_conflict() {
    let mut t = Conv::default();
    t.handshake().s(1, b"hello").s(4, b"XY world").finish();
    assert_eq!(t.rec.stream(1, 1), "hello world");
    assert!(t.rec.has("1 conflict 1 3 2"), "{:?}", t.rec.events);
}

/// T02, T03: a retransmission with the same bytes is no conflict.
#[test]
fn t04_identical_retransmission_is_no_conflict() {
    let mut t = Conv::default();
    t.handshake()
        .c(1, b"GET /good-b HTTP/1.1\r\n")
        .c(1, b"GET /good-b HTTP/1.1\r\n")
        .c(6, b"good-b HTTP/1.1\r\n\r\n")
        .finish();
    assert_eq!(t.rec.stream(1, 0), "GET /good-b HTTP/1.1\r\n\r\n");
    assert!(!t.rec.has("conflict"));
    assert_eq!(t.r.counters().overlap_conflict, 0);
    assert_eq!(t.r.counters().retransmit_unchecked, 0);
}

/// T04: a new out-of-order segment over a held chunk with other bytes is reported.
#[test]
fn t04_out_of_order_segment_differing_from_a_held_chunk_is_a_conflict() {
    let mut t = Conv::default();
    t.handshake()
        .c(4, b"XYZ")
        .c(4, b"lYZ!")
        .c(1, b"hel")
        .finish();
    assert_eq!(t.rec.stream(1, 0), "helXYZ!");
    assert!(t.rec.has("1 conflict 0 3 1"), "{:?}", t.rec.events);
}

/// T04: an in-order segment that covers a held chunk delivers the chunk's bytes (they came
/// first) and reports where they differ.
#[test]
fn t04_in_order_segment_over_a_held_chunk_keeps_the_chunk() {
    let mut t = Conv::default();
    t.handshake().c(4, b"XYZ").c(1, b"hello world").finish();
    assert_eq!(t.rec.stream(1, 0), "helXYZworld");
    assert!(t.rec.has("1 conflict 0 3 3"), "{:?}", t.rec.events);
    assert_eq!(t.r.counters().overlap_conflict, 1);
}

/// T04: a retransmission of bytes older than those kept cannot be compared: it is counted.
#[test]
fn t04_retransmission_older_than_the_bytes_kept_is_counted_unchecked() {
    let window = Limits::default().conflict_window;
    let body = vec![b'a'; window + 100];
    let mut t = Conv::default();
    t.handshake().c(1, &body).c(1, b"EVIL").finish();
    assert_eq!(t.r.counters().retransmit_unchecked, 1);
    assert_eq!(t.r.counters().overlap_conflict, 0);
    assert!(!t.rec.has("conflict"));
    // The last bytes are still compared.
    let mut t = Conv::default();
    let rel = (window + 100 - 4) as u32 + 1;
    t.handshake().c(1, &body).c(rel, b"aaXa").finish();
    assert!(
        t.rec.has(&format!("1 conflict 0 {} 1", rel + 1)),
        "{:?}",
        t.rec.events
    );
    assert_eq!(t.r.counters().retransmit_unchecked, 0);
}

/// T04: bytes first seen after a gap was declared over them were never delivered: a
/// retransmission of them is counted, not compared.
#[test]
fn t04_retransmission_into_a_gap_is_counted_unchecked() {
    let mut t = Conv::default();
    t.handshake()
        .s(1, b"01234")
        .seg(true, ACK, 1, 11, b"", 0)
        .s(11, b"abc")
        .s(6, b"56789")
        .finish();
    assert_eq!(t.rec.stream(1, 1), "01234~~~~~abc");
    assert_eq!(t.r.counters().retransmit_unchecked, 1);
    assert!(!t.rec.has("conflict"));
}

/// Segments cut from two versions of a stream (`a`, and `b` which differs from it in places),
/// every one at least 2 bytes long (a 1-byte repeat of the last byte is a keep-alive).
fn two_version_segments(
    a: &[u8],
    b: &[u8],
    lens: &[usize],
    version: &[bool],
    extras: &[(usize, usize, bool)],
) -> Vec<(u32, Vec<u8>)> {
    let pick = |v: bool, s: usize, e: usize| {
        if v {
            b[s..e].to_vec()
        } else {
            a[s..e].to_vec()
        }
    };
    let mut segs = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < a.len() {
        let mut len = lens[i % lens.len()].min(a.len() - pos);
        if a.len() - pos - len == 1 {
            len += 1;
        }
        segs.push((
            1 + pos as u32,
            pick(version[i % version.len()], pos, pos + len),
        ));
        pos += len;
        i += 1;
    }
    for &(start, len, v) in extras {
        let s = start % a.len();
        let e = (s + len).min(a.len());
        if e - s >= 2 {
            segs.push((1 + s as u32, pick(v, s, e)));
        }
    }
    segs
}

proptest! {
    /// T04: whatever the order, each byte delivered is the first copy's, and a conflict is
    /// reported exactly where a later copy differs from the first.
    #[test]
    fn t04_first_copy_wins_and_every_difference_is_reported(
        a in prop::collection::vec(0u8..4, 2..300),
        flips in prop::collection::vec(0u8..4, 300),
        lens in prop::collection::vec(2usize..40, 1..50),
        version in prop::collection::vec(any::<bool>(), 1..50),
        extras in prop::collection::vec((any::<usize>(), 2usize..60, any::<bool>()), 0..10),
        order in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let b: Vec<u8> = a
            .iter()
            .zip(&flips)
            .map(|(&x, &f)| if f == 0 { x ^ 0x10 } else { x })
            .collect();
        let mut segs = two_version_segments(&a, &b, &lens, &version, &extras);
        for (i, &o) in order.iter().enumerate() {
            let n = segs.len();
            segs.swap(i % n, o % n);
        }
        // The model: the first copy of each byte, and where a later copy differs from it.
        let mut first: Vec<Option<u8>> = vec![None; a.len()];
        let mut differs = vec![false; a.len()];
        for (rel, bytes) in &segs {
            for (k, &byte) in bytes.iter().enumerate() {
                let o = *rel as usize - 1 + k;
                match first[o] {
                    None => first[o] = Some(byte),
                    Some(f) => differs[o] |= f != byte,
                }
            }
        }
        // No cap skips a hole: every byte is delivered.
        let mut t = Conv::new(Limits { max_holes: 1000, ..Limits::default() }, 1000, 5000);
        t.handshake();
        for (rel, bytes) in &segs {
            t.c(*rel, bytes);
        }
        t.finish();
        let want: Vec<u8> = first.iter().map(|b| b.unwrap_or(b'~')).collect();
        prop_assert_eq!(&t.rec.streams[0][0], &want);
        let mut reported = vec![false; a.len()];
        let mut events = 0;
        for e in &t.rec.events {
            let Some(rest) = e.strip_prefix("1 conflict 0 ") else { continue };
            let (off, len) = rest.split_once(' ').unwrap();
            let (off, len): (usize, usize) = (off.parse().unwrap(), len.parse().unwrap());
            prop_assert!(differs[off] && differs[off + len - 1], "{} is not a difference", e);
            reported[off..off + len].iter_mut().for_each(|r| *r = true);
            events += 1;
        }
        for o in 0..a.len() {
            prop_assert!(!differs[o] || reported[o], "the difference at {} is not reported", o);
        }
        prop_assert_eq!(t.r.counters().overlap_conflict, events);
        prop_assert_eq!(t.r.counters().retransmit_unchecked, 0);
    }
}
