//! `shadowtap mirror` live on the loopback interface (the tests run as root): real production
//! servers on 127.0.0.1 and ::1, a real client, and recording shadows on 127.0.0.1:0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::capture::{bin, capture_skipped};
use super::replay::{shadow, Behaviour};
use crate::support::schema::schema_errors;

/// A production server: answers every request 200 (reading Content-Length and chunked
/// bodies), keep-alive, on `addr` (`127.0.0.1:0` or `[::1]:0`).
pub(super) fn production(addr: &str) -> SocketAddr {
    let listener = TcpListener::bind(addr).expect("bind production");
    let local = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for conn in listener.incoming().take(256) {
            let Ok(conn) = conn else { continue };
            thread::spawn(move || answer_all(conn));
        }
    });
    local
}

fn answer_all(conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut writer = conn.try_clone().expect("clone");
    let mut reader = BufReader::new(conn);
    loop {
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
            if line == "\r\n" {
                break;
            }
        }
        if chunked {
            // Chunk sizes and data until the last chunk and the empty trailer line.
            loop {
                let mut size = String::new();
                if reader.read_line(&mut size).unwrap_or(0) == 0 {
                    return;
                }
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut data = vec![0; n + 2];
                if reader.read_exact(&mut data).is_err() {
                    return;
                }
                if n == 0 {
                    break;
                }
            }
        } else {
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
        }
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
    }
}

/// Sends `raw` on a connection and reads `answers` responses of the production server.
pub(super) fn exchange(conn: &mut TcpStream, raw: &str, answers: usize) {
    conn.write_all(raw.as_bytes()).unwrap();
    let want = answers * b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".len();
    let mut got = 0;
    let mut buf = [0u8; 1024];
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while got < want {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "production closed the connection");
        got += n;
    }
}

