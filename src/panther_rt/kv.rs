//! The cross-event state of Panther's caching helpers (`get_string_set`, `put_string_set`,
//! counters, `check_account_age`, ...) on one bounded LRU, limited like correlation state.
//!
//! Panther keeps this state in DynamoDB. vigil keeps it in memory with two hard bounds, set by
//! flags like the correlation ones: at most `max_keys` keys, and at most `max_bytes` bytes of
//! keys and string-set members over all keys. Beyond either, the least recently used key is
//! evicted and counted. A single string set larger than `max_bytes` is cut to fit, oldest members
//! first, and the cut is counted too. Expiry is in epoch seconds, as Panther's helpers take it,
//! and is checked against the engine's clock on every read.

use std::num::NonZeroUsize;

use lru::LruCache;
use serde::{Deserialize, Serialize};

use crate::python::{KvState, dedup_strings};

/// Hard bounds on the key-value state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLimits {
    pub max_keys: usize,
    pub max_bytes: usize,
}

impl Default for KvLimits {
    fn default() -> KvLimits {
        KvLimits {
            max_keys: 100_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Entry {
    Set(Vec<String>),
    Counter(i64),
}

impl Entry {
    fn bytes(&self) -> usize {
        match self {
            Entry::Set(values) => values.iter().map(|v| v.len() + 8).sum(),
            Entry::Counter(_) => 8,
        }
    }
}

/// Counters of the key-value state, for `--stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvStats {
    pub live_keys: u64,
    pub live_bytes: u64,
    pub evicted_keys: u64,
    /// String-set members dropped because one set alone exceeded the byte budget.
    pub truncated_values: u64,
}

/// Every live key, least recently used first, with its value and expiry: the key-value part of
/// a `--state` file. Panther's caching helpers share one table between rules (keys are
/// whatever rule code chooses), so this state is not per rule: it is kept whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KvSnapshot {
    entries: Vec<(String, Entry, Option<i64>)>,
}

impl KvSnapshot {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What [`LruKv::import`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvImport {
    pub loaded: u64,
    /// Keys evicted on import by `--max-kv-keys` / `--max-kv-bytes`.
    pub evicted: u64,
}

pub struct LruKv {
    limits: KvLimits,
    entries: LruCache<String, (Entry, Option<i64>)>,
    bytes: usize,
    evicted_keys: u64,
    truncated_values: u64,
}

impl LruKv {
    pub fn new(limits: KvLimits) -> LruKv {
        LruKv {
            limits,
            entries: LruCache::new(
                NonZeroUsize::new(limits.max_keys.max(1)).unwrap_or(NonZeroUsize::MIN),
            ),
            bytes: 0,
            evicted_keys: 0,
            truncated_values: 0,
        }
    }

    pub fn stats(&self) -> KvStats {
        KvStats {
            live_keys: self.entries.len() as u64,
            live_bytes: self.bytes as u64,
            evicted_keys: self.evicted_keys,
            truncated_values: self.truncated_values,
        }
    }

    /// Every live key, least recently used first.
    pub fn export(&self) -> KvSnapshot {
        KvSnapshot {
            entries: self
                .entries
                .iter()
                .rev()
                .map(|(key, (entry, expires))| (key.clone(), entry.clone(), *expires))
                .collect(),
        }
    }

    /// Restores `snapshot`, replacing the live keys: least recently used first, through the
    /// same bounds and eviction as live writes (a set over the byte budget is cut).
    pub fn import(&mut self, snapshot: KvSnapshot) -> KvImport {
        self.entries.clear();
        self.bytes = 0;
        let before = self.evicted_keys;
        let mut loaded = 0;
        for (key, entry, expires) in snapshot.entries {
            // A file may repeat a string-set member; live sets never hold one twice.
            let entry = match entry {
                Entry::Set(values) => Entry::Set(dedup_strings(values)),
                counter => counter,
            };
            self.store(&key, entry, expires);
            loaded += 1;
        }
        KvImport {
            loaded,
            evicted: self.evicted_keys - before,
        }
    }

    fn live(&mut self, key: &str, now_ms: i64) -> Option<&mut (Entry, Option<i64>)> {
        let expired = matches!(
            self.entries.peek(key),
            Some((_, Some(expires))) if expires.saturating_mul(1000) <= now_ms
        );
        if expired {
            self.remove(key);
            return None;
        }
        self.entries.get_mut(key)
    }

    fn remove(&mut self, key: &str) {
        if let Some((entry, _)) = self.entries.pop(key) {
            self.bytes -= key.len() + entry.bytes();
        }
    }

    fn store(&mut self, key: &str, mut entry: Entry, expires: Option<i64>) {
        self.remove(key);
        if let Entry::Set(values) = &mut entry {
            let budget = self.limits.max_bytes.saturating_sub(key.len());
            let mut size: usize = values.iter().map(|v| v.len() + 8).sum();
            let mut cut = 0;
            while size > budget && cut < values.len() {
                size -= values[cut].len() + 8;
                cut += 1;
            }
            values.drain(..cut);
            self.truncated_values += cut as u64;
        }
        let size = key.len() + entry.bytes();
        while !self.entries.is_empty()
            && (self.entries.len() >= self.entries.cap().get()
                || self.bytes + size > self.limits.max_bytes)
        {
            if let Some((old_key, (old, _))) = self.entries.pop_lru() {
                self.bytes -= old_key.len() + old.bytes();
                self.evicted_keys += 1;
            }
        }
        self.bytes += size;
        self.entries.put(key.to_string(), (entry, expires));
    }

    fn set_of(&mut self, key: &str, now_ms: i64) -> (Vec<String>, Option<i64>) {
        match self.live(key, now_ms) {
            Some((Entry::Set(values), expires)) => (values.clone(), *expires),
            _ => (Vec::new(), None),
        }
    }
}

impl KvState for LruKv {
    fn get_string_set(&mut self, key: &str, now_ms: i64) -> Vec<String> {
        self.set_of(key, now_ms).0
    }

    fn put_string_set(
        &mut self,
        key: &str,
        values: Vec<String>,
        expires_s: Option<i64>,
        _now_ms: i64,
    ) {
        self.store(key, Entry::Set(dedup_strings(values)), expires_s);
    }

    fn add_to_string_set(&mut self, key: &str, values: Vec<String>, now_ms: i64) -> Vec<String> {
        let (mut current, expires) = self.set_of(key, now_ms);
        current.extend(values);
        let current = dedup_strings(current);
        self.store(key, Entry::Set(current.clone()), expires);
        current
    }

    fn remove_from_string_set(
        &mut self,
        key: &str,
        values: Vec<String>,
        now_ms: i64,
    ) -> Vec<String> {
        let (mut current, expires) = self.set_of(key, now_ms);
        if current.is_empty() {
            return current;
        }
        current.retain(|value| !values.contains(value));
        self.store(key, Entry::Set(current.clone()), expires);
        current
    }

    fn reset_string_set(&mut self, key: &str) {
        self.remove(key);
    }

    fn get_counter(&mut self, key: &str, now_ms: i64) -> i64 {
        match self.live(key, now_ms) {
            Some((Entry::Counter(count), _)) => *count,
            _ => 0,
        }
    }

    fn increment_counter(&mut self, key: &str, by: i64, now_ms: i64) -> i64 {
        let (current, expires) = match self.live(key, now_ms) {
            Some((Entry::Counter(count), expires)) => (*count, *expires),
            _ => (0, None),
        };
        let next = current.saturating_add(by);
        self.store(key, Entry::Counter(next), expires);
        next
    }

    fn reset_counter(&mut self, key: &str) {
        self.remove(key);
    }

    fn set_key_expiration(&mut self, key: &str, epoch_seconds: i64) {
        if let Some((_, expires)) = self.entries.get_mut(key) {
            *expires = Some(epoch_seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn sets_counters_and_expiry() {
        let mut kv = LruKv::new(KvLimits::default());
        kv.put_string_set("k", strings(&["a", "b", "a"]), Some(10), 0);
        assert_eq!(kv.get_string_set("k", 9_999), strings(&["a", "b"]));
        assert_eq!(
            kv.add_to_string_set("k", strings(&["c"]), 0),
            strings(&["a", "b", "c"])
        );
        assert_eq!(
            kv.remove_from_string_set("k", strings(&["a"]), 0),
            strings(&["b", "c"])
        );
        // Expired at 10 s.
        assert!(kv.get_string_set("k", 10_000).is_empty());
        assert_eq!(kv.increment_counter("n", 2, 0), 2);
        assert_eq!(kv.increment_counter("n", 3, 0), 5);
        kv.reset_counter("n");
        assert_eq!(kv.get_counter("n", 0), 0);
        assert_eq!(kv.stats().live_keys, 0);
        assert_eq!(kv.stats().live_bytes, 0);
    }

    #[test]
    fn key_bound_evicts_least_recently_used() {
        let mut kv = LruKv::new(KvLimits {
            max_keys: 2,
            max_bytes: 1 << 20,
        });
        kv.put_string_set("a", strings(&["1"]), None, 0);
        kv.put_string_set("b", strings(&["1"]), None, 0);
        kv.get_string_set("a", 0);
        kv.put_string_set("c", strings(&["1"]), None, 0);
        assert_eq!(kv.stats().live_keys, 2);
        assert_eq!(kv.stats().evicted_keys, 1);
        assert!(kv.get_string_set("b", 0).is_empty());
        assert_eq!(kv.get_string_set("a", 0), strings(&["1"]));
    }

    #[test]
    fn export_import_round_trip_within_the_bounds() {
        let mut kv = LruKv::new(KvLimits::default());
        kv.put_string_set("a", strings(&["1", "2"]), Some(100), 0);
        kv.increment_counter("n", 7, 0);
        kv.put_string_set("b", strings(&["x".repeat(50).as_str()]), None, 0);
        let snapshot = kv.export();
        assert_eq!(snapshot.len(), 3);
        let mut restored = LruKv::new(KvLimits::default());
        let report = restored.import(snapshot.clone());
        assert_eq!((report.loaded, report.evicted), (3, 0));
        assert_eq!(restored.stats().live_bytes, kv.stats().live_bytes);
        assert_eq!(restored.get_string_set("a", 0), strings(&["1", "2"]));
        // The expiry came along.
        assert!(restored.get_string_set("a", 100_000).is_empty());
        assert_eq!(restored.get_counter("n", 0), 7);
        // Smaller bounds: least recently used keys go first, as live.
        let limits = KvLimits {
            max_keys: 2,
            max_bytes: 60,
        };
        let mut small = LruKv::new(limits);
        let report = small.import(snapshot);
        assert_eq!(report.loaded, 3);
        assert!(report.evicted >= 1);
        assert!(small.stats().live_keys <= 2);
        assert!(small.stats().live_bytes as usize <= limits.max_bytes);
        assert_eq!(small.get_string_set("b", 0).len(), 1);
    }

    #[test]
    fn byte_bound_holds_whatever_the_values() {
        let limits = KvLimits {
            max_keys: 1_000,
            max_bytes: 200,
        };
        let mut kv = LruKv::new(limits);
        for idx in 0..50 {
            kv.put_string_set(
                &format!("key{idx}"),
                strings(&["x".repeat(30).as_str()]),
                None,
                0,
            );
            assert!(kv.stats().live_bytes as usize <= limits.max_bytes);
        }
        assert!(kv.stats().evicted_keys > 0);
        let big: Vec<String> = (0..100).map(|i| format!("value{i}")).collect();
        kv.put_string_set("big", big, None, 0);
        assert!(kv.stats().live_bytes as usize <= limits.max_bytes);
        assert!(kv.stats().truncated_values > 0);
    }
}
