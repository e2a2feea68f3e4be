//! A shard's random numbers: xorshift64* with no system call, for canary rolls and trace ids.
//! Not for secrets.

use std::cell::Cell;

pub struct Xorshift(Cell<u64>);

impl Xorshift {
    /// Any seed; zero is avoided.
    pub fn new(seed: u64) -> Self {
        Xorshift(Cell::new(seed | 1))
    }

    /// 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniform number below 1,000,000, for canary shares.
    pub fn per_million(&self) -> u32 {
        ((self.next_u64() >> 32) % 1_000_000) as u32
    }
}
