//! Stopping a run: a drain deadline, then nothing more sent, then what is in flight cut.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

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
    /// One per shard: the tasks of that shard waiting in [`Shutdown::unless`], woken when
    /// `stop` or `cut` is set.
    wake: Vec<Mutex<Waiting>>,
}

/// The wakers of one shard's tasks that wait in [`Shutdown::unless`]. A task registers once
/// per call and again only if its waker changes, so a poll costs a flag load, not a lock.
/// Bounded by the shard's tasks (its workers and its dispatcher): each has at most one call
/// waiting, and a call's entry is freed when it ends.
#[derive(Default)]
struct Waiting {
    wakers: Vec<Option<Waker>>,
    /// Free entries of `wakers`, reused first.
    free: Vec<usize>,
}

impl Waiting {
    fn insert(&mut self, waker: Waker) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.wakers[i] = Some(waker);
                i
            }
            None => {
                self.wakers.push(Some(waker));
                self.wakers.len() - 1
            }
        }
    }

    fn remove(&mut self, i: usize) {
        if let Some(w) = self.wakers.get_mut(i) {
            *w = None;
            self.free.push(i);
        }
    }

    fn wake(&self) {
        for w in self.wakers.iter().flatten() {
            w.wake_by_ref();
        }
    }
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
            wake: (0..shards).map(|_| Mutex::default()).collect(),
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
            if let Ok(waiting) = w.lock() {
                waiting.wake();
            }
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
        let fut = std::pin::pin!(make());
        Unless {
            fut,
            shutdown: self,
            shard,
            until,
            registered: None,
        }
        .await
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

/// The future of [`Shutdown::unless`]: `fut`, unless `until` holds first.
struct Unless<'a, F> {
    fut: Pin<&'a mut F>,
    shutdown: &'a Shutdown,
    shard: usize,
    until: fn(&Shutdown) -> bool,
    /// This call's entry in the shard's [`Waiting`], and the waker left there.
    registered: Option<(usize, Waker)>,
}

impl<F: Future> Future for Unless<'_, F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if (this.until)(this.shutdown) {
            return Poll::Ready(None);
        }
        if let Poll::Ready(out) = this.fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        let current = matches!(&this.registered, Some((_, w)) if w.will_wake(cx.waker()));
        if !current {
            let Ok(mut waiting) = this.shutdown.wake[this.shard].lock() else {
                // Poisoned: no waker can be left, so stop rather than wait unwoken.
                return Poll::Ready(None);
            };
            if let Some((i, _)) = this.registered.take() {
                waiting.remove(i);
            }
            let i = waiting.insert(cx.waker().clone());
            this.registered = Some((i, cx.waker().clone()));
        }
        // Read again once registered: a flag set (and its wake-up sent) between the first
        // read and the registration is not lost.
        if (this.until)(this.shutdown) {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

impl<F> Drop for Unless<'_, F> {
    fn drop(&mut self) {
        if let Some((i, _)) = self.registered.take() {
            if let Ok(mut waiting) = self.shutdown.wake[self.shard].lock() {
                waiting.remove(i);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(s: &Shutdown) -> (usize, usize) {
        let w = s.wake[0].lock().unwrap();
        (w.wakers.len(), w.wakers.iter().flatten().count())
    }

    #[tokio::test]
    async fn a_waiting_call_is_woken_by_a_stop_and_leaves_no_entry_behind() {
        let s = Arc::new(Shutdown::new(1));
        // Calls that wait once and then end: each registers, and its entry is reused.
        for _ in 0..100 {
            let out = s
                .unless(0, Shutdown::stopping, tokio::task::yield_now)
                .await;
            assert_eq!(out, Some(()));
        }
        assert_eq!(entries(&s), (1, 0), "one entry, free again");
        // A call that would wait for ever, stopped from another thread.
        let stopper = {
            let s = s.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                s.stop(Duration::from_secs(1));
            })
        };
        let waiting = s.unless(0, Shutdown::stopping, std::future::pending::<()>);
        let out = tokio::time::timeout(Duration::from_secs(10), waiting).await;
        assert_eq!(out, Ok(None), "woken and given up");
        stopper.join().unwrap();
        assert_eq!(entries(&s).1, 0);
        // Once stopped, a call gives up before it starts.
        assert_eq!(s.unless(0, Shutdown::stopping, || async { 1 }).await, None);
    }
}
