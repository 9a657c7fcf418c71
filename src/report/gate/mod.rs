//! `--fail-if`: thresholds on the report that turn a replay into a CI gate (DESIGN.md), such
//! as `shadow.error_rate>0.01` or `shadow.ttfb_p99>1.2*production.ttfb_p99`.
//!
//! A condition is `TERM OP TERM` (OP `>`, `>=`, `<`, `<=`). A term is a number, a metric, or
//! `FACTOR*METRIC`. Metrics (README "--fail-if"):
//!
//! - `SIDE.requests`, `SIDE.error_rate`, `SIDE.4xx_rate`, `SIDE.5xx_rate`, `SIDE.ttfb_pNN`
//!   and `SIDE.total_pNN` (NN `50`, `90`, `95`, `99`, `999`, or `max`), SIDE `production` or
//!   `shadow`;
//! - `shadow.errors` (transport errors but `shutdown`) and `shadow.transport_error_rate`
//!   (the same / requests);
//! - `mismatch.status` and `mismatch.rate` (/ production requests);
//! - `counts.replayed_share` (replayed / seen) and `counts.dropped_share` (dropped /
//!   (replayed + dropped));
//! - `verdicts.regressions` and `verdicts.improvements`: the comparisons with that verdict
//!   (report::verdict), the whole run's and every route's;
//! - `regression.METRIC` (METRIC `ttfb_p50` .. `total_p999`, `error_rate`, `4xx_rate`,
//!   `5xx_rate`): how much worse the whole run's METRIC is when its verdict is a
//!   regression (a latency relative to production's, a rate in points), else 0:
//!   `regression.ttfb_p99>10%` crosses when ttfb p99 is significantly worse by more than 10%.
//!
//! Latencies are in microseconds and rates are fractions; a number may carry a unit that
//! fits the metric it is compared with: `300us`, `2ms`, `1.5s` for latencies, `1%` for
//! rates and shares (`shadow.ttfb_p99>2%` is refused).
//!
//! A gate never passes on missing data: a condition whose operand has no value (no samples,
//! a NaN) or too little behind it (a `pNN` needs 100 / (100 - NN) requests on its side, so
//! `p99` 100, `p999` 1,000; `max`, rates and shares one of what they divide by) is not
//! evaluated, and the run exits 4 (DESIGN.md "Exit codes"). Counts (`requests`, `errors`,
//! `mismatch.status`) need no minimum.

use anyhow::{anyhow, bail};

use crate::replay::client::Failure;
use crate::report::model::{self, Quantiles, Report, VerdictKind};

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
    /// `mismatch.rate`: status mismatches / production requests.
    MismatchRate,
    Requests(SideName),
    ErrorRate(SideName),
    /// `shadow.transport_error_rate`: transport errors the shadow is to blame for / requests.
    TransportErrorRate,
    /// `SIDE.4xx_rate`, `SIDE.5xx_rate`: that status class / requests.
    ClassRate(SideName, u8),
    /// `shadow.errors`: the kinds the shadow is to blame for.
    ShadowErrors,
    /// `counts.replayed_share`: replayed / seen.
    ReplayedShare,
    /// `counts.dropped_share`: dropped / (replayed + dropped), the selected requests not sent.
    DroppedShare,
    /// `verdicts.regressions`, `verdicts.improvements`: comparisons with that verdict, the
    /// whole run's and every route's.
    Verdicts(VerdictKind),
    /// `regression.METRIC` (METRIC one of [`COMPARED`], by index): how much worse the whole
    /// run's METRIC is when its verdict is a regression, else 0; a latency relative to
    /// production's (0.1 is 10% slower), a rate in points (0.01 is one point more).
    Regression(usize),
    Latency(SideName, Latency, Quantile),
}

/// The metrics compared with a verdict (`report::verdict`), as `regression.METRIC` names them.
const COMPARED: [&str; 11] = [
    "ttfb_p50",
    "ttfb_p90",
    "ttfb_p99",
    "ttfb_p999",
    "total_p50",
    "total_p90",
    "total_p99",
    "total_p999",
    "error_rate",
    "4xx_rate",
    "5xx_rate",
];

