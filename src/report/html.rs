//! The replay report as one self-contained HTML file for a release decision: the verdict
//! first, then both sides' latency distributions (percentile curves on a "nines" axis, a
//! log latency axis, labelled ticks), the route table with its significant changes marked,
//! the run's description, and the text report. Inline SVG and CSS: no scripts, no external
//! files, nothing fetched.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::report::model::{Comparison, Report, SavedHistogram, VerdictKind};
use crate::report::verdict::{worst_first, Headline, Tally};

/// Points of each curve, evenly spaced in nines from p0 to p99.99.
const POINTS: usize = 48;
/// The last quantile drawn.
const LAST: f64 = 0.9999;
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 280.0;
const PAD: f64 = 48.0;
/// Routes listed in the table (the JSON has them all).
const TABLE_ROUTES: usize = 100;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// x of quantile `q`: `-log10(1 - q)`, so p90, p99, p99.9 are evenly apart.
fn x_of(q: f64) -> f64 {
    let max = -(1.0 - LAST).log10();
    PAD + (WIDTH - 2.0 * PAD) * (-(1.0 - q).log10()) / max
}

/// A latency for a tick label: `100 us`, `1 ms`, `10 s`.
fn tick_label(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{} ms", us / 1e3)
    } else {
        format!("{us} us")
    }
}

