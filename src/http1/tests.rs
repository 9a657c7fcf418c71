//! HTTP framing and pairing tests, named for RELIABILITY.md cases H01-H30, driven through
//! the tracker with synthetic stream events.

use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;
use crate::capture::Timestamp;
use crate::reassembly::{CloseReason, Direction, EventKind, FlowId, StreamEvent, StreamSink};

const C: Direction = Direction::ClientToServer;
const S: Direction = Direction::ServerToClient;

/// One step of a conversation.
#[derive(Clone)]
enum Step {
    Data(Direction, &'static [u8]),
    Gap(Direction, u64),
    End(Direction),
    /// Bytes at (offset, len) of a direction came again with different content.
    Conflict(Direction, u64, u64),
}

/// Runs a conversation; each data step is cut into pieces of `piece` bytes (0: whole).
fn run_with(
    limits: Limits,
    midstream: bool,
    steps: &[Step],
    piece: usize,
    close: CloseReason,
) -> (Vec<Exchange>, HttpCounters) {
    let mut out = Vec::new();
    let counters;
    {
        let mut t = Tracker::new(limits, |e| out.push(e));
        let client: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let server: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let flow = FlowId(1);
        let mut ts = 0i64;
        let mut offsets = [0u64; 2];
        let mut ev = |t: &mut Tracker<_>, kind| {
            ts += 1_000_000;
            t.event(StreamEvent {
                flow,
                ts: Timestamp(ts),
                kind,
            });
            // The memory budget says exactly what the buffers hold, after every event.
            assert_eq!(t.memuse(), t.held_bytes());
        };
        ev(
            &mut t,
            EventKind::Open {
                client,
                server,
                midstream,
            },
        );
        for step in steps {
            match step {
                Step::Data(dir, bytes) => {
                    let size = if piece == 0 {
                        bytes.len().max(1)
                    } else {
                        piece
                    };
                    for chunk in bytes.chunks(size) {
                        let offset = offsets[dir.index()];
                        let ack = Some(offsets[dir.reverse().index()]);
                        ev(
                            &mut t,
                            EventKind::Data {
                                dir: *dir,
                                offset,
                                data: chunk,
                                ack,
                            },
                        );
                        offsets[dir.index()] += chunk.len() as u64;
                    }
                }
                Step::Gap(dir, len) => {
                    let offset = offsets[dir.index()];
                    ev(
                        &mut t,
                        EventKind::Gap {
                            dir: *dir,
                            offset,
                            len: *len,
                        },
                    );
                    offsets[dir.index()] += len;
                }
                Step::End(dir) => ev(
                    &mut t,
                    EventKind::End {
                        dir: *dir,
                        reason: CloseReason::Fin,
                    },
                ),
                Step::Conflict(dir, offset, len) => ev(
                    &mut t,
                    EventKind::Conflict {
                        dir: *dir,
                        offset: *offset,
                        len: *len,
                    },
                ),
            }
        }
        ev(&mut t, EventKind::Close { reason: close });
        counters = t.counters().clone();
    }
    (out, counters)
}

fn run(steps: &[Step]) -> (Vec<Exchange>, HttpCounters) {
    run_with(
        Limits::default(),
        false,
        steps,
        0,
        CloseReason::CaptureEnded,
    )
}

/// Same exchanges whatever the segmentation: whole, 1-byte and 7-byte pieces (H02).
fn run_all_splits(steps: &[Step]) -> Vec<Exchange> {
    let (whole, _) = run(steps);
    for piece in [1, 2, 7, 64] {
        let (split, _) = run_with(
            Limits::default(),
            false,
            steps,
            piece,
            CloseReason::CaptureEnded,
        );
        assert_eq!(summary(&split), summary(&whole), "piece size {piece}");
    }
    whole
}

/// What a test compares: method, target, status, body lengths and flags.
fn summary(ex: &[Exchange]) -> Vec<String> {
    ex.iter()
        .map(|e| {
            format!(
                "{} {} {:?} req={} resp={:?} {:?}",
                e.request.method,
                String::from_utf8_lossy(&e.request.target),
                e.response.as_ref().map(|r| r.status),
                e.request.body_len,
                e.response.as_ref().map(|r| r.body_len),
                e.flags.names().collect::<Vec<_>>()
            )
        })
        .collect()
}

fn get(path: &'static str) -> Step {
    Step::Data(
        C,
        Box::leak(
            format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n")
                .into_bytes()
                .into_boxed_slice(),
        ),
    )
}

fn ok(body: &'static str) -> Step {
    Step::Data(
        S,
        Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
            .into_boxed_slice(),
        ),
    )
}

