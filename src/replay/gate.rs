//! `--fail-if`: thresholds on the report that turn a replay into a CI gate (DESIGN.md), such
//! as `shadow.error_rate>0.01` or `shadow.ttfb_p99>1.2*production.ttfb_p99`.
//!
//! A term is `SIDE.METRIC` (SIDE `production` or `shadow`; METRIC `requests`, `error_rate`,
//! `ttfb_p50` .. `ttfb_p999`, `ttfb_max`, the same for `total`, or `errors`), or
//! `mismatch.status`, or a number; the right side may be `FACTOR*TERM`. Latencies are in
//! microseconds.

use anyhow::{anyhow, bail};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Debug, PartialEq)]
enum Term {
    Number(f64),
    Metric { path: Vec<String>, factor: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    text: String,
    left: Term,
    op: Op,
    right: Term,
}

/// The outcome of one condition on a report.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub condition: String,
    pub left: f64,
    pub right: f64,
    pub crossed: bool,
}

fn term(text: &str) -> anyhow::Result<Term> {
    let text = text.trim();
    if let Ok(n) = text.parse::<f64>() {
        return Ok(Term::Number(n));
    }
    let (factor, metric) = match text.split_once('*') {
        Some((f, m)) => (
            f.trim()
                .parse::<f64>()
                .map_err(|_| anyhow!("{text:?}: the factor must be a number"))?,
            m.trim(),
        ),
        None => (1.0, text),
    };
    let (side, name) = metric
        .split_once('.')
        .ok_or_else(|| anyhow!("{metric:?}: use SIDE.METRIC"))?;
    let path: Vec<String> = match (side, name) {
        ("mismatch", "status") => vec!["mismatch".into(), "status".into()],
        ("production" | "shadow", "requests" | "error_rate") => vec![side.into(), name.into()],
        ("shadow", "errors") => vec![side.into(), "errors".into()],
        ("production" | "shadow", n) => {
            let (kind, q) = n
                .split_once('_')
                .ok_or_else(|| anyhow!("unknown metric {metric:?}"))?;
            if !matches!(kind, "ttfb" | "total")
                || !matches!(q, "p50" | "p90" | "p95" | "p99" | "p999" | "max")
            {
                bail!("unknown metric {metric:?}");
            }
            vec![side.into(), format!("{kind}_us"), q.into()]
        }
        _ => bail!("unknown metric {metric:?}"),
    };
    Ok(Term::Metric { path, factor })
}

/// Parses the comma-separated conditions of `--fail-if`.
pub fn parse(text: &str) -> anyhow::Result<Vec<Condition>> {
    text.split(',')
        .filter(|c| !c.trim().is_empty())
        .map(|c| {
            let c = c.trim();
            let (at, op, width) = [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)]
                .iter()
                .find_map(|(s, op)| c.find(s).map(|i| (i, *op, s.len())))
                .ok_or_else(|| anyhow!("--fail-if {c:?}: no comparison (>, >=, <, <=)"))?;
            let left = term(&c[..at]).map_err(|e| anyhow!("--fail-if {c:?}: {e}"))?;
            let right = term(&c[at + width..]).map_err(|e| anyhow!("--fail-if {c:?}: {e}"))?;
            Ok(Condition {
                text: c.to_string(),
                left,
                op,
                right,
            })
        })
        .collect()
}

fn value(report: &Value, t: &Term) -> Option<f64> {
    match t {
        Term::Number(n) => Some(*n),
        Term::Metric { path, factor } => {
            let mut v = report;
            for p in path {
                v = v.get(p)?;
            }
            let n = if let Some(obj) = v.as_object() {
                obj.values().filter_map(Value::as_f64).sum()
            } else {
                v.as_f64()?
            };
            Some(n * factor)
        }
    }
}

/// Evaluates every condition; a metric with no value (no data) never crosses.
pub fn evaluate(conditions: &[Condition], report: &Value) -> Vec<Verdict> {
    conditions
        .iter()
        .map(|c| {
            let (l, r) = (value(report, &c.left), value(report, &c.right));
            let crossed = match (l, r) {
                (Some(l), Some(r)) => match c.op {
                    Op::Gt => l > r,
                    Op::Ge => l >= r,
                    Op::Lt => l < r,
                    Op::Le => l <= r,
                },
                _ => false,
            };
            Verdict {
                condition: c.text.clone(),
                left: l.unwrap_or(f64::NAN),
                right: r.unwrap_or(f64::NAN),
                crossed,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> Value {
        json!({"production": {"error_rate": 0.0, "ttfb_us": {"p99": 1000}},
               "shadow": {"error_rate": 0.05, "ttfb_us": {"p99": 1300}, "errors": {"timeout": 2, "reset": 1}},
               "mismatch": {"status": 4}})
    }

    #[test]
    fn conditions_cross_or_not() {
        let c = parse("shadow.error_rate>0.01, shadow.ttfb_p99>1.2*production.ttfb_p99,mismatch.status>=5,shadow.errors<3").unwrap();
        let v = evaluate(&c, &report());
        let crossed: Vec<bool> = v.iter().map(|v| v.crossed).collect();
        assert_eq!(crossed, [true, true, false, false]);
        assert_eq!(v[1].right, 1200.0);
    }

    #[test]
    fn bad_conditions_are_errors() {
        for bad in [
            "shadow.error_rate",
            "shadow.latency>1",
            "x.y>1",
            "shadow.ttfb_p42>1",
            "a*shadow.requests>1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_data_never_crosses() {
        let c = parse("shadow.total_p99>0").unwrap();
        assert!(!evaluate(&c, &report())[0].crossed);
    }
}
