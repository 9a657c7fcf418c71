//! The replay report as types (DESIGN.md "JSON report", docs/report.md): what `replay` and
//! `mirror` write, what `shadowtap report` reads back and merges, what `--fail-if`
//! evaluates, and what the text and HTML forms are drawn from. The JSON form is these
//! types serialized; `docs/report.schema.json` is generated from them (a test keeps the
//! committed file equal to the generated one).
//!
//! Reading is strict: an unknown key, a wrong type, a count out of range or a histogram past
//! the bounds of [`crate::report::saved`] refuses the file, naming where.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The report format's version.
pub const VERSION: u64 = 1;

/// A replay report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "shadowtap replay report",
    description = "Written by `shadowtap replay --format json`, `--report-json` and `shadowtap report --format json`. Latencies in microseconds."
)]
pub struct Report {
    #[schemars(range(min = 1, max = 1))]
    pub version: u64,
    /// What was measured, how and when: the run behind the report, or every run a merged
    /// report (`shadowtap report`) holds, oldest first. Absent from reports written before
    /// runs were recorded.
    #[serde(default, deserialize_with = "read::runs")]
    pub runs: Vec<Run>,
    /// `replay` only, when SIGINT or SIGTERM stopped it: the signal. What was queued is
    /// `counts.dropped.shutdown`; requests in flight at the drain deadline are the shadow
    /// error `shutdown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    pub counts: Counts,
    /// Whether at least 95% of the selected requests were replayed (replayed / (replayed +
    /// dropped)); when not, the comparison rests on a small share of the traffic and a run
    /// under `--fail-if` exits 4.
    #[serde(default = "yes")]
    pub representative: bool,
    /// Replayed requests whose production response was captured, as captured.
    pub production: Side,
    /// Every replayed request, as the shadow answered.
    pub shadow: Side,
    pub mismatch: Mismatch,
    /// Each (route, production status, shadow status) with its count: at most 10,000 kinds,
    /// the smallest keys.
    #[serde(deserialize_with = "read::mismatch_kinds")]
    pub mismatches: Vec<MismatchKind>,
    /// The same figures per route: at most 1,000 routes and `other`.
    #[serde(deserialize_with = "read::routes")]
    pub routes: Vec<Route>,
    pub schedule: Schedule,
    /// Both sides' time to first byte over capture time, for the HTML report's plot;
    /// absent when nothing was replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
    /// Each latency percentile and rate, the whole run's then each route's (routes
    /// without data for any are left out): production against shadow, with an interval,
    /// a p-value and a verdict (docs/report.md "Verdicts").
    #[serde(default, deserialize_with = "read::comparisons")]
    pub verdicts: Vec<Comparison>,
    /// When `--fail-if` was given: each condition's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_if: Option<Vec<Verdict>>,
    /// Written by `shadowtap mirror` only: the live capture behind the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<Capture>,
    /// Written by `replay` and `mirror` when `--log` or `--save-pcap` was given: what became
    /// of each stream output. `*_written` records are in the file, whole; `*_failed` were not
    /// written (the write failed, or came after a failure, which stops the stream); `error`
    /// is the first failure, naming the path, or null. Any failure makes the run exit 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
}

/// One run: the tool, the command, the target, the inputs, the times and the settings that
/// shape the numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// Random, one per run: `shadowtap report` refuses a run it has already merged.
    pub id: String,
    /// `shadowtap 0.1.0`.
    pub tool: String,
    /// The command line, with credentials (URL userinfo, sensitive query values and
    /// header values) redacted.
    pub command: Vec<String>,
    /// `replay` or `mirror`.
    pub mode: String,
    /// The shadow's URL (userinfo redacted).
    pub shadow: String,
    /// The capture files (`replay`) or the interface (`mirror`).
    pub inputs: Vec<Input>,
    /// First and last frame read, on the capture's clock; null when none was.
    #[schemars(required, schema_with = "schema::nullable::<Span>")]
    pub captured: Option<Span>,
    /// When the run started and ended, on this machine's clock.
    pub ran: Span,
    pub settings: RunSettings,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The path as given, or the interface.
    pub name: String,
    /// Size in bytes; null for an interface or standard input.
    #[schemars(required, schema_with = "schema::nullable::<u64>")]
    pub bytes: Option<u64>,
    /// SHA-256 of the file, hex; null when it was not a regular file (standard input, a
    /// pipe, an interface), which cannot be read twice.
    #[schemars(required, schema_with = "schema::nullable::<String>")]
    pub sha256: Option<String>,
}

