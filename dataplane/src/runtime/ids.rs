//! `x-amzn-RequestId` values: UUID-shaped, unique per shard and process, made without a
//! system call or an allocation.

pub struct RequestIds {
    state: u64,
}

impl RequestIds {
    /// `seed` should differ per shard and per process start (e.g. time and shard index).
    pub fn new(seed: u64) -> Self {
        RequestIds { state: seed }
    }

    /// The next id as 36 ASCII bytes: `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`.
    pub fn next_id(&mut self) -> [u8; 36] {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let a = splitmix(self.state);
        let b = splitmix(a ^ self.state.rotate_left(32));
        let mut bits = (u128::from(a) << 64) | u128::from(b);
        // Version 4 and the RFC 4122 variant, so tools that parse UUIDs accept it.
        bits = (bits & !(0xf << 76)) | (0x4 << 76);
        bits = (bits & !(0x3 << 62)) | (0x2 << 62);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 36];
        let mut nibble = 32;
        for (i, slot) in out.iter_mut().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                continue;
            }
            nibble -= 1;
            *slot = HEX[((bits >> (nibble * 4)) & 0xf) as usize];
        }
        out
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_uuid_shaped_and_distinct() {
        let mut ids = super::RequestIds::new(42);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next_id();
            assert_eq!(id[14], b'4');
            assert!(matches!(id[19], b'8' | b'9' | b'a' | b'b'));
            assert!(seen.insert(id));
        }
    }
}
