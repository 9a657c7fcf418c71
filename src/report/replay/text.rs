//! The text form of the replay report, for people: counts, latency side by side, routes,
//! mismatches and the schedule's lateness.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::replay::client::Failure;
use crate::report::model::{Comparison, Quantiles, Report, VerdictKind};
use crate::report::verdict::{worst_first, Headline, Tally};

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

/// The number of requests and the `reason n, ...` detail of one accounting category.
fn category(reasons: &BTreeMap<String, u64>) -> (u64, String) {
    let n = reasons.values().sum();
    let detail = reasons
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    (n, detail)
}

/// ` (detail)`, or nothing when there is none.
fn parenthesized(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

/// A latency cell: `-` without samples.
fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), ms)
}

/// A metric's name in the text: `ttfb p99`, `5xx rate`.
fn metric_name(metric: &str) -> String {
    metric.replace("_p999", " p99.9").replace('_', " ")
}

/// A value of `metric`: a latency in µs or a rate.
fn value(metric: &str, v: f64) -> String {
    if metric.ends_with("rate") {
        format!("{:.2}%", 100.0 * v)
    } else {
        ms(v.max(0.0).round() as u64)
    }
}

/// A change of `metric`, signed: `+1.9 ms`, `-0.5 pp`.
fn delta(metric: &str, v: f64) -> String {
    let sign = if v < 0.0 { "-" } else { "+" };
    if metric.ends_with("rate") {
        format!("{sign}{:.2} pp", 100.0 * v.abs())
    } else {
        format!("{sign}{}", ms(v.abs().round() as u64))
    }
}

/// One comparison's line: `REGRESSION  ttfb p99  8.2 ms -> 10.1 ms  +1.9 ms [+1.2 ms, +2.6 ms]`.
fn finding(c: &Comparison) -> String {
    let (Some(p), Some(s), Some(d), Some([lo, hi])) =
        (c.production, c.shadow, c.change, c.interval)
    else {
        return String::new();
    };
    let word = match c.verdict {
        VerdictKind::Regression => "REGRESSION",
        VerdictKind::Improvement => "improvement",
        _ => "no change",
    };
    let m = &c.metric;
    format!(
        "{word:<12} {:<12} {} -> {}   {} [{}, {}]",
        metric_name(m),
        value(m, p),
        value(m, s),
        delta(m, d),
        delta(m, lo),
        delta(m, hi)
    )
}

/// The verdict lines that open the report: the whole run's changes, then the routes'.
fn verdicts(o: &mut String, report: &Report) {
    let changed = |c: &&Comparison| c.verdict.is_change();
    let run: Vec<&Comparison> = report
        .verdicts
        .iter()
        .filter(|c| c.route.is_none())
        .collect();
    let t = Tally::of(report);
    let (reg, imp, same, none) = (t.regressions, t.improvements, t.unchanged, t.no_data);
    let headline = match t.headline() {
        Headline::NotEnoughData => "NOT ENOUGH DATA",
        Headline::NoSignificantChange => "no significant change",
        Headline::Improved => "IMPROVED",
        Headline::Regressed => "REGRESSED",
    };
    let caveat = if report.counts.representative() {
        ""
    } else {
        ", NOT REPRESENTATIVE"
    };
    let _ = writeln!(
        o,
        "verdict: {headline}   ({reg} regressions, {imp} improvements, {same} no significant change, {none} not enough data{caveat})"
    );
    for c in run.iter().filter(|c| changed(c)) {
        let _ = writeln!(o, "  {}", finding(c));
    }
    let mut routes: Vec<&Comparison> = report
        .verdicts
        .iter()
        .filter(|c| c.route.is_some() && changed(c))
        .collect();
    // Regressions first, then the strongest evidence.
    routes.sort_by(|a, b| {
        (a.verdict != VerdictKind::Regression)
            .cmp(&(b.verdict != VerdictKind::Regression))
            .then(
                a.p_value
                    .unwrap_or(1.0)
                    .total_cmp(&b.p_value.unwrap_or(1.0)),
            )
    });
    for c in routes.iter().take(10) {
        let _ = writeln!(
            o,
            "  {:<28} {}",
            c.route.as_deref().unwrap_or(""),
            finding(c)
        );
    }
    if routes.len() > 10 {
        let _ = writeln!(
            o,
            "  ... and {} more route changes (JSON `verdicts`)",
            routes.len() - 10
        );
    }
    let _ = writeln!(o);
}