/// A time span, seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Span {
    pub start: f64,
    pub end: f64,
}

/// The settings that shape the numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// `1x`, `10x`, `max` (`mirror`: `live`).
    pub speed: String,
    /// `--rate`, requests per second; null without a cap.
    #[schemars(required, schema_with = "schema::nullable::<f64>")]
    pub rate: Option<f64>,
    /// `--sample`, percent.
    pub sample: f64,
    /// `--sample-by`: `route` (each route's share), `header:NAME`, `client`, `connection`.
    pub sample_by: String,
    /// `--seed`.
    pub seed: u64,
    pub concurrency: u64,
    /// `--timeout`, ms.
    pub timeout_ms: u64,
    /// How requests of one captured connection are sent: `none` (each on its own) or
    /// `connection` (one after another, as captured: `--keep-order connection`).
    pub order: String,
    /// The verdicts' practical thresholds: `--min-change` (a fraction),
    /// `--min-change-abs` (µs), `--min-rate-change` (a fraction).
    pub min_change: f64,
    pub min_change_abs_us: f64,
    pub min_rate_change: f64,
}

/// The accounting of every request seen: `seen = replayed + filtered + incomplete +
/// dropped`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub seen: u64,
    pub replayed: u64,
    /// Whole requests not replayed by choice or rule, by reason.
    #[schemars(schema_with = "schema::filtered_schema")]
    pub filtered: BTreeMap<String, u64>,
    /// Selected requests not sent, by reason.
    #[schemars(schema_with = "schema::dropped_schema")]
    pub dropped: BTreeMap<String, u64>,
    /// Requests not whole in the capture, by reason.
    #[schemars(schema_with = "schema::incomplete_schema")]
    pub incomplete: BTreeMap<String, u64>,
}

fn yes() -> bool {
    true
}

/// Below this share of the selected requests replayed (replayed / (replayed + dropped)), a
/// run is not representative of the traffic (DESIGN.md "Exit codes": exit 4).
pub const REPRESENTATIVE: f64 = 0.95;

impl Counts {
    /// Requests selected but not sent.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// Whether the replayed requests are at least [`REPRESENTATIVE`] of the selected ones
    /// (a run that selected nothing is not unrepresentative).
    pub fn representative(&self) -> bool {
        let selected = self.replayed + self.dropped_total();
        selected == 0 || self.replayed as f64 >= REPRESENTATIVE * selected as f64
    }
}

/// One side's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Side {
    pub requests: u64,
    pub status: StatusClasses,
    /// (5xx + transport errors but `shutdown`) / requests; 0 without requests.
    pub error_rate: f64,
    pub ttfb_us: Quantiles,
    pub total_us: Quantiles,
    pub histograms: Histograms,
    /// Shadow only: transport errors by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::errors_schema")]
    pub errors: Option<BTreeMap<String, u64>>,
    /// Shadow only: answers whose body was cut at the drain cap (status and ttfb kept,
    /// total left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<u64>,
    /// The whole run's shadow only: the kernel's round-trip time to the shadow as each
    /// connection opened (`TCP_INFO`), to read a shadow across a network against production
    /// timed at the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<RoundTrip>,
}

/// Round-trip times, µs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoundTrip {
    pub min: u64,
    pub mean: f64,
    pub max: u64,
    /// Connections measured.
    pub connections: u64,
}

/// Responses by status class.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusClasses {
    #[serde(rename = "1xx")]
    pub c1xx: u64,
    #[serde(rename = "2xx")]
    pub c2xx: u64,
    #[serde(rename = "3xx")]
    pub c3xx: u64,
    #[serde(rename = "4xx")]
    pub c4xx: u64,
    #[serde(rename = "5xx")]
    pub c5xx: u64,
}

