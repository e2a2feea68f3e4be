//! The shard's coarse clock: milliseconds since the shard started, advanced by the sweeper
//! every tick. Reading it costs no system call, so the request path never asks the kernel for
//! the time to set a deadline.

use std::cell::Cell;
use std::time::{Duration, Instant};

pub struct CoarseClock {
    start: Instant,
    now_ms: Cell<u64>,
}

impl Default for CoarseClock {
    fn default() -> Self {
        // Start at 1 so that a deadline is never 0, which means "none".
        CoarseClock { start: Instant::now(), now_ms: Cell::new(1) }
    }
}

impl CoarseClock {
    pub fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    /// The deadline `after` from now.
    pub fn deadline(&self, after: Duration) -> u64 {
        self.now_ms() + after.as_millis() as u64
    }

    /// Called by the sweeper once per tick.
    pub fn advance(&self) {
        self.now_ms.set(1 + self.start.elapsed().as_millis() as u64);
    }
}
