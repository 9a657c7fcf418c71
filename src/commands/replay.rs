//! `shadowtap replay`: capture files to exchanges (on a reader thread), selection, paced
//! dispatch to the shadow under a concurrency cap, and the side-by-side report.
//!
//! The reader thread hands exchanges over a bounded queue and blocks when it is full: for
//! files nothing is dropped (RELIABILITY.md's opening list). Requests of one captured
//! connection are sent in their captured order; each request has an intended send time, and
//! its lateness against it is recorded apart from the shadow's latency, so a slow shadow
//! cannot hide latency (no coordinated omission).

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use crate::capture::{CaptureReader, MergedReader, Timestamp};
use crate::cli::Progress;
use crate::commands::outputs::Outputs;
use crate::commands::{verdict, Signal, Status};
use crate::http1::{Exchange, Tracker};
use crate::pipeline::{self, Chain, Filter, Notes};
use crate::replay::engine::{self, Engine, Job};
use crate::replay::select::Skip;
use crate::replay::stats::Stats;
use crate::replay::target::{Discard, Guard, LocalAddrs, ProductionTarget, Shadow, Watch};
use crate::report::replay as render;
use crate::settings::{Bundled, ReplaySettings, Speed};

/// Batches waiting for each replay shard (16 x 64 = 1,024 exchanges).
const QUEUE: usize = 16;

/// Bytes of capture read between two updates of the progress counter.
const PROGRESS_BYTES: u64 = 1 << 20;
/// A classic pcap record header, counted with each frame for progress against file sizes.
const PCAP_RECORD_HEADER: u64 = 16;
/// How often the progress line is redrawn on a terminal, and printed otherwise.
const PROGRESS_TERMINAL: Duration = Duration::from_millis(250);
const PROGRESS_PLAIN: Duration = Duration::from_secs(10);

/// Draws progress on stderr until `done` says the run is over: redrawn in place on a
/// terminal, a plain line now and then otherwise.
fn progress(
    mode: Progress,
    live: &engine::Progress,
    read: &AtomicU64,
    total: u64,
    done: &std::sync::mpsc::Receiver<()>,
) {
    let terminal = match mode {
        Progress::Never => return,
        Progress::Always => true,
        Progress::Auto => std::io::stderr().is_terminal(),
    };
    let every = if terminal {
        PROGRESS_TERMINAL
    } else {
        PROGRESS_PLAIN
    };
    let start = Instant::now();
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(every) {
        let sent = live.sent();
        let errors = live.errors();
        let in_flight = live.in_flight();
        let done_bytes = read.load(Ordering::Relaxed);
        let elapsed = start.elapsed().as_secs_f64();
        let eta = if done_bytes > 0 && total > done_bytes {
            format!(
                "{:.0}s",
                elapsed * (total - done_bytes) as f64 / done_bytes as f64
            )
        } else {
            "-".into()
        };
        let line = format!(
            "sent {sent}  in flight {in_flight}  errors {errors}  read {:.0}%  eta {eta}",
            100.0 * done_bytes as f64 / total.max(1) as f64
        );
        if terminal {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("shadowtap: {line}");
        }
    }
    if terminal {
        eprint!("\r\x1b[2K");
    }
}

/// Capture time an exchange may be held to put requests back in the order they were sent
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

/// What the reader thread gives back: the skipped requests' counts, the one-line errors
/// of files that could not be opened, and what the capture side had to say.
struct Fed {
    skipped: Stats,
    open_errors: Vec<String>,
    notes: Notes,
}

