//! `shadowtap mirror`: live traffic off an interface, through the decode chain, to the shadow,
//! with a status line every `--interval` and the full report at the end.
//!
//! The capture thread (this one) reads libpcap without blocking, decodes, reassembles and
//! frames HTTP, selects, and hands requests to the replay engine with `try_push`: it never
//! waits on the shadow. A full engine queue drops the requests and counts them
//! (`dropped/queue_full`); packets the kernel had to drop are read from libpcap and reported.
//! The replayer's own traffic is kept out by the BPF filter (the shadow's address) and by the
//! `X-Shadowtap-Replay` marker.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::{MirrorArgs, ReportFormat};
use crate::commands::capture::create;
use crate::commands::live::{drop_privileges, Live, Next, IDLE_WAIT};
use crate::commands::Status;
use crate::http1::{Exchange, Tracker};
use crate::reassembly::Reassembler;
use crate::replay::engine::{self, Engine, Job};
use crate::replay::request::MARKER;
use crate::replay::select::RateLimit;
use crate::replay::stats::{Side, Stats};
use crate::report::replay as render;
use crate::report::{metrics_server, prometheus};
use crate::settings::{parse_duration, ReplaySettings};
use crate::wire::Decoder;

/// How often queued requests are handed over when traffic is steady (they also go whenever
/// the capture is idle).
const FLUSH_EVERY: Duration = Duration::from_millis(1);

/// Capture-side counters, shared with the metrics endpoint.
#[derive(Default)]
struct CaptureCounts {
    packets: AtomicU64,
    kernel_drops: AtomicU64,
    interface_drops: AtomicU64,
    own_traffic: AtomicU64,
}

impl CaptureCounts {
    fn prometheus(&self) -> prometheus::Capture {
        prometheus::Capture {
            packets: self.packets.load(Ordering::Relaxed),
            kernel_drops: self.kernel_drops.load(Ordering::Relaxed),
            interface_drops: self.interface_drops.load(Ordering::Relaxed),
            own_traffic: self.own_traffic.load(Ordering::Relaxed),
        }
    }
}

/// The BPF expression for the replayer's own traffic: anything to or from the shadow.
fn shadow_filter(shadow: SocketAddr) -> String {
    format!("host {} and tcp port {}", shadow.ip(), shadow.port())
}