/// One plot: both sides' percentile curves for one latency, on a log latency axis whose
/// decades are labelled.
fn plot(title: &str, production: &Histogram<u64>, shadow: &Histogram<u64>) -> String {
    let sides = [production, shadow];
    let present: Vec<&&Histogram<u64>> = sides.iter().filter(|h| !h.is_empty()).collect();
    let lowest = present.iter().map(|h| h.min().max(1)).min().unwrap_or(1) as f64;
    let highest = present.iter().map(|h| h.max().max(1)).max().unwrap_or(10) as f64;
    let (lo, hi) = (
        lowest.log10().floor(),
        highest.log10().ceil().max(lowest.log10().floor() + 1.0),
    );
    let y_of = |us: f64| {
        let at = (us.max(1.0).log10() - lo) / (hi - lo);
        HEIGHT - PAD - (HEIGHT - 2.0 * PAD) * at
    };
    let mut svg = format!(
        "<svg class=\"plot\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\"><title>{}</title>",
        escape(title)
    );
    let (bottom, right) = (HEIGHT - PAD, WIDTH - PAD);
    let _ = write!(
        svg,
        "<line x1=\"{PAD}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#888\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{bottom}\" stroke=\"#888\"/>"
    );
    for (q, label) in [
        (0.0, "p0"),
        (0.5, "p50"),
        (0.9, "p90"),
        (0.99, "p99"),
        (0.999, "p99.9"),
        (0.9999, "p99.99"),
    ] {
        let x = x_of(q);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{PAD}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#eee\"/><text class=\"xtick\" x=\"{x:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{label}</text>",
            bottom + 16.0
        );
    }
    let mut decade = lo;
    while decade <= hi {
        let us = 10f64.powf(decade);
        let y = y_of(us);
        let _ = write!(
            svg,
            "<line x1=\"{PAD}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text class=\"ytick\" x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            PAD - 4.0,
            y + 4.0,
            tick_label(us)
        );
        decade += 1.0;
    }
    let nines = -(1.0 - LAST).log10();
    for (h, color, name) in [
        (production, "#1f77b4", "production"),
        (shadow, "#d62728", "shadow"),
    ] {
        if h.is_empty() {
            continue;
        }
        let points: Vec<String> = (0..POINTS)
            .map(|i| {
                let q = 1.0 - 10f64.powf(-nines * i as f64 / (POINTS - 1) as f64);
                format!("{:.1},{:.1}", x_of(q), y_of(h.value_at_quantile(q) as f64))
            })
            .collect();
        let _ = write!(
            svg,
            "<polyline class=\"{name}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"><title>{name}</title></polyline>",
            points.join(" ")
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Latency over time: both sides' ttfb p50 (solid) and p99 (dashed) per bucket of capture
/// time, on a log latency axis.
fn over_time(t: &crate::report::model::Timeline) -> String {
    let values: Vec<u64> = t
        .buckets
        .iter()
        .flat_map(|b| {
            [
                b.production.p50,
                b.production.p99,
                b.shadow.p50,
                b.shadow.p99,
            ]
        })
        .flatten()
        .collect();
    let lowest = values.iter().copied().min().unwrap_or(1).max(1) as f64;
    let highest = values.iter().copied().max().unwrap_or(10).max(1) as f64;
    let (lo, hi) = (
        lowest.log10().floor(),
        highest.log10().ceil().max(lowest.log10().floor() + 1.0),
    );
    let first = t.buckets.first().map_or(0, |b| b.start);
    let last = t
        .buckets
        .last()
        .map_or(0, |b| b.start)
        .max(first + t.bucket_s);
    let x_of =
        |start: u64| PAD + (WIDTH - 2.0 * PAD) * (start - first) as f64 / (last - first) as f64;
    let y_of = |us: u64| {
        let at = ((us.max(1) as f64).log10() - lo) / (hi - lo);
        HEIGHT - PAD - (HEIGHT - 2.0 * PAD) * at
    };
    let mut svg = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\"><title>ttfb over time</title>"
    );
    let (bottom, right) = (HEIGHT - PAD, WIDTH - PAD);
    let _ = write!(
        svg,
        "<line x1=\"{PAD}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#888\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{bottom}\" stroke=\"#888\"/>"
    );
    let mut decade = lo;
    while decade <= hi {
        let us = 10f64.powf(decade);
        let y = y_of(us as u64);
        let _ = write!(
            svg,
            "<text class=\"ytick\" x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            PAD - 4.0,
            y + 4.0,
            tick_label(us)
        );
        decade += 1.0;
    }
    for (x, label) in [
        (first, "0 s".to_string()),
        (last, format!("{} s", last - first)),
    ] {
        let _ = write!(
            svg,
            "<text class=\"xtick\" x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{label}</text>",
            x_of(x),
            bottom + 16.0
        );
    }
    type Pick = fn(&crate::report::model::TimeBucket) -> Option<u64>;
    let lines: [(&str, &str, &str, Pick); 4] = [
        ("production p50", "#1f77b4", "", |b| b.production.p50),
        (
            "production p99",
            "#1f77b4",
            " stroke-dasharray=\"4 3\"",
            |b| b.production.p99,
        ),
        ("shadow p50", "#d62728", "", |b| b.shadow.p50),
        ("shadow p99", "#d62728", " stroke-dasharray=\"4 3\"", |b| {
            b.shadow.p99
        }),
    ];
    for (name, color, dash, pick) in lines {
        let points: Vec<String> = t
            .buckets
            .iter()
            .filter_map(|b| pick(b).map(|v| format!("{:.1},{:.1}", x_of(b.start), y_of(v))))
            .collect();
        if points.is_empty() {
            continue;
        }
        let _ = write!(
            svg,
            "<polyline class=\"over-time\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash} points=\"{}\"><title>{name}</title></polyline>",
            points.join(" ")
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A value of `metric` for the page: µs as a latency, a fraction as a percentage.
fn value(metric: &str, v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if metric.ends_with("rate") => format!("{:.2}%", 100.0 * v),
        Some(v) if v >= 1000.0 => format!("{:.1} ms", v / 1000.0),
        Some(v) => format!("{v:.0} us"),
    }
}

fn verdict_class(v: VerdictKind) -> &'static str {
    match v {
        VerdictKind::Regression => "regression",
        VerdictKind::Improvement => "improvement",
        VerdictKind::NoSignificantChange => "same",
        VerdictKind::NotEnoughData => "nodata",
    }
}

/// The verdict section: the headline and every change of the whole run and the routes.
fn verdict(report: &Report) -> String {
    let t = Tally::of(report);
    let headline = match t.headline() {
        Headline::NotEnoughData => "Not enough data",
        Headline::NoSignificantChange => "No significant change",
        Headline::Improved => "Improved",
        Headline::Regressed => "Regressed",
    };
    let mut o = format!(
        "<section id=\"verdict\"><h2 class=\"headline\">Verdict: {headline}</h2><p>{} regressions, {} improvements, {} no significant change, {} not enough data (whole run; routes below).</p><ul>",
        t.regressions, t.improvements, t.unchanged, t.no_data
    );
    let changed: Vec<&Comparison> = report
        .verdicts
        .iter()
        .filter(|c| c.verdict.is_change())
        .collect();
    for c in changed.iter().take(50) {
        let _ = write!(
            o,
            "<li class=\"{}\"><b>{}</b> {} {}: {} &rarr; {}</li>",
            verdict_class(c.verdict),
            c.verdict.name(),
            escape(c.route.as_deref().unwrap_or("whole run")),
            escape(&c.metric.replace('_', " ")),
            value(&c.metric, c.production),
            value(&c.metric, c.shadow)
        );
    }
    o.push_str("</ul></section>");
    o
}

/// The route table: the routes with the largest significant regression first, then by
/// requests.
fn routes(report: &Report) -> String {
    let rows = worst_first(report);
    let mut o = String::from(
        "<section id=\"routes\"><h2>Routes</h2><table id=\"route-table\"><thead><tr><th>route</th><th>requests</th><th>ttfb p50</th><th>ttfb p99</th><th>error rate</th><th>4xx</th><th>5xx</th><th>mismatches</th><th>verdicts</th></tr></thead><tbody>",
    );
    for r in rows.iter().take(TABLE_ROUTES) {
        let found: Vec<&Comparison> = report
            .verdicts
            .iter()
            .filter(|c| c.route.as_deref() == Some(&r.route))
            .filter(|c| c.verdict.is_change())
            .collect();
        let class = if found.iter().any(|c| c.verdict == VerdictKind::Regression) {
            "regression"
        } else if found.is_empty() {
            "same"
        } else {
            "improvement"
        };
        let share = |n: u64, of: u64| {
            if of == 0 {
                "-".to_string()
            } else {
                format!("{:.2}%", 100.0 * n as f64 / of as f64)
            }
        };
        let pair = |p: Option<u64>, s: Option<u64>| {
            format!(
                "{} &rarr; {}",
                value("us", p.map(|v| v as f64)),
                value("us", s.map(|v| v as f64))
            )
        };
        let (p, s) = (&r.production, &r.shadow);
        let rate = |side: &crate::report::model::Side| {
            value("error_rate", (side.requests > 0).then_some(side.error_rate))
        };
        let _ = write!(
            o,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} &rarr; {}</td><td>{} &rarr; {}</td><td>{} &rarr; {}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.route),
            s.requests,
            pair(p.ttfb_us.p50, s.ttfb_us.p50),
            pair(p.ttfb_us.p99, s.ttfb_us.p99),
            rate(p),
            rate(s),
            share(p.status.c4xx, p.requests),
            share(s.status.c4xx, s.requests),
            share(p.status.c5xx, p.requests),
            share(s.status.c5xx, s.requests),
            r.mismatch.status,
            found
                .iter()
                .map(|c| format!("{} {}", escape(&c.metric.replace('_', " ")), c.verdict.name()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    o.push_str("</tbody></table>");
    if report.routes.len() > TABLE_ROUTES {
        let _ = write!(
            o,
            "<p>{} more routes in the JSON report.</p>",
            report.routes.len() - TABLE_ROUTES
        );
    }
    o.push_str("</section>");
    o
}

/// The run section: what was measured, how and when.
fn run(report: &Report) -> String {
    let mut o = String::from("<section id=\"run\"><h2>Run</h2>");
    for r in &report.runs {
        let inputs: Vec<String> = r
            .inputs
            .iter()
            .map(|i| {
                format!(
                    "{} ({} bytes, sha256 {})",
                    escape(&i.name),
                    i.bytes.map_or("-".into(), |b| b.to_string()),
                    escape(i.sha256.as_deref().unwrap_or("-"))
                )
            })
            .collect();
        let _ = write!(
            o,
            "<dl><dt>tool</dt><dd>{}</dd><dt>command</dt><dd><code>{}</code></dd><dt>shadow</dt><dd>{}</dd><dt>inputs</dt><dd>{}</dd><dt>ran</dt><dd>{:.1} s</dd><dt>settings</dt><dd>speed {}, sample {}%, concurrency {}, timeout {} ms</dd></dl>",
            escape(&r.tool),
            escape(&r.command.join(" ")),
            escape(&r.shadow),
            inputs.join("<br>"),
            r.ran.end - r.ran.start,
            escape(&r.settings.speed),
            r.settings.sample,
            r.settings.concurrency,
            r.settings.timeout_ms
        );
    }
    if report.runs.is_empty() {
        o.push_str(
            "<p>This report does not say what it measured (written before runs were recorded).</p>",
        );
    }
    o.push_str("</section>");
    o
}

/// The whole page.
pub fn page(report: &Report, title: &str) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;max-width:72em}}\
         pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}\
         table{{border-collapse:collapse}}td,th{{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}}\
         .regression{{background:#fde2e2}}.improvement{{background:#e2f5e2}}\
         .key span{{display:inline-block;width:1em;height:.6em;margin:0 .3em 0 1em}}</style></head><body>\
         <h1>{t}</h1>",
        t = escape(title)
    );
    o.push_str(&verdict(report));
    let (p, s) = (&report.production.histograms, &report.shadow.histograms);
    // Written by this program a moment ago (or read back within bounds by `report`), so
    // they decode; one that did not would draw as empty.
    let decode = |h: &SavedHistogram| {
        h.decode()
            .unwrap_or_else(|_| crate::replay::stats::histogram())
    };
    let _ = write!(
        o,
        "<section id=\"plots\"><p class=\"key\"><span style=\"background:#1f77b4\"></span>production (timed off the wire)\
         <span style=\"background:#d62728\"></span>shadow (timed by the replayer)</p>\
         <h2>Time to first byte</h2>{}<h2>Total time</h2>{}</section>",
        plot("ttfb", &decode(&p.ttfb), &decode(&s.ttfb)),
        plot("total", &decode(&p.total), &decode(&s.total))
    );
    if let Some(t) = &report.timeline {
        let _ = write!(
            o,
            "<section id=\"over-time\"><h2>Time to first byte over time</h2><p>p50 solid, p99 dashed, in buckets of {} s of capture time.</p>{}</section>",
            t.bucket_s,
            over_time(t)
        );
    }
    o.push_str(&routes(report));
    o.push_str(&run(report));
    let _ = writeln!(
        o,
        "<details><summary>Text report</summary><pre>{}</pre></details></body></html>",
        escape(&super::replay::text(report, title))
    );
    o
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::replay::client::Answer;
    use crate::replay::stats::Stats;

    fn sample() -> Stats {
        let mut s = Stats::default();
        for i in 1..400u64 {
            let a = Answer {
                status: if i % 5 == 0 { 500 } else { 200 },
                ttfb: Duration::from_micros(1500 + i * 10),
                total: Duration::from_micros(1600 + i * 10),
                body_len: 1,
                body_cut: false,
            };
            let route = if i % 2 == 0 { "GET /<x>" } else { "GET /y" };
            s.replayed_at(
                1_700_000_000_000_000_000 + i as i64 * 50_000_000,
                route,
                Some((200, 900 + i as i64, Some(1000 + i as i64))),
                Ok(a),
                Duration::from_secs(5),
            );
        }
        s
    }

    #[test]
    fn what_a_saved_report_says_about_its_run_is_escaped() {
        // `report` copies runs from the files it reads: a hostile file's strings.
        let mut r = crate::report::replay::report(&sample());
        let evil = "<script>alert(1)</script>";
        r.runs = vec![crate::report::model::Run {
            id: evil.into(),
            tool: evil.into(),
            command: vec![evil.into()],
            mode: evil.into(),
            shadow: evil.into(),
            inputs: vec![crate::report::model::Input {
                name: evil.into(),
                bytes: Some(1),
                sha256: Some(evil.into()),
            }],
            captured: None,
            ran: crate::report::model::Span {
                start: 0.0,
                end: 1.0,
            },
            settings: crate::report::model::RunSettings {
                speed: evil.into(),
                rate: None,
                sample: 100.0,
                sample_by: evil.into(),
                seed: 0,
                concurrency: 1,
                timeout_ms: 1,
                order: evil.into(),
                min_change: 0.05,
                min_change_abs_us: 100.0,
                min_rate_change: 0.01,
            },
        }];
        let html = page(&r, "t");
        assert!(!html.contains("<script"), "{html}");
    }

    #[test]
    fn the_page_is_self_contained_with_the_verdict_first_and_both_curves() {
        let html = page(
            &crate::report::replay::report(&sample()),
            "replay <of> a & b",
        );
        assert!(html.starts_with("<!doctype html>"));
        // Two distributions of two sides, and four curves over time.
        assert_eq!(html.matches("<polyline").count(), 8);
        assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
        assert!(html.contains("replay &lt;of&gt; a &amp; b") && html.contains("GET /&lt;x&gt;"));
        let verdict = html.find("id=\"verdict\"").unwrap();
        assert!(verdict < html.find("id=\"plots\"").unwrap());
        assert!(
            html.contains("Verdict: Regressed"),
            "the shadow is slower and fails more"
        );
        // Every decade of the latency axis and every nines tick is labelled.
        assert!(html.contains(">1 ms</text>") && html.contains(">10 ms</text>"));
        assert!(html.contains(">p99.9</text>") && html.contains(">p99.99</text>"));
        assert!(html.contains("<tr class=\"regression\"><td>GET /&lt;x&gt;</td>"));
        // 399 requests over 20 s of capture time: 20 buckets, four curves.
        assert!(html.contains("buckets of 1 s"), "{html}");
        assert_eq!(html.matches("class=\"over-time\"").count(), 4);
    }
}
