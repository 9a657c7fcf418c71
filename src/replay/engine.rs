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

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::http1::Exchange;
use crate::output::Stream;
use crate::reassembly::FlowId;
use crate::redact::redact_target;
use crate::replay::client::{Answer, Client, Failure, Slot};
use crate::replay::request::{self, Rewrites};
use crate::replay::select::path_of;
use crate::replay::stats::{route_into, Stats};
use crate::replay::timer::PreciseTimer;
use crate::replay::tls::Tls;

/// One request for the shadow: the captured exchange, and when to send it as an offset from
/// the first job's arrival (None: as soon as a worker is free).
pub struct Job {
    /// Boxed: a job is handed on several times, and an exchange is a few hundred bytes.
    pub ex: Box<Exchange>,
    pub at: Option<Duration>,
}

/// Jobs (and their bytes) handed to a shard and not yet given to one of its workers.
#[derive(Default)]
pub(crate) struct Pending {
    jobs: AtomicUsize,
    bytes: AtomicUsize,
}

impl Pending {
    fn add(&self, jobs: usize, bytes: usize) {
        self.jobs.fetch_add(jobs, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn sub(&self, jobs: usize, bytes: usize) {
        self.jobs.fetch_sub(jobs, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// A job as a shard gets it: its intended send time made absolute.
pub(crate) struct Timed {
    pub ex: Box<Exchange>,
    pub intended: Option<Instant>,
    /// Its [`Exchange::heap_bytes`], measured once when queued and taken off the shard's
    /// pending bytes as it leaves.
    pub bytes: usize,
}

/// Jobs handed to a shard at once: one wake-up of the shard per batch, not per job.
pub const BATCH: usize = 64;
/// A batch is also handed over once its exchanges take this many bytes
/// ([`Exchange::heap_bytes`]), so that queues of batches stay small in bytes as well when
/// requests carry large bodies.
pub const BATCH_BYTES: usize = 1 << 20;
/// Bytes waiting per shard at most for [`Engine::try_push`], beside [`Config::waiting`].
pub const WAITING_BYTES: usize = 64 << 20;
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

/// How a run is being stopped, shared by whoever stops it (a signal, the end of a live run),
/// the shards and [`Engine::finish`].
///
/// Three steps, each including the ones before: a drain deadline is set ([`Shutdown::drain`]:
/// what is queued is still sent until then); nothing more is sent ([`Shutdown::stop`]: what is
/// queued is dropped and counted as `dropped/shutdown`); what is in flight is given up
/// ([`Shutdown::cut`]: each such request counts as replayed, with the shadow error
/// `shutdown`). [`Engine::finish`] cuts when the deadline passes, so a run always ends
/// within it.
pub struct Shutdown {
    stop: AtomicBool,
    cut: AtomicBool,
    state: Mutex<Draining>,
    changed: Condvar,
    /// One per shard: wakes its tasks when `stop` or `cut` is set.
    wake: Vec<Notify>,
}

/// The drain deadline, and the replay threads still running.
struct Draining {
    deadline: Option<std::time::Instant>,
    running: usize,
}

impl Shutdown {
    fn new(shards: usize) -> Shutdown {
        Shutdown {
            stop: AtomicBool::new(false),
            cut: AtomicBool::new(false),
            state: Mutex::new(Draining {
                deadline: None,
                running: shards,
            }),
            changed: Condvar::new(),
            wake: (0..shards).map(|_| Notify::new()).collect(),
        }
    }

    /// The drain ends `within` from now at the latest (an earlier deadline stays); until
    /// then what is queued is still sent.
    pub fn drain(&self, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        if let Ok(mut state) = self.state.lock() {
            state.deadline = Some(state.deadline.map_or(deadline, |d| d.min(deadline)));
        }
        self.changed.notify_all();
    }

    /// Nothing more is sent: what is queued, now or later, is dropped (`dropped/shutdown`);
    /// what is in flight has until `within` from now.
    pub fn stop(&self, within: Duration) {
        self.drain(within);
        self.stop.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    /// What is in flight is given up at once, and nothing more is sent.
    pub fn cut(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut.store(true, Ordering::SeqCst);
        self.wake_all();
        self.changed.notify_all();
    }

    /// Whether a drain deadline is set.
    pub fn draining(&self) -> bool {
        self.state.lock().map_or(true, |s| s.deadline.is_some())
    }

    /// Whether nothing more is to be sent.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    fn wake_all(&self) {
        for w in &self.wake {
            w.notify_waiters();
        }
    }

    /// Runs `fut` on shard `shard` unless `until` (one of [`Shutdown::stopping`] or
    /// `is_cut`) becomes true first: then None.
    async fn unless<F: Future>(
        &self,
        shard: usize,
        until: fn(&Shutdown) -> bool,
        fut: F,
    ) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        loop {
            // Registered before the flag is read, so a wake-up between the two is not lost.
            let mut notified = std::pin::pin!(self.wake[shard].notified());
            notified.as_mut().enable();
            if until(self) {
                return None;
            }
            tokio::select! {
                biased;
                out = &mut fut => return Some(out),
                () = notified => {}
            }
        }
    }

    /// A replay thread ended.
    fn ended(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.running = state.running.saturating_sub(1);
        }
        self.changed.notify_all();
    }

    /// Waits for every replay thread to end, cutting what is in flight once the drain
    /// deadline (if any is set, now or while waiting) passes.
    fn wait(&self) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        while state.running > 0 {
            let now = std::time::Instant::now();
            state = match state.deadline {
                Some(d) if now >= d && !self.is_cut() => {
                    drop(state);
                    self.cut();
                    match self.state.lock() {
                        Ok(s) => s,
                        Err(_) => return,
                    }
                }
                Some(d) if now < d => match self.changed.wait_timeout(state, d - now) {
                    Ok((s, _)) => s,
                    Err(_) => return,
                },
                _ => match self.changed.wait(state) {
                    Ok(s) => s,
                    Err(_) => return,
                },
            };
        }
    }
}

/// Tells the [`Shutdown`] a replay thread ended, however it ends.
struct Ended(Arc<Shutdown>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.ended();
    }
}

/// The `--log` file: one JSON line per replayed exchange, written as exchanges complete. A
/// failed write stops the log, not the replay; the stream counts the lines it could not write.
pub type SharedLog = Arc<Mutex<Stream>>;

/// `None` without `--log`, so that no request takes the shared lock for nothing.
type Log = Option<SharedLog>;

pub struct Engine {
    queues: Vec<mpsc::Sender<Vec<Timed>>>,
    batches: Vec<Vec<Timed>>,
    /// What each batch being filled takes, in bytes.
    batch_bytes: Vec<usize>,
    /// Jobs handed to each shard and not yet given to one of its workers, and their bytes.
    pending: Vec<Arc<Pending>>,
    waiting: usize,
    threads: Vec<JoinHandle<()>>,
    /// Each shard's statistics, as they grow.
    stats: Vec<Arc<Mutex<Stats>>>,
    client: Client,
    log: Log,
    /// When offsets count from: the first job's arrival, so the time it took to read up to
    /// it is not counted as lateness.
    origin: Option<Instant>,
    pub progress: Arc<Progress>,
    shutdown: Arc<Shutdown>,
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
        let mut all_stats = Vec::new();
        let mut pending = Vec::new();
        let (ready, started) = std::sync::mpsc::channel();
        for (i, figures) in figures.iter().enumerate() {
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
            };
            let stats = Arc::new(Mutex::new(Stats::default()));
            all_stats.push(stats.clone());
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
                    runtime.block_on(run_shard(rx, shard, stats))
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
            stats: all_stats,
            client,
            log,
            origin: None,
            progress,
            shutdown,
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

