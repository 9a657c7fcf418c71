//! Between the statistics of a run and the typed report (`report::model`), both ways: a run's
//! [`Stats`] become a [`Report`] (then written as JSON, text or HTML), and a saved report
//! becomes [`Stats`] again for `shadowtap report` merges.

use anyhow::{anyhow, bail, Context as _};
use hdrhistogram::Histogram;

use crate::replay::client::Failure;
use crate::replay::stats::{self, Reason, Stats};
use crate::report::model::{self, Quantiles, Report, SavedHistogram, StatusClasses};
use crate::report::saved;
use crate::report::verdict::Thresholds;

/// The percentiles of `h`, all null when it is empty.
fn quantiles(h: &Histogram<u64>) -> Quantiles {
    if h.is_empty() {
        return Quantiles::default();
    }
    let at = |p: f64| Some(h.value_at_percentile(p));
    Quantiles {
        p50: at(50.0),
        p90: at(90.0),
        p95: at(95.0),
        p99: at(99.0),
        p999: at(99.9),
        max: Some(h.max()),
    }
}

fn side(side: &stats::Side, shadow: bool) -> model::Side {
    model::Side {
        requests: side.requests,
        status: StatusClasses::from_array(side.status),
        error_rate: side.error_rate(),
        ttfb_us: quantiles(&side.ttfb),
        total_us: quantiles(&side.total),
        histograms: model::Histograms {
            ttfb: SavedHistogram::encode(&side.ttfb),
            total: SavedHistogram::encode(&side.total),
        },
        errors: shadow.then(|| {
            side.errors
                .iter()
                .map(|(kind, n)| (kind.name().to_string(), n))
                .collect()
        }),
        truncated: shadow.then_some(side.truncated),
        rtt_us: None,
    }
}

/// The report of a run, its verdicts with the default thresholds.
pub fn report(stats: &Stats) -> Report {
    report_with(stats, &Thresholds::default())
}

/// The report of a run, its verdicts with thresholds `t`.
pub fn report_with(stats: &Stats, t: &Thresholds) -> Report {
    let mut counts = model::Counts {
        seen: stats.seen,
        replayed: stats.replayed,
        ..model::Counts::default()
    };
    for (why, n) in stats.skipped.iter() {
        let category = match why.category() {
            "filtered" => &mut counts.filtered,
            "dropped" => &mut counts.dropped,
            _ => &mut counts.incomplete,
        };
        category.insert(why.name().to_string(), n);
    }
    // The busiest routes first (ties by name), as the text report lists them.
    let mut routes: Vec<(&str, _)> = stats.routes.iter().collect();
    routes.sort_by(|a, b| {
        b.1.shadow
            .requests
            .cmp(&a.1.shadow.requests)
            .then(a.0.cmp(b.0))
    });
    let representative = counts.representative();
    let mut shadow = side(&stats.shadow, true);
    let rtt = &stats.shadow_rtt;
    shadow.rtt_us = (rtt.count > 0).then(|| model::RoundTrip {
        min: rtt.min,
        mean: rtt.sum as f64 / rtt.count as f64,
        max: rtt.max,
        connections: rtt.count,
    });
    Report {
        version: model::VERSION,
        runs: Vec::new(),
        interrupted: None,
        counts,
        representative,
        production: side(&stats.production, false),
        shadow,
        mismatch: model::Mismatch {
            status: stats.mismatch,
        },
        mismatches: stats
            .mismatches
            .iter()
            .map(|((route, p, s), n)| model::MismatchKind {
                route: route.clone(),
                production: *p,
                shadow: *s,
                count: *n,
            })
            .collect(),
        routes: routes
            .iter()
            .map(|(name, r)| model::Route {
                route: (*name).to_string(),
                production: side(&r.production, false),
                shadow: side(&r.shadow, true),
                mismatch: model::Mismatch { status: r.mismatch },
            })
            .collect(),
        schedule: model::Schedule {
            lateness_us: stats.lateness.as_ref().map(quantiles),
            histogram: stats.lateness.as_ref().map(SavedHistogram::encode),
        },
        verdicts: crate::report::verdict::verdicts(stats, t),
        timeline: timeline(&stats.timeline),
        fail_if: None,
        capture: None,
        outputs: None,
    }
}

/// The timeline as the report writes it.
fn timeline(t: &stats::Timeline) -> Option<model::Timeline> {
    if t.buckets.is_empty() {
        return None;
    }
    let side = |h: &Histogram<u64>| model::TimeSide {
        requests: h.len(),
        p50: (!h.is_empty()).then(|| h.value_at_percentile(50.0)),
        p99: (!h.is_empty()).then(|| h.value_at_percentile(99.0)),
        histogram: SavedHistogram::encode(h),
    };
    Some(model::Timeline {
        bucket_s: t.width / 1_000_000_000,
        buckets: t
            .buckets
            .iter()
            .map(|(i, b)| model::TimeBucket {
                start: i * t.width / 1_000_000_000,
                production: side(&b.production),
                shadow: side(&b.shadow),
            })
            .collect(),
    })
}

