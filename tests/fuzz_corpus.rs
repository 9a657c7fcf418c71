//! The fuzz corpus, replayed under plain `cargo test`: every committed seed in
//! `fuzz/corpus/<target>/` runs through the very function its fuzz target calls
//! (`shadowtap::fuzzing`), and the pipeline's work is checked against each input's length.
//!
//! The seeds are made by `regenerate_corpus` (ignored; run it with
//! `cargo test --test fuzz_corpus -- --ignored regenerate_corpus`) from the fixtures and from
//! the scripts below, so they can be re-created and reviewed; it overwrites its own files and
//! keeps the others (inputs the fuzzer found, named for what they exercise).

use std::path::{Path, PathBuf};
use std::time::Duration;

use shadowtap::capture::CaptureReader;
use shadowtap::fuzzing::{self, TARGETS};
use shadowtap::replay::client::{Answer, Failure};
use shadowtap::replay::stats::Stats;
use shadowtap::wire::Decoder;

/// The corpus may not grow past this, all targets together.
const MAX_CORPUS_BYTES: u64 = 1024 * 1024;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

#[test]
fn every_seed_runs_through_its_target() {
    for target in TARGETS {
        let seeds = seeds(target);
        assert!(seeds.len() >= 3, "{target}: {} seeds", seeds.len());
        for (path, bytes) in seeds {
            let ran = std::panic::catch_unwind(|| fuzzing::run(target, &bytes));
            assert!(
                ran.is_ok_and(|r| r.is_some()),
                "{target}: {}",
                path.display()
            );
        }
    }
}

#[test]
fn pipeline_work_stays_proportional_to_each_input() {
    for (path, bytes) in seeds("pipeline") {
        let w = fuzzing::pipeline(&bytes);
        let name = path.display();
        // Checked inside too (a fuzzer finding); stated here as the contract.
        assert!(
            w.bytes + w.segments <= fuzzing::EXPANSION * (w.input + 1),
            "{name}: {w:?}"
        );
        assert!(w.events <= 8 * (w.segments + 1), "{name}: {w:?}");
        assert!(w.exchanges <= w.bytes + w.segments, "{name}: {w:?}");
        assert!(w.peak_held <= w.memcap, "{name}: {w:?}");
        assert!(
            w.visits <= 16 * (w.segments + 1) + w.bytes + w.missing,
            "{name}: {w:?}"
        );
        assert!(w.http_peak <= w.http_memcap, "{name}: {w:?}");
    }
}

#[test]
fn a_few_script_bytes_expand_into_thousands_of_segments() {
    // Handshake, then 4096 one-byte segments out of order above a hole, then the hole.
    let w = fuzzing::pipeline(&burst_script());
    assert!(w.segments > 4096 && w.bytes > 4096, "{w:?}");
    // 1024 connections, each with an unfinished head.
    let w = fuzzing::pipeline(&flows_script());
    assert!(w.segments >= 5 * 1024 && w.bytes > 1024 * 1024, "{w:?}");
    // ... more than the HTTP budget holds: its cap is reached, not only checked.
    assert!(w.http_peak > w.http_memcap / 2, "{w:?}");
}

