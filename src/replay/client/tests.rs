//! The client against scripted shadows on 127.0.0.1:0, and the slot timer.

use super::*;
use std::io::{Read, Write};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;

/// One step of a scripted shadow's answer.
enum Step {
    Send(Vec<u8>),
    Wait(Duration),
}

fn send(bytes: &[u8]) -> Step {
    Step::Send(bytes.to_vec())
}

/// A shadow on 127.0.0.1:0 that answers each request (read up to its blank line) with
/// the next answer of the script, on whatever connection it came; it keeps a connection
/// open until the client closes it (or 10 s pass). Counts the connections it accepted.
struct Shadow {
    client: Client,
    accepted: Arc<AtomicUsize>,
}

fn shadow(script: Vec<Vec<Step>>) -> Shadow {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut answers = script.into_iter();
        // Bounded: one connection per answer at most, and one more.
        for _ in 0..answers.len() + 1 {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut req = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&chunk[..n]),
                }
                while let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                    req.drain(..end + 4);
                    for step in answers.next().unwrap_or_default() {
                        match step {
                            Step::Send(b) => {
                                let _ = conn.write_all(&b);
                            }
                            Step::Wait(d) => std::thread::sleep(d),
                        }
                    }
                }
            }
        }
    });
    Shadow {
        client: Client::new(addr, None),
        accepted,
    }
}

