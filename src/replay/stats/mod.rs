//! Production and shadow statistics side by side: status classes, transport errors and
//! HdrHistogram latencies (1 µs to 1 hour, 3 significant digits), overall and per route, plus
//! the accounting of every request seen (DESIGN.md "What is measured, exactly").

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::client::{Answer, Failure};
use super::select::Skip;

mod counts;
mod route_name;
mod routes;
mod timeline;

pub use counts::{Dropped, Errors, Reason, Skipped};
pub use route_name::{route, route_into};
pub use routes::Routes;
pub use timeline::{Bucket, Timeline, MAX_BUCKETS};

/// Highest latency a histogram records, in µs (1 hour); longer values are clamped to it.
const MAX_US: u64 = 3_600_000_000;
/// Routes tracked one by one; the rest are counted under [`OTHER`] (DESIGN.md: the same cap on
/// every node keeps merged reports exact). Which routes are kept: see [`Routes`].
pub const MAX_ROUTES: usize = 1000;
/// The route-table entry holding every route past the cap.
pub const OTHER: &str = "other";
/// Status mismatch kinds listed in the report: the smallest keys (route, production status,
/// shadow status), so the list does not depend on arrival either.
const MAX_MISMATCH_KINDS: usize = 10_000;

/// A histogram of 1 µs to [`MAX_US`] at 3 significant digits that grows to the largest value
/// recorded (larger ones are clamped to `MAX_US` before they are recorded). Covering the hour
/// from the start takes 188 KiB, zeroed when created: a route seen for the first time held
/// its replay thread up for about a millisecond, and every request queued behind it was
/// late by as much. Grown as needed, a histogram costs what the latencies seen need.
pub(crate) fn histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 2, 3).expect("constant bounds are valid");
    h.auto(true);
    h
}

/// One side's figures.
#[derive(Clone)]
pub struct Side {
    pub requests: u64,
    /// Responses by class: index 1 = 1xx ... 5 = 5xx.
    pub status: [u64; 6],
    pub errors: Errors,
    /// Answers whose body was cut at the client's drain cap (shadow only): their status and
    /// `ttfb` count, their `total` (not the time to the last byte) is left out.
    pub truncated: u64,
    pub ttfb: Histogram<u64>,
    pub total: Histogram<u64>,
}

impl Default for Side {
    fn default() -> Self {
        Side {
            requests: 0,
            status: [0; 6],
            errors: Errors::default(),
            truncated: 0,
            ttfb: histogram(),
            total: histogram(),
        }
    }
}

impl Side {
    fn status(&mut self, status: u16) {
        self.status[usize::from(status / 100).min(5)] += 1;
    }

    fn latency(h: &mut Histogram<u64>, us: u64) {
        // `record`, not `saturating_record`: saturating would clamp to the size the
        // histogram has grown to so far instead of growing it.
        let us = us.clamp(1, MAX_US);
        if h.record(us).is_err() {
            h.saturating_record(us);
        }
    }

    /// Transport errors the shadow is to blame for: every kind but `shutdown` (requests cut
    /// because this run stopped), so a signal or the end of `--duration` cannot cross a gate.
    pub fn blamed_errors(&self) -> u64 {
        self.errors.blamed()
    }

    /// (5xx + transport errors but `shutdown`) / requests, 0 without requests.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        (self.status[5] + self.blamed_errors()) as f64 / self.requests as f64
    }
}

#[derive(Clone, Default)]
pub struct Route {
    pub production: Side,
    pub shadow: Side,
    pub mismatch: u64,
}

impl Route {
    pub(super) fn merge(&mut self, other: &Route) {
        self.production.merge(&other.production);
        self.shadow.merge(&other.shadow);
        self.mismatch += other.mismatch;
    }
}

