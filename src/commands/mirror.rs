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
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::capture::filter::BpfFilter;
use crate::capture::live::{port_filter, Next, Source, Stop, IDLE_WAIT};
use crate::capture::{Frame, LinkType, PcapWriter, Timestamp};
use crate::cli::{LiveArgs, MirrorArgs};
use crate::commands::outputs::Outputs;
use crate::commands::{describe, verdict, Status};
use crate::http1::{Exchange, HttpCounters, Tracker};
use crate::output::{OutputError, Stream};
use crate::pipeline::Chain;
use crate::privileges::drop_privileges;
use crate::replay::engine::{self, Engine, Job};
use crate::replay::request::MARKER;
use crate::replay::select::{RateLimit, Skip};
use crate::replay::target::{probe_frame, resolve, Guard, LocalAddrs, ProductionTarget, Watch};
use crate::report::model;
use crate::report::replay as render;
use crate::report::{metrics_server, prometheus};
use crate::settings::{live_config, parse_duration, ReplaySettings};

/// How often queued requests are handed over when traffic is steady (they also go whenever
/// the capture is idle).
const FLUSH_EVERY: Duration = Duration::from_millis(1);

mod counts;
mod status;

use counts::{CaptureCounts, CaptureSkips};
use status::StatusLines;

/// A target on this machine whose port the capture takes in: its server's traffic would be
/// captured as production (DESIGN.md "Safety"). The description, for the user, with the
/// target's role and URL.
fn local_target(guard: &Guard, live: &LiveArgs) -> Option<String> {
    let expr = live.bpf.clone().unwrap_or_else(|| port_filter(&live.ports));
    // An expression that does not compile is reported when the capture opens.
    let mut filter = BpfFilter::new(&expr).ok()?;
    let (t, addr) = guard.local_to_capture(&live.interface, |addr| {
        [false, true].into_iter().any(|reply| {
            let data = probe_frame(addr, reply);
            filter.matches(&Frame {
                ts: Timestamp(0),
                link: LinkType::ETHERNET,
                data: &data,
                orig_len: data.len() as u32,
            })
        })
    })?;
    Some(format!(
        "--{} {} is on this machine, and the capture on {} takes in its port at {addr} ({expr})",
        t.role, t.url, live.interface
    ))
}

