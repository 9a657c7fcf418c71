//! `--fail-if`: thresholds on the report that turn a replay into a CI gate (DESIGN.md), such
//! as `shadow.error_rate>0.01` or `shadow.ttfb_p99>1.2*production.ttfb_p99`.
//!
//! A term is `SIDE.METRIC` (SIDE `production` or `shadow`; METRIC `requests`, `error_rate`,
//! `ttfb_p50` .. `ttfb_p999`, `ttfb_max`, the same for `total`, or `errors`), or
//! `mismatch.status`, or a number; the right side may be `FACTOR*TERM`. Latencies are in
//! microseconds.
//!
//! A gate never passes on missing data: a condition whose operand has no value (no samples,
//! a NaN) or too few requests behind it (a `pNN` needs 100 / (100 - NN) requests on its side,
//! so `p99` 100, `p999` 1,000; `max` and `error_rate` one) is not evaluated, and the run
//! exits 4 (DESIGN.md "Exit codes"). Counts (`requests`, `errors`, `mismatch.status`) need
//! no minimum.

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
    /// A value of the report at `path`, times `factor`; `min` is how many requests its side
    /// must have for the value to mean something.
    Metric {
        path: Vec<String>,
        factor: f64,
        min: u64,
    },
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
    /// Why the condition could not be evaluated (then it is not crossed, and the run exits
    /// 4); None when it was.
    pub not_evaluated: Option<String>,
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
    let (path, min): (Vec<String>, u64) = match (side, name) {
        ("mismatch", "status") => (vec!["mismatch".into(), "status".into()], 0),
        ("production" | "shadow", "requests") => (vec![side.into(), name.into()], 0),
        ("production" | "shadow", "error_rate") => (vec![side.into(), name.into()], 1),
        ("shadow", "errors") => (vec![side.into(), "errors".into()], 0),
        ("production" | "shadow", n) => {
            let (kind, q) = n
                .split_once('_')
                .ok_or_else(|| anyhow!("unknown metric {metric:?}"))?;
            if !matches!(kind, "ttfb" | "total")
                || !matches!(q, "p50" | "p90" | "p95" | "p99" | "p999" | "max")
            {
                bail!("unknown metric {metric:?}");
            }
            (
                vec![side.into(), format!("{kind}_us"), q.into()],
                minimum(q),
            )
        }
        _ => bail!("unknown metric {metric:?}"),
    };
    Ok(Term::Metric { path, factor, min })
}

