//! `shadowtap inspect` on the fixtures: what a user sees, line by line.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

pub(crate) fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn shadowtap(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(args)
        .output()
        .expect("running shadowtap");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `inspect --format jsonl` on fixtures and parses every stdout line (each must be JSON).
fn jsonl(files: &[&str], extra: &[&str]) -> (Run, Vec<Value>) {
    let paths: Vec<String> = files.iter().map(|f| fixture(f)).collect();
    let mut args = vec!["inspect", "--format", "jsonl"];
    args.extend(paths.iter().map(String::as_str));
    args.extend_from_slice(extra);
    let run = shadowtap(&args);
    let lines = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    (run, lines)
}

fn uris(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l["uri"].as_str().unwrap_or("?"))
        .collect()
}

fn flags(line: &Value) -> Vec<&str> {
    line["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

fn find<'a>(lines: &'a [Value], uri: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["uri"] == uri)
        .unwrap_or_else(|| panic!("no exchange for {uri} in {lines:?}"))
}

fn assert_keepalive(file: &str) {
    let (run, lines) = jsonl(&[file], &[]);
    assert_eq!(run.code, 0, "{file}: {}", run.stderr);
    assert_eq!(
        uris(&lines),
        ["/api/users/1", "/api/users/2", "/health"],
        "{file}"
    );
    for (line, body) in lines.iter().zip([5, 3, 2]) {
        assert_eq!(line["method"], "GET");
        assert_eq!(line["status"], 200, "{file}");
        assert_eq!(line["host"], "shop.example");
        assert_eq!(line["version"], "HTTP/1.1");
        assert_eq!(line["req_body_len"], 0);
        assert_eq!(line["resp_body_len"], body, "{file}");
        // The request's frame, then 100 µs of frame spacing and a 1.5 ms wait.
        assert_eq!(line["ttfb_us"], 1600, "{file}");
        assert_eq!(line["total_us"], 1600, "{file}");
        assert!(flags(line).is_empty(), "{file}: {line}");
    }
    assert_eq!(lines[0]["client"], "10.0.0.1:40000", "{file}");
    assert_eq!(lines[0]["server"], "10.0.0.2:80", "{file}");
    // Microseconds, always six digits, as DESIGN.md writes it (a JSON parser drops the zeros).
    assert!(
        run.stdout.starts_with("{\"ts\":1700000000.000300,"),
        "{file}: {}",
        run.stdout
    );
}

#[test]
fn every_link_type_gives_the_same_exchanges() {
    for file in [
        "keepalive-ethernet.pcap",
        "keepalive-nanosecond-bigendian.pcap",
        "link-vlan.pcap",
        "link-qinq.pcap",
        "link-sll.pcap",
        "link-sll2.pcap",
        "link-null-le.pcap",
        "link-null-be.pcap",
        "link-loop.pcap",
        "link-raw.pcap",
    ] {
        assert_keepalive(file);
    }
}