#[test]
fn h01_pipelined_requests_pair_fifo() {
    let all = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 NF\r\nContent-Length: 2\r\n\r\nbbHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let ex = run_all_splits(&[Step::Data(C, all), Step::Data(S, resp)]);
    assert_eq!(
        summary(&ex),
        [
            "GET /a Some(200) req=0 resp=Some(1) []",
            "GET /b Some(404) req=0 resp=Some(2) [\"pipelined\"]",
            "GET /c Some(200) req=0 resp=Some(0) [\"pipelined\"]",
        ]
    );
}

#[test]
fn h02_extra_crlfs_between_requests_are_ignored() {
    let ex = run_all_splits(&[
        get("/a"),
        ok("x"),
        Step::Data(C, b"\r\n\r\n"),
        get("/b"),
        ok("y"),
    ]);
    assert_eq!(summary(&ex).len(), 2);
    assert!(ex.iter().all(|e| e.flags.is_empty()));
}

#[test]
fn any_token_method_and_every_target_form() {
    let req = b"PROPFIND http://other.example/x HTTP/1.1\r\nHost: other.example\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\nX-CUSTOM_1 /y HTTP/1.1\r\nHost: a\r\n\r\n";
    let (ex, _) = run(&[Step::Data(C, req)]);
    let targets: Vec<_> = ex
        .iter()
        .map(|e| {
            (
                e.request.method.clone(),
                String::from_utf8_lossy(&e.request.target).into_owned(),
            )
        })
        .collect();
    assert_eq!(
        targets,
        [
            ("PROPFIND".to_string(), "http://other.example/x".to_string()),
            ("OPTIONS".to_string(), "*".to_string()),
            ("X-CUSTOM_1".to_string(), "/y".to_string())
        ]
    );
}

#[test]
fn h03_more_responses_than_requests_are_counted() {
    let (ex, c) = run(&[get("/a"), ok("1"), ok("2")]);
    assert_eq!(ex.len(), 1);
    assert_eq!(c.unmatched_responses, 1);
}

#[test]
fn h04_too_many_pending_requests_flush_the_oldest_unanswered() {
    let limits = Limits {
        max_pending: 3,
        ..Limits::default()
    };
    let steps: Vec<Step> = (0..5).map(|_| get("/p")).collect();
    let (ex, c) = run_with(limits, false, &steps, 0, CloseReason::CaptureEnded);
    assert_eq!(ex.len(), 5);
    assert_eq!(c.excessive_pipelining, 2);
    assert!(ex.iter().all(|e| e.response.is_none()));
}

