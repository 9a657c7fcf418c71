//! Production and shadow statistics side by side: status classes, transport errors and
//! HdrHistogram latencies (1 µs to 1 hour, 3 significant digits), overall and per route, plus
//! the accounting of every request seen (DESIGN.md "What is measured, exactly").

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::client::{Answer, Failure};
use super::select::Skip;

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
    pub errors: BTreeMap<String, u64>,
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
            errors: BTreeMap::new(),
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
        self.errors
            .iter()
            .filter(|(kind, _)| !is_ours(kind))
            .map(|(_, n)| n)
            .sum()
    }

    /// (5xx + transport errors but `shutdown`) / requests, 0 without requests.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        (self.status[5] + self.blamed_errors()) as f64 / self.requests as f64
    }
}

/// Error kinds caused by this run, not by the shadow: kept in `shadow.errors` to be seen, left
/// out of `error_rate` and of the `shadow.errors` total `--fail-if` compares.
pub fn is_ours(kind: &str) -> bool {
    kind == Failure::Shutdown.name()
}

#[derive(Clone, Default)]
pub struct Route {
    pub production: Side,
    pub shadow: Side,
    pub mismatch: u64,
}

impl Route {
    fn merge(&mut self, other: &Route) {
        self.production.merge(&other.production);
        self.shadow.merge(&other.shadow);
        self.mismatch += other.mismatch;
    }
}

/// The route table: the [`MAX_ROUTES`] routes whose names sort first (byte order) among all
/// the routes seen, each with its own figures, and [`OTHER`], which holds every other route's
/// requests with exact counts and merged histograms.
///
/// Kept by name, not by arrival or by traffic, because the kept set must be decided the same
/// way whatever the order requests finish in, the grouping of shards, or the order reports
/// are merged in, and the same way on one node as on the combined data. A route among the
/// first `MAX_ROUTES` names of the combined data is among the first of every part holding
/// it, so no part ever folds it into `other`: capping each node and then merging gives
/// exactly the table of the combined run, in any order and grouping. Keeping the busiest
/// routes cannot do that in bounded memory: a route just under the cut on every node can be
/// over it once the nodes are added up, but its requests already went to `other` on each.
#[derive(Clone, Default)]
pub struct Routes {
    named: BTreeMap<String, Route>,
    other: Option<Route>,
}

impl Routes {
    /// Entries in the table, `other` included (at most `MAX_ROUTES + 1`).
    pub fn len(&self) -> usize {
        self.named.len() + usize::from(self.other.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kept routes in name order, then `other` if any route went there.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Route)> {
        self.named
            .iter()
            .map(|(name, r)| (name.as_str(), r))
            .chain(self.other.iter().map(|r| (OTHER, r)))
    }

    pub fn get(&self, name: &str) -> Option<&Route> {
        if name == OTHER {
            self.other.as_ref()
        } else {
            self.named.get(name)
        }
    }

    /// The entry `name`'s figures go to, whether it is `name`'s own, and the route pushed
    /// into `other` to make room for it, if one was (the caller moves what else is keyed by
    /// that name). Two lookups for a known route; a new one costs at most one eviction.
    fn slot(&mut self, name: &str) -> (&mut Route, bool, Option<String>) {
        let mut evicted = None;
        let kept =
            name != OTHER && (self.named.contains_key(name) || self.admit(name, &mut evicted));
        let entry = match self.named.get_mut(name) {
            Some(r) if kept => r,
            _ => self.other.get_or_insert_with(Route::default),
        };
        (entry, kept, evicted)
    }

    /// Adds a route not in the table if it belongs there: there is room, or it sorts before
    /// the last kept name, which then goes to `other` (its name into `evicted`).
    fn admit(&mut self, name: &str, evicted: &mut Option<String>) -> bool {
        if self.named.len() >= MAX_ROUTES {
            match self.named.last_key_value() {
                Some((last, _)) if name < last.as_str() => {}
                _ => return false,
            }
            if let Some((gone, r)) = self.named.pop_last() {
                self.other.get_or_insert_with(Route::default).merge(&r);
                *evicted = Some(gone);
            }
        }
        self.named.insert(name.to_string(), Route::default());
        true
    }
}

#[cfg(test)]
impl std::ops::Index<&str> for Routes {
    type Output = Route;

