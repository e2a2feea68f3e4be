//! The data plane's log lines are written by [`proto::logging`] (levels, text or JSON).
//! Shards log only what is rare (a failing upstream, at most once a second per shard through
//! [`RateLimited`]); nothing is logged per request at info level.

use std::cell::Cell;

/// At most one line a second from one place on one shard; the lines held back are counted
/// and reported with the next one. Shard-local (`Cell`s), read with the coarse clock.
#[derive(Default)]
pub struct RateLimited {
    next_ms: Cell<u64>,
    held_back: Cell<u64>,
}

impl RateLimited {
    /// `Some(lines held back since the last one)` when a line may be written now.
    pub fn allow(&self, now_ms: u64) -> Option<u64> {
        if now_ms < self.next_ms.get() {
            self.held_back.set(self.held_back.get() + 1);
            return None;
        }
        self.next_ms.set(now_ms + 1000);
        Some(self.held_back.replace(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_and_a_count_of_the_rest() {
        let limit = RateLimited::default();
        assert_eq!(limit.allow(5), Some(0));
        assert_eq!(limit.allow(6), None);
        assert_eq!(limit.allow(1004), None);
        assert_eq!(limit.allow(1005), Some(2));
        assert_eq!(limit.allow(1006), None);
    }
}
