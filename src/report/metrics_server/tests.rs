//! The endpoint served on 127.0.0.1:0 and scraped by plain TCP clients.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use prometheus_client::metrics::gauge::ConstGauge;
use tokio::sync::oneshot;

use super::*;

/// Hang guard for every read and wait: generous, never an assertion on time.
const GUARD: Duration = Duration::from_secs(30);

/// A server under test; dropping it signals shutdown.
struct Server {
    addr: SocketAddr,
    running: Running,
    stop: oneshot::Sender<()>,
}

impl Server {
    fn counts(&self) -> &Counts {
        &self.running.counts
    }
}

fn start(limits: Limits) -> Server {
    start_with(limits, |r: &mut Registry| {
        r.register("shadowtap_up", "Up", ConstGauge::new(1i64));
    })
}

fn start_with(limits: Limits, render: impl Fn(&mut Registry) + Send + Sync + 'static) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = spawn(listener, limits, render, async move {
        let _ = stopped.await;
    })
    .unwrap();
    Server {
        addr,
        running,
        stop,
    }
}

fn request(addr: SocketAddr, head: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(GUARD)).unwrap();
    c.write_all(head).unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    text
}

fn scrape(addr: SocketAddr) -> String {
    request(addr, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
}

/// Waits, bounded in count, until `done` holds; false if it never does.
fn wait_for(done: impl Fn() -> bool) -> bool {
    for _ in 0..3000 {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

#[test]
fn a_scrape_gets_the_rendered_metrics() {
    let s = start(Limits::default());
    let text = scrape(s.addr);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let content_type = format!("content-type: {}\r\n", prometheus::CONTENT_TYPE);
    assert!(text.contains(&content_type), "{text}");
    assert!(text.contains("\r\n\r\n# HELP shadowtap_up Up.\n"), "{text}");
    assert!(text.contains("\nshadowtap_up 1\n"), "{text}");
    assert!(text.contains("\nshadowtap_metrics_connections_refused_total 0\n"));
    assert!(text.contains("\nshadowtap_metrics_bad_requests_total 0\n"));
}

#[test]
fn a_render_may_block() {
    // As `mirror`'s does, asking the replay shards and waiting for their answer.
    let s = start_with(Limits::default(), |r: &mut Registry| {
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || tx.send(7i64));
        let answer = rx.blocking_recv().unwrap();
        r.register("shadowtap_answer", "Answer", ConstGauge::new(answer));
    });
    let text = scrape(s.addr);
    assert!(text.contains("\nshadowtap_answer 7\n"), "{text}");
}

#[test]
fn other_paths_and_methods_are_not_found() {
    let s = start(Limits::default());
    for head in [
        &b"GET /other HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
        b"HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n",
    ] {
        let text = request(s.addr, head);
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
    }
    let text = request(s.addr, b"GET /metrics?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
}

#[test]
fn a_client_dribbling_bytes_does_not_block_another_scrape() {
    // A deadline longer than the test, so only concurrency can answer the second client.
    let limits = Limits {
        head_deadline: Duration::from_secs(120),
        ..Limits::default()
    };
    let s = start(limits);
    let addr = s.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let (started, dribbling) = mpsc::channel();
    let slow = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            // One byte every 1.5 s, bounded in count, until the test is done.
            for (i, b) in b"GET /metrics HTTP/1.1\r\n".iter().enumerate() {
                if stop.load(Ordering::Relaxed) || c.write_all(&[*b]).is_err() {
                    break;
                }
                if i == 0 {
                    started.send(()).unwrap();
                }
                std::thread::sleep(Duration::from_millis(1500));
            }
            stop.load(Ordering::Relaxed)
        })
    };
    dribbling.recv_timeout(GUARD).unwrap();
    let text = scrape(addr);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(!slow.is_finished(), "the slow client was still sending");
    stop.store(true, Ordering::Relaxed);
    assert!(
        slow.join().unwrap(),
        "the slow client ended before it was told to"
    );
}

#[test]
fn a_request_head_is_cut_at_its_deadline() {
    // A long write timeout, so only the head deadline can end the connection.
    let limits = Limits {
        head_deadline: Duration::from_millis(200),
        write_timeout: Duration::from_secs(120),
        ..Limits::default()
    };
    let s = start(limits);
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(GUARD)).unwrap();
    c.write_all(b"GET /metr").unwrap();
    // The server closes without answering: end of stream, not the guard.
    let mut buf = [0u8; 64];
    assert_eq!(c.read(&mut buf).unwrap(), 0);
    assert!(wait_for(
        || s.counts().bad_heads.load(Ordering::Relaxed) == 1
    ));
    assert!(scrape(s.addr).contains("\nshadowtap_metrics_bad_requests_total 1\n"));
}

