//! The text format's pieces (version 0.0.4): escaping, the `# HELP` / `# TYPE` lines,
//! single series and histogram series with their buckets.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Histogram bucket bounds: the `le` label as Prometheus writes it (Go's shortest float
/// format) and the same bound in µs, the unit of the HdrHistograms. Kept as integers so no
/// float rounding moves a bound; `+Inf` is added after them.
pub(super) const BUCKETS: [(&str, u64); 14] = [
    ("0.0005", 500),
    ("0.001", 1_000),
    ("0.0025", 2_500),
    ("0.005", 5_000),
    ("0.01", 10_000),
    ("0.025", 25_000),
    ("0.05", 50_000),
    ("0.1", 100_000),
    ("0.25", 250_000),
    ("0.5", 500_000),
    ("1", 1_000_000),
    ("2.5", 2_500_000),
    ("5", 5_000_000),
    ("10", 10_000_000),
];

/// A label value escaped per the format: backslash, double quote and line feed.
pub(super) fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text escaped per the format: backslash and line feed.
pub(super) fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Microseconds as decimal seconds, exactly (no float rounding): `1234567` -> `1.234567`.
pub(super) fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// The `# HELP` and `# TYPE` lines that open a metric family.
pub(super) fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(o, "# TYPE {name} {kind}");
}

/// A counter family with a single, unlabelled series.
pub(super) fn counter(o: &mut String, name: &str, help: &str, value: u64) {
    family(o, name, "counter", help);
    let _ = writeln!(o, "{name} {value}");
}

/// A gauge family with a single, unlabelled series.
pub(super) fn gauge(o: &mut String, name: &str, help: &str, value: u64) {
    family(o, name, "gauge", help);
    let _ = writeln!(o, "{name} {value}");
}

/// One histogram series (`side` label) of a family opened by the caller.
///
/// Buckets: HdrHistogram keeps a value only to within its bin (3 significant digits here),
/// so a recorded value counts as `<= le` when the lowest value of its bin is `<= le`. This is
/// exactly `h.count_between(0, le_us)` (every bin up to and including the one holding
/// `le_us`), computed here in a single pass. A value exactly on a bound (say a 5 s timeout)
/// therefore lands in that bound's bucket; a value above a bound by less than the bin width
/// (at most 0.1% of it) does too.
///
/// `_sum`: every bin counts at its median equivalent value, the estimate HdrHistogram's own
/// `mean()` uses, so `_sum / _count` equals `h.mean()` to within a microsecond. `_count` is
/// `h.len()`, which is also the `+Inf` bucket.
pub(super) fn histogram(o: &mut String, name: &str, side: &str, h: &Histogram<u64>) {
    let mut per_bucket = [0u64; BUCKETS.len()];
    let mut sum_us = 0u64;
    for v in h.iter_recorded() {
        let n = v.count_at_value();
        let value = v.value_iterated_to();
        let low = h.lowest_equivalent(value);
        if let Some(i) = BUCKETS.iter().position(|&(_, le_us)| low <= le_us) {
            per_bucket[i] = per_bucket[i].saturating_add(n);
        }
        sum_us = sum_us.saturating_add(h.median_equivalent(value).saturating_mul(n));
    }
    let side = escape_label(side);
    let mut cumulative = 0u64;
    for ((le, _), n) in BUCKETS.iter().zip(per_bucket) {
        cumulative = cumulative.saturating_add(n);
        let _ = writeln!(
            o,
            "{name}_bucket{{side=\"{side}\",le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        o,
        "{name}_bucket{{side=\"{side}\",le=\"+Inf\"}} {}",
        h.len()
    );
    let _ = writeln!(o, "{name}_sum{{side=\"{side}\"}} {}", seconds(sum_us));
    let _ = writeln!(o, "{name}_count{{side=\"{side}\"}} {}", h.len());
}
