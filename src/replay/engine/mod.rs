//! The replay engine: sends jobs (an exchange and when to send it) to the shadow and gathers
//! the statistics of both sides.
//!
//! Work is spread over shards, one thread each with its own single-threaded runtime, its
//! own pool of connections and its own statistics, merged at the end. A captured
//! connection always goes to the same shard, so its requests are sent in their captured
//! order without any cross-thread hand-off per request. The concurrency cap is split
//! between the shards: the shadow never sees more connections than `--concurrency`.
//!
//! Each shard takes jobs from a bounded queue. [`Engine::push`] blocks when it is full
//! (files: nothing is dropped); [`Engine::try_push`] gives the jobs back instead (live
//! capture must never wait).
//!
//! A run is stopped through its [`Shutdown`]: within a drain deadline, with what is left
//! counted (`dropped/shutdown` for what was still queued, the shadow error `shutdown` for
//! what was cut in flight), never by waiting for the shadow without bound.
//!
//! One file per job: this one starts the shards and ends the run; `dispatch` hands jobs to
//! the shards in batches; `shard` is a shard's thread and the loop that gives its jobs to
//! workers; `pacing` waits for send times; `worker` sends one connection's requests;
//! `shutdown` stops a run; `log` writes the `--log` line; `collector` keeps each shard's
//! statistics on its thread and answers for snapshots.

mod collector;
mod dispatch;
mod log;
mod pacing;
mod shard;
mod shutdown;
#[cfg(test)]
mod tests;
mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::http1::Exchange;
use crate::replay::client::{Client, Trouble};
use crate::replay::request::Rewrites;
use crate::replay::stats::Stats;
use crate::replay::tls::Tls;

pub use collector::Snapshots;
pub use dispatch::{BATCH, BATCH_BYTES, WAITING_BYTES};
pub use log::SharedLog;
pub use shard::as_batch_work;
pub use shutdown::Shutdown;

use dispatch::{Pending, Timed};
use log::Log;
use shard::Shard;
use shutdown::Ended;

/// One request for the shadow: the captured exchange, and when to send it as an offset from
/// the first job's arrival (None: as soon as a worker is free).
pub struct Job {
    /// Boxed: a job is handed on several times, and an exchange is a few hundred bytes.
    pub ex: Box<Exchange>,
    pub at: Option<Duration>,
}

/// Shards at most, whatever the number of cores.
const MAX_SHARDS: usize = 8;

pub struct Config {
    pub shadow: SocketAddr,
    pub tls: Option<Tls>,
    /// Requests in flight at most, over all shards (and so connections at most).
    pub concurrency: usize,
    /// The whole-exchange timeout.
    pub timeout: Duration,
    pub rewrites: Rewrites,
    /// The `--log` file; the caller keeps a handle for its [`crate::output::Summary`].
    pub log: Option<SharedLog>,
    /// Batches waiting per shard at most (what [`Engine::push`] waits on).
    pub queue: usize,
    /// Jobs waiting per shard at most for [`Engine::try_push`]: more are refused. Batches
    /// handed over often are small, so a bound in batches alone would refuse early; a live
    /// source sets `queue` to this too (every batch holds at least one job).
    pub waiting: usize,
    /// Shards; None: one per core, at most `concurrency` and [`MAX_SHARDS`].
    pub shards: Option<usize>,
    /// No send times to keep (`--speed max` without `--rate`): the replay threads run as
    /// batch work (see [`as_batch_work`]).
    pub unpaced: bool,
    /// Whether the requests of one captured connection wait for each other (`--keep-order`).
    pub order: Order,
}

/// How the requests of one captured connection are sent (`--keep-order`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Each request goes on its own, to whichever connection is free, as Envoy's and
    /// GoReplay's mirrors send them: a slow answer never holds up the requests behind it,
    /// and the run reaches `--concurrency` whatever the number of captured connections.
    #[default]
    Independent,
    /// One after the other, each after the shadow answered the one before, as the client
    /// sent them: for stateful flows. A busy connection's requests wait; the others do not.
    Connection,
}

/// Live figures for a progress or status line, updated by the shards as they go: one set
/// per shard, each on its own cache line, so that shards never contend on them.
pub struct Progress {
    shards: Vec<Arc<ShardProgress>>,
}

/// One shard's figures.
#[derive(Default)]
#[repr(align(128))]
pub struct ShardProgress {
    /// Exchanges finished with the shadow (answered or failed).
    sent: AtomicU64,
    /// Of those, failed (timeout, connect, reset, circuit open, other).
    errors: AtomicU64,
    in_flight: AtomicU64,
}

impl Progress {
    fn sum(&self, field: impl Fn(&ShardProgress) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| field(s).load(Ordering::Relaxed))
            .sum()
    }

    /// Exchanges finished with the shadow (answered or failed).
    pub fn sent(&self) -> u64 {
        self.sum(|s| &s.sent)
    }

    /// Of those, failed (timeout, connect, reset, circuit open, other).
    pub fn errors(&self) -> u64 {
        self.sum(|s| &s.errors)
    }

    pub fn in_flight(&self) -> u64 {
        self.sum(|s| &s.in_flight)
    }
}

