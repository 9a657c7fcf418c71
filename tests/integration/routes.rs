//! The route table past its cap (1,000 routes, the rest under `other`): which routes are kept
//! depends on the data only, never on the order requests finish in, the order reports are
//! merged in, or the run.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::replay::{shadow, Behaviour};
use crate::support::files::pcap;
use crate::support::packets::{merge, Conv, Link, T0};

/// Requests per captured connection: enough connections to spread over every worker.
const PER_CONN: usize = 10;

/// A capture of one `GET /r{i}x` per route in `routes` (distinct routes: `r12x` is not an
/// id), each answered 200, from clients on `net`.
fn capture(dir: &Path, name: &str, net: u8, routes: Range<usize>) -> PathBuf {
    let ids: Vec<usize> = routes.collect();
    let convs = ids
        .chunks(PER_CONN)
        .enumerate()
        .map(|(n, chunk)| {
            let client = format!("10.{net}.{}.{}:40000", n / 200, n % 200 + 1);
            let mut conv =
                Conv::new(&client, "10.9.0.1:80", Link::Ethernet).at(T0 + n as i64 * 1_000_000);
            conv.handshake();
            for i in chunk {
                conv.client(format!("GET /r{i}x HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
                conv.server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
            conv.close();
            conv
        })
        .collect();
    let file = dir.join(format!("{name}.pcap"));
    let bytes = pcap(Link::Ethernet.linktype(), &merge(convs), false, false);
    std::fs::write(&file, bytes).unwrap();
    file
}

/// Runs shadowtap; returns its JSON output.
fn json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(args)
        .args(["--format", "json"])
        .output()
        .expect("running shadowtap");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// Replays `files` at full speed against a fresh shadow, saving the report to `save` if given.
fn replay(files: &[&Path], save: Option<&Path>) -> Value {
    let s = shadow(Behaviour::Answer(200));
    let mut args: Vec<&str> = vec!["replay"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    args.extend(["--shadow", &s.url, "--speed", "max"]);
    if let Some(path) = save {
        args.extend(["--report-json", path.to_str().unwrap()]);
    }
    json(&args)
}

/// The route table without the shadow's timings: name, requests on each side, production
/// histograms (from the capture, so the same on every run).
fn table(report: &Value) -> Vec<Value> {
    report["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| {
            serde_json::json!([
                r["route"],
                r["production"]["requests"],
                r["shadow"]["requests"],
                r["shadow"]["status"],
                r["production"]["histograms"],
            ])
        })
        .collect()
}

fn names(report: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = report["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .filter_map(|r| r["route"].as_str())
        .collect();
    names.sort_unstable();
    names
}

/// Two captures, 700 and 800 routes, 1,200 between them: each report is under the cap, their
/// merge is not. Returns the directory (removed by the caller) and the two captures.
fn two_captures(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("shadowtap-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = capture(&dir, "a", 1, 0..700);
    let b = capture(&dir, "b", 2, 400..1200);
    (dir, a, b)
}

/// The merge of the two reports: `report a b`. Each run had its own shadow server (a test
/// shadow takes a bounded number of connections), standing for two nodes of one service:
/// `--allow-mixed` says so.
fn merged(dir: &Path, a: &Path, b: &Path) -> Value {
    let (ra, rb) = (dir.join("a.json"), dir.join("b.json"));
    replay(&[a], Some(&ra));
    replay(&[b], Some(&rb));
    json(&[
        "report",
        "--allow-mixed",
        ra.to_str().unwrap(),
        rb.to_str().unwrap(),
    ])
}

#[test]
fn merging_reports_past_the_route_cap_gives_one_table_in_any_order() {
    let (dir, a, b) = two_captures("routes-order");
    let ab = merged(&dir, &a, &b);
    let (ra, rb) = (dir.join("a.json"), dir.join("b.json"));
    let ba = json(&[
        "report",
        "--allow-mixed",
        rb.to_str().unwrap(),
        ra.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ab, ba, "report a b differs from report b a");

    // Kept: the 1,000 names that sort first; `other` has the requests of the other 200.
    let mut all: Vec<(String, u64)> = (0..1200)
        .map(|i| {
            (
                format!("GET /r{i}x"),
                if (400..700).contains(&i) { 2 } else { 1 },
            )
        })
        .collect();
    all.sort();
    let (kept, folded) = all.split_at(1000);
    let mut expected: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
    expected.push("other");
    expected.sort_unstable();
    assert_eq!(names(&ab), expected);
    let routes = ab["routes"].as_array().unwrap();
    let other = routes.iter().find(|r| r["route"] == "other").unwrap();
    let folded: u64 = folded.iter().map(|(_, n)| n).sum();
    assert_eq!(other["shadow"]["requests"], folded);
    assert_eq!(ab["shadow"]["requests"], 1500, "the merge loses no request");
}

#[test]
fn a_replay_past_the_route_cap_gives_the_same_table_every_run_and_as_merged() {
    let (dir, a, b) = two_captures("routes-runs");
    let once = replay(&[&a, &b], None);
    let twice = replay(&[&a, &b], None);
    let ab = merged(&dir, &a, &b);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(names(&once).len(), 1001, "1,000 routes and other");
    assert_eq!(table(&once), table(&twice), "two runs, two route tables");
    assert_eq!(
        table(&once),
        table(&ab),
        "the merge is not the combined run"
    );
}

#[test]
fn a_sample_takes_its_share_of_every_route_even_one_with_a_single_url() {
    // 100 requests of GET /api/cart and 30 of GET /r{i}x (30 routes of one request): a hash
    // of method and target kept or dropped /api/cart whole.
    let dir = std::env::temp_dir().join(format!("shadowtap-sample-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let convs = (0..10)
        .map(|n| {
            let client = format!("10.3.0.{}:40000", n + 1);
            let mut conv =
                Conv::new(&client, "10.9.0.1:80", Link::Ethernet).at(T0 + n as i64 * 1_000_000);
            conv.handshake();
            for i in 0..13 {
                let target = if i < 10 {
                    "/api/cart".to_string()
                } else {
                    format!("/r{}x", n * 3 + i - 10)
                };
                conv.client(format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
                conv.server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
            conv.close();
            conv
        })
        .collect();
    let file = dir.join("cart.pcap");
    std::fs::write(
        &file,
        pcap(Link::Ethernet.linktype(), &merge(convs), false, false),
    )
    .unwrap();
    let s = shadow(Behaviour::Answer(200));
    for seed in ["0", "7"] {
        let report = json(&[
            "replay",
            file.to_str().unwrap(),
            "--shadow",
            &s.url,
            "--speed",
            "max",
            "--sample",
            "50",
            "--seed",
            seed,
        ]);
        let cart = report["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == "GET /api/cart")
            .unwrap_or_else(|| panic!("GET /api/cart missing from the sample (seed {seed})"));
        assert_eq!(cart["shadow"]["requests"], 50, "seed {seed}");
        // Each one-request route is in or out: 30 routes give floor or ceil of 15 each
        // time only in total over many routes, so only bound it.
        let replayed = report["counts"]["replayed"].as_u64().unwrap();
        assert!((50..=80).contains(&replayed), "{replayed}");
        assert_eq!(report["counts"]["filtered"]["sample"], 130 - replayed);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