pub fn run(args: MirrorArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<Status> {
    run_with_banner(args, "", out, err)
}

/// [`run`], printing `banner` on `out` once the capture is open (`demo --live`'s
/// introduction, which would mislead before a capture that cannot be opened).
pub fn run_with_banner(
    args: MirrorArgs,
    banner: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Status> {
    let interval = parse_duration(&args.interval);
    let settings = ReplaySettings::for_mirror(args.shadow);
    let (settings, interval) = match (settings, interval) {
        (Ok(s), Ok(i)) => (s, i),
        (Err(e), _) | (_, Err(e)) => {
            writeln!(err, "shadowtap: error: {e:#}")?;
            return Ok(Status::BadInput);
        }
    };
    let mut live = match Live::open(&args.live, Some(&shadow_filter(settings.shadow))) {
        Ok(l) => l,
        Err(e) => {
            writeln!(err, "shadowtap: error: {e:#}")?;
            return Ok(Status::BadInput);
        }
    };
    // Everything that needs privilege or a path is opened before `--user` drops privilege.
    let mut save = match &args.save_pcap {
        Some(path) => Some(create(path, live.link)?),
        None => None,
    };
    let log = match &settings.log {
        Some(path) => {
            Some(BufWriter::new(File::create(path).map_err(|e| {
                anyhow::anyhow!("creating {}: {e}", path.display())
            })?))
        }
        None => None,
    };
    // Created now, written at the end (by then privileges may be gone).
    let report_file = match &settings.report_json {
        Some(path) => Some((
            File::create(path).map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?,
            path,
        )),
        None => None,
    };
    let metrics = match args.metrics {
        Some(addr) => match TcpListener::bind(addr) {
            Ok(l) => Some(l),
            Err(e) => {
                writeln!(err, "shadowtap: error: --metrics {addr}: {e}")?;
                return Ok(Status::BadInput);
            }
        },
        None => None,
    };
    if let Some(user) = &args.live.user {
        if let Err(e) = drop_privileges(user, err) {
            writeln!(err, "shadowtap: error: {e:#}")?;
            return Ok(Status::BadInput);
        }
    }
    let engine = Engine::start(engine::Config {
        shadow: settings.shadow,
        tls: settings.tls.clone(),
        concurrency: settings.concurrency,
        timeout: settings.timeout,
        rewrites: settings.rewrites.clone(),
        log,
        queue: args.queue.max(1),
        waiting: args.queue.max(1),
        shards: None,
        unpaced: false,
    })?;
    let counts = Arc::new(CaptureCounts::default());
    // What the capture thread counts itself: requests not replayed, by reason.
    let local = Arc::new(Mutex::new(Stats::default()));
    if let Some(listener) = metrics {
        let (shards, local, counts) = (engine.stats_handle(), local.clone(), counts.clone());
        metrics_server::spawn(listener, metrics_server::Limits::default(), move || {
            let mut stats = engine::snapshot(&shards);
            if let Ok(l) = local.lock() {
                stats.merge(&l);
            }
            prometheus::exposition(&stats, &counts.prometheus())
        })?;
    }
    write!(out, "{banner}")?;
    out.flush()?;
    writeln!(
        err,
        "shadowtap: mirroring {} ({}) to {}",
        args.live.interface, live.filter, settings.shadow_authority
    )?;

    let limits = settings.limits.clone();
    let mut decoder = Decoder::new(limits.wire);
    let mut reassembler = Reassembler::new(limits.reassembly);
    let mut target = super::replay::ProductionTarget::default();
    let mut rate_limit = settings.rate.map(|r| RateLimit::new(r, Instant::now()));
    let mut last_flush = Instant::now();
    let mut next_status = Instant::now() + interval;
    let mut previous = Previous::at(Instant::now());
    // The tracker's callback and this loop both use the engine, never at the same time.
    let engine = RefCell::new(engine);
    {
        let offer = |ex: Exchange| {
            if ex
                .request
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(MARKER))
            {
                counts.own_traffic.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if let Err(why) = target.select(&settings, &ex) {
                if let Ok(mut l) = local.lock() {
                    l.skip(why);
                }
                return;
            }
            if let Some(limit) = &mut rate_limit {
                if !limit.admit(Instant::now()) {
                    if let Ok(mut l) = local.lock() {
                        l.dropped("rate_limit");
                    }
                    return;
                }
            }
            let mut engine = engine.borrow_mut();
            let job = Job {
                ex: Box::new(ex),
                at: Some(engine.now_offset()),
            };
            if let Err(n) = engine.try_push(job) {
                drop_count(&local, n);
            }
        };
        let mut tracker = Tracker::new(limits.http1, offer);
        loop {
            let now = Instant::now();
            if now >= next_status {
                next_status = now + interval;
                let (k, i) = live.drops();
                counts.kernel_drops.store(k, Ordering::Relaxed);
                counts.interface_drops.store(i, Ordering::Relaxed);
                let mut stats = engine.borrow().snapshot();
                if let Ok(l) = local.lock() {
                    stats.merge(&l);
                }
                let line = status_line(&stats, &counts, &mut previous, now);
                writeln!(err, "shadowtap: {line}")?;
            }
            let frame = match live.next_packet()? {
                Next::Stop => break,
                Next::Idle => {
                    if let Err(n) = engine.borrow_mut().try_flush() {
                        drop_count(&local, n);
                    }
                    last_flush = Instant::now();
                    live.wait(IDLE_WAIT);
                    continue;
                }
                Next::Packet(frame) => frame,
            };
            counts.packets.fetch_add(1, Ordering::Relaxed);
            if let Some(w) = save.as_mut() {
                w.write(frame.ts, frame.data, frame.orig_len)?;
            }
            if let Some(segment) = decoder.decode(&frame) {
                reassembler.push(&segment, &mut tracker);
            }
            if now.duration_since(last_flush) >= FLUSH_EVERY {
                if let Err(n) = engine.borrow_mut().try_flush() {
                    drop_count(&local, n);
                }
                last_flush = now;
            }
        }
        // Exchanges still open at the end are emitted (as incomplete, when they are), so
        // they are counted, not lost.
        reassembler.finish(&mut tracker);
    }
    if let Some(w) = save.as_mut() {
        w.flush()?;
    }
    let (k, i) = live.drops();
    counts.kernel_drops.store(k, Ordering::Relaxed);
    counts.interface_drops.store(i, Ordering::Relaxed);
    // Requests already queued are sent and in-flight ones finish (each within --timeout).
    let (mut stats, tls_error) = engine.into_inner().finish()?;
    if let Ok(l) = local.lock() {
        stats.merge(&l);
    }
    if let Some(e) = tls_error {
        writeln!(err, "shadowtap: warning: TLS to the shadow failed ({e}); those requests count as connect errors")?;
    }
    super::replay::warn_production_target(&stats, &settings, err)?;
    let capture = counts.prometheus();
    let seconds = live.started.elapsed().as_secs_f64();
    let mut report = render::json(&stats);
    report["capture"] = json!({
        "interface": args.live.interface,
        "seconds": seconds,
        "packets": capture.packets,
        "kernel_drops": capture.kernel_drops,
        "interface_drops": capture.interface_drops,
        "own_traffic": capture.own_traffic,
    });
    let verdicts = super::replay::fail_if(&settings, &mut report);
    if let Some((mut file, path)) = report_file {
        let text = serde_json::to_string_pretty(&report)?;
        file.write_all((text + "\n").as_bytes())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    let title = format!(
        "shadowtap mirror  {} -> http://{}",
        args.live.interface, settings.shadow_authority
    );
    match settings.format {
        ReportFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        ReportFormat::Html => write!(out, "{}", crate::report::html::page(&stats, &title))?,
        ReportFormat::Text => {
            write!(out, "{}", render::text(&stats, &title))?;
            writeln!(
                out,
                "capture: {} packets in {:.1} s, {} dropped by the kernel, {} by the interface; {} of shadowtap's own requests ignored",
                capture.packets,
                seconds,
                capture.kernel_drops,
                capture.interface_drops,
                capture.own_traffic
            )?;
            super::replay::print_verdicts(&verdicts, out)?;
        }
    }
    if verdicts.iter().any(|v| v.crossed) {
        return Ok(Status::Threshold);
    }
    Ok(Status::Success)
}

/// Counts `n` requests dropped because the engine's queue was full.
fn drop_count(local: &Mutex<Stats>, n: usize) {
    if let Ok(mut l) = local.lock() {
        for _ in 0..n {
            l.dropped("queue_full");
        }
    }
}

/// The figures of the previous status line, for rates over the interval.
struct Previous {
    at: Instant,
    seen: u64,
    replayed: u64,
}

impl Previous {
    fn at(at: Instant) -> Previous {
        Previous {
            at,
            seen: 0,
            replayed: 0,
        }
    }
}

/// Human-scaled, as in `inspect`: `850us`, `12.3ms`.
fn ms(us: u64) -> String {
    crate::report::exchange::duration(Some(i64::try_from(us).unwrap_or(i64::MAX)))
}

fn side(s: &Side) -> String {
    if s.requests == 0 {
        return "-".into();
    }
    format!(
        "p50 {} p99 {} err {:.1}%",
        ms(s.ttfb.value_at_percentile(50.0)),
        ms(s.ttfb.value_at_percentile(99.0)),
        100.0 * s.error_rate()
    )
}

/// One status line: rates over the last interval, both sides' time to first byte and error
/// rate so far, and what was lost.
fn status_line(
    stats: &Stats,
    counts: &CaptureCounts,
    previous: &mut Previous,
    now: Instant,
) -> String {
    let secs = now.duration_since(previous.at).as_secs_f64().max(1e-3);
    let seen_rate = (stats.seen - previous.seen) as f64 / secs;
    let sent_rate = (stats.replayed - previous.replayed) as f64 / secs;
    *previous = Previous {
        at: now,
        seen: stats.seen,
        replayed: stats.replayed,
    };
    let dropped: u64 = stats
        .skipped
        .iter()
        .filter(|((category, _), _)| category == "dropped")
        .map(|(_, n)| n)
        .sum();
    format!(
        "{:.0} req/s seen, {:.0}/s sent ({} sent in all); production {}; shadow {}; dropped {}, kernel drops {}",
        seen_rate,
        sent_rate,
        stats.replayed,
        side(&stats.production),
        side(&stats.shadow),
        dropped,
        counts.kernel_drops.load(Ordering::Relaxed)
    )
}