#[test]
fn a_silent_connection_is_cut_at_the_head_deadline() {
    // The deadline runs from accept, not from the first byte.
    // A long write timeout, so only the head deadline can end the connection.
    let limits = Limits {
        head_deadline: Duration::from_millis(200),
        write_timeout: Duration::from_secs(120),
        ..Limits::default()
    };
    let s = start(limits);
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(GUARD)).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(c.read(&mut buf).unwrap(), 0);
    assert!(wait_for(|| s.counts().open.load(Ordering::Relaxed) == 0));
}

#[test]
fn a_head_larger_than_the_cap_is_refused() {
    let s = start(Limits::default());
    assert_head_refused(&s, &vec![b'a'; 16 * 1024]);
}

/// Sends `head` to `s`: no metrics come back (a 431 or nothing), and it is counted.
fn assert_head_refused(s: &Server, head: &[u8]) {
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(GUARD)).unwrap();
    let _ = c.write_all(head);
    // hyper answers 431 and closes; the unread rest of the head may reset the connection
    // before the answer is read. Either way, no metrics.
    let mut text = String::new();
    let _ = c.read_to_string(&mut text);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431 "),
        "{text}"
    );
    assert!(wait_for(
        || s.counts().bad_heads.load(Ordering::Relaxed) == 1
    ));
}

#[test]
fn the_head_cap_is_the_limit_given() {
    // A cap below hyper's smallest buffer, so only the head cap can refuse the larger head.
    let limits = Limits {
        max_head: 4 * 1024,
        ..Limits::default()
    };
    let s = start(limits);
    let head = |fill: usize| {
        let filler = "a".repeat(fill);
        format!("GET /metrics HTTP/1.1\r\nHost: t\r\nX-Fill: {filler}\r\n\r\n")
    };
    let small = head(3900);
    assert!(small.len() < limits.max_head);
    let text = request(s.addr, small.as_bytes());
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert_head_refused(&s, head(6000).as_bytes());
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once_and_counted() {
    let limits = Limits {
        connections: 2,
        head_deadline: Duration::from_secs(120),
        ..Limits::default()
    };
    let s = start(limits);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    // Bounded wait for both to be taken up by the server.
    assert!(wait_for(|| s.counts().open.load(Ordering::Relaxed) == 2));
    let mut third = TcpStream::connect(s.addr).unwrap();
    third.set_read_timeout(Some(GUARD)).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(third.read(&mut buf).unwrap_or(0), 0);
    assert_eq!(s.counts().refused.load(Ordering::Relaxed), 1);
    drop(held);
}

#[test]
fn a_client_that_never_reads_the_response_is_cut() {
    // A body far larger than the socket buffers, so writing it blocks on the client.
    let limits = Limits {
        head_deadline: Duration::from_millis(300),
        write_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let big = "x".repeat(32 << 20);
    let s = start_with(limits, move |r: &mut Registry| {
        r.register("shadowtap_big", big.clone(), ConstGauge::new(1i64));
    });
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert!(wait_for(|| s.counts().open.load(Ordering::Relaxed) == 1));
    // Its slot comes back although the client is still there, not reading.
    assert!(wait_for(|| s.counts().open.load(Ordering::Relaxed) == 0));
    drop(c);
}

#[test]
fn shutdown_stops_the_server_and_its_connections() {
    // Long deadlines, so only the shutdown can end the held connection.
    let limits = Limits {
        head_deadline: Duration::from_secs(120),
        write_timeout: Duration::from_secs(120),
        shutdown_grace: Duration::from_millis(200),
        ..Limits::default()
    };
    let s = start(limits);
    assert!(scrape(s.addr).starts_with("HTTP/1.1 200 OK\r\n"));
    // One connection half-way through its head, one that sent nothing.
    let mut half = TcpStream::connect(s.addr).unwrap();
    half.set_read_timeout(Some(GUARD)).unwrap();
    half.write_all(b"GET /metr").unwrap();
    let silent = TcpStream::connect(s.addr).unwrap();
    silent.set_read_timeout(Some(GUARD)).unwrap();
    assert!(wait_for(|| s.counts().open.load(Ordering::Relaxed) == 2));

    let Server {
        addr,
        running,
        stop,
    } = s;
    let counts = running.counts.clone();
    stop.send(()).unwrap();
    let (joined, ended) = mpsc::channel();
    std::thread::spawn(move || {
        running.join();
        let _ = joined.send(());
    });
    ended
        .recv_timeout(GUARD)
        .expect("the server ended after shutdown");
    assert_eq!(counts.open.load(Ordering::Relaxed), 0);
    // Both connections are closed (end of stream or reset, not the guard)...
    for mut c in [half, silent] {
        let mut buf = [0u8; 64];
        match c.read(&mut buf) {
            Ok(n) => assert_eq!(n, 0),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
    // ...and the port no longer accepts.
    let refused = TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}
