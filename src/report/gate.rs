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

use crate::replay::client::Failure;
use crate::report::model::{self, Quantiles, Report};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SideName {
    Production,
    Shadow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Latency {
    Ttfb,
    Total,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quantile {
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
}

impl Quantile {
    fn parse(text: &str) -> Option<Quantile> {
        Some(match text {
            "p50" => Quantile::P50,
            "p90" => Quantile::P90,
            "p95" => Quantile::P95,
            "p99" => Quantile::P99,
            "p999" => Quantile::P999,
            "max" => Quantile::Max,
            _ => return None,
        })
    }

    /// Requests a quantile needs on its side: with fewer than 100 / (100 - NN), a `pNN` is
    /// only the largest value seen.
    fn minimum(self) -> u64 {
        match self {
            Quantile::P50 => 2,
            Quantile::P90 => 10,
            Quantile::P95 => 20,
            Quantile::P99 => 100,
            Quantile::P999 => 1000,
            Quantile::Max => 1,
        }
    }

    fn of(self, q: &Quantiles) -> Option<u64> {
        match self {
            Quantile::P50 => q.p50,
            Quantile::P90 => q.p90,
            Quantile::P95 => q.p95,
            Quantile::P99 => q.p99,
            Quantile::P999 => q.p999,
            Quantile::Max => q.max,
        }
    }
}

/// What a term reads from the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Metric {
    MismatchStatus,
    Requests(SideName),
    ErrorRate(SideName),
    /// `shadow.errors`: the kinds the shadow is to blame for.
    ShadowErrors,
    Latency(SideName, Latency, Quantile),
}

impl Metric {
    /// The side whose `requests` must reach `min` for the value to mean something.
    fn side(self) -> Option<SideName> {
        match self {
            Metric::MismatchStatus => None,
            Metric::ShadowErrors => Some(SideName::Shadow),
            Metric::Requests(s) | Metric::ErrorRate(s) | Metric::Latency(s, _, _) => Some(s),
        }
    }

    /// Requests its side must have (counts need none).
    fn min(self) -> u64 {
        match self {
            Metric::MismatchStatus | Metric::Requests(_) | Metric::ShadowErrors => 0,
            Metric::ErrorRate(_) => 1,
            Metric::Latency(_, _, q) => q.minimum(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Term {
    Number(f64),
    /// A value of the report, times `factor`; `name` is its place in the JSON report
    /// (`shadow.ttfb_us.p99`), for messages.
    Metric {
        metric: Metric,
        name: String,
        factor: f64,
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

impl Verdict {
    /// As the report holds it: a value that is not a number is null.
    pub fn to_model(&self) -> model::Verdict {
        let number = |v: f64| (!v.is_nan()).then_some(v);
        model::Verdict {
            condition: self.condition.clone(),
            left: number(self.left),
            right: number(self.right),
            crossed: self.crossed,
            not_evaluated: self.not_evaluated.clone(),
        }
    }
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
    let side_name = match side {
        "production" => Some(SideName::Production),
        "shadow" => Some(SideName::Shadow),
        _ => None,
    };
    let (metric, path) = match (side, side_name, name) {
        ("mismatch", _, "status") => (Metric::MismatchStatus, "mismatch.status".to_string()),
        (_, Some(s), "requests") => (Metric::Requests(s), format!("{side}.requests")),
        (_, Some(s), "error_rate") => (Metric::ErrorRate(s), format!("{side}.error_rate")),
        ("shadow", _, "errors") => (Metric::ShadowErrors, "shadow.errors".to_string()),
        (_, Some(s), n) => {
            let (kind, q) = n
                .split_once('_')
                .ok_or_else(|| anyhow!("unknown metric {metric:?}"))?;
            let latency = match kind {
                "ttfb" => Latency::Ttfb,
                "total" => Latency::Total,
                _ => bail!("unknown metric {metric:?}"),
            };
            let quantile =
                Quantile::parse(q).ok_or_else(|| anyhow!("unknown metric {metric:?}"))?;
            (
                Metric::Latency(s, latency, quantile),
                format!("{side}.{kind}_us.{q}"),
            )
        }
        _ => bail!("unknown metric {metric:?}"),
    };
    Ok(Term::Metric {
        metric,
        name: path,
        factor,
    })
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

/// A metric's value in the report, or why it has none.
fn read(report: &Report, metric: Metric, name: &str) -> Result<f64, String> {
    let side = |s: SideName| match s {
        SideName::Production => &report.production,
        SideName::Shadow => &report.shadow,
    };
    if let Some(s) = metric.side() {
        let (requests, min) = (side(s).requests, metric.min());
        if requests < min {
            return Err(format!(
                "{name}: {requests} requests, fewer than the {min} it needs"
            ));
        }
    }
    Ok(match metric {
        Metric::MismatchStatus => report.mismatch.status as f64,
        Metric::Requests(s) => side(s).requests as f64,
        Metric::ErrorRate(s) => side(s).error_rate,
        Metric::ShadowErrors => report
            .shadow
            .errors
            .iter()
            .flatten()
            .filter(|(kind, _)| !Failure::from_name(kind).is_some_and(Failure::is_ours))
            .map(|(_, n)| *n as f64)
            .sum(),
        Metric::Latency(s, latency, q) => {
            let side = side(s);
            let quantiles = match latency {
                Latency::Ttfb => &side.ttfb_us,
                Latency::Total => &side.total_us,
            };
            q.of(quantiles)
                .ok_or_else(|| format!("{name}: no samples"))? as f64
        }
    })
}

/// A term's value, or why it has none.
fn value(report: &Report, t: &Term) -> Result<f64, String> {
    let n = match t {
        Term::Number(n) => *n,
        Term::Metric {
            metric,
            name,
            factor,
        } => read(report, *metric, name)? * factor,
    };
    if n.is_nan() {
        return Err("an operand is not a number".into());
    }
    Ok(n)
}

/// Evaluates every condition. One whose operands do not both have a value is not crossed
/// but marked not evaluated: missing data never passes a gate silently.
pub fn evaluate(conditions: &[Condition], report: &Report) -> Vec<Verdict> {
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
    use std::collections::BTreeMap;

    /// A report with these figures (what a gate reads of it) and nothing else.
    fn with(
        requests: u64,
        (p_rate, s_rate): (f64, f64),
        (p_p99, s_p99): (u64, u64),
        errors: &[(&str, u64)],
        mismatch: u64,
    ) -> Report {
        let mut r = crate::report::replay::report(&crate::replay::stats::Stats::default());
        let quantiles = |v| Quantiles {
            p99: Some(v),
            max: Some(v),
            ..Quantiles::default()
        };
        r.production.requests = requests;
        r.production.error_rate = p_rate;
        r.production.ttfb_us = quantiles(p_p99);
        r.shadow.requests = requests;
        r.shadow.error_rate = s_rate;
        r.shadow.ttfb_us = quantiles(s_p99);
        r.shadow.errors = Some(
            errors
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect::<BTreeMap<_, _>>(),
        );
        r.mismatch.status = mismatch;
        r
    }

    fn report() -> Report {
        with(
            1000,
            (0.0, 0.05),
            (1000, 1300),
            &[("timeout", 2), ("reset", 1)],
            4,
        )
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
        let r = with(
            1000,
            (0.0, 0.05),
            (1000, 1300),
            &[("timeout", 1), ("shutdown", 40)],
            4,
        );
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
        let report = |requests: u64| with(requests, (0.0, 0.5), (1000, 900), &[], 0);
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