/// The route table: the routes with the largest significant regression first, then the
/// busiest; each with both sides' ttfb p50/p99, error rate (transport errors included),
/// 4xx and 5xx shares, mismatches, and its most telling verdict.
fn routes(o: &mut String, report: &Report) {
    let _ = writeln!(
        o,
        "\n{:<32} {:>7} {:>19} {:>19} {:>15} {:>15} {:>15} {:>6}  verdict",
        "route",
        "reqs",
        "prod p50/p99",
        "shadow p50/p99",
        "errors p/s",
        "4xx p/s",
        "5xx p/s",
        "mism"
    );
    let rows = worst_first(report);
    for r in rows.iter().take(20) {
        let pair = |q: &Quantiles| match (q.p50, q.p99) {
            (Some(a), Some(b)) => format!("{}/{}", ms(a), ms(b)),
            _ => "-".to_string(),
        };
        let (p, s) = (&r.production, &r.shadow);
        let both = |a: String, b: String| format!("{a}/{b}");
        let rate = |side: &crate::report::model::Side| {
            if side.requests == 0 {
                "-".to_string()
            } else {
                format!("{:.1}%", 100.0 * side.error_rate)
            }
        };
        let share = |n: u64, of: u64| {
            if of == 0 {
                "-".to_string()
            } else {
                format!("{:.1}%", 100.0 * n as f64 / of as f64)
            }
        };
        let _ = writeln!(
            o,
            "{:<32} {:>7} {:>19} {:>19} {:>15} {:>15} {:>15} {:>6}  {}",
            r.route,
            s.requests,
            pair(&p.ttfb_us),
            pair(&s.ttfb_us),
            both(rate(p), rate(s)),
            both(
                share(p.status.c4xx, p.requests),
                share(s.status.c4xx, s.requests)
            ),
            both(
                share(p.status.c5xx, p.requests),
                share(s.status.c5xx, s.requests)
            ),
            r.mismatch.status,
            telling(report, &r.route)
        );
    }
    if report.routes.len() > 20 {
        let _ = writeln!(
            o,
            "... {} more routes (JSON `routes`)",
            report.routes.len() - 20
        );
    }
}

/// A route's most telling verdict: its largest regression, else its largest improvement,
/// else whether anything could be compared.
fn telling(report: &Report, route: &str) -> String {
    let mine: Vec<&Comparison> = report
        .verdicts
        .iter()
        .filter(|c| c.route.as_deref() == Some(route))
        .collect();
    let relative = |c: &&Comparison| match (c.change, c.production) {
        (Some(d), Some(p)) => (d / p.abs().max(1e-9)).abs(),
        _ => 0.0,
    };
    for kind in [VerdictKind::Regression, VerdictKind::Improvement] {
        if let Some(c) = mine
            .iter()
            .filter(|c| c.verdict == kind)
            .max_by(|a, b| relative(a).total_cmp(&relative(b)))
        {
            let word = if kind == VerdictKind::Regression {
                "REGRESSION"
            } else {
                "improvement"
            };
            return format!(
                "{word} {} {}",
                metric_name(&c.metric),
                delta(&c.metric, c.change.unwrap_or(0.0))
            );
        }
    }
    if mine
        .iter()
        .any(|c| c.verdict == VerdictKind::NoSignificantChange)
    {
        "no significant change".into()
    } else {
        "not enough data".into()
    }
}