/// Mirrors the frames of `source` (libpcap on `--interface` in the binary, a capture file in
/// tests) until `--duration`, the end of a file source, or `stop`: the first trigger ends the
/// capture and starts the drain, a second one (or the first during the drain) cuts it. The
/// binary triggers `stop` on SIGINT and SIGTERM.
pub fn run(
    args: MirrorArgs,
    source: &Source,
    stop: &Stop,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Status> {
    run_with_banner(args, "", source, stop, out, err)
}

/// [`run`], printing `banner` on `out` once the capture is open (`demo --live`'s
/// introduction, which would mislead before a capture that cannot be opened).
pub fn run_with_banner(
    args: MirrorArgs,
    banner: &str,
    source: &Source,
    stop: &Stop,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Status> {
    let started = describe::now();
    let interval = parse_duration(&args.interval);
    let settings = ReplaySettings::for_mirror(args.shadow);
    let (settings, interval) = match (settings, interval) {
        (Ok(s), Ok(i)) => (s, i),
        (Err(e), _) | (_, Err(e)) => {
            writeln!(err, "shadowtap: error: {e:#}")?;
            return Ok(Status::BadInput);
        }
    };
    // The shadow's name is looked up and its TLS files read now, before the capture opens.
    let shadow = match resolve(&settings.shadow) {
        Ok(s) => s,
        Err(e) => {
            writeln!(err, "shadowtap: error: {e:#}")?;
            return Ok(Status::BadInput);
        }
    };
    let mut target = ProductionTarget::new(
        shadow.target.clone(),
        LocalAddrs::of_this_machine(),
        settings.allow_production_target,
    );
    let local = local_target(&target.guard, &args.live);
    let own = match local {
        Some(why) if !target.guard.allowed() => {
            writeln!(
                err,
                "shadowtap: error: {why}: a server there would be captured as production (give production's port with --port); --allow-production-target sends to it anyway"
            )?;
            return Ok(Status::BadInput);
        }
        // Production itself, on purpose: filtering the shadow's traffic out would hide
        // production's too, so shadowtap's own requests are told apart by their marker.
        Some(why) => {
            writeln!(
                err,
                "shadowtap: note: {why}: with --allow-production-target shadowtap's own requests are captured too and ignored by their {MARKER} header"
            )?;
            None
        }
        None => Some(target.guard.own_traffic_filter(shadow.addr)),
    };
    let opened = live_config(&args.live).and_then(|c| source.open(&c, own.as_deref(), stop));
    let mut live = match opened {
        Ok(l) => l,
        Err(e) => {
            writeln!(err, "shadowtap: error: {e:#}")?;
            return Ok(Status::BadInput);
        }
    };
    let capture_opened = describe::now();
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
    // Everything that needs privilege or a path is opened before `--user` drops privilege;
    // a path refused or not creatable stops the run before it starts.
    let (mut save, mut outputs) =
        match open_outputs(args.save_pcap.as_deref(), &settings, live.link()) {
            Ok(o) => o,
            Err(e) => {
                writeln!(err, "shadowtap: error: {e}")?;
                return Ok(Status::BadInput);
            }
        };
    let log = outputs.log.clone();
    if let Some(user) = &args.live.user {
        let dropped = outputs
            .place_report_now()
            .map_err(anyhow::Error::from)
            .and_then(|()| drop_privileges(user, err));
        if let Err(e) = dropped {
            writeln!(err, "shadowtap: error: {e:#}")?;
            if let Some(save) = save {
                save.abandon();
            }
            outputs.abandon();
            return Ok(Status::BadInput);
        }
    }
    let engine = Engine::start(engine::Config {
        shadow: shadow.addr,
        tls: shadow.tls.clone(),
        concurrency: settings.concurrency,
        timeout: settings.timeout,
        rewrites: settings.rewrites.clone(),
        log,
        queue: args.queue.max(1),
        waiting: args.queue.max(1),
        shards: None,
        order: settings.order,
        unpaced: false,
    })?;
    // A stop (SIGINT, SIGTERM) ends the capture (the normal end of a run, seen by `live`);
    // one that comes while the engine drains (a second one, or the first after --duration)
    // ends the drain.
    let shutdown = engine.shutdown();
    let on_signal = shutdown.clone();
    let _watching = stop.on_trigger(move |n| {
        if n >= 2 || on_signal.draining() {
            on_signal.cut();
        }
    });
    let counts = Arc::new(CaptureCounts::default());
    let local = Arc::new(CaptureSkips::default());
    // The metrics endpoint serves until the run's figures are final, then stops with its
    // connections; it stops too when this function returns early (`stop_metrics` dropped).
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = match metrics {
        Some(listener) => {
            let (shards, local, counts) = (engine.stats_handle(), local.clone(), counts.clone());
            let render = move |registry: &mut _| {
                let mut stats = shards.take();
                stats.merge(&local.stats());
                prometheus::register(registry, &stats, &counts.prometheus());
            };
            let stopped = async move {
                let _ = metrics_stopped.await;
            };
            let limits = metrics_server::Limits::default();
            Some(metrics_server::spawn(listener, limits, render, stopped)?)
        }
        None => None,
    };
    let mut status = StatusLines::start(engine.stats_handle(), local.clone(), counts.clone())?;
    write!(out, "{banner}")?;
    out.flush()?;
    writeln!(
        err,
        "shadowtap: mirroring {} ({}) to {}",
        args.live.interface,
        live.filter(),
        settings.shadow_authority
    )?;

    let limits = settings.limits.clone();
    let mut rate_limit = settings.rate.map(|r| RateLimit::new(r, Instant::now()));
    let mut sampler = settings.selection.sampler();
    let mut last_flush = Instant::now();
    let mut next_status = Instant::now() + interval;
    // The tracker's callback and this loop both use the engine, never at the same time.
    let engine = RefCell::new(engine);
    // The server a target was first seen as: said at once, since nothing more is sent.
    let first_sight = std::cell::Cell::new(None);
    let mut noted = false;
    let (guard, opened) = target.watch();
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
            if let Err(why) = target.select(&settings.selection, &ex) {
                if why == Skip::ProductionTarget && !noted {
                    noted = true;
                    first_sight.set(target.guard.seen().map(|(_, server)| server));
                }
                local.skip_many(why, 1);
                return;
            }
            if !sampler.keep(&ex) {
                local.skip_many(Skip::Sample, 1);
                return;
            }
            if let Some(limit) = &mut rate_limit {
                if !limit.admit(Instant::now()) {
                    local.rate_limit.fetch_add(1, Ordering::Relaxed);
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
        let tracker = Tracker::new(limits.http1, offer);
        let watch = Watch {
            guard: &guard,
            seen: &opened,
        };
        let mut chain = Chain::with_front(limits.wire, limits.reassembly, tracker, watch);
        let mut handed = [0u64; 6];
        loop {
            let now = Instant::now();
            if let Some(server) = first_sight.take() {
                writeln!(
                    err,
                    "shadowtap: warning: --shadow {} was seen as {server}, a server in the capture (production): nothing more is sent to it; --allow-production-target sends anyway",
                    shadow.target.url
                )?;
            }
            if now >= next_status {
                hand_over(chain.sink().counters(), &mut handed, &local, &counts);
                next_status = now + interval;
                let (k, i) = live.drops();
                counts.kernel_drops.store(k, Ordering::Relaxed);
                counts.interface_drops.store(i, Ordering::Relaxed);
                status.ask(now);
            }
            status.print(err)?;
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
            // A failed write stops the saved capture, not the mirror: said once now, and in
            // the report at the end.
            if let Some(w) = save.as_mut() {
                let failed = w.stream().has_failed();
                w.record(frame.ts, frame.data, frame.orig_len)?;
                if !failed && w.stream().has_failed() {
                    let e = w.stream().summary().error.unwrap_or_default();
                    writeln!(
                        err,
                        "shadowtap: warning: {e}; saving stops, mirroring goes on"
                    )?;
                }
            }
            chain.push(&frame);
            if now.duration_since(last_flush) >= FLUSH_EVERY {
                if let Err(n) = engine.borrow_mut().try_flush() {
                    drop_count(&local, n);
                }
                hand_over(chain.sink().counters(), &mut handed, &local, &counts);
                last_flush = now;
            }
        }
        // Exchanges still open at the end are emitted (as incomplete, when they are), so
        // they are counted, not lost.
        chain.finish();
        hand_over(chain.sink().counters(), &mut handed, &local, &counts);
    }
    status.end(err)?;
    let capture_closed = describe::now();
    let saved = save.as_mut().map(|w| w.stream_mut().finish());
    let (k, i) = live.drops();
    counts.kernel_drops.store(k, Ordering::Relaxed);
    counts.interface_drops.store(i, Ordering::Relaxed);
    // Requests already queued are sent and in-flight ones finish, until --drain-timeout:
    // then what is left is dropped (`dropped/shutdown`) or cut (the shadow error `shutdown`).
    shutdown.drain(settings.drain_timeout);
    let (mut stats, trouble) = engine.into_inner().finish()?;
    stats.shadow_rtt = trouble.rtt;
    drop(stop_metrics);
    if let Some(server) = metrics {
        server.join();
    }
    stats.merge(&local.stats());
    verdict::warn_production_target(&stats, shadow.addr, err)?;
    let capture = counts.prometheus();
    let seconds = live.started().elapsed().as_secs_f64();
    let mut report = render::report_with(&stats, &settings.thresholds);
    let interface = describe::unhashed(args.live.interface.clone(), None);
    let captured = model::Span {
        start: capture_opened,
        end: capture_closed,
    };
    report.runs = vec![describe::run(
        "mirror",
        &settings,
        vec![interface],
        Some(captured),
        started,
    )];
    report.capture = Some(model::Capture {
        interface: args.live.interface.clone(),
        seconds,
        packets: capture.packets,
        kernel_drops: capture.kernel_drops,
        interface_drops: capture.interface_drops,
        own_traffic: capture.own_traffic,
    });
    let log = outputs.log_summary();
    if log.is_some() || saved.is_some() {
        report.outputs = Some(model::Outputs {
            log: log.as_ref().map(Into::into),
            save_pcap: saved.as_ref().map(Into::into),
        });
    }
    let verdicts = verdict::fail_if(&settings, &mut report);
    let mut status = verdict::outcome(&stats, &settings, &trouble, &verdicts, err)?;
    let title = format!(
        "shadowtap mirror  {} -> http://{}",
        args.live.interface, settings.shadow_authority
    );
    let mut lines = vec![format!(
        "capture: {} packets in {:.1} s, {} dropped by the kernel, {} by the interface; {} of shadowtap's own requests ignored",
        capture.packets,
        seconds,
        capture.kernel_drops,
        capture.interface_drops,
        capture.own_traffic
    )];
    lines.extend(log.iter().map(|l| l.text("log", "lines")));
    lines.extend(saved.iter().map(|s| s.text("save-pcap", "packets")));
    // The side outputs are written even when stdout is not (`| head`, a full disk).
    let printed = verdict::print_report(settings.format, &report, &title, &lines, &verdicts, out);
    // The report is out; now the outputs that failed, if any, say so (exit 1).
    let mut written = outputs.commit_report(&report, log.as_ref(), err)?;
    if let Some(line) = saved.as_ref().and_then(|s| s.failure("packets not saved")) {
        writeln!(err, "shadowtap: error: {line}")?;
        written = false;
    }
    printed.context("writing the report to standard output")?;
    if !written {
        status = Status::worst(status, Status::Failure);
    }
    Ok(status)
}

/// Adds the requests the HTTP tracker saw but never emitted (since the last call; `handed`
/// keeps what was added before) to the accounting, and its memory figures to the metrics.
fn hand_over(
    tracker: &HttpCounters,
    handed: &mut [u64; 6],
    local: &CaptureSkips,
    counts: &CaptureCounts,
) {
    counts.http_memuse.store(tracker.memuse, Ordering::Relaxed);
    counts
        .http_memcap_hits
        .store(tracker.memcap_hits, Ordering::Relaxed);
    let lost = tracker.lost();
    if lost
        .iter()
        .zip(handed.iter())
        .all(|((_, n), done)| n == done)
    {
        return;
    }
    for ((why, n), done) in lost.into_iter().zip(handed.iter_mut()) {
        local.skip_many(Skip::from(why), n - *done);
        *done = n;
    }
}

/// The `--save-pcap` file and the replay outputs, created in that order; if a later one
/// fails, the saved capture is removed again.
fn open_outputs(
    save_pcap: Option<&std::path::Path>,
    settings: &ReplaySettings,
    link: crate::capture::LinkType,
) -> Result<(Option<PcapWriter<Stream>>, Outputs), OutputError> {
    let save = match save_pcap {
        Some(path) => Some(PcapWriter::create(path, link, settings.force)?),
        None => None,
    };
    match Outputs::create(settings) {
        Ok(outputs) => Ok((save, outputs)),
        Err(e) => {
            if let Some(save) = save {
                save.abandon();
            }
            Err(e)
        }
    }
}

/// Counts `n` requests dropped because the engine's queue was full.
fn drop_count(local: &CaptureSkips, n: usize) {
    local.queue_full.fetch_add(n as u64, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::stats::Stats;

    #[test]
    fn the_capture_counts_become_the_same_statistics_as_counted_one_by_one() {
        let local = CaptureSkips::default();
        let mut want = Stats::default();
        for (n, &why) in Skip::ALL.iter().enumerate() {
            local.skip_many(why, n as u64);
            want.skip_many(why, n as u64);
        }
        drop_count(&local, 3);
        local.rate_limit.fetch_add(2, Ordering::Relaxed);
        for _ in 0..3 {
            want.dropped(crate::replay::stats::Dropped::QueueFull);
        }
        for _ in 0..2 {
            want.dropped(crate::replay::stats::Dropped::RateLimit);
        }
        let got = local.stats();
        assert_eq!(got.seen, want.seen);
        assert_eq!(got.skipped, want.skipped);
    }
}