/// Requests a quantile needs on its side: with fewer than 100 / (100 - NN), a `pNN` is only
/// the largest value seen.
fn minimum(quantile: &str) -> u64 {
    match quantile {
        "p50" => 2,
        "p90" => 10,
        "p95" => 20,
        "p99" => 100,
        "p999" => 1000,
        _ => 1,
    }
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

/// A term's value, or why it has none.
fn value(report: &Value, t: &Term) -> Result<f64, String> {
    let n = match t {
        Term::Number(n) => *n,
        Term::Metric { path, factor, min } => {
            let name = path.join(".");
            let requests = report[path[0].as_str()]["requests"].as_u64().unwrap_or(0);
            if path[0] != "mismatch" && requests < *min {
                return Err(format!(
                    "{name}: {requests} requests, fewer than the {min} it needs"
                ));
            }
            let mut v = report;
            for p in path {
                v = v
                    .get(p)
                    .ok_or_else(|| format!("{name}: not in the report"))?;
            }
            let n = if let Some(obj) = v.as_object() {
                // `shadow.errors`: the kinds the shadow is to blame for.
                obj.iter()
                    .filter(|(kind, _)| !crate::replay::stats::is_ours(kind))
                    .filter_map(|(_, n)| n.as_f64())
                    .sum()
            } else {
                v.as_f64().ok_or_else(|| format!("{name}: no samples"))?
            };
            n * factor
        }
    };
    if n.is_nan() {
        return Err("an operand is not a number".into());
    }
    Ok(n)
}

/// Evaluates every condition. One whose operands do not both have a value is not crossed
/// but marked not evaluated: missing data never passes a gate silently.
pub fn evaluate(conditions: &[Condition], report: &Value) -> Vec<Verdict> {
    conditions
        .iter()
        .map(|c| {
            let (l, r) = (value(report, &c.left), value(report, &c.right));
            let crossed = match (&l, &r) {
                (Ok(l), Ok(r)) => match c.op {
                    Op::Gt => l > r,
                    Op::Ge => l >= r,
                    Op::Lt => l < r,
                    Op::Le => l <= r,
                },
                _ => false,
            };
            let not_evaluated = match (&l, &r) {
                (Err(why), _) | (_, Err(why)) => Some(why.clone()),
                _ => None,
            };
            Verdict {
                condition: c.text.clone(),
                left: l.unwrap_or(f64::NAN),
                right: r.unwrap_or(f64::NAN),
                crossed,
                not_evaluated,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> Value {
        json!({"production": {"requests": 1000, "error_rate": 0.0, "ttfb_us": {"p99": 1000}},
               "shadow": {"requests": 1000, "error_rate": 0.05, "ttfb_us": {"p99": 1300}, "errors": {"timeout": 2, "reset": 1}},
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
    fn requests_cut_at_shutdown_are_not_shadow_errors_for_a_gate() {
        let mut r = report();
        r["shadow"]["errors"] = json!({"timeout": 1, "shutdown": 40});
        let v = evaluate(&parse("shadow.errors>1,shadow.errors>=1").unwrap(), &r);
        assert_eq!(v[0].left, 1.0, "{v:?}");
        assert!(!v[0].crossed && v[1].crossed, "{v:?}");
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
    fn missing_data_is_never_a_pass() {
        // No samples behind the percentile: not crossed, and marked not evaluated.
        let c = parse("shadow.total_p99>0").unwrap();
        let v = &evaluate(&c, &report())[0];
        assert!(!v.crossed);
        assert!(v.not_evaluated.is_some(), "{v:?}");
    }

    #[test]
    fn conditions_without_enough_data_or_with_nan_are_not_evaluated() {
        let report = |requests: u64| {
            json!({"production": {"requests": requests, "error_rate": 0.0, "ttfb_us": {"p99": 1000, "max": 1000}},
                   "shadow": {"requests": requests, "error_rate": 0.5, "ttfb_us": {"p99": 900, "max": 900}, "errors": {}},
                   "mismatch": {"status": 0}})
        };
        let verdicts = |text: &str, requests| evaluate(&parse(text).unwrap(), &report(requests));
        // p99 needs 100 requests on its side; max and error_rate one; counts none.
        let small = verdicts(
            "shadow.ttfb_p99>1,shadow.ttfb_max>1,shadow.error_rate>0.1,shadow.requests<5,mismatch.status>0",
            99,
        );
        let evaluated: Vec<bool> = small.iter().map(|v| v.not_evaluated.is_none()).collect();
        assert_eq!(evaluated, [false, true, true, true, true], "{small:?}");
        assert!(small[0]
            .not_evaluated
            .as_deref()
            .unwrap()
            .contains("99 requests"));
        assert!(small[0].not_evaluated.as_deref().unwrap().contains("100"));
        assert!(verdicts("shadow.ttfb_p99>1", 100)[0].crossed);
        // Nothing replayed: rates have no value either.
        assert!(verdicts("shadow.error_rate>0.1", 0)[0]
            .not_evaluated
            .is_some());
        assert!(verdicts("shadow.requests<1", 0)[0].crossed);
        // A NaN operand is no value.
        let nan = verdicts("shadow.error_rate>NaN", 10);
        assert!(!nan[0].crossed && nan[0].not_evaluated.is_some(), "{nan:?}");
    }
}
