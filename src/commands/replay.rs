//! `shadowtap replay`: capture files to exchanges (on a reader thread), selection, paced
//! dispatch to the shadow under a concurrency cap, and the side-by-side report.
//!
//! The reader thread hands exchanges over a bounded queue and blocks when it is full: for
//! files nothing is dropped (RELIABILITY.md's opening list). Requests of one captured
//! connection are sent in their captured order; each request has an intended send time, and
//! its lateness against it is recorded apart from the shadow's latency, so a slow shadow
//! cannot hide latency (no coordinated omission).

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::capture::{CaptureReader, MergedReader, Timestamp};
use crate::cli::Progress;
use crate::commands::outputs::Outputs;
use crate::commands::{describe, verdict, Signal, Status};
use crate::http1::Tracker;
use crate::pipeline::{self, Chain, Filter, Notes};
use crate::replay::engine::{self, Engine};
use crate::replay::schedule::Scheduler;
use crate::replay::select::Skip;
use crate::replay::stats::Stats;
use crate::replay::target::{Guard, LocalAddrs, ProductionTarget, ServerScan, Shadow, Watch};
use crate::report::model;
use crate::report::replay as render;
use crate::settings::{Bundled, ReplaySettings, Speed};
use crate::wire::Decoder;

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

/// What the reader thread gives back: the skipped requests' counts, the one-line errors
/// of files that could not be opened, and what the capture side had to say.
struct Fed {
    skipped: Stats,
    /// The first and last frame's time.
    captured: Option<(Timestamp, Timestamp)>,
    open_errors: Vec<String>,
    notes: Notes,
}

/// Reads every file, puts exchanges back in request order, selects them, and queues each
/// with its intended send time. Runs on its own thread; blocks while the engine is full.
fn feed(
    settings: &ReplaySettings,
    shadow: &Shadow,
    local: &LocalAddrs,
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
    let target = ProductionTarget::new(
        shadow.target.clone(),
        local.clone(),
        settings.allow_production_target,
    );
    let mut scheduler = Scheduler::new(&settings.selection, settings.speed, settings.rate, target);
    let (guard, opened) = scheduler.watch();
    let stopping = engine.shutdown();
    let tracker = Tracker::new(settings.limits.http1.clone(), |ex| {
        scheduler.take(Box::new(ex), engine)
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
    let mut captured: Option<(Timestamp, Timestamp)> = None;
    pipeline::drive(&mut frames, &mut filter, &mut chain, |frame| {
        let (first, last) = captured.get_or_insert((frame.ts, frame.ts));
        *first = (*first).min(frame.ts);
        *last = (*last).max(frame.ts);
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
        scheduler.lost(Skip::from(why), n);
    }
    Fed {
        skipped: scheduler.finish(engine),
        captured,
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

/// The first file, and the server in it, that is a target; only files that can be read
/// twice (a pipe or a terminal would be used up by this pass).
fn production_in_files(settings: &ReplaySettings, guard: &Guard) -> Option<(PathBuf, SocketAddr)> {
    let rereadable =
        |p: &PathBuf| settings.bundled.is_some() || std::fs::metadata(p).is_ok_and(|m| m.is_file());
    for path in settings.files.iter().filter(|p| rereadable(p)) {
        let Ok(mut reader) = open_capture(settings, path) else {
            continue;
        };
        if let Some(server) = production_in(settings, &mut reader, guard) {
            return Some((path.clone(), server));
        }
    }
    None
}

/// The first server in one capture that is a target, looking at every connection whatever
/// `--port` and `--bpf` keep.
fn production_in<R: std::io::Read>(
    settings: &ReplaySettings,
    reader: &mut CaptureReader<R>,
    guard: &Guard,
) -> Option<SocketAddr> {
    let mut decoder = Decoder::new(settings.limits.wire.clone());
    let mut scan = ServerScan::default();
    while let Ok(Some(frame)) = reader.next_frame() {
        // Most segments are on no target's port: read where the ports are plain to see,
        // they are not decoded at all.
        if let Some((a, b)) = crate::wire::peek_tcp_ports(&frame) {
            if !guard.is_target_port(a) && !guard.is_target_port(b) {
                continue;
            }
        }
        let found = decoder
            .decode(&frame)
            .and_then(|segment| scan.segment(guard, &segment));
        if found.is_some() {
            return found;
        }
    }
    None
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
    // This machine's addresses, read once: the pass over the files and the replay compare
    // with the same ones.
    let started = describe::now();
    let local = LocalAddrs::of_this_machine();
    // The inputs' hashes, for the report, on a thread of their own that yields to the
    // replay: started now, they overlap the pass over the files, and the first request
    // does not wait for them.
    let hashing = describe::Hashing::start(&settings.files, settings.bundled.map(|b| b.0));
    if let Some(refusal) = refusal(settings, shadow, &local) {
        writeln!(err, "shadowtap: error: {refusal}")?;
        let _ = hashing.finish(true);
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
        order: settings.order,
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
                let fed = feed(settings, shadow, &local, filter, &mut engine, &read);
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
    let (mut stats, trouble) = finished?;
    stats.shadow_rtt = trouble.rtt;
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
    verdict::warn_production_target(&stats, shadow.addr, err)?;
    let mut report = render::report_with(&stats, &settings.thresholds);
    let captured = fed.captured.map(|(first, last)| model::Span {
        start: describe::seconds(first),
        end: describe::seconds(last),
    });
    let inputs = hashing.finish(interrupted.is_some());
    report.runs = vec![describe::run("replay", settings, inputs, captured, started)];
    report.interrupted = interrupted.map(|signal| signal.name().to_string());
    let log = outputs.log_summary();
    if let Some(log) = &log {
        report.outputs = Some(model::Outputs {
            log: Some(log.into()),
            save_pcap: None,
        });
    }
    let verdicts = verdict::fail_if(settings, &mut report);
    let mut status = verdict::outcome(&stats, settings, &trouble, &verdicts, err)?;
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

/// Why the replay must not start: a target is a server in the capture files (decided in a
/// pass over the files before anything is sent, DESIGN.md "Safety"; not under
/// `--allow-production-target`).
fn refusal(settings: &ReplaySettings, shadow: &Shadow, local: &LocalAddrs) -> Option<String> {
    if settings.allow_production_target {
        return None;
    }
    let guard = Guard::new(vec![shadow.target.clone()], local.clone(), false);
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

    #[test]
    fn a_rate_that_is_not_a_positive_number_is_refused() {
        for bad in ["0", "-5", "inf", "NaN"] {
            let e = parse(&[&format!("--rate={bad}")]).unwrap_err().to_string();
            assert!(e.contains("--rate"), "{bad}: {e}");
        }
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
