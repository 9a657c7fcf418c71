//! `shadowtap replay`: capture files to exchanges (on a reader thread), selection, paced
//! dispatch to the shadow under a concurrency cap, and the side-by-side report.
//!
//! The reader thread hands exchanges over a bounded queue and blocks when it is full: for
//! files nothing is dropped (RELIABILITY.md's opening list). Requests of one captured
//! connection are sent in their captured order; each request has an intended send time, and
//! its lateness against it is recorded apart from the shadow's latency, so a slow shadow
//! cannot hide latency (no coordinated omission).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

use crate::capture::{CaptureReader, MergedReader, Timestamp};
use crate::cli::{Progress, ReportFormat};
use crate::commands::Status;
use crate::http1::{Exchange, Tracker};
use crate::reassembly::{FlowId, Reassembler};
use crate::replay::client::{Answer, Failure, Pool};
use crate::replay::gate;
use crate::replay::request;
use crate::replay::select::{path_of, Skip};
use crate::replay::stats::{route, Stats};
use crate::report::redact::redact_target;
use crate::report::replay as render;
use crate::settings::{ReplaySettings, Speed};
use crate::wire::Decoder;

/// Batches waiting between the reader thread and the dispatcher (16 x 64 = 1,024 exchanges).
const QUEUE: usize = 16;

