//! The exposition checked line by line against the format and against the statistics.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use regex::Regex;

use super::buckets::BUCKETS;
use super::families::ERROR_KINDS;
use super::*;
use crate::replay::client::{Answer, Failure};
use crate::replay::select::Skip;
use crate::replay::stats::Stats;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The `le` label of each bound of `BUCKETS`, as Prometheus' own clients write it (Go's
/// shortest float format), so that series are the same as theirs.
const LE: [&str; 14] = [
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "2.5", "5", "10",
];

fn answer(status: u16, ttfb_ms: u64, total_ms: u64) -> Result<Answer, Failure> {
    Ok(Answer {
        status,
        ttfb: Duration::from_millis(ttfb_ms),
        total: Duration::from_millis(total_ms),
        body_len: 0,
        body_cut: false,
    })
}

fn capture() -> Capture {
    Capture {
        packets: 10,
        kernel_drops: 1,
        interface_drops: 2,
        own_traffic: 3,
        http_memuse: 4096,
        http_memcap_hits: 2,
    }
}

/// Three replayed requests (a 2 ms 200, a 30 ms 500 against a production 200, a 5 s
/// timeout), two filtered, one incomplete and one dropped.
fn sample_stats() -> Stats {
    let mut s = Stats::default();
    s.replayed(
        "GET /a",
        Some((200, 300, Some(400))),
        answer(200, 2, 3),
        TIMEOUT,
    );
    s.replayed(
        "GET /a",
        Some((200, 300, Some(400))),
        answer(500, 30, 40),
        TIMEOUT,
    );
    s.replayed("GET /b", None, Err(Failure::Timeout), TIMEOUT);
    s.skip(Skip::Method);
    s.skip(Skip::Method);
    s.skip(Skip::Gap);
    s.dropped(crate::replay::stats::Dropped::QueueFull);
    s
}

fn sample() -> String {
    exposition(&sample_stats(), &capture())
}

/// The value of the one sample line `series` (name and labels exactly as written).
fn value(text: &str, series: &str) -> f64 {
    let found: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(found.len(), 1, "{series:?} in\n{text}");
    found[0]
}

/// Checks the whole text against the exposition format and returns, per series of every
/// `_bucket` sample, its `le` labels and values in order. Panics on the first problem.
fn check(text: &str) -> BTreeMap<String, Vec<(String, f64)>> {
    let name = r"[a-zA-Z_:][a-zA-Z0-9_:]*";
    let label = r#"[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*""#;
    let number = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|Inf|NaN)";
    let sample = Regex::new(&format!(
        r"^({name})(?:\{{((?:{label})(?:,{label})*,?)?\}})? ({number})$"
    ))
    .unwrap();
    let one_label = Regex::new(&format!("({label})")).unwrap();
    let help = Regex::new(&format!(r"^# HELP ({name}) (?:[^\\\n]|\\[\\n])*$")).unwrap();
    let kind = Regex::new(&format!(
        r"^# TYPE ({name}) (counter|gauge|histogram|summary|untyped)$"
    ))
    .unwrap();

    assert!(
        text.ends_with('\n'),
        "the last line must end with a line feed"
    );
    let mut helped = HashSet::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<(String, String)> = None; // (family, type)
    let mut seen_series = HashSet::new();
    let mut buckets: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(c) = help.captures(line) {
            let family = c[1].to_string();
            assert!(helped.insert(family.clone()), "HELP twice for {family}");
            assert!(
                !typed.contains_key(&family),
                "HELP after TYPE or samples of {family}"
            );
            continue;
        }
        if let Some(c) = kind.captures(line) {
            let family = c[1].to_string();
            assert!(helped.contains(&family), "TYPE without HELP for {family}");
            assert!(
                typed.insert(family.clone(), c[2].to_string()).is_none(),
                "TYPE twice for {family}"
            );
            current = Some((family, c[2].to_string()));
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line:?}");
        let c = sample
            .captures(line)
            .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
        let metric = &c[1];
        let labels = c.get(2).map_or("", |m| m.as_str());
        let (family, kind) = current
            .as_ref()
            .unwrap_or_else(|| panic!("{line:?} before any TYPE"));
        // Every sample belongs to the family whose TYPE came last, so families are
        // contiguous and declared before their samples.
        let ok = match kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| metric.strip_suffix(s) == Some(family.as_str())),
            _ => metric == family,
        };
        assert!(ok, "{line:?} outside its family (current: {family})");
        assert!(
            seen_series.insert(format!("{metric}{{{labels}}}")),
            "series twice: {line:?}"
        );
        let value: f64 = c[3].parse().unwrap();
        if kind == "counter" || kind == "histogram" {
            assert!(value >= 0.0, "negative: {line:?}");
        }
        if metric.ends_with("_bucket") {
            let mut le = None;
            let mut rest = Vec::new();
            for l in one_label.find_iter(labels) {
                match l.as_str().strip_prefix("le=") {
                    Some(v) => le = Some(v.trim_matches('"').to_string()),
                    None => rest.push(l.as_str().to_string()),
                }
            }
            let le = le.unwrap_or_else(|| panic!("bucket without le: {line:?}"));
            buckets
                .entry(format!("{metric}{{{}}}", rest.join(",")))
                .or_default()
                .push((le, value));
        }
    }
    for (series, b) in &buckets {
        let les: Vec<&str> = b.iter().map(|(le, _)| le.as_str()).collect();
        let want: Vec<&str> = LE.iter().copied().chain(["+Inf"]).collect();
        assert_eq!(les, want, "{series}");
        for w in b.windows(2) {
            assert!(w[0].1 <= w[1].1, "{series} decreases: {b:?}");
        }
        // Every le parses as the float it stands for.
        for ((le, _), us) in b.iter().zip(BUCKETS) {
            assert_eq!(le.parse::<f64>().unwrap(), us as f64 / 1e6, "{series}");
        }
    }
    buckets
}