    fn timed(&mut self, job: Job) -> Timed {
        let origin = *self.origin.get_or_insert_with(Instant::now);
        Timed {
            bytes: job.ex.heap_bytes(),
            ex: job.ex,
            intended: job.at.map(|at| origin + at),
        }
    }

    fn shard_of(&self, flow: FlowId) -> usize {
        // Flow ids are handed out in sequence; a multiplicative hash spreads them anyway.
        (flow.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % self.queues.len()
    }

    /// Queues a job, waiting while its shard's queue is full. Call [`Engine::flush`] (or
    /// [`Engine::finish`]) when no more jobs come for a while: jobs go in batches.
    pub fn push(&mut self, job: Job) {
        let paced = job.at.is_some();
        let i = self.add(job);
        // A paced job goes at once to a shard with nothing waiting: the first requests of a
        // replay would otherwise wait for the reader to find 63 more for the same shard, and
        // be late by that (up to a few milliseconds).
        if self.batch_full(i) || (paced && self.pending[i].jobs.load(Ordering::Relaxed) == 0) {
            self.send(i);
        }
    }

    /// Hands every partly filled batch over, waiting while queues are full.
    pub fn flush(&mut self) {
        for i in 0..self.queues.len() {
            if !self.batches[i].is_empty() {
                self.send(i);
            }
        }
    }

    /// Queues a job without waiting. Jobs go in batches: when a batch would take its shard
    /// over [`Config::waiting`] jobs or [`WAITING_BYTES`], the batch is dropped and the
    /// error says how many jobs it held. Call [`Engine::try_flush`] often.
    pub fn try_push(&mut self, job: Job) -> Result<(), usize> {
        let i = self.add(job);
        if !self.batch_full(i) {
            return Ok(());
        }
        self.try_send(i)
    }

    /// Hands every partly filled batch over without waiting; the error counts the jobs
    /// dropped because their shard's queue was full.
    pub fn try_flush(&mut self) -> Result<(), usize> {
        let mut refused = 0;
        for i in 0..self.queues.len() {
            if let Err(n) = self.try_send(i) {
                refused += n;
            }
        }
        if refused == 0 {
            Ok(())
        } else {
            Err(refused)
        }
    }

    /// Adds a job to its shard's batch; returns the shard.
    fn add(&mut self, job: Job) -> usize {
        let i = self.shard_of(job.ex.flow);
        let job = self.timed(job);
        self.batch_bytes[i] += job.bytes;
        self.batches[i].push(job);
        i
    }

    fn batch_full(&self, i: usize) -> bool {
        self.batches[i].len() >= BATCH || self.batch_bytes[i] >= BATCH_BYTES
    }

    /// Takes shard `i`'s batch and its size in jobs and bytes.
    fn take_batch(&mut self, i: usize) -> (Vec<Timed>, usize, usize) {
        let batch = std::mem::replace(&mut self.batches[i], Vec::with_capacity(BATCH));
        let bytes = std::mem::take(&mut self.batch_bytes[i]);
        let n = batch.len();
        (batch, n, bytes)
    }

    fn send(&mut self, i: usize) {
        let (batch, n, bytes) = self.take_batch(i);
        self.pending[i].add(n, bytes);
        // A shard gone (its thread ended) has nothing to give back; its count is lost only if
        // it panicked, which `finish` reports.
        let _ = self.queues[i].blocking_send(batch);
    }

    fn try_send(&mut self, i: usize) -> Result<(), usize> {
        if self.batches[i].is_empty() {
            return Ok(());
        }
        let (batch, n, bytes) = self.take_batch(i);
        let pending = &self.pending[i];
        if pending.jobs.load(Ordering::Relaxed) + n > self.waiting
            || pending.bytes.load(Ordering::Relaxed) + bytes > WAITING_BYTES
        {
            return Err(n);
        }
        pending.add(n, bytes);
        match self.queues[i].try_send(batch) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b)) => {
                pending.sub(n, bytes);
                Err(b.len())
            }
        }
    }

    /// The statistics so far, merged over the shards.
    pub fn snapshot(&self) -> Stats {
        snapshot(&self.stats)
    }

    /// A handle that takes snapshots from another thread.
    pub fn stats_handle(&self) -> Vec<Arc<Mutex<Stats>>> {
        self.stats.clone()
    }

    /// Sends what is queued, waits for every exchange in flight, and returns the merged
    /// statistics and the first TLS error. With a drain deadline set ([`Shutdown`]) it ends
    /// by then: the batches not yet handed over are dropped if their queue is full, and
    /// what is still queued or in flight at the deadline is dropped or cut.
    pub fn finish(mut self) -> anyhow::Result<(Stats, Option<String>)> {
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
        let mut stats = snapshot(&self.stats);
        for _ in 0..refused {
            stats.dropped("shutdown");
        }
        // A failed write is in the log's summary, which the caller reports.
        if let Some(Ok(mut log)) = self.log.as_ref().map(|l| l.lock()) {
            log.flush_records();
        }
        Ok((stats, self.client.tls_error()))
    }
}

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

