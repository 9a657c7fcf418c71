//! `mirror` and `capture` run in-process over a capture file as their live source (no
//! privilege, no network namespace): a real shadow server on 127.0.0.1:0, real files in a
//! temporary directory, and the injected [`Stop`] in place of SIGINT and SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use clap::Parser;
use serde_json::Value;

use crate::capture::live::{FileSource, Source, Stop};
use crate::capture::CaptureReader;
use crate::cli::{Cli, Command};
use crate::commands::{capture, mirror, Status};
use crate::http1::Tracker;
use crate::pipeline::{self, Chain, Filter};
use crate::settings::Limits;

/// Its server is 10.0.0.2:80, never the shadow's address.
const FIXTURE: &str = "tests/fixtures/keepalive-ethernet.pcap";

/// The longest a run may take before the test gives up on it (it should take well under a
/// second); a bound, not a measurement.
const RUN_BOUND: Duration = Duration::from_secs(60);

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)
}

fn source(paced: bool, idle_at_end: bool) -> Source {
    Source::File(FileSource {
        path: fixture(),
        paced,
        idle_at_end,
    })
}

/// The exchanges `inspect` finds in a capture file: the same chain, run to the end.
fn exchanges_in(path: &Path) -> u64 {
    let limits = Limits::default();
    let mut frames = CaptureReader::open(path).expect("open the capture");
    let mut exchanges = 0u64;
    let tracker = Tracker::new(limits.http1.clone(), |_| exchanges += 1);
    let mut chain = Chain::new(limits.wire.clone(), limits.reassembly.clone(), tracker);
    pipeline::drive(&mut frames, &mut Filter::none(), &mut chain, |_| true);
    chain.finish();
    drop(chain);
    exchanges
}

fn parse(args: &[&str]) -> Command {
    let line = ["shadowtap"].iter().chain(args);
    Cli::try_parse_from(line)
        .expect("valid command line")
        .command
}

/// A shadow on 127.0.0.1:0 answering every request 200, keep-alive. Each request line is
/// kept, and `on_request` is called with how many came so far.
fn shadow(
    on_request: impl Fn(usize) + Send + Sync + 'static,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    shadow_that(true, on_request)
}

/// [`shadow`], or (`answer` false) one that reads a request and never answers it, holding
/// the connection until the client gives up (or 10 s pass).
fn shadow_that(
    answer: bool,
    on_request: impl Fn(usize) + Send + Sync + 'static,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the shadow");
    let addr = listener.local_addr().expect("shadow address");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (record, on_request) = (seen.clone(), Arc::new(on_request));
    thread::spawn(move || {
        for conn in listener.incoming().take(16) {
            let Ok(conn) = conn else { continue };
            let (record, on_request) = (record.clone(), on_request.clone());
            thread::spawn(move || serve(conn, answer, &record, &*on_request));
        }
    });
    (addr, seen)
}

fn serve(conn: TcpStream, answer: bool, record: &Mutex<Vec<String>>, on_request: &dyn Fn(usize)) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut first = String::new();
        if reader.read_line(&mut first).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let n = {
            let mut seen = record.lock().expect("requests");
            seen.push(first.trim_end().to_string());
            seen.len()
        };
        on_request(n);
        if !answer {
            let _ = reader.read_to_end(&mut Vec::new());
            return;
        }
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
    }
}

/// Runs `mirror` with these flags over `source` on its own thread, bounded by [`RUN_BOUND`]:
/// the status, stdout and stderr.
fn run_mirror(flags: &[&str], source: Source, stop: Stop) -> (Status, String, String) {
    let Command::Mirror(args) = parse(&[&["mirror"], flags].concat()) else {
        panic!("not mirror");
    };
    let (done, ended) = mpsc::channel();
    thread::spawn(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = mirror::run(*args, &source, &stop, &mut out, &mut err);
        let _ = done.send((status.map_err(|e| format!("{e:#}")), out, err));
    });
    let (status, out, err) = ended.recv_timeout(RUN_BOUND).expect("mirror ended");
    let err = String::from_utf8_lossy(&err).into_owned();
    let status = status.unwrap_or_else(|e| panic!("mirror failed: {e}\n{err}"));
    (status, String::from_utf8_lossy(&out).into_owned(), err)
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not a JSON report ({e}): {out}"))
}

