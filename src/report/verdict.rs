//! Verdicts: for each latency percentile and each rate, overall and per route, whether the
//! shadow is worse than production (a regression), better (an improvement), neither by
//! more than chance and a practical threshold (no significant change), or whether there is
//! too little data to say (docs/report.md "Verdicts").
//!
//! - A percentile p is compared with a two-sample quantile test (Mood's median test made
//!   general): the p-quantile v of both sides pooled, then the share of each side at or
//!   below v, compared as two proportions. Distribution-free, and computed from the
//!   histograms. The interval given for the change is conservative: each side's
//!   distribution-free interval for its p-quantile at 97.5% (order statistics, the normal
//!   approximation of their ranks), shadow's less production's. A percentile has a verdict
//!   only when both sides have n x (1 - p) >= 3 (p99 300 requests, p99.9 3,000): below
//!   that, its interval does not exist.
//! - A rate (error rate, 4xx share, 5xx share) is compared as two proportions (pooled
//!   z-test), with Newcombe's interval for the difference (Wilson score intervals of each);
//!   it needs 30 requests on each side.
//! - A change is a regression or an improvement only when it is significant after the
//!   Benjamini-Hochberg procedure over every test of the report (false-discovery rate 5%)
//!   and larger than the practical threshold: for latency the larger of a share of
//!   production's value (`--min-change`, 5%) and an absolute floor
//!   (`--min-change-abs`, 100 µs); for rates `--min-rate-change` percentage points (1).

use hdrhistogram::Histogram;

use crate::replay::stats::{Route, Side, Stats};
use crate::report::model::{self, VerdictKind};

/// Practical thresholds: smaller changes are never called regressions or improvements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Latency: this fraction of production's value...
    pub latency_share: f64,
    /// ...or this many µs, whichever is larger.
    pub latency_us: f64,
    /// Rates: this many percentage points, as a fraction (0.01).
    pub rate: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            latency_share: 0.05,
            latency_us: 100.0,
            rate: 0.01,
        }
    }
}

/// The whole run's verdicts, counted by kind: what the text and HTML reports open with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub regressions: usize,
    pub improvements: usize,
    pub unchanged: usize,
    pub no_data: usize,
}

/// The one-word verdict of a whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Headline {
    Regressed,
    Improved,
    NoSignificantChange,
    NotEnoughData,
}

impl Tally {
    pub fn of(report: &model::Report) -> Tally {
        let mut t = Tally::default();
        for c in report.verdicts.iter().filter(|c| c.route.is_none()) {
            *match c.verdict {
                VerdictKind::Regression => &mut t.regressions,
                VerdictKind::Improvement => &mut t.improvements,
                VerdictKind::NoSignificantChange => &mut t.unchanged,
                VerdictKind::NotEnoughData => &mut t.no_data,
            } += 1;
        }
        t
    }

    /// Any regression makes the run regressed; else any improvement improved; else it is
    /// unchanged when something could be compared at all.
    pub fn headline(&self) -> Headline {
        match (self.regressions, self.improvements, self.unchanged) {
            (0, 0, 0) => Headline::NotEnoughData,
            (0, 0, _) => Headline::NoSignificantChange,
            (0, _, _) => Headline::Improved,
            _ => Headline::Regressed,
        }
    }
}

/// The routes as the route tables list them: the largest significant regression first,
/// then the busiest, then by name.
pub fn worst_first(report: &model::Report) -> Vec<&model::Route> {
    let mut rows: Vec<(&model::Route, f64)> = report
        .routes
        .iter()
        .map(|r| (r, largest_regression(report, &r.route)))
        .collect();
    rows.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(b.0.shadow.requests.cmp(&a.0.shadow.requests))
            .then(a.0.route.cmp(&b.0.route))
    });
    rows.into_iter().map(|(r, _)| r).collect()
}

/// The largest significant regression of a route, relative to production's value (0
/// without one): the order of the route tables.
fn largest_regression(report: &model::Report, route: &str) -> f64 {
    report
        .verdicts
        .iter()
        .filter(|c| c.route.as_deref() == Some(route) && c.verdict == VerdictKind::Regression)
        .filter_map(|c| Some(c.change? / c.production?.abs().max(1e-9)))
        .fold(0.0, f64::max)
}

