//! The replay report: text for people, JSON (DESIGN.md "JSON report") for scripts.

use std::fmt::Write as _;

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use anyhow::{anyhow, bail, Context as _};

use crate::replay::stats::{Route, Side, Stats};
use crate::report::saved;

/// The percentiles reported, with their JSON keys and text labels.
const PERCENTILES: &[(&str, &str, f64)] = &[
    ("p50", "p50", 50.0),
    ("p90", "p90", 90.0),
    ("p95", "p95", 95.0),
    ("p99", "p99", 99.0),
    ("p999", "p99.9", 99.9),
];

fn quantiles(h: &Histogram<u64>) -> Value {
    let mut m = Map::new();
    for (key, _, p) in PERCENTILES {
        m.insert(
            (*key).into(),
            if h.is_empty() {
                Value::Null
            } else {
                json!(h.value_at_percentile(*p))
            },
        );
    }
    m.insert(
        "max".into(),
        if h.is_empty() {
            Value::Null
        } else {
            json!(h.max())
        },
    );
    Value::Object(m)
}

/// `h` serialized (V2 + DEFLATE, base64) through a copy whose range is grown from the
/// smallest to `h`'s largest value: the header records the range, and a merged histogram's
/// range depends on the order its parts were added in, so without the copy the same counts
/// merged in another order would be written differently.
fn serialized(h: &Histogram<u64>) -> String {
    let mut canonical = crate::replay::stats::histogram();
    let _ = canonical.add(h);
    let mut bytes = Vec::new();
    match V2DeflateSerializer::new().serialize(&canonical, &mut bytes) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Err(_) => String::new(),
    }
}

fn side_json(side: &Side, with_errors: bool) -> Value {
    let mut v = json!({
        "requests": side.requests,
        "status": {"1xx": side.status[1], "2xx": side.status[2], "3xx": side.status[3], "4xx": side.status[4], "5xx": side.status[5]},
        "error_rate": side.error_rate(),
        "ttfb_us": quantiles(&side.ttfb),
        "total_us": quantiles(&side.total),
        "histograms": {"ttfb": serialized(&side.ttfb), "total": serialized(&side.total)},
    });
    if with_errors {
        v["errors"] = json!({
            "timeout": side.errors.get("timeout").copied().unwrap_or(0),
            "connect": side.errors.get("connect").copied().unwrap_or(0),
            "reset": side.errors.get("reset").copied().unwrap_or(0),
            "circuit_open": side.errors.get("circuit_open").copied().unwrap_or(0),
            "shutdown": side.errors.get("shutdown").copied().unwrap_or(0),
            "other": side.errors.get("other").copied().unwrap_or(0),
        });
        v["truncated"] = json!(side.truncated);
    }
    v
}

/// The JSON report.
pub fn json(stats: &Stats) -> Value {
    let mut counts = json!({"seen": stats.seen, "replayed": stats.replayed, "filtered": {}, "dropped": {}, "incomplete": {}});
    for ((category, reason), n) in &stats.skipped {
        counts[category.as_str()][reason.as_str()] = json!(n);
    }
    let mut routes: Vec<(&str, _)> = stats.routes.iter().collect();
    routes.sort_by(|a, b| {
        b.1.shadow
            .requests
            .cmp(&a.1.shadow.requests)
            .then(a.0.cmp(b.0))
    });
    json!({
        "version": 1,
        "counts": counts,
        "production": side_json(&stats.production, false),
        "shadow": side_json(&stats.shadow, true),
        "mismatch": {"status": stats.mismatch},
        "mismatches": stats.mismatches.iter().map(|((route, p, sh), n)| json!({
            "route": route, "production": p, "shadow": sh, "count": n,
        })).collect::<Vec<_>>(),
        "routes": routes.iter().map(|(name, r)| json!({
            "route": name,
            "production": side_json(&r.production, false),
            "shadow": side_json(&r.shadow, true),
            "mismatch": {"status": r.mismatch},
        })).collect::<Vec<_>>(),
        "schedule": {
            "lateness_us": stats.lateness.as_ref().map_or(Value::Null, quantiles),
            "histogram": stats.lateness.as_ref().map_or(Value::Null, |h| json!(serialized(h))),
        },
    })
}

fn ms(us: u64) -> String {
    if us < 1000 {
        format!("{us} us")
    } else if us >= 1_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else {
        format!("{:.1} ms", us as f64 / 1e3)
    }
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.2}%", 100.0 * n as f64 / of as f64)
    }
}