#[test]
fn mirror_over_a_capture_file_delivers_and_counts_every_request() {
    let want = exchanges_in(&fixture());
    assert!(want > 0, "the fixture holds exchanges");
    let (shadow, delivered) = shadow(|_| {});
    let url = format!("http://{shadow}");
    let flags = [
        "-i", "lo", "--port", "80", "--shadow", &url, "--format", "json",
    ];
    // The end of the file ends the run, as --duration would.
    let (status, out, err) = run_mirror(&flags, source(false, false), Stop::new());
    assert_eq!(status, Status::Success, "{err}");
    let report = json(&out);
    assert_eq!(report["counts"]["seen"], want, "{out}");
    assert_eq!(report["counts"]["replayed"], want, "{out}");
    assert_eq!(report["shadow"]["status"]["2xx"], want, "{out}");
    let delivered = delivered.lock().expect("requests").clone();
    assert_eq!(delivered.len() as u64, want, "{delivered:?}");
    assert!(
        delivered.iter().any(|r| r == "GET /health HTTP/1.1"),
        "{delivered:?}"
    );
    let packets = report["capture"]["packets"].as_u64().expect("packets");
    assert!(packets > 0, "{out}");
    assert_eq!(report["capture"]["kernel_drops"], 0, "{out}");
}

#[test]
fn a_stop_ends_a_mirror_that_would_go_on_and_the_report_is_kept() {
    let want = exchanges_in(&fixture());
    let stop = Stop::new();
    let trigger = stop.clone();
    let target = usize::try_from(want).expect("small");
    // The shadow stops the run once it has every request: without the stop, the source
    // idles after the file, as a quiet interface does, and the run would never end.
    let (shadow, delivered) = shadow(move |n| {
        if n == target {
            trigger.trigger();
        }
    });
    let url = format!("http://{shadow}");
    let flags = [
        "-i", "lo", "--port", "80", "--shadow", &url, "--format", "json",
    ];
    let (status, out, err) = run_mirror(&flags, source(true, true), stop.clone());
    assert_eq!(status, Status::Success, "{err}");
    assert!(stop.asked());
    let report = json(&out);
    assert_eq!(report["counts"]["seen"], want, "{out}");
    assert_eq!(report["counts"]["replayed"], want, "{out}");
    assert_eq!(delivered.lock().expect("requests").len() as u64, want);
}

#[test]
fn a_second_stop_cuts_the_mirror_drain_at_once() {
    let stop = Stop::new();
    let trigger = stop.clone();
    // The shadow never answers, and the drain may take ten minutes: only the second stop,
    // right after the first (the normal end), can end the run within the bound.
    let (shadow, delivered) = shadow_that(false, move |_| {
        trigger.trigger();
        trigger.trigger();
    });
    let url = format!("http://{shadow}");
    let flags = [
        "-i",
        "lo",
        "--port",
        "80",
        "--shadow",
        &url,
        "--format",
        "json",
        "--concurrency",
        "1",
        "--drain-timeout",
        "10m",
        "--timeout",
        "10m",
    ];
    let (_, out, err) = run_mirror(&flags, source(false, true), stop);
    let report = json(&out);
    let counts = &report["counts"];
    let seen = counts["seen"].as_u64().expect("seen");
    assert_eq!(counts["replayed"], 1, "{out}\n{err}");
    assert_eq!(report["shadow"]["errors"]["shutdown"], 1, "{out}");
    assert_eq!(counts["dropped"]["shutdown"], seen - 1, "{out}");
    assert_eq!(delivered.lock().expect("requests").len(), 1);
}

