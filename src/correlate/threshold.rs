//! Per-rule alert thresholds (Panther `Threshold` / `DedupPeriodMinutes`), on a bounded LRU.
//!
//! A rule with a threshold of N alerts only once N of its matches share a dedup string within
//! the dedup period. Semantics, in event time:
//! - the first match of a `(rule, dedup)` pair opens a period at its time; each match within
//!   `period_ms` of that start adds one to the count;
//! - a match at or after `start + period_ms` opens a new period with a count of 1 (Panther's
//!   dedup window has expired, so its count starts over);
//! - the match that brings the count to N alerts; the matches after it in the same period carry
//!   `alert: false` too (Panther adds them to the alert already raised), so a pair alerts at
//!   most once per period;
//! - matches before that carry `alert: false` and the running count.
//!
//! Memory: one entry (start time and count) per live pair, at most `max_pairs` pairs; the least
//! recently used is evicted and counted. Dedup strings longer than [`MAX_KEY_BYTES`] are kept
//! as a keyed hash, so an entry's size is bounded whatever the rules return.

use std::num::NonZeroUsize;

use lru::LruCache;
use serde::{Deserialize, Serialize};

use super::snapshot::KeyedHasher;
use crate::ir::Threshold;

/// Dedup strings longer than this are kept in the key as a hash.
pub const MAX_KEY_BYTES: usize = 128;

/// What one match did to its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    /// Matches in the current period, this one included.
    pub count: u64,
    /// The count reached the threshold on this match.
    pub reached: bool,
}

pub struct ThresholdState {
    /// `(rule, dedup)` → (period start, count, alerted in this period).
    pairs: LruCache<(usize, String), (i64, u64, bool)>,
    /// Keys the hash of long dedup strings (saved with the state, like the correlator's).
    hasher: KeyedHasher,
    /// Pairs evicted because `max_pairs` was reached.
    pub evicted: u64,
}

/// Every live `(rule, dedup)` counter, least recently used first, with the hash key: the
/// threshold part of a `--state` file (see `crate::correlate::snapshot`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThresholdSnapshot {
    hasher: Option<KeyedHasher>,
    /// `(rule index at export time, dedup key, period start, count, alerted)`.
    pairs: Vec<(u32, String, i64, u64, bool)>,
}

impl ThresholdSnapshot {
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// What [`ThresholdState::import`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThresholdImport {
    pub loaded: u64,
    /// Pairs of rules that are gone or changed.
    pub dropped: u64,
    /// Pairs evicted on import by `--max-threshold-keys` (least recently used first).
    pub evicted: u64,
}