/// The whole run's comparison of `metric`.
fn comparison<'a>(report: &'a Report, metric: &str) -> Option<&'a model::Comparison> {
    report
        .verdicts
        .iter()
        .find(|c| c.route.is_none() && c.metric == metric)
}

/// What a metric's numbers are, so that a unit given with a number fits its metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Count,
    /// A fraction, 0..1 (a number may be written `1%`).
    Rate,
    /// Microseconds (a number may be written `2ms`, `1.5s`, `300us`).
    Latency,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Count => "count",
            Kind::Rate => "rate",
            Kind::Latency => "latency",
        }
    }
}

impl Metric {
    /// The requests that must number at least `min` for the value to mean something, and
    /// what they are called.
    fn population(self, report: &Report) -> Option<(u64, &'static str)> {
        let side = |s: SideName| match s {
            SideName::Production => report.production.requests,
            SideName::Shadow => report.shadow.requests,
        };
        let c = &report.counts;
        match self {
            Metric::MismatchStatus => None,
            // A regression gate needs its comparison to have had enough data.
            Metric::Regression(i) => Some((
                u64::from(
                    comparison(report, COMPARED[i])
                        .is_some_and(|c| c.verdict != VerdictKind::NotEnoughData),
                ),
                "comparisons with enough data",
            )),
            // A gate on verdicts needs one comparison with enough data to mean anything.
            Metric::Verdicts(_) => Some((
                report
                    .verdicts
                    .iter()
                    .filter(|c| c.verdict != VerdictKind::NotEnoughData)
                    .count() as u64,
                "comparisons with enough data",
            )),
            Metric::MismatchRate => Some((report.production.requests, "production requests")),
            Metric::ShadowErrors | Metric::TransportErrorRate => {
                Some((side(SideName::Shadow), "requests"))
            }
            Metric::Requests(s)
            | Metric::ErrorRate(s)
            | Metric::ClassRate(s, _)
            | Metric::Latency(s, _, _) => Some((side(s), "requests")),
            Metric::ReplayedShare => Some((c.seen, "requests seen")),
            Metric::DroppedShare => Some((
                c.replayed + c.dropped.values().sum::<u64>(),
                "requests selected",
            )),
        }
    }

    /// How many of its population it needs (counts need none).
    fn min(self) -> u64 {
        match self {
            Metric::MismatchStatus | Metric::Requests(_) | Metric::ShadowErrors => 0,
            Metric::Latency(_, _, q) => q.minimum(),
            _ => 1,
        }
    }

