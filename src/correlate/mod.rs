//! Multi-event correlation over base-rule matches, in event time, with bounded state.
//!
//! (Interface fixed by the engine; the implementation is being written.)

use crate::diag::Diagnostic;
use crate::eval::event::Event;
use crate::ir::{Correlation, RuleSet};

/// Hard bounds on correlation memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Live groups across all correlations (`--max-groups`); the least recently used is evicted.
    pub max_groups: usize,
    /// Timestamps / values kept per group (`--max-group-entries`); the oldest go first.
    pub max_entries_per_group: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_groups: 100_000,
            max_entries_per_group: 1_000,
        }
    }
}

/// One correlation that fired on the current event.
#[derive(Clone, Debug, PartialEq)]
pub struct CorrelationHit {
    /// Index into [`Correlator::correlations`].
    pub correlation: usize,
    /// Group-by name and the value it had, in `group-by` order.
    pub group: Vec<(String, String)>,
    /// The aggregate that met the condition (count, distinct count, sum, average, percentile).
    pub value: f64,
    /// Event time (ms) of the oldest event still counted in the window.
    pub first_seen_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorrelationStats {
    pub live_groups: u64,
    pub evicted_groups: u64,
    /// Entries dropped because a group reached its per-group cap.
    pub dropped_entries: u64,
}

pub struct Correlator {
    correlations: Vec<Correlation>,
}

impl Correlator {
    pub fn new(set: &RuleSet, limits: Limits) -> (Correlator, Vec<Diagnostic>) {
        let _ = limits;
        assert!(
            set.correlations.is_empty(),
            "correlations are not implemented yet"
        );
        (
            Correlator {
                correlations: Vec::new(),
            },
            Vec::new(),
        )
    }

    pub fn correlations(&self) -> &[Correlation] {
        &self.correlations
    }

    pub fn is_empty(&self) -> bool {
        self.correlations.is_empty()
    }

    /// Rules referenced only by correlations with `generate: false`.
    pub fn silenced_rules(&self) -> Vec<usize> {
        Vec::new()
    }

    /// False for a correlation referenced only by correlations with `generate: false`.
    pub fn correlation_alerts(&self, idx: usize) -> bool {
        let _ = idx;
        unimplemented!()
    }

    /// Ids of the rules or correlations that correlation `idx` references.
    pub fn referenced_ids(&self, idx: usize) -> &[String] {
        let _ = idx;
        unimplemented!()
    }

    /// Feeds the base-rule matches of one event (indexes into the rule set's rules), in
    /// arrival order; pushes the correlations that fire on this event.
    pub fn observe(
        &mut self,
        event: &Event<'_>,
        time_ms: i64,
        matched_rules: &[usize],
        out: &mut Vec<CorrelationHit>,
    ) {
        let _ = (event, time_ms, matched_rules, out);
        unimplemented!()
    }

    pub fn stats(&self) -> CorrelationStats {
        CorrelationStats::default()
    }
}