    fn index(&self, name: &str) -> &Route {
        self.get(name).expect("route in the table")
    }
}

/// Everything a replay report holds.
#[derive(Clone, Default)]
pub struct Stats {
    pub seen: u64,
    pub replayed: u64,
    /// Requests not replayed, by category (`incomplete`, `filtered`, `dropped`) and reason.
    pub skipped: BTreeMap<(String, String), u64>,
    pub production: Side,
    pub shadow: Side,
    pub mismatch: u64,
    /// (route, production status, shadow status) -> count.
    pub mismatches: BTreeMap<(String, u16, u16), u64>,
    pub routes: Routes,
    /// Actual minus intended send time, µs (schedule lateness).
    pub lateness: Option<Histogram<u64>>,
}

impl Stats {
    pub fn skip(&mut self, why: Skip) {
        self.seen += 1;
        *self
            .skipped
            .entry((why.category().into(), why.name().into()))
            .or_default() += 1;
    }

    /// `n` requests not replayed, all for the same reason (those the HTTP tracker counted
    /// without emitting them).
    pub fn skip_many(&mut self, why: Skip, n: u64) {
        if n == 0 {
            return;
        }
        self.seen += n;
        *self
            .skipped
            .entry((why.category().into(), why.name().into()))
            .or_default() += n;
    }

    pub fn dropped(&mut self, reason: &'static str) {
        self.dropped_many(reason, 1);
    }

    /// `n` requests selected but not sent, all for the same reason.
    pub fn dropped_many(&mut self, reason: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        self.seen += n;
        *self
            .skipped
            .entry(("dropped".into(), reason.into()))
            .or_default() += n;
    }

    /// Requests selected but not sent, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.skipped
            .iter()
            .filter(|((category, _), _)| category == "dropped")
            .map(|(_, n)| n)
            .sum()
    }

    pub fn late(&mut self, by: Duration) {
        let h = self.lateness.get_or_insert_with(histogram);
        Side::latency(h, by.as_micros() as u64);
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
                    *side.errors.entry(f.name().into()).or_default() += 1;
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
        for (k, n) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += n;
        }
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
        for (k, n) in &other.skipped {
            *self.skipped.entry(k.clone()).or_default() += n;
        }
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
        match (&mut self.lateness, &other.lateness) {
            (Some(a), Some(b)) => {
                let _ = a.add(b);
            }
            (None, Some(b)) => self.lateness = Some(b.clone()),
            _ => {}
        }
    }
}

/// A route: the method and the path with its query dropped and ids replaced by `{id}`
/// (numbers, UUIDs, and hex or base64-like tokens of 16+ characters).
pub fn route(method: &str, path: &[u8]) -> String {
    let mut out = String::new();
    route_into(&mut out, method, path);
    out
}

/// [`route`] written into `out` (cleared first), so a caller naming many requests reuses one
/// buffer.
pub fn route_into(out: &mut String, method: &str, path: &[u8]) {
    let path = path.split(|&b| b == b'?').next().unwrap_or(&[]);
    out.clear();
    out.push_str(method);
    out.push(' ');
    for (i, seg) in path.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_id(seg) {
            out.push_str("{id}");
        } else if let Ok(seg) = std::str::from_utf8(seg) {
            out.push_str(seg);
        } else {
            out.push_str(&String::from_utf8_lossy(seg));
        }
    }
}

