//! A hash map split into shards that grow one at a time.
//!
//! A single `HashMap` doubles all at once: at 458,752 pending holds that one insert rehashed
//! every key and took 150 ms on this machine, which showed as a stall of every payment
//! queued behind it. With 64 shards each doubling moves 1/64 of the entries (about 2 ms).

use std::collections::HashMap;

const SHARDS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardedMap<V> {
    shards: Vec<HashMap<String, V>>,
}

impl<V> Default for ShardedMap<V> {
    fn default() -> ShardedMap<V> {
        ShardedMap { shards: (0..SHARDS).map(|_| HashMap::new()).collect() }
    }
}

/// FNV-1a over the key: cheap, and independent of each shard's own (randomised) hasher.
fn shard_of(key: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % SHARDS as u64) as usize
}

impl<V> ShardedMap<V> {
    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.shards[shard_of(key)].get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.shards[shard_of(key)].get_mut(key)
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.shards[shard_of(key)].contains_key(key)
    }

    pub(crate) fn insert(&mut self, key: String, value: V) -> Option<V> {
        let shard = shard_of(&key);
        self.shards[shard].insert(key, value)
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<V> {
        self.shards[shard_of(key)].remove(key)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(HashMap::values)
    }
}

#[cfg(test)]
mod tests {
    use super::ShardedMap;

    #[test]
    fn behaves_like_a_map() {
        let mut map = ShardedMap::default();
        for i in 0..1_000 {
            assert_eq!(map.insert(format!("k{i}"), i), None);
        }
        assert_eq!(map.insert("k7".into(), 70), Some(7));
        assert_eq!(map.values().count(), 1_000);
        assert_eq!(map.get("k7"), Some(&70));
        *map.get_mut("k8").unwrap() += 1;
        assert_eq!(map.get("k8"), Some(&9));
        assert_eq!(map.remove("k9"), Some(9));
        assert!(!map.contains_key("k9") && map.contains_key("k10"));
        assert_eq!(map.values().count(), 999);
        // Keys spread over the shards rather than piling into a few.
        assert!(map.shards.iter().all(|s| !s.is_empty()));
    }
}