impl StatusClasses {
    /// As `replay::stats::Side::status`: index 1 = 1xx ... 5 = 5xx (0, below 100, is not
    /// reported).
    pub fn from_array(a: [u64; 6]) -> StatusClasses {
        StatusClasses {
            c1xx: a[1],
            c2xx: a[2],
            c3xx: a[3],
            c4xx: a[4],
            c5xx: a[5],
        }
    }

    pub fn to_array(&self) -> [u64; 6] {
        [0, self.c1xx, self.c2xx, self.c3xx, self.c4xx, self.c5xx]
    }
}

/// Percentiles of a latency, µs; null without samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quantiles {
    #[schemars(required, schema_with = "schema::nullable::<u64>")]
    pub p50: Option<u64>,
    #[schemars(required, schema_with = "schema::nullable::<u64>")]
    pub p90: Option<u64>,
    #[schemars(required, schema_with = "schema::nullable::<u64>")]
    pub p95: Option<u64>,
    #[schemars(required, schema_with = "schema::nullable::<u64>")]
    pub p99: Option<u64>,
    #[schemars(required, schema_with = "schema::nullable::<u64>")]
    pub p999: Option<u64>,
    #[schemars(required, schema_with = "schema::nullable::<u64>")]
    pub max: Option<u64>,
}

/// Both latency histograms of a side.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Histograms {
    pub ttfb: SavedHistogram,
    pub total: SavedHistogram,
}

/// A latency histogram as saved: HdrHistogram V2 + DEFLATE, base64. Kept encoded until it
/// is needed, then decoded within the bounds of [`crate::report::saved`]: a saved report can
/// hold four thousand of them, and decoded together they would take gigabytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SavedHistogram(String);

impl SavedHistogram {
    pub fn encode(h: &Histogram<u64>) -> SavedHistogram {
        SavedHistogram(crate::report::saved::encode(h))
    }

    pub fn decode(&self) -> anyhow::Result<Histogram<u64>> {
        crate::report::saved::histogram(&self.0)
    }
}

impl JsonSchema for SavedHistogram {
    fn schema_name() -> Cow<'static, str> {
        "histogram".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "HdrHistogram V2 + DEFLATE, base64 (HISTFAAA...)"
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mismatch {
    /// Replayed requests whose production and shadow statuses differ.
    pub status: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MismatchKind {
    /// The route, or `other` for a route past the cap.
    pub route: String,
    pub production: u16,
    pub shadow: u16,
    #[schemars(range(min = 1))]
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Method and normalised path, or `other`.
    pub route: String,
    pub production: Side,
    pub shadow: Side,
    pub mismatch: Mismatch,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// How late requests left against their intended time, µs; null when nothing was sent.
    #[schemars(required, schema_with = "schema::nullable::<Quantiles>")]
    pub lateness_us: Option<Quantiles>,
    #[schemars(required, schema_with = "schema::nullable::<SavedHistogram>")]
    pub histogram: Option<SavedHistogram>,
}

/// One `--fail-if` condition's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub condition: String,
    /// The left side's value; null when it has none.
    #[schemars(required, schema_with = "schema::nullable::<f64>")]
    pub left: Option<f64>,
    #[schemars(required, schema_with = "schema::nullable::<f64>")]
    pub right: Option<f64>,
    pub crossed: bool,
    /// Why the condition could not be evaluated (no samples, a NaN operand, fewer requests
    /// than it needs); the run then exits 4. Absent when it was evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_evaluated: Option<String>,
}

/// Latency over time: at most 120 buckets of `bucket_s` seconds of capture time (1 s times
/// a power of two, wider as a run grows), each starting at a multiple of its width.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    pub bucket_s: u64,
    #[serde(deserialize_with = "read::time_buckets")]
    pub buckets: Vec<TimeBucket>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeBucket {
    /// Epoch seconds, on the capture's clock.
    pub start: u64,
    pub production: TimeSide,
    pub shadow: TimeSide,
}

/// One side's ttfb in a bucket: the answered requests, their p50 and p99 (µs; null without
/// any) and the histogram they come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeSide {
    pub requests: u64,
    #[schemars(required, schema_with = "schema::nullable::<u64>")]
    pub p50: Option<u64>,
    #[schemars(required, schema_with = "schema::nullable::<u64>")]
    pub p99: Option<u64>,
    pub histogram: SavedHistogram,
}