/// The merge of every shard's statistics as they are now.
pub fn snapshot(shards: &[Arc<Mutex<Stats>>]) -> Stats {
    let mut all = Stats::default();
    for shard in shards {
        if let Ok(s) = shard.lock() {
            all.merge(&s);
        }
    }
    all
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
}

/// tokio's timer wheel ticks every millisecond: without a precise timer, sleep to within
/// this of the intended time, then yield until it.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// The last stretch of a precise wait is spent yielding rather than asleep: a CPU that
/// went idle takes up to a few hundred microseconds to wake on a virtual machine (measured
/// here: a median of 110 µs late with the timerfd alone, 15 µs with this).
const SPIN: Duration = Duration::from_micros(300);

/// The yielding stretch before a send: [`SPIN`], but at most a quarter of the time since the
/// previous send was due, so that closely spaced sends (a high `--rate`) do not keep the
/// thread spinning all the time. Those need it less: a thread that sends every few tens of
/// microseconds never goes idle long enough to wake slowly. Measured replaying 21,526
/// requests (one run each, against nginx): at `--rate 5000` half the CPU (2.7 s against
/// 5.2 s), p99 0.30 ms against 0.54 ms, p50 22 µs against 5 µs; at `--rate 20000` CPU 1.0 s
/// against 1.6 s, p99 1.8 ms against 3.7 ms (the spinning threads took the CPU from the work).
fn spin_before(intended: Instant, previous: Option<Instant>) -> Duration {
    match previous {
        Some(previous) => SPIN.min(intended.saturating_duration_since(previous) / 4),
        None => SPIN,
    }
}