/// The false-discovery rate the Benjamini-Hochberg procedure keeps to.
const FDR: f64 = 0.05;
/// z for a two-sided 97.5% interval on each side (their difference then covers 95%).
const Z_SIDE: f64 = 2.241_402_727_604_947;
/// z for a two-sided 95% interval.
const Z_95: f64 = 1.959_963_984_540_054;
/// n x (1 - p) a percentile needs on each side for its interval to exist.
const TAIL: f64 = 3.0;
/// Requests a rate needs on each side.
const MIN_RATE_REQUESTS: u64 = 30;

/// The percentiles given verdicts, as the report names them.
const PERCENTILES: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)];

/// One comparison before the procedure decides what is significant.
struct Test {
    out: model::Comparison,
    /// The test's p-value; None when there was not enough data.
    p: Option<f64>,
    /// Whether the change is larger than its practical threshold, and its direction.
    practical: Option<bool>,
}

/// Every verdict of a run: the whole run's first, then each route's (routes whose every
/// test lacks data are left out).
pub fn verdicts(stats: &Stats, t: &Thresholds) -> Vec<model::Comparison> {
    let mut tests = side_tests(None, &stats.production, &stats.shadow, t);
    for (name, r) in stats.routes.iter() {
        let route = route_tests(name, r, t);
        if route.iter().any(|x| x.p.is_some()) {
            tests.extend(route);
        }
    }
    decide(&mut tests);
    tests.into_iter().map(|t| t.out).collect()
}

fn route_tests(name: &str, r: &Route, t: &Thresholds) -> Vec<Test> {
    side_tests(Some(name), &r.production, &r.shadow, t)
}

fn side_tests(route: Option<&str>, p: &Side, s: &Side, t: &Thresholds) -> Vec<Test> {
    let mut out = Vec::new();
    for (latency, hp, hs) in [("ttfb", &p.ttfb, &s.ttfb), ("total", &p.total, &s.total)] {
        let both = pooled(hp, hs);
        for (name, q) in PERCENTILES {
            let metric = format!("{latency}_{name}");
            out.push(quantile(route, &metric, (hp, hs, &both), q, t));
        }
    }
    let blamed = |side: &Side| side.status[5] + side.blamed_errors();
    let rates: [(&str, u64, u64); 3] = [
        ("error_rate", blamed(p), blamed(s)),
        ("4xx_rate", p.status[4], s.status[4]),
        ("5xx_rate", p.status[5], s.status[5]),
    ];
    for (name, a, b) in rates {
        out.push(proportion(route, name, (a, p.requests), (b, s.requests), t));
    }
    out
}

fn blank(route: Option<&str>, metric: &str) -> model::Comparison {
    model::Comparison {
        route: route.map(str::to_string),
        metric: metric.to_string(),
        production: None,
        shadow: None,
        change: None,
        interval: None,
        p_value: None,
        verdict: VerdictKind::NotEnoughData,
    }
}

/// Both sides' latencies in one histogram.
fn pooled(hp: &Histogram<u64>, hs: &Histogram<u64>) -> Histogram<u64> {
    let mut both = hp.clone();
    // Both grow as needed, so adding cannot fail.
    let _ = both.add(hs);
    both
}

/// A percentile's comparison: production's, the shadow's and both sides' latencies.
fn quantile(
    route: Option<&str>,
    metric: &str,
    (hp, hs, both): (&Histogram<u64>, &Histogram<u64>, &Histogram<u64>),
    q: f64,
    t: &Thresholds,
) -> Test {
    let mut out = blank(route, metric);
    let (n1, n2) = (hp.len(), hs.len());
    let enough = |n: u64| n as f64 * (1.0 - q) >= TAIL;
    if n1 > 0 && n2 > 0 {
        out.production = Some(hp.value_at_quantile(q) as f64);
        out.shadow = Some(hs.value_at_quantile(q) as f64);
    }
    if !enough(n1) || !enough(n2) {
        return Test {
            out,
            p: None,
            practical: None,
        };
    }
    let (vp, vs) = (
        hp.value_at_quantile(q) as f64,
        hs.value_at_quantile(q) as f64,
    );
    let change = vs - vp;
    let (lp, up) = order_interval(hp, q);
    let (ls, us) = order_interval(hs, q);
    out.change = Some(change);
    out.interval = Some([ls - up, us - lp]);
    // The pooled p-quantile, and each side's share at or below it.
    let v = both.value_at_quantile(q);
    let (a, b) = (hp.count_between(0, v), hs.count_between(0, v));
    let p = two_proportions((a, n1), (b, n2));
    out.p_value = Some(p);
    let threshold = (t.latency_share * vp).max(t.latency_us);
    Test {
        out,
        p: Some(p),
        practical: (change.abs() > threshold).then_some(change > 0.0),
    }
}

