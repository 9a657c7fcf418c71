//! Waiting for a send time to the microsecond, without spinning.
//!
//! tokio's timers tick every millisecond and fire at the first tick after their deadline,
//! up to a millisecond or two late. A paced replay must send within a fraction of that, so
//! each replay thread has a Linux timerfd armed for the exact wait: the kernel wakes the
//! thread's event loop through the same epoll as its sockets, within the thread's timer
//! slack (50 µs by default) of the deadline, and the thread takes no CPU meanwhile.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::io::AsRawFd;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

pub(crate) struct PreciseTimer {
    fd: AsyncFd<File>,
}

impl PreciseTimer {
    /// A timer on the monotonic clock, registered with the current tokio runtime. The
    /// calling thread's timer slack is set to a microsecond, so the kernel does not defer the
    /// wake-up by its default 50 µs to batch it with others.
    pub fn new() -> io::Result<PreciseTimer> {
        // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects this thread only.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong) };
        // SAFETY: timerfd_create takes no pointers; a non-negative result is a new descriptor
        // that nothing else owns.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is open and owned by nobody else (see above).
        let file = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        // SAFETY: the File owns the descriptor and is owned by the AsyncFd, so the
        // descriptor stays open, and the same, for as long as the AsyncFd lives.
        let fd = unsafe { AsyncFd::register(file) }?;
        Ok(PreciseTimer { fd })
    }

    /// Waits for `wait` from now.
    pub async fn sleep(&self, wait: Duration) -> io::Result<()> {
        // A zero value would disarm the timer instead of firing it.
        let wait = wait.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: libc::time_t::try_from(wait.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: the descriptor is a timerfd we own; `spec` is a valid itimerspec and the
        // old value is not asked for (null).
        let armed =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if armed < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            let mut ready = self.fd.readable().await?;
            // Reading the expiration count disarms readiness until the next arming.
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| fd.get_ref().read(&mut expirations)) {
                Ok(read) => return read.map(|_| ()),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn the_timer_fires_after_the_wait_and_can_be_armed_again() {
        let timer = PreciseTimer::new().unwrap();
        for wait in [
            Duration::from_micros(300),
            Duration::ZERO,
            Duration::from_millis(3),
        ] {
            let start = Instant::now();
            // Bounded, so a timer that never fires fails instead of hanging.
            tokio::time::timeout(Duration::from_secs(10), timer.sleep(wait))
                .await
                .expect("the timer fired")
                .unwrap();
            assert!(start.elapsed() >= wait, "fired early for {wait:?}");
        }
    }
}
