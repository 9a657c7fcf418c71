//! The `/metrics` endpoint (`mirror --metrics ADDR`): a deliberately small HTTP/1.1 server
//! that answers `GET /metrics` with what a render function returns (the Prometheus text
//! format) and closes the connection.
//!
//! Connections are served concurrently, one thread each, at most [`Limits::connections`] at a
//! time: beyond that a connection is closed at once and counted, so a scraper opening too many
//! cannot take more. Each connection has one deadline for its whole request head and a cap on
//! its size, so a client dribbling a byte at a time holds only its own slot, and only until
//! the deadline. The listener is given, so tests bind `127.0.0.1:0` and drive it in-process.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bounds of the endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more are closed at once and counted.
    pub connections: usize,
    /// Time for a whole request head, from accept to its blank line.
    pub head_deadline: Duration,
    /// Largest request head read, in bytes.
    pub max_head: usize,
    /// Time for the response to be written.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connections: 16,
            head_deadline: Duration::from_secs(5),
            max_head: 8 * 1024,
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// What the endpoint counts about itself, reported with the metrics it serves.
#[derive(Debug, Default)]
pub struct Counts {
    /// Connections being served now.
    pub open: AtomicUsize,
    /// Connections closed at once because [`Limits::connections`] were open.
    pub refused: AtomicU64,
    /// Connections closed because their request head missed the deadline or the size cap.
    pub bad_heads: AtomicU64,
}

/// Starts serving `listener` on a thread of its own until the process ends; `render` makes
/// the body of each scrape.
pub fn spawn<F>(listener: TcpListener, limits: Limits, render: F) -> std::io::Result<Arc<Counts>>
where
    F: Fn() -> String + Send + Sync + 'static,
{
    let counts = Arc::new(Counts::default());
    let (c, render) = (counts.clone(), Arc::new(render));
    std::thread::Builder::new()
        .name("shadowtap-metrics".into())
        .spawn(move || accept(listener, limits, &c, &render))?;
    Ok(counts)
}

/// Releases a connection's slot when its thread ends, however it ends.
struct Slot(Arc<Counts>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn accept<F>(listener: TcpListener, limits: Limits, counts: &Arc<Counts>, render: &Arc<F>)
where
    F: Fn() -> String + Send + Sync + 'static,
{
    for conn in listener.incoming() {
        let Ok(conn) = conn else {
            continue;
        };
        if counts.open.fetch_add(1, Ordering::Relaxed) >= limits.connections {
            counts.open.fetch_sub(1, Ordering::Relaxed);
            counts.refused.fetch_add(1, Ordering::Relaxed);
            continue; // dropping `conn` closes it
        }
        let slot = Slot(counts.clone());
        let render = render.clone();
        let spawned = std::thread::Builder::new()
            .name("shadowtap-metrics-conn".into())
            .spawn(move || {
                let counts = slot.0.clone();
                serve(conn, limits, &counts, &*render);
                drop(slot);
            });
        if spawned.is_err() {
            counts.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reads one request head within the deadline and answers it.
fn serve(mut conn: TcpStream, limits: Limits, counts: &Counts, render: &dyn Fn() -> String) {
    let Some(head) = read_head(&mut conn, limits) else {
        counts.bad_heads.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let wanted = head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics?");
    let response = if wanted {
        let body = render() + &own_metrics(counts);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
    };
    let _ = conn.set_write_timeout(Some(limits.write_timeout));
    let _ = conn.write_all(response.as_bytes());
}

/// The request head, or `None` when it is not whole by the deadline, too large, or the
/// connection ends first.
fn read_head(conn: &mut TcpStream, limits: Limits) -> Option<Vec<u8>> {
    let deadline = Instant::now() + limits.head_deadline;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= limits.max_head {
            return None;
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
            return None;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    Some(head)
}

/// The endpoint's own counters, in the exposition format.
fn own_metrics(counts: &Counts) -> String {
    let mut o = String::new();
    for (name, help, value) in [
        (
            "shadowtap_metrics_connections_refused_total",
            "Metrics connections closed at once because the most allowed were open.",
            counts.refused.load(Ordering::Relaxed),
        ),
        (
            "shadowtap_metrics_bad_requests_total",
            "Metrics connections closed because the request head was late or too large.",
            counts.bad_heads.load(Ordering::Relaxed),
        ),
    ] {
        o += &format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");
    }
    o
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;

    use super::*;

    /// Hang guard for every read: generous, never an assertion on time.
    const GUARD: Duration = Duration::from_secs(30);

    fn start(limits: Limits) -> (std::net::SocketAddr, Arc<Counts>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = spawn(listener, limits, || "shadowtap_up 1\n".to_string()).unwrap();
        (addr, counts)
    }

    fn scrape(addr: std::net::SocketAddr) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(GUARD)).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        c.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn a_scrape_gets_the_rendered_metrics() {
        let (addr, _) = start(Limits::default());
        let text = scrape(addr);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("\r\n\r\nshadowtap_up 1\n"), "{text}");
        assert!(text.contains("shadowtap_metrics_connections_refused_total 0\n"));
    }

    #[test]
    fn a_client_dribbling_bytes_does_not_block_another_scrape() {
        // A deadline longer than the test, so only concurrency can answer the second client.
        let limits = Limits {
            head_deadline: Duration::from_secs(120),
            ..Limits::default()
        };
        let (addr, _) = start(limits);
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
        let limits = Limits {
            head_deadline: Duration::from_millis(200),
            ..Limits::default()
        };
        let (addr, counts) = start(limits);
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(GUARD)).unwrap();
        c.write_all(b"GET /metr").unwrap();
        // The server closes without answering: end of stream, not the guard.
        let mut buf = [0u8; 64];
        assert_eq!(c.read(&mut buf).unwrap(), 0);
        assert!(scrape(addr).contains("shadowtap_metrics_bad_requests_total 1\n"));
        assert_eq!(counts.bad_heads.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_head_larger_than_the_cap_is_refused() {
        let (addr, counts) = start(Limits::default());
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(GUARD)).unwrap();
        let _ = c.write_all(&vec![b'a'; 16 * 1024]);
        let mut text = String::new();
        let _ = c.read_to_string(&mut text);
        assert!(text.is_empty(), "{text}");
        assert_eq!(counts.bad_heads.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn connections_beyond_the_cap_are_closed_at_once_and_counted() {
        let limits = Limits {
            connections: 2,
            head_deadline: Duration::from_secs(120),
            ..Limits::default()
        };
        let (addr, counts) = start(limits);
        let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // Bounded wait for both to be taken up by the server.
        for _ in 0..3000 {
            if counts.open.load(Ordering::Relaxed) == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(counts.open.load(Ordering::Relaxed), 2);
        let mut third = TcpStream::connect(addr).unwrap();
        third.set_read_timeout(Some(GUARD)).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(third.read(&mut buf).unwrap_or(0), 0);
        assert_eq!(counts.refused.load(Ordering::Relaxed), 1);
        drop(held);
    }
}