#[test]
fn a_stop_before_the_first_frame_ends_mirror_with_an_empty_report() {
    let (shadow, delivered) = shadow(|_| {});
    let url = format!("http://{shadow}");
    let stop = Stop::new();
    stop.trigger();
    let flags = [
        "-i", "lo", "--port", "80", "--shadow", &url, "--format", "json",
    ];
    let (status, out, err) = run_mirror(&flags, source(false, true), stop);
    assert_eq!(status, Status::Success, "{err}");
    let report = json(&out);
    assert_eq!(report["counts"]["seen"], 0, "{out}");
    assert_eq!(report["capture"]["packets"], 0, "{out}");
    assert!(delivered.lock().expect("requests").is_empty());
}

#[test]
fn mirror_refuses_a_loopback_shadow_whose_port_the_capture_takes_in() {
    let (shadow, delivered) = shadow(|_| {});
    let url = format!("http://{shadow}");
    // No --port: all TCP on lo, the shadow's port included.
    let flags = ["-i", "lo", "--shadow", &url];
    let (status, _, err) = run_mirror(&flags, source(false, false), Stop::new());
    assert_eq!(status, Status::BadInput, "{err}");
    assert!(err.contains("is on this machine"), "{err}");
    assert!(delivered.lock().expect("requests").is_empty());
}

/// A directory of its own under the system's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "shadowtap-live-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

/// Runs `capture` with these flags over `source`: the status, stdout and stderr.
fn run_capture(flags: &[&str], source: &Source) -> (Status, String, String) {
    let Command::Capture(args) = parse(&[&["capture"], flags].concat()) else {
        panic!("not capture");
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = capture::run(&args, source, &Stop::new(), &mut out, &mut err);
    let err = String::from_utf8_lossy(&err).into_owned();
    let status = status.unwrap_or_else(|e| panic!("capture failed: {e:#}\n{err}"));
    (status, String::from_utf8_lossy(&out).into_owned(), err)
}

/// The frames of a capture file.
fn frames_in(path: &Path) -> u64 {
    let mut reader = CaptureReader::open(path).expect("open the capture");
    let mut n = 0;
    while reader.next_frame().expect("readable").is_some() {
        n += 1;
    }
    n
}

#[test]
fn capture_count_stops_after_that_many_exchanges_and_the_file_reads_back() {
    let total = exchanges_in(&fixture());
    assert!(total >= 2, "the fixture holds more exchanges than --count");
    let dir = temp_dir("count");
    let path = dir.join("out.pcap");
    let file = path.to_str().expect("utf-8 path");
    let (status, out, err) = run_capture(
        &["-i", "lo", "-w", file, "--count", "1"],
        &source(false, false),
    );
    assert_eq!(status, Status::Success, "{err}");
    assert!(out.contains("1 HTTP exchanges"), "{out}");
    assert_eq!(exchanges_in(&path), 1, "{out}");
    let written = frames_in(&path);
    assert!(
        out.contains(&format!("captured {written} packets")),
        "{out}"
    );
    assert!(
        written < frames_in(&fixture()),
        "stopped before the end: {out}"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn capture_of_a_whole_source_counts_its_exchanges_from_the_file_written() {
    let dir = temp_dir("whole");
    let path = dir.join("out.pcap");
    let file = path.to_str().expect("utf-8 path");
    let (status, out, err) = run_capture(&["-i", "lo", "-w", file], &source(false, false));
    assert_eq!(status, Status::Success, "{err}");
    let want = exchanges_in(&fixture());
    assert!(out.contains(&format!("{want} HTTP exchanges")), "{out}");
    assert_eq!(frames_in(&path), frames_in(&fixture()), "{out}");
    assert!(
        out.contains("0 dropped by the kernel, 0 by the interface"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}