fn is_id(seg: &[u8]) -> bool {
    if seg.is_empty() {
        return false;
    }
    if seg.iter().all(u8::is_ascii_digit) {
        return true;
    }
    let uuid = seg.len() == 36
        && seg.iter().enumerate().all(|(i, &b)| {
            if [8, 13, 18, 23].contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        });
    let token = seg.len() >= 16
        && seg
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && seg.iter().any(u8::is_ascii_digit);
    uuid || token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_normalised() {
        assert_eq!(
            route("GET", b"/users/123/orders?x=1"),
            "GET /users/{id}/orders"
        );
        assert_eq!(
            route("GET", b"/o/550e8400-e29b-41d4-a716-446655440000"),
            "GET /o/{id}"
        );
        assert_eq!(route("GET", b"/t/a1b2c3d4e5f6a7b8c9d0"), "GET /t/{id}");
        assert_eq!(route("GET", b"/static/app.js"), "GET /static/app.js");
        assert_eq!(route("OPTIONS", b"*"), "OPTIONS *");
    }

    #[test]
    fn a_new_histogram_is_small_and_grows_to_an_hour_at_three_digits() {
        let mut h = histogram();
        let fresh = h.distinct_values();
        assert!(fresh <= 2048, "{fresh} counters before any value");
        Side::latency(&mut h, 250);
        Side::latency(&mut h, 7_200_000_000);
        assert!(h.distinct_values() > fresh);
        assert_eq!(h.value_at_quantile(0.0), 250);
        // Clamped to an hour, recorded within 0.1%.
        let max = h.max();
        assert!((3_600_000_000..3_604_000_000).contains(&max), "{max}");
    }

    #[test]
    fn timeouts_count_as_errors_and_enter_the_histograms() {
        let mut s = Stats::default();
        s.replayed(
            "GET /a",
            Some((200, 1000, Some(2000))),
            Err(Failure::Timeout),
            Duration::from_secs(5),
        );
        assert_eq!(s.shadow.errors.get("timeout"), Some(&1));
        assert_eq!(s.shadow.ttfb.len(), 1);
        assert!(s.shadow.ttfb.max() >= 4_990_000);
        assert_eq!(s.shadow.error_rate(), 1.0);
        assert_eq!(s.production.error_rate(), 0.0);
        assert_eq!(s.mismatch, 0);
    }

    #[test]
    fn requests_cut_by_the_drain_deadline_are_seen_but_not_blamed_on_the_shadow() {
        let mut s = Stats::default();
        let ok = Answer {
            status: 200,
            ttfb: Duration::from_millis(1),
            total: Duration::from_millis(2),
            body_len: 0,
            body_cut: false,
        };
        for shadow in [
            Ok(ok),
            Ok(ok),
            Err(Failure::Timeout),
            Err(Failure::Shutdown),
        ] {
            s.replayed("GET /a", None, shadow, Duration::from_secs(5));
        }
        assert_eq!(s.shadow.errors.get("shutdown"), Some(&1));
        assert_eq!(s.shadow.blamed_errors(), 1);
        assert_eq!(s.shadow.error_rate(), 0.25);
        assert_eq!(s.routes["GET /a"].shadow.error_rate(), 0.25);
    }

    #[test]
    fn status_mismatch_is_counted_per_route() {
        let mut s = Stats::default();
        let ans = Answer {
            status: 500,
            ttfb: Duration::from_millis(1),
            total: Duration::from_millis(2),
            body_len: 0,
            body_cut: false,
        };
        s.replayed(
            "GET /a",
            Some((200, 1000, None)),
            Ok(ans),
            Duration::from_secs(5),
        );
        assert_eq!(s.mismatch, 1);
        assert_eq!(s.routes["GET /a"].mismatch, 1);
        assert_eq!(s.shadow.status[5], 1);
        assert_eq!(s.production.total.len(), 0);
    }

    #[test]
    fn routes_past_the_cap_go_to_other() {
        let mut s = Stats::default();
        for i in 0..MAX_ROUTES + 5 {
            s.replayed(
                &format!("GET /r{i}x"),
                None,
                Err(Failure::Connect),
                Duration::from_secs(1),
            );
        }
        assert_eq!(s.routes.len(), MAX_ROUTES + 1);
        assert_eq!(s.routes["other"].shadow.requests, 5);
    }

    #[test]
    fn the_table_keeps_the_first_names_whatever_order_they_arrive_in() {
        let mismatch = Answer {
            status: 500,
            ttfb: Duration::from_millis(1),
            total: Duration::from_millis(2),
            body_len: 0,
            body_cut: false,
        };
        let mut backwards = Stats::default();
        // The last names first: each later one pushes the last kept route into `other`,
        // its mismatch kinds with it.
        for i in (0..MAX_ROUTES + 5).rev() {
            backwards.replayed(
                &format!("GET /r{i:04}"),
                Some((200, 10, None)),
                Ok(mismatch),
                Duration::from_secs(1),
            );
        }
        assert_eq!(backwards.routes.len(), MAX_ROUTES + 1);
        let names: Vec<&str> = backwards.routes.iter().map(|(n, _)| n).collect();
        assert_eq!(names[0], "GET /r0000");
        assert_eq!(
            names[MAX_ROUTES - 1],
            format!("GET /r{:04}", MAX_ROUTES - 1)
        );
        assert_eq!(names[MAX_ROUTES], OTHER);
        let other = &backwards.routes[OTHER];
        assert_eq!((other.shadow.requests, other.mismatch), (5, 5));
        assert_eq!(backwards.routes[OTHER].shadow.status[5], 5);
        assert_eq!(backwards.mismatches.len(), MAX_ROUTES + 1);
        assert_eq!(backwards.mismatches[&(OTHER.into(), 200, 500)], 5);
        assert!(!backwards
            .mismatches
            .contains_key(&(format!("GET /r{MAX_ROUTES:04}"), 200, 500)));
    }
}