/// Reads every file, puts exchanges back in request order, selects them, and queues each
/// with its intended send time. Runs on its own thread; blocks while the engine is full.
fn feed(
    settings: &ReplaySettings,
    shadow: &Shadow,
    mut filter: Filter,
    engine: &mut Engine,
    read: &AtomicU64,
) -> Fed {
    let mut open_errors = Vec::new();
    let mut readers = Vec::new();
    for path in &settings.files {
        match open_capture(settings, path) {
            Ok(r) => readers.push(r),
            Err(e) => open_errors.push(e.to_string()),
        }
    }
    let mut frames = MergedReader::new(readers);
    let mut scheduler = Scheduler::new(settings, shadow);
    let (guard, opened) = scheduler.target.watch();
    let stopping = engine.shutdown();
    let tracker = Tracker::new(settings.limits.http1.clone(), |ex| {
        let ex = Box::new(ex);
        if scheduler.settings.speed == Speed::Max {
            // No schedule to keep: requests go as their exchanges complete (a connection's
            // still in order), without holding them for the reorder window.
            scheduler.offer(ex, engine);
            return;
        }
        scheduler.window.push(ex);
        while let Some(ex) = scheduler.window.pop_ready() {
            scheduler.offer(ex, engine);
        }
    });
    let limits = &settings.limits;
    let watch = Watch {
        guard: &guard,
        seen: &opened,
    };
    let mut chain = Chain::with_front(
        limits.wire.clone(),
        limits.reassembly.clone(),
        tracker,
        watch,
    );
    let mut since_update = 0u64;
    pipeline::drive(&mut frames, &mut filter, &mut chain, |frame| {
        // Stopped by a signal: what was read is still accounted for below (whatever is
        // selected but not sent is `dropped/shutdown`), the rest of the capture is not read.
        if stopping.stopping() {
            return false;
        }
        since_update += PCAP_RECORD_HEADER + frame.data.len() as u64;
        if since_update > PROGRESS_BYTES {
            read.fetch_add(since_update, Ordering::Relaxed);
            since_update = 0;
        }
        true
    });
    read.fetch_add(since_update, Ordering::Relaxed);
    chain.finish();
    let notes = Notes::collect(&mut frames, &mut chain, &filter);
    // Requests the tracker saw but never emitted are accounted for with the rest.
    let lost = chain.sink().counters().lost();
    drop(chain);
    for (why, n) in lost {
        scheduler.skipped.skip_many(Skip::from(why), n);
    }
    while let Some(ex) = scheduler.window.pop_any() {
        scheduler.offer(ex, engine);
    }
    Fed {
        skipped: scheduler.skipped,
        open_errors,
        notes,
    }
}

/// Opens one capture: `path`, or the bundled capture held in memory (`demo`), which is read
/// from there, so that nothing is written to a file first.
fn open_capture(
    settings: &ReplaySettings,
    path: &std::path::Path,
) -> Result<CaptureReader<Box<dyn std::io::Read + Send>>, crate::capture::OpenError> {
    let limits = settings.limits.capture.clone();
    match settings.bundled {
        Some(Bundled(bytes)) => {
            CaptureReader::with_limits(Box::new(bytes), path.display().to_string(), limits)
        }
        None => CaptureReader::open_with_limits(path, limits),
    }
}

/// The pass over the capture files made before anything is sent: the first file, and the
/// server in it, that is a target. Standard input cannot be read twice: its traffic is
/// checked as it is replayed (stop at first sight). Files that cannot be read are left to
/// the replay itself to report.
fn production_in_files(settings: &ReplaySettings, guard: &Guard) -> Option<(PathBuf, SocketAddr)> {
    // Only what can be read twice: a pipe or a terminal would be used up by this pass.
    let rereadable =
        |p: &PathBuf| settings.bundled.is_some() || std::fs::metadata(p).is_ok_and(|m| m.is_file());
    for path in settings.files.iter().filter(|p| rereadable(p)) {
        let Ok(mut reader) = open_capture(settings, path) else {
            continue;
        };
        let seen = Cell::new(None);
        let limits = &settings.limits;
        let watch = Watch { guard, seen: &seen };
        let mut chain = Chain::with_front(
            limits.wire.clone(),
            limits.reassembly.clone(),
            Discard,
            watch,
        );
        // Every connection is looked at, whatever `--port` and `--bpf` keep.
        pipeline::drive(&mut reader, &mut Filter::none(), &mut chain, |_| {
            seen.get().is_none()
        });
        if let Some(server) = seen.get() {
            return Some((path.clone(), server));
        }
    }
    None
}

/// A paced schedule starts this long after its first request is read: the replay threads,
/// idle until then, take a while to wake (on a virtual machine up to a few milliseconds), and
/// the first requests would be that late.
const SCHEDULE_LEAD: Duration = Duration::from_millis(5);

/// Selection and pacing: which exchanges go, and when.
struct Scheduler<'a> {
    settings: &'a ReplaySettings,
    window: Reorder,
    target: ProductionTarget,
    first_ts: Option<Timestamp>,
    /// With `--rate`: the time between two sends, and the earliest the next may leave.
    spacing: Option<Duration>,
    next_slot: Duration,
    skipped: Stats,
}

impl<'a> Scheduler<'a> {
    fn new(settings: &'a ReplaySettings, shadow: &Shadow) -> Self {
        Scheduler {
            settings,
            window: Reorder::default(),
            target: ProductionTarget::new(
                shadow.target.clone(),
                LocalAddrs::of_this_machine(),
                settings.allow_production_target,
            ),
            first_ts: None,
            spacing: settings.rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            next_slot: Duration::ZERO,
            skipped: Stats::default(),
        }
    }

