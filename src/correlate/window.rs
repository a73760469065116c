//! One group's window: its entries sorted by event time, and the aggregates over them.
//!
//! A [`Window`] never looks at wall time. Its horizon is the newest event time it has seen:
//! an arriving entry at or before `newest - timespan` can no longer be in a window with the
//! newest entry; it is "too late" and refused. Entries are kept until `newest - 2 * timespan`,
//! because a late entry that is accepted (just after the horizon) belongs to windows that reach
//! one more timespan back.
//!
//! [`Window::evaluate`] decides whether the condition holds in some window that contains the
//! entry just inserted. The windows are those of the batch definition, `(e - timespan, e]` for
//! every entry time `e`; the ones that contain time `t` end at an entry time in
//! `[t, t + timespan)`. With in-order arrival that is only the window ending at `t`. With a
//! late arrival it is also every later window the late entry falls into, which is what makes
//! the answer independent of arrival order.

use std::collections::{HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::ir::Condition;

/// What an entry carries besides its time and stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Datum {
    None,
    /// A `value_count` value, as a keyed 64-bit hash of its text: the count only needs
    /// distinctness, and a fixed-size entry keeps a group's memory independent of value length.
    Hash(u64),
    /// A `value_sum` / `value_avg` / `value_percentile` value.
    Number(f64),
}

/// One match of a referenced rule (or correlation) in a group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub time_ms: i64,
    /// Position of the referenced rule in the correlation's `rules` list.
    pub stage: u32,
    pub datum: Datum,
}

/// The aggregate a correlation type computes over the entries of a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Aggregate {
    EventCount,
    ValueCount,
    /// Number of distinct stages present.
    Temporal {
        n_stages: u32,
    },
    /// Length of the longest prefix of the stage list that occurs in order of event time.
    TemporalOrdered {
        n_stages: u32,
    },
    Sum,
    Avg,
    /// The p-th percentile (0 to 100), linear interpolation between closest ranks.
    Percentile(f64),
}

/// What [`Window::insert`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Inserted {
    /// The entry was older than the window's horizon and was not kept.
    pub too_late: bool,
    /// Entries dropped (oldest first) because the window reached its cap; may include the
    /// entry just inserted when it was the oldest.
    pub dropped: u64,
    /// The entry is in the window now.
    pub kept: bool,
}

/// The condition held: the aggregate and the time of the oldest entry of that window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Fired {
    pub value: f64,
    pub first_seen_ms: i64,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Window {
    /// Sorted by `time_ms`; entries with equal times keep their arrival order.
    entries: VecDeque<Entry>,
    /// The newest event time ever inserted (the horizon is `newest_ms - timespan`).
    newest_ms: Option<i64>,
}

impl Window {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries, oldest first (for [`crate::correlate::snapshot`]).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// A window rebuilt from saved entries: sorted by event time (a saved file is not trusted
    /// to be), cut to `max_entries` (the oldest go, as live), with its horizon. Also returns how
    /// many entries were cut.
    pub fn restore(
        mut entries: Vec<Entry>,
        newest_ms: Option<i64>,
        max_entries: usize,
    ) -> (Window, u64) {
        // A stable sort keeps the arrival order of equal times, as live insertion does.
        entries.sort_by_key(|entry| entry.time_ms);
        let excess = entries.len().saturating_sub(max_entries.max(1));
        entries.drain(..excess);
        let newest_entry = entries.last().map(|entry| entry.time_ms);
        let newest_ms = match (newest_ms, newest_entry) {
            (Some(saved), Some(entry)) => Some(saved.max(entry)),
            (saved, entry) => saved.or(entry),
        };
        let window = Window {
            entries: entries.into(),
            newest_ms,
        };
        (window, excess as u64)
    }

    /// The newest event time ever inserted (`new_terms`: when the tuple was last seen).
    pub fn newest_ms(&self) -> Option<i64> {
        self.newest_ms
    }

