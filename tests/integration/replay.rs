//! `shadowtap replay` against real shadow servers on 127.0.0.1:0 that record exactly what
//! they receive.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use super::inspect::fixture;
use crate::support::schema::schema_errors;

/// How the shadow answers.
#[derive(Clone, Copy)]
pub(crate) enum Behaviour {
    /// `status` with a small body, keep-alive.
    Answer(u16),
    /// Reads requests and never answers.
    Silent,
    /// Closes the connection as soon as a request arrives.
    Reset,
    /// Answers with a 100 MB body.
    Huge,
    /// Sends the response one byte every 100 ms.
    Trickle,
    /// Holds each request this many milliseconds, then answers 200.
    Slow(u64),
}

/// A shadow that records every request it reads, byte for byte.
pub(crate) struct Shadow {
    pub(crate) url: String,
    pub(crate) seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

pub(crate) fn shadow(behaviour: Behaviour) -> Shadow {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    thread::spawn(move || {
        for conn in listener.incoming().take(64) {
            let Ok(conn) = conn else { continue };
            let record = record.clone();
            thread::spawn(move || serve(conn, behaviour, &record));
        }
    });
    Shadow { url, seen }
}

fn serve(conn: TcpStream, behaviour: Behaviour, record: &Mutex<Vec<Vec<u8>>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut writer = conn.try_clone().expect("clone");
    let mut reader = BufReader::new(conn);
    loop {
        let mut raw = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                return;
            }
            let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
            if let Some(v) = text.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            raw.extend_from_slice(&line);
            if line == b"\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        raw.extend_from_slice(&body);
        record.lock().expect("lock").push(raw);
        match behaviour {
            Behaviour::Answer(status) => {
                let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok");
                if writer.write_all(resp.as_bytes()).is_err() {
                    return;
                }
            }
            Behaviour::Silent => thread::sleep(Duration::from_secs(3)),
            Behaviour::Reset => return,
            Behaviour::Huge => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 100 << 20);
                if writer.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let block = vec![b'x'; 1 << 20];
                for _ in 0..100 {
                    if writer.write_all(&block).is_err() {
                        return;
                    }
                }
            }
            Behaviour::Slow(ms) => {
                thread::sleep(Duration::from_millis(ms));
                let resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                if writer.write_all(resp.as_bytes()).is_err() {
                    return;
                }
            }
            Behaviour::Trickle => {
                for b in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" {
                    thread::sleep(Duration::from_millis(100));
                    if writer.write_all(&[*b]).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn replay(files: &[&str], shadow_url: &str, extra: &[&str]) -> (i32, Value, String) {
    let mut args: Vec<String> = vec!["replay".into()];
    args.extend(files.iter().map(|f| fixture(f)));
    args.extend([
        "--shadow".into(),
        shadow_url.to_string(),
        "--format".into(),
        "json".into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(&args)
        .output()
        .expect("running shadowtap");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("report is not JSON ({e}): {stdout}"));
    (
        out.status.code().unwrap_or(-1),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sum(v: &Value) -> u64 {
    v.as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

/// seen = incomplete + filtered + dropped + replayed (DESIGN.md).
fn assert_accounted(report: &Value) {
    let c = &report["counts"];
    let seen = c["seen"].as_u64().unwrap();
    let parts = c["replayed"].as_u64().unwrap()
        + sum(&c["filtered"])
        + sum(&c["dropped"])
        + sum(&c["incomplete"]);
    assert_eq!(seen, parts, "{c}");
}

#[test]
fn requests_arrive_byte_for_byte_with_only_the_documented_rewrites() {
    let s = shadow(Behaviour::Answer(200));
    let (code, report, err) = replay(&["keepalive-ethernet.pcap"], &s.url, &["--speed", "max"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["counts"]["replayed"], 3);
    let seen = s.seen.lock().unwrap().clone();
    let authority = s.url.trim_start_matches("http://");
    // The requests of one captured connection go independently (no --keep-order): in any
    // order.
    let first = seen
        .iter()
        .map(|r| String::from_utf8(r.clone()).unwrap())
        .find(|r| r.starts_with("GET /api/users/1 "))
        .expect("GET /api/users/1 arrived");
    assert_eq!(
        first,
        format!("GET /api/users/1 HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: fixture\r\nX-Shadowtap-Replay: 1\r\n\r\n")
    );
    assert_accounted(&report);
}

#[test]
fn bodies_are_sent_de_chunked_with_a_content_length() {
    let s = shadow(Behaviour::Answer(201));
    let (code, report, err) = replay(
        &["chunked.pcap"],
        &s.url,
        &["--speed", "max", "--allow-writes", "--host-header", "keep"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["counts"]["replayed"], 1, "{report}");
    let seen = s.seen.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&seen[0]).into_owned();
    assert!(text.contains("\r\nContent-Length: 11\r\n"), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("transfer-encoding"),
        "{text}"
    );
    assert!(text.contains("\r\nHost: shop.example\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nhello world"), "{text}");
}

#[test]
fn writes_are_filtered_by_default_and_every_request_is_accounted() {
    let s = shadow(Behaviour::Answer(200));
    let (_, report, _) = replay(
        &["expect-continue-and-head.pcap"],
        &s.url,
        &["--speed", "max"],
    );
    // POST /upload is a write; HEAD /upload and GET /after-head are replayed.
    assert_eq!(report["counts"]["filtered"]["method"], 1, "{report}");
    assert_eq!(report["counts"]["replayed"], 2);
    assert_accounted(&report);
    let mut methods: Vec<String> = s
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(&r[..4]).into_owned())
        .collect();
    // Independent requests arrive in any order.
    methods.sort();
    assert_eq!(methods, ["GET ", "HEAD"]);
}

#[test]
fn selection_flags_narrow_what_is_sent() {
    let s = shadow(Behaviour::Answer(200));
    let (_, report, _) = replay(
        &["keepalive-ethernet.pcap"],
        &s.url,
        &["--speed", "max", "--exclude-path", "^/health"],
    );
    assert_eq!(report["counts"]["filtered"]["path"], 1);
    assert_eq!(report["counts"]["replayed"], 2);
    let (_, report, _) = replay(
        &["keepalive-ethernet.pcap"],
        &s.url,
        &["--speed", "max", "--sample", "0"],
    );
    assert_eq!(report["counts"]["filtered"]["sample"], 3);
    assert_accounted(&report);
}

#[test]
fn status_differences_are_mismatches_and_5xx_are_errors() {
    let s = shadow(Behaviour::Answer(500));
    let (_, report, _) = replay(&["keepalive-ethernet.pcap"], &s.url, &["--speed", "max"]);
    assert_eq!(report["mismatch"]["status"], 3);
    assert_eq!(report["shadow"]["status"]["5xx"], 3);
    assert_eq!(report["shadow"]["error_rate"], 1.0);
    assert_eq!(report["production"]["error_rate"], 0.0);
    assert_eq!(
        report["production"]["ttfb_us"]["p50"]
            .as_u64()
            .map(|v| (1590..=1610).contains(&v)),
        Some(true)
    );
    assert!(
        report["shadow"]["histograms"]["ttfb"]
            .as_str()
            .is_some_and(|h| h.starts_with("HISTF")),
        "{report}"
    );
}

#[test]
fn a_refused_connection_is_a_connect_error_not_a_lost_request() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, report, err) = replay(
        &["keepalive-ethernet.pcap"],
        &format!("http://127.0.0.1:{port}"),
        &["--speed", "max"],
    );
    // Every replayed request failed: the shadow is unreachable, a runtime failure (exit 1),
    // with the report still printed.
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("every request sent to the shadow failed"),
        "{err}"
    );
    // Said once, in the operating system's words, with the count.
    let said = format!("shadow 127.0.0.1:{port}: connect: connection refused (3 of 3 requests)");
    assert_eq!(err.matches(&said).count(), 1, "{err}");
    assert_eq!(report["shadow"]["errors"]["connect"], 3, "{report}");
    assert_eq!(report["shadow"]["requests"], 3);
    assert_accounted(&report);
}

#[test]
fn a_shadow_that_never_answers_times_out_into_the_histograms() {
    let s = shadow(Behaviour::Silent);
    let (_, report, err) = replay(
        &["keepalive-ethernet.pcap"],
        &s.url,
        &["--speed", "max", "--timeout", "200ms"],
    );
    assert_eq!(report["shadow"]["errors"]["timeout"], 3, "{report}");
    assert!(
        err.contains(": timeout: no whole answer within the 200ms timeout (3 of 3 requests)"),
        "{err}"
    );
    let max = report["shadow"]["ttfb_us"]["max"].as_u64().unwrap();
    assert!((195_000..=205_000).contains(&max), "{max}");
}

#[test]
fn a_shadow_that_resets_gives_reset_errors() {
    let s = shadow(Behaviour::Reset);
    let (_, report, err) = replay(&["keepalive-ethernet.pcap"], &s.url, &["--speed", "max"]);
    assert_eq!(report["shadow"]["errors"]["reset"], 3, "{report}");
    assert!(
        err.contains(": reset: the connection was closed or reset"),
        "{err}"
    );
}

#[test]
fn bad_replay_flags_are_usage_errors() {
    for extra in [
        ["--speed", "fast"],
        ["--timeout", "5 parsecs"],
        ["--sample", "150"],
        ["--rate", "0"],
        // Refused by the command-line parser itself, also in one line.
        ["--rate", "fast"],
        ["--concurrency", "-1"],
        ["--no-such-flag", "1"],
    ] {
        let mut args = vec![
            "replay".to_string(),
            fixture("keepalive-ethernet.pcap"),
            "--shadow".into(),
            "http://127.0.0.1:9".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn a_missing_flag_is_named_in_one_line_and_help_still_shows() {
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["replay", "x.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("shadowtap: error: ") && err.contains("--shadow"),
        "{err}"
    );
    let help = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["replay", "--help"])
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--rate <N>"));
}

#[test]
fn fail_if_turns_a_crossed_threshold_into_exit_3() {
    let s = shadow(Behaviour::Answer(500));
    let (code, report, _) = replay(
        &["keepalive-ethernet.pcap"],
        &s.url,
        &["--speed", "max", "--fail-if", "shadow.error_rate>0.01"],
    );
    assert_eq!(code, 3);
    assert_eq!(report["fail_if"][0]["crossed"], true, "{report}");
    let ok = shadow(Behaviour::Answer(200));
    let (code, report, _) = replay(
        &["keepalive-ethernet.pcap"],
        &ok.url,
        &[
            "--speed",
            "max",
            "--fail-if",
            "shadow.error_rate>0.01,mismatch.status>0",
        ],
    );
    assert_eq!(code, 0, "{report}");
}

#[test]
fn log_has_one_line_per_replayed_exchange_with_both_sides() {
    let s = shadow(Behaviour::Answer(404));
    let dir = std::env::temp_dir().join(format!("shadowtap-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("replay.jsonl");
    let (code, _, err) = replay(
        &["keepalive-ethernet.pcap"],
        &s.url,
        &["--speed", "max", "--log", log.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|l| l["production"]["status"] == 200 && l["shadow"]["status"] == 404),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The parts of a report that do not depend on the shadow's timing.
fn deterministic(r: &Value) -> Value {
    let mut routes: Vec<Value> = r["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            serde_json::json!([
                x["route"],
                x["shadow"]["requests"],
                x["production"]["ttfb_us"],
                x["production"]["histograms"]
            ])
        })
        .collect();
    routes.sort_by_key(|v| v.to_string());
    serde_json::json!({
        "counts": r["counts"],
        "production": r["production"],
        "shadow": [r["shadow"]["requests"], r["shadow"]["status"], r["shadow"]["errors"]],
        "mismatch": r["mismatch"],
        "routes": routes,
    })
}

/// `shadowtap report FILES.. EXTRA..`: (exit code, stdout JSON or Null, stderr).
fn report_of(files: &[&str], extra: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .arg("report")
        .args(files)
        .args(extra)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), json, err)
}

#[test]
fn a_report_says_what_it_measured_and_report_will_not_count_a_run_twice() {
    use sha2::Digest as _;
    let (s, other) = (
        shadow(Behaviour::Answer(200)),
        shadow(Behaviour::Answer(200)),
    );
    let dir = std::env::temp_dir().join(format!("shadowtap-runs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let (a, c) = (path("a.json"), path("c.json"));
    let (_, report, _) = replay(
        &["merge-a.pcap"],
        &s.url,
        &["--speed", "max", "--report-json", &a],
    );
    replay(
        &["merge-a.pcap"],
        &other.url,
        &["--speed", "max", "--report-json", &c],
    );
    let run = &report["runs"][0];
    assert_eq!(report["runs"].as_array().map(Vec::len), Some(1));
    assert_eq!(run["mode"], "replay");
    assert_eq!(
        run["tool"],
        format!("shadowtap {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(run["shadow"], s.url.as_str());
    let capture = std::fs::read(fixture("merge-a.pcap")).unwrap();
    let input = &run["inputs"][0];
    assert!(input["name"].as_str().unwrap().ends_with("merge-a.pcap"));
    assert_eq!(input["bytes"], capture.len());
    let sha: String = sha2::Sha256::digest(&capture)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(input["sha256"], sha.as_str());
    let (first, last) = (
        run["captured"]["start"].as_f64().unwrap(),
        run["captured"]["end"].as_f64().unwrap(),
    );
    assert!(first > 1e9 && first <= last, "{run}");
    assert!(run["ran"]["start"].as_f64() <= run["ran"]["end"].as_f64());
    assert_eq!(run["settings"]["speed"], "max");
    assert_eq!(run["settings"]["order"], "none");
    assert!(run["command"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "--shadow"));

    // The same run twice would count its requests twice.
    let (code, _, err) = report_of(&[&a, &a], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("already in the merge"), "{err}");
    let (code, twice, err) = report_of(&[&a, &a], &["--allow-repeats"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        twice["shadow"]["requests"],
        2 * report["shadow"]["requests"].as_u64().unwrap()
    );
    assert_eq!(twice["runs"].as_array().map(Vec::len), Some(2));
    // The kernel's round trip to the shadow, measured as connections opened, merges too.
    let rtt = &report["shadow"]["rtt_us"];
    let connections = rtt["connections"].as_u64().unwrap_or(0);
    assert!(connections >= 1 && rtt["min"].as_u64() >= Some(1), "{rtt}");
    assert!(rtt["min"].as_u64() <= rtt["max"].as_u64(), "{rtt}");
    assert_eq!(twice["shadow"]["rtt_us"]["connections"], 2 * connections);
    assert_eq!(twice["shadow"]["rtt_us"]["min"], rtt["min"]);
    // Two shadows are two services.
    let (code, _, err) = report_of(&[&a, &c], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("different services"), "{err}");
    let (code, mixed, err) = report_of(&[&c, &a], &["--allow-mixed"]);
    assert_eq!(code, Some(0), "{err}");
    let ids = |r: &Value| -> Vec<String> {
        r["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].to_string())
            .collect()
    };
    let (_, ac, _) = report_of(&[&a, &c], &["--allow-mixed"]);
    assert_eq!(
        ids(&mixed),
        ids(&ac),
        "runs are listed oldest first, whatever the order"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_merges_saved_reports_into_the_combined_run() {
    let s = shadow(Behaviour::Answer(200));
    let dir = std::env::temp_dir().join(format!("shadowtap-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let (a, b) = (path("a.json"), path("b.json"));
    replay(
        &["merge-a.pcap"],
        &s.url,
        &["--speed", "max", "--report-json", &a],
    );
    replay(
        &["merge-b.pcap"],
        &s.url,
        &["--speed", "max", "--report-json", &b],
    );
    let (_, combined, _) = replay(
        &["merge-a.pcap", "merge-b.pcap"],
        &s.url,
        &["--speed", "max"],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["report", &a, &b, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(deterministic(&merged), deterministic(&combined));
    assert_eq!(merged["shadow"]["requests"], 6);
    let text = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["report", &a])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("ttfb p99"));
    let bad = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["report", &fixture("pipelined.pcap")])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_shows_the_three_regressions_of_its_embedded_shadow() {
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .arg("demo")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("800 seen"), "{text}");
    let mismatch = |route: &str, change: &str| {
        text.lines()
            .any(|l| l.trim_start().starts_with(route) && l.contains(change))
    };
    assert!(mismatch("GET /api/cart", "200 -> 404"), "{text}");
    assert!(mismatch("GET /api/users/{id}", "200 -> 500"), "{text}");
    // The slow route: its shadow p50 is at least the 15 ms the shadow adds.
    let orders = text
        .lines()
        .find(|l| l.starts_with("GET /api/orders/{id}") && l.contains('/'))
        .unwrap();
    let shadow_p50: f64 = orders
        .split_whitespace()
        .nth(6)
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(shadow_p50 >= 15.0, "{orders}");
}

#[test]
fn production_is_never_a_shadow() {
    // 10.0.0.2:80 is the server in the capture: the replay is refused before anything is
    // sent (it used to run and filter each request; production.rs has the other cases).
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["replay", &fixture("keepalive-ethernet.pcap")])
        .args(["--shadow", "http://10.0.0.2:80", "--speed", "max"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is 10.0.0.2:80, a server in"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn reports_match_the_published_schema() {
    let ok = shadow(Behaviour::Answer(503));
    let (_, a, _) = replay(
        &["keepalive-ethernet.pcap", "expect-continue-and-head.pcap"],
        &ok.url,
        &["--speed", "max", "--fail-if", "shadow.errors>0"],
    );
    let (_, b, _) = replay(
        &["keepalive-ethernet.pcap"],
        "http://127.0.0.1:9",
        &["--speed", "max"],
    );
    for report in [a, b] {
        let errors = schema_errors(&report);
        assert!(errors.is_empty(), "{errors:#?}");
    }
    // The schema forbids what a report never holds.
    let errors = schema_errors(&serde_json::json!({"version": 2, "extra": 1}));
    assert!(errors.len() >= 3, "{errors:?}");
}

/// An `https://localhost` shadow with a fresh self-signed certificate; returns its URL and the
/// certificate's PEM file.
fn tls_shadow(dir: &std::path::Path) -> (String, PathBuf) {
    use std::sync::Arc as StdArc;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = dir.join("shadow-ca.pem");
    std::fs::write(&pem, cert.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let provider = StdArc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let config = StdArc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for tcp in listener.incoming().take(32).flatten() {
            let config = config.clone();
            thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if tls
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntls")
                            .is_err()
                        {
                            return;
                        }
                    }
                    match tls.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (format!("https://localhost:{port}"), pem)
}

#[test]
fn https_shadows_are_verified_against_the_given_ca() {
    let dir = std::env::temp_dir().join(format!("shadowtap-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (url, pem) = tls_shadow(&dir);
    let (code, report, err) = replay(
        &["keepalive-ethernet.pcap"],
        &url,
        &["--speed", "max", "--shadow-ca", pem.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["shadow"]["status"]["2xx"], 3, "{report}");
    // Unknown CA: refused, counted, and said once.
    let (_, report, err) = replay(&["keepalive-ethernet.pcap"], &url, &["--speed", "max"]);
    assert_eq!(report["shadow"]["errors"]["connect"], 3, "{report}");
    // In words, not as rustls's debug form of the error.
    let words = err
        .lines()
        .find(|l| l.contains(": connect: TLS: "))
        .unwrap_or_else(|| panic!("no TLS line in {err}"));
    assert!(
        !words.contains("Other(") && !words.contains("Error("),
        "{words}"
    );
    assert!(words.ends_with("(3 of 3 requests)"), "{words}");
    // --insecure skips verification.
    let (_, report, _) = replay(
        &["keepalive-ethernet.pcap"],
        &url,
        &["--speed", "max", "--insecure"],
    );
    assert_eq!(report["shadow"]["status"]["2xx"], 3, "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn progress_is_drawn_and_the_pace_is_kept() {
    let s = shadow(Behaviour::Answer(200));
    // The fixture's three requests span 23.6 ms; at 0.05x that is 472 ms of replay.
    let start = std::time::Instant::now();
    let (code, report, err) = replay(
        &["keepalive-ethernet.pcap"],
        &s.url,
        &["--speed", "0.05", "--progress", "always"],
    );
    let elapsed = start.elapsed();
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["counts"]["replayed"], 3);
    assert!(
        err.contains("\r\x1b[2Ksent ") && err.contains("in flight"),
        "{err:?}"
    );
    // Sleeping to the recorded pace can only make it slower, never faster.
    assert!(elapsed >= Duration::from_millis(472), "{elapsed:?}");
    let (_, _, err) = replay(
        &["keepalive-ethernet.pcap"],
        &s.url,
        &["--speed", "0.05", "--progress", "never"],
    );
    assert!(!err.contains("sent "), "{err:?}");
}

#[test]
fn the_rate_cap_holds_an_unpaced_replay_back() {
    let s = shadow(Behaviour::Answer(200));
    let demo = format!("{}/assets/demo.pcap", env!("CARGO_MANIFEST_DIR"));
    let start = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["replay", &demo, "--shadow", &s.url, "--format", "json"])
        .args(["--speed", "max", "--rate", "2000", "--concurrency", "16"])
        // HEAD answers from this shadow carry a body, which costs a connection each.
        .args(["--exclude-path", "^/health"])
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The demo capture's 709 GETs at most 2000 a second: 708 gaps of 0.5 ms at least
    // (unpaced, they take a few tens of milliseconds here).
    assert_eq!(report["counts"]["replayed"], 709, "{}", report["counts"]);
    assert_eq!(report["shadow"]["error_rate"], 0.0);
    assert_eq!(s.seen.lock().unwrap().len(), 709);
    assert!(elapsed >= Duration::from_micros(354_000), "{elapsed:?}");
    assert_accounted(&report);
}

/// `shadowtap replay CAPTURE --shadow URL --speed max --format json` under GNU time: the
/// report and the peak resident memory in KiB (0 if time printed none); None without GNU time.
fn replay_with_peak_rss(capture: &str, shadow_url: &str) -> Option<(Value, u64)> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["replay", capture, "--shadow", shadow_url])
        .args(["--speed", "max", "--format", "json"])
        .output()
        .ok()?;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rss_kb = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    Some((report, rss_kb))
}

#[test]
fn a_huge_response_body_is_drained_up_to_a_cap_not_kept() {
    let s = shadow(Behaviour::Huge);
    let capture = fixture("keepalive-ethernet.pcap");
    let Some((report, rss_kb)) = replay_with_peak_rss(&capture, &s.url) else {
        return; // no GNU time here to measure with
    };
    // The status line was read: the exchange counts, with its status.
    assert_eq!(report["shadow"]["status"]["2xx"], 3, "{report}");
    assert!(
        rss_kb > 0 && rss_kb < 64 * 1024,
        "peak RSS {rss_kb} KiB for 3 x 100 MB bodies"
    );
}

#[test]
fn a_trickling_shadow_hits_the_whole_exchange_deadline() {
    let s = shadow(Behaviour::Trickle);
    let (_, report, _) = replay(
        &["keepalive-ethernet.pcap"],
        &s.url,
        &["--speed", "max", "--timeout", "500ms"],
    );
    // Each byte comes quickly enough to keep a per-read timeout happy, never the whole response.
    assert_eq!(report["shadow"]["errors"]["timeout"], 3, "{report}");
}

#[test]
fn a_dead_shadow_opens_the_circuit_and_every_request_is_still_counted() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/demo.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args([
            "replay",
            demo.to_str().unwrap(),
            "--shadow",
            &format!("http://127.0.0.1:{port}"),
            "--speed",
            "max",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = &report["shadow"]["errors"];
    let (connect, open) = (
        errors["connect"].as_u64().unwrap(),
        errors["circuit_open"].as_u64().unwrap(),
    );
    assert!(open > 0 && connect > 0, "{errors}");
    assert_eq!(
        connect + open,
        report["counts"]["replayed"].as_u64().unwrap()
    );
    assert_eq!(report["shadow"]["error_rate"], 1.0);
    assert_accounted(&report);
}

#[test]
fn a_dead_shadow_costs_bounded_memory_over_a_long_capture() {
    use crate::support::files::pcap;
    use crate::support::packets::{merge, Conv, Link};
    // 24,000 GETs carrying a 4 KiB cookie on 100 keep-alive connections: a 100 MB capture,
    // of which a replay that kept what it could not send would hold most.
    let cookie = "c".repeat(4096);
    let convs = (0..100)
        .map(|c| {
            let client = format!("10.1.{}.{}:40000", c / 250, c % 250 + 1);
            let mut conv = Conv::new(&client, "10.2.0.1:80", Link::Ethernet);
            conv.handshake();
            for i in 0..240 {
                let req = format!("GET /items/{i} HTTP/1.1\r\nHost: h\r\nCookie: {cookie}\r\n\r\n");
                conv.client(req.as_bytes());
                conv.server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
            conv.close();
            conv
        })
        .collect();
    let bytes = pcap(Link::Ethernet.linktype(), &merge(convs), false, false);
    assert!(bytes.len() > 100_000_000);
    let dir = std::env::temp_dir().join(format!("shadowtap-dead-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("long.pcap");
    std::fs::write(&file, &bytes).unwrap();
    drop(bytes);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let measured =
        replay_with_peak_rss(file.to_str().unwrap(), &format!("http://127.0.0.1:{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    let Some((report, rss_kb)) = measured else {
        return; // no GNU time here to measure with
    };
    assert_eq!(report["counts"]["replayed"], 24_000, "{}", report["counts"]);
    assert_eq!(report["shadow"]["error_rate"], 1.0);
    assert_accounted(&report);
    assert!(
        rss_kb > 0 && rss_kb < 64 * 1024,
        "peak RSS {rss_kb} KiB replaying a 100 MB capture to a dead shadow"
    );
}

/// Writes `convs` as a classic pcap in a new temporary directory; returns (dir, file).
fn capture_file(name: &str, convs: Vec<crate::support::packets::Conv>) -> (PathBuf, PathBuf) {
    use crate::support::files::pcap;
    use crate::support::packets::{merge, Link};
    let bytes = pcap(Link::Ethernet.linktype(), &merge(convs), false, false);
    let dir = std::env::temp_dir().join(format!("shadowtap-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.pcap"));
    std::fs::write(&file, bytes).unwrap();
    (dir, file)
}

#[test]
fn unfinished_heads_and_invalid_requests_are_in_the_accounting() {
    use crate::support::packets::{Conv, Link};
    const WHOLE: u64 = 5;
    const UNFINISHED: u64 = 7;
    const INVALID: u64 = 3;
    let conn = |n: u64| {
        let client = format!("10.3.0.{}:40000", n + 1);
        let mut conv = Conv::new(&client, "10.4.0.1:80", Link::Ethernet)
            .at(crate::support::packets::T0 + n as i64 * 1_000_000);
        conv.handshake();
        conv
    };
    let mut convs = Vec::new();
    let mut whole = conn(0);
    for i in 0..WHOLE {
        whole.client(format!("GET /whole/{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        whole.server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }
    // Methods are case-sensitive: `get` is not GET, and is not replayed.
    whole.client(b"get /lower HTTP/1.1\r\nHost: h\r\n\r\n");
    whole.server(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
    whole.close();
    convs.push(whole);
    for n in 0..UNFINISHED {
        // A slow client: its head never ends before the capture does.
        let mut conv = conn(1 + n);
        conv.client(b"GET /slow HTTP/1.1\r\nHost: h\r\nX-Wait: ");
        convs.push(conv);
    }
    for n in 0..INVALID {
        let mut conv = conn(1 + UNFINISHED + n);
        conv.client(b"GET /bad HTTP/9.9\r\nHost: h\r\n\r\n");
        conv.server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        conv.close();
        convs.push(conv);
    }
    let (dir, file) = capture_file("lost-heads", convs);
    let s = shadow(Behaviour::Answer(200));
    let (code, report, err) = replay(&[file.to_str().unwrap()], &s.url, &["--speed", "max"]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{err}");
    let c = &report["counts"];
    assert_eq!(c["seen"], WHOLE + 1 + UNFINISHED + INVALID, "{c}");
    assert_eq!(c["replayed"], WHOLE, "{c}");
    assert_eq!(c["incomplete"]["capture_ended"], UNFINISHED, "{c}");
    assert_eq!(c["filtered"]["invalid_request"], INVALID, "{c}");
    assert_eq!(c["filtered"]["method"], 1, "{c}");
    assert_accounted(&report);
    let sent = s.seen.lock().unwrap().len() as u64;
    assert_eq!(sent, WHOLE, "only the whole GETs reach the shadow");
}

#[test]
fn userinfo_of_an_absolute_form_target_reaches_no_route_and_no_shadow() {
    use crate::support::packets::{Conv, Link};
    let mut conv = Conv::new("10.3.0.1:40000", "10.4.0.1:80", Link::Ethernet);
    conv.handshake();
    for target in ["HTTP://user:PASS@h/a", "Https://user:PASS@h/b?x=1"] {
        conv.client(format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        conv.server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }
    conv.close();
    let (dir, file) = capture_file("userinfo", vec![conv]);
    let s = shadow(Behaviour::Answer(500));
    let (code, report, err) = replay(&[file.to_str().unwrap()], &s.url, &["--speed", "max"]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["counts"]["replayed"], 2, "{report}");
    let routes: Vec<&str> = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["route"].as_str())
        .collect();
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert!(
        routes.contains(&"GET /a") && routes.contains(&"GET /b"),
        "{routes:?}"
    );
    let whole = report.to_string();
    assert!(!whole.contains("PASS"), "{whole}");
    for req in s.seen.lock().unwrap().iter() {
        assert!(
            !String::from_utf8_lossy(req).contains("PASS"),
            "sent with userinfo"
        );
    }
}

#[test]
fn the_http_memory_budget_is_a_flag_and_what_it_refuses_is_counted() {
    use crate::support::packets::{Conv, Link};
    // 40 slow clients, each with 60 KiB of head and no end, under a 1 MiB budget.
    let pad = "a".repeat(60 * 1024);
    let convs = (0..40)
        .map(|n| {
            let client = format!("10.5.0.{}:40000", n + 1);
            let mut conv = Conv::new(&client, "10.6.0.1:80", Link::Ethernet);
            conv.handshake();
            conv.client(format!("GET /slow HTTP/1.1\r\nHost: h\r\nX-Pad: {pad}").as_bytes());
            conv
        })
        .collect();
    let (dir, file) = capture_file("memcap", convs);
    let s = shadow(Behaviour::Answer(200));
    let (code, report, err) = replay(
        &[file.to_str().unwrap()],
        &s.url,
        &["--speed", "max", "--http-memcap", "1MiB"],
    );
    assert_eq!(code, 0, "{err}");
    let c = &report["counts"];
    assert_eq!(c["seen"], 40, "{c}");
    let refused = c["filtered"]["memcap"].as_u64().unwrap_or(0);
    let held = c["incomplete"]["capture_ended"].as_u64().unwrap_or(0);
    assert!(refused > 0 && held > 0, "{c}");
    assert_eq!(refused + held, 40, "{c}");
    assert_accounted(&report);
    // inspect takes the same flag and shows the budget's figures.
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["inspect", file.to_str().unwrap(), "--http-memcap", "1MiB"])
        .output()
        .expect("running shadowtap");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    let counter = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map_or(0, |v| v.trim().replace(',', "").parse().unwrap())
    };
    assert!(counter("http.memcap_hits") > 0, "{text}");
    let peak = counter("http.memuse_peak");
    assert!(peak > 512 * 1024 && peak <= 1024 * 1024, "{text}");
    assert_eq!(counter("http.requests_lost.memcap"), refused, "{text}");
    // A size that is not one is a usage error.
    let bad = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["inspect", file.to_str().unwrap(), "--http-memcap", "lots"])
        .output()
        .expect("running shadowtap");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--http-memcap"));
}

#[test]
fn a_gate_without_the_data_to_decide_exits_4() {
    let s = shadow(Behaviour::Answer(200));
    // Three requests: a p99 needs 100 behind it.
    let (code, report, err) = replay(
        &["keepalive-ethernet.pcap"],
        &s.url,
        &["--speed", "max", "--fail-if", "shadow.ttfb_p99>1000000"],
    );
    assert_eq!(code, 4, "{err}");
    assert!(
        report["fail_if"][0]["not_evaluated"].is_string(),
        "{report}"
    );
    assert_eq!(report["fail_if"][0]["crossed"], false);
    // A NaN operand is no value either; and an unevaluated condition outranks a crossed one.
    let (code, _, _) = replay(
        &["keepalive-ethernet.pcap"],
        &s.url,
        &[
            "--speed",
            "max",
            "--fail-if",
            "shadow.requests>0,shadow.error_rate>NaN",
        ],
    );
    assert_eq!(code, 4);
    // Nothing replayed under a gate: 4, even though the condition on a count holds.
    let (code, report, err) = replay(
        &["keepalive-ethernet.pcap"],
        &s.url,
        &[
            "--speed",
            "max",
            "--sample",
            "0",
            "--fail-if",
            "shadow.errors>0",
        ],
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("nothing was replayed"), "{err}");
    assert_accounted(&report);
    // Without a gate, nothing replayed is only a warning.
    let (code, _, err) = replay(
        &["keepalive-ethernet.pcap"],
        &s.url,
        &["--speed", "max", "--sample", "0"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing was replayed"), "{err}");
    // Enough data, nothing crossed: 0.
    let (code, _, err) = replay(
        &["keepalive-ethernet.pcap"],
        &s.url,
        &["--speed", "max", "--fail-if", "shadow.ttfb_max>60000000"],
    );
    assert_eq!(code, 0, "{err}");
}

/// Runs `replay` on the demo capture in the background: its process and the path of its log.
fn replay_in_background(
    shadow_url: &str,
    dir: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, PathBuf) {
    let demo = format!("{}/assets/demo.pcap", env!("CARGO_MANIFEST_DIR"));
    let log = dir.join("replay.jsonl");
    let child = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["replay", &demo, "--shadow", shadow_url, "--format", "json"])
        .args([
            "--speed",
            "max",
            "--concurrency",
            "2",
            "--progress",
            "never",
        ])
        .args(["--log", log.to_str().unwrap()])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn replay");
    (child, log)
}

/// Waits (a bounded while) until the shadow holds `n` requests.
fn wait_for_requests(seen: &Mutex<Vec<Vec<u8>>>, n: usize) {
    for _ in 0..1000 {
        if seen.lock().unwrap().len() >= n {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("the shadow never got {n} requests");
}

fn signal(child: &std::process::Child, name: &str) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args([name, &pid])
        .status()
        .unwrap()
        .success());
}

/// Waits for `child` to end, at most `cap` (a hang guard): exit code, stdout, stderr.
fn wait_capped(child: std::process::Child, cap: Duration) -> (i32, String, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(cap)
        .expect("the run must end")
        .expect("waiting for the run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every line of the log is whole JSON, one per replayed exchange.
fn log_lines(log: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "log cut mid-line: {text:?}"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn a_signal_stops_a_replay_with_its_report_marked_interrupted() {
    for (name, code, label) in [("-INT", 130, "SIGINT"), ("-TERM", 143, "SIGTERM")] {
        // Each request held 1.5 s, two at a time: most of the capture is still queued.
        let s = shadow(Behaviour::Slow(1500));
        let dir =
            std::env::temp_dir().join(format!("shadowtap-int-{}-{label}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (child, log) = replay_in_background(&s.url, &dir, &[]);
        wait_for_requests(&s.seen, 2);
        signal(&child, name);
        let (got, out, err) = wait_capped(child, Duration::from_secs(30));
        assert_eq!(got, code, "{err}");
        let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(report["interrupted"], label, "{report}");
        let shutdown = report["counts"]["dropped"]["shutdown"]
            .as_u64()
            .unwrap_or(0);
        assert!(shutdown > 0, "{}", report["counts"]);
        assert_accounted(&report);
        // The requests in flight were drained (the default 5 s is enough for 1.5 s): answered.
        let replayed = report["counts"]["replayed"].as_u64().unwrap();
        assert!(replayed >= 2, "{}", report["counts"]);
        assert_eq!(report["shadow"]["status"]["2xx"], replayed, "{report}");
        assert_eq!(log_lines(&log).len() as u64, replayed);
        assert_eq!(
            crate::support::schema::schema_errors(&report),
            Vec::<String>::new()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_second_signal_gives_up_the_drain_at_once_and_still_reports() {
    // Requests held 20 s and a drain deadline of a minute: only the second signal can end
    // the run before the hang guard.
    let s = shadow(Behaviour::Slow(20_000));
    let dir = std::env::temp_dir().join(format!("shadowtap-twice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (child, log) = replay_in_background(&s.url, &dir, &["--drain-timeout", "60s"]);
    wait_for_requests(&s.seen, 2);
    signal(&child, "-TERM");
    thread::sleep(Duration::from_millis(200));
    signal(&child, "-TERM");
    let (code, out, err) = wait_capped(child, Duration::from_secs(15));
    assert_eq!(code, 143, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["interrupted"], "SIGTERM");
    // The two in flight were cut: sent, so replayed, with the shadow error `shutdown`.
    assert_eq!(report["shadow"]["errors"]["shutdown"], 2, "{report}");
    assert_eq!(report["counts"]["replayed"], 2, "{}", report["counts"]);
    assert!(
        report["counts"]["dropped"]["shutdown"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    assert_accounted(&report);
    let lines = log_lines(&log);
    assert_eq!(lines.len(), 2);
    assert!(
        lines.iter().all(|l| l["shadow"]["error"] == "shutdown"),
        "{lines:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_shadow_body_cut_at_the_drain_cap_is_counted_and_flagged() {
    // 100 MB bodies: read up to the 10 MiB cap, then the connection is cut.
    let s = shadow(Behaviour::Huge);
    let dir = std::env::temp_dir().join(format!("shadowtap-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("cut.jsonl");
    let (code, report, err) = replay(
        &["keepalive-ethernet.pcap"],
        &s.url,
        &["--speed", "max", "--log", log.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["shadow"]["truncated"], 3, "{report}");
    // The status counts; the time to a last byte never read does not.
    assert_eq!(report["shadow"]["status"]["2xx"], 3, "{report}");
    assert!(report["shadow"]["ttfb_us"]["p50"].is_u64(), "{report}");
    assert!(report["shadow"]["total_us"]["p50"].is_null(), "{report}");
    let lines = log_lines(&log);
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|l| l["flags"] == serde_json::json!(["body_cut"])),
        "{lines:?}"
    );
    assert_eq!(
        crate::support::schema::schema_errors(&report),
        Vec::<String>::new()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `shadowtap: warning:` and `shadowtap: error:` lines a run printed on stderr.
fn capture_notes(args: &[&str]) -> (i32, Vec<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(args)
        .output()
        .expect("running shadowtap");
    let lines = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("shadowtap: warning: ") || l.starts_with("shadowtap: error: "))
        .map(str::to_string)
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

/// What `inspect` says about a capture file on stderr, `replay` says too (one driver
/// collects it for both).
fn assert_replay_notes_like_inspect(file: &str) -> Vec<String> {
    let (_, inspected) = capture_notes(&["inspect", "--format", "jsonl", file]);
    assert!(!inspected.is_empty(), "{file}: inspect says nothing");
    let (code, replayed) = capture_notes(&[
        "replay",
        file,
        "--shadow",
        "http://127.0.0.1:9",
        "--speed",
        "max",
        "--progress",
        "never",
    ]);
    for line in &inspected {
        assert!(
            replayed.contains(line),
            "{file}: replay (exit {code}) does not say {line:?}: {replayed:?}"
        );
    }
    replayed
}

#[test]
fn replay_prints_the_capture_warnings_and_errors_inspect_prints() {
    let (_, cut) = capture_notes(&["inspect", &fixture("corrupt-truncated-tail.pcap")]);
    assert!(
        cut.iter().any(|l| l.contains("capture cut short")),
        "{cut:?}"
    );
    for name in [
        "corrupt-truncated-tail.pcap",
        "corrupt-empty.pcap",
        "corrupt-bad-magic.pcap",
        "corrupt-huge-record.pcap",
        "corrupt-pcapng-block-length.pcapng",
    ] {
        assert_replay_notes_like_inspect(&fixture(name));
    }
}

#[test]
fn replay_warns_about_a_link_type_it_cannot_decode() {
    use crate::support::files::pcap;
    use crate::support::packets::{merge, Conv, Link};
    let mut conv = Conv::new("10.5.0.1:40000", "10.6.0.1:80", Link::Ethernet);
    conv.handshake();
    conv.client(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    conv.server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    // LINKTYPE_USER0: nothing shadowtap decodes.
    let bytes = pcap(147, &merge(vec![conv]), false, false);
    let dir = std::env::temp_dir().join(format!("shadowtap-user0-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("user0.pcap");
    std::fs::write(&file, bytes).unwrap();
    let replayed = assert_replay_notes_like_inspect(file.to_str().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        replayed
            .iter()
            .any(|l| l.contains("unsupported link type linktype_147")),
        "{replayed:?}"
    );
}

/// Two connections of one GET each, to port 80 and to port 8080.
fn two_ports_capture(name: &str) -> (PathBuf, PathBuf) {
    use crate::support::packets::{Conv, Link};
    let convs = [(80u16, "/on-80"), (8080, "/on-8080")]
        .into_iter()
        .enumerate()
        .map(|(n, (port, path))| {
            let mut conv = Conv::new(
                &format!("10.7.0.{}:40000", n + 1),
                &format!("10.8.0.1:{port}"),
                Link::Ethernet,
            )
            .at(crate::support::packets::T0 + n as i64 * 1_000_000);
            conv.handshake();
            conv.client(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
            conv.server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            conv.close();
            conv
        })
        .collect();
    capture_file(name, convs)
}

#[test]
fn port_and_bpf_filters_keep_other_connections_unseen() {
    let (dir, file) = two_ports_capture("two-ports");
    let file = file.to_str().unwrap().to_string();
    let unfiltered = shadow(Behaviour::Answer(200));
    let (code, report, err) = replay(&[&file], &unfiltered.url, &["--speed", "max"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["counts"]["seen"], 2, "{}", report["counts"]);
    for filter in [&["--port", "8080"][..], &["--bpf", "tcp port 8080"]] {
        let s = shadow(Behaviour::Answer(200));
        let mut extra = vec!["--speed", "max"];
        extra.extend_from_slice(filter);
        let (code, report, err) = replay(&[&file], &s.url, &extra);
        assert_eq!(code, 0, "{filter:?}: {err}");
        let c = &report["counts"];
        assert_eq!(c["seen"], 1, "{filter:?}: {c}");
        assert_eq!(c["replayed"], 1, "{filter:?}: {c}");
        assert_accounted(&report);
        let seen = s.seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{filter:?}");
        let sent = String::from_utf8_lossy(&seen[0]);
        assert!(sent.starts_with("GET /on-8080 "), "{filter:?}: {sent}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_bpf_expression_is_a_usage_error_before_anything_is_sent() {
    let s = shadow(Behaviour::Answer(200));
    let (code, lines) = capture_notes(&[
        "replay",
        &fixture("keepalive-ethernet.pcap"),
        "--shadow",
        &s.url,
        "--bpf",
        "tcp port nonsense",
    ]);
    assert_eq!(code, 2, "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("invalid BPF expression")),
        "{lines:?}"
    );
    assert!(s.seen.lock().unwrap().is_empty());
}

#[test]
fn a_capture_whose_name_is_not_utf8_is_replayed_and_described() {
    use std::os::unix::ffi::OsStrExt as _;
    let s = shadow(Behaviour::Answer(200));
    let dir = std::env::temp_dir().join(format!("shadowtap-name-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(std::ffi::OsStr::from_bytes(b"cap\xff.pcap"));
    std::fs::copy(fixture("keepalive-ethernet.pcap"), &path).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .arg("replay")
        .arg(&path)
        .args(["--shadow", &s.url, "--speed", "max", "--format", "json"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["counts"]["replayed"], 3);
    let name = report["runs"][0]["inputs"][0]["name"].as_str().unwrap();
    assert!(name.ends_with("cap\u{fffd}.pcap"), "{name}");
}
