//! The production-target rule (DESIGN.md "Safety"): nothing is ever sent to an address:port
//! that is a server in the captured traffic, whatever way the shadow's address is written.
//! The "production" server here is a real recording server on 127.0.0.1: if the rule failed,
//! it would receive the requests.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::replay::{shadow, Behaviour, Shadow};
use crate::support::files::pcap;
use crate::support::packets::{merge, Conv, Link};

/// A capture of `before` GETs to another server (10.0.0.9:80), then `after` GETs to
/// `server`, each on its own connection, one after the other in time.
fn capture(server: &str, before: usize, after: usize) -> Vec<u8> {
    let mut convs = Vec::new();
    let mut now = crate::support::packets::T0;
    for i in 0..before + after {
        let to = if i < before { "10.0.0.9:80" } else { server };
        let client = format!("10.0.1.{}:{}", 1 + i / 200, 40_000 + i % 200);
        let mut conv = Conv::new(&client, to, Link::Ethernet).at(now);
        conv.handshake();
        conv.client(format!("GET /item/{i} HTTP/1.1\r\nHost: shop\r\n\r\n").as_bytes());
        conv.server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        conv.close();
        now = conv.now + 1_000_000;
        convs.push(conv);
    }
    pcap(Link::Ethernet.linktype(), &merge(convs), false, false)
}

fn write_capture(name: &str, bytes: &[u8]) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("shadowtap-prod-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.pcap");
    std::fs::write(&file, bytes).unwrap();
    (dir, file)
}

