//! Waiting for a request's intended send time, precisely: the one `unsafe` call of the bench
//! crate sets this thread's timer slack to 1 ns, so `nanosleep` wakes within microseconds
//! instead of the default 50 µs late.

use std::time::{Duration, Instant};

/// Call once on each generator thread.
pub fn precise_timers() {
    // SAFETY: prctl(PR_SET_TIMERSLACK, n) only sets a scheduling attribute of the calling
    // thread; it reads no memory of ours.
    unsafe {
        libc::prctl(
            libc::PR_SET_TIMERSLACK,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
    }
}

/// Sleeps until `t` (returns at once if it has passed).
pub fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// How long after `intended` an action at `actual` happened (zero if early).
pub fn lateness(intended: Instant, actual: Instant) -> Duration {
    actual.saturating_duration_since(intended)
}
