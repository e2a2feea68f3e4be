//! Throttling: exact token buckets shared by every shard, without a lock.
//!
//! Each throttle is one GCRA cell: an atomic holding the bucket's theoretical arrival time
//! (TAT) in nanoseconds of a process-wide clock. Admitting a request is one compare-and-swap:
//! `tat' = max(tat, now) + interval`, allowed while `tat' - now <= burst * interval`. From
//! idle that admits exactly `burst` requests at once, then one per `interval`: a rate of
//! 10,000/s with burst 5,000 admits 10,000/s and 5,000 at once, whichever shards the
//! connections land on, because every shard updates the same cell. The error bound is the
//! clock's: none beyond nanosecond rounding of `1e9 / rate`.
//!
//! Why a shared atomic (invariant 1 allows it with a reason): per-shard buckets drift by up
//! to a burst per shard, which is the inaccuracy this gateway is built to avoid. One CAS on a
//! cache line per throttle per request costs little against the TCP work of the request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// One throttle's state, on its own cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Cell {
    tat_ns: AtomicU64,
}

impl Cell {
    /// Takes one token at `now_ns` if the bucket has one. Pure apart from the atomic: the
    /// clock is an argument.
    pub fn admit(&self, now_ns: u64, interval_ns: u64, burst: u64) -> bool {
        let capacity = interval_ns.saturating_mul(burst);
        let mut tat = self.tat_ns.load(Ordering::Acquire);
        loop {
            let next = tat.max(now_ns).saturating_add(interval_ns);
            if next - now_ns > capacity {
                return false;
            }
            match self.tat_ns.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(current) => tat = current,
            }
        }
    }
}

impl Cell {
    /// A cell for a throttle whose rate or burst changed, holding as many tokens at `now_ns`
    /// as this one does under the old settings (at most the new burst): a change takes effect
    /// from the bucket's current level, neither refilled nor emptied.
    pub fn rescaled(&self, now_ns: u64, old: (u64, u64), new: (u64, u64)) -> Cell {
        let ((old_interval, old_burst), (new_interval, new_burst)) = (old, new);
        let debt = self.tat_ns.load(Ordering::Acquire).saturating_sub(now_ns);
        let capacity = old_interval.saturating_mul(old_burst);
        let tokens = (capacity.saturating_sub(debt) / old_interval.max(1)).min(new_burst);
        let tat = now_ns.saturating_add((new_burst - tokens).saturating_mul(new_interval));
        Cell { tat_ns: AtomicU64::new(tat) }
    }
}

/// Nanoseconds on the process-wide clock the cells use (monotonic, shared by all shards).
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    // +1: a cell at 0 is "idle since forever", and now is always after it.
    epoch.elapsed().as_nanos() as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_burst_from_idle_admits_exactly_the_burst() {
        let cell = Cell::default();
        let t = 5_000 * MS;
        let admitted = (0..6_000).filter(|_| cell.admit(t, 100_000, 5_000)).count();
        assert_eq!(admitted, 5_000);
    }

    #[test]
    fn sustained_overload_admits_exactly_the_rate_plus_the_burst() {
        // 10,000/s (100 us per token), burst 5,000, offered 20,000/s for 10 s.
        let cell = Cell::default();
        let start = 1_000 * MS;
        let admitted = (0..200_000u64).filter(|i| cell.admit(start + i * 50_000, 100_000, 5_000)).count();
        // 5,000 at once, then one per 100 us: by the last offered request, at 9.99995 s,
        // 99,999 refills have come.
        assert_eq!(admitted, 5_000 + 99_999);
    }

    #[test]
    fn below_the_rate_nothing_is_refused_and_refill_edges_are_exact() {
        let cell = Cell::default();
        for i in 0..1_000u64 {
            assert!(cell.admit(MS + i * 200_000, 100_000, 1));
        }
        let cell = Cell::default();
        assert!(cell.admit(10 * MS, MS, 1));
        assert!(!cell.admit(10 * MS + MS - 1, MS, 1), "one nanosecond before the refill");
        assert!(cell.admit(10 * MS + MS, MS, 1), "exactly at the refill");
    }

    #[test]
    fn zero_burst_refuses_and_extreme_rates_do_not_overflow() {
        let cell = Cell::default();
        assert!(!cell.admit(MS, 1, 0));
        let cell = Cell::default();
        // 1e9/s, burst 1e9: the capacity saturates instead of wrapping.
        assert!(cell.admit(u64::MAX / 2, 1, 1_000_000_000));
        let cell = Cell::default();
        assert!(cell.admit(MS, u64::MAX / 4, u64::MAX));
    }

    #[test]
    fn a_changed_rate_keeps_the_tokens_the_bucket_has() {
        let old = Cell::default();
        let now = 100 * MS;
        // Burst 10 at 1 per ms; take 4.
        (0..4).for_each(|_| assert!(old.admit(now, MS, 10)));
        // Now 1 per 10 ms, burst 20: still 6 tokens, the rest refill at the new rate.
        let new = old.rescaled(now, (MS, 10), (10 * MS, 20));
        assert_eq!((0..10).filter(|_| new.admit(now, 10 * MS, 20)).count(), 6);
        assert!(new.admit(now + 10 * MS, 10 * MS, 20));
        // An empty bucket stays empty; a full one is capped by the new burst.
        let empty = Cell::default();
        (0..10).for_each(|_| assert!(empty.admit(now, MS, 10)));
        assert!(!empty.rescaled(now, (MS, 10), (MS, 50)).admit(now, MS, 50));
        let full = Cell::default().rescaled(now, (MS, 10), (MS, 3));
        assert_eq!((0..5).filter(|_| full.admit(now, MS, 3)).count(), 3);
    }

    #[test]
    fn shards_share_one_bucket() {
        let cell = std::sync::Arc::new(Cell::default());
        let t = 42 * MS;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let cell = cell.clone();
                std::thread::spawn(move || (0..10_000).filter(|_| cell.admit(t, MS, 1_000)).count())
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(admitted, 1_000);
    }
}
