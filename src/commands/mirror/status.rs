//! mirror's status line, made on a thread of its own so that no snapshot is ever taken or
//! merged on the capture thread.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use anyhow::Context as _;

use super::counts::{CaptureCounts, CaptureSkips};
use crate::replay::engine;
use crate::replay::stats::{Side, Stats};

/// The status line's own thread: asked at each `--interval`, it takes a snapshot of the
/// statistics (the shards answer) and writes the line, which the capture thread prints when
/// it next comes round, so that no snapshot is ever taken or merged on the capture thread.
pub(super) struct StatusLines {
    asks: Option<mpsc::Sender<Instant>>,
    lines: mpsc::Receiver<String>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StatusLines {
    pub(super) fn start(
        shards: engine::Snapshots,
        local: Arc<CaptureSkips>,
        counts: Arc<CaptureCounts>,
    ) -> anyhow::Result<StatusLines> {
        let (asks, asked) = mpsc::channel::<Instant>();
        let (written, lines) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("shadowtap-status".into())
            .spawn(move || {
                let mut previous = Previous::at(Instant::now());
                for now in asked {
                    let mut stats = shards.take();
                    stats.merge(&local.stats());
                    if written
                        .send(status_line(&stats, &counts, &mut previous, now))
                        .is_err()
                    {
                        return;
                    }
                }
            })
            .context("starting the status thread")?;
        Ok(StatusLines {
            asks: Some(asks),
            lines,
            thread: Some(thread),
        })
    }

    /// Asks for a line with the rates up to `now`.
    pub(super) fn ask(&self, now: Instant) {
        if let Some(asks) = &self.asks {
            let _ = asks.send(now);
        }
    }

    /// Prints the lines written so far, without waiting.
    pub(super) fn print(&self, err: &mut dyn Write) -> std::io::Result<()> {
        while let Ok(line) = self.lines.try_recv() {
            writeln!(err, "shadowtap: {line}")?;
        }
        Ok(())
    }

    /// Waits for the lines asked for, prints them, and ends the thread.
    pub(super) fn end(&mut self, err: &mut dyn Write) -> std::io::Result<()> {
        self.asks = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.print(err)
    }
}

/// The figures of the previous status line, for rates over the interval.
pub(super) struct Previous {
    at: Instant,
    seen: u64,
    replayed: u64,
}

impl Previous {
    pub(super) fn at(at: Instant) -> Previous {
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

/// One side's part of the line; `-` for a latency without any answer to time (every
/// request failed), never a latency of 0.
fn side(s: &Side) -> String {
    if s.requests == 0 {
        return "-".into();
    }
    let at = |p: f64| {
        if s.ttfb.is_empty() {
            "-".to_string()
        } else {
            ms(s.ttfb.value_at_percentile(p))
        }
    };
    format!(
        "p50 {} p99 {} err {:.1}%",
        at(50.0),
        at(99.0),
        100.0 * s.error_rate()
    )
}

/// One status line: rates over the last interval, both sides' time to first byte and error
/// rate so far, and what was lost.
pub(super) fn status_line(
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
    let dropped = stats.dropped_total();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_side_with_no_answer_shows_no_latency() {
        let mut s = Side {
            requests: 3,
            ..Side::default()
        };
        s.errors.add(crate::replay::client::Failure::Connect, 3);
        assert_eq!(side(&s), "p50 - p99 - err 100.0%");
    }
}
