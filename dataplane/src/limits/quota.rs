//! Quota counting: one cell per API key with a quota, shared by every shard, without a lock.
//!
//! A cell counts this process's admissions per period in one atomic word per slot
//! (`period tag << 40 | count`), so a new period starts from zero by a compare-and-swap of the
//! first request that sees it, with no reset pass. There are two slots, used by alternate
//! periods: the period that just ended stays readable in the other slot until the usage
//! reporter has collected its last requests. A slot is reused two periods later (at least two
//! days), long after its counts were collected (every second).
//!
//! Usage this process did not count itself (other data planes, earlier runs, minus grants)
//! is `remote`, set by the usage reporter from the control plane's totals. A request is
//! admitted while `local + remote < limit`; the check and the count are one CAS on `local`,
//! so across shards the quota is exact. Across data planes it can be exceeded by what the
//! others admitted since the reporter's last exchange (about one second of their traffic).

use std::sync::atomic::{AtomicU64, Ordering};

const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// Period tags are the low 24 bits of the period index.
const TAG_MASK: u64 = (1 << (64 - COUNT_BITS)) - 1;
/// `remote` is signed (a grant makes it negative); it is stored offset by this.
const REMOTE_BIAS: i64 = 1 << (COUNT_BITS - 1);

/// Wall-clock seconds: quota periods follow the UTC calendar (a vDSO call, no syscall).
pub fn unix_now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Cell {
    slots: [AtomicU64; 2],
    remote: AtomicU64,
}

fn tag(period: u64) -> u64 {
    period & TAG_MASK
}

impl Cell {
    /// Counts one request in `period` if fewer than `limit` were counted (here and remotely).
    pub fn admit(&self, period: u64, limit: u64) -> bool {
        let remote = self.remote(period);
        let slot = &self.slots[(period & 1) as usize];
        let mut current = slot.load(Ordering::Acquire);
        loop {
            let count = if current >> COUNT_BITS == tag(period) { current & COUNT_MASK } else { 0 };
            if count as i64 + remote >= limit as i64 {
                return false;
            }
            let next = tag(period) << COUNT_BITS | (count + 1);
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }

    /// This process's count in `period` (0 if the slot holds another period).
    pub fn local(&self, period: u64) -> u64 {
        let word = self.slots[(period & 1) as usize].load(Ordering::Acquire);
        if word >> COUNT_BITS == tag(period) {
            word & COUNT_MASK
        } else {
            0
        }
    }

    /// Usage in `period` not counted here (0 when nothing is known for that period).
    pub fn remote(&self, period: u64) -> i64 {
        let word = self.remote.load(Ordering::Acquire);
        if word >> COUNT_BITS == tag(period) {
            (word & COUNT_MASK) as i64 - REMOTE_BIAS
        } else {
            0
        }
    }

    pub fn set_remote(&self, period: u64, usage: i64) {
        let biased = usage.saturating_add(REMOTE_BIAS).clamp(0, COUNT_MASK as i64) as u64;
        self.remote.store(tag(period) << COUNT_BITS | biased, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_to_the_limit_exactly_across_threads() {
        let cell = std::sync::Arc::new(Cell::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let cell = cell.clone();
                std::thread::spawn(move || (0..10_000).filter(|_| cell.admit(7, 25_000)).count())
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, 25_000);
        assert_eq!(cell.local(7), 25_000);
    }

    #[test]
    fn a_new_period_starts_from_zero_and_keeps_the_last_one_readable() {
        let cell = Cell::default();
        (0..3).for_each(|_| assert!(cell.admit(10, 3)));
        assert!(!cell.admit(10, 3));
        assert!(cell.admit(11, 3), "the next period has a fresh count");
        assert_eq!((cell.local(10), cell.local(11)), (3, 1));
        // Two periods on, the slot of period 10 is reused.
        assert!(cell.admit(12, 3));
        assert_eq!((cell.local(10), cell.local(12)), (0, 1));
    }

    #[test]
    fn remote_usage_and_grants_move_the_limit() {
        let cell = Cell::default();
        cell.set_remote(5, 8);
        assert_eq!((0..5).filter(|_| cell.admit(5, 10)).count(), 2);
        // A grant of 10 extra: the remote usage goes negative.
        cell.set_remote(5, 8 - 10);
        assert_eq!((0..20).filter(|_| cell.admit(5, 10)).count(), 10);
        assert_eq!(cell.remote(6), 0, "remote usage belongs to its own period");
        // Out-of-range values saturate instead of wrapping.
        cell.set_remote(5, i64::MAX);
        assert!(!cell.admit(5, u64::from(u32::MAX)));
    }
}