impl Shadow {
    async fn get(&self, slot: &mut Slot) -> Result<Answer, Failure> {
        let request = b"GET / HTTP/1.1\r\nHost: shadow\r\n\r\n";
        self.client
            .exchange(slot, request, false, Duration::from_secs(3))
            .await
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// The answer to one GET from a shadow that sends `response`, and to a second GET on the
/// same slot: whether that one went on the same connection.
async fn answer(response: &[u8]) -> (Result<Answer, Failure>, bool) {
    let ok = b"HTTP/1.1 204 No Content\r\n\r\n";
    let shadow = shadow(vec![vec![send(response)], vec![send(ok)]]);
    let mut slot = Slot::default();
    let first = shadow.get(&mut slot).await;
    let second = shadow.get(&mut slot).await;
    assert_eq!(second.map(|a| a.status), Ok(204));
    (first, shadow.connections() == 1)
}

#[tokio::test]
async fn a_chunked_last_coding_is_chunked_not_read_until_the_close() {
    // RFC 9112 section 6.3: the last transfer coding decides. A keep-alive shadow never
    // closes, so reading to the close would end at the timeout.
    let gzip =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let (first, reused) = answer(gzip).await;
    let a = first.expect("framed as chunked");
    assert_eq!((a.status, a.body_len, a.body_cut), (200, 5, false));
    assert!(reused, "the connection carried the next request");
}

#[tokio::test]
async fn content_lengths_follow_the_capture_side_rules() {
    // Identical repeats are one length (RFC 9110 section 8.6).
    let same = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
    let (first, reused) = answer(same).await;
    assert_eq!(first.map(|a| a.body_len), Ok(5));
    assert!(reused);
    // Conflicting, signed, junk-suffixed and overflowing lengths are invalid framing:
    // an error, and the connection is not kept (H17, H18).
    for length in [
        &b"2\r\nContent-Length: 5"[..],
        b"+5",
        b"5x",
        b"99999999999999999999999",
    ] {
        let head = [
            &b"HTTP/1.1 200 OK\r\nContent-Length: "[..],
            length,
            b"\r\n\r\nhello",
        ]
        .concat();
        let (first, reused) = answer(&head).await;
        let length = String::from_utf8_lossy(length);
        assert_eq!(first, Err(Failure::Other), "{length}");
        assert!(!reused, "{length}");
    }
}

#[tokio::test]
async fn ttfb_ends_at_the_final_response_not_at_an_interim_one() {
    // The shadow answers at once with interim responses, then the final one 50 ms later:
    // its time to first byte is at least that wait (DESIGN.md "What is measured").
    let wait = Duration::from_millis(50);
    let interims: [&[u8]; 2] = [
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n",
    ];
    for interim in interims {
        let shadow = shadow(vec![vec![
            send(interim),
            Step::Wait(wait),
            send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
        ]]);
        let a = shadow.get(&mut Slot::default()).await.expect("answered");
        assert_eq!((a.status, a.body_len), (200, 2));
        assert!(
            a.ttfb >= wait,
            "ttfb {:?} before the final response",
            a.ttfb
        );
        assert!(a.total >= a.ttfb);
    }
}

#[tokio::test]
async fn a_body_past_the_drain_cap_is_cut_flagged_and_the_connection_dropped() {
    let mut big = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n".to_vec();
    big.resize(big.len() + MAX_DRAIN as usize + 2 * READ_CHUNK, b'x');
    let (first, reused) = answer(&big).await;
    let a = first.expect("status and ttfb are real");
    assert!(a.body_cut);
    assert!(a.body_len > MAX_DRAIN && a.body_len <= MAX_DRAIN + 2 * READ_CHUNK as u64);
    assert!(!reused, "the connection was mid-body");
}

#[tokio::test]
async fn bytes_after_a_whole_response_end_its_connection() {
    // Bytes no request asked for would be taken for the next request's answer.
    let extra: [&[u8]; 3] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 500 X\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\njunk",
        b"HTTP/1.1 304 Not Modified\r\n\r\njunk",
    ];
    for response in extra {
        let (first, reused) = answer(response).await;
        assert!(first.is_ok(), "{first:?}");
        assert!(!reused, "{}", String::from_utf8_lossy(response));
    }
    // Without them the connection is kept.
    let (first, reused) = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi").await;
    assert_eq!(first.map(|a| a.body_len), Ok(2));
    assert!(reused);
}

#[tokio::test]
async fn bytes_arriving_on_an_idle_connection_end_it_before_it_is_reused() {
    // A response, then, once the client has read it, bytes no request asked for: the
    // next request must not take them for its answer.
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    let late = b"HTTP/1.1 500 Late\r\nContent-Length: 0\r\n\r\n";
    let shadow = shadow(vec![
        vec![send(ok), Step::Wait(Duration::from_millis(50)), send(late)],
        vec![send(b"HTTP/1.1 204 No Content\r\n\r\n")],
    ]);
    let mut slot = Slot::default();
    assert_eq!(shadow.get(&mut slot).await.map(|a| a.status), Ok(200));
    // Bounded wait for the late bytes to be in the client's socket.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(shadow.get(&mut slot).await.map(|a| a.status), Ok(204));
    assert_eq!(
        shadow.connections(),
        2,
        "the second request went on a new connection"
    );
}

/// Runs a never-ending exchange on `slot` with `timeout`; returns when it gave up, in ms
/// from `t0`.
async fn gives_up_after(slot: &mut Slot, t0: TokioInstant, timeout: u64) -> u128 {
    let deadline = TokioInstant::now() + Duration::from_millis(timeout);
    let out = slot
        .within(deadline, std::pin::pin!(std::future::pending::<()>()))
        .await;
    assert_eq!(out, None);
    (TokioInstant::now() - t0).as_millis()
}

#[tokio::test(start_paused = true)]
async fn the_slot_timer_ends_each_exchange_at_its_own_deadline() {
    let t0 = TokioInstant::now();
    let mut slot = Slot::default();
    // An exchange that ends in time leaves the timer set for its own deadline (5 s).
    let quick = std::pin::pin!(async { 7 });
    let done = slot.within(t0 + Duration::from_secs(5), quick).await;
    assert_eq!(done, Some(7));
    // A shorter timeout than the one the timer is set for counts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(gives_up_after(&mut slot, t0, 300).await, 1300);
    // One that starts at 2 s does not give up at an earlier deadline but at 7 s.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(gives_up_after(&mut slot, t0, 5000).await, 7000);
    // And an exchange answered just before its deadline is not cut.
    let deadline = TokioInstant::now() + Duration::from_millis(100);
    let answer = std::pin::pin!(async {
        tokio::time::sleep(Duration::from_millis(99)).await;
        "answer"
    });
    assert_eq!(slot.within(deadline, answer).await, Some("answer"));
}

#[test]
fn an_exchange_does_not_carry_the_space_of_connecting() {
    // Every request moves its exchange future around; connecting (TLS above all) needs
    // over a kilobyte more and is boxed, so only a new connection pays for it.
    let client = Client::new("127.0.0.1:9".parse().unwrap(), None);
    let mut slot = Slot::default();
    let f = client.exchange(&mut slot, b"", false, Duration::from_secs(1));
    assert!(
        std::mem::size_of_val(&f) < 1024,
        "{} bytes",
        std::mem::size_of_val(&f)
    );
}
