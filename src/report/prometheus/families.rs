//! The metric families of a mirror run, in the order they are exposed: their names, help
//! texts, labels and values.
//!
//! A scrape takes a [`Snapshot`] of the run (every read of `Stats` is in
//! [`Snapshot::of`]) and prometheus-client encodes it as a `Collector`. The run's figures are
//! counts already added up by the stats stage, not live metric objects, so the families are
//! written with the encoder's counter, gauge and histogram calls directly.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::buckets::{buckets, Buckets};
use super::Capture;
use crate::replay::client::Failure;
use crate::replay::stats::{Side, Stats};

/// The shadow's transport error kinds (`Failure::name`), all always present so that series
/// never appear or disappear (the JSON report lists the same six). `shutdown` (cut at the
/// drain deadline) is the run's doing, not the shadow's, and is shown all the same.
pub(super) const ERROR_KINDS: [&str; 6] = [
    "timeout",
    "connect",
    "reset",
    "circuit_open",
    "shutdown",
    "other",
];

/// Labels of `Side::status`, index by index. `Side::status` files a status under
/// `status / 100` capped at 5, so index 0 holds codes 0-99 (not valid HTTP, yet parsed from
/// three digits) and codes 600 and above are already counted under `5xx`. The JSON report
/// leaves index 0 out; it is emitted here as `other` so that the classes add up to every
/// response received.
const CLASSES: [&str; 6] = ["other", "1xx", "2xx", "3xx", "4xx", "5xx"];

/// The `side` label values, in the order the series are written.
const SIDES: [&str; 2] = ["production", "shadow"];

/// What one scrape exposes, copied out of the run's statistics.
#[derive(Debug)]
pub(super) struct Snapshot {
    seen: u64,
    replayed: u64,
    /// `((category, reason), requests)`, sorted.
    not_replayed: Vec<((String, String), u64)>,
    /// Per side (`SIDES`), responses per class (`CLASSES`).
    responses: [[u64; 6]; 2],
    /// Per kind (`ERROR_KINDS`).
    errors: [u64; ERROR_KINDS.len()],
    truncated: u64,
    mismatch: u64,
    capture: Capture,
    /// Per side (`SIDES`).
    ttfb: [Buckets; 2],
    total: [Buckets; 2],
}

impl Snapshot {
    pub(super) fn of(stats: &Stats, capture: &Capture) -> Snapshot {
        let sides: [&Side; 2] = [&stats.production, &stats.shadow];
        Snapshot {
            seen: stats.seen,
            replayed: stats.replayed,
            not_replayed: not_replayed(stats),
            responses: sides.map(|s| s.status),
            errors: shadow_errors(stats),
            truncated: stats.shadow.truncated,
            mismatch: stats.mismatch,
            capture: *capture,
            ttfb: sides.map(|s| buckets(&s.ttfb)),
            total: sides.map(|s| buckets(&s.total)),
        }
    }
}

/// The skip counts by `(category, reason)`. With [`shadow_errors`], the only reads of the
/// statistics' string-keyed maps.
fn not_replayed(stats: &Stats) -> Vec<((String, String), u64)> {
    let mut reasons: Vec<_> = stats
        .skipped
        .iter()
        .map(|(why, n)| ((why.category().to_string(), why.name().to_string()), n))
        .collect();
    // By category and reason name, as the series have always been listed.
    reasons.sort();
    reasons
}

/// The shadow's errors of every kind of [`ERROR_KINDS`], 0 for a kind not seen.
fn shadow_errors(stats: &Stats) -> [u64; ERROR_KINDS.len()] {
    ERROR_KINDS.map(|kind| Failure::from_name(kind).map_or(0, |f| stats.shadow.errors.get(f)))
}