/// The text report.
pub fn text(report: &Report, title: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{title}");
    verdicts(&mut o, report);
    let c = &report.counts;
    let (filtered, fd) = category(&c.filtered);
    let (incomplete, id) = category(&c.incomplete);
    let (dropped, dd) = category(&c.dropped);
    let _ = writeln!(
        o,
        "requests   {} seen   {} replayed   {} filtered{}",
        c.seen,
        c.replayed,
        filtered,
        parenthesized(&fd)
    );
    let _ = writeln!(
        o,
        "           {} incomplete in capture{}   {} dropped{}",
        incomplete,
        parenthesized(&id),
        dropped,
        parenthesized(&dd)
    );
    if !c.representative() {
        let _ = writeln!(
            o,
            "NOT REPRESENTATIVE: {} of {} selected requests replayed (below {:.0}%): the comparison rests on a small share of the traffic",
            c.replayed,
            c.replayed + dropped,
            100.0 * crate::report::model::REPRESENTATIVE
        );
    }
    let (p, s) = (&report.production, &report.shadow);
    let _ = writeln!(
        o,
        "\n{:<18} {:>12} {:>12} {:>12}",
        "", "production", "shadow", "change"
    );
    let (ps, ss) = (p.status.to_array(), s.status.to_array());
    for class in 2..=5 {
        let _ = writeln!(
            o,
            "{:<18} {:>12} {:>12}",
            format!("{class}xx"),
            pct(ps[class], p.requests),
            pct(ss[class], s.requests)
        );
    }
    // As `error_rate`: requests cut because the run stopped are listed, not counted.
    let ours = |kind: &str| Failure::from_name(kind).is_some_and(Failure::is_ours);
    let errors = s.errors.iter().flatten();
    let blamed: u64 = errors
        .clone()
        .filter(|(k, _)| !ours(k))
        .map(|(_, n)| n)
        .sum();
    let detail = errors
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| match ours(k) {
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
        pct(blamed, s.requests),
        if detail.is_empty() {
            String::new()
        } else {
            format!("({detail})")
        }
    );
    let truncated = s.truncated.unwrap_or(0);
    if truncated > 0 {
        let _ = writeln!(
            o,
            "{:<18} {:>12} {:>12}   (status and ttfb kept, total left out)",
            format!("bodies cut {} MiB", crate::replay::client::MAX_DRAIN >> 20),
            "-",
            truncated
        );
    }
    for (name, qp, qs) in [
        ("ttfb", &p.ttfb_us, &s.ttfb_us),
        ("total", &p.total_us, &s.total_us),
    ] {
        let rows = [
            ("p50", qp.p50, qs.p50),
            ("p90", qp.p90, qs.p90),
            ("p95", qp.p95, qs.p95),
            ("p99", qp.p99, qs.p99),
            ("p99.9", qp.p999, qs.p999),
            ("max", qp.max, qs.max),
        ];
        for (label, a, b) in rows {
            let _ = writeln!(
                o,
                "{:<18} {:>12} {:>12} {:>12}",
                format!("{name} {label}"),
                show(a),
                show(b),
                match (a, b) {
                    (Some(a), Some(b)) => change(a, b),
                    _ => String::new(),
                }
            );
        }
    }
    let (mismatch, replayed) = (report.mismatch.status, c.replayed);
    let _ = writeln!(
        o,
        "status mismatches: {} ({})",
        mismatch,
        pct(mismatch, replayed)
    );
    let mut kinds: Vec<_> = report.mismatches.iter().collect();
    kinds.sort_by_key(|m| std::cmp::Reverse(m.count));
    for m in kinds.iter().take(10) {
        let _ = writeln!(
            o,
            "  {:<40} {} -> {}   x {}",
            m.route, m.production, m.shadow, m.count
        );
    }
    routes(&mut o, report);
    if let Some(r) = &report.shadow.rtt_us {
        let _ = writeln!(
            o,
            "\nshadow round trip (kernel, as each of {} connections opened): min {}, mean {}, max {}",
            r.connections,
            ms(r.min),
            ms(r.mean.round() as u64),
            ms(r.max)
        );
    }
    if let Some(l) = &report.schedule.lateness_us {
        let _ = writeln!(
            o,
            "\nschedule: p99 lateness {} (max {})",
            show(l.p99),
            show(l.max)
        );
    }
    o
}