/// A saved timeline, checked: its width a power of two seconds, its buckets on multiples of
/// it, within the bound.
fn timeline_from(v: &model::Timeline) -> anyhow::Result<stats::Timeline> {
    if !v.bucket_s.is_power_of_two() || v.bucket_s > 1 << 40 {
        bail!(
            "a timeline bucket of {} s is not a power of two seconds",
            v.bucket_s
        );
    }
    let width = v.bucket_s * 1_000_000_000;
    let mut t = stats::Timeline {
        width,
        ..stats::Timeline::default()
    };
    for b in &v.buckets {
        if b.start % v.bucket_s != 0 {
            bail!(
                "a timeline bucket starts at {} s, not on a multiple of its width",
                b.start
            );
        }
        let bucket = stats::Bucket {
            production: b.production.histogram.decode()?,
            shadow: b.shadow.histogram.decode()?,
        };
        t.buckets.insert(b.start / v.bucket_s, bucket);
    }
    let span = match (t.buckets.keys().next(), t.buckets.keys().last()) {
        (Some(a), Some(b)) => b - a,
        _ => 0,
    };
    if span >= stats::MAX_BUCKETS {
        bail!(
            "a timeline spans {} buckets, more than {}",
            span + 1,
            stats::MAX_BUCKETS
        );
    }
    Ok(t)
}

fn side_from(v: &model::Side) -> anyhow::Result<stats::Side> {
    let mut side = stats::Side {
        requests: v.requests,
        status: v.status.to_array(),
        truncated: v.truncated.unwrap_or(0),
        ttfb: v.histograms.ttfb.decode()?,
        total: v.histograms.total.decode()?,
        ..stats::Side::default()
    };
    for (kind, n) in v.errors.iter().flatten() {
        let kind =
            Failure::from_name(kind).ok_or_else(|| anyhow!("unknown error kind {kind:?}"))?;
        side.errors.add(kind, *n);
    }
    Ok(side)
}

/// A saved report's figures, for merging (what describes one run's files, `outputs`,
/// `capture`, `fail_if` and `interrupted`, is not kept). Refuses what a report cannot hold:
/// unknown reasons or error kinds, more routes or mismatch kinds than a run keeps.
pub fn stats(v: &Report) -> anyhow::Result<Stats> {
    if v.version != model::VERSION {
        bail!(
            "not a shadowtap report (version {} expected)",
            model::VERSION
        );
    }
    let mut stats = Stats {
        seen: v.counts.seen,
        replayed: v.counts.replayed,
        ..Stats::default()
    };
    let c = &v.counts;
    for (category, reasons) in [
        ("filtered", &c.filtered),
        ("dropped", &c.dropped),
        ("incomplete", &c.incomplete),
    ] {
        for (name, n) in reasons {
            let why = Reason::from_name(category, name)
                .ok_or_else(|| anyhow!("unknown {category} reason {name:?}"))?;
            stats.skipped.add(why, *n);
        }
    }
    stats.production = side_from(&v.production).context("production")?;
    stats.shadow = side_from(&v.shadow).context("shadow")?;
    if let Some(r) = &v.shadow.rtt_us {
        stats.shadow_rtt = crate::replay::stats::Rtt {
            min: r.min,
            max: r.max,
            sum: (r.mean.max(0.0) * r.connections as f64).round() as u64,
            count: r.connections,
        };
    }
    stats.mismatch = v.mismatch.status;
    if v.mismatches.len() > saved::MAX_MISMATCHES {
        bail!(
            "{} mismatch kinds, more than the {} a report lists",
            v.mismatches.len(),
            saved::MAX_MISMATCHES
        );
    }
    for m in &v.mismatches {
        stats
            .mismatches
            .insert((m.route.clone(), m.production, m.shadow), m.count);
    }
    if v.routes.len() > saved::MAX_ROUTES {
        bail!(
            "{} routes, more than the {} a report holds",
            v.routes.len(),
            saved::MAX_ROUTES
        );
    }
    for r in &v.routes {
        let name = &r.route;
        let route = stats::Route {
            production: side_from(&r.production).with_context(|| format!("route {name}"))?,
            shadow: side_from(&r.shadow).with_context(|| format!("route {name}"))?,
            mismatch: r.mismatch.status,
        };
        stats.add_route(name, &route);
    }
    if let Some(t) = &v.timeline {
        stats.timeline = timeline_from(t).context("timeline")?;
    }
    stats.lateness = v
        .schedule
        .histogram
        .as_ref()
        .map(SavedHistogram::decode)
        .transpose()
        .context("schedule")?;
    Ok(stats)
}

/// Reads a saved report: JSON into the typed report, refused in one line (naming where)
/// when it is not one.
pub fn parse(bytes: &[u8]) -> anyhow::Result<Report> {
    // The version first, so any other JSON is "not a report" rather than a missing field.
    #[derive(serde::Deserialize)]
    struct Version {
        version: Option<serde_json::Value>,
    }
    let version = match serde_json::from_slice::<Version>(bytes) {
        Ok(v) => v.version,
        Err(e) if e.is_data() => None,
        Err(e) => return Err(e.into()),
    };
    if version.and_then(|v| v.as_u64()) != Some(model::VERSION) {
        bail!(
            "not a shadowtap report (version {} expected)",
            model::VERSION
        );
    }
    Ok(serde_json::from_slice::<Report>(bytes)?)
}

/// The JSON text of a report, as every command writes it (keys in name order).
pub fn to_json(report: &Report) -> anyhow::Result<String> {
    // Through a `Value`, whose objects keep their keys sorted: the same bytes as before
    // the report had types, and as `shadowtap report` writes for any order of merges.
    let value = serde_json::to_value(report)?;
    Ok(serde_json::to_string_pretty(&value)?)
}