    /// Removes and returns the entry of `stage` (EQL sequences keep at most one per stage).
    pub fn take_stage(&mut self, stage: u32) -> Option<Entry> {
        let at = self.entries.iter().position(|e| e.stage == stage)?;
        self.entries.remove(at)
    }

    /// Sets the entry of `entry.stage`, replacing the one there: one pending sequence per stage.
    pub fn put_stage(&mut self, entry: Entry) {
        self.take_stage(entry.stage);
        let at = self.entries.partition_point(|e| e.time_ms <= entry.time_ms);
        self.entries.insert(at, entry);
    }

    /// Inserts `entry` in event-time order, evicts what fell out of the horizon, and applies
    /// the per-group cap.
    pub fn insert(&mut self, entry: Entry, timespan_ms: i64, max_entries: usize) -> Inserted {
        let time_ms = entry.time_ms;
        if let Some(newest) = self.newest_ms
            && time_ms <= newest.saturating_sub(timespan_ms)
        {
            return Inserted {
                too_late: true,
                ..Inserted::default()
            };
        }
        let newest = self.newest_ms.map_or(time_ms, |newest| newest.max(time_ms));
        self.newest_ms = Some(newest);
        let at = self.entries.partition_point(|e| e.time_ms <= time_ms);
        self.entries.insert(at, entry);

        // Entries are kept one timespan longer than the late-event horizon: a late entry at
        // `t > newest - timespan` is evaluated in windows reaching back to `t - timespan`,
        // which may hold entries older than the horizon. Only those at or before
        // `newest - 2 * timespan` can share no window with any entry still accepted. With a
        // positive timespan the new entry is never expired itself, so every expired entry sits
        // before it; with a zero timespan (an Elastic `now-0h` history window) it may be among
        // them, and is then not kept.
        let expiry = newest
            .saturating_sub(timespan_ms)
            .saturating_sub(timespan_ms);
        let expired = self.entries.partition_point(|e| e.time_ms <= expiry);
        self.entries.drain(..expired);
        let position = at.checked_sub(expired);

        let excess = self.entries.len().saturating_sub(max_entries.max(1));
        self.entries.drain(..excess);
        let dropped = excess as u64;
        let kept = position.is_some_and(|position| position >= excess);
        Inserted {
            too_late: false,
            dropped,
            kept,
        }
    }

    /// The first window (by end time) containing time `t_ms` where `condition` holds.
    pub fn evaluate(
        &self,
        t_ms: i64,
        timespan_ms: i64,
        aggregate: Aggregate,
        condition: &Condition,
    ) -> Option<Fired> {
        let limit = t_ms.saturating_add(timespan_ms);
        let mut idx = self.entries.partition_point(|e| e.time_ms < t_ms);
        while idx < self.entries.len() {
            let end_ms = self.entries[idx].time_ms;
            if end_ms >= limit {
                break;
            }
            let start_ms = end_ms.saturating_sub(timespan_ms);
            let lo = self.entries.partition_point(|e| e.time_ms <= start_ms);
            let hi = self.entries.partition_point(|e| e.time_ms <= end_ms);
            if let Some(value) = aggregate_over(self.entries.range(lo..hi), hi - lo, aggregate)
                && condition.holds(value)
            {
                return Some(Fired {
                    value,
                    first_seen_ms: self.entries[lo].time_ms,
                });
            }
            idx = hi;
        }
        None
    }
}

