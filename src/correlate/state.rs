//! All correlation state in one bounded LRU: `(correlation, group key) → Window`.
//!
//! One cache for every correlation (not one per correlation) so that the bound is a single
//! number the operator sets (`--max-groups`) whatever the number of rules. The least recently
//! touched group goes first; an evicted group simply starts again from empty if it comes back,
//! which can only make a correlation fire later, never wrongly.
//!
//! Keys are strings built by the correlator (`correlation/encoded group values`): one
//! allocation per new group, none to find an existing one.

use std::num::NonZeroUsize;

use lru::LruCache;

use super::window::Window;

pub(crate) struct Store {
    groups: LruCache<String, Window>,
    pub evicted_groups: u64,
}

impl Store {
    pub fn new(max_groups: usize) -> Store {
        let capacity = NonZeroUsize::new(max_groups).unwrap_or(NonZeroUsize::MIN);
        Store {
            groups: LruCache::new(capacity),
            evicted_groups: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// The window of `key`, created empty when absent; marks it most recently used. Creating
    /// a group in a full cache evicts the least recently used one, and counts it.
    pub fn window_mut(&mut self, key: &str) -> &mut Window {
        if self.groups.len() >= self.groups.cap().get() && !self.groups.contains(key) {
            self.evicted_groups += 1;
        }
        self.groups.get_or_insert_mut_ref(key, Window::default)
    }

    pub fn remove(&mut self, key: &str) {
        self.groups.pop(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::window::{Datum, Entry};

    fn key(value: &str) -> String {
        format!("0/+{}:{value}", value.len())
    }

    #[test]
    fn lru_bound_and_eviction_count() {
        let mut store = Store::new(2);
        let entry = Entry {
            time_ms: 1,
            stage: 0,
            datum: Datum::None,
        };
        store.window_mut(&key("a")).insert(entry.clone(), 10, 10);
        store.window_mut(&key("b"));
        store.window_mut(&key("a"));
        assert_eq!(store.evicted_groups, 0);
        // "b" is the least recently used.
        store.window_mut(&key("c"));
        assert_eq!(store.evicted_groups, 1);
        assert_eq!(store.len(), 2);
        assert_eq!(store.window_mut(&key("a")).len(), 1);
        assert_eq!(store.evicted_groups, 1);
        store.remove(&key("a"));
        assert_eq!(store.len(), 1);
        assert_eq!(Store::new(0).groups.cap().get(), 1);
    }
}