    fn kind(self) -> Kind {
        match self {
            Metric::MismatchStatus
            | Metric::Requests(_)
            | Metric::ShadowErrors
            | Metric::Verdicts(_) => Kind::Count,
            Metric::Latency(..) => Kind::Latency,
            _ => Kind::Rate,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Term {
    /// A number, and the kind of metric its unit fits (None: no unit).
    Number(f64, Option<Kind>),
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

/// A number with an optional unit: `0.01`, `1%`, `300us`, `2ms`, `1.5s` (latencies in µs).
fn number(text: &str) -> Option<(f64, Option<Kind>)> {
    if let Ok(n) = text.parse::<f64>() {
        return Some((n, None));
    }
    let units: [(&str, f64, Kind); 5] = [
        ("%", 0.01, Kind::Rate),
        ("us", 1.0, Kind::Latency),
        ("µs", 1.0, Kind::Latency),
        ("ms", 1e3, Kind::Latency),
        ("s", 1e6, Kind::Latency),
    ];
    units.iter().find_map(|(unit, scale, kind)| {
        let n = text.strip_suffix(unit)?.trim().parse::<f64>().ok()?;
        Some((n * scale, Some(*kind)))
    })
}

fn term(text: &str) -> anyhow::Result<Term> {
    let text = text.trim();
    if let Some((n, unit)) = number(text) {
        return Ok(Term::Number(n, unit));
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
        ("mismatch", _, "rate") => (Metric::MismatchRate, "mismatch.rate".to_string()),
        ("regression", _, name) if COMPARED.contains(&name) => (
            Metric::Regression(COMPARED.iter().position(|m| *m == name).unwrap_or(0)),
            metric.to_string(),
        ),
        ("verdicts", _, "regressions") => (
            Metric::Verdicts(VerdictKind::Regression),
            metric.to_string(),
        ),
        ("verdicts", _, "improvements") => (
            Metric::Verdicts(VerdictKind::Improvement),
            metric.to_string(),
        ),
        ("counts", _, "replayed_share") => (Metric::ReplayedShare, metric.to_string()),
        ("counts", _, "dropped_share") => (Metric::DroppedShare, metric.to_string()),
        (_, Some(s), "requests") => (Metric::Requests(s), format!("{side}.requests")),
        (_, Some(s), "error_rate") => (Metric::ErrorRate(s), format!("{side}.error_rate")),
        (_, Some(s), "4xx_rate") => (Metric::ClassRate(s, 4), format!("{side}.4xx_rate")),
        (_, Some(s), "5xx_rate") => (Metric::ClassRate(s, 5), format!("{side}.5xx_rate")),
        ("shadow", _, "transport_error_rate") => (Metric::TransportErrorRate, metric.to_string()),
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

/// Refuses a unit that does not fit the metric on the other side (`shadow.ttfb_p99>2%`).
fn fits(left: &Term, right: &Term) -> anyhow::Result<()> {
    let kind = |t: &Term| match t {
        Term::Number(_, unit) => *unit,
        Term::Metric { metric, .. } => Some(metric.kind()),
    };
    match (left, right, kind(left), kind(right)) {
        (Term::Number(_, Some(_)), Term::Number(_, Some(_)), _, _) => Ok(()),
        (_, _, Some(a), Some(b)) if a != b && (a != Kind::Count && b != Kind::Count) => {
            bail!(
                "a {} compared with a {}: the unit does not fit the metric",
                a.name(),
                b.name()
            )
        }
        (Term::Number(_, Some(_)), _, _, Some(Kind::Count))
        | (_, Term::Number(_, Some(_)), Some(Kind::Count), _) => {
            bail!("a count takes a plain number")
        }
        _ => Ok(()),
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
            fits(&left, &right).map_err(|e| anyhow!("--fail-if {c:?}: {e}"))?;
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
    if let Some((n, what)) = metric.population(report) {
        let min = metric.min();
        if n < min {
            return Err(format!("{name}: {n} {what}, fewer than the {min} it needs"));
        }
    }
    let rate = |n: u64, of: u64| n as f64 / of as f64;
    let blamed = report
        .shadow
        .errors
        .iter()
        .flatten()
        .filter(|(kind, _)| !Failure::from_name(kind).is_some_and(Failure::is_ours))
        .map(|(_, n)| *n)
        .sum::<u64>();
    let c = &report.counts;
    Ok(match metric {
        Metric::MismatchStatus => report.mismatch.status as f64,
        Metric::MismatchRate => rate(report.mismatch.status, report.production.requests),
        Metric::TransportErrorRate => rate(blamed, report.shadow.requests),
        Metric::ClassRate(s, class) => {
            let side = side(s);
            rate(side.status.to_array()[usize::from(class)], side.requests)
        }
        Metric::ReplayedShare => rate(c.replayed, c.seen),
        Metric::DroppedShare => {
            let dropped: u64 = c.dropped.values().sum();
            rate(dropped, c.replayed + dropped)
        }
        Metric::Requests(s) => side(s).requests as f64,
        Metric::ErrorRate(s) => side(s).error_rate,
        Metric::ShadowErrors => blamed as f64,
        Metric::Regression(i) => match comparison(report, COMPARED[i]) {
            Some(c) if c.verdict == VerdictKind::Regression => {
                let change = c.change.unwrap_or(0.0);
                if COMPARED[i].ends_with("rate") {
                    change
                } else {
                    change / c.production.unwrap_or(1.0).abs().max(1.0)
                }
            }
            _ => 0.0,
        },
        Metric::Verdicts(kind) => {
            report.verdicts.iter().filter(|c| c.verdict == kind).count() as f64
        }
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
        Term::Number(n, _) => *n,
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
mod tests;
