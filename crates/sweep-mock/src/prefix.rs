//! A prefix cache, as vLLM's automatic prefix caching and SGLang's radix cache keep one: the
//! prompt is cut into blocks of `--prefix-block-size` words, each block named by a hash of itself
//! and every block before it, so a name stands for the whole prefix up to it. A request's
//! leading blocks already held cost no prefill; every block of it is then held (or refreshed),
//! and the least recently used are evicted past `--prefix-cache-blocks`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

/// The chained names of `words`' full blocks of `block` words (a last partial block is never
/// cached, as in vLLM).
pub fn block_names<'a>(words: impl Iterator<Item = &'a str>, block: usize) -> Vec<u64> {
    let mut names = Vec::new();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut in_block = 0;
    for word in words {
        word.hash(&mut hasher);
        in_block += 1;
        if in_block == block {
            let name = hasher.finish();
            names.push(name);
            // The next block's hash starts from this one: its name covers the whole prefix.
            hasher = std::collections::hash_map::DefaultHasher::new();
            name.hash(&mut hasher);
            in_block = 0;
        }
    }
    names
}

/// Held blocks, least recently used first out.
#[derive(Debug, Default)]
pub struct PrefixCache {
    capacity: usize,
    tick: u64,
    last_use: HashMap<u64, u64>,
    by_age: BTreeMap<u64, u64>,
}

impl PrefixCache {
    pub fn new(capacity: usize) -> Self {
        PrefixCache { capacity, ..PrefixCache::default() }
    }

    /// How many of `names`' leading blocks were held; all of them are held afterwards.
    pub fn admit(&mut self, names: &[u64]) -> usize {
        let hits = names.iter().take_while(|n| self.last_use.contains_key(n)).count();
        for &name in names {
            self.tick += 1;
            if let Some(old) = self.last_use.insert(name, self.tick) {
                self.by_age.remove(&old);
            }
            self.by_age.insert(self.tick, name);
        }
        while self.last_use.len() > self.capacity {
            let Some((_, name)) = self.by_age.pop_first() else { break };
            self.last_use.remove(&name);
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<u64> {
        block_names(text.split_whitespace(), 2)
    }

    #[test]
    fn a_shared_prefix_hits_its_blocks_and_no_further() {
        let mut cache = PrefixCache::new(100);
        assert_eq!(cache.admit(&names("a b c d e f")), 0);
        // Same first two blocks, then a different one: two hits.
        assert_eq!(cache.admit(&names("a b c d x y")), 2);
        // A block equal in words but after a different prefix is another block.
        assert_eq!(cache.admit(&names("z z c d")), 0);
        assert_eq!(names("a b c").len(), 1, "a partial block is not cached");
    }

    #[test]
    fn the_least_recently_used_blocks_are_evicted() {
        let mut cache = PrefixCache::new(2);
        cache.admit(&names("a b"));
        cache.admit(&names("c d"));
        cache.admit(&names("a b")); // refreshed: "c d" is now the oldest
        cache.admit(&names("e f"));
        assert_eq!(cache.admit(&names("a b")), 1);
        assert_eq!(cache.admit(&names("c d")), 0, "evicted");
    }
}
