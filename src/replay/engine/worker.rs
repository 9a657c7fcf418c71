//! One worker: one connection to the shadow, one request at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::replay::client::{Client, Failure, Slot};
use crate::replay::request::{self, Rewrites};
use crate::replay::select::path_of;
use crate::replay::stats::route_into;

use super::collector::Collector;
use super::log::{log_line, Log};
use super::shard::Work;
use super::shutdown::Shutdown;
use super::ShardProgress;

/// One worker: its connection, one request at a time, in the order queued.
#[allow(clippy::too_many_arguments, reason = "a task's captures, spelled out")]
pub(super) async fn work(
    mut queue: mpsc::Receiver<Work>,
    done: Arc<AtomicU64>,
    client: Client,
    rewrites: Arc<Rewrites>,
    timeout: Duration,
    stats: Collector,
    log: Log,
    progress: Arc<ShardProgress>,
    (shutdown, shard): (Arc<Shutdown>, usize),
) {
    let mut slot = Slot::default();
    let mut wire = Vec::new();
    let mut name = String::new();
    while let Some(Work { ex, intended }) = queue.recv().await {
        if shutdown.stopping() {
            stats
                .borrow_mut()
                .dropped(crate::replay::stats::Dropped::Shutdown);
            done.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        request::write(&ex, &rewrites, &mut wire);
        // Lateness is taken at the real send: waiting for a free worker or for the
        // connection's previous request counts, so nothing hides it.
        let late = Instant::now().saturating_duration_since(intended);
        progress.in_flight.fetch_add(1, Ordering::Relaxed);
        let is_head = ex.request.method.eq_ignore_ascii_case("HEAD");
        // Cut at the drain deadline: sent, so replayed, with the shadow error `shutdown`.
        let answer = shutdown
            .unless(shard, Shutdown::is_cut, || {
                client.exchange(&mut slot, &wire, is_head, timeout)
            })
            .await
            .unwrap_or(Err(Failure::Shutdown));
        let production = ex
            .response
            .as_ref()
            .map(|r| (r.status, ex.ttfb_us().unwrap_or(0), ex.total_us()));
        route_into(&mut name, &ex.request.method, path_of(&ex.request.target));
        log_line(&log, &ex, &name, &answer);
        {
            let mut s = stats.borrow_mut();
            s.late(late);
            s.replayed_at(ex.request.first_ts.0, &name, production, answer, timeout);
        }
        progress.sent.fetch_add(1, Ordering::Relaxed);
        if answer.is_err() {
            progress.errors.fetch_add(1, Ordering::Relaxed);
        }
        progress.in_flight.fetch_sub(1, Ordering::Relaxed);
        done.fetch_add(1, Ordering::Relaxed);
    }
}
