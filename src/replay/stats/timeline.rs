//! Latency over time: both sides' time to first byte in buckets of capture time, for the
//! HTML report's plot. Bounded: at most [`MAX_BUCKETS`] buckets; when a run outgrows them,
//! the bucket width doubles and neighbours merge. Buckets are aligned on multiples of their
//! width in absolute capture time, so the timelines of shards, nodes and saved reports merge
//! exactly, in any order: the width of a merge is the narrowest that holds the whole span.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::Side;

/// A histogram for one bucket: 2 significant digits (1%, plenty for a plot), growing as
/// needed. At most about 24 KiB even with a latency of an hour in it, so the 240 of a full
/// timeline stay within a few MiB.
fn coarse() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 2, 2).expect("constant bounds are valid");
    h.auto(true);
    h
}

/// Buckets kept at most.
pub const MAX_BUCKETS: u64 = 120;
/// The narrowest bucket, in nanoseconds of capture time (1 s).
const FIRST_WIDTH: u64 = 1_000_000_000;

/// One bucket: each side's ttfb.
#[derive(Clone, Debug)]
pub struct Bucket {
    pub production: Histogram<u64>,
    pub shadow: Histogram<u64>,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            production: coarse(),
            shadow: coarse(),
        }
    }
}

impl Bucket {
    fn merge(&mut self, other: &Bucket) {
        // Both grow as needed, so adding cannot fail.
        let _ = self.production.add(&other.production);
        let _ = self.shadow.add(&other.shadow);
    }
}

/// The timeline: buckets by index (capture time / width).
#[derive(Clone, Debug)]
pub struct Timeline {
    /// Nanoseconds of capture time a bucket spans: 1 s times a power of two.
    pub width: u64,
    pub buckets: BTreeMap<u64, Bucket>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            width: FIRST_WIDTH,
            buckets: BTreeMap::new(),
        }
    }
}

impl Timeline {
    /// Records one replayed request captured at `ns` (capture time): production's ttfb if
    /// its response was captured, the shadow's if it answered.
    pub fn record(&mut self, ns: i64, production: Option<u64>, shadow: Option<u64>) {
        let ns = ns.max(0) as u64;
        // Most requests land in a bucket that exists: only a new one can need a wider width.
        if !self.buckets.contains_key(&(ns / self.width)) {
            self.fit(ns / self.width, ns / self.width);
        }
        let bucket = self.buckets.entry(ns / self.width).or_default();
        if let Some(us) = production {
            Side::latency(&mut bucket.production, us);
        }
        if let Some(us) = shadow {
            Side::latency(&mut bucket.shadow, us);
        }
    }

    /// Doubles the width until the buckets, and `first..=last` (bucket indices at the
    /// current width), fit in [`MAX_BUCKETS`].
    fn fit(&mut self, first: u64, last: u64) {
        let (mut first, mut last) = match (self.buckets.keys().next(), self.buckets.keys().last()) {
            (Some(&a), Some(&b)) => (a.min(first), b.max(last)),
            _ => (first, last),
        };
        while last - first >= MAX_BUCKETS {
            self.coarsen();
            first /= 2;
            last /= 2;
        }
    }

    /// Twice as wide: buckets 2k and 2k + 1 become bucket k.
    fn coarsen(&mut self) {
        let old = std::mem::take(&mut self.buckets);
        for (i, b) in old {
            self.buckets.entry(i / 2).or_default().merge(&b);
        }
        self.width *= 2;
    }

    /// Adds another timeline: both at the wider width, then at the narrowest that holds
    /// both spans.
    pub fn merge(&mut self, other: &Timeline) {
        if other.buckets.is_empty() {
            return;
        }
        let mut other = other.clone();
        while other.width < self.width {
            other.coarsen();
        }
        while self.width < other.width {
            self.coarsen();
        }
        let (Some(&a), Some(&b)) = (other.buckets.keys().next(), other.buckets.keys().last())
        else {
            return;
        };
        self.fit(a, b);
        while other.width < self.width {
            other.coarsen();
        }
        for (i, b) in &other.buckets {
            self.buckets.entry(*i).or_default().merge(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn a_bucket_stays_small_whatever_its_latencies() {
        let mut b = Bucket::default();
        Side::latency(&mut b.shadow, 1);
        Side::latency(&mut b.shadow, 3_600_000_000);
        assert!(
            b.shadow.distinct_values() <= 4096,
            "{}",
            b.shadow.distinct_values()
        );
        assert_eq!(b.shadow.len(), 2);
    }

    #[test]
    fn a_long_run_stays_within_the_bucket_bound() {
        let mut t = Timeline::default();
        for s in 0..10_000 {
            t.record(1_700_000_000 * S + s * S, Some(100), Some(200));
        }
        assert!(t.buckets.len() as u64 <= MAX_BUCKETS, "{}", t.buckets.len());
        assert_eq!(t.width, 128 * FIRST_WIDTH);
        let total: u64 = t.buckets.values().map(|b| b.shadow.len()).sum();
        assert_eq!(total, 10_000, "nothing lost to coarsening");
    }

    #[test]
    fn merges_give_the_same_timeline_in_any_order() {
        let part = |from: i64, n: i64| {
            let mut t = Timeline::default();
            for s in 0..n {
                t.record((from + s) * S, Some(10 + s as u64), None);
            }
            t
        };
        let (a, b, c) = (part(0, 50), part(40, 30), part(200, 60));
        let mut abc = a.clone();
        abc.merge(&b);
        abc.merge(&c);
        let mut cba = c.clone();
        cba.merge(&b);
        cba.merge(&a);
        let mut whole = Timeline::default();
        for (from, n) in [(0, 50), (40, 30), (200, 60)] {
            for s in 0..n {
                whole.record((from + s) * S, Some(10 + s as u64), None);
            }
        }
        let digest = |t: &Timeline| -> Vec<(u64, u64, u64)> {
            t.buckets
                .iter()
                .map(|(i, b)| (*i, b.production.len(), b.production.max()))
                .collect()
        };
        assert_eq!(abc.width, whole.width);
        assert_eq!(digest(&abc), digest(&whole));
        assert_eq!(digest(&cba), digest(&whole));
    }
}