pub struct Engine {
    queues: Vec<mpsc::Sender<Vec<Timed>>>,
    batches: Vec<Vec<Timed>>,
    /// What each batch being filled takes, in bytes.
    batch_bytes: Vec<usize>,
    /// Jobs handed to each shard and not yet given to one of its workers, and their bytes.
    pending: Vec<Arc<Pending>>,
    waiting: usize,
    threads: Vec<JoinHandle<()>>,
    /// Asks the shards for their statistics, as they grow.
    stats: Snapshots,
    client: Client,
    log: Log,
    /// When offsets count from: the first job's arrival, so the time it took to read up to
    /// it is not counted as lateness.
    origin: Option<Instant>,
    pub progress: Arc<Progress>,
    shutdown: Arc<Shutdown>,
    order: Order,
    /// With [`Order::Independent`], the shard whose batch is being filled.
    turn: usize,
}

impl Engine {
    pub fn start(config: Config) -> anyhow::Result<Engine> {
        let concurrency = config.concurrency.max(1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shards = config
            .shards
            .unwrap_or(cores)
            .clamp(1, MAX_SHARDS)
            .min(concurrency);
        let client = Client::new(config.shadow, config.tls);
        let log: Log = config.log;
        let figures: Vec<Arc<ShardProgress>> = (0..shards).map(|_| Arc::default()).collect();
        let progress = Arc::new(Progress {
            shards: figures.clone(),
        });
        let rewrites = Arc::new(config.rewrites);
        let shutdown = Arc::new(Shutdown::new(shards));
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        let (snapshots, answerers) = Snapshots::new(shards);
        let mut pending = Vec::new();
        let (ready, started) = std::sync::mpsc::channel();
        for ((i, figures), answerer) in figures.iter().enumerate().zip(answerers) {
            // The cap split as evenly as it goes: 64 over 3 shards is 22, 21, 21.
            let slots = concurrency / shards + usize::from(i < concurrency % shards);
            let (tx, rx) = mpsc::channel(config.queue.max(1));
            let waiting = Arc::new(Pending::default());
            pending.push(waiting.clone());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let shard = Shard {
                client: client.clone(),
                slots,
                timeout: config.timeout,
                rewrites: rewrites.clone(),
                log: log.clone(),
                progress: figures.clone(),
                precise: true,
                pending: waiting,
                shutdown: shutdown.clone(),
                index: i,
                keep_order: config.order == Order::Connection,
            };
            let unpaced = config.unpaced;
            let ready = ready.clone();
            let ended = Ended(shutdown.clone());
            let thread = std::thread::Builder::new()
                .name(format!("shadowtap-replay-{i}"))
                .spawn(move || {
                    let _ended = ended;
                    if unpaced {
                        as_batch_work();
                    }
                    let _ = ready.send(());
                    drop(ready);
                    shard::serve(runtime, rx, shard, answerer)
                })
                .context("starting a replay thread")?;
            queues.push(tx);
            threads.push(thread);
        }
        // Every replay thread running before the first job is timed: a new thread can take
        // milliseconds to be scheduled the first time, which would make the first requests
        // of a paced replay that late. (A thread that died early just drops its sender.)
        drop(ready);
        while started.recv().is_ok() {}
        Ok(Engine {
            batches: queues.iter().map(|_| Vec::with_capacity(BATCH)).collect(),
            batch_bytes: vec![0; queues.len()],
            queues,
            pending,
            waiting: config.waiting.max(1),
            threads,
            stats: snapshots,
            client,
            log,
            origin: None,
            progress,
            shutdown,
            order: config.order,
            turn: 0,
        })
    }

    /// The handle that stops this engine's run (from a signal handler's thread, say).
    pub fn shutdown(&self) -> Arc<Shutdown> {
        self.shutdown.clone()
    }

    /// Whether nothing more is to be sent ([`Shutdown::stop`]): a source stops reading.
    pub fn stopping(&self) -> bool {
        self.shutdown.stopping()
    }

    /// Now, as an offset for [`Job::at`]: a live source marks each request due the moment it
    /// is handed over, so time spent queued counts as lateness.
    pub fn now_offset(&mut self) -> Duration {
        let origin = *self.origin.get_or_insert_with(Instant::now);
        origin.elapsed()
    }

    /// A handle that takes snapshots of the statistics from another thread.
    pub fn stats_handle(&self) -> Snapshots {
        self.stats.clone()
    }

    /// Sends what is queued, waits for every exchange in flight, and returns the merged
    /// statistics and what went wrong with the shadow (the first failure of each kind in
    /// words, the circuit breaker's openings). With a drain deadline set ([`Shutdown`]) it ends
    /// by then: the batches not yet handed over are dropped if their queue is full, and
    /// what is still queued or in flight at the deadline is dropped or cut.
    pub fn finish(mut self) -> anyhow::Result<(Stats, Trouble)> {
        let mut refused = 0;
        if self.shutdown.draining() {
            if let Err(n) = self.try_flush() {
                refused = n;
            }
        } else {
            self.flush();
        }
        self.queues.clear();
        self.shutdown.wait();
        for thread in self.threads {
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("a replay thread stopped unexpectedly"))?;
        }
        let mut stats = self.stats.last();
        for _ in 0..refused {
            stats.dropped(crate::replay::stats::Dropped::Shutdown);
        }
        // A failed write is in the log's summary, which the caller reports.
        if let Some(Ok(mut log)) = self.log.as_ref().map(|l| l.lock()) {
            log.flush_records();
        }
        Ok((stats, self.client.trouble()))
    }
}
