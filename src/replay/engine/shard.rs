//! One shard: its thread's scheduling policy, and the loop that paces its jobs and gives
//! each to a worker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::http1::Exchange;
use crate::reassembly::FlowId;
use crate::replay::client::Client;
use crate::replay::request::Rewrites;
use crate::replay::timer::PreciseTimer;

use super::collector::{Answerer, Collector};
use super::dispatch::{Pending, Timed};
use super::log::Log;
use super::pacing::{spin_before, wait_until};
use super::shutdown::Shutdown;
use super::worker::work;
use super::ShardProgress;

/// Puts the calling thread under Linux's `SCHED_BATCH` policy, as `chrt --batch 0` would:
/// the scheduler then lets a thread it wakes run to the end of its time slice instead of
/// switching to it at once.
///
/// An unpaced replay wakes the shadow with every request it sends and is woken by every
/// answer; as ordinary threads, each wake-up could preempt the other side at once. As batch
/// work the replay threads let the shadow (and anything else on the machine) run on, and
/// then take several answers per wake-up. Against nginx on two cores, paired runs used from
/// 3% more to 15% less CPU per request on both sides, less in most (the machine's own
/// noise is about as large). It is also the polite policy for a bulk job on a shared node.
/// Not for paced replays, whose sends must leave on time.
/// Best effort: the policy needs no privilege, and if it is refused nothing changes.
pub fn as_batch_work() {
    let param = libc::sched_param { sched_priority: 0 };
    // Through pthreads rather than the bare system call, which would leave the C library's
    // record of the thread's policy stale.
    // SAFETY: the calling thread's own handle and a valid parameter.
    unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_BATCH, &param) };
}

/// One shard's share of the work.
pub(crate) struct Shard {
    pub client: Client,
    /// Requests in flight at most: one worker, with its own connection, each.
    pub slots: usize,
    pub timeout: Duration,
    pub rewrites: Arc<Rewrites>,
    pub log: Log,
    pub progress: Arc<ShardProgress>,
    /// Wait for send times with the kernel's precision rather than tokio's millisecond
    /// ticks (off under a paused clock, which only tokio's timers follow).
    pub precise: bool,
    /// Jobs handed to this shard not yet given to a worker (the engine's count, decremented
    /// here).
    pub pending: Arc<Pending>,
    pub shutdown: Arc<Shutdown>,
    /// This shard's number, for [`Shutdown`]'s wake-ups.
    pub index: usize,
    /// Requests of one captured connection go one after the other (`--keep-order
    /// connection`); otherwise each goes to the least loaded worker.
    pub keep_order: bool,
}

/// Jobs waiting in one worker's queue at most.
const WORKER_QUEUE: usize = 4;

/// A job on its way to a worker, with the time it was meant to leave.
pub(super) struct Work {
    pub(super) ex: Box<Exchange>,
    pub(super) intended: Instant,
}

/// A worker as the shard's dispatcher sees it.
struct Worker {
    queue: mpsc::Sender<Work>,
    /// Jobs handed to it, and (updated by the worker) jobs it finished; they finish in order.
    given: u64,
    done: Arc<AtomicU64>,
}

impl Worker {
    fn load(&self) -> u64 {
        self.given - self.done.load(Ordering::Relaxed)
    }
}

/// A shard's thread: runs the shard on `runtime` until its queue closes and its workers are
/// done, with its statistics owned here and copies of them given to whoever asks.
pub(super) fn serve(
    runtime: tokio::runtime::Runtime,
    rx: mpsc::Receiver<Vec<Timed>>,
    shard: Shard,
    answerer: Answerer,
) {
    let stats = Collector::default();
    let last = answerer.last();
    let tasks = tokio::task::LocalSet::new();
    tasks.spawn_local(answerer.answer(stats.clone()));
    runtime.block_on(tasks.run_until(run_shard(rx, shard, stats.clone())));
    // Left before the answering task goes with the tasks: an asker finds one or the other.
    let _ = last.set(stats.borrow().clone());
    drop(tasks);
}

