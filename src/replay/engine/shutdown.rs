//! Stopping a run: a drain deadline, then nothing more sent, then what is in flight cut.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

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
    pub(super) fn new(shards: usize) -> Shutdown {
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

    pub(super) fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    fn wake_all(&self) {
        for w in &self.wake {
            w.notify_waiters();
        }
    }

    /// Runs the future `make` returns on shard `shard` unless `until` (one of
    /// [`Shutdown::stopping`] or `is_cut`) becomes true first: then None. The future is made
    /// here, in place, rather than handed over: a request's future is large, and moving it
    /// in was a copy per request.
    pub(super) async fn unless<F: Future>(
        &self,
        shard: usize,
        until: fn(&Shutdown) -> bool,
        make: impl FnOnce() -> F,
    ) -> Option<F::Output> {
        let mut fut = std::pin::pin!(make());
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
    pub(super) fn ended(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.running = state.running.saturating_sub(1);
        }
        self.changed.notify_all();
    }

    /// Waits for every replay thread to end, cutting what is in flight once the drain
    /// deadline (if any is set, now or while waiting) passes.
    pub(super) fn wait(&self) {
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
pub(super) struct Ended(pub(super) Arc<Shutdown>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.ended();
    }
}
