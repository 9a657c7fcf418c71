//! Selection and pacing of captured exchanges for the replay: which exchanges go to the
//! shadow, and when. Exchanges complete in response order; a bounded reorder window puts
//! them back in the order their requests were sent, then each selected one is queued with
//! its intended send time (the captured offset divided by the speed, spaced by `--rate`).
//!
//! Knows nothing of flags: the command passes the speed, the rate and the selection.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::capture::Timestamp;
use crate::http1::Exchange;
use crate::replay::engine::{Engine, Job};
use crate::replay::sample::Sampler;
use crate::replay::select::{Selection, Skip};
use crate::replay::stats::Stats;
use crate::replay::target::{Guard, ProductionTarget};

/// How fast requests are sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// The recorded inter-arrival times divided by this factor.
    Factor(f64),
    /// As fast as the concurrency cap allows.
    Max,
}

/// (exchanges complete in response order; a request whose response was slow comes late).
const REORDER_NS: i64 = 2_000_000_000;
/// Exchanges held for reordering at most.
const REORDER_MAX: usize = 10_000;
/// Bytes of exchanges (request bodies above all, up to 1 MiB each) held for reordering at
/// most: 10,000 exchanges could otherwise hold gigabytes.
const REORDER_BYTES: usize = 64 << 20;

/// Exchanges in the order of their requests' first bytes, within a bounded window.
#[derive(Default)]
struct Reorder {
    heap: BinaryHeap<Reverse<Held>>,
    newest: Option<Timestamp>,
    seq: u64,
    /// What the held exchanges take ([`Exchange::heap_bytes`]).
    bytes: usize,
}

/// An exchange held: its request's first byte, its arrival number (ties keep arrival order)
/// and its [`Exchange::heap_bytes`], measured once.
struct Held(Timestamp, u64, Box<Exchange>, usize);

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(o.0, o.1))
    }
}

impl Reorder {
    fn push(&mut self, ex: Box<Exchange>) {
        let ts = ex.request.first_ts;
        self.newest = Some(self.newest.map_or(ts, |n| n.max(ts)));
        self.seq += 1;
        let bytes = ex.heap_bytes();
        self.bytes += bytes;
        self.heap.push(Reverse(Held(ts, self.seq, ex, bytes)));
    }

    /// The oldest exchange, once nothing older can still arrive.
    fn pop_ready(&mut self) -> Option<Box<Exchange>> {
        let Reverse(Held(ts, ..)) = self.heap.peek()?;
        let newest = self.newest?;
        if self.heap.len() > REORDER_MAX
            || self.bytes > REORDER_BYTES
            || newest.nanos().saturating_sub(ts.nanos()) > REORDER_NS
        {
            return self.pop_any();
        }
        None
    }

    fn pop_any(&mut self) -> Option<Box<Exchange>> {
        let Reverse(Held(_, _, ex, bytes)) = self.heap.pop()?;
        self.bytes -= bytes;
        Some(ex)
    }
}

/// A paced schedule starts this long after its first request is read: the replay threads,
/// idle until then, take a while to wake (on a virtual machine up to a few milliseconds), and
/// the first requests would be that late.
const SCHEDULE_LEAD: Duration = Duration::from_millis(5);

/// Selection and pacing: which exchanges go, and when.
pub struct Scheduler<'a> {
    selection: &'a Selection,
    speed: Speed,
    window: Reorder,
    target: ProductionTarget,
    first_ts: Option<Timestamp>,
    /// With `--rate`: the time between two sends, and the earliest the next may leave.
    spacing: Option<Duration>,
    next_slot: Duration,
    /// `--sample`: drawn after every rule.
    sampler: Sampler,
    skipped: Stats,
}

impl<'a> Scheduler<'a> {
    /// A schedule at `speed`, at most `rate` requests per second, of the exchanges
    /// `selection` keeps and `target` lets go to the shadow.
    pub fn new(
        selection: &'a Selection,
        speed: Speed,
        rate: Option<f64>,
        target: ProductionTarget,
    ) -> Self {
        Scheduler {
            selection,
            speed,
            window: Reorder::default(),
            target,
            first_ts: None,
            spacing: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            next_slot: Duration::ZERO,
            sampler: selection.sampler(),
            skipped: Stats::default(),
        }
    }

    /// The guard that watches the capture for a production target, and where it saw one.
    pub fn watch(&self) -> (Guard, Rc<Cell<Option<SocketAddr>>>) {
        self.target.watch()
    }

    /// Takes a completed exchange: held in the reorder window, and what is ready is offered.
    pub fn take(&mut self, ex: Box<Exchange>, engine: &mut Engine) {
        if self.speed == Speed::Max {
            // No schedule to keep: requests go as their exchanges complete (a connection's
            // still in order), without holding them for the reorder window.
            self.offer(ex, engine);
            return;
        }
        self.window.push(ex);
        while let Some(ex) = self.window.pop_ready() {
            self.offer(ex, engine);
        }
    }

    /// Counts `n` requests the capture side never emitted, for `why`.
    pub fn lost(&mut self, why: Skip, n: u64) {
        self.skipped.skip_many(why, n);
    }

    /// Offers what the window still holds; the counts of the requests not sent.
    pub fn finish(mut self, engine: &mut Engine) -> Stats {
        while let Some(ex) = self.window.pop_any() {
            self.offer(ex, engine);
        }
        self.skipped
    }