/// The aggregate over one window's entries (`n` of them, in time order); `None` when it is
/// undefined (no numeric value for a sum, average or percentile).
fn aggregate_over<'a>(
    entries: impl Iterator<Item = &'a Entry> + Clone,
    n: usize,
    aggregate: Aggregate,
) -> Option<f64> {
    let numbers = || {
        entries.clone().filter_map(|e| match e.datum {
            Datum::Number(number) => Some(number),
            _ => None,
        })
    };
    match aggregate {
        Aggregate::EventCount => Some(n as f64),
        Aggregate::ValueCount => {
            let distinct: HashSet<u64> = entries
                .filter_map(|e| match e.datum {
                    Datum::Hash(hash) => Some(hash),
                    _ => None,
                })
                .collect();
            Some(distinct.len() as f64)
        }
        Aggregate::Temporal { n_stages } => {
            let mut seen = vec![false; n_stages as usize];
            for entry in entries {
                if let Some(slot) = seen.get_mut(entry.stage as usize) {
                    *slot = true;
                }
            }
            Some(seen.iter().filter(|seen| **seen).count() as f64)
        }
        Aggregate::TemporalOrdered { n_stages } => {
            Some(f64::from(ordered_prefix(entries, n_stages)))
        }
        Aggregate::Sum => {
            let mut any = false;
            let sum = numbers().inspect(|_| any = true).sum::<f64>();
            any.then_some(sum)
        }
        Aggregate::Avg => {
            let (count, sum) = numbers().fold((0_u64, 0.0), |(c, s), x| (c + 1, s + x));
            (count > 0).then(|| sum / count as f64)
        }
        Aggregate::Percentile(p) => {
            let mut values: Vec<f64> = numbers().collect();
            values.sort_by(f64::total_cmp);
            percentile(&values, p)
        }
    }
}

/// Greedy earliest match of stages 0, 1, 2, ... in time order: the longest prefix of the
/// stage list that occurred in order. Entries with equal times are unordered between
/// themselves, so a run of equal times may advance several stages in any order (the answer
/// must not depend on which of two simultaneous events arrived first).
fn ordered_prefix<'a>(entries: impl Iterator<Item = &'a Entry>, n_stages: u32) -> u32 {
    let mut next = 0_u32;
    let mut run: Vec<u32> = Vec::new();
    let mut run_time = None;
    let flush = |run: &mut Vec<u32>, next: &mut u32| {
        while run.contains(next) {
            *next += 1;
        }
        run.clear();
    };
    for entry in entries {
        if run_time != Some(entry.time_ms) {
            flush(&mut run, &mut next);
            run_time = Some(entry.time_ms);
        }
        run.push(entry.stage);
        if next >= n_stages {
            break;
        }
    }
    flush(&mut run, &mut next);
    next.min(n_stages)
}