#[test]
fn ipv6_addresses_are_printed_in_brackets() {
    let (run, lines) = jsonl(&["link-null-ipv6.pcap"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["client"], "[::1]:40000");
    assert_eq!(lines[0]["server"], "[::1]:8080");
}

#[test]
fn pcapng_interfaces_keep_their_own_link_type_and_resolution() {
    let (run, lines) = jsonl(&["pcapng-two-interfaces.pcapng"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let other = find(&lines, "/other");
    assert_eq!(other["server"], "10.0.1.2:8080");
    assert!(other["ts"]
        .as_f64()
        .is_some_and(|t| (t - 1_700_000_000.003_3).abs() < 1e-6));
    assert_eq!(other["ttfb_us"], 1000);
}

#[test]
fn pipelined_requests_pair_in_order() {
    let (_, lines) = jsonl(&["pipelined.pcap"], &[]);
    assert_eq!(uris(&lines), ["/a", "/b", "/c"]);
    let statuses: Vec<_> = lines.iter().map(|l| l["status"].clone()).collect();
    assert_eq!(statuses, [200, 404, 200]);
    assert_eq!(lines[1]["resp_body_len"], 4);
    assert!(flags(&lines[2]).contains(&"pipelined"), "{}", lines[2]);
}

#[test]
fn reordered_and_retransmitted_segments_give_one_clean_exchange() {
    let (_, lines) = jsonl(&["reorder-retransmit.pcap"], &[]);
    assert_eq!(uris(&lines), ["/reorder?x=1"]);
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["resp_body_len"], 14);
    assert!(!flags(&lines[0]).contains(&"gap"), "{}", lines[0]);
}

#[test]
fn a_lost_response_segment_flags_that_exchange_only() {
    let (run, lines) = jsonl(&["response-body-gap.pcap"], &[]);
    assert_eq!(uris(&lines), ["/big", "/after-gap"]);
    assert_eq!(lines[0]["status"], 200);
    assert!(flags(&lines[0]).contains(&"gap"), "{}", lines[0]);
    assert_eq!(lines[0]["total_us"], Value::Null);
    assert_eq!(lines[1]["status"], 200);
    assert!(!flags(&lines[1]).contains(&"gap"), "{}", lines[1]);
    assert!(run.stderr.contains("gap"), "{}", run.stderr);
}

#[test]
fn sequence_numbers_wrapping_past_2_pow_32_change_nothing() {
    let (_, lines) = jsonl(&["seq-wraparound.pcap"], &[]);
    assert_eq!(uris(&lines), ["/wrap"]);
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["resp_body_len"], 14);
}

#[test]
fn midstream_pickup_starts_at_the_first_request_line() {
    let (_, lines) = jsonl(&["midstream.pcap"], &[]);
    assert_eq!(uris(&lines), ["/midstream"]);
    assert_eq!(lines[0]["status"], 200);
    assert!(flags(&lines[0]).contains(&"midstream"), "{}", lines[0]);
}

#[test]
fn expect_continue_and_head_responses_are_framed() {
    let (_, lines) = jsonl(&["expect-continue-and-head.pcap"], &[]);
    assert_eq!(uris(&lines), ["/upload", "/upload", "/after-head"]);
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["status"], 201);
    assert_eq!(lines[0]["req_body_len"], 11);
    assert_eq!(lines[1]["method"], "HEAD");
    assert_eq!(lines[1]["status"], 200);
    assert_eq!(lines[1]["resp_body_len"], 0);
    assert_eq!(lines[2]["status"], 200);
}

#[test]
fn chunked_bodies_are_counted_dechunked() {
    let (_, lines) = jsonl(&["chunked.pcap"], &[]);
    assert_eq!(uris(&lines), ["/chunks"]);
    assert_eq!(lines[0]["req_body_len"], 11);
    assert_eq!(lines[0]["resp_body_len"], 9);
    assert_eq!(lines[0]["status"], 200);
}

#[test]
fn close_delimited_body_ends_at_the_servers_fin() {
    let (_, lines) = jsonl(&["close-delimited.pcap"], &[]);
    assert_eq!(uris(&lines), ["/legacy"]);
    assert_eq!(lines[0]["version"], "HTTP/1.0");
    assert_eq!(lines[0]["resp_body_len"], 13);
    assert_ne!(lines[0]["total_us"], Value::Null);
}

#[test]
fn upgrade_stops_parsing_the_connection() {
    let (_, lines) = jsonl(&["upgrade-websocket.pcap"], &[]);
    assert_eq!(uris(&lines), ["/ws"]);
    assert_eq!(lines[0]["status"], 101);
    assert!(flags(&lines[0]).contains(&"upgrade"), "{}", lines[0]);
}

#[test]
fn http2_tls_and_junk_are_not_taken_for_http1() {
    let (run, lines) = jsonl(&["not-http1.pcap"], &[]);
    assert_eq!(run.code, 0);
    assert!(lines.is_empty(), "{lines:?}");
    assert!(run.stderr.contains("non_http1"), "{}", run.stderr);
}

#[test]
fn reset_mid_response_leaves_it_incomplete() {
    let (_, lines) = jsonl(&["reset-mid-response.pcap"], &[]);
    assert_eq!(uris(&lines), ["/reset"]);
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["total_us"], Value::Null);
    let f = flags(&lines[0]);
    assert!(f.contains(&"reset") || f.contains(&"truncated"), "{f:?}");
}

#[test]
fn content_length_with_chunked_is_flagged_ambiguous() {
    let (_, lines) = jsonl(&["ambiguous-cl-te.pcap"], &[]);
    assert_eq!(uris(&lines), ["/smuggle"]);
    assert!(
        flags(&lines[0]).contains(&"ambiguous_framing"),
        "{}",
        lines[0]
    );
}