/// What a comparison found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// Worse, significantly and by more than the practical threshold.
    Regression,
    /// Better, likewise.
    Improvement,
    /// No change both significant and larger than the threshold.
    NoSignificantChange,
    /// Too few requests on a side for the interval to exist.
    NotEnoughData,
}

impl VerdictKind {
    /// A regression or an improvement: a change worth a line of its own.
    pub fn is_change(self) -> bool {
        matches!(self, VerdictKind::Regression | VerdictKind::Improvement)
    }

    pub fn name(self) -> &'static str {
        match self {
            VerdictKind::Regression => "regression",
            VerdictKind::Improvement => "improvement",
            VerdictKind::NoSignificantChange => "no significant change",
            VerdictKind::NotEnoughData => "not enough data",
        }
    }
}

/// One metric compared, shadow against production.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// The route; null for the whole run.
    #[schemars(required, schema_with = "schema::nullable::<String>")]
    pub route: Option<String>,
    /// `ttfb_p50`, `ttfb_p90`, `ttfb_p99`, `ttfb_p999`, the same for `total`, `error_rate`,
    /// `4xx_rate`, `5xx_rate`.
    pub metric: String,
    /// Each side's value (µs, or a fraction); null without data.
    #[schemars(required, schema_with = "schema::nullable::<f64>")]
    pub production: Option<f64>,
    #[schemars(required, schema_with = "schema::nullable::<f64>")]
    pub shadow: Option<f64>,
    /// Shadow less production; null without enough data.
    #[schemars(required, schema_with = "schema::nullable::<f64>")]
    pub change: Option<f64>,
    /// A 95% interval for the change; null without enough data.
    #[schemars(required, schema_with = "schema::nullable::<[f64; 2]>")]
    pub interval: Option<[f64; 2]>,
    /// The test's p-value, before the false-discovery-rate procedure.
    #[schemars(required, schema_with = "schema::nullable::<f64>")]
    pub p_value: Option<f64>,
    pub verdict: VerdictKind,
}

/// The live capture behind a `mirror` report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    pub interface: String,
    #[schemars(range(min = 0))]
    pub seconds: f64,
    pub packets: u64,
    /// Dropped by the kernel: the capture buffer was full.
    pub kernel_drops: u64,
    pub interface_drops: u64,
    /// Requests carrying `X-Shadowtap-Replay`, never mirrored.
    pub own_traffic: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outputs {
    /// The `--log` file: JSON lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogOutput>,
    /// `mirror --save-pcap`: pcap records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_pcap: Option<PcapOutput>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogOutput {
    pub path: String,
    pub lines_written: u64,
    pub lines_failed: u64,
    #[schemars(required, schema_with = "schema::nullable::<String>")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PcapOutput {
    pub path: String,
    pub packets_written: u64,
    pub packets_failed: u64,
    #[schemars(required, schema_with = "schema::nullable::<String>")]
    pub error: Option<String>,
}

impl From<&crate::output::Summary> for LogOutput {
    fn from(s: &crate::output::Summary) -> LogOutput {
        LogOutput {
            path: s.path.display().to_string(),
            lines_written: s.written,
            lines_failed: s.failed,
            error: s.error.clone(),
        }
    }
}

impl From<&crate::output::Summary> for PcapOutput {
    fn from(s: &crate::output::Summary) -> PcapOutput {
        PcapOutput {
            path: s.path.display().to_string(),
            packets_written: s.written,
            packets_failed: s.failed,
            error: s.error.clone(),
        }
    }
}

/// Most runs a saved report may list.
pub const MAX_RUNS: usize = 10_000;

/// Most comparisons a saved report may list: eleven metrics for the whole run and each
/// route.
pub const MAX_COMPARISONS: usize = 11 * (crate::report::saved::MAX_ROUTES + 1);

mod read;
mod schema;

pub use schema::schema;