/// Reads every file into `tx`; returns the one-line errors of files that could not be read.
fn read_files(
    settings: &ReplaySettings,
    tx: mpsc::Sender<Vec<Exchange>>,
    read: &AtomicU64,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut readers = Vec::new();
    for path in &settings.files {
        match CaptureReader::open_with_limits(path, settings.limits.capture.clone()) {
            Ok(r) => readers.push(r),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let mut frames = MergedReader::new(readers);
    let mut decoder = Decoder::new(settings.limits.wire.clone());
    let mut reassembler = Reassembler::new(settings.limits.reassembly.clone());
    // Exchanges go over in batches: one wake-up of the other side per batch, not per exchange.
    let mut batch = Vec::with_capacity(BATCH);
    let send = |batch: &mut Vec<Exchange>| {
        // The dispatcher gone means the run is over; nothing to do with the rest.
        let _ = tx.blocking_send(std::mem::replace(batch, Vec::with_capacity(BATCH)));
    };
    let mut tracker = Tracker::new(settings.limits.http1.clone(), |ex| {
        batch.push(ex);
        if batch.len() == BATCH {
            send(&mut batch);
        }
    });
    let mut since_update = 0u64;
    while let Some((_, frame)) = frames.next_frame() {
        since_update += PCAP_RECORD_HEADER + frame.data.len() as u64;
        if since_update > PROGRESS_BYTES {
            read.fetch_add(since_update, Ordering::Relaxed);
            since_update = 0;
        }
        if let Some(segment) = decoder.decode(&frame) {
            reassembler.push(&segment, &mut tracker);
        }
    }
    read.fetch_add(since_update, Ordering::Relaxed);
    reassembler.finish(&mut tracker);
    drop(tracker);
    if !batch.is_empty() {
        send(&mut batch);
    }
    errors.extend(frames.errors().iter().map(|(_, e)| e.to_string()));
    errors
}

/// Exchanges handed from the reader thread to the dispatcher at once.
const BATCH: usize = 64;

/// Bytes of capture read between two updates of the progress counter.
const PROGRESS_BYTES: u64 = 1 << 20;
/// A classic pcap record header, counted with each frame for progress against file sizes.
const PCAP_RECORD_HEADER: u64 = 16;
/// How often the progress line is redrawn on a terminal, and printed otherwise.
const PROGRESS_TERMINAL: Duration = Duration::from_millis(250);
const PROGRESS_PLAIN: Duration = Duration::from_secs(10);

/// Draws progress on stderr: redrawn in place on a terminal, a plain line now and then
/// otherwise. Runs until `done`.
async fn progress(
    mode: Progress,
    stats: Arc<Mutex<Stats>>,
    permits: Arc<Semaphore>,
    concurrency: usize,
    read: Arc<AtomicU64>,
    total: u64,
    done: Arc<tokio::sync::Notify>,
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
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = done.notified() => break,
        }
        let (sent, errors) = stats.lock().map_or((0, 0), |s| {
            (s.replayed, s.shadow.errors.values().sum::<u64>())
        });
        let in_flight = concurrency.saturating_sub(permits.available_permits());
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

/// The timer wheel ticks every millisecond: sleep to within this of the intended time, then
/// yield until it, so requests leave on schedule to well under a millisecond.
const TIMER_SLACK: Duration = Duration::from_millis(2);

async fn wait_until(intended: Instant) {
    let now = Instant::now();
    if intended <= now {
        // Sleeping until a time already past would still wait for the next timer tick.
        return;
    }
    if intended - now > TIMER_SLACK {
        tokio::time::sleep_until((intended - TIMER_SLACK).into()).await;
    }
    while Instant::now() < intended {
        tokio::task::yield_now().await;
    }
}

/// Capture time an exchange may be held to put requests back in the order they were sent
/// (exchanges complete in response order; a request whose response was slow comes late).
const REORDER_NS: i64 = 2_000_000_000;
/// Server addresses remembered for the production-target check.
const MAX_SERVERS: usize = 65_536;
/// Exchanges held for reordering at most.
const REORDER_MAX: usize = 10_000;

/// Exchanges in the order of their requests' first bytes, within a bounded window.
#[derive(Default)]
struct Reorder {
    heap: BinaryHeap<Reverse<Held>>,
    newest: Option<Timestamp>,
    seq: u64,
}

struct Held(Timestamp, u64, Box<Exchange>);

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
    fn push(&mut self, ex: Exchange) {
        let ts = ex.request.first_ts;
        self.newest = Some(self.newest.map_or(ts, |n| n.max(ts)));
        self.seq += 1;
        self.heap.push(Reverse(Held(ts, self.seq, Box::new(ex))));
    }

    /// The oldest exchange, once nothing older can still arrive.
    fn pop_ready(&mut self) -> Option<Exchange> {
        let Reverse(Held(ts, _, _)) = self.heap.peek()?;
        let newest = self.newest?;
        if self.heap.len() > REORDER_MAX || newest.nanos().saturating_sub(ts.nanos()) > REORDER_NS {
            return self.pop_any();
        }
        None
    }

    fn pop_any(&mut self) -> Option<Exchange> {
        self.heap.pop().map(|Reverse(Held(_, _, ex))| *ex)
    }
}

/// The `--log` file: one JSON line per replayed exchange, written as exchanges complete.
type Log = Arc<Mutex<Option<BufWriter<File>>>>;

fn log_line(log: &Log, ex: &Exchange, route: &str, answer: &Result<Answer, Failure>) {
    let Ok(mut guard) = log.lock() else {
        return;
    };
    let Some(w) = guard.as_mut() else {
        return;
    };
    // What replay writes is redacted (DESIGN.md "Redaction").
    let uri = redact_target(&ex.request.target);
    let line = json!({
        "ts": ex.request.first_ts.to_string().parse::<f64>().unwrap_or(0.0),
        "method": ex.request.method,
        "uri": String::from_utf8_lossy(&uri),
        "route": route,
        "production": {
            "status": ex.response.as_ref().map(|r| r.status),
            "ttfb_us": ex.ttfb_us(),
            "total_us": ex.total_us(),
        },
        "shadow": match answer {
            Ok(a) => json!({"status": a.status, "ttfb_us": a.ttfb.as_micros() as u64, "total_us": a.total.as_micros() as u64, "error": null}),
            Err(f) => json!({"status": null, "ttfb_us": null, "total_us": null, "error": f.name()}),
        },
    });
    if writeln!(w, "{line}").is_err() {
        // A full disk stops the log, not the replay.
        *guard = None;
    }
}

/// Sends the selected exchanges to the shadow and gathers the statistics.
async fn dispatch(
    read: Arc<AtomicU64>,
    settings: &ReplaySettings,
    mut rx: mpsc::Receiver<Vec<Exchange>>,
    log: Log,
) -> (Stats, Option<String>) {
    let stats = Arc::new(Mutex::new(Stats::default()));
    let pool = Arc::new(Pool::new(
        settings.shadow,
        settings.tls.clone(),
        settings.concurrency,
    ));
    let permits = Arc::new(Semaphore::new(settings.concurrency));
    let total: u64 = settings
        .files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let finished = Arc::new(tokio::sync::Notify::new());
    let drawer = tokio::spawn(progress(
        settings.progress,
        stats.clone(),
        permits.clone(),
        settings.concurrency,
        read,
        total,
        finished.clone(),
    ));
    let mut tasks = JoinSet::new();
    let mut last_of_flow: HashMap<FlowId, oneshot::Receiver<()>> = HashMap::new();
    let start = Instant::now();
    let mut first_ts: Option<Timestamp> = None;
    let mut bytes = Vec::new();
    let timeout = settings.timeout;
    let mut window = Reorder::default();
    // Every server address seen in the capture: the shadow must not be one of them.
    let mut servers: HashSet<std::net::SocketAddr> = HashSet::new();
    loop {
        let ex = match window.pop_ready() {
            Some(ex) => ex,
            None => match rx.recv().await {
                Some(batch) => {
                    for ex in batch {
                        window.push(ex);
                    }
                    continue;
                }
                None => match window.pop_any() {
                    Some(ex) => ex,
                    None => break,
                },
            },
        };
        while tasks.try_join_next().is_some() {}
        if servers.len() < MAX_SERVERS {
            servers.insert(ex.server);
        }
        let verdict = settings.selection.check(&ex).and_then(|()| {
            if !settings.allow_production_target && servers.contains(&settings.shadow) {
                Err(Skip::ProductionTarget)
            } else {
                Ok(())
            }
        });
        if let Err(why) = verdict {
            if let Ok(mut s) = stats.lock() {
                s.skip(why);
            }
            continue;
        }
        let t0 = *first_ts.get_or_insert(ex.request.first_ts);
        let intended = match settings.speed {
            Speed::Max => Instant::now(),
            Speed::Factor(f) => {
                let offset_us = ex.request.first_ts.micros_since(t0).max(0) as f64 / f;
                start + Duration::from_micros(offset_us as u64)
            }
        };
        wait_until(intended).await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let sent = Instant::now();
        if let Ok(mut s) = stats.lock() {
            s.late(sent.saturating_duration_since(intended));
        }
        request::write(&ex, &settings.rewrites, &mut bytes);
        let wire = bytes.clone();
        let (done_tx, done_rx) = oneshot::channel();
        let before = last_of_flow.insert(ex.flow, done_rx);
        let (pool, stats, log) = (pool.clone(), stats.clone(), log.clone());
        tasks.spawn(async move {
            if let Some(prev) = before {
                let _ = prev.await;
            }
            let is_head = ex.request.method.eq_ignore_ascii_case("HEAD");
            let answer = pool.exchange(&wire, is_head, timeout).await;
            let production = ex
                .response
                .as_ref()
                .map(|r| (r.status, ex.ttfb_us().unwrap_or(0), ex.total_us()));
            let name = route(&ex.request.method, path_of(&ex.request.target));
            log_line(&log, &ex, &name, &answer);
            if let Ok(mut s) = stats.lock() {
                s.replayed(&name, production, answer, timeout);
            }
            drop(permit);
            let _ = done_tx.send(());
        });
    }
    while tasks.join_next().await.is_some() {}
    finished.notify_one();
    let _ = drawer.await;
    let tls_error = pool.tls_error.lock().ok().and_then(|e| e.clone());
    let stats = Arc::try_unwrap(stats)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .unwrap_or_default();
    (stats, tls_error)
}

/// Runs `replay`: the report goes to `out`, errors to `err`.
pub fn run(
    settings: &ReplaySettings,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Status> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let log_file = match &settings.log {
        Some(path) => Some(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let log: Log = Arc::new(Mutex::new(log_file));
    let (tx, rx) = mpsc::channel(QUEUE);
    let ((stats, tls_error), errors) = std::thread::scope(|scope| {
        let read = Arc::new(AtomicU64::new(0));
        let reader_read = read.clone();
        let reader = scope.spawn(move || read_files(settings, tx, &reader_read));
        let stats = runtime.block_on(dispatch(read, settings, rx, log.clone()));
        (
            stats,
            reader
                .join()
                .unwrap_or_else(|_| vec!["the capture reader stopped unexpectedly".into()]),
        )
    });
    for e in &errors {
        writeln!(err, "shadowtap: error: {e}")?;
    }
    if let Some(e) = tls_error {
        writeln!(err, "shadowtap: warning: TLS to the shadow failed ({e}); those requests count as connect errors")?;
    }
    if let Some(n) = stats
        .skipped
        .get(&("filtered".to_string(), "production_target".to_string()))
    {
        writeln!(
            err,
            "shadowtap: warning: {n} requests not sent: the shadow {} is a server in the capture (production); --allow-production-target sends them",
            settings.shadow
        )?;
    }
    if let Ok(mut guard) = log.lock() {
        if let Some(w) = guard.as_mut() {
            w.flush().context("writing the log")?;
        }
    }
    let mut report = render::json(&stats);
    let verdicts = gate::evaluate(&settings.fail_if, &report);
    if !verdicts.is_empty() {
        report["fail_if"] = json!(verdicts
            .iter()
            .map(|v| json!({"condition": v.condition, "left": v.left, "right": v.right, "crossed": v.crossed}))
            .collect::<Vec<_>>());
    }
    if let Some(path) = &settings.report_json {
        let text = serde_json::to_string_pretty(&report).context("encoding the report")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    match settings.format {
        ReportFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        ReportFormat::Text | ReportFormat::Html => {
            let files: Vec<String> = settings
                .files
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            let title = format!(
                "shadowtap replay  {} -> http://{}",
                settings.title.clone().unwrap_or_else(|| files.join(" ")),
                settings.shadow_authority
            );
            if settings.format == ReportFormat::Html {
                write!(out, "{}", crate::report::html::page(&stats, &title))?;
                return Ok(exit_status(&errors, &verdicts));
            }
            write!(out, "{}", render::text(&stats, &title))?;
            for v in &verdicts {
                let mark = if v.crossed { "CROSSED" } else { "ok" };
                writeln!(
                    out,
                    "fail-if {}: {} ({} vs {})",
                    v.condition, mark, v.left, v.right
                )?;
            }
        }
    }
    Ok(exit_status(&errors, &verdicts))
}

/// A runtime failure (unreadable input) takes precedence over a crossed threshold.
fn exit_status(errors: &[String], verdicts: &[gate::Verdict]) -> Status {
    if !errors.is_empty() {
        Status::BadInput
    } else if verdicts.iter().any(|v| v.crossed) {
        Status::Threshold
    } else {
        Status::Success
    }
}