/// Everything a replay report holds.
#[derive(Clone, Default)]
pub struct Stats {
    pub seen: u64,
    pub replayed: u64,
    /// Requests not replayed, by reason.
    pub skipped: Skipped,
    pub production: Side,
    pub shadow: Side,
    pub mismatch: u64,
    /// (route, production status, shadow status) -> count.
    pub mismatches: BTreeMap<(String, u16, u16), u64>,
    pub routes: Routes,
    /// Actual minus intended send time, µs (schedule lateness).
    pub lateness: Option<Histogram<u64>>,
    /// The kernel's round-trip time to the shadow on each new connection.
    pub shadow_rtt: Rtt,
    /// Both sides' ttfb over capture time.
    pub timeline: Timeline,
}

/// Round-trip times in µs (the kernel's `TCP_INFO` estimate as a connection opens): least,
/// most, sum and how many.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rtt {
    pub min: u64,
    pub max: u64,
    pub sum: u64,
    pub count: u64,
}

impl Rtt {
    pub fn record(&mut self, us: u64) {
        self.merge(&Rtt {
            min: us,
            max: us,
            sum: us,
            count: 1,
        });
    }

    pub fn merge(&mut self, other: &Rtt) {
        if other.count == 0 {
            return;
        }
        self.min = if self.count == 0 {
            other.min
        } else {
            self.min.min(other.min)
        };
        self.max = self.max.max(other.max);
        self.sum = self.sum.saturating_add(other.sum);
        self.count += other.count;
    }
}

impl Stats {
    pub fn skip(&mut self, why: Skip) {
        self.skip_many(why, 1);
    }

    /// `n` requests not replayed, all for the same reason (those the HTTP tracker counted
    /// without emitting them).
    pub fn skip_many(&mut self, why: Skip, n: u64) {
        self.seen += n;
        self.skipped.add(Reason::Skip(why), n);
    }

    pub fn dropped(&mut self, why: Dropped) {
        self.dropped_many(why, 1);
    }

    /// `n` requests selected but not sent, all for the same reason.
    pub fn dropped_many(&mut self, why: Dropped, n: u64) {
        self.seen += n;
        self.skipped.add(Reason::Dropped(why), n);
    }