/// A running `mirror --format json`, started once it says it is capturing.
pub(super) struct Mirror {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

fn mirror(args: &[&str]) -> Mirror {
    mirror_on("lo", args)
}

/// A running `mirror -i INTERFACE --format json ARGS`.
pub(super) fn mirror_on(interface: &str, args: &[&str]) -> Mirror {
    let mut child = Command::new(bin())
        .args(["mirror", "-i", interface, "--format", "json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mirror");
    let mut reader = BufReader::new(child.stderr.take().expect("stderr"));
    // `--user` says it dropped privileges first; notes come before too.
    let mut before = String::new();
    let mut first = String::new();
    while first.is_empty() || first.contains("dropped privileges") || first.contains(": note: ") {
        before.push_str(&first);
        first.clear();
        reader.read_line(&mut first).expect("read stderr");
    }
    assert!(first.contains("mirroring "), "{before}{first}");
    let stderr = Arc::new(Mutex::new(before + &first));
    let rest = stderr.clone();
    thread::spawn(move || {
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            rest.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    Mirror { child, stderr }
}

impl Mirror {
    /// Sends `signal` (after `settle` for the last packets to be captured and sent) and returns
    /// the exit code, the JSON report and stderr.
    pub(super) fn stop(self, signal: &str, settle: Duration) -> (i32, Value, String) {
        thread::sleep(settle);
        let pid = self.child.id().to_string();
        Command::new("kill").args([signal, &pid]).status().unwrap();
        self.wait()
    }

    fn wait(mut self) -> (i32, Value, String) {
        let mut stdout = self.child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let mut child = self.child;
        thread::spawn(move || {
            let mut out = String::new();
            let _ = stdout.read_to_string(&mut out);
            let _ = tx.send((child.wait(), out));
        });
        let (status, out) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("mirror must end");
        let report = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("report is not JSON ({e}): {out}"));
        let err = self.stderr.lock().unwrap().clone();
        (status.unwrap().code().unwrap_or(-1), report, err)
    }
}

pub(super) fn targets(seen: &Mutex<Vec<Vec<u8>>>) -> Vec<String> {
    let mut t: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            String::from_utf8_lossy(r)
                .split(' ')
                .nth(1)
                .unwrap_or("")
                .to_string()
        })
        .collect();
    t.sort();
    t
}

#[test]
fn mirror_on_loopback_delivers_every_request_and_counts_them_exactly() {
    if capture_skipped() {
        return;
    }
    let v4 = production("127.0.0.1:0");
    let v6 = production("[::1]:0");
    let shadow = shadow(Behaviour::Answer(200));
    let dir = std::env::temp_dir().join(format!("shadowtap-mirror-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join("saved.pcap");
    let m = mirror(&[
        "--port",
        &v4.port().to_string(),
        "--port",
        &v6.port().to_string(),
        "--shadow",
        &shadow.url,
        "--allow-writes",
        "--interval",
        "200ms",
        "--save-pcap",
        saved.to_str().unwrap(),
    ]);
    let mut keepalive = TcpStream::connect(v4).unwrap();
    exchange(&mut keepalive, "GET /k1 HTTP/1.1\r\nHost: p\r\n\r\n", 1);
    exchange(&mut keepalive, "GET /k2?x=1 HTTP/1.1\r\nHost: p\r\n\r\n", 1);
    let mut pipelined = TcpStream::connect(v4).unwrap();
    exchange(
        &mut pipelined,
        "GET /p1 HTTP/1.1\r\nHost: p\r\n\r\nGET /p2 HTTP/1.1\r\nHost: p\r\n\r\n",
        2,
    );
    let mut posts = TcpStream::connect(v4).unwrap();
    exchange(
        &mut posts,
        "POST /post HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\n\r\nhello",
        1,
    );
    exchange(
        &mut posts,
        "POST /chunked HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
        1,
    );
    let mut six = TcpStream::connect(v6).unwrap();
    exchange(&mut six, "GET /v6 HTTP/1.1\r\nHost: p\r\n\r\n", 1);
    drop((keepalive, pipelined, posts, six));

    let (code, report, err) = m.stop("-INT", Duration::from_millis(800));
    assert_eq!(code, 0, "{err}");
    let expected = ["/chunked", "/k1", "/k2?x=1", "/p1", "/p2", "/post", "/v6"];
    assert_eq!(targets(&shadow.seen), expected, "{report}");
    assert_eq!(report["counts"]["seen"], 7, "{report}");
    assert_eq!(report["counts"]["replayed"], 7, "{report}");
    assert_eq!(report["shadow"]["status"]["2xx"], 7, "{report}");
    assert_eq!(report["production"]["status"]["2xx"], 7, "{report}");
    assert_eq!(report["capture"]["kernel_drops"], 0, "{report}");
    assert_eq!(schema_errors(&report), Vec::<String>::new());
    // The chunked body went de-chunked, every request marked.
    let seen = shadow.seen.lock().unwrap().clone();
    let chunked = seen
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .find(|r| r.starts_with("POST /chunked"))
        .unwrap();
    assert!(chunked.contains("Content-Length: 7\r\n") && chunked.ends_with("\r\n\r\nabcdefg"));
    assert!(seen
        .iter()
        .all(|r| String::from_utf8_lossy(r).contains("X-Shadowtap-Replay: 1\r\n")));
    // Status lines came every --interval.
    assert!(err.contains("req/s seen"), "{err}");

    // The saved capture holds the same requests for a later replay.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = Command::new(bin())
        .args(["inspect", "--format", "jsonl", saved.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 7);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn duration_and_sigterm_end_the_run_with_the_report() {
    if capture_skipped() {
        return;
    }
    let shadow = shadow(Behaviour::Answer(200));
    let start = Instant::now();
    let m = mirror(&["--port", "9", "--shadow", &shadow.url, "--duration", "1s"]);
    let (code, report, _) = m.wait();
    let took = start.elapsed();
    assert_eq!(code, 0);
    assert_eq!(report["counts"]["seen"], 0);
    assert!(report["capture"]["packets"].is_u64(), "{report}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );

    let m = mirror(&["--port", "9", "--shadow", &shadow.url]);
    let (code, report, _) = m.stop("-TERM", Duration::from_millis(100));
    assert_eq!(code, 0);
    assert_eq!(report["counts"]["replayed"], 0, "{report}");
}

#[test]
fn overload_drops_are_counted_by_reason_and_capture_keeps_up() {
    if capture_skipped() {
        return;
    }
    let prod = production("127.0.0.1:0");
    // A shadow that never answers, one connection, and the smallest queue: most requests
    // cannot be queued.
    let shadow = shadow(Behaviour::Silent);
    let m = mirror(&[
        "--port",
        &prod.port().to_string(),
        "--shadow",
        &shadow.url,
        "--concurrency",
        "1",
        "--queue",
        "1",
        "--timeout",
        "200ms",
    ]);
    let mut conns: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(prod).unwrap()).collect();
    let burst: String = (0..100)
        .map(|i| format!("GET /burst/{i} HTTP/1.1\r\nHost: p\r\n\r\n"))
        .collect();
    for c in &mut conns {
        exchange(c, &burst, 100);
    }
    let (code, report, err) = m.stop("-INT", Duration::from_millis(500));
    let counts = &report["counts"];
    assert_eq!(counts["seen"], 400, "{report}");
    let dropped = counts["dropped"]["queue_full"].as_u64().unwrap_or(0);
    assert!(dropped > 0, "{report}");
    let replayed = counts["replayed"].as_u64().unwrap();
    // Every request sent failed (the shadow never answers): a runtime failure. (When the
    // burst came in batches larger than the queue, nothing was sent: not representative.)
    assert_eq!(code, if replayed > 0 { 1 } else { 4 }, "{err}");
    assert_eq!(replayed + dropped, 400, "{report}");
    // What was sent failed as shadow errors (timeouts, then the open circuit), not lost.
    let errors: u64 = report["shadow"]["errors"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(errors, replayed, "{report}");
    assert_eq!(report["capture"]["kernel_drops"], 0, "{report}");
}

#[test]
fn the_rate_cap_drops_what_is_over_it_and_counts_it() {
    if capture_skipped() {
        return;
    }
    let prod = production("127.0.0.1:0");
    let shadow = shadow(Behaviour::Answer(200));
    let start = Instant::now();
    let m = mirror(&[
        "--port",
        &prod.port().to_string(),
        "--shadow",
        &shadow.url,
        "--rate",
        "5",
    ]);
    let mut conn = TcpStream::connect(prod).unwrap();
    let burst: String = (0..100)
        .map(|i| format!("GET /burst/{i} HTTP/1.1\r\nHost: p\r\n\r\n"))
        .collect();
    exchange(&mut conn, &burst, 100);
    let (code, report, err) = m.stop("-INT", Duration::from_millis(300));
    let run = start.elapsed().as_secs_f64();
    // Most of the burst dropped: the run is not representative of the traffic (exit 4).
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("not representative"), "{err}");
    let counts = &report["counts"];
    assert_eq!(counts["seen"], 100, "{report}");
    let replayed = counts["replayed"].as_u64().unwrap();
    // A burst of one second's worth passes, then 5 a second at most over the whole run.
    assert!(replayed >= 5, "{report}");
    assert!(replayed as f64 <= 5.0 + 5.0 * run, "{replayed} in {run} s");
    assert_eq!(counts["dropped"]["rate_limit"], 100 - replayed, "{report}");
    assert_eq!(shadow.seen.lock().unwrap().len() as u64, replayed);
    assert_eq!(schema_errors(&report), Vec::<String>::new());
}

#[test]
fn a_shadow_that_is_production_never_receives_its_traffic_twice() {
    // Production is the recording server; the shadow URL points at it too. Once the
    // self-exclusion filter hid production's traffic and the run said `seen 0`; now the
    // shadow is refused before capture starts (more cases in production.rs).
    let prod = shadow(Behaviour::Answer(200));
    let port = prod.url.rsplit(':').next().unwrap().to_string();
    let out = Command::new(bin())
        .args([
            "mirror",
            "--interface",
            "lo",
            "--port",
            &port,
            "--shadow",
            &prod.url,
        ])
        .args(["--duration", "2s"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("would be captured as production"), "{err}");
    assert!(prod.seen.lock().unwrap().is_empty());
}

/// A recording shadow on a fixed address that can be taken down and brought back.
struct Restartable {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Restartable {
    fn start(addr: &str) -> Restartable {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Restartable {
            addr,
            up: Arc::new(AtomicBool::new(true)),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        r.serve(listener);
        r
    }

    fn serve(&self, listener: TcpListener) {
        let (up, seen) = (self.up.clone(), self.seen.clone());
        listener.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            while up.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (up, seen) = (up.clone(), seen.clone());
                        thread::spawn(move || {
                            conn.set_nonblocking(false).unwrap();
                            conn.set_read_timeout(Some(Duration::from_millis(50)))
                                .unwrap();
                            let mut w = conn.try_clone().unwrap();
                            let mut r = BufReader::new(conn);
                            let mut line = String::new();
                            while up.load(Ordering::SeqCst) {
                                match r.read_line(&mut line) {
                                    Ok(0) => return,
                                    Ok(_) if line == "\r\n" => {
                                        let _ = w.write_all(
                                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                                        );
                                        line.clear();
                                    }
                                    Ok(_) if line.starts_with("GET ") => {
                                        let t = line.split(' ').nth(1).unwrap_or("").to_string();
                                        seen.lock().unwrap().push(t);
                                        line.clear();
                                    }
                                    Ok(_) => line.clear(),
                                    Err(_) => {}
                                }
                            }
                            // Down: the connection closes with the server.
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(200));
    }

    fn up_again(&self) {
        self.up.store(true, Ordering::SeqCst);
        let listener = TcpListener::bind(self.addr).unwrap();
        self.serve(listener);
    }
}

#[test]
fn mirroring_resumes_when_the_shadow_comes_back() {
    if capture_skipped() {
        return;
    }
    let prod = production("127.0.0.1:0");
    let shadow = Restartable::start("127.0.0.1:0");
    let m = mirror(&[
        "--port",
        &prod.port().to_string(),
        "--shadow",
        &format!("http://{}", shadow.addr),
        "--timeout",
        "500ms",
    ]);
    let send = |names: &[&str]| {
        let mut c = TcpStream::connect(prod).unwrap();
        for n in names {
            exchange(&mut c, &format!("GET /{n} HTTP/1.1\r\nHost: p\r\n\r\n"), 1);
        }
        thread::sleep(Duration::from_millis(400));
    };
    send(&["a1", "a2", "a3"]);
    shadow.down();
    send(&["b1", "b2", "b3"]);
    // Past the circuit breaker's open time, so the next request probes the shadow.
    thread::sleep(Duration::from_millis(1200));
    shadow.up_again();
    send(&["c1", "c2", "c3"]);
    let (code, report, err) = m.stop("-INT", Duration::from_millis(300));
    assert_eq!(code, 0, "{err}");
    let mut seen = shadow.seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["/a1", "/a2", "/a3", "/c1", "/c2", "/c3"], "{report}");
    assert_eq!(report["counts"]["replayed"], 9, "{report}");
    let errors = &report["shadow"]["errors"];
    let failed = errors["connect"].as_u64().unwrap_or(0)
        + errors["circuit_open"].as_u64().unwrap_or(0)
        + errors["reset"].as_u64().unwrap_or(0);
    assert_eq!(failed, 3, "{report}");
}

#[test]
fn metrics_are_served_in_the_prometheus_format_while_mirroring() {
    if capture_skipped() {
        return;
    }
    let prod = production("127.0.0.1:0");
    let shadow = shadow(Behaviour::Answer(200));
    let metrics = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let m = mirror(&[
        "--port",
        &prod.port().to_string(),
        "--shadow",
        &shadow.url,
        "--metrics",
        &metrics.to_string(),
    ]);
    let mut c = TcpStream::connect(prod).unwrap();
    exchange(&mut c, "GET /m1 HTTP/1.1\r\nHost: p\r\n\r\n", 1);
    exchange(&mut c, "GET /m2 HTTP/1.1\r\nHost: p\r\n\r\n", 1);
    thread::sleep(Duration::from_millis(500));
    let mut scrape = TcpStream::connect(metrics).unwrap();
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    scrape.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("text/plain; version=0.0.4"), "{body}");
    assert!(
        body.contains("\nshadowtap_requests_replayed_total 2\n"),
        "{body}"
    );
    assert!(
        body.contains("shadowtap_ttfb_seconds_count{side=\"shadow\"} 2\n"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE shadowtap_ttfb_seconds histogram"),
        "{body}"
    );
    let (code, report, _) = m.stop("-INT", Duration::ZERO);
    assert_eq!(code, 0);
    assert_eq!(report["counts"]["replayed"], 2);
}

#[test]
fn user_drops_privileges_after_opening_the_capture() {
    if capture_skipped() {
        return;
    }
    let prod = production("127.0.0.1:0");
    let shadow = shadow(Behaviour::Answer(200));
    // A directory only root may write: the report file must be created before the drop.
    let dir = std::env::temp_dir().join(format!("shadowtap-user-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report_path = dir.join("report.json");
    let m = mirror(&[
        "--port",
        &prod.port().to_string(),
        "--shadow",
        &shadow.url,
        "--user",
        "nobody",
        "--report-json",
        report_path.to_str().unwrap(),
    ]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", m.child.id())).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let nobody = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let nobody = String::from_utf8_lossy(&nobody.stdout).trim().to_string();
    assert!(
        uids.split_whitespace().skip(1).all(|u| u == nobody),
        "{uids}"
    );
    let mut c = TcpStream::connect(prod).unwrap();
    exchange(&mut c, "GET /as-nobody HTTP/1.1\r\nHost: p\r\n\r\n", 1);
    let (code, report, err) = m.stop("-INT", Duration::from_millis(500));
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["counts"]["replayed"], 1, "{report}");
    assert_eq!(targets(&shadow.seen), ["/as-nobody"]);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(saved["counts"], report["counts"]);
    let _ = std::fs::remove_dir_all(&dir);

    let bad = Command::new(bin())
        .args([
            "mirror",
            "-i",
            "lo",
            "--port",
            "1",
            "--shadow",
            &shadow.url,
            "--user",
            "no-such-user-here",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no such user"));
}

#[test]
fn demo_live_mirrors_every_request_of_its_clients() {
    if capture_skipped() {
        return;
    }
    let out = Command::new(bin())
        .args(["demo", "--live"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("600 seen") && text.contains("600 replayed"),
        "{text}"
    );
    assert!(
        text.contains("GET /api/cart                            200 -> 404"),
        "{text}"
    );
    assert!(text.contains("0 dropped by the kernel"), "{text}");
}

/// Sends `n` requests to production on one connection, as fast as it answers.
fn burst(prod: SocketAddr, n: usize) {
    let mut conn = TcpStream::connect(prod).unwrap();
    let requests: String = (0..n)
        .map(|i| format!("GET /queued/{i} HTTP/1.1\r\nHost: p\r\n\r\n"))
        .collect();
    exchange(&mut conn, &requests, n);
}

#[test]
fn the_end_of_a_mirror_run_drains_within_its_deadline_and_counts_what_is_left() {
    if capture_skipped() {
        return;
    }
    let prod = production("127.0.0.1:0");
    // One request at a time, each held 1.5 s: 50 queued would take 75 s to send.
    let shadow = shadow(Behaviour::Slow(1500));
    let m = mirror(&[
        "--port",
        &prod.port().to_string(),
        "--shadow",
        &shadow.url,
        "--concurrency",
        "1",
        "--duration",
        "2s",
        "--drain-timeout",
        "1s",
        "--timeout",
        "10s",
    ]);
    burst(prod, 50);
    // The hang guard (30 s) in `wait`, not a timing: undrained, this run takes over a minute.
    let (code, report, err) = m.wait();
    let counts = &report["counts"];
    assert_eq!(counts["seen"], 50, "{report}");
    let shutdown = counts["dropped"]["shutdown"].as_u64().unwrap_or(0);
    assert!(shutdown > 0, "{report}");
    let replayed = counts["replayed"].as_u64().unwrap();
    assert_eq!(replayed + shutdown, 50, "{report}");
    // What was sent and still unanswered at the deadline was cut, as the shadow error
    // `shutdown`; nothing else failed.
    let errors = &report["shadow"]["errors"];
    assert_eq!(
        errors["shutdown"].as_u64().unwrap() + report["shadow"]["status"]["2xx"].as_u64().unwrap(),
        replayed,
        "{report}"
    );
    // Far less than 95% replayed: not representative.
    assert_eq!(code, 4, "{err}");
    assert_eq!(schema_errors(&report), Vec::<String>::new());
}

#[test]
fn a_second_signal_ends_the_mirror_drain_at_once() {
    if capture_skipped() {
        return;
    }
    let prod = production("127.0.0.1:0");
    // Requests held 20 s, a drain deadline of a minute: only the second signal can end the
    // run before the hang guard.
    let shadow = shadow(Behaviour::Slow(20_000));
    let m = mirror(&[
        "--port",
        &prod.port().to_string(),
        "--shadow",
        &shadow.url,
        "--concurrency",
        "1",
        "--drain-timeout",
        "60s",
        "--timeout",
        "60s",
    ]);
    burst(prod, 10);
    for _ in 0..500 {
        if !shadow.seen.lock().unwrap().is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    // Time for the last packets to be captured, then the first signal: the normal end.
    thread::sleep(Duration::from_millis(300));
    let pid = m.child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let (code, report, err) = m.stop("-INT", Duration::from_millis(300));
    let counts = &report["counts"];
    assert_eq!(counts["seen"], 10, "{report}");
    assert_eq!(counts["replayed"], 1, "{report}");
    assert_eq!(report["shadow"]["errors"]["shutdown"], 1, "{report}");
    assert_eq!(counts["dropped"]["shutdown"], 9, "{report}");
    // A signal is the normal end of a mirror run: the exit code is the run's own (here 4,
    // one of ten replayed), never 130.
    assert_eq!(code, 4, "{err}");
}