#[test]
fn every_target_has_a_dictionary_libfuzzer_can_read() {
    for target in TARGETS {
        let path = fuzz_dir().join("dict").join(format!("{target}.dict"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{target}: {e}"));
        let entries = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .inspect(|l| {
                // `name="value"` or `"value"`.
                let value = if l.starts_with('"') {
                    *l
                } else {
                    l.split_once('=').map_or(*l, |(_, v)| v)
                };
                assert!(
                    value.starts_with('"') && value.ends_with('"'),
                    "{target}: {l}"
                );
            })
            .count();
        assert!(entries >= 5, "{target}: {entries} entries");
    }
}

#[test]
fn the_corpus_stays_small() {
    let total: u64 = TARGETS
        .iter()
        .flat_map(|t| seeds(t))
        .map(|(_, b)| b.len() as u64)
        .sum();
    assert!(total < MAX_CORPUS_BYTES, "{total} bytes");
}

// ---- how the seeds are made ----

fn burst_script() -> Vec<u8> {
    let mut s = vec![0x00]; // handshake
    s.extend_from_slice(&[0x03 | 0x80, 0x00, 0x10]); // burst of 4096 x 1 byte, hole filled
    s
}

fn flows_script() -> Vec<u8> {
    vec![0x05, 0x00, 0x04, 0xff] // 1024 connections, 1020-byte filler each
}

/// A script op sending `payload` from `dir` (0 client, 1 server) in pieces of 255 bytes.
fn data_ops(dir: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    for piece in payload.chunks(255) {
        s.push(0x01 | dir << 3);
        s.push(piece.len() as u8);
        s.extend_from_slice(piece);
    }
    s
}

const REQUEST: &[u8] =
    b"GET /api/users/42?token=x HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
const CHUNKED: &[u8] =
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n";

fn scripts() -> Vec<(&'static str, Vec<u8>)> {
    let mut exchange = vec![0x00];
    exchange.extend(data_ops(0, REQUEST));
    exchange.extend(data_ops(1, RESPONSE));
    exchange.push(0x07);
    let mut gap = vec![0x00];
    gap.extend(data_ops(0, REQUEST));
    gap.extend_from_slice(&[0x02 | 0x08, 10]); // a hole in the response
    gap.extend(data_ops(1, CHUNKED));
    gap.push(0x07 | 0x08);
    let mut timeout = vec![0x00];
    timeout.extend(data_ops(0, &REQUEST[..20]));
    timeout.extend_from_slice(&[0x06, 0xff, 0x06, 0xff, 0x04]);
    timeout.extend(data_ops(0, REQUEST));
    vec![
        ("script-burst-out-of-order", burst_script()),
        ("script-many-unfinished-heads", flows_script()),
        ("script-exchange", exchange),
        ("script-gap-chunked-rst", gap),
        ("script-timeout-reconnect", timeout),
    ]
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// The first frames of each fixture, each behind the selector byte of its link type.
fn frames() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, bytes) in fixtures() {
        let Ok(mut reader) = CaptureReader::new(&bytes[..], name.clone()) else {
            continue;
        };
        let mut i = 0;
        while let Ok(Some(frame)) = reader.next_frame() {
            let Some(sel) = fuzzing::LINKS.iter().position(|l| *l == frame.link) else {
                break;
            };
            let mut seed = vec![sel as u8];
            seed.extend_from_slice(frame.data);
            out.push((format!("{name}-{i}"), seed));
            i += 1;
            if i == 2 {
                break;
            }
        }
    }
    out
}

/// A fixture's segments in the `reassembly` target's encoding.
fn segments(fixture: &str) -> Vec<u8> {
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(fixture),
    )
    .unwrap();
    let mut reader = CaptureReader::new(&bytes[..], fixture.to_string()).unwrap();
    let mut decoder = Decoder::new(Default::default());
    let mut out = Vec::new();
    let mut client = None;
    while let Ok(Some(frame)) = reader.next_frame() {
        let Some(seg) = decoder.decode(&frame) else {
            continue;
        };
        let from_client = *client.get_or_insert(seg.src) == seg.src;
        out.push(u8::from(!from_client));
        out.push(seg.flags.0);
        out.extend_from_slice(&seg.seq.0.to_le_bytes());
        out.extend_from_slice(&seg.ack.0.to_le_bytes());
        let len = seg.payload.len().min(0x0fff);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.push(1);
        out.extend_from_slice(&seg.payload[..len]);
    }
    out
}

/// Both directions in the `http1` target's encoding: chunks of up to 63 bytes.
fn http1_chunks(parts: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (dir, bytes) in parts {
        for piece in bytes.chunks(63) {
            out.push((piece.len() as u8) << 2 | dir);
            out.extend_from_slice(piece);
        }
    }
    out
}

fn report(stats: &Stats) -> Vec<u8> {
    shadowtap::report::replay::to_json(&shadowtap::report::replay::report(stats))
        .unwrap()
        .into_bytes()
}

