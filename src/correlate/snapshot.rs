//! Correlation state as plain values: what [`Correlator::export`] gives and
//! [`Correlator::import`] takes back, for `--state` files and hot reloads.
//!
//! The correlator does no I/O: turning a snapshot into bytes and bytes into a file is the
//! caller's job (`crate::state`). A snapshot refers to correlations by their index at export
//! time; the engine maps those to its current correlations by id and definition fingerprint
//! (`crate::eval::state`) and hands the correlator the mapping, so state for a correlation that
//! is gone or whose definition changed is dropped, never applied to a different definition.
//!
//! These types derive serde's traits because they are the payload of the state file. They
//! are not output: what vigil writes to stdout is defined in `crate::enrich` alone.
//!
//! # Keyed hashes
//!
//! `value_count` values and group values over 128 bytes are kept as keyed 64-bit hashes. The
//! key is random per state (so crafted collisions cannot be precomputed), and a snapshot
//! carries it: a restored group must hash a value it sees again exactly as it did before.
//! [`KeyedHasher`] is SipHash-1-3 with an explicit key, whose algorithm is fixed (std's
//! `DefaultHasher` may change between Rust releases, and `RandomState` cannot export its key).

use std::hash::{BuildHasher, Hasher, RandomState};

use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher13;

use super::window::Entry;
use super::{Correlator, Limits};

/// SipHash-1-3 with a key that can be saved and restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedHasher {
    key: [u64; 2],
}

impl KeyedHasher {
    /// A hasher with a fresh random key (from the process's `RandomState` seed).
    pub fn random() -> KeyedHasher {
        KeyedHasher {
            key: [
                RandomState::new().hash_one(0x5eed_u64),
                RandomState::new().hash_one(0xfeed_u64),
            ],
        }
    }

    /// A hasher with a fixed key: for stable fingerprints, never for attacker-chosen values.
    pub const fn fixed(key: [u64; 2]) -> KeyedHasher {
        KeyedHasher { key }
    }

    pub fn hash_str(&self, text: &str) -> u64 {
        let mut hasher = SipHasher13::new_with_keys(self.key[0], self.key[1]);
        hasher.write(text.as_bytes());
        // The length ends the input, as `str`'s `Hash` does with its terminator byte.
        hasher.write_usize(text.len());
        hasher.finish()
    }
}

/// Every group of every correlation, least recently used first, with the hash key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CorrelatorSnapshot {
    pub(crate) hasher: Option<KeyedHasher>,
    /// `new_terms` warm-up start per correlation (index at export time).
    pub(crate) started_ms: Vec<Option<i64>>,
    pub(crate) groups: Vec<SavedGroup>,
}

/// One group: its correlation (index at export time), its state key without the correlation
/// prefix, and its window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedGroup {
    pub correlation: u32,
    pub key: String,
    pub newest_ms: Option<i64>,
    pub entries: Vec<Entry>,
}

impl CorrelatorSnapshot {
    /// Groups held.
    pub fn n_groups(&self) -> usize {
        self.groups.len()
    }

    /// Entries held over all groups.
    pub fn n_entries(&self) -> usize {
        self.groups.iter().map(|group| group.entries.len()).sum()
    }
}

/// What [`Correlator::import`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CorrelatorImport {
    /// Groups restored (some may have been evicted again by the limits; see `groups_evicted`).
    pub groups_loaded: u64,
    /// Groups of correlations that are gone or changed, or with an unreadable key.
    pub groups_dropped: u64,
    /// Groups evicted on import by `--max-groups` / `--max-entries` (least recently used first).
    pub groups_evicted: u64,
    /// Entries cut by `--max-group-entries` (oldest first).
    pub entries_dropped: u64,
}

impl Correlator {
    /// Every group of every correlation, least recently used first.
    pub fn export(&self) -> CorrelatorSnapshot {
        let groups = self
            .store
            .iter_lru_first()
            .filter_map(|(key, window)| {
                let (correlation, rest) = key.split_once('/')?;
                Some(SavedGroup {
                    correlation: correlation.parse().ok()?,
                    key: rest.to_string(),
                    newest_ms: window.newest_ms(),
                    entries: window.entries().cloned().collect(),
                })
            })
            .collect();
        CorrelatorSnapshot {
            hasher: Some(self.hasher),
            started_ms: self.started_ms.clone(),
            groups,
        }
    }

    /// Restores `snapshot` into this correlator, replacing its state. `mapping[i]` is the
    /// current index of the snapshot's correlation `i` (`None`: gone or changed, its groups are
    /// dropped). Groups are inserted least recently used first under this correlator's limits,
    /// with the same eviction rules as live, so the result never exceeds them.
    pub fn import(
        &mut self,
        snapshot: CorrelatorSnapshot,
        mapping: &[Option<usize>],
    ) -> CorrelatorImport {
        let mut report = CorrelatorImport::default();
        self.store = super::state::Store::new(self.limits.max_groups, self.limits.max_entries);
        if let Some(hasher) = snapshot.hasher {
            self.hasher = hasher;
        }
        self.started_ms = vec![None; self.correlations.len()];
        for (old, started) in snapshot.started_ms.into_iter().enumerate() {
            if let Some(Some(new)) = mapping.get(old)
                && let Some(slot) = self.started_ms.get_mut(*new)
            {
                *slot = started;
            }
        }
        // A group alone never holds more than the entry budget either, so that the restored
        // state is within every limit whatever the file holds.
        let Limits {
            max_entries_per_group,
            max_entries,
            ..
        } = self.limits;
        let max_entries_per_group = max_entries_per_group.min(max_entries);
        for group in snapshot.groups {
            let Some(Some(new)) = mapping.get(group.correlation as usize) else {
                report.groups_dropped += 1;
                continue;
            };
            if *new >= self.correlations.len() {
                report.groups_dropped += 1;
                continue;
            }
            let key = format!("{new}/{}", group.key);
            let (window, cut) = super::window::Window::restore(
                group.entries,
                group.newest_ms,
                max_entries_per_group,
            );
            report.entries_dropped += cut;
            report.groups_loaded += 1;
            let before = self.store.evicted_groups;
            self.store.restore(key, window);
            report.groups_evicted += self.store.evicted_groups - before;
        }
        report
    }
}
