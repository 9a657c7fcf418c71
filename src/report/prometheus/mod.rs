//! The Prometheus text exposition format (version 0.0.4) of a mirror run: counters of
//! requests by outcome, capture counters, and latency histograms of both sides. Names follow
//! the JSON report (`report::replay`): `seen`, `replayed`, the `filtered` / `incomplete` /
//! `dropped` categories with their reasons, status classes, and the shadow's five transport
//! error kinds.
//!
//! The families (names, help, values) are `families`; the text format's pieces `render`.

mod families;
mod render;

pub use families::exposition;

/// Live figures that are not in `Stats` (capture side), for the exposition.
pub struct Capture {
    pub packets: u64,
    pub kernel_drops: u64,
    pub interface_drops: u64,
    pub own_traffic: u64,
    /// Bytes the HTTP stage holds under its memory budget now, and the growths it refused.
    pub http_memuse: u64,
    pub http_memcap_hits: u64,
}

#[cfg(test)]
mod tests;
