//! Handing jobs to the shards: in batches (one wake-up of a shard per batch), to the shard
//! of the job's captured connection, with the jobs and bytes each shard has waiting counted.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::http1::Exchange;
use crate::reassembly::FlowId;

use super::{Engine, Job};

/// Jobs (and their bytes) handed to a shard and not yet given to one of its workers.
#[derive(Default)]
pub(crate) struct Pending {
    pub(super) jobs: AtomicUsize,
    pub(super) bytes: AtomicUsize,
}

impl Pending {
    pub(super) fn add(&self, jobs: usize, bytes: usize) {
        self.jobs.fetch_add(jobs, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn sub(&self, jobs: usize, bytes: usize) {
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
/// Bytes waiting per shard at most for [`Engine::try_push`], beside [`super::Config::waiting`].
pub const WAITING_BYTES: usize = 64 << 20;

impl Engine {
    fn timed(&mut self, job: Job) -> Timed {
        let origin = *self.origin.get_or_insert_with(Instant::now);
        Timed {
            bytes: job.ex.heap_bytes(),
            ex: job.ex,
            intended: job.at.map(|at| origin + at),
        }
    }

    /// The shard a job goes to: its captured connection's when requests keep their order
    /// (a connection's requests must meet in one shard), else the shard whose turn it is
    /// (the turn passes on when its batch is handed over).
    fn shard_of(&self, flow: FlowId) -> usize {
        if self.order == super::Order::Independent {
            return self.turn;
        }
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
    /// over [`super::Config::waiting`] jobs or [`WAITING_BYTES`], the batch is dropped and the
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

    /// Once shard `i`'s batch is handed over, the next shard's turn.
    fn pass_turn(&mut self, i: usize) {
        if i == self.turn {
            self.turn = (i + 1) % self.queues.len();
        }
    }

    /// Takes shard `i`'s batch and its size in jobs and bytes.
    fn take_batch(&mut self, i: usize) -> (Vec<Timed>, usize, usize) {
        let batch = std::mem::replace(&mut self.batches[i], Vec::with_capacity(BATCH));
        let bytes = std::mem::take(&mut self.batch_bytes[i]);
        let n = batch.len();
        (batch, n, bytes)
    }

    fn send(&mut self, i: usize) {
        self.pass_turn(i);
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
        self.pass_turn(i);
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
}