/// Waits until `intended`. Precisely: on the shard's timerfd to within `spin` (no CPU spent
/// meanwhile) or, without one, on tokio's timer to within [`TIMER_SLACK`], then yielding
/// until the exact time. Otherwise (a paused clock) on tokio's timer alone.
async fn wait_until(
    intended: Instant,
    precise: bool,
    timer: Option<&PreciseTimer>,
    spin: Duration,
) {
    let now = Instant::now();
    if intended <= now {
        // Sleeping until a time already past would still wait for the next timer tick.
        return;
    }
    if !precise {
        tokio::time::sleep_until(intended).await;
        return;
    }
    // Without a timerfd, or if arming it failed, tokio's timer does the coarse part.
    let coarse = match timer {
        Some(timer) if intended - now > spin => timer.sleep(intended - now - spin).await.is_err(),
        Some(_) => false,
        None => true,
    };
    if coarse && intended - now > TIMER_SLACK {
        tokio::time::sleep_until(intended - TIMER_SLACK).await;
    }
    while Instant::now() < intended {
        tokio::task::yield_now().await;
    }
}

/// Jobs waiting in one worker's queue at most.
const WORKER_QUEUE: usize = 4;

/// A job on its way to a worker, with the time it was meant to leave.
struct Work {
    ex: Box<Exchange>,
    intended: Instant,
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

/// Sends the jobs of one queue, recording into `stats`.
///
/// Each of `slots` workers owns one connection and sends one request at a time. A job goes
/// to the worker already holding its captured connection's previous request when that one
/// is not finished (so requests of a connection stay in order), else to the least loaded
/// worker. No task, channel or lock per request beyond the worker's queue.
pub(crate) async fn run_shard(
    mut rx: mpsc::Receiver<Vec<Timed>>,
    shard: Shard,
    stats: Arc<Mutex<Stats>>,
) {
    let mut workers = Vec::new();
    let mut handles = JoinSet::new();
    for _ in 0..shard.slots.max(1) {
        let (tx, queue) = mpsc::channel(WORKER_QUEUE);
        let done = Arc::new(AtomicU64::new(0));
        handles.spawn(work(
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
        if let Ok(mut s) = stats.lock() {
            s.dropped("shutdown");
        }
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
                    let wait = wait_until(intended, shard.precise, timer.as_ref(), spin);
                    if shutdown
                        .unless(me, Shutdown::stopping, wait)
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
            if flows.len() >= prune_at {
                flows.retain(|_, &mut (w, n)| workers[w].done.load(Ordering::Relaxed) < n);
            }
            let busy = flows
                .get(&job.ex.flow)
                .filter(|&&(w, n)| workers[w].done.load(Ordering::Relaxed) < n)
                .map(|&(w, _)| w);
            let w = busy.unwrap_or_else(|| {
                let best = least_loaded(&workers, next);
                next = best + 1;
                best
            });
            workers[w].given += 1;
            flows.insert(job.ex.flow, (w, workers[w].given));
            shard.pending.sub(1, job.bytes);
            let work = Work {
                ex: job.ex,
                intended,
            };
            // Without waiting when there is room, as there mostly is: no future to poll.
            match workers[w].queue.try_send(work) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(work)) => {
                    let send = workers[w].queue.send(work);
                    match shutdown.unless(me, Shutdown::stopping, send).await {
                        Some(Ok(())) => {}
                        Some(Err(_)) => break 'jobs,
                        None => {
                            // Taken off the pending count above already.
                            workers[w].given -= 1;
                            if let Ok(mut s) = stats.lock() {
                                s.dropped("shutdown");
                            }
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

/// One worker: its connection, one request at a time, in the order queued.
#[allow(clippy::too_many_arguments, reason = "a task's captures, spelled out")]
async fn work(
    mut queue: mpsc::Receiver<Work>,
    done: Arc<AtomicU64>,
    client: Client,
    rewrites: Arc<Rewrites>,
    timeout: Duration,
    stats: Arc<Mutex<Stats>>,
    log: Log,
    progress: Arc<ShardProgress>,
    (shutdown, shard): (Arc<Shutdown>, usize),
) {
    let mut slot = Slot::default();
    let mut wire = Vec::new();
    let mut name = String::new();
    while let Some(Work { ex, intended }) = queue.recv().await {
        if shutdown.stopping() {
            if let Ok(mut s) = stats.lock() {
                s.dropped("shutdown");
            }
            done.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        request::write(&ex, &rewrites, &mut wire);
        // Lateness is taken at the real send: waiting for a free worker or for the
        // connection's previous request counts, so nothing hides it.
        let late = Instant::now().saturating_duration_since(intended);
        progress.in_flight.fetch_add(1, Ordering::Relaxed);
        let is_head = ex.request.method.eq_ignore_ascii_case("HEAD");
        let exchange = client.exchange(&mut slot, &wire, is_head, timeout);
        // Cut at the drain deadline: sent, so replayed, with the shadow error `shutdown`.
        let answer = shutdown
            .unless(shard, Shutdown::is_cut, exchange)
            .await
            .unwrap_or(Err(Failure::Shutdown));
        let production = ex
            .response
            .as_ref()
            .map(|r| (r.status, ex.ttfb_us().unwrap_or(0), ex.total_us()));
        route_into(&mut name, &ex.request.method, path_of(&ex.request.target));
        log_line(&log, &ex, &name, &answer);
        if let Ok(mut s) = stats.lock() {
            s.late(late);
            s.replayed(&name, production, answer, timeout);
        }
        progress.sent.fetch_add(1, Ordering::Relaxed);
        if answer.is_err() {
            progress.errors.fetch_add(1, Ordering::Relaxed);
        }
        progress.in_flight.fetch_sub(1, Ordering::Relaxed);
        done.fetch_add(1, Ordering::Relaxed);
    }
}

fn log_line(log: &Log, ex: &Exchange, route: &str, answer: &Result<Answer, Failure>) {
    let Some(log) = log.as_ref() else {
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
        // Anomalies of the exchange: `body_cut`, the shadow's body was cut at the drain cap.
        "flags": match answer {
            Ok(a) if a.body_cut => vec!["body_cut"],
            _ => Vec::new(),
        },
        "shadow": match answer {
            Ok(a) => json!({"status": a.status, "ttfb_us": a.ttfb.as_micros() as u64, "total_us": a.total.as_micros() as u64, "error": null}),
            Err(f) => json!({"status": null, "ttfb_us": null, "total_us": null, "error": f.name()}),
        },
    });
    let line = line.to_string();
    if let Ok(mut log) = log.lock() {
        log.line(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    //! Pacing under a paused clock: tokio's time only moves when every task waits, so send
    //! times and lateness come out exact and the tests take no real time.

    use super::*;
    use crate::replay::request::HostHeader;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A shadow that answers every request after `delay` and records, per request, the
    /// paused clock's time (since `t0`) at which its head arrived and its target.
    async fn shadow(delay: Duration, t0: Instant) -> (SocketAddr, Arc<Mutex<Vec<(u64, String)>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                let record = record.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_string();
                            buf.drain(..end + 4);
                            let target = head.split(' ').nth(1).unwrap_or("").to_string();
                            let ms = (Instant::now() - t0).as_millis() as u64;
                            record.lock().unwrap().push((ms, target));
                            tokio::time::sleep(delay).await;
                            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                                .await
                                .unwrap();
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    fn job(flow: u64, target: &str, at: Option<Instant>) -> Timed {
        let mut ex = crate::replay::test_exchange("GET", target, &[], b"");
        ex.flow = FlowId(flow);
        Timed {
            ex: Box::new(ex),
            intended: at,
            bytes: 0,
        }
    }

    /// Runs one shard over `jobs` (intended times in ms from now) against a shadow answering
    /// in `delay_ms`; returns when each target arrived (ms) and the shard's statistics.
    async fn run(
        slots: usize,
        delay_ms: u64,
        jobs: &[(u64, &str, u64)],
    ) -> (Vec<(u64, String)>, Stats) {
        let t0 = Instant::now();
        let (addr, seen) = shadow(Duration::from_millis(delay_ms), t0).await;
        let shard = Shard {
            client: Client::new(addr, None),
            slots,
            timeout: Duration::from_secs(5),
            rewrites: Arc::new(Rewrites {
                host: HostHeader::Keep,
                set: Vec::new(),
                strip: Vec::new(),
            }),
            log: None,
            progress: Arc::default(),
            precise: false,
            pending: Arc::default(),
            shutdown: Arc::new(Shutdown::new(1)),
            index: 0,
        };
        let (tx, rx) = mpsc::channel(4);
        let batch = jobs
            .iter()
            .map(|&(flow, target, ms)| job(flow, target, Some(t0 + Duration::from_millis(ms))))
            .collect();
        tx.send(batch).await.unwrap();
        drop(tx);
        let stats = Arc::new(Mutex::new(Stats::default()));
        run_shard(rx, shard, stats.clone()).await;
        let stats = stats.lock().unwrap().clone();
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        (seen, stats)
    }

    /// The scheduling policy of a thread.
    fn policy(thread: &JoinHandle<()>) -> libc::c_int {
        use std::os::unix::thread::JoinHandleExt;
        let mut policy = -1;
        let mut param = libc::sched_param { sched_priority: 0 };
        // SAFETY: the thread is alive (not joined) and both pointers are valid.
        let rc =
            unsafe { libc::pthread_getschedparam(thread.as_pthread_t(), &mut policy, &mut param) };
        assert_eq!(rc, 0);
        policy
    }

    #[test]
    fn unpaced_replay_threads_run_as_batch_work_and_paced_ones_do_not() {
        for unpaced in [true, false] {
            let engine = Engine::start(Config {
                unpaced,
                ..config(2)
            })
            .unwrap();
            let want = if unpaced {
                libc::SCHED_BATCH
            } else {
                libc::SCHED_OTHER
            };
            // Each thread sets its policy as it starts: wait for that, a bounded while.
            let started = std::time::Instant::now();
            while engine.threads.iter().any(|t| policy(t) != want)
                && started.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(engine.threads.len(), 2);
            for thread in &engine.threads {
                assert_eq!(policy(thread), want, "unpaced: {unpaced}");
            }
            engine.finish().unwrap();
        }
    }

    fn config(shards: usize) -> Config {
        Config {
            shadow: "127.0.0.1:9".parse().unwrap(),
            tls: None,
            concurrency: 4,
            timeout: Duration::from_secs(1),
            rewrites: Rewrites {
                host: HostHeader::Keep,
                set: Vec::new(),
                strip: Vec::new(),
            },
            log: None,
            queue: 1,
            waiting: 1_000,
            shards: Some(shards),
            unpaced: false,
        }
    }

    #[test]
    fn batches_are_handed_over_by_bytes_as_well_as_by_count() {
        let mut engine = Engine::start(config(1)).unwrap();
        let big = |flow| {
            let mut ex = crate::replay::test_exchange("POST", "/u", &[], &vec![b'x'; 600 << 10]);
            ex.flow = FlowId(flow);
            Job {
                ex: Box::new(ex),
                at: None,
            }
        };
        // Two 600 KiB requests pass 1 MiB: the batch goes with two jobs, not 64.
        engine.push(big(1));
        assert_eq!(engine.batches[0].len(), 1);
        engine.push(big(2));
        assert!(engine.batches[0].is_empty());
        assert_eq!(engine.batch_bytes[0], 0);
        engine.push(big(3));
        assert_eq!(engine.batches[0].len(), 1);
        let (stats, _) = engine.finish().unwrap();
        assert_eq!(stats.replayed, 3, "all three were sent (to a closed port)");
    }

    #[test]
    fn a_paced_job_goes_at_once_to_an_idle_shard() {
        let job = |flow, at| {
            let mut ex = crate::replay::test_exchange("GET", "/", &[], b"");
            ex.flow = FlowId(flow);
            Job {
                ex: Box::new(ex),
                at,
            }
        };
        let hour = Some(Duration::from_secs(3600));
        let mut engine = Engine::start(config(1)).unwrap();
        // Nothing waiting: the job is handed over alone, not held for 63 more.
        engine.push(job(1, hour));
        assert!(engine.batches[0].is_empty());
        assert_eq!(engine.pending[0].jobs.load(Ordering::Relaxed), 1);
        // The shard now waits (an hour) to send it: the next one joins a batch.
        engine.push(job(2, hour));
        assert_eq!(engine.batches[0].len(), 1);
        drop(engine);
        // Unpaced jobs always go in batches.
        let mut engine = Engine::start(config(1)).unwrap();
        engine.push(job(1, None));
        assert_eq!(engine.batches[0].len(), 1);
        assert_eq!(engine.pending[0].jobs.load(Ordering::Relaxed), 0);
        engine.finish().unwrap();
    }

    #[test]
    fn a_live_source_is_refused_past_the_bytes_waiting() {
        let mut engine = Engine::start(Config {
            queue: 1_000,
            ..config(1)
        })
        .unwrap();
        // A shard whose queue only fills: nothing is taken from it while the test pushes.
        // (Its workers can take at most 4 x 5 jobs; the rest wait.)
        let mut refused = 0;
        let mut accepted = 0;
        for flow in 0..400 {
            let mut ex = crate::replay::test_exchange("POST", "/u", &[], &vec![b'x'; 1 << 20]);
            ex.flow = FlowId(flow);
            let job = Job {
                ex: Box::new(ex),
                at: Some(Duration::from_secs(3600)),
            };
            match engine.try_push(job) {
                Ok(()) => accepted += 1,
                Err(n) => refused += n,
            }
        }
        assert!(refused > 0, "400 MiB cannot all wait");
        let waiting = engine.pending[0].bytes.load(Ordering::Relaxed);
        assert!(waiting <= WAITING_BYTES, "{waiting}");
        assert!(accepted >= WAITING_BYTES / (2 << 20), "{accepted}");
        drop(engine);
    }

    #[test]
    fn the_spin_before_a_send_shrinks_with_the_gap_between_sends() {
        let t0 = Instant::now();
        let us = Duration::from_micros;
        assert_eq!(spin_before(t0 + us(10), None), SPIN);
        assert_eq!(spin_before(t0 + us(20_000), Some(t0)), SPIN);
        assert_eq!(spin_before(t0 + us(1_200), Some(t0)), SPIN);
        assert_eq!(spin_before(t0 + us(100), Some(t0)), us(25));
        assert_eq!(spin_before(t0, Some(t0 + us(5))), Duration::ZERO);
    }

    fn lateness_ms(stats: &Stats, percentile: f64) -> u64 {
        stats
            .lateness
            .as_ref()
            .map_or(0, |h| h.value_at_percentile(percentile) / 1000)
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_drops_what_is_queued_and_a_cut_gives_up_what_is_in_flight() {
        let t0 = Instant::now();
        // A shadow that takes 10 s: nothing is answered before the cut.
        let (addr, seen) = shadow(Duration::from_secs(10), t0).await;
        let shutdown = Arc::new(Shutdown::new(1));
        let shard = Shard {
            client: Client::new(addr, None),
            slots: 2,
            timeout: Duration::from_secs(30),
            rewrites: Arc::new(Rewrites {
                host: HostHeader::Keep,
                set: Vec::new(),
                strip: Vec::new(),
            }),
            log: None,
            progress: Arc::default(),
            precise: false,
            pending: Arc::default(),
            shutdown: shutdown.clone(),
            index: 0,
        };
        let (tx, rx) = mpsc::channel(4);
        // Ten connections' requests due now: two in flight, eight in the workers' queues;
        // two more due in an hour, waited for by the dispatcher.
        let mut batch: Vec<Timed> = (0..10).map(|i| job(i, "/now", Some(t0))).collect();
        batch.extend((10..12).map(|i| job(i, "/later", Some(t0 + Duration::from_secs(3600)))));
        tx.send(batch).await.unwrap();
        let stats = Arc::new(Mutex::new(Stats::default()));
        let run = tokio::spawn(run_shard(rx, shard, stats.clone()));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(seen.lock().unwrap().len(), 2, "two requests in flight");
        // Stop: nothing more is sent, what is in flight may still finish.
        shutdown.stop(Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(stats.lock().unwrap().replayed, 0, "still in flight");
        // Cut: what is in flight is given up.
        shutdown.cut();
        drop(tx);
        run.await.unwrap();
        let s = stats.lock().unwrap();
        assert_eq!(s.replayed, 2);
        assert_eq!(s.shadow.errors.get("shutdown"), Some(&2));
        let dropped = s.skipped[&("dropped".to_string(), "shutdown".to_string())];
        assert_eq!(
            dropped, 10,
            "eight queued at the workers, two waiting for their time"
        );
        assert_eq!(s.seen, 12);
        assert_eq!(seen.lock().unwrap().len(), 2, "nothing else was sent");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_leave_at_their_intended_times_when_the_shadow_keeps_up() {
        let (seen, stats) = run(
            4,
            5,
            &[(1, "/a", 0), (2, "/b", 10), (1, "/c", 40), (3, "/d", 1000)],
        )
        .await;
        let at: Vec<(u64, &str)> = seen.iter().map(|(ms, t)| (*ms, t.as_str())).collect();
        assert_eq!(at, [(0, "/a"), (10, "/b"), (40, "/c"), (1000, "/d")]);
        assert_eq!(stats.replayed, 4);
        assert_eq!(lateness_ms(&stats, 100.0), 0, "nothing was late");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_waits_for_its_previous_answer_and_the_wait_is_lateness() {
        // /c belongs to the same captured connection as /a, whose answer takes 50 ms: it
        // leaves at 50 ms, 30 ms late. /b, on another connection, is not held up.
        let (seen, stats) = run(4, 50, &[(1, "/a", 0), (2, "/b", 10), (1, "/c", 20)]).await;
        let at: Vec<(u64, &str)> = seen.iter().map(|(ms, t)| (*ms, t.as_str())).collect();
        assert_eq!(at, [(0, "/a"), (10, "/b"), (50, "/c")]);
        assert_eq!(lateness_ms(&stats, 100.0), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn the_concurrency_cap_delays_requests_and_says_by_how_much() {
        // One connection: each request waits for the one before, whatever its connection.
        let (seen, stats) = run(1, 50, &[(1, "/a", 0), (2, "/b", 10), (3, "/c", 20)]).await;
        let at: Vec<(u64, &str)> = seen.iter().map(|(ms, t)| (*ms, t.as_str())).collect();
        assert_eq!(at, [(0, "/a"), (50, "/b"), (100, "/c")]);
        assert_eq!(lateness_ms(&stats, 100.0), 80, "/c left 80 ms late");
        assert_eq!(stats.shadow.requests, 3);
    }
}