/// Runs `shadowtap replay FILE --shadow URL --speed max --format json EXTRA`, with `stdin`
/// piped in when given.
fn replay(file: &str, url: &str, extra: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["replay", file, "--shadow", url, "--speed", "max"])
        .args(["--format", "json", "--timeout", "2s"])
        .args(extra)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running shadowtap");
    if let (Some(bytes), Some(mut input)) = (stdin, child.stdin.take()) {
        input
            .write_all(bytes)
            .expect("writing the capture to stdin");
    }
    let out = child.wait_with_output().expect("waiting for shadowtap");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn port_of(s: &Shadow) -> u16 {
    s.url.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn a_production_server_anywhere_in_the_files_is_refused_before_anything_is_sent() {
    // 100 exchanges with another server first: a rule that only latches when it meets the
    // production server would have sent those 100 to it.
    let production = shadow(Behaviour::Answer(200));
    let port = port_of(&production);
    let (dir, file) = write_capture("later", &capture(&format!("127.0.0.1:{port}"), 100, 100));
    let (code, stdout, stderr) = replay(file.to_str().unwrap(), &production.url, &[], None);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("a server in") && stderr.contains("--allow-production-target"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "no report: {stdout}");
    assert_eq!(
        production.seen.lock().unwrap().len(),
        0,
        "sent to production"
    );
}

#[test]
fn every_spelling_of_a_production_address_is_refused() {
    let production = shadow(Behaviour::Answer(200));
    let port = port_of(&production);
    let (dir, file) = write_capture("spell", &capture(&format!("127.0.0.1:{port}"), 0, 50));
    for url in [
        format!("http://0.0.0.0:{port}"),
        format!("http://[::ffff:127.0.0.1]:{port}"),
        format!("http://localhost:{port}"),
    ] {
        let (code, _, stderr) = replay(file.to_str().unwrap(), &url, &[], None);
        assert_eq!(code, 2, "{url}: {stderr}");
        assert!(stderr.contains("a server in"), "{url}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        production.seen.lock().unwrap().len(),
        0,
        "sent to production"
    );
}

#[test]
fn allow_production_target_sends_to_production_itself() {
    // A/A runs: the same server that served the capture, on purpose.
    let production = shadow(Behaviour::Answer(200));
    let port = port_of(&production);
    let (dir, file) = write_capture("aa", &capture(&format!("127.0.0.1:{port}"), 10, 10));
    let (code, stdout, stderr) = replay(
        file.to_str().unwrap(),
        &production.url,
        &["--allow-production-target"],
        None,
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["counts"]["replayed"], 20, "{}", report["counts"]);
    assert_eq!(production.seen.lock().unwrap().len(), 20);
}

#[test]
fn from_stdin_sending_stops_at_the_first_sight_of_production() {
    // Standard input cannot be read twice: what came before the production server went to
    // the shadow, nothing after it, and the rest is accounted as production_target.
    let production = shadow(Behaviour::Answer(200));
    let port = port_of(&production);
    let bytes = capture(&format!("127.0.0.1:{port}"), 30, 30);
    let (code, stdout, stderr) = replay("-", &production.url, &[], Some(&bytes));
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["counts"]["replayed"], 30, "{}", report["counts"]);
    assert_eq!(
        report["counts"]["filtered"]["production_target"], 30,
        "{}",
        report["counts"]
    );
    assert!(stderr.contains("production"), "{stderr}");
    let seen = production.seen.lock().unwrap();
    assert_eq!(seen.len(), 30);
    // Only requests from before the production server (to 10.0.0.9) were sent.
    assert!(seen.iter().all(|r| {
        let line = String::from_utf8_lossy(r);
        let n: usize = line["GET /item/".len()..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX);
        n < 30
    }));
}

#[test]
fn mirror_refuses_a_shadow_its_own_capture_would_see_as_production() {
    // Decided before the capture is opened: no privilege needed to be refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = port.to_string();
    let bpf = format!("tcp dst port {port}");
    for filter in [
        vec!["--port", p.as_str()],
        vec!["--bpf", bpf.as_str()],
        vec![],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
            .args(["mirror", "--interface", "lo", "--duration", "1s"])
            .args(&filter)
            .args(["--shadow", &format!("http://127.0.0.1:{port}")])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{filter:?}: {stderr}");
        assert!(
            stderr.contains("the capture on lo takes in its port"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    // A port the filter does not admit is not production: that one is not refused at start
    // (it fails later only where capture privilege is missing, with another message).
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["mirror", "--interface", "lo", "--duration", "1s"])
        .args([
            "--port",
            "1",
            "--shadow",
            &format!("http://127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("takes in its port"), "{stderr}");
}

#[test]
fn a_pipe_is_read_once_and_checked_as_it_comes() {
    // /dev/stdin on a pipe cannot be read twice: the pass over files must leave it alone
    // (it once used it up: "empty file"), and the rule stops at first sight instead.
    let production = shadow(Behaviour::Answer(200));
    let port = port_of(&production);
    let bytes = capture(&format!("127.0.0.1:{port}"), 20, 20);
    let (code, stdout, stderr) = replay("/dev/stdin", &production.url, &[], Some(&bytes));
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["counts"]["replayed"], 20, "{}", report["counts"]);
    assert_eq!(report["counts"]["filtered"]["production_target"], 20);
    assert_eq!(production.seen.lock().unwrap().len(), 20);
}

#[test]
fn a_production_connection_with_no_whole_request_stops_sending_too() {
    // Production appears only as a connection whose request never ends: no exchange of it
    // ever reaches selection, yet sending must stop there.
    let production = shadow(Behaviour::Answer(200));
    let port = port_of(&production);
    let t0 = crate::support::packets::T0;
    let mut convs = Vec::new();
    for i in 0..20i64 {
        let at = if i < 10 {
            t0 + i * 1_000_000
        } else {
            t0 + (i + 10) * 1_000_000
        };
        let mut c = Conv::new(
            &format!("10.0.1.1:{}", 40_000 + i),
            "10.0.0.9:80",
            Link::Ethernet,
        )
        .at(at);
        c.handshake();
        c.client(format!("GET /item/{i} HTTP/1.1\r\nHost: shop\r\n\r\n").as_bytes());
        c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        c.close();
        convs.push(c);
    }
    let mut slow = Conv::new(
        "10.0.2.1:40000",
        &format!("127.0.0.1:{port}"),
        Link::Ethernet,
    )
    .at(t0 + 12_000_000);
    slow.handshake();
    slow.client(b"GET /never-ends HTTP/1.1\r\nHost: shop\r\nX-Wait: ");
    convs.push(slow);
    let bytes = pcap(Link::Ethernet.linktype(), &merge(convs), false, false);
    let (code, stdout, stderr) = replay("-", &production.url, &[], Some(&bytes));
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let counts = &report["counts"];
    assert_eq!(counts["replayed"], 10, "{counts}");
    assert_eq!(counts["filtered"]["production_target"], 10, "{counts}");
    assert_eq!(production.seen.lock().unwrap().len(), 10);
}

#[test]
fn mirror_allowed_to_target_production_still_sees_production() {
    // A/A on one machine: the shadow is production itself. Filtering the shadow's traffic out
    // of the capture would hide production's too (the run used to say seen 0); shadowtap's
    // own requests are told apart by their marker instead.
    if super::capture::capture_skipped() {
        return;
    }
    let prod = super::mirror::production("127.0.0.1:0");
    let port = prod.port().to_string();
    let m = super::mirror::mirror_on(
        "lo",
        &[
            "--port",
            &port,
            "--shadow",
            &format!("http://{prod}"),
            "--allow-production-target",
        ],
    );
    let mut conn = std::net::TcpStream::connect(prod).unwrap();
    for i in 0..3 {
        super::mirror::exchange(
            &mut conn,
            &format!("GET /aa/{i} HTTP/1.1\r\nHost: p\r\n\r\n"),
            1,
        );
    }
    drop(conn);
    let (code, report, err) = m.stop("-INT", std::time::Duration::from_millis(500));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("note:"), "{err}");
    assert_eq!(report["counts"]["seen"], 3, "{report}");
    assert_eq!(report["counts"]["replayed"], 3, "{report}");
    assert_eq!(report["capture"]["own_traffic"], 3, "{report}");
}
