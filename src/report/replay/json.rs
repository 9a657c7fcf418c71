//! The JSON form of the replay report (DESIGN.md "JSON report"), both ways: written for
//! scripts, and read back for `shadowtap report` merges.

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use anyhow::{anyhow, bail, Context as _};

use super::PERCENTILES;
use crate::replay::stats::{Route, Side, Stats};
use crate::report::saved;

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
pub(super) fn serialized(h: &Histogram<u64>) -> String {
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

pub(super) fn histogram_from(text: Option<&str>) -> anyhow::Result<Histogram<u64>> {
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
