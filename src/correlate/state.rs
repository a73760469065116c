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

use super::window::{Entry, Inserted, Window};

/// Two bounds, both enforced by evicting the least recently used group: the number of groups
/// (`--max-groups`) and the number of entries over all groups (`--max-entries`), so that the
/// memory of the whole correlation state has one ceiling however the groups are sized.
pub(crate) struct Store {
    groups: LruCache<String, Window>,
    /// Entries held over all groups.
    entries: usize,
    max_entries: usize,
    pub evicted_groups: u64,
}

impl Store {
    pub fn new(max_groups: usize, max_entries: usize) -> Store {
        let capacity = NonZeroUsize::new(max_groups).unwrap_or(NonZeroUsize::MIN);
        Store {
            groups: LruCache::new(capacity),
            entries: 0,
            max_entries: max_entries.max(1),
            evicted_groups: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Entries held over all groups.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Inserts `entry` into the window of `key` (created empty when absent, and marked most
    /// recently used), then evicts least recently used groups, and counts them, until both
    /// bounds hold again. The group just fed is the most recently used, so it goes last: it is
    /// only ever evicted when it alone exceeds the entry budget, which the per-group cap
    /// prevents unless `max_entries < max_entries_per_group`.
    pub fn insert(
        &mut self,
        key: &str,
        entry: Entry,
        timespan_ms: i64,
        max_entries_per_group: usize,
    ) -> Inserted {
        if !self.groups.contains(key) {
            while self.groups.len() >= self.groups.cap().get() {
                self.evict_lru();
            }
            self.groups.put(key.to_string(), Window::default());
        }
        let Some(window) = self.groups.get_mut(key) else {
            return Inserted::default();
        };
        let before = window.len();
        let inserted = window.insert(entry, timespan_ms, max_entries_per_group);
        let after = window.len();
        self.entries = self.entries + after - before;
        while self.entries > self.max_entries && self.groups.len() > 1 {
            self.evict_lru();
        }
        inserted
    }

    /// Runs `update` on the window of `key` (created empty when absent, and marked most
    /// recently used), keeping the entry count and both bounds as [`Store::insert`] does.
    pub fn update<R>(&mut self, key: &str, update: impl FnOnce(&mut Window) -> R) -> R {
        if !self.groups.contains(key) {
            while self.groups.len() >= self.groups.cap().get() {
                self.evict_lru();
            }
            self.groups.put(key.to_string(), Window::default());
        }
        let mut empty = Window::default();
        let window = self.groups.get_mut(key).unwrap_or(&mut empty);
        let before = window.len();
        let result = update(window);
        let after = window.len();
        self.entries = (self.entries + after).saturating_sub(before);
        while self.entries > self.max_entries && self.groups.len() > 1 {
            self.evict_lru();
        }
        result
    }

    /// The window of `key`, without touching its recency.
    pub fn window(&self, key: &str) -> Option<&Window> {
        self.groups.peek(key)
    }

    pub fn remove(&mut self, key: &str) {
        if let Some(window) = self.groups.pop(key) {
            self.entries -= window.len();
        }
    }

    /// Every group, least recently used first.
    pub fn iter_lru_first(&self) -> impl Iterator<Item = (&String, &Window)> {
        self.groups.iter().rev()
    }

    /// Puts a restored group in as the most recently used (replacing a group with the same
    /// key), then evicts least recently used groups, and counts them, until both bounds hold
    /// again: the same rules as [`Store::insert`].
    pub fn restore(&mut self, key: String, window: Window) {
        self.remove(&key);
        while self.groups.len() >= self.groups.cap().get() {
            self.evict_lru();
        }
        self.entries += window.len();
        self.groups.put(key, window);
        while self.entries > self.max_entries && self.groups.len() > 1 {
            self.evict_lru();
        }
    }

    fn evict_lru(&mut self) {
        if let Some((_, window)) = self.groups.pop_lru() {
            self.entries -= window.len();
            self.evicted_groups += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::window::{Datum, Entry};

    fn key(value: &str) -> String {
        format!("0/+{}:{value}", value.len())
    }

    fn entry(time_ms: i64) -> Entry {
        Entry {
            time_ms,
            stage: 0,
            datum: Datum::None,
        }
    }

    #[test]
    fn lru_bound_and_eviction_count() {
        let mut store = Store::new(2, 100);
        store.insert(&key("a"), entry(1), 10, 10);
        store.insert(&key("b"), entry(1), 10, 10);
        store.insert(&key("a"), entry(2), 10, 10);
        assert_eq!(store.evicted_groups, 0);
        // "b" is the least recently used.
        store.insert(&key("c"), entry(1), 10, 10);
        assert_eq!(store.evicted_groups, 1);
        assert_eq!(store.len(), 2);
        assert!(store.window(&key("b")).is_none());
        assert_eq!(store.window(&key("a")).map(Window::len), Some(2));
        assert_eq!(store.entries(), 3);
        store.remove(&key("a"));
        assert_eq!(store.len(), 1);
        assert_eq!(store.entries(), 1);
        assert_eq!(Store::new(0, 0).groups.cap().get(), 1);
    }

    #[test]
    fn entry_budget_evicts_least_recently_used_groups() {
        let mut store = Store::new(100, 5);
        for time in 0..3 {
            store.insert(&key("a"), entry(time), 100, 10);
        }
        store.insert(&key("b"), entry(0), 100, 10);
        store.insert(&key("b"), entry(1), 100, 10);
        assert_eq!((store.entries(), store.evicted_groups), (5, 0));
        // One more entry anywhere: "a", the least recently used, goes.
        store.insert(&key("c"), entry(0), 100, 10);
        assert_eq!((store.entries(), store.evicted_groups), (3, 1));
        assert!(store.window(&key("a")).is_none());
        // A group that alone exceeds the budget is kept; the others make room.
        for time in 0..8 {
            store.insert(&key("d"), entry(time), 100, 10);
        }
        assert_eq!(store.len(), 1);
        assert_eq!(store.entries(), 8);
    }
}
