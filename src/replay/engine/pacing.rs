//! Waiting for a job's send time, to within microseconds when the kernel's timer allows.

use std::time::Duration;

use tokio::time::Instant;

use crate::replay::timer::PreciseTimer;

/// tokio's timer wheel ticks every millisecond: without a precise timer, sleep to within
/// this of the intended time, then yield until it.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// The last stretch of a precise wait is spent yielding rather than asleep: a CPU that
/// went idle takes up to a few hundred microseconds to wake on a virtual machine (measured
/// here: a median of 110 µs late with the timerfd alone, 15 µs with this).
pub(super) const SPIN: Duration = Duration::from_micros(300);

/// The yielding stretch before a send: [`SPIN`], but at most a quarter of the time since the
/// previous send was due, so that closely spaced sends (a high `--rate`) do not keep the
/// thread spinning all the time. Those need it less: a thread that sends every few tens of
/// microseconds never goes idle long enough to wake slowly. Measured replaying 21,526
/// requests (one run each, against nginx): at `--rate 5000` half the CPU (2.7 s against
/// 5.2 s), p99 0.30 ms against 0.54 ms, p50 22 µs against 5 µs; at `--rate 20000` CPU 1.0 s
/// against 1.6 s, p99 1.8 ms against 3.7 ms (the spinning threads took the CPU from the work).
pub(super) fn spin_before(intended: Instant, previous: Option<Instant>) -> Duration {
    match previous {
        Some(previous) => SPIN.min(intended.saturating_duration_since(previous) / 4),
        None => SPIN,
    }
}

/// Waits until `intended`. Precisely: on the shard's timerfd to within `spin` (no CPU spent
/// meanwhile) or, without one, on tokio's timer to within [`TIMER_SLACK`], then yielding
/// until the exact time. Otherwise (a paused clock) on tokio's timer alone.
pub(super) async fn wait_until(
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
