//! A cheap hasher for keys that are already hashes.

/// Hashes values that already are hashes (store keys, `TypeId`s) for this
/// process's own maps: the in-process store, the local tier, the template
/// memo. Their bits are already uniformly spread, so one folded multiply
/// with a per-map random seed spreads them as well as SipHash does, at a
/// fraction of the cost. Not for attacker-chosen plain values.
#[derive(Clone, Debug)]
pub(crate) struct KeyHashBuilder {
    seed: u64,
}

impl KeyHashBuilder {
    pub(crate) fn new() -> KeyHashBuilder {
        KeyHashBuilder {
            seed: fastrand::u64(..),
        }
    }
}

impl std::hash::BuildHasher for KeyHashBuilder {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.seed)
    }
}

/// See [`KeyHashBuilder`].
pub(crate) struct KeyHasher(u64);

impl KeyHasher {
    fn mix(&mut self, v: u64) {
        // The folded multiply of foldhash/wyhash.
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let m = u128::from(self.0 ^ v) * u128::from(K);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, v: u8) {
        self.mix(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }

    fn write_usize(&mut self, v: usize) {
        self.mix(v as u64);
    }

    fn write_isize(&mut self, v: isize) {
        self.mix(v as u64);
    }

    fn write_u128(&mut self, v: u128) {
        self.mix(v as u64 ^ ((v >> 64) as u64).rotate_left(32));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
