//! A fast hasher for the maps keyed by process identity ([`crate::sample::ProcKey`], pids), which
//! are looked up thousands of times per tick.
//!
//! The standard library's SipHash resists keys chosen to collide; pids and start times are handed
//! out by the kernel, not chosen by whoever runs a process, so the per-tick maps use a
//! multiply-rotate hash (the scheme of rustc's FxHash, with the final rotation of its current
//! version so the bits hashbrown picks buckets from are well mixed) at a fraction of the cost.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// A `HashSet` with [`FastHasher`].
pub type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

const K: u64 = 0xf135_7aea_2e62_a9c5;

/// Multiply-rotate hashing of integers (see the module doc: not for keys an adversary picks).
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = self.hash.wrapping_add(word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;
    use crate::sample::ProcKey;

    #[test]
    fn keys_that_differ_hash_apart_and_maps_work() {
        let b = BuildHasherDefault::<FastHasher>::default();
        let h = |pid, starttime| b.hash_one(ProcKey { pid, starttime });
        assert_ne!(h(1, 2), h(2, 1));
        assert_ne!(h(1, 100), h(1, 101));
        assert_eq!(h(7, 9), h(7, 9));
        let mut m: FastMap<ProcKey, u32> = FastMap::default();
        for pid in 0..10_000u32 {
            m.insert(
                ProcKey {
                    pid,
                    starttime: u64::from(pid) * 3,
                },
                pid,
            );
        }
        assert_eq!(m.len(), 10_000);
        assert!((0..10_000u32).all(|pid| m.get(&ProcKey {
            pid,
            starttime: u64::from(pid) * 3
        }) == Some(&pid)));
        assert_eq!(b.hash_one("abc"), b.hash_one("abc"));
        assert_ne!(b.hash_one("abc"), b.hash_one("abd"));
    }

    /// Consecutive pids fill buckets evenly: the bits hashbrown uses are mixed.
    #[test]
    fn consecutive_pids_spread_over_buckets() {
        let b = BuildHasherDefault::<FastHasher>::default();
        let mut low = [0u32; 64];
        let mut top = [0u32; 128];
        for pid in 1000..1000 + 64 * 64u32 {
            let h = b.hash_one(ProcKey { pid, starttime: 5 });
            low[(h & 63) as usize] += 1;
            top[(h >> 57) as usize] += 1;
        }
        assert!(low.iter().all(|n| (32..=96).contains(n)), "{low:?}");
        assert!(top.iter().all(|n| (8..=56).contains(n)), "{top:?}");
    }
}