type Result = std::result::Result<(), std::fmt::Error>;

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result {
        counter(
            &mut e,
            "shadowtap_requests_seen",
            "Requests parsed from the capture.",
            self.seen,
        )?;
        counter(
            &mut e,
            "shadowtap_requests_replayed",
            "Requests sent (or attempted) to the shadow.",
            self.replayed,
        )?;
        self.encode_not_replayed(&mut e)?;
        self.encode_responses(&mut e)?;
        self.encode_errors(&mut e)?;
        counter(
            &mut e,
            "shadowtap_shadow_truncated",
            "Shadow answers whose body was cut at the drain cap (status and ttfb kept).",
            self.truncated,
        )?;
        counter(
            &mut e,
            "shadowtap_status_mismatches",
            "Replayed requests whose production and shadow statuses differ.",
            self.mismatch,
        )?;
        self.capture.encode(&mut e)?;
        histogram(
            &mut e,
            "shadowtap_ttfb",
            "Time to first byte: last request byte to first response byte.",
            &self.ttfb,
        )?;
        histogram(
            &mut e,
            "shadowtap_total",
            "Exchange time: first request byte to last response byte.",
            &self.total,
        )
    }
}

impl Snapshot {
    fn encode_not_replayed(&self, e: &mut DescriptorEncoder) -> Result {
        let mut family = e.encode_descriptor(
            "shadowtap_requests_not_replayed",
            "Requests not sent to the shadow, by category (filtered, incomplete, dropped) and reason.",
            None,
            MetricType::Counter,
        )?;
        for ((category, reason), n) in &self.not_replayed {
            let labels = [("category", category.as_str()), ("reason", reason.as_str())];
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(n, None)?;
        }
        Ok(())
    }

    fn encode_responses(&self, e: &mut DescriptorEncoder) -> Result {
        let mut family = e.encode_descriptor(
            "shadowtap_responses",
            "Responses by side and status class (production: as captured; other: status below 100).",
            None,
            MetricType::Counter,
        )?;
        for (side, status) in SIDES.iter().zip(&self.responses) {
            for (class, n) in CLASSES.iter().zip(status) {
                let labels = [("side", *side), ("class", *class)];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
        }
        Ok(())
    }

    fn encode_errors(&self, e: &mut DescriptorEncoder) -> Result {
        let mut family = e.encode_descriptor(
            "shadowtap_shadow_errors",
            "Exchanges with the shadow that failed, by transport error kind.",
            None,
            MetricType::Counter,
        )?;
        for (kind, n) in ERROR_KINDS.iter().zip(&self.errors) {
            family
                .encode_family(&[("kind", *kind)])?
                .encode_counter::<NoLabelSet, _, u64>(n, None)?;
        }
        Ok(())
    }
}

impl Capture {
    fn encode(&self, e: &mut DescriptorEncoder) -> Result {
        counter(
            e,
            "shadowtap_capture_packets",
            "Packets captured.",
            self.packets,
        )?;
        counter(
            e,
            "shadowtap_capture_kernel_drops",
            "Packets the kernel dropped because the capture buffer was full.",
            self.kernel_drops,
        )?;
        counter(
            e,
            "shadowtap_capture_interface_drops",
            "Packets the network interface dropped.",
            self.interface_drops,
        )?;
        counter(
            e,
            "shadowtap_own_traffic_ignored",
            "Requests carrying shadowtap's own replay marker, not mirrored again.",
            self.own_traffic,
        )?;
        e.encode_descriptor(
            "shadowtap_http_memuse",
            "Bytes the HTTP stage holds (partial heads, waiting requests, kept bodies) under --http-memcap.",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?
        .encode_gauge(&self.http_memuse)?;
        counter(
            e,
            "shadowtap_http_memcap_hits",
            "Heads and bodies given up because --http-memcap was reached.",
            self.http_memcap_hits,
        )
    }
}

/// A counter family with a single, unlabelled series. `name` is without `_total`, which
/// the encoder adds.
pub(crate) fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result {
    e.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// A histogram family in seconds (`name` is without `_seconds`), one series per side.
fn histogram(e: &mut DescriptorEncoder, name: &str, help: &str, sides: &[Buckets; 2]) -> Result {
    let mut family =
        e.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (side, b) in SIDES.iter().zip(sides) {
        family
            .encode_family(&[("side", *side)])?
            .encode_histogram::<NoLabelSet>(b.sum, b.count, &b.per_bucket, None)?;
    }
    Ok(())
}