fn saved_reports() -> Vec<(&'static str, Vec<u8>)> {
    let mut busy = Stats::default();
    for i in 0..20u64 {
        let answer = Answer {
            status: if i % 5 == 0 { 500 } else { 200 },
            ttfb: Duration::from_micros(100 + i * 37),
            total: Duration::from_micros(200 + i * 91),
            body_len: 10,
            body_cut: false,
        };
        let route = if i % 2 == 0 { "GET /a/{id}" } else { "GET /b" };
        busy.replayed(
            route,
            Some((200, 100, Some(150))),
            Ok(answer),
            Duration::from_secs(5),
        );
    }
    busy.replayed(
        "GET /b",
        None,
        Err(Failure::Timeout),
        Duration::from_secs(5),
    );
    busy.late(Duration::from_micros(250));
    let json: serde_json::Value = serde_json::from_slice(&report(&busy)).unwrap();
    let histogram = json["production"]["histograms"]["ttfb"]
        .as_str()
        .unwrap()
        .to_string();
    // A header that declares a 4 GiB payload for 1 µs..1 h at 3 digits (uncompressed V2).
    let mut declared = Vec::new();
    for word in [0x1c84_9313u32, u32::MAX, 0, 3] {
        declared.extend_from_slice(&word.to_be_bytes());
    }
    declared.extend_from_slice(&1u64.to_be_bytes());
    declared.extend_from_slice(&3_600_000_000u64.to_be_bytes());
    declared.extend_from_slice(&1.0f64.to_be_bytes());
    use base64::Engine as _;
    let declared = base64::engine::general_purpose::STANDARD.encode(declared);
    let mut hostile = json.clone();
    hostile["shadow"]["histograms"]["total"] = declared.clone().into();
    vec![
        ("empty", report(&Stats::default())),
        ("busy", report(&busy)),
        ("histogram", histogram.into_bytes()),
        ("histogram-declares-4gib", declared.into_bytes()),
        (
            "report-declares-4gib",
            serde_json::to_vec(&hostile).unwrap(),
        ),
        ("not-a-report", br#"{"version": 2}"#.to_vec()),
    ]
}

fn responses() -> Vec<(&'static str, Vec<u8>)> {
    let with = |ctl: u8, r: &[u8]| [&[ctl][..], r].concat();
    vec![
        ("length", with(0x1e, RESPONSE)),
        ("length-byte-by-byte", with(0x00, RESPONSE)),
        ("chunked", with(0x08, CHUNKED)),
        (
            "close-delimited",
            with(0x1e, b"HTTP/1.0 200 OK\r\n\r\nuntil the end"),
        ),
        (
            "continue-then-final",
            with(
                0x06,
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            ),
        ),
        (
            "two-interims-in-one-read",
            with(
                0x1e,
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            ),
        ),
        (
            "head",
            with(0x1f, b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"),
        ),
        (
            "short-body",
            with(0x1e, b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\nab"),
        ),
        ("invalid", with(0x1e, b"HTTP/1.1 abc\r\n\r\n")),
        (
            "gzip-then-chunked",
            with(
                0x1e,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            ),
        ),
        (
            "duplicate-lengths",
            with(
                0x1e,
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
            ),
        ),
        (
            "conflicting-lengths",
            with(
                0x1e,
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nok",
            ),
        ),
        (
            "extra-after-body",
            with(0x1e, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1"),
        ),
    ]
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand to re-create the seeds"]
fn regenerate_corpus() {
    let corpus = fuzz_dir().join("corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for (name, bytes) in fixtures() {
        write("capture_file", &name, &bytes);
        write("pipeline", &name, &bytes);
    }
    for (name, bytes) in scripts() {
        write("pipeline", name, &bytes);
    }
    for (name, bytes) in frames() {
        write("wire_decode", &name, &bytes);
    }
    for fixture in [
        "keepalive-ethernet.pcap",
        "reorder-retransmit.pcap",
        "seq-wraparound.pcap",
    ] {
        write(
            "reassembly",
            fixture.trim_end_matches(".pcap"),
            &segments(fixture),
        );
    }
    let http1 = [
        ("exchange", http1_chunks(&[(0, REQUEST), (1, RESPONSE)])),
        (
            "pipelined",
            http1_chunks(&[(0, REQUEST), (0, REQUEST), (1, RESPONSE), (1, CHUNKED)]),
        ),
        (
            "gap",
            http1_chunks(&[(0, REQUEST), (1 | 2, b"xxxx"), (1, RESPONSE)]),
        ),
        (
            "upgrade",
            http1_chunks(&[
                (
                    0,
                    b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                ),
                (
                    1,
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
                ),
            ]),
        ),
    ];
    for (name, bytes) in http1 {
        write("http1", name, &bytes);
    }
    for (name, bytes) in saved_reports() {
        write("saved_report", name, &bytes);
    }
    for (name, bytes) in responses() {
        write("replay_response", name, &bytes);
    }
}
