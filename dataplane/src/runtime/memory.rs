//! A shard's budget for the bytes its connections buffer: request heads and bodies, responses
//! waiting to be written, and upstream requests and responses. Each holder (a client
//! connection, a connection's upstream buffers) keeps a [`Charge`] of what it holds and asks
//! the budget before it grows. A holder that would take the shard past its limit is refused
//! (the request gets a 503), so no number of clients or backends can make a shard buffer more
//! than its limit plus the small buffers that were already granted.
//!
//! Written by its own shard only (relaxed atomics), read by the admin thread for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct MemoryBudget {
    limit: AtomicU64,
    used: AtomicU64,
    refused: AtomicU64,
}

/// The bytes one holder has charged to its shard's budget. Given back with
/// [`MemoryBudget::release`] when the holder goes away.
#[derive(Debug, Default)]
pub struct Charge(u64);

impl Charge {
    pub fn bytes(&self) -> u64 {
        self.0
    }
}

impl MemoryBudget {
    /// Sets the limit, once, when the shard starts.
    pub fn set_limit(&self, bytes: u64) {
        self.limit.store(bytes, Relaxed);
    }

    pub fn limit(&self) -> u64 {
        self.limit.load(Relaxed)
    }

    /// Bytes charged by every holder on the shard.
    pub fn used(&self) -> u64 {
        self.used.load(Relaxed)
    }

    /// Times a holder was refused memory.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    /// Makes `charge` hold `bytes` if the shard stays within its limit; shrinking always
    /// succeeds. False: nothing changed and the holder must not grow.
    pub fn try_set(&self, charge: &mut Charge, bytes: u64) -> bool {
        let used = self.used.load(Relaxed);
        if bytes > charge.0 && used - charge.0 + bytes > self.limit.load(Relaxed) {
            self.refused.fetch_add(1, Relaxed);
            return false;
        }
        self.used.store(used - charge.0 + bytes, Relaxed);
        charge.0 = bytes;
        true
    }

    /// Makes `charge` hold `bytes`, which are already allocated. False when the holder grew
    /// and the shard is now past its limit: it should give the bytes back by refusing its
    /// request (and count that with [`MemoryBudget::refuse`]).
    pub fn set(&self, charge: &mut Charge, bytes: u64) -> bool {
        let used = self.used.load(Relaxed) - charge.0 + bytes;
        self.used.store(used, Relaxed);
        let grew = bytes > charge.0;
        charge.0 = bytes;
        !(grew && used > self.limit.load(Relaxed))
    }

    /// Counts a request refused because [`MemoryBudget::set`] found the shard past its limit.
    pub fn refuse(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    pub fn release(&self, charge: &mut Charge) {
        self.set(charge, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_share_the_limit_and_shrinking_always_succeeds() {
        let budget = MemoryBudget::default();
        budget.set_limit(100);
        let (mut a, mut b) = (Charge::default(), Charge::default());
        assert!(budget.try_set(&mut a, 60));
        assert!(!budget.try_set(&mut b, 41), "60 + 41 is past the limit");
        assert_eq!(b.bytes(), 0);
        assert!(budget.try_set(&mut b, 40));
        assert_eq!(budget.used(), 100);
        assert!(!budget.try_set(&mut a, 61));
        assert!(budget.try_set(&mut a, 10), "shrinking");
        assert!(budget.try_set(&mut b, 90));
        assert_eq!(budget.refused(), 2);
        budget.release(&mut a);
        budget.release(&mut b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn memory_already_allocated_is_counted_and_reported_over_the_limit() {
        let budget = MemoryBudget::default();
        budget.set_limit(100);
        let mut a = Charge::default();
        assert!(!budget.set(&mut a, 150));
        assert_eq!(budget.used(), 150);
        assert!(budget.set(&mut a, 120), "shrinking is never refused, even while over");
        assert_eq!(budget.refused(), 0, "counted only by the holder that refuses");
    }
}