/// A distribution-free interval for the q-quantile: the values at the ranks
/// n q -/+ z sqrt(n q (1 - q)).
fn order_interval(h: &Histogram<u64>, q: f64) -> (f64, f64) {
    let n = h.len() as f64;
    let half = Z_SIDE * (n * q * (1.0 - q)).sqrt();
    let rank = |r: f64| (r / n).clamp(0.0, 1.0);
    (
        h.value_at_quantile(rank(n * q - half)) as f64,
        h.value_at_quantile(rank(n * q + half + 1.0)) as f64,
    )
}

/// A rate's comparison: `(events, requests)` of each side.
fn proportion(
    route: Option<&str>,
    metric: &str,
    (a, n1): (u64, u64),
    (b, n2): (u64, u64),
    t: &Thresholds,
) -> Test {
    let mut out = blank(route, metric);
    if n1 > 0 {
        out.production = Some(a as f64 / n1 as f64);
    }
    if n2 > 0 {
        out.shadow = Some(b as f64 / n2 as f64);
    }
    if n1 < MIN_RATE_REQUESTS || n2 < MIN_RATE_REQUESTS {
        return Test {
            out,
            p: None,
            practical: None,
        };
    }
    let (p1, p2) = (a as f64 / n1 as f64, b as f64 / n2 as f64);
    let change = p2 - p1;
    let (l1, u1) = wilson(a, n1);
    let (l2, u2) = wilson(b, n2);
    out.change = Some(change);
    out.interval = Some([
        change - ((p2 - l2).powi(2) + (u1 - p1).powi(2)).sqrt(),
        change + ((u2 - p2).powi(2) + (p1 - l1).powi(2)).sqrt(),
    ]);
    let p = two_proportions((a, n1), (b, n2));
    out.p_value = Some(p);
    Test {
        out,
        p: Some(p),
        practical: (change.abs() > t.rate).then_some(change > 0.0),
    }
}

/// The Wilson score interval (95%) of `k` in `n`.
fn wilson(k: u64, n: u64) -> (f64, f64) {
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = Z_95 * Z_95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z_95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    (centre - half, centre + half)
}

/// The two-sided p-value of the pooled z-test of two proportions; 1 when both are 0 or 1.
fn two_proportions((a, n1): (u64, u64), (b, n2): (u64, u64)) -> f64 {
    let (n1, n2) = (n1 as f64, n2 as f64);
    let pooled = (a + b) as f64 / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 || !se.is_finite() {
        return 1.0;
    }
    let z = (a as f64 / n1 - b as f64 / n2) / se;
    (2.0 * (1.0 - normal_cdf(z.abs()))).clamp(0.0, 1.0)
}

