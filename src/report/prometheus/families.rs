//! The metric families of a mirror run, in the order they are exposed: their names, help
//! texts, labels and values.

use std::fmt::Write as _;

use super::render::{counter, escape_label, family, gauge, histogram};
use super::Capture;
use crate::replay::stats::{Side, Stats};

/// Labels of `Side::status`, index by index. `Side::status` files a status under
/// `status / 100` capped at 5, so index 0 holds codes 0-99 (not valid HTTP, yet parsed from
/// three digits) and codes 600 and above are already counted under `5xx`. The JSON report
/// leaves index 0 out; it is emitted here as `other` so that the classes add up to every
/// response received.
const CLASSES: [&str; 6] = ["other", "1xx", "2xx", "3xx", "4xx", "5xx"];

/// The Prometheus text exposition format (version 0.0.4) of a mirror run so far.
pub fn exposition(stats: &Stats, capture: &Capture) -> String {
    let mut o = String::with_capacity(8 * 1024);
    counter(
        &mut o,
        "shadowtap_requests_seen_total",
        "Requests parsed from the capture.",
        stats.seen,
    );
    counter(
        &mut o,
        "shadowtap_requests_replayed_total",
        "Requests sent (or attempted) to the shadow.",
        stats.replayed,
    );
    family(
        &mut o,
        "shadowtap_requests_not_replayed_total",
        "counter",
        "Requests not sent to the shadow, by category (filtered, incomplete, dropped) and reason.",
    );
    for (why, n) in stats.skipped.iter() {
        let _ = writeln!(
            o,
            "shadowtap_requests_not_replayed_total{{category=\"{}\",reason=\"{}\"}} {n}",
            escape_label(why.category()),
            escape_label(why.name())
        );
    }
    family(
        &mut o,
        "shadowtap_responses_total",
        "counter",
        "Responses by side and status class (production: as captured; other: status below 100).",
    );
    let sides: [(&str, &Side); 2] = [("production", &stats.production), ("shadow", &stats.shadow)];
    for (side, s) in sides {
        for (class, n) in CLASSES.iter().zip(s.status) {
            let _ = writeln!(
                o,
                "shadowtap_responses_total{{side=\"{side}\",class=\"{class}\"}} {n}"
            );
        }
    }
    family(
        &mut o,
        "shadowtap_shadow_errors_total",
        "counter",
        "Exchanges with the shadow that failed, by transport error kind.",
    );
    // Every kind always, so that series never appear or disappear (the JSON report lists
    // the same six); `shutdown` is the run's doing, not the shadow's, and shown all the same.
    for (kind, n) in stats.shadow.errors.iter() {
        let kind = kind.name();
        let _ = writeln!(o, "shadowtap_shadow_errors_total{{kind=\"{kind}\"}} {n}");
    }
    counter(
        &mut o,
        "shadowtap_shadow_truncated_total",
        "Shadow answers whose body was cut at the drain cap (status and ttfb kept).",
        stats.shadow.truncated,
    );
    counter(
        &mut o,
        "shadowtap_status_mismatches_total",
        "Replayed requests whose production and shadow statuses differ.",
        stats.mismatch,
    );
    counter(
        &mut o,
        "shadowtap_capture_packets_total",
        "Packets captured.",
        capture.packets,
    );
    counter(
        &mut o,
        "shadowtap_capture_kernel_drops_total",
        "Packets the kernel dropped because the capture buffer was full.",
        capture.kernel_drops,
    );
    counter(
        &mut o,
        "shadowtap_capture_interface_drops_total",
        "Packets the network interface dropped.",
        capture.interface_drops,
    );
    counter(
        &mut o,
        "shadowtap_own_traffic_ignored_total",
        "Requests carrying shadowtap's own replay marker, not mirrored again.",
        capture.own_traffic,
    );
    gauge(
        &mut o,
        "shadowtap_http_memuse_bytes",
        "Bytes the HTTP stage holds (partial heads, waiting requests, kept bodies) under --http-memcap.",
        capture.http_memuse,
    );
    counter(
        &mut o,
        "shadowtap_http_memcap_hits_total",
        "Heads and bodies given up because --http-memcap was reached.",
        capture.http_memcap_hits,
    );
    family(
        &mut o,
        "shadowtap_ttfb_seconds",
        "histogram",
        "Time to first byte: last request byte to first response byte.",
    );
    for (side, s) in sides {
        histogram(&mut o, "shadowtap_ttfb_seconds", side, &s.ttfb);
    }
    family(
        &mut o,
        "shadowtap_total_seconds",
        "histogram",
        "Exchange time: first request byte to last response byte.",
    );
    for (side, s) in sides {
        histogram(&mut o, "shadowtap_total_seconds", side, &s.total);
    }
    o
}
