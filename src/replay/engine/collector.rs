//! Each shard's statistics, owned by the shard's thread: its workers are tasks on its
//! single-threaded runtime, so they record into them without a lock. Other threads (a
//! status line, a `/metrics` scrape) get a copy by asking the shard, which answers between
//! two steps of its tasks; nothing is shared per request.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::replay::stats::Stats;

/// One shard's statistics as its tasks see them.
pub(super) type Collector = Rc<RefCell<Stats>>;

/// A request for a copy of a shard's statistics.
type Ask = oneshot::Sender<Stats>;

/// Requests for a copy waiting per shard at most: a caller waits for room beyond that.
const ASKS_WAITING: usize = 16;

/// Takes snapshots of every shard's statistics, from any thread outside the shards.
#[derive(Clone)]
pub struct Snapshots {
    shards: Vec<Asker>,
}

/// The asking end of one shard.
#[derive(Clone)]
struct Asker {
    ask: mpsc::Sender<Ask>,
    /// The shard's figures once it has ended, set once, before it stops answering.
    last: Arc<OnceLock<Stats>>,
}

/// The shard's end: answers the requests, and leaves its last figures when it ends.
pub(super) struct Answerer {
    asks: mpsc::Receiver<Ask>,
    last: Arc<OnceLock<Stats>>,
}

impl Snapshots {
    /// The asking ends of `shards` shards, and the shards' ends.
    pub(super) fn new(shards: usize) -> (Snapshots, Vec<Answerer>) {
        let (askers, answerers) = (0..shards)
            .map(|_| {
                let (ask, asks) = mpsc::channel(ASKS_WAITING);
                let last = Arc::new(OnceLock::new());
                (
                    Asker {
                        ask,
                        last: last.clone(),
                    },
                    Answerer { asks, last },
                )
            })
            .unzip();
        (Snapshots { shards: askers }, answerers)
    }

    /// The merge of every shard's statistics as they are now; a shard that has ended gives
    /// its last figures. Waits for each shard's answer, so never call it from a runtime's
    /// thread (a shard's own, above all).
    pub fn take(&self) -> Stats {
        let mut all = Stats::default();
        for shard in &self.shards {
            if let Some(stats) = shard.take() {
                all.merge(&stats);
            }
        }
        all
    }

    /// The merge of every shard's last figures: those that ended (all of them once the
    /// engine has finished).
    pub(super) fn last(&self) -> Stats {
        let mut all = Stats::default();
        for shard in &self.shards {
            if let Some(stats) = shard.last.get() {
                all.merge(stats);
            }
        }
        all
    }
}

impl Asker {
    fn take(&self) -> Option<Stats> {
        let (reply, answer) = oneshot::channel();
        if self.ask.blocking_send(reply).is_ok() {
            if let Ok(stats) = answer.blocking_recv() {
                return Some(stats);
            }
        }
        // Ended: its last figures were left before it stopped answering.
        self.last.get().cloned()
    }
}

impl Answerer {
    /// Answers requests for a copy of `stats` until the asking ends are gone.
    pub(super) async fn answer(mut self, stats: Collector) {
        while let Some(reply) = self.asks.recv().await {
            let _ = reply.send(stats.borrow().clone());
        }
    }

    /// Where the shard leaves its last figures.
    pub(super) fn last(&self) -> Arc<OnceLock<Stats>> {
        self.last.clone()
    }
}