/// The standard normal distribution function (Abramowitz and Stegun 7.1.26 through erf,
/// absolute error below 1.5e-7).
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// Benjamini-Hochberg over every test with a p-value: the k smallest are significant, k the
/// largest rank with p(k) <= k / m x FDR. A significant change larger than its threshold is a
/// regression or an improvement; every other tested change is no significant change.
fn decide(tests: &mut [Test]) {
    let mut ranked: Vec<(usize, f64)> = tests
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.p.map(|p| (i, p)))
        .collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let m = ranked.len() as f64;
    let cut = ranked
        .iter()
        .enumerate()
        .filter(|(k, (_, p))| *p <= (*k as f64 + 1.0) / m * FDR)
        .map(|(k, _)| k + 1)
        .max()
        .unwrap_or(0);
    for (k, (i, _)) in ranked.iter().enumerate() {
        let t = &mut tests[*i];
        t.out.verdict = match (k < cut, t.practical) {
            (true, Some(true)) => VerdictKind::Regression,
            (true, Some(false)) => VerdictKind::Improvement,
            _ => VerdictKind::NoSignificantChange,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = crate::replay::stats::histogram();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn the_normal_distribution_function_is_right() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959_963_984_540_054) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(-1.0) - 0.158_655_25).abs() < 1e-6);
    }

    #[test]
    fn the_same_distribution_is_no_significant_change() {
        // Two samples of one distribution (interleaved halves of a sequence).
        let all: Vec<u64> = (0..4000).map(|i| 1000 + (i * 7919 % 1000)).collect();
        let a = hist(all.iter().step_by(2).copied());
        let b = hist(all.iter().skip(1).step_by(2).copied());
        let mut tests: Vec<Test> = PERCENTILES
            .iter()
            .map(|(n, q)| {
                quantile(
                    None,
                    n,
                    (&a, &b, &pooled(&a, &b)),
                    *q,
                    &Thresholds::default(),
                )
            })
            .collect();
        decide(&mut tests);
        for t in &tests {
            assert_ne!(t.out.verdict, VerdictKind::Regression, "{:?}", t.out);
            assert_ne!(t.out.verdict, VerdictKind::Improvement, "{:?}", t.out);
        }
        // p999 needs 3,000 on each side; 2,000 is not enough.
        assert_eq!(tests[3].out.verdict, VerdictKind::NotEnoughData);
        assert_eq!(tests[2].out.verdict, VerdictKind::NoSignificantChange);
    }

    #[test]
    fn a_slower_shadow_is_a_regression_and_a_faster_one_an_improvement() {
        let p = hist((0..2000).map(|i| 1000 + i % 500));
        let slow = hist((0..2000).map(|i| 1300 + i % 500));
        let fast = hist((0..2000).map(|i| 600 + i % 500));
        let t = Thresholds::default();
        let mut tests = vec![
            quantile(None, "ttfb_p50", (&p, &slow, &pooled(&p, &slow)), 0.5, &t),
            quantile(None, "ttfb_p50", (&p, &fast, &pooled(&p, &fast)), 0.5, &t),
        ];
        decide(&mut tests);
        assert_eq!(tests[0].out.verdict, VerdictKind::Regression);
        assert_eq!(tests[1].out.verdict, VerdictKind::Improvement);
        let [lo, hi] = tests[0].out.interval.unwrap();
        assert!(lo > 0.0 && lo <= 300.0 && hi >= 300.0, "{lo}..{hi}");
    }

    #[test]
    fn a_significant_change_below_the_threshold_is_no_significant_change() {
        // +50 µs on 1 ms: clear with 20,000 samples, but under the 100 µs floor.
        let p = hist((0..20_000).map(|i| 1000 + i % 100));
        let s = hist((0..20_000).map(|i| 1050 + i % 100));
        let both = pooled(&p, &s);
        let mut tests = vec![quantile(
            None,
            "ttfb_p50",
            (&p, &s, &both),
            0.5,
            &Thresholds::default(),
        )];
        decide(&mut tests);
        assert!(tests[0].p.unwrap() < 1e-6);
        assert_eq!(tests[0].out.verdict, VerdictKind::NoSignificantChange);
    }

    #[test]
    fn rates_compare_as_proportions() {
        let t = Thresholds::default();
        let mut tests = vec![
            proportion(None, "5xx_rate", (10, 1000), (80, 1000), &t),
            proportion(None, "5xx_rate", (10, 1000), (12, 1000), &t),
            proportion(None, "5xx_rate", (1, 20), (15, 20), &t),
        ];
        decide(&mut tests);
        assert_eq!(tests[0].out.verdict, VerdictKind::Regression);
        assert_eq!(tests[1].out.verdict, VerdictKind::NoSignificantChange);
        assert_eq!(tests[2].out.verdict, VerdictKind::NotEnoughData);
        let [lo, hi] = tests[0].out.interval.unwrap();
        assert!(lo > 0.0 && lo < 0.07 && hi > 0.07, "{lo}..{hi}");
    }

    #[test]
    fn many_tests_raise_the_bar() {
        // p = 0.02 alone is significant at 5%; among 20 tests with nothing else, it is not.
        let mut alone = vec![Test {
            out: blank(None, "x"),
            p: Some(0.02),
            practical: Some(true),
        }];
        decide(&mut alone);
        assert_eq!(alone[0].out.verdict, VerdictKind::Regression);
        let mut many: Vec<Test> = (0..20)
            .map(|i| Test {
                out: blank(None, "x"),
                p: Some(if i == 0 { 0.02 } else { 0.9 }),
                practical: Some(true),
            })
            .collect();
        decide(&mut many);
        assert_eq!(many[0].out.verdict, VerdictKind::NoSignificantChange);
    }
}