fn change(prod: u64, shadow: u64) -> String {
    if prod == 0 {
        return String::new();
    }
    let ratio = shadow as f64 / prod as f64;
    if ratio >= 10.0 {
        // Past +900%, a factor reads better than a percentage.
        format!("{ratio:.0}x")
    } else {
        format!("{:+.0}%", 100.0 * (ratio - 1.0))
    }
}

/// The text report.
pub fn text(stats: &Stats, title: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{title}");
    let by = |cat: &str| -> (u64, String) {
        let items: Vec<_> = stats
            .skipped
            .iter()
            .filter(|((c, _), _)| *c == cat)
            .collect();
        let n = items.iter().map(|(_, n)| **n).sum();
        let detail = items
            .iter()
            .map(|((_, r), n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        (n, detail)
    };
    let (filtered, fd) = by("filtered");
    let (incomplete, id) = by("incomplete");
    let (dropped, dd) = by("dropped");
    let _ = writeln!(
        o,
        "requests   {} seen   {} replayed   {} filtered{}",
        stats.seen,
        stats.replayed,
        filtered,
        if fd.is_empty() {
            String::new()
        } else {
            format!(" ({fd})")
        }
    );
    let _ = writeln!(
        o,
        "           {} incomplete in capture{}   {} dropped{}",
        incomplete,
        if id.is_empty() {
            String::new()
        } else {
            format!(" ({id})")
        },
        dropped,
        if dd.is_empty() {
            String::new()
        } else {
            format!(" ({dd})")
        }
    );
    let (p, s) = (&stats.production, &stats.shadow);
    let _ = writeln!(
        o,
        "\n{:<18} {:>12} {:>12} {:>12}",
        "", "production", "shadow", "change"
    );
    for class in 2..=5 {
        let (a, b) = (p.status[class], s.status[class]);
        let _ = writeln!(
            o,
            "{:<18} {:>12} {:>12}",
            format!("{class}xx"),
            pct(a, p.requests),
            pct(b, s.requests)
        );
    }
    // As `error_rate`: requests cut because the run stopped are listed, not counted.
    let errors = s.blamed_errors();
    let detail = s
        .errors
        .iter()
        .map(|(k, n)| match crate::replay::stats::is_ours(k) {
            true => format!("{k} {n}, not counted"),
            false => format!("{k} {n}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        o,
        "{:<18} {:>12} {:>12}   {}",
        "transport errors",
        "-",
        pct(errors, s.requests),
        if detail.is_empty() {
            String::new()
        } else {
            format!("({detail})")
        }
    );
    if s.truncated > 0 {
        let _ = writeln!(
            o,
            "{:<18} {:>12} {:>12}   (status and ttfb kept, total left out)",
            format!("bodies cut {} MiB", crate::replay::client::MAX_DRAIN >> 20),
            "-",
            s.truncated
        );
    }
    for (name, hp, hs) in [("ttfb", &p.ttfb, &s.ttfb), ("total", &p.total, &s.total)] {
        for (_, label, q) in PERCENTILES.iter().chain([("max", "max", 100.0)].iter()) {
            let (a, b) = (hp.value_at_percentile(*q), hs.value_at_percentile(*q));
            let show =
                |h: &Histogram<u64>, v: u64| if h.is_empty() { "-".to_string() } else { ms(v) };
            let _ = writeln!(
                o,
                "{:<18} {:>12} {:>12} {:>12}",
                format!("{name} {label}"),
                show(hp, a),
                show(hs, b),
                if hp.is_empty() || hs.is_empty() {
                    String::new()
                } else {
                    change(a, b)
                }
            );
        }
    }
    let _ = writeln!(
        o,
        "status mismatches: {} ({})",
        stats.mismatch,
        pct(stats.mismatch, stats.replayed)
    );
    let mut kinds: Vec<_> = stats.mismatches.iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(a.1));
    for ((route, a, b), n) in kinds.iter().take(10) {
        let _ = writeln!(o, "  {route:<40} {a} -> {b}   x {n}");
    }
    let mut routes: Vec<_> = stats.routes.iter().collect();
    routes.sort_by(|a, b| {
        b.1.shadow
            .requests
            .cmp(&a.1.shadow.requests)
            .then(a.0.cmp(b.0))
    });
    let _ = writeln!(
        o,
        "\n{:<40} {:>8} {:>20} {:>20} {:>16}",
        "route", "reqs", "prod p50/p99", "shadow p50/p99", "5xx prod/shadow"
    );
    for (name, r) in routes.iter().take(20) {
        let pair = |h: &Histogram<u64>| {
            if h.is_empty() {
                "-".to_string()
            } else {
                format!(
                    "{}/{}",
                    ms(h.value_at_percentile(50.0)),
                    ms(h.value_at_percentile(99.0))
                )
            }
        };
        let _ = writeln!(
            o,
            "{:<40} {:>8} {:>20} {:>20} {:>16}",
            name,
            r.shadow.requests,
            pair(&r.production.ttfb),
            pair(&r.shadow.ttfb),
            format!(
                "{} / {}",
                pct(r.production.status[5], r.production.requests),
                pct(r.shadow.status[5], r.shadow.requests)
            )
        );
    }
    if let Some(l) = &stats.lateness {
        let _ = writeln!(
            o,
            "\nschedule: p99 lateness {} (max {})",
            ms(l.value_at_percentile(99.0)),
            ms(l.max())
        );
    }
    o
}

fn histogram_from(text: Option<&str>) -> anyhow::Result<Histogram<u64>> {
    let text = text.ok_or_else(|| anyhow!("a histogram is missing"))?;
    saved::histogram(text)
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn side_from(v: &Value) -> anyhow::Result<Side> {
    let mut side = Side {
        requests: count(&v["requests"]),
        ..Side::default()
    };
    for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
        side.status[i + 1] = count(&v["status"][class]);
    }
    if let Some(errors) = v["errors"].as_object() {
        for (k, n) in errors {
            if count(n) > 0 {
                side.errors.insert(k.clone(), count(n));
            }
        }
    }
    side.truncated = count(&v["truncated"]);
    side.ttfb = histogram_from(v["histograms"]["ttfb"].as_str())?;
    side.total = histogram_from(v["histograms"]["total"].as_str())?;
    Ok(side)
}

/// Reads a saved JSON report back (for `shadowtap report`).
pub fn from_json(v: &Value) -> anyhow::Result<Stats> {
    if v["version"].as_u64() != Some(1) {
        bail!("not a shadowtap report (version 1 expected)");
    }
    let mut stats = Stats {
        seen: count(&v["counts"]["seen"]),
        replayed: count(&v["counts"]["replayed"]),
        ..Stats::default()
    };
    for category in ["filtered", "dropped", "incomplete"] {
        if let Some(m) = v["counts"][category].as_object() {
            for (reason, n) in m {
                stats
                    .skipped
                    .insert((category.to_string(), reason.clone()), count(n));
            }
        }
    }
    stats.production = side_from(&v["production"]).context("production")?;
    stats.shadow = side_from(&v["shadow"]).context("shadow")?;
    stats.mismatch = count(&v["mismatch"]["status"]);
    let mismatches = v["mismatches"].as_array().map_or(&[][..], Vec::as_slice);
    if mismatches.len() > saved::MAX_MISMATCHES {
        bail!(
            "{} mismatch kinds, more than the {} a report lists",
            mismatches.len(),
            saved::MAX_MISMATCHES
        );
    }
    for m in mismatches {
        let (Some(route), Some(p), Some(s)) = (
            m["route"].as_str(),
            m["production"].as_u64(),
            m["shadow"].as_u64(),
        ) else {
            continue;
        };
        stats
            .mismatches
            .insert((route.to_string(), p as u16, s as u16), count(&m["count"]));
    }
    let routes = v["routes"].as_array().map_or(&[][..], Vec::as_slice);
    if routes.len() > saved::MAX_ROUTES {
        bail!(
            "{} routes, more than the {} a report holds",
            routes.len(),
            saved::MAX_ROUTES
        );
    }
    for r in routes {
        let name = r["route"]
            .as_str()
            .ok_or_else(|| anyhow!("a route has no name"))?;
        let route = Route {
            production: side_from(&r["production"]).with_context(|| format!("route {name}"))?,
            shadow: side_from(&r["shadow"]).with_context(|| format!("route {name}"))?,
            mismatch: count(&r["mismatch"]["status"]),
        };
        stats.add_route(name, &route);
    }
    if let Some(h) = v["schedule"]["histogram"].as_str() {
        stats.lateness = Some(histogram_from(Some(h))?);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::replay::client::{Answer, Failure};
    use crate::replay::select::Skip;

    #[test]
    fn a_saved_histogram_merges_with_larger_latencies_than_it_holds() {
        // Histograms grow to the largest value recorded, and are saved at that size: one
        // read back must still take a merge of values beyond it.
        let mut small = crate::replay::stats::histogram();
        small.record(100).unwrap();
        let mut saved = histogram_from(Some(&serialized(&small))).unwrap();
        let mut large = crate::replay::stats::histogram();
        large.record(3_000_000_000).unwrap();
        saved.add(&large).unwrap();
        assert_eq!(saved.len(), 2);
        assert!(saved.max() >= 3_000_000_000 && saved.max() < 3_004_000_000);
    }

    /// A run with every part of the report in it, from fixed numbers.
    fn sample() -> Stats {
        let mut s = Stats::default();
        let ok = |status, ms| {
            Ok(Answer {
                status,
                ttfb: Duration::from_millis(ms),
                total: Duration::from_millis(ms + 1),
                body_len: 10,
                body_cut: false,
            })
        };
        for i in 0..100u64 {
            let prod = Some((200, 1000 + 10 * i as i64, Some(1500 + 10 * i as i64)));
            let shadow = if i % 10 == 0 {
                ok(500, 3)
            } else {
                ok(200, 1 + i / 20)
            };
            s.replayed("GET /api/users/{id}", prod, shadow, Duration::from_secs(5));
        }
        s.replayed(
            "GET /api/cart",
            Some((200, 800, Some(900))),
            Err(Failure::Timeout),
            Duration::from_secs(5),
        );
        s.replayed(
            "GET /api/cart",
            None,
            Err(Failure::Reset),
            Duration::from_secs(5),
        );
        s.skip(Skip::Method);
        s.skip(Skip::Gap);
        s.late(Duration::from_micros(300));
        s
    }

    #[test]
    fn text_report_matches_its_golden_file() {
        let text = text(
            &sample(),
            "shadowtap replay  sample.pcap -> http://shadow:8080",
        );
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/report/golden/replay.txt");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        assert_eq!(
            text,
            std::fs::read_to_string(path).unwrap(),
            "run with UPDATE_GOLDEN=1 to accept a change"
        );
    }

    #[test]
    fn requests_cut_at_shutdown_are_listed_but_not_in_the_error_share() {
        let mut s = Stats::default();
        s.replayed(
            "GET /a",
            None,
            Err(Failure::Timeout),
            Duration::from_secs(5),
        );
        for _ in 0..3 {
            s.replayed(
                "GET /a",
                None,
                Err(Failure::Shutdown),
                Duration::from_secs(5),
            );
        }
        let text = text(&s, "t");
        let row = text
            .lines()
            .find(|l| l.starts_with("transport errors"))
            .unwrap_or_else(|| panic!("no transport errors row in\n{text}"));
        assert!(row.contains("25.00%"), "{row}");
        assert!(row.contains("shutdown 3, not counted"), "{row}");
        assert_eq!(json(&s)["shadow"]["error_rate"], 0.25);
        assert_eq!(json(&s)["shadow"]["errors"]["shutdown"], 3);
    }

    #[test]
    fn json_round_trips_through_from_json() {
        let stats = sample();
        let first = json(&stats);
        let back = from_json(&first).unwrap();
        assert_eq!(json(&back), first);
    }

    #[test]
    fn a_merge_is_written_the_same_whatever_the_order_of_its_parts() {
        // Grown by `add`, a histogram's range depends on which part came first.
        let part = |us: &[u64]| {
            let mut h = crate::replay::stats::histogram();
            for &v in us {
                h.record(v).unwrap();
            }
            h
        };
        let (a, b) = (part(&[6031, 40]), part(&[6475, 7]));
        let (mut ab, mut ba) = (
            crate::replay::stats::histogram(),
            crate::replay::stats::histogram(),
        );
        ab.add(&a).unwrap();
        ab.add(&b).unwrap();
        ba.add(&b).unwrap();
        ba.add(&a).unwrap();
        assert_eq!(serialized(&ab), serialized(&ba));
    }

    /// Routes in the property below: past the cap, so some go to `other`.
    const ROUTES: usize = crate::replay::stats::MAX_ROUTES + 150;

    /// One replayed request of the property below: (part, outcome, latency in µs).
    type Event = (usize, u8, u64);

    /// Adds the `i`-th event: route `i % ROUTES`, so every route is seen and some twice.
    fn record(s: &mut Stats, i: usize, (_, outcome, us): Event) {
        let us = us as i64;
        let production = (outcome != 3).then_some((200, us, Some(us + 1)));
        let shadow = match outcome {
            0 | 3 => Ok(200),
            1 => Ok(500),
            _ => Err(Failure::Timeout),
        }
        .map(|status| Answer {
            status,
            ttfb: Duration::from_micros(us as u64 / 2),
            total: Duration::from_micros(us as u64),
            body_len: 0,
            body_cut: false,
        });
        let route = format!("GET /r{}x", i % ROUTES);
        s.replayed(&route, production, shadow, Duration::from_millis(5));
        s.late(Duration::from_micros(us as u64 % 97));
    }

    type SideDigest = (
        u64,
        [u64; 6],
        Vec<(String, u64)>,
        u64,
        Histogram<u64>,
        Histogram<u64>,
    );

    fn side_digest(s: &Side) -> SideDigest {
        let errors = s.errors.iter().map(|(k, n)| (k.clone(), *n)).collect();
        let (ttfb, total) = (s.ttfb.clone(), s.total.clone());
        (s.requests, s.status, errors, s.truncated, ttfb, total)
    }

    type Digest = (
        u64,
        u64,
        Vec<((String, String), u64)>,
        SideDigest,
        SideDigest,
        u64,
        Vec<((String, u16, u16), u64)>,
        Vec<(String, SideDigest, SideDigest, u64)>,
        Option<Histogram<u64>>,
    );

    /// Everything a report holds, compared by counts (histograms too: their `==` compares
    /// counts, not the range they grew to; the writing of ranges is tested above). Cheaper
    /// than comparing `json`, which compresses every histogram.
    fn digest(s: &Stats) -> Digest {
        let routes = s.routes.iter();
        (
            s.seen,
            s.replayed,
            s.skipped.iter().map(|(k, n)| (k.clone(), *n)).collect(),
            side_digest(&s.production),
            side_digest(&s.shadow),
            s.mismatch,
            s.mismatches.iter().map(|(k, n)| (k.clone(), *n)).collect(),
            routes
                .map(|(name, r)| {
                    let (p, sh) = (side_digest(&r.production), side_digest(&r.shadow));
                    (name.to_string(), p, sh, r.mismatch)
                })
                .collect(),
            s.lateness.clone(),
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(8))]

        /// Past the route cap, neither the order requests arrive in, nor how they are split
        /// into parts (shards, nodes), nor the order and grouping of merges changes the report:
        /// each equals the report of all requests in one table.
        #[test]
        fn the_report_past_the_route_cap_is_the_same_in_any_order_and_grouping(
            events in proptest::collection::vec((0usize..3, 0u8..4, 1u64..20_000), ROUTES..ROUTES + 300),
            order in proptest::strategy::Strategy::prop_shuffle(proptest::strategy::Just((0..ROUTES + 300).collect::<Vec<usize>>())),
        ) {
            let mut whole = Stats::default();
            for (i, &e) in events.iter().enumerate() {
                record(&mut whole, i, e);
            }
            let mut shuffled = Stats::default();
            for &i in order.iter().filter(|&&i| i < events.len()) {
                record(&mut shuffled, i, events[i]);
            }
            let mut parts = [Stats::default(), Stats::default(), Stats::default()];
            for &i in order.iter().filter(|&&i| i < events.len()) {
                record(&mut parts[events[i].0], i, events[i]);
            }
            let [a, b, c] = &parts;
            let mut left = Stats::default();
            for p in [a, b, c] {
                left.merge(p);
            }
            let mut cb = Stats::default();
            cb.merge(c);
            cb.merge(b);
            let mut right = Stats::default();
            right.merge(&cb);
            right.merge(a);
            let expected = digest(&whole);
            proptest::prop_assert_eq!(expected.7.len(), ROUTES.min(1000) + 1);
            proptest::prop_assert_eq!(&digest(&shuffled), &expected);
            proptest::prop_assert_eq!(&digest(&left), &expected);
            proptest::prop_assert_eq!(&digest(&right), &expected);
        }
    }
}
