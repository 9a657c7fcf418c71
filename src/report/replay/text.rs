//! The text form of the replay report, for people: counts, latency side by side, routes,
//! mismatches and the schedule's lateness.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::PERCENTILES;
use crate::replay::stats::Stats;

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
