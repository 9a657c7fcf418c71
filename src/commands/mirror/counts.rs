//! What mirror's capture thread counts itself, in atomics: the status line and `/metrics`
//! read them from their own threads, without a lock.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::replay::select::Skip;
use crate::replay::stats::Stats;
use crate::report::prometheus;

/// What the capture thread counts itself, requests not replayed by reason: atomics, so that
/// the status line and `/metrics` read them from their own threads, without a lock.
#[derive(Default)]
pub(super) struct CaptureSkips {
    /// By [`Skip::index`].
    pub(super) skipped: [AtomicU64; Skip::ALL.len()],
    pub(super) rate_limit: AtomicU64,
    pub(super) queue_full: AtomicU64,
}

impl CaptureSkips {
    pub(super) fn skip_many(&self, why: Skip, n: u64) {
        self.skipped[why.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// The counts as statistics, to merge with the engine's.
    pub(super) fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for (&why, n) in Skip::ALL.iter().zip(&self.skipped) {
            stats.skip_many(why, n.load(Ordering::Relaxed));
        }
        stats.dropped_many(
            crate::replay::stats::Dropped::RateLimit,
            self.rate_limit.load(Ordering::Relaxed),
        );
        stats.dropped_many(
            crate::replay::stats::Dropped::QueueFull,
            self.queue_full.load(Ordering::Relaxed),
        );
        stats
    }
}

/// Capture-side counters, shared with the metrics endpoint.
#[derive(Default)]
pub(super) struct CaptureCounts {
    pub(super) packets: AtomicU64,
    pub(super) kernel_drops: AtomicU64,
    pub(super) interface_drops: AtomicU64,
    pub(super) own_traffic: AtomicU64,
    pub(super) http_memuse: AtomicU64,
    pub(super) http_memcap_hits: AtomicU64,
}

impl CaptureCounts {
    pub(super) fn prometheus(&self) -> prometheus::Capture {
        prometheus::Capture {
            packets: self.packets.load(Ordering::Relaxed),
            kernel_drops: self.kernel_drops.load(Ordering::Relaxed),
            interface_drops: self.interface_drops.load(Ordering::Relaxed),
            own_traffic: self.own_traffic.load(Ordering::Relaxed),
            http_memuse: self.http_memuse.load(Ordering::Relaxed),
            http_memcap_hits: self.http_memcap_hits.load(Ordering::Relaxed),
        }
    }
}