#[test]
fn counters_have_the_recorded_values() {
    let text = sample();
    for line in [
        "shadowtap_requests_seen_total 7",
        "shadowtap_requests_replayed_total 3",
        "shadowtap_requests_not_replayed_total{category=\"filtered\",reason=\"method\"} 2",
        "shadowtap_requests_not_replayed_total{category=\"incomplete\",reason=\"gap\"} 1",
        "shadowtap_requests_not_replayed_total{category=\"dropped\",reason=\"queue_full\"} 1",
        "shadowtap_responses_total{side=\"production\",class=\"2xx\"} 2",
        "shadowtap_responses_total{side=\"production\",class=\"5xx\"} 0",
        "shadowtap_responses_total{side=\"shadow\",class=\"2xx\"} 1",
        "shadowtap_responses_total{side=\"shadow\",class=\"5xx\"} 1",
        "shadowtap_responses_total{side=\"shadow\",class=\"other\"} 0",
        "shadowtap_shadow_errors_total{kind=\"timeout\"} 1",
        "shadowtap_shadow_errors_total{kind=\"connect\"} 0",
        "shadowtap_shadow_errors_total{kind=\"reset\"} 0",
        "shadowtap_shadow_errors_total{kind=\"circuit_open\"} 0",
        "shadowtap_shadow_errors_total{kind=\"other\"} 0",
        "shadowtap_status_mismatches_total 1",
        "shadowtap_capture_packets_total 10",
        "shadowtap_capture_kernel_drops_total 1",
        "shadowtap_capture_interface_drops_total 2",
        "shadowtap_own_traffic_ignored_total 3",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // One series per entry of `skipped`, nothing else.
    let skipped = text
        .lines()
        .filter(|l| l.starts_with("shadowtap_requests_not_replayed_total{"))
        .count();
    assert_eq!(skipped, 3);
}

#[test]
fn latencies_land_in_the_right_buckets() {
    let text = sample();
    let b = |side: &str, le: &str| {
        value(
            &text,
            &format!("shadowtap_ttfb_seconds_bucket{{side=\"{side}\",le=\"{le}\"}}"),
        )
    };
    // Shadow ttfb: 2 ms, 30 ms, and the 5 s timeout.
    for (le, n) in [
        ("0.0005", 0.0),
        ("0.001", 0.0),
        ("0.0025", 1.0),
        ("0.025", 1.0),
        ("0.05", 2.0),
        ("2.5", 2.0),
        ("5", 3.0),
        ("10", 3.0),
        ("+Inf", 3.0),
    ] {
        assert_eq!(b("shadow", le), n, "shadow le={le}");
    }
    // Production ttfb: twice 300 µs.
    assert_eq!(b("production", "0.0005"), 2.0);
    assert_eq!(b("production", "+Inf"), 2.0);
    // Shadow total: 3 ms, 40 ms, 5 s.
    let total = |le: &str| {
        value(
            &text,
            &format!("shadowtap_total_seconds_bucket{{side=\"shadow\",le=\"{le}\"}}"),
        )
    };
    assert_eq!(total("0.0025"), 0.0);
    assert_eq!(total("0.005"), 1.0);
    assert_eq!(total("0.05"), 2.0);
    assert_eq!(total("2.5"), 2.0);
    assert_eq!(total("5"), 3.0);
    // Counts.
    for (metric, side, n) in [
        ("ttfb", "shadow", 3.0),
        ("ttfb", "production", 2.0),
        ("total", "shadow", 3.0),
        ("total", "production", 2.0),
    ] {
        let series = format!("shadowtap_{metric}_seconds_count{{side=\"{side}\"}}");
        assert_eq!(value(&text, &series), n, "{series}");
    }
    // Sums, in seconds: values under 2048 µs are exact in the histogram.
    let sum = |series: &str| value(&text, series);
    assert_eq!(
        sum("shadowtap_ttfb_seconds_sum{side=\"production\"}"),
        0.0006
    );
    assert_eq!(
        sum("shadowtap_total_seconds_sum{side=\"production\"}"),
        0.0008
    );
    // 2 ms + 30 ms + 5 s, each within HdrHistogram's 0.1% resolution.
    let shadow = sum("shadowtap_ttfb_seconds_sum{side=\"shadow\"}");
    assert!((shadow - 5.032).abs() < 5.032e-3, "{shadow}");
}

#[test]
fn the_sum_is_the_histograms_mean_times_its_count() {
    let mut s = Stats::default();
    for ms in [1, 7, 13, 250, 999, 4_321] {
        s.replayed("GET /x", None, answer(200, ms, ms + 1), TIMEOUT);
    }
    let text = exposition(&s, &capture());
    let h = &s.shadow.ttfb;
    let sum = value(&text, "shadowtap_ttfb_seconds_sum{side=\"shadow\"}");
    let want = h.mean() * h.len() as f64 / 1e6;
    assert!((sum - want).abs() < 1e-5, "{sum} vs {want}");
}

#[test]
fn buckets_equal_count_between_zero_and_the_bound() {
    // Values around every bound, in and just past HdrHistogram's bin of the bound.
    let mut s = Stats::default();
    for us in BUCKETS {
        for v in [us - 1, us, us + 1, us + us / 1000, us + us / 500 + 2] {
            s.replayed(
                "GET /x",
                None,
                Ok(Answer {
                    status: 200,
                    ttfb: Duration::from_micros(v),
                    total: Duration::from_micros(v),
                    body_len: 0,
                    body_cut: false,
                }),
                TIMEOUT,
            );
        }
    }
    let text = exposition(&s, &capture());
    let h = &s.shadow.ttfb;
    for (le, us) in LE.iter().zip(BUCKETS) {
        let series = format!("shadowtap_ttfb_seconds_bucket{{side=\"shadow\",le=\"{le}\"}}");
        assert_eq!(
            value(&text, &series),
            h.count_between(0, us) as f64,
            "{series}"
        );
    }
    // Below 2048 µs the histogram is exact: of 499, 500, 501, 500 and 503 µs, three are
    // <= 0.5 ms; of 999, 1000, 1001, 1001 and 1004 µs, two more are <= 1 ms.
    let b = |le: &str| {
        value(
            &text,
            &format!("shadowtap_ttfb_seconds_bucket{{side=\"shadow\",le=\"{le}\"}}"),
        )
    };
    assert_eq!(b("0.0005"), 3.0);
    assert_eq!(b("0.001"), 5.0 + 2.0);
    // At 5 s a bin is 4096 µs wide ([4_997_120, 5_001_215]): 4_999_999, 5_000_000 and
    // 5_000_001 µs share it and count as <= 5 s; 5_005_000 and 5_010_002 do not. Between
    // 2.5 s and 5 s there are also the two values clearly past 2.5 s.
    assert_eq!(b("5") - b("2.5"), 2.0 + 3.0);
    // Likewise at 10 s (bin [9_994_240, 10_002_431]); the last two are only in +Inf.
    assert_eq!(b("10") - b("5"), 2.0 + 3.0);
    assert_eq!(b("+Inf") - b("10"), 2.0);
    check(&text);
}

#[test]
fn every_line_follows_the_exposition_grammar() {
    let text = sample();
    let buckets = check(&text);
    // Four histogram series, each ending at its _count.
    assert_eq!(buckets.len(), 4, "{buckets:?}");
    for (series, b) in &buckets {
        let count_series = series.replace("_bucket{", "_count{");
        let (le, inf) = b.last().unwrap();
        assert_eq!(le, "+Inf");
        assert_eq!(*inf, value(&text, &count_series), "{series}");
    }
    // Every family is there, with the expected type.
    for (family, kind) in [
        ("shadowtap_requests_seen_total", "counter"),
        ("shadowtap_requests_replayed_total", "counter"),
        ("shadowtap_requests_not_replayed_total", "counter"),
        ("shadowtap_responses_total", "counter"),
        ("shadowtap_shadow_errors_total", "counter"),
        ("shadowtap_shadow_truncated_total", "counter"),
        ("shadowtap_status_mismatches_total", "counter"),
        ("shadowtap_capture_packets_total", "counter"),
        ("shadowtap_capture_kernel_drops_total", "counter"),
        ("shadowtap_capture_interface_drops_total", "counter"),
        ("shadowtap_own_traffic_ignored_total", "counter"),
        ("shadowtap_http_memuse_bytes", "gauge"),
        ("shadowtap_http_memcap_hits_total", "counter"),
        ("shadowtap_ttfb_seconds", "histogram"),
        ("shadowtap_total_seconds", "histogram"),
    ] {
        let line = format!("# TYPE {family} {kind}");
        assert!(text.lines().any(|l| l == line), "missing {line:?}");
    }
    assert_eq!(value(&text, "shadowtap_http_memuse_bytes"), 4096.0);
    assert_eq!(value(&text, "shadowtap_http_memcap_hits_total"), 2.0);
}

#[test]
fn requests_cut_at_shutdown_and_bodies_cut_at_the_drain_cap_are_exposed() {
    let mut s = Stats::default();
    s.replayed("GET /a", None, Err(Failure::Shutdown), TIMEOUT);
    s.replayed("GET /a", None, Err(Failure::Shutdown), TIMEOUT);
    let cut = Answer {
        body_cut: true,
        ..answer(200, 2, 3).unwrap()
    };
    s.replayed("GET /b", None, Ok(cut), TIMEOUT);
    let text = exposition(&s, &capture());
    check(&text);
    let shutdown = "shadowtap_shadow_errors_total{kind=\"shutdown\"}";
    assert_eq!(value(&text, shutdown), 2.0);
    assert_eq!(value(&text, "shadowtap_shadow_truncated_total"), 1.0);
}

#[test]
fn an_empty_run_has_every_series_at_zero() {
    let text = exposition(
        &Stats::default(),
        &Capture {
            packets: 0,
            kernel_drops: 0,
            interface_drops: 0,
            own_traffic: 0,
            http_memuse: 0,
            http_memcap_hits: 0,
        },
    );
    check(&text);
    for kind in ERROR_KINDS {
        let series = format!("shadowtap_shadow_errors_total{{kind=\"{kind}\"}}");
        assert_eq!(value(&text, &series), 0.0, "{series}");
    }
    for side in ["production", "shadow"] {
        for class in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
            let series = format!("shadowtap_responses_total{{side=\"{side}\",class=\"{class}\"}}");
            assert_eq!(value(&text, &series), 0.0, "{series}");
        }
        for metric in ["ttfb", "total"] {
            let inf = format!("shadowtap_{metric}_seconds_bucket{{side=\"{side}\",le=\"+Inf\"}}");
            assert_eq!(value(&text, &inf), 0.0);
            let sum = format!("shadowtap_{metric}_seconds_sum{{side=\"{side}\"}}");
            assert_eq!(value(&text, &sum), 0.0);
            let count = format!("shadowtap_{metric}_seconds_count{{side=\"{side}\"}}");
            assert_eq!(value(&text, &count), 0.0);
        }
    }
    assert!(!text.contains("shadowtap_requests_not_replayed_total{"));
}

#[test]
fn a_status_below_100_is_counted_as_other() {
    let mut s = Stats::default();
    s.replayed("GET /x", Some((99, 10, None)), answer(200, 1, 1), TIMEOUT);
    let text = exposition(&s, &capture());
    check(&text);
    assert_eq!(
        value(
            &text,
            "shadowtap_responses_total{side=\"production\",class=\"other\"}"
        ),
        1.0
    );
}