    fn offer(&mut self, ex: Box<Exchange>, engine: &mut Engine) {
        let settings = self.settings;
        if let Err(why) = self.target.select(&settings.selection, &ex) {
            self.skipped.skip(why);
            return;
        }
        if engine.stopping() {
            self.skipped.dropped("shutdown");
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
        let at = match self.settings.speed {
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

/// The pacing, as the report's title line gives it: `speed 1x`, `speed max, at most 500/s`.
fn pacing(settings: &ReplaySettings) -> String {
    let speed = match settings.speed {
        Speed::Max => "speed max".to_string(),
        Speed::Factor(f) => format!("speed {f}x"),
    };
    match settings.rate {
        Some(rate) => format!("{speed}, at most {rate}/s"),
        None => speed,
    }
}

/// Whether no request has a send time to keep: `--speed max` without `--rate`.
fn unpaced(settings: &ReplaySettings) -> bool {
    settings.speed == Speed::Max && settings.rate.is_none()
}

/// Runs `replay` to `shadow` (resolved from `settings.shadow`): the report goes to `out`,
/// errors to `err`.
pub fn run(
    settings: &ReplaySettings,
    shadow: &Shadow,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Status> {
    // A BPF expression that does not compile is a usage error, before anything is read.
    let filter = match Filter::new(&settings.filter) {
        Ok(f) => f,
        Err(e) => {
            writeln!(err, "shadowtap: error: {e}")?;
            return Ok(Status::BadInput);
        }
    };
    if let Some(refusal) = refuse_production_target(settings, shadow) {
        writeln!(err, "shadowtap: error: {refusal}")?;
        return Ok(Status::BadInput);
    }
    // Outputs are created before anything is sent: a path that is refused or cannot be
    // created stops the run at once (exit 2), not after it.
    let outputs = match Outputs::create(settings) {
        Ok(o) => o,
        Err(e) => {
            writeln!(err, "shadowtap: error: {e}")?;
            return Ok(Status::BadInput);
        }
    };
    let log = outputs.log.clone();
    let mut engine = Engine::start(engine::Config {
        shadow: shadow.addr,
        tls: shadow.tls.clone(),
        concurrency: settings.concurrency,
        timeout: settings.timeout,
        rewrites: settings.rewrites.clone(),
        log,
        queue: QUEUE,
        waiting: QUEUE * engine::BATCH,
        shards: None,
        unpaced: unpaced(settings),
    })?;
    let total: u64 = match settings.bundled {
        Some(Bundled(bytes)) => bytes.len() as u64,
        None => settings
            .files
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum(),
    };
    // SIGINT or SIGTERM: nothing more is sent, what is in flight has --drain-timeout; a
    // second signal gives that up too.
    let shutdown = engine.shutdown();
    let drain = settings.drain_timeout;
    let interrupts = super::Interrupts::watch(move |_, n| {
        if n == 1 {
            shutdown.stop(drain);
        } else {
            shutdown.cut();
        }
    })?;
    let live = engine.progress.clone();
    let read = AtomicU64::new(0);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    // The reader thread feeds the engine and then waits for it: progress is drawn until
    // the last exchange is done.
    let (fed, finished) = std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("shadowtap-read".into())
            .spawn_scoped(scope, || {
                let fed = feed(settings, shadow, filter, &mut engine, &read);
                let finished = engine.finish();
                drop(done_tx);
                (fed, finished)
            })
            .context("starting the reader thread")?;
        progress(settings.progress, &live, &read, total, &done_rx);
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("the capture reader stopped unexpectedly"))
    })?;
    let (mut stats, tls_error) = finished?;
    let interrupted = interrupts.first();
    drop(interrupts);
    stats.merge(&fed.skipped);
    // The capture's warnings and errors, as `inspect` prints them.
    for e in &fed.open_errors {
        writeln!(err, "shadowtap: error: {e}")?;
    }
    fed.notes.write_warnings(err)?;
    fed.notes.write_errors(err)?;
    let errors: Vec<&String> = fed.open_errors.iter().chain(&fed.notes.errors).collect();
    if let Some(e) = tls_error {
        writeln!(err, "shadowtap: warning: TLS to the shadow failed ({e}); those requests count as connect errors")?;
    }
    verdict::warn_production_target(&stats, shadow.addr, err)?;
    let mut report = render::json(&stats);
    if let Some(signal) = interrupted {
        report["interrupted"] = json!(signal.name());
    }
    let log = outputs.log_summary();
    if let Some(log) = &log {
        report["outputs"] = json!({"log": log.json("lines")});
    }
    let verdicts = verdict::fail_if(settings, &mut report);
    let mut status = verdict::outcome(&stats, settings, &verdicts, err)?;
    if !errors.is_empty() {
        status = Status::worst(status, Status::BadInput);
    }
    if let Some(signal) = interrupted {
        status = Status::worst(status, Status::Interrupted(signal));
    }
    // The side outputs are written even when stdout is not (`| head`, a full disk).
    let lines: Vec<String> = log.iter().map(|l| l.text("log", "lines")).collect();
    let printed = verdict::print_report(
        settings.format,
        &report,
        &stats,
        &title(settings, interrupted),
        &lines,
        &verdicts,
        out,
    );
    // The report is out; now the outputs that failed, if any, say so (exit 1).
    let written = outputs.commit_report(&report, log.as_ref(), err)?;
    printed.context("writing the report to standard output")?;
    if !written {
        status = Status::worst(status, Status::Failure);
    }
    Ok(status)
}

/// The title line of the report: the inputs, the shadow, the pacing, and an interruption.
fn title(settings: &ReplaySettings, interrupted: Option<Signal>) -> String {
    let files: Vec<String> = settings
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut title = format!(
        "shadowtap replay  {} -> http://{}   {}",
        settings.title.clone().unwrap_or_else(|| files.join(" ")),
        settings.shadow_authority,
        pacing(settings)
    );
    if let Some(signal) = interrupted {
        title.push_str(&format!("   INTERRUPTED by {}", signal.name()));
    }
    title
}

/// Why the replay must not start: a target is a server in the capture files (decided before
/// anything is sent, DESIGN.md "Safety").
fn refuse_production_target(settings: &ReplaySettings, shadow: &Shadow) -> Option<String> {
    if settings.allow_production_target {
        return None;
    }
    let guard = Guard::new(
        vec![shadow.target.clone()],
        LocalAddrs::of_this_machine(),
        false,
    );
    let (path, server) = production_in_files(settings, &guard)?;
    Some(format!(
        "--shadow {} is {server}, a server in {} (production): replaying would send production its own traffic again; --allow-production-target sends it anyway",
        shadow.target.url,
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The settings of `shadowtap replay x.pcap --shadow http://127.0.0.1:9 FLAGS`.
    fn parse(flags: &[&str]) -> anyhow::Result<ReplaySettings> {
        let args = [
            "shadowtap",
            "replay",
            "x.pcap",
            "--shadow",
            "http://127.0.0.1:9",
        ];
        let cli = crate::cli::Cli::try_parse_from(args.iter().chain(flags))?;
        let crate::cli::Command::Replay(args) = cli.command else {
            anyhow::bail!("not replay");
        };
        ReplaySettings::from_args(*args)
    }

    fn settings(flags: &[&str]) -> ReplaySettings {
        parse(flags).unwrap()
    }

    /// The shadow of `settings` (an address, so nothing is looked up).
    fn shadow(settings: &ReplaySettings) -> Shadow {
        crate::replay::target::resolve(&settings.shadow).unwrap()
    }

    /// Send times (ms) of requests captured at these times (ms).
    fn send_times(flags: &[&str], captured_ms: &[i64]) -> Vec<Option<u128>> {
        let settings = settings(flags);
        let mut scheduler = Scheduler::new(&settings, &shadow(&settings));
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
        let mut scheduler = Scheduler::new(&settings, &shadow(&settings));
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
    fn a_rate_that_is_not_a_positive_number_is_refused() {
        for bad in ["0", "-5", "inf", "NaN"] {
            let e = parse(&[&format!("--rate={bad}")]).unwrap_err().to_string();
            assert!(e.contains("--rate"), "{bad}: {e}");
        }
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

    #[test]
    fn the_title_says_how_the_replay_was_paced() {
        assert_eq!(pacing(&settings(&[])), "speed 1x");
        assert_eq!(pacing(&settings(&["--speed", "0.5"])), "speed 0.5x");
        assert_eq!(
            pacing(&settings(&["--speed", "max", "--rate", "500"])),
            "speed max, at most 500/s"
        );
    }

    #[test]
    fn only_a_replay_without_send_times_is_unpaced() {
        assert!(unpaced(&settings(&["--speed", "max"])));
        assert!(!unpaced(&settings(&["--speed", "max", "--rate", "10"])));
        assert!(!unpaced(&settings(&[])));
    }
}
