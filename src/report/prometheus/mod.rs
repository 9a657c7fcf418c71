//! The Prometheus text exposition format (version 0.0.4) of a mirror run, written by
//! prometheus-client: counters of requests by outcome, capture counters, and latency
//! histograms of both sides. Names follow the JSON report (`report::replay`): `seen`,
//! `replayed`, the `filtered` / `incomplete` / `dropped` categories with their reasons, status
//! classes, and the shadow's five transport error kinds.
//!
//! The families (names, help, values) are `families`; the HdrHistograms' buckets `buckets`.

mod buckets;
mod families;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;

use crate::replay::stats::Stats;

pub(crate) use families::counter;

/// The `Content-Type` of what [`encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Live figures that are not in `Stats` (capture side), for the exposition.
#[derive(Clone, Copy, Debug)]
pub struct Capture {
    pub packets: u64,
    pub kernel_drops: u64,
    pub interface_drops: u64,
    pub own_traffic: u64,
    /// Bytes the HTTP stage holds under its memory budget now, and the growths it refused.
    pub http_memuse: u64,
    pub http_memcap_hits: u64,
}

/// Adds the run's families, as they are now, to `registry`.
pub fn register(registry: &mut Registry, stats: &Stats, capture: &Capture) {
    registry.register_collector(Box::new(families::Snapshot::of(stats, capture)));
}

/// `registry` in the text format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::with_capacity(8 * 1024);
    // Writing to a `String` cannot fail, and the collectors only fail when the writer does.
    let _ = prometheus_text::encode(&mut text, registry);
    text
}

/// The text exposition of a mirror run so far.
pub fn exposition(stats: &Stats, capture: &Capture) -> String {
    let mut registry = Registry::default();
    register(&mut registry, stats, capture);
    encode(&registry)
}

#[cfg(test)]
mod tests;