#[test]
fn h05_early_response_keeps_the_request_framed() {
    let ex = run_all_splits(&[
        Step::Data(
            C,
            b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc",
        ),
        Step::Data(S, b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n"),
        Step::Data(C, b"defGET /next HTTP/1.1\r\nHost: a\r\n\r\n"),
        ok("n"),
    ]);
    assert_eq!(
        summary(&ex),
        [
            "POST /up Some(400) req=6 resp=Some(0) []",
            "GET /next Some(200) req=0 resp=Some(1) []"
        ]
    );
}

#[test]
fn h06_interim_responses_are_skipped() {
    let ex = run_all_splits(&[
        Step::Data(C, b"POST /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"),
        Step::Data(S, b"HTTP/1.1 100 Continue\r\n\r\n"),
        Step::Data(C, b"hi"),
        Step::Data(S, b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(
        summary(&ex),
        ["POST /u Some(201) req=2 resp=Some(0) [\"expect_continue\", \"interim\"]"]
    );
}

#[test]
fn h06_ttfb_runs_to_the_final_response_not_to_an_interim_one() {
    // One event per step, each 1 ms after the last: the 103 comes 1 ms after the request,
    // the 200 2 ms after it (DESIGN.md "What is measured"; the replay client does the same).
    let (ex, _) = run_with(
        Limits::default(),
        false,
        &[
            get("/t"),
            Step::Data(S, b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"),
            Step::Data(S, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ],
        0,
        CloseReason::CaptureEnded,
    );
    assert_eq!(ex[0].ttfb_us(), Some(2000));
}

#[test]
fn h07_rejected_expect_does_not_take_the_next_request_as_body() {
    let (ex, c) = run(&[
        Step::Data(
            C,
            b"PUT /big HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n",
        ),
        Step::Data(
            S,
            b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n",
        ),
        get("/next"),
        ok("ok"),
    ]);
    assert_eq!(
        summary(&ex),
        [
            "PUT /big Some(417) req=0 resp=Some(0) [\"expect_continue\"]",
            "GET /next Some(200) req=0 resp=Some(2) []"
        ]
    );
    assert_eq!(c.expect_rejected, 1);
}

#[test]
fn h08_head_response_has_no_body() {
    let ex = run_all_splits(&[
        Step::Data(C, b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n"),
        Step::Data(S, b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n"),
        get("/after"),
        ok("abc"),
    ]);
    assert_eq!(
        summary(&ex),
        [
            "HEAD /h Some(200) req=0 resp=Some(0) []",
            "GET /after Some(200) req=0 resp=Some(3) []"
        ]
    );
}

#[test]
fn h09_204_and_304_have_no_body() {
    let ex = run_all_splits(&[
        get("/a"),
        get("/b"),
        Step::Data(S, b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\nHTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ]);
    let statuses: Vec<_> = ex
        .iter()
        .map(|e| e.response.as_ref().map(|r| (r.status, r.body_len)))
        .collect();
    assert_eq!(statuses, [Some((204, 0)), Some((304, 0))]);
}

#[test]
fn h10_close_delimited_body_ends_at_fin() {
    let steps = [
        get("/old"),
        Step::Data(S, b"HTTP/1.0 200 OK\r\n\r\nuntil close"),
        Step::End(S),
    ];
    let (ex, _) = run(&steps);
    let r = ex[0].response.as_ref().unwrap();
    assert_eq!((r.body_len, r.complete), (11, true));
    assert!(ex[0].flags.contains(Flags::CLOSE_DELIMITED));
    assert!(ex[0].total_us().is_some());
}

#[test]
fn h10_close_delimited_body_cut_by_capture_end_is_incomplete() {
    let (ex, _) = run(&[
        get("/old"),
        Step::Data(S, b"HTTP/1.0 200 OK\r\n\r\npartial"),
    ]);
    assert!(!ex[0].response.as_ref().unwrap().complete);
    assert!(ex[0].flags.contains(Flags::TRUNCATED));
    assert_eq!(ex[0].total_us(), None);
}

#[test]
fn h11_body_over_the_cap_is_counted_not_kept() {
    let limits = Limits {
        max_body_kept: 4,
        ..Limits::default()
    };
    let (ex, _) = run_with(
        limits,
        false,
        &[
            Step::Data(
                C,
                b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789",
            ),
            get("/q"),
        ],
        3,
        CloseReason::CaptureEnded,
    );
    assert_eq!(
        (
            ex[0].request.body_len,
            ex[0].request.body.as_slice(),
            ex[0].request.body_kept
        ),
        (10, &b"0123"[..], false)
    );
    assert!(ex[0].flags.contains(Flags::BODY_TOO_LARGE));
    assert_eq!(String::from_utf8_lossy(&ex[1].request.target), "/q");
}

#[test]
fn h12_h14_chunked_with_extensions_and_trailers() {
    let ex = run_all_splits(&[
        Step::Data(C, b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"q;x\"\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        Step::Data(S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\nX-Trailer: 1\r\n\r\n"),
    ]);
    assert_eq!(summary(&ex), ["POST /c Some(200) req=11 resp=Some(4) []"]);
    assert_eq!(ex[0].request.body, b"hello world");
}

#[test]
fn h13_invalid_chunk_size_stops_the_request() {
    let (ex, c) = run(&[Step::Data(
        C,
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
    )]);
    assert!(ex[0].flags.contains(Flags::INVALID));
    assert_eq!(c.invalid_chunk, 1);
}

#[test]
fn h15_chunked_body_without_last_chunk_is_incomplete() {
    let (ex, _) = run(&[
        Step::Data(
            C,
            b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        ),
        Step::End(C),
    ]);
    assert!(!ex[0].request.complete);
    assert!(ex[0].flags.contains(Flags::TRUNCATED));
}

#[test]
fn h16_content_length_with_chunked_is_ambiguous_and_chunked_wins() {
    let (ex, c) = run(&[Step::Data(C, b"POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n")]);
    assert!(ex[0].flags.contains(Flags::AMBIGUOUS_FRAMING));
    assert_eq!(ex[0].request.body_len, 2);
    assert_eq!(c.ambiguous_framing, 1);
}

#[test]
fn h17_conflicting_content_lengths_are_invalid() {
    let (ex, _) = run(&[Step::Data(
        C,
        b"POST /d HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
    )]);
    assert!(ex[0].flags.contains(Flags::AMBIGUOUS_FRAMING) && ex[0].flags.contains(Flags::INVALID));
    let (same, _) = run(&[Step::Data(
        C,
        b"POST /d HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
    )]);
    assert!(
        same[0].flags.contains(Flags::AMBIGUOUS_FRAMING) && !same[0].flags.contains(Flags::INVALID)
    );
    assert_eq!(same[0].request.body_len, 2);
}

#[test]
fn h18_malformed_content_length_is_invalid() {
    for cl in ["+5", "-1", "5, 5", "5x", "99999999999999999999"] {
        let head = format!("POST /m HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\n");
        let bytes: &'static [u8] = Box::leak(head.into_bytes().into_boxed_slice());
        let (ex, c) = run(&[Step::Data(C, bytes)]);
        assert!(ex[0].flags.contains(Flags::INVALID), "{cl}");
        assert_eq!(c.invalid_content_length, 1, "{cl}");
    }
}

#[test]
fn h20_bare_lf_heads_are_accepted_and_flagged() {
    let ex = run_all_splits(&[
        Step::Data(C, b"GET /lf HTTP/1.1\nHost: a\n\n"),
        Step::Data(S, b"HTTP/1.1 200 OK\nContent-Length: 1\n\nz"),
    ]);
    assert_eq!(
        summary(&ex),
        ["GET /lf Some(200) req=0 resp=Some(1) [\"lenient\"]"]
    );
}

#[test]
fn h21_oversized_head_stops_the_direction() {
    let limits = Limits {
        max_head: 100,
        ..Limits::default()
    };
    let big: &'static [u8] = Box::leak(
        format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(200))
            .into_bytes()
            .into_boxed_slice(),
    );
    let (ex, c) = run_with(
        limits,
        false,
        &[Step::Data(C, big)],
        16,
        CloseReason::CaptureEnded,
    );
    assert!(ex.is_empty());
    assert_eq!(c.head_too_large, 1);
}

#[test]
fn h23_upgrade_stops_parsing_the_connection() {
    let (ex, c) = run(&[
        Step::Data(C, b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
        Step::Data(S, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05HTTP/1.1 200 OK\r\n\r\n"),
        Step::Data(C, b"GET /not-a-request HTTP/1.1\r\n\r\n"),
    ]);
    assert_eq!(
        summary(&ex),
        ["GET /ws Some(101) req=0 resp=Some(0) [\"upgrade\"]"]
    );
    assert_eq!(c.upgrades, 1);
}

#[test]
fn h24_connect_2xx_is_a_tunnel_and_407_is_not() {
    let (ex, _) = run(&[
        Step::Data(C, b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
        Step::Data(S, b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 0\r\n\r\n"),
        Step::Data(C, b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
        Step::Data(
            S,
            b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01",
        ),
        Step::Data(C, b"\x16\x03\x01GET / HTTP/1.1\r\n\r\n"),
    ]);
    assert_eq!(
        summary(&ex),
        [
            "CONNECT a:443 Some(407) req=0 resp=Some(0) []",
            "CONNECT a:443 Some(200) req=0 resp=Some(0) [\"connect\"]"
        ]
    );
}

#[test]
fn h25_http2_preface_and_tls_are_not_http1() {
    let (ex, c) = run(&[
        Step::Data(C, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        get("/x"),
    ]);
    assert!(ex.is_empty());
    assert_eq!(c.non_http1_h2, 1);
    let (ex, c) = run(&[
        Step::Data(C, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        get("/x"),
    ]);
    assert!(ex.is_empty());
    assert_eq!(c.non_http1_tls, 1);
}

#[test]
fn h26_junk_is_abandoned_after_a_bounded_look_and_http09_recognised() {
    let (ex, c) = run(&[Step::Data(C, &[b'z'; 1500]), get("/late")]);
    assert!(ex.is_empty());
    assert_eq!(c.non_http1_other, 1);
    let (ex, c) = run(&[Step::Data(
        C,
        b"junk\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n",
    )]);
    assert_eq!(ex.len(), 1, "a request inside the budget is still found");
    assert_eq!(c.non_http1_other, 0);
    let (ex, c) = run(&[Step::Data(C, b"GET /old-style\r\n")]);
    assert!(ex.is_empty());
    assert_eq!(c.http09, 1);
}

#[test]
fn h27_gap_inside_a_content_length_body_keeps_the_framing() {
    let (ex, c) = run(&[
        get("/a"),
        Step::Data(S, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n012"),
        Step::Gap(S, 4),
        Step::Data(S, b"789"),
        get("/b"),
        ok("fine"),
    ]);
    assert_eq!(
        summary(&ex),
        [
            "GET /a Some(200) req=0 resp=Some(6) [\"gap\"]",
            "GET /b Some(200) req=0 resp=Some(4) []"
        ]
    );
    assert!(!ex[0].response.as_ref().unwrap().complete);
    assert_eq!(c.body_gaps, 1);
}

#[test]
fn h28_server_gap_pairs_the_next_response_with_the_request_it_acknowledges() {
    // /1 is answered, /2's response is lost whole, /3 is sent after the client received
    // everything up to where /3's response starts: /3 gets it, /2 stays unanswered.
    let (ex, c) = run(&[
        get("/1"),
        ok("one"),
        get("/2"),
        Step::Gap(S, 41),
        get("/3"),
        ok("three"),
    ]);
    assert_eq!(
        summary(&ex),
        [
            "GET /1 Some(200) req=0 resp=Some(3) []",
            "GET /2 None req=0 resp=None [\"gap\"]",
            "GET /3 Some(200) req=0 resp=Some(5) [\"pipelined\", \"resync\"]"
        ]
    );
    assert_eq!(c.gap_pairings, 1);
}

#[test]
fn h28_client_gap_resyncs_on_the_next_request_line() {
    let (ex, c) = run(&[
        Step::Data(C, b"GET /lost HTTP/1.1\r\nHo"),
        Step::Gap(C, 30),
        Step::Data(C, b"ding\r\n\r\nGET /found HTTP/1.1\r\nHost: a\r\n\r\n"),
        ok("x"),
    ]);
    assert_eq!(summary(&ex), ["GET /found Some(200) req=0 resp=Some(1) []"]);
    assert_eq!(c.fatal_gaps_req, 1);
}

#[test]
fn h30_missing_or_conflicting_host_is_flagged() {
    let (ex, _) = run(&[Step::Data(C, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\nGET /c HTTP/1.0\r\n\r\n")]);
    let flagged: Vec<bool> = ex
        .iter()
        .map(|e| e.flags.contains(Flags::HOST_ANOMALY))
        .collect();
    assert_eq!(flagged, [true, true, false]);
}

#[test]
fn t13_midstream_skips_to_the_first_request_line() {
    let (ex, c) = run_with(
        Limits::default(),
        true,
        &[
            Step::Data(
                C,
                b"tail of an earlier body\r\nGET /m HTTP/1.1\r\nHost: a\r\n\r\n",
            ),
            Step::Data(S, b"older body bytes HTTP/1.1 200\r\n"),
            ok("m"),
        ],
        0,
        CloseReason::CaptureEnded,
    );
    assert_eq!(
        summary(&ex),
        ["GET /m Some(200) req=0 resp=Some(1) [\"midstream\"]"]
    );
    assert!(c.midstream_skipped_bytes > 0);
}

#[test]
fn t14_midstream_roles_are_corrected_by_content() {
    // The reassembler guessed wrong: what it calls the client sends status lines.
    let (ex, c) = run_with(
        Limits::default(),
        true,
        &[
            Step::Data(S, b"GET /swap HTTP/1.1\r\nHost: a\r\n\r\n"),
            Step::Data(C, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ],
        0,
        CloseReason::CaptureEnded,
    );
    assert_eq!(
        summary(&ex),
        ["GET /swap Some(200) req=0 resp=Some(0) [\"midstream\"]"]
    );
    assert_eq!(ex[0].client, "10.0.0.2:80".parse::<SocketAddr>().unwrap());
    assert_eq!(c.direction_flipped, 1);
}

#[test]
fn reset_marks_unfinished_exchanges() {
    let (ex, _) = run_with(
        Limits::default(),
        false,
        &[
            get("/r"),
            Step::Data(S, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"),
        ],
        0,
        CloseReason::Rst,
    );
    assert!(ex[0].flags.contains(Flags::RESET));
    assert!(!ex[0].response.as_ref().unwrap().complete);
}

#[test]
fn timing_is_first_and_last_byte_of_each_message() {
    let (ex, _) = run_with(
        Limits::default(),
        false,
        &[
            get("/t"),
            Step::Data(S, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd"),
        ],
        10,
        CloseReason::CaptureEnded,
    );
    let e = &ex[0];
    let r = e.response.as_ref().unwrap();
    // Each 10-byte piece is 1 ms later than the previous event.
    assert!(e.request.first_ts < e.request.last_ts);
    assert_eq!(
        e.ttfb_us(),
        Some(r.first_ts.micros_since(e.request.last_ts))
    );
    assert_eq!(e.ttfb_us(), Some(1000));
    assert_eq!(
        e.total_us(),
        Some(r.last_ts.micros_since(e.request.first_ts))
    );
}

proptest! {
    #[test]
    fn garbage_never_panics_and_requests_are_emitted_once(
        chunks in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..80), any::<bool>()), 0..30)
    ) {
        let mut steps = Vec::new();
        for (client, bytes, gap) in chunks {
            let dir = if client { C } else { S };
            if gap {
                steps.push(Step::Gap(dir, bytes.len() as u64 + 1));
            } else {
                steps.push(Step::Data(dir, Box::leak(bytes.into_boxed_slice())));
            }
        }
        let (ex, c) = run(&steps);
        prop_assert_eq!(ex.len() as u64, c.exchanges);
        prop_assert!(c.exchanges <= c.requests);
    }

    #[test]
    fn valid_conversations_survive_any_segmentation(piece in 1usize..40, n in 1usize..5) {
        let mut steps = Vec::new();
        for _ in 0..n {
            steps.push(get("/p"));
            steps.push(ok("body"));
        }
        let (ex, _) = run_with(Limits::default(), false, &steps, piece, CloseReason::CaptureEnded);
        prop_assert_eq!(ex.len(), n);
        prop_assert!(ex.iter().all(|e| e.response.as_ref().is_some_and(|r| r.complete && r.body_len == 4)));
    }
}

#[test]
fn h14_trailers_past_the_limit_are_invalid() {
    let limits = Limits {
        max_chunk_meta: 64,
        ..Limits::default()
    };
    let big: &'static [u8] = Box::leak(
        format!("POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-Big: {}\r\n\r\n", "v".repeat(200))
            .into_bytes()
            .into_boxed_slice(),
    );
    let (ex, c) = run_with(
        limits,
        false,
        &[Step::Data(C, big)],
        0,
        CloseReason::CaptureEnded,
    );
    assert!(ex[0].flags.contains(Flags::INVALID));
    assert_eq!(c.invalid_chunk, 1);
}

#[test]
fn h19_transfer_codings_other_than_chunked() {
    // A request whose last coding is not chunked cannot be framed: it stops that direction.
    let (ex, c) = run(&[Step::Data(
        C,
        b"POST /g HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\nxyz",
    )]);
    assert!(ex[0].flags.contains(Flags::INVALID));
    assert_eq!(c.invalid_transfer_encoding, 1);
    // A response with one runs until the close.
    let (ex, _) = run(&[
        get("/r"),
        Step::Data(
            S,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nbytes",
        ),
        Step::End(S),
    ]);
    let r = ex[0].response.as_ref().unwrap();
    assert_eq!((r.body_len, r.complete), (5, true));
    assert!(ex[0].flags.contains(Flags::CLOSE_DELIMITED));
}

#[test]
fn h22_repeated_headers_are_kept_raw_and_in_order() {
    let (ex, _) = run(&[Step::Data(
        C,
        b"GET /h HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nX-Forwarded-For: 1.1.1.1\r\nCookie: b=2\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n",
    )]);
    let names: Vec<(&str, &[u8])> = ex[0]
        .request
        .headers
        .iter()
        .map(|h| (h.name, h.value))
        .collect();
    assert_eq!(
        names,
        [
            ("Host", &b"a"[..]),
            ("Cookie", b"a=1"),
            ("X-Forwarded-For", b"1.1.1.1"),
            ("Cookie", b"b=2"),
            ("X-Forwarded-For", b"2.2.2.2"),
        ]
    );
}

// ----- memory budget, requests lost before they are exchanges, conflicts, method case -----

/// A head that never ends: a request line, a Host and a 63 KiB header still unfinished.
fn unfinished_head() -> Vec<u8> {
    let mut head = b"GET /slow HTTP/1.1\r\nHost: a\r\nX-Pad: ".to_vec();
    head.resize(63 * 1024, b'a');
    head
}

#[test]
fn l05_unfinished_heads_are_held_within_one_budget_and_counted() {
    const FLOWS: u64 = 16_000;
    const CAP: usize = 8 << 20;
    let head = unfinished_head();
    let limits = Limits {
        memcap: CAP,
        ..Limits::default()
    };
    let mut emitted = 0;
    let mut t = Tracker::new(limits, |_| emitted += 1);
    let client: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let server: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let ev = |flow, kind| StreamEvent {
        flow: FlowId(flow),
        ts: Timestamp(1),
        kind,
    };
    let mut peak = 0;
    for flow in 0..FLOWS {
        t.event(ev(
            flow,
            EventKind::Open {
                client,
                server,
                midstream: false,
            },
        ));
        // One full-sized segment, then the rest as the reassembler may deliver it.
        let (first, rest) = head.split_at(1448);
        let (second, third) = rest.split_at(rest.len() / 2);
        let mut offset = 0;
        for chunk in [first, second, third] {
            t.event(ev(
                flow,
                EventKind::Data {
                    dir: C,
                    offset,
                    data: chunk,
                    ack: Some(0),
                },
            ));
            offset += chunk.len() as u64;
            assert!(
                t.memuse() <= CAP,
                "{} held under a cap of {CAP}",
                t.memuse()
            );
        }
        if flow % 500 == 0 {
            assert_eq!(t.memuse(), t.held_bytes(), "the budget says what is held");
        }
        peak = peak.max(t.memuse());
    }
    assert_eq!(t.memuse(), t.held_bytes());
    assert!(peak <= CAP && peak > CAP / 2, "{peak}");
    let held = t.counters().clone();
    assert!(held.memcap_hits > 0);
    assert_eq!(held.memuse, t.memuse() as u64);
    assert_eq!(held.memuse_peak, peak as u64);
    for flow in 0..FLOWS {
        t.event(ev(
            flow,
            EventKind::Close {
                reason: CloseReason::CaptureEnded,
            },
        ));
    }
    assert_eq!(t.memuse(), 0, "everything charged is given back");
    let c = t.counters().clone();
    drop(t);
    assert_eq!(emitted, 0);
    // Every request is accounted for: refused at the budget, or cut by the capture's end.
    assert!(c.lost_memcap > 0 && c.lost_capture_ended > 0, "{c:?}");
    assert_eq!(c.lost_memcap + c.lost_capture_ended, FLOWS, "{c:?}");
    assert_eq!(c.lost_memcap, c.memcap_hits);
}

#[test]
fn l05_bodies_and_waiting_heads_are_charged_and_given_up_at_the_cap() {
    // A 64 KiB budget: the first body is kept, the second cannot be and is flagged.
    let body: &'static [u8] = Box::leak(vec![b'x'; 40_000].into_boxed_slice());
    let post = |path: &str| -> &'static [u8] {
        Box::leak(
            format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 40000\r\n\r\n")
                .into_bytes()
                .into_boxed_slice(),
        )
    };
    let limits = Limits {
        memcap: 64 * 1024,
        ..Limits::default()
    };
    let steps = [
        Step::Data(C, post("/one")),
        Step::Data(C, body),
        Step::Data(C, post("/two")),
        Step::Data(C, body),
        ok("a"),
        ok("b"),
    ];
    let (ex, c) = run_with(limits, false, &steps, 1448, CloseReason::CaptureEnded);
    assert_eq!(ex.len(), 2);
    assert!(ex[0].request.body_kept && ex[0].request.body.len() == 40_000);
    assert!(!ex[0].flags.contains(Flags::MEMCAP));
    assert!(ex[1].flags.contains(Flags::MEMCAP), "{:?}", summary(&ex));
    assert!(!ex[1].request.body_kept && ex[1].request.body.is_empty());
    assert_eq!(ex[1].request.body_len, 40_000, "counted, not kept");
    assert_eq!(ex[1].response.as_ref().map(|r| r.status), Some(200));
    assert!(c.memcap_hits >= 1);
    assert!(c.memuse_peak <= 64 * 1024, "{}", c.memuse_peak);
    assert_eq!(c.memuse, 0);
}

#[test]
fn requests_that_never_become_exchanges_are_counted_by_reason() {
    let head: &'static [u8] = b"GET /cut HTTP/1.1\r\nHost: a\r\nX-Half";
    // The client closes inside the head.
    let (ex, c) = run(&[get("/a"), ok("1"), Step::Data(C, head), Step::End(C)]);
    assert_eq!(ex.len(), 1);
    assert_eq!(c.lost(), lost(&[(Lost::Truncated, 1)]));
    // The capture ends inside it.
    let (_, c) = run(&[Step::Data(C, head)]);
    assert_eq!(c.lost(), lost(&[(Lost::CaptureEnded, 1)]));
    // A reset.
    let (_, c) = run_with(
        Limits::default(),
        false,
        &[Step::Data(C, head)],
        0,
        CloseReason::Rst,
    );
    assert_eq!(c.lost(), lost(&[(Lost::Aborted, 1)]));
    // Bytes of it were never captured; the request after the gap is found.
    let (ex, c) = run(&[
        Step::Data(C, head),
        Step::Gap(C, 10),
        get("/after"),
        ok("x"),
    ]);
    assert_eq!(summary(&ex), ["GET /after Some(200) req=0 resp=Some(1) []"]);
    assert_eq!(c.lost(), lost(&[(Lost::Gap, 1)]));
    // Heads that do not parse, split or not, and an HTTP/0.9 request.
    for steps in [
        vec![Step::Data(C, b"GET /x HTTP/9.9\r\nHost: a\r\n\r\n")],
        vec![
            Step::Data(C, b"GET /x HTTP/1.1\r\nHo"),
            Step::Data(
                C,
                Box::leak(format!("st: a\r\n{}\r\n", "X: 1\r\n".repeat(101)).into_boxed_str())
                    .as_bytes(),
            ),
        ],
        vec![Step::Data(C, b"GET /old-style\r\n")],
    ] {
        let (ex, c) = run(&steps);
        assert!(ex.is_empty());
        assert_eq!(c.lost(), lost(&[(Lost::InvalidRequest, 1)]));
    }
    // Another protocol's bytes are not a request, and blank lines are not a head.
    let (_, c) = run(&[Step::Data(C, &[0u8, 1, 2, 3, 0xff, 0xfe])]);
    assert_eq!(c.lost(), lost(&[]));
    let (_, c) = run(&[get("/a"), ok("1"), Step::Data(C, b"\r\n\r\n")]);
    assert_eq!(c.lost(), lost(&[]));
}

/// `HttpCounters::lost` with these counts and zeros elsewhere.
fn lost(counts: &[(Lost, u64)]) -> [(Lost, u64); 6] {
    let mut all = HttpCounters::default().lost();
    for (why, n) in all.iter_mut() {
        if let Some((_, m)) = counts.iter().find(|(w, _)| w == why) {
            *n = *m;
        }
    }
    all
}

#[test]
fn t04_conflicting_bytes_flag_the_exchange_they_belong_to() {
    // "GET /a HTTP/1.1\r\nHost: a\r\n\r\n" is 27 bytes: the second request starts at 27.
    let conv = |conflict: Step| {
        run(&[
            get("/a"),
            get("/b"),
            conflict,
            Step::Data(S, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"),
            ok("2"),
        ])
    };
    let flagged = |ex: &[Exchange]| -> Vec<bool> {
        ex.iter()
            .map(|e| e.flags.contains(Flags::OVERLAP_CONFLICT))
            .collect()
    };
    let (ex, c) = conv(Step::Conflict(C, 30, 2));
    assert_eq!(flagged(&ex), [false, true]);
    assert_eq!(c.conflict_after_emit, 0);
    let (ex, _) = conv(Step::Conflict(C, 20, 10));
    assert_eq!(flagged(&ex), [true, true], "a range over both flags both");
    // The server's bytes: the first response is 39 bytes long.
    let (ex, _) = conv(Step::Conflict(S, 45, 1));
    assert_eq!(flagged(&ex), [false, true]);
    // Bytes not delivered yet (held by the reassembler) flag the message they turn out in.
    let (ex, _) = conv(Step::Conflict(S, 0, 1));
    assert_eq!(flagged(&ex), [true, false]);
    // After the exchange was emitted it cannot be flagged: counted.
    let (ex, c) = run(&[
        get("/a"),
        ok("1"),
        Step::Conflict(C, 5, 1),
        get("/b"),
        ok("2"),
    ]);
    assert_eq!(flagged(&ex), [false, false]);
    assert_eq!(c.conflict_after_emit, 1);
}

#[test]
fn methods_are_case_sensitive_a_response_to_head_lowercase_has_a_body() {
    let (ex, _) = run(&[
        Step::Data(C, b"head /x HTTP/1.1\r\nHost: a\r\n\r\n"),
        get("/y"),
        ok("abc"),
        Step::Data(S, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(
        summary(&ex),
        [
            "head /x Some(200) req=0 resp=Some(3) []",
            "GET /y Some(404) req=0 resp=Some(0) [\"pipelined\"]"
        ]
    );
    // `connect` is not CONNECT: a 200 to it is no tunnel.
    let (ex, _) = run(&[
        Step::Data(C, b"connect a:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
        ok("x"),
        get("/z"),
        ok("y"),
    ]);
    assert_eq!(ex.len(), 2, "{:?}", summary(&ex));
    assert!(!ex[0].flags.contains(Flags::CONNECT));
}

#[test]
fn l05_waiting_requests_are_charged_and_every_one_is_accounted_for() {
    // Clients that pipeline requests no server answers: 2,000 connections of 50 each.
    const FLOWS: u64 = 2_000;
    const EACH: u64 = 50;
    const CAP: usize = 1 << 20;
    let limits = Limits {
        memcap: CAP,
        ..Limits::default()
    };
    let mut emitted = 0u64;
    let mut t = Tracker::new(limits, |_| emitted += 1);
    let client: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let server: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let ev = |flow, kind| StreamEvent {
        flow: FlowId(flow),
        ts: Timestamp(1),
        kind,
    };
    let burst: Vec<u8> = (0..EACH)
        .flat_map(|i| {
            format!(
                "GET /p/{i} HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n\r\n",
                "b".repeat(200)
            )
            .into_bytes()
        })
        .collect();
    for flow in 0..FLOWS {
        t.event(ev(
            flow,
            EventKind::Open {
                client,
                server,
                midstream: false,
            },
        ));
        t.event(ev(
            flow,
            EventKind::Data {
                dir: C,
                offset: 0,
                data: &burst,
                ack: Some(0),
            },
        ));
        assert!(
            t.memuse() <= CAP,
            "{} held under a cap of {CAP}",
            t.memuse()
        );
        if flow % 100 == 0 {
            assert_eq!(t.memuse(), t.held_bytes());
        }
    }
    assert!(t.counters().memcap_hits > 0);
    for flow in 0..FLOWS {
        t.event(ev(
            flow,
            EventKind::Close {
                reason: CloseReason::CaptureEnded,
            },
        ));
    }
    assert_eq!(t.memuse(), 0);
    let c = t.counters().clone();
    drop(t);
    assert_eq!(c.requests, FLOWS * EACH);
    assert_eq!(emitted + c.lost_memcap, FLOWS * EACH, "{c:?}");
}