impl ThresholdState {
    pub fn new(max_pairs: usize) -> ThresholdState {
        ThresholdState {
            pairs: LruCache::new(NonZeroUsize::new(max_pairs.max(1)).unwrap_or(NonZeroUsize::MIN)),
            hasher: KeyedHasher::random(),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Counts one match of `rule` with `dedup` at `time_ms`.
    pub fn count(
        &mut self,
        rule: usize,
        dedup: &str,
        time_ms: i64,
        threshold: Threshold,
    ) -> Counted {
        let key = if dedup.len() > MAX_KEY_BYTES {
            format!("#{}:{:016x}", dedup.len(), self.hasher.hash_str(dedup))
        } else {
            dedup.to_string()
        };
        let key = (rule, key);
        let (start, count, alerted) = match self.pairs.get(&key) {
            // A match older than the period's start (late arrival) still counts in it.
            Some(&(start, count, alerted))
                if time_ms < start.saturating_add(threshold.period_ms) =>
            {
                (start.min(time_ms), count.saturating_add(1), alerted)
            }
            _ => (time_ms, 1, false),
        };
        let reached = !alerted && count >= threshold.count;
        if !self.pairs.contains(&key) && self.pairs.len() >= self.pairs.cap().get() {
            self.pairs.pop_lru();
            self.evicted += 1;
        }
        self.pairs.put(key, (start, count, alerted || reached));
        Counted { count, reached }
    }

    /// Every live pair, least recently used first.
    pub fn export(&self) -> ThresholdSnapshot {
        ThresholdSnapshot {
            hasher: Some(self.hasher),
            pairs: self
                .pairs
                .iter()
                .rev()
                .map(|((rule, key), &(start, count, alerted))| {
                    (*rule as u32, key.clone(), start, count, alerted)
                })
                .collect(),
        }
    }

    /// Restores `snapshot`, replacing the live pairs. `mapping[i]` is the current index of the
    /// snapshot's rule `i` (`None`: gone or changed, its pairs are dropped). Pairs go in least
    /// recently used first under the same bound and eviction as live.
    pub fn import(
        &mut self,
        snapshot: ThresholdSnapshot,
        mapping: &[Option<usize>],
    ) -> ThresholdImport {
        let mut report = ThresholdImport::default();
        self.pairs.clear();
        if let Some(hasher) = snapshot.hasher {
            self.hasher = hasher;
        }
        for (rule, key, start, count, alerted) in snapshot.pairs {
            let Some(Some(new)) = mapping.get(rule as usize) else {
                report.dropped += 1;
                continue;
            };
            // A saved key longer than live ones could be (a hand-made file) is kept hashed.
            let key = if key.len() > MAX_KEY_BYTES + 32 {
                format!("#{}:{:016x}", key.len(), self.hasher.hash_str(&key))
            } else {
                key
            };
            let key = (*new, key);
            if !self.pairs.contains(&key) && self.pairs.len() >= self.pairs.cap().get() {
                self.pairs.pop_lru();
                self.evicted += 1;
                report.evicted += 1;
            }
            self.pairs.put(key, (start, count, alerted));
            report.loaded += 1;
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Threshold = Threshold {
        count: 3,
        period_ms: 1_000,
    };

    #[test]
    fn alerts_once_per_period_on_the_nth_match() {
        let mut state = ThresholdState::new(10);
        let counts: Vec<(u64, bool)> = [0, 100, 200, 300, 900, 1_000, 1_100, 1_200]
            .iter()
            .map(|&t| {
                let c = state.count(0, "a", t, T);
                (c.count, c.reached)
            })
            .collect();
        assert_eq!(
            counts,
            [
                (1, false),
                (2, false),
                (3, true),
                (4, false),
                (5, false),
                // A new period starts at 1000.
                (1, false),
                (2, false),
                (3, true),
            ]
        );
    }

    #[test]
    fn period_expiry_and_separate_keys() {
        let mut state = ThresholdState::new(10);
        state.count(0, "a", 0, T);
        state.count(0, "a", 500, T);
        // 1000 is outside [0, 1000): a new period starts.
        assert_eq!(state.count(0, "a", 1_000, T).count, 1);
        assert_eq!(state.count(0, "b", 1_000, T).count, 1);
        assert_eq!(state.count(1, "a", 1_000, T).count, 1);
        assert_eq!(state.len(), 3);
    }

    #[test]
    fn export_import_maps_rules_and_keeps_the_bound() {
        let mut state = ThresholdState::new(10);
        state.count(0, "a", 0, T);
        state.count(0, "a", 10, T);
        state.count(1, "b", 0, T);
        state.count(0, "c", 0, T);
        let long = "x".repeat(1_000);
        state.count(0, &long, 0, T);
        let snapshot = state.export();
        assert_eq!(snapshot.len(), 4);
        // Rule 0 is now rule 5; rule 1 is gone.
        let mut restored = ThresholdState::new(10);
        let report = restored.import(snapshot.clone(), &[Some(5), None]);
        assert_eq!((report.loaded, report.dropped, report.evicted), (3, 1, 0));
        assert_eq!(
            restored.count(5, "a", 20, T),
            Counted {
                count: 3,
                reached: true
            }
        );
        // The hash key came along: the long dedup string finds its counter.
        assert_eq!(restored.count(5, &long, 20, T).count, 2);
        // A smaller bound keeps the most recently used pairs.
        let mut small = ThresholdState::new(2);
        let report = small.import(snapshot, &[Some(0), Some(1)]);
        assert_eq!((report.loaded, report.evicted), (4, 2));
        assert_eq!(small.len(), 2);
        assert_eq!(small.count(0, "a", 20, T).count, 1);
        assert_eq!(small.count(0, "c", 20, T).count, 1);
    }

    #[test]
    fn bounded_with_evictions_counted() {
        let mut state = ThresholdState::new(2);
        state.count(0, "a", 0, T);
        state.count(0, "b", 0, T);
        state.count(0, "c", 0, T);
        assert_eq!(state.len(), 2);
        assert_eq!(state.evicted, 1);
        // "a" was evicted: it starts over.
        assert_eq!(state.count(0, "a", 1, T).count, 1);
        let long = "x".repeat(1_000);
        state.count(0, &long, 0, T);
        assert!(
            state
                .pairs
                .iter()
                .all(|((_, key), _)| key.len() <= MAX_KEY_BYTES + 32)
        );
    }
}