    /// Requests selected but not sent, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.skipped.dropped_total()
    }

    pub fn late(&mut self, by: Duration) {
        let h = self.lateness.get_or_insert_with(histogram);
        Side::latency(h, by.as_micros() as u64);
    }

    /// [`Stats::replayed`] for a request captured at `ns` (capture time), which also goes
    /// on the timeline.
    pub fn replayed_at(
        &mut self,
        ns: i64,
        route: &str,
        production: Option<(u16, i64, Option<i64>)>,
        shadow: Result<Answer, Failure>,
        timeout: Duration,
    ) {
        let p = production.map(|(_, ttfb, _)| ttfb.max(0) as u64);
        let s = shadow.as_ref().ok().map(|a| a.ttfb.as_micros() as u64);
        self.timeline.record(ns, p, s);
        self.replayed(route, production, shadow, timeout);
    }

    /// One replayed request: the production side as captured (status and timings when its
    /// response was captured), the shadow side as answered; a timeout enters the shadow's
    /// histograms at the time it fired.
    pub fn replayed(
        &mut self,
        route: &str,
        production: Option<(u16, i64, Option<i64>)>,
        shadow: Result<Answer, Failure>,
        timeout: Duration,
    ) {
        self.seen += 1;
        self.replayed += 1;
        let (route_stats, kept, evicted) = self.routes.slot(route);
        let key = if kept { route } else { OTHER };
        for side in [&mut self.production, &mut route_stats.production] {
            if let Some((status, ttfb, total)) = production {
                side.requests += 1;
                side.status(status);
                Side::latency(&mut side.ttfb, ttfb.max(0) as u64);
                if let Some(t) = total {
                    Side::latency(&mut side.total, t.max(0) as u64);
                }
            }
        }
        for side in [&mut self.shadow, &mut route_stats.shadow] {
            side.requests += 1;
            match shadow {
                Ok(a) => {
                    side.status(a.status);
                    Side::latency(&mut side.ttfb, a.ttfb.as_micros() as u64);
                    if a.body_cut {
                        side.truncated += 1;
                    } else {
                        Side::latency(&mut side.total, a.total.as_micros() as u64);
                    }
                }
                Err(f) => {
                    side.errors.add(f, 1);
                    if f == Failure::Timeout {
                        let us = timeout.as_micros() as u64;
                        Side::latency(&mut side.ttfb, us);
                        Side::latency(&mut side.total, us);
                    }
                }
            }
        }
        if let (Some((p, _, _)), Ok(a)) = (production, shadow) {
            if p != a.status {
                self.mismatch += 1;
                route_stats.mismatch += 1;
                *self
                    .mismatches
                    .entry((key.to_string(), p, a.status))
                    .or_default() += 1;
            }
        }
        if let Some(gone) = evicted {
            self.fold_mismatches(&gone);
        }
        self.trim_mismatches();
    }

    /// Adds a route's figures to the table (a saved report's, another run's): under its own
    /// name if it is kept, else to `other` along with its mismatch kinds.
    pub fn add_route(&mut self, name: &str, r: &Route) {
        let (mine, kept, evicted) = self.routes.slot(name);
        mine.merge(r);
        if let Some(gone) = evicted {
            self.fold_mismatches(&gone);
        }
        if !kept {
            self.fold_mismatches(name);
        }
    }

    /// Moves the mismatch kinds of a route that went to `other` under `other`'s name.
    fn fold_mismatches(&mut self, name: &str) {
        if name == OTHER {
            return;
        }
        let from = (name.to_string(), 0, 0);
        let to = (name.to_string(), u16::MAX, u16::MAX);
        let moved: Vec<_> = self
            .mismatches
            .range(from..=to)
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        for ((_, p, s), n) in moved {
            self.mismatches.remove(&(name.to_string(), p, s));
            *self.mismatches.entry((OTHER.into(), p, s)).or_default() += n;
        }
    }

    /// Keeps the [`MAX_MISMATCH_KINDS`] smallest mismatch keys (the counts in `mismatch`
    /// stay whole).
    fn trim_mismatches(&mut self) {
        while self.mismatches.len() > MAX_MISMATCH_KINDS {
            self.mismatches.pop_last();
        }
    }
}

impl Side {
    fn merge(&mut self, other: &Side) {
        self.requests += other.requests;
        for (a, b) in self.status.iter_mut().zip(other.status) {
            *a += b;
        }
        self.errors.merge(&other.errors);
        self.truncated += other.truncated;
        // Every histogram here grows as needed (saved ones too, once read), so adding cannot
        // fail.
        let _ = self.ttfb.add(&other.ttfb);
        let _ = self.total.add(&other.total);
    }
}

impl Stats {
    /// Adds another run's figures: counts add up and histograms merge losslessly, and the
    /// route table keeps the same routes whatever the order and grouping of merges (see
    /// [`Routes`]), so the merge of two reports equals the report of the combined run.
    pub fn merge(&mut self, other: &Stats) {
        self.seen += other.seen;
        self.replayed += other.replayed;
        self.skipped.merge(&other.skipped);
        self.production.merge(&other.production);
        self.shadow.merge(&other.shadow);
        self.mismatch += other.mismatch;
        for (k, n) in &other.mismatches {
            *self.mismatches.entry(k.clone()).or_default() += n;
        }
        for (name, r) in other.routes.iter() {
            self.add_route(name, r);
        }
        self.trim_mismatches();
        self.shadow_rtt.merge(&other.shadow_rtt);
        self.timeline.merge(&other.timeline);
        match (&mut self.lateness, &other.lateness) {
            (Some(a), Some(b)) => {
                let _ = a.add(b);
            }
            (None, Some(b)) => self.lateness = Some(b.clone()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