    fn offer(&mut self, ex: Box<Exchange>, engine: &mut Engine) {
        if let Err(why) = self.target.select(self.selection, &ex) {
            self.skipped.skip(why);
            return;
        }
        if !self.sampler.keep(&ex) {
            self.skipped.skip(Skip::Sample);
            return;
        }
        if engine.stopping() {
            self.skipped
                .dropped(crate::replay::stats::Dropped::Shutdown);
            return;
        }
        engine.push(Job {
            at: self.send_time(ex.request.first_ts),
            ex,
        });
    }

    /// When a request captured at `ts` is to leave, as an offset from when the first one was
    /// read: [`SCHEDULE_LEAD`], plus its captured offset divided by the speed, then held back
    /// as needed to keep under `--rate` (requests evenly spaced, no bursts). None: at once.
    fn send_time(&mut self, ts: Timestamp) -> Option<Duration> {
        let t0 = *self.first_ts.get_or_insert(ts);
        let at = match self.speed {
            Speed::Max => None,
            Speed::Factor(f) => {
                let offset_us = ts.micros_since(t0).max(0) as f64 / f;
                Some(Duration::from_micros(offset_us as u64))
            }
        };
        let at = match self.spacing {
            None => at,
            Some(spacing) => {
                let at = at.unwrap_or(Duration::ZERO).max(self.next_slot);
                self.next_slot = at.saturating_add(spacing);
                Some(at)
            }
        };
        at.map(|at| at + SCHEDULE_LEAD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::target::LocalAddrs;
    use crate::settings::ReplaySettings;
    use clap::Parser;

    /// The settings of `shadowtap replay x.pcap --shadow http://127.0.0.1:9 FLAGS`.
    fn settings(flags: &[&str]) -> ReplaySettings {
        let args = [
            "shadowtap",
            "replay",
            "x.pcap",
            "--shadow",
            "http://127.0.0.1:9",
        ];
        let cli = crate::cli::Cli::try_parse_from(args.iter().chain(flags)).unwrap();
        let crate::cli::Command::Replay(args) = cli.command else {
            panic!("not replay");
        };
        ReplaySettings::from_args(*args).unwrap()
    }

    /// The scheduler the command builds from `settings` (the shadow is an address, so
    /// nothing is looked up).
    fn scheduler(settings: &ReplaySettings) -> Scheduler<'_> {
        let shadow = crate::replay::target::resolve(&settings.shadow).unwrap();
        let target = ProductionTarget::new(
            shadow.target,
            LocalAddrs::of_this_machine(),
            settings.allow_production_target,
        );
        Scheduler::new(&settings.selection, settings.speed, settings.rate, target)
    }

    /// Send times (ms) of requests captured at these times (ms).
    fn send_times(flags: &[&str], captured_ms: &[i64]) -> Vec<Option<u128>> {
        let settings = settings(flags);
        let mut scheduler = scheduler(&settings);
        captured_ms
            .iter()
            .map(|&ms| {
                let at = scheduler.send_time(Timestamp::from_nanos(1_000_000_000 + ms * 1_000_000));
                at.map(|d| (d - SCHEDULE_LEAD).as_millis())
            })
            .collect()
    }

    #[test]
    fn send_times_follow_the_capture_divided_by_the_speed() {
        // A paced schedule starts SCHEDULE_LEAD after the first request was read (the
        // helper takes it off the others).
        let settings = settings(&[]);
        let mut scheduler = scheduler(&settings);
        assert_eq!(
            scheduler.send_time(Timestamp::from_nanos(7)),
            Some(SCHEDULE_LEAD)
        );
        let captured = [0, 10, 10, 40, 1000];
        let at = |ms: &[u128]| ms.iter().map(|&m| Some(m)).collect::<Vec<_>>();
        assert_eq!(send_times(&[], &captured), at(&[0, 10, 10, 40, 1000]));
        assert_eq!(
            send_times(&["--speed", "10"], &captured),
            at(&[0, 1, 1, 4, 100])
        );
        assert_eq!(send_times(&["--speed", "max"], &captured), [None; 5]);
    }

    #[test]
    fn the_rate_cap_spaces_requests_evenly_and_never_sends_early() {
        let captured = [0, 10, 10, 40, 1000];
        let at = |ms: &[u128]| ms.iter().map(|&m| Some(m)).collect::<Vec<_>>();
        // 50 per second: one every 20 ms. A request due later than its turn keeps its time.
        assert_eq!(
            send_times(&["--rate", "50"], &captured),
            at(&[0, 20, 40, 60, 1000])
        );
        // Unpaced, the cap alone sets the schedule.
        assert_eq!(
            send_times(&["--speed", "max", "--rate", "50"], &captured),
            at(&[0, 20, 40, 60, 80])
        );
        assert_eq!(
            send_times(&["--speed", "max", "--rate", "0.5"], &[0, 0, 0]),
            at(&[0, 2000, 4000])
        );
    }

    #[test]
    fn the_reorder_window_is_bounded_in_bytes_too() {
        let mut window = Reorder::default();
        let mut released = 0;
        // Requests with 1 MiB bodies, all at the same capture time: the time window never
        // passes, the count bound is far, the byte bound decides.
        for _ in 0..100 {
            let ex = crate::replay::test_exchange("POST", "/upload", &[], &vec![b'x'; 1 << 20]);
            window.push(Box::new(ex));
            while window.pop_ready().is_some() {
                released += 1;
            }
            assert!(
                window.bytes <= REORDER_BYTES + (1 << 20) + 4096,
                "{}",
                window.bytes
            );
        }
        assert!(released >= 100 - REORDER_BYTES / (1 << 20), "{released}");
        while window.pop_any().is_some() {}
        assert_eq!(window.bytes, 0, "every byte counted in is counted out");
    }
}
