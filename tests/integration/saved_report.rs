//! `shadowtap report` on hostile saved reports: a report is as untrusted as a capture, so a
//! histogram declaring a huge payload, a DEFLATE bomb, an oversized file or too many routes
//! is refused in one line naming the file (exit 2) without the memory it asks for.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use flate2::write::ZlibEncoder;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// HdrHistogram V2 cookies (uncompressed, compressed), as the Java and Rust libraries write.
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shadowtap-saved-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A well-formed histogram holding a few latencies, base64.
fn good_histogram() -> String {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    h.record(1200).unwrap();
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(&h, &mut bytes)
        .unwrap();
    b64(&bytes)
}

/// A compressed histogram whose V2 header declares `payload` bytes for 1 µs..1 h at 3
/// digits, followed by `zeros` zero bytes.
fn hostile_histogram(payload: u32, zeros: usize) -> String {
    let mut inner = Vec::new();
    inner.extend_from_slice(&V2_COOKIE.to_be_bytes());
    inner.extend_from_slice(&payload.to_be_bytes());
    inner.extend_from_slice(&0u32.to_be_bytes());
    inner.extend_from_slice(&3u32.to_be_bytes());
    inner.extend_from_slice(&1u64.to_be_bytes());
    inner.extend_from_slice(&3_600_000_000u64.to_be_bytes());
    inner.extend_from_slice(&1.0f64.to_be_bytes());
    let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&inner).unwrap();
    let block = vec![0u8; 1 << 20];
    for _ in 0..zeros / block.len() {
        z.write_all(&block).unwrap();
    }
    let stream = z.finish().unwrap();
    let mut bytes = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
    bytes.extend_from_slice(&(stream.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&stream);
    b64(&bytes)
}

/// A side with every key a report has (a saved report is read by its schema).
fn side(ttfb: &str) -> Value {
    let none =
        json!({"p50": null, "p90": null, "p95": null, "p99": null, "p999": null, "max": null});
    json!({"requests": 1, "status": {"1xx": 0, "2xx": 1, "3xx": 0, "4xx": 0, "5xx": 0},
           "error_rate": 0.0, "ttfb_us": none, "total_us": none,
           "histograms": {"ttfb": ttfb, "total": good_histogram()}})
}

fn report(production_ttfb: &str, routes: usize) -> Value {
    let routes: Vec<Value> = (0..routes)
        .map(|i| {
            json!({"route": format!("GET /r{i}"), "production": side(&good_histogram()),
                        "shadow": side(&good_histogram()), "mismatch": {"status": 0}})
        })
        .collect();
    json!({"version": 1,
           "counts": {"seen": 1, "replayed": 1, "filtered": {}, "dropped": {}, "incomplete": {}},
           "production": side(production_ttfb), "shadow": side(&good_histogram()),
           "mismatch": {"status": 0}, "mismatches": [], "routes": routes,
           "schedule": {"lateness_us": null, "histogram": null}})
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(v).unwrap()).unwrap();
    path
}

/// Runs `shadowtap report PATH`, under GNU time when it is installed: (exit code, stderr
/// without time's line, peak RSS in KiB or None).
fn run_report(path: &Path) -> (Option<i32>, String, Option<u64>) {
    let timed = Path::new("/usr/bin/time").exists();
    let mut cmd = if timed {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%M"]).arg(env!("CARGO_BIN_EXE_shadowtap"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_shadowtap"))
    };
    let out = cmd.arg("report").arg(path).output().unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("Command exited with"))
        .map(str::to_string)
        .collect();
    let rss = if timed {
        lines.pop().and_then(|l| l.trim().parse().ok())
    } else {
        None
    };
    (out.status.code(), lines.join("\n"), rss)
}

/// One line naming the file and saying why, exit 2, and (measured) far less memory than asked.
fn assert_refused(path: &Path, why: &str) {
    let (code, err, rss) = run_report(path);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains(why), "{err}");
    if let Some(kb) = rss {
        assert!(kb < 256 * 1024, "peak RSS {kb} KiB");
    }
}

#[test]
fn a_saved_report_reads_back() {
    let d = dir("good");
    let path = write(&d, "good.json", &report(&good_histogram(), 3));
    let (code, err, _) = run_report(&path);
    assert_eq!(code, Some(0), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_histogram_declaring_a_4_gib_payload_is_refused_in_one_line() {
    let d = dir("4gib");
    let path = write(&d, "4gib.json", &report(&hostile_histogram(u32::MAX, 0), 0));
    assert!(std::fs::metadata(&path).unwrap().len() < 4096);
    assert_refused(&path, "4294967295-byte payload");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_deflate_bomb_is_refused_in_one_line() {
    let d = dir("bomb");
    // 64 KiB of DEFLATE that would inflate to 64 MiB, behind a header whose declared
    // payload its range allows.
    let path = write(
        &d,
        "bomb.json",
        &report(&hostile_histogram(1000, 64 << 20), 0),
    );
    assert_refused(&path, "inflates beyond");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_oversized_report_file_is_refused_without_reading_it_all() {
    let d = dir("huge");
    let path = d.join("huge.json");
    // Sparse: 65 MiB of nothing costs no disk.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(65 << 20)
        .unwrap();
    assert_refused(&path, "larger than 64 MiB");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_report_with_more_routes_than_any_run_writes_is_refused() {
    let d = dir("routes");
    let path = write(&d, "routes.json", &report(&good_histogram(), 1002));
    assert_refused(&path, "1002 routes");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_report_whose_values_do_not_fit_their_keys_is_refused_not_cut_to_fit() {
    // Read by hand, a status of 70000 was cast to 4464, a count of -5 became 0, an unknown
    // reason became a reason of its own and a misspelt key was ignored.
    let d = dir("types");
    let good = report(&good_histogram(), 1);
    type Spoil = fn(&mut Value);
    let cases: [(&str, Spoil, &str); 4] = [
        (
            "status.json",
            |r| {
                r["mismatches"] =
                    json!([{"route": "GET /r0", "production": 70000, "shadow": 500, "count": 1}])
            },
            "70000",
        ),
        ("count.json", |r| r["counts"]["seen"] = json!(-5), "-5"),
        (
            "reason.json",
            |r| r["counts"]["filtered"]["because"] = json!(1),
            "because",
        ),
        ("key.json", |r| r["shadoww"] = json!({}), "shadoww"),
    ];
    for (name, spoil, why) in cases {
        let mut r = good.clone();
        spoil(&mut r);
        assert_refused(&write(&d, name, &r), why);
    }
    let _ = std::fs::remove_dir_all(&d);
}
