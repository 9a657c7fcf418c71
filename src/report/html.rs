//! The replay report as one self-contained HTML file: the same figures as the text report,
//! and latency distribution plots (percentile curves, as HdrHistogram plots them) for both
//! sides, drawn as inline SVG. No scripts, no external files.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::report::model::{Report, SavedHistogram};

/// Quantiles the curves go through; the x axis is `-log10(1 - q)` so the tail gets room.
const CURVE: &[f64] = &[
    0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999,
];
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 260.0;
const PAD: f64 = 40.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn x_of(q: f64) -> f64 {
    let max = -(1.0 - CURVE[CURVE.len() - 1]).log10();
    PAD + (WIDTH - 2.0 * PAD) * (-(1.0 - q).log10()) / max
}

/// One plot: both sides' percentile curves for one latency.
fn plot(title: &str, production: &Histogram<u64>, shadow: &Histogram<u64>) -> String {
    let top = production.max().max(shadow.max()).max(1) as f64;
    let y_of = |us: u64| HEIGHT - PAD - (HEIGHT - 2.0 * PAD) * us as f64 / top;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\"><title>{}</title>",
        escape(title)
    );
    let _ = write!(
        svg,
        "<line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#888\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#888\"/>",
        b = HEIGHT - PAD,
        r = WIDTH - PAD
    );
    for (q, label) in [
        (0.5, "p50"),
        (0.9, "p90"),
        (0.99, "p99"),
        (0.999, "p99.9"),
        (0.9999, "p99.99"),
    ] {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{label}</text>",
            x_of(q),
            HEIGHT - PAD + 16.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"4\" y=\"{PAD}\" font-size=\"11\">{:.1} ms</text>",
        top / 1000.0
    );
    for (h, color, name) in [
        (production, "#1f77b4", "production"),
        (shadow, "#d62728", "shadow"),
    ] {
        if h.is_empty() {
            continue;
        }
        let points: Vec<String> = CURVE
            .iter()
            .map(|&q| format!("{:.1},{:.1}", x_of(q), y_of(h.value_at_quantile(q))))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"><title>{name}</title></polyline>",
            points.join(" ")
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The whole page.
pub fn page(report: &Report, title: &str) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em}}\
         pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}\
         .key span{{display:inline-block;width:1em;height:.6em;margin:0 .3em 0 1em}}</style></head><body>\
         <h1>{t}</h1>\
         <p class=\"key\"><span style=\"background:#1f77b4\"></span>production (timed off the wire)\
         <span style=\"background:#d62728\"></span>shadow (timed by the replayer)</p>",
        t = escape(title)
    );
    let (p, s) = (&report.production.histograms, &report.shadow.histograms);
    // Written by this program a moment ago (or read back within bounds by `report`), so
    // they decode; one that did not would draw as empty.
    let decode = |h: &SavedHistogram| {
        h.decode()
            .unwrap_or_else(|_| crate::replay::stats::histogram())
    };
    let _ = write!(
        o,
        "<h2>Time to first byte</h2>{}",
        plot("ttfb", &decode(&p.ttfb), &decode(&s.ttfb))
    );
    let _ = write!(
        o,
        "<h2>Total time</h2>{}",
        plot("total", &decode(&p.total), &decode(&s.total))
    );
    let _ = writeln!(
        o,
        "<h2>Report</h2><pre>{}</pre></body></html>",
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

    #[test]
    fn the_page_is_self_contained_with_both_curves() {
        let mut s = Stats::default();
        for ms in 1..50u64 {
            let a = Answer {
                status: 200,
                ttfb: Duration::from_millis(ms),
                total: Duration::from_millis(ms + 1),
                body_len: 1,
                body_cut: false,
            };
            s.replayed(
                "GET /<x>",
                Some((200, ms as i64 * 900, Some(ms as i64 * 1000))),
                Ok(a),
                Duration::from_secs(5),
            );
        }
        let html = page(&crate::report::replay::report(&s), "replay <of> a & b");
        assert!(html.starts_with("<!doctype html>"));
        assert_eq!(html.matches("<polyline").count(), 4);
        assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
        assert!(html.contains("replay &lt;of&gt; a &amp; b") && html.contains("GET /&lt;x&gt;"));
    }
}