/// Sends the jobs of one queue, recording into `stats`.
///
/// Each of `slots` workers owns one connection and sends one request at a time. A job goes
/// to the least loaded worker; with [`Shard::keep_order`], to the worker already holding its
/// captured connection's previous request when that one is not finished (so requests of a
/// connection stay in order). No task, channel or lock per request beyond the worker's queue.
pub(crate) async fn run_shard(mut rx: mpsc::Receiver<Vec<Timed>>, shard: Shard, stats: Collector) {
    let mut workers = Vec::new();
    let mut handles = JoinSet::new();
    for _ in 0..shard.slots.max(1) {
        let (tx, queue) = mpsc::channel(WORKER_QUEUE);
        let done = Arc::new(AtomicU64::new(0));
        handles.spawn_local(work(
            queue,
            done.clone(),
            shard.client.clone(),
            shard.rewrites.clone(),
            shard.timeout,
            stats.clone(),
            shard.log.clone(),
            shard.progress.clone(),
            (shard.shutdown.clone(), shard.index),
        ));
        workers.push(Worker {
            queue: tx,
            given: 0,
            done,
        });
    }
    // The worker and job number of each captured connection's last request. Entries whose
    // request is finished are pruned, so the table holds about as many entries as jobs queued.
    let mut flows: HashMap<FlowId, (usize, u64), ahash::RandomState> = HashMap::default();
    let prune_at = 2 * workers.len() * (WORKER_QUEUE + 1) + 64;
    let mut next = 0;
    // Without a timerfd (a sandbox may refuse one), pacing falls back to tokio's timer.
    let timer = if shard.precise {
        PreciseTimer::new().ok()
    } else {
        None
    };
    let mut previous = None;
    let (shutdown, me) = (&*shard.shutdown, shard.index);
    // Counts a job that will not be sent: the run is stopping.
    let drop_job = |bytes: usize| {
        shard.pending.sub(1, bytes);
        stats
            .borrow_mut()
            .dropped(crate::replay::stats::Dropped::Shutdown);
    };
    'jobs: while let Some(batch) = rx.recv().await {
        for job in batch {
            if shutdown.stopping() {
                drop_job(job.bytes);
                continue;
            }
            let intended = match job.intended {
                Some(intended) => {
                    let spin = spin_before(intended, previous);
                    if shutdown
                        .unless(me, Shutdown::stopping, || {
                            wait_until(intended, shard.precise, timer.as_ref(), spin)
                        })
                        .await
                        .is_none()
                    {
                        drop_job(job.bytes);
                        continue;
                    }
                    previous = Some(intended);
                    intended
                }
                None => Instant::now(),
            };
            let busy = if shard.keep_order {
                if flows.len() >= prune_at {
                    flows.retain(|_, &mut (w, n)| workers[w].done.load(Ordering::Relaxed) < n);
                }
                flows
                    .get(&job.ex.flow)
                    .filter(|&&(w, n)| workers[w].done.load(Ordering::Relaxed) < n)
                    .map(|&(w, _)| w)
            } else {
                None
            };
            let w = busy.unwrap_or_else(|| {
                let best = least_loaded(&workers, next);
                next = best + 1;
                best
            });
            workers[w].given += 1;
            if shard.keep_order {
                flows.insert(job.ex.flow, (w, workers[w].given));
            }
            shard.pending.sub(1, job.bytes);
            let work = Work {
                ex: job.ex,
                intended,
            };
            // Without waiting when there is room, as there mostly is: no future to poll.
            match workers[w].queue.try_send(work) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(work)) => {
                    let queue = &workers[w].queue;
                    match shutdown
                        .unless(me, Shutdown::stopping, || queue.send(work))
                        .await
                    {
                        Some(Ok(())) => {}
                        Some(Err(_)) => break 'jobs,
                        None => {
                            // Taken off the pending count above already.
                            workers[w].given -= 1;
                            stats
                                .borrow_mut()
                                .dropped(crate::replay::stats::Dropped::Shutdown);
                        }
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break 'jobs,
            }
        }
    }
    drop(workers);
    while handles.join_next().await.is_some() {}
}

/// The least loaded worker, looking from `start` on (wrapping) so that idle ones share the
/// work; the first idle one ends the search.
fn least_loaded(workers: &[Worker], start: usize) -> usize {
    let n = workers.len();
    let start = start % n;
    let (mut best, mut best_load) = (start, workers[start].load());
    for w in (start + 1..n).chain(0..start) {
        if best_load == 0 {
            break;
        }
        let load = workers[w].load();
        if load < best_load {
            (best, best_load) = (w, load);
        }
    }
    best
}