/// Linear interpolation between closest ranks (numpy's default) over sorted `values`.
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let last = values.len().checked_sub(1)?;
    let rank = (p / 100.0).clamp(0.0, 1.0) * last as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let (low, high) = (*values.get(lo)?, *values.get(hi)?);
    Some(low + (high - low) * (rank - lo as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::CmpOp;

    fn entry(time_ms: i64, stage: u32) -> Entry {
        Entry {
            time_ms,
            stage,
            datum: Datum::None,
        }
    }

    /// A zero timespan (no loader builds one any more, but the window must stay total): the
    /// entry just inserted is itself expired and not kept, and nothing panics.
    #[test]
    fn zero_timespan_insert_keeps_nothing_and_does_not_panic() {
        let mut window = Window::default();
        let first = window.insert(entry(1_000, 0), 0, 10);
        assert!(!first.too_late);
        assert!(!first.kept);
        let second = window.insert(entry(2_000, 0), 0, 10);
        assert!(!second.kept);
        assert!(window.insert(entry(500, 0), 0, 10).too_late);
    }

    fn gte(bound: f64) -> Condition {
        Condition {
            comparisons: vec![(CmpOp::Gte, bound)],
        }
    }

    #[test]
    fn insert_keeps_time_order_and_evicts_by_newest() {
        let mut window = Window::default();
        for t in [50, 10, 30, 20] {
            assert!(window.insert(entry(t, 0), 100, 10).kept);
        }
        let times: Vec<i64> = window.entries.iter().map(|e| e.time_ms).collect();
        assert_eq!(times, vec![10, 20, 30, 50]);
        // Newest becomes 125: nothing is at or before 125 - 2 * 100 yet.
        window.insert(entry(125, 0), 100, 10);
        let times: Vec<i64> = window.entries.iter().map(|e| e.time_ms).collect();
        assert_eq!(times, vec![10, 20, 30, 50, 125]);
        // Too late: at or before the horizon (125 - 100).
        let late = window.insert(entry(25, 0), 100, 10);
        assert!(late.too_late && !late.kept);
        assert_eq!(window.len(), 5);
        // Newest becomes 225: everything at or before 25 leaves.
        window.insert(entry(225, 0), 100, 10);
        let times: Vec<i64> = window.entries.iter().map(|e| e.time_ms).collect();
        assert_eq!(times, vec![30, 50, 125, 225]);
    }

    #[test]
    fn cap_drops_oldest_first() {
        let mut window = Window::default();
        for t in 0..5 {
            window.insert(entry(t, 0), 1_000, 3);
        }
        assert_eq!(window.len(), 3);
        let old = window.insert(entry(1, 0), 1_000, 3);
        assert_eq!(old.dropped, 1);
        assert!(!old.kept);
        let new = window.insert(entry(9, 0), 1_000, 3);
        assert_eq!(new.dropped, 1);
        assert!(new.kept);
    }

    #[test]
    fn late_entry_completes_a_later_window() {
        let mut window = Window::default();
        window.insert(entry(30, 0), 100, 10);
        assert_eq!(
            window.evaluate(30, 100, Aggregate::EventCount, &gte(2.0)),
            None
        );
        window.insert(entry(10, 0), 100, 10);
        assert_eq!(
            window.evaluate(10, 100, Aggregate::EventCount, &gte(2.0)),
            Some(Fired {
                value: 2.0,
                first_seen_ms: 10
            })
        );
        // 10 and 130 are not within one window of 100 ms.
        let mut window = Window::default();
        window.insert(entry(10, 0), 100, 10);
        window.insert(entry(110, 0), 100, 10);
        assert_eq!(
            window.evaluate(110, 100, Aggregate::EventCount, &gte(2.0)),
            None
        );
    }

    #[test]
    fn ordered_prefix_follows_event_time_and_ties() {
        let at = |pairs: &[(i64, u32)]| {
            let entries: Vec<Entry> = pairs.iter().map(|(t, s)| entry(*t, *s)).collect();
            ordered_prefix(entries.iter(), 3)
        };
        assert_eq!(at(&[(1, 0), (2, 1), (3, 2)]), 3);
        assert_eq!(at(&[(1, 1), (2, 0), (3, 2)]), 1);
        assert_eq!(at(&[(1, 0), (2, 2), (3, 1)]), 2);
        assert_eq!(at(&[(1, 1), (1, 0), (2, 2)]), 3);
        assert_eq!(at(&[(1, 0), (1, 0), (2, 1), (2, 2)]), 3);
        assert_eq!(at(&[]), 0);
    }

    #[test]
    fn numeric_aggregates() {
        let entries: Vec<Entry> = [4.0, 1.0, 3.0, 2.0]
            .iter()
            .enumerate()
            .map(|(i, x)| Entry {
                time_ms: i as i64,
                stage: 0,
                datum: Datum::Number(*x),
            })
            .collect();
        let agg = |a| aggregate_over(entries.iter(), entries.len(), a);
        assert_eq!(agg(Aggregate::Sum), Some(10.0));
        assert_eq!(agg(Aggregate::Avg), Some(2.5));
        assert_eq!(agg(Aggregate::Percentile(50.0)), Some(2.5));
        assert_eq!(agg(Aggregate::Percentile(100.0)), Some(4.0));
        assert_eq!(agg(Aggregate::Percentile(0.0)), Some(1.0));
        let none = [entry(1, 0)];
        assert_eq!(aggregate_over(none.iter(), 1, Aggregate::Sum), None);
        assert_eq!(aggregate_over(none.iter(), 1, Aggregate::Avg), None);
        assert_eq!(
            aggregate_over(none.iter(), 1, Aggregate::Percentile(50.0)),
            None
        );
    }
}
