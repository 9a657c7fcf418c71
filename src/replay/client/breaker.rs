//! The circuit breaker of one shadow (RELIABILITY.md section 1 item 8).

use std::time::{Duration, Instant};

/// Consecutive connect errors or timeouts that open the circuit (RELIABILITY.md section 1
/// item 8).
pub const BREAKER_TRIP: u32 = 5;
/// How long an open circuit refuses requests before one probe is let through.
pub const BREAKER_OPEN: Duration = Duration::from_secs(1);

/// A circuit breaker for one shadow: a dead or hung shadow costs a few failures, not a
/// timeout per request. Refused requests are shadow errors (`circuit_open`), never dropped.
#[derive(Default)]
pub(super) struct Breaker {
    consecutive: u32,
    open_until: Option<Instant>,
    probing: bool,
    /// Times the circuit opened from closed (a failed probe keeps it open: not counted).
    opened: u64,
    /// When it last opened from closed, while it is open or half-open.
    opened_at: Option<Instant>,
    /// Time spent open or half-open, closed spells only.
    open_for: Duration,
}

impl Breaker {
    /// Whether a request may go; `now` is read only while the circuit is open.
    pub(super) fn allow(&mut self, now: impl FnOnce() -> Instant) -> bool {
        match self.open_until {
            Some(until) if now() < until => false,
            Some(_) if self.probing => false,
            Some(_) => {
                // Half-open: one probe decides.
                self.probing = true;
                true
            }
            None => true,
        }
    }

    /// Whether no failure has been counted since the last success.
    pub(super) fn is_closed(&self) -> bool {
        self.consecutive == 0 && self.open_until.is_none()
    }

    /// Counts an outcome; `now` is read only for a failure or when the circuit closes.
    pub(super) fn record(&mut self, ok: bool, now: impl FnOnce() -> Instant) {
        if ok {
            if let Some(at) = self.opened_at.take() {
                self.open_for += now().saturating_duration_since(at);
            }
            self.consecutive = 0;
            self.open_until = None;
            self.probing = false;
            return;
        }
        let now = now();
        self.consecutive += 1;
        if self.probing || self.consecutive >= BREAKER_TRIP {
            if self.opened_at.is_none() {
                self.opened += 1;
                self.opened_at = Some(now);
            }
            self.open_until = Some(now + BREAKER_OPEN);
            self.probing = false;
        }
    }

    /// How many times the circuit opened, and for how long in all up to `now`.
    pub(super) fn history(&self, now: Instant) -> (u64, Duration) {
        let current = self
            .opened_at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        (self.opened, self.open_for + current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_repeated_failures_and_probes_once() {
        let mut b = Breaker::default();
        let t0 = Instant::now();
        for _ in 0..BREAKER_TRIP {
            assert!(b.allow(|| t0));
            b.record(false, || t0);
        }
        assert!(!b.allow(|| t0 + Duration::from_millis(10)), "open");
        let later = t0 + BREAKER_OPEN + Duration::from_millis(1);
        assert!(b.allow(|| later), "one probe when half-open");
        assert!(!b.allow(|| later), "only one");
        b.record(false, || later);
        assert!(
            !b.allow(|| later + Duration::from_millis(1)),
            "a failed probe opens it again"
        );
        let again = later + BREAKER_OPEN + Duration::from_millis(1);
        assert!(b.allow(|| again));
        b.record(true, || again);
        // Opened once (the failed probe kept it open), for as long as it was not closed.
        assert_eq!(b.history(again + BREAKER_OPEN), (1, again - t0));
        assert!(
            b.allow(|| again) && b.allow(|| again),
            "a success closes it"
        );
    }
}
