//! Request key sets for cache benchmarks: the URL's `{key}` replaced by one of N keys, drawn
//! from a Zipf distribution (rank k has weight 1 / k^s), the shape of real hot-key traffic.

/// A fixed sequence of key ranks drawn from Zipf(`n`, `s`) with a fixed seed, so every server
/// in a comparison sees the very same requests in the same order.
pub fn zipf_sequence(n: u32, s: f64, len: usize, seed: u64) -> Vec<u32> {
    let n = n.max(1);
    let mut cumulative = Vec::with_capacity(n as usize);
    let mut total = 0.0;
    for k in 1..=n {
        total += 1.0 / f64::from(k).powf(s);
        cumulative.push(total);
    }
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            // xorshift64*: a uniform in [0, 1).
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let u = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
            let target = u * total;
            cumulative.partition_point(|&c| c <= target).min(n as usize - 1) as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_the_weights() {
        let seq = zipf_sequence(1000, 1.0, 200_000, 7);
        assert!(seq.iter().all(|&k| k < 1000));
        let count = |k: u32| seq.iter().filter(|&&x| x == k).count() as f64;
        // Rank 1 is twice as likely as rank 2 and ten times rank 10 (within sampling noise).
        assert!((count(0) / count(1) - 2.0).abs() < 0.15, "{} {}", count(0), count(1));
        assert!((count(0) / count(9) - 10.0).abs() < 1.5, "{} {}", count(0), count(9));
        assert_eq!(seq, zipf_sequence(1000, 1.0, 200_000, 7), "deterministic");
    }
}