#[test]
fn snaplen_cut_bytes_are_a_gap_not_data() {
    let (_, lines) = jsonl(&["snaplen-truncated.pcap"], &[]);
    assert_eq!(uris(&lines), ["/snap"]);
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["total_us"], Value::Null);
    assert!(flags(&lines[0]).contains(&"gap"), "{}", lines[0]);
}

#[test]
fn several_files_are_merged_in_time_order() {
    let (run, lines) = jsonl(&["merge-b.pcap", "merge-a.pcap"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(lines.len(), 6);
    let clients: Vec<_> = lines
        .iter()
        .map(|l| l["client"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(&clients[..3], ["10.0.0.1:40020"; 3]);
    assert_eq!(&clients[3..], ["10.0.0.3:40021"; 3]);
}

#[test]
fn port_filter_narrows_the_input() {
    let (_, lines) = jsonl(&["keepalive-ethernet.pcap"], &["--port", "8080"]);
    assert!(lines.is_empty());
    let (_, lines) = jsonl(&["keepalive-ethernet.pcap"], &["--port", "80"]);
    assert_eq!(lines.len(), 3);
}

#[test]
fn bpf_filter_is_compiled_for_each_interfaces_link_type() {
    let (run, lines) = jsonl(
        &["pcapng-two-interfaces.pcapng"],
        &["--bpf", "tcp port 8080"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(uris(&lines), ["/other"]);
}

#[test]
fn a_bad_bpf_expression_is_a_usage_error() {
    let (run, lines) = jsonl(&["keepalive-ethernet.pcap"], &["--bpf", "tcp prot 80"]);
    assert_eq!(run.code, 2);
    assert!(lines.is_empty());
    assert!(run.stderr.contains("BPF"), "{}", run.stderr);
}

#[test]
fn damaged_files_are_one_line_errors_with_exit_2() {
    for (file, words) in [
        ("corrupt-empty.pcap", "empty"),
        ("corrupt-bad-magic.pcap", "not a capture"),
        ("corrupt-huge-record.pcap", "record"),
        ("corrupt-pcapng-block-length.pcapng", "block"),
    ] {
        let (run, _) = jsonl(&[file], &[]);
        assert_eq!(run.code, 2, "{file}: {}", run.stderr);
        let errors: Vec<_> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("shadowtap: error"))
            .collect();
        assert_eq!(errors.len(), 1, "{file}: {}", run.stderr);
        assert!(errors[0].contains(file), "{file}: {}", errors[0]);
        assert!(
            errors[0].to_lowercase().contains(words),
            "{file}: {}",
            errors[0]
        );
    }
}

#[test]
fn a_damaged_file_does_not_stop_the_others() {
    let (run, lines) = jsonl(&["corrupt-bad-magic.pcap", "keepalive-ethernet.pcap"], &[]);
    assert_eq!(run.code, 2);
    assert_eq!(lines.len(), 3);
}

#[test]
fn a_file_cut_short_is_a_warning_and_exit_0() {
    let (run, lines) = jsonl(&["corrupt-truncated-tail.pcap"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("warning"), "{}", run.stderr);
    assert!(lines.len() >= 2, "{lines:?}");
    assert_eq!(lines[0]["status"], 200);
}

#[test]
fn text_format_is_a_table_then_the_summary() {
    let run = shadowtap(&["inspect", &fixture("keepalive-ethernet.pcap")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut lines = run.stdout.lines();
    assert!(lines.next().unwrap_or("").starts_with("TIME (UTC)"));
    let row = lines.next().unwrap_or("");
    assert!(row.starts_with("2023-11-14 22:13:20.000300"), "{row}");
    assert!(row.contains("10.0.0.1:40000 -> 10.0.0.2:80"), "{row}");
    assert!(
        row.contains("200") && row.contains("1.6ms") && row.contains("GET /api/users/1"),
        "{row}"
    );
    assert!(
        run.stdout.contains("summary: 3 exchanges (3 answered)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("decoder.packets"), "{}", run.stdout);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(shadowtap(&["inspect"]).code, 2);
    assert_eq!(shadowtap(&["inspect", "--format", "xml", "x.pcap"]).code, 2);
    assert_eq!(shadowtap(&["frobnicate"]).code, 2);
}
