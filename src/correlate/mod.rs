//! Multi-event correlation over base-rule matches, in event time, with bounded state.
//!
//! The [`Correlator`] owns every correlation rule, links each to the rules (or correlations)
//! it references, and keeps one window of entries per `(correlation, group key)` in a single
//! bounded LRU ([`state`]). The engine calls [`Correlator::observe`] once per event with the
//! base rules that matched and the event's time; the correlations that fire on that event come
//! back as [`CorrelationHit`]s.
//!
//! # Semantics
//!
//! This is a pass-through enricher: each event is written out right after it is evaluated, so
//! only the event being evaluated can carry a correlation. Everything below follows from that.
//!
//! - **Time.** Windows run on event time (`time_ms`, from the event; the engine falls back to
//!   arrival time when the event has none). Wall time plays no part.
//! - **Entries.** Each match of a referenced rule is one entry in its group: an event matched
//!   by two referenced rules counts twice (once per rule), an event matched by no referenced
//!   rule not at all. `value_count` entries need `field` present, and `value_sum`/`avg`/
//!   `percentile` entries need it numeric (a number or a numeric string); otherwise the match
//!   is ignored by that correlation.
//! - **Window.** Sliding, per group: `(e - timespan, e]`, the batch definition, where `e`
//!   ranges over the event times of the group's entries. A correlation fires on an event when
//!   the condition holds in a window that contains that event's time. With in-order arrival
//!   that is the window ending at the event. CloudTrail arrives out of order by minutes, so a
//!   late event is inserted at its place in time and every window it falls into is evaluated
//!   (the windows ending at entry times in `[t, t + timespan)`): whatever the arrival order
//!   within the window, the correlation fires once the events that satisfy it have all
//!   arrived, with the same value and `first_seen_ms`. Only the carrier changes: it is the
//!   event whose arrival completes the condition, i.e. the last of them to arrive.
//! - **Horizon.** An event at or before `newest - timespan`, `newest` being the greatest
//!   event time its group has seen, can no longer share a window with the newest one when it
//!   arrives; it is too late, counted in [`CorrelationStats::late_events`], and ignored. A
//!   group forgets entries one timespan later, at or before `newest - 2 * timespan`: a late
//!   event just inside the horizon is evaluated in windows reaching back that far.
//! - **`temporal_ordered`.** The referenced rules must have matched in the listed order *by
//!   event time* (greedy earliest match, EQL-style) within one window; arrival order does not
//!   matter. Events with the same time count as being in either order. The aggregate is the
//!   length of the in-order prefix found; the default condition `gte: <number of rules>` asks
//!   for all of them.
//! - **Re-firing.** A group fires once, then resets: its window is cleared, and the next alert
//!   needs the condition to be met again by events that arrive afterwards. `event_count gte:
//!   100` over a burst of 1000 failed logins alerts 10 times, not 901 (rsigma `action: reset`).
//!   A group fires at most once per event.
//! - **`lt` / `lte` / `eq` / `neq`.** The condition is only evaluated when an event arrives,
//!   never at window end. So "fewer than N" cannot mean "the window closed with fewer than
//!   N": for counts, a condition that holds for a count of 1 fires on the first match of every
//!   group (then resets). [`Correlator::new`] warns about such correlations. `eq: N` fires when
//!   the N-th entry arrives. Ranges (`gt` with `lte`) behave as their lower bound plus the cap.
//! - **Missing group-by field.** As rsigma (and SQL `GROUP BY`), an event without a group-by
//!   field still counts: the missing value is a value of its own (`None`), distinct from the
//!   empty string, so all events lacking the field share one group. A JSON `null` is missing.
//!   In a hit the missing value is rendered as `""`. Non-string values group as their JSON
//!   text; a field holding several values (an array on the way) uses the first.
//! - **Aliases.** A `group-by` name that is an alias reads, for each referenced rule, the field
//!   the alias maps that rule to (the mapping key may be the rule's id, name or the reference
//!   as written). A rule the alias does not map reads the field named like the alias.
//! - **Chains.** A correlation may reference correlations. A correlation hit is fed to the
//!   correlations referencing it as a match on the same event at the same time, its group key
//!   read from the event like any match. Correlations are evaluated in dependency order, so a
//!   chain completes on one event. Reference cycles are diagnosed and the correlations in
//!   them dropped, as is any correlation built on a dropped one.
//! - **Elastic stateful kinds.** `new_terms` and EQL `sequence` correlations are not window
//!   aggregates: see [`Correlator::feed_new_terms`] and [`Correlator::feed_sequences`]. They live
//!   in the same LRU with the same bounds, and their hits do not feed other correlations.
//! - **`generate`.** A rule referenced only by correlations with `generate: false` does not
//!   alert on its own (nor does an Elastic building-block rule) ([`Correlator::silenced_rules`]); the same holds for a correlation
//!   referenced only by such correlations ([`Correlator::correlation_alerts`] is false): it
//!   still fires and feeds its dependents, but does not alert on its own.
//! - **`first_seen_ms`** is the oldest event time in the window that fired, whether or not
//!   that entry was needed for the condition (for a chain, a fed-forward hit's entry has the
//!   time of the event that carried it).
//! - **Bounds.** One LRU across all correlations holds at most [`Limits::max_groups`] groups
//!   and [`Limits::max_entries`] entries over all groups; beyond either, the least recently
//!   used group is evicted and counted. Entries are fixed-size (a `value_count` value is kept
//!   as a keyed 64-bit hash) and group values over 128 bytes are hashed in the state key, so
//!   the memory of all correlation state is bounded by the two limits alone. A group keeps at most
//!   [`Limits::max_entries_per_group`] entries; the oldest go first and are counted. An
//!   evicted or capped group can only fire later than it would have, never wrongly; an
//!   `event_count` whose threshold exceeds the cap can never fire and is warned about.

pub mod snapshot;
mod state;
pub mod threshold;
mod window;

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::diag::{Code, Diagnostic};
use crate::event::{Event, number_of, text_of};
use crate::ir::{CmpOp, Correlation, CorrelationKind, FieldPath, RuleSet};
use snapshot::KeyedHasher;
use state::Store;
use window::{Aggregate, Datum, Entry};

/// The tag Elastic building-block rules carry (`crate::rules::elastic::BUILDING_BLOCK_TAG`;
/// repeated here because the engine does not depend on the loaders).
const BUILDING_BLOCK_TAG: &str = "elastic.building_block";

/// Hard bounds on correlation memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Live groups across all correlations (`--max-groups`); the least recently used is evicted.
    pub max_groups: usize,
    /// Timestamps / values kept per group (`--max-group-entries`); the oldest go first.
    pub max_entries_per_group: usize,
    /// Entries kept over all groups (`--max-entries`); least recently used groups are evicted
    /// beyond it. With `max_groups` this caps the memory of all correlation state.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_groups: 100_000,
            max_entries_per_group: 1_000,
            max_entries: 1_000_000,
        }
    }
}

/// One correlation that fired on the current event.
#[derive(Clone, Debug, PartialEq)]
pub struct CorrelationHit {
    /// Index into [`Correlator::correlations`].
    pub correlation: usize,
    /// Group-by name and the value it had, in `group-by` order (`""` for a missing field).
    pub group: Vec<(String, String)>,
    /// The aggregate that met the condition (count, distinct count, sum, average, percentile,
    /// number of distinct rules, length of the in-order prefix).
    pub value: f64,
    /// Event time (ms) of the oldest event counted in the window that fired.
    pub first_seen_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorrelationStats {
    pub live_groups: u64,
    /// Entries held over all live groups.
    pub live_entries: u64,
    pub evicted_groups: u64,
    /// Entries dropped because a group reached its per-group cap.
    pub dropped_entries: u64,
    /// Matches ignored because their event time was behind their group's horizon.
    pub late_events: u64,
}

pub struct Correlator {
    correlations: Vec<Correlation>,
    linked: Vec<Linked>,
    /// `(correlation, input)` pairs fed by each base rule.
    by_rule: Vec<Vec<(usize, usize)>>,
    /// `(correlation, input)` pairs fed by each correlation's hits.
    by_correlation: Vec<Vec<(usize, usize)>>,
    silenced_rules: Vec<usize>,
    silenced_correlations: Vec<usize>,
    limits: Limits,
    store: Store,
    dropped_entries: u64,
    late_events: u64,
    /// Scratch for [`Correlator::observe`]: pending `(rank, correlation, input)`.
    work: BinaryHeap<Reverse<(usize, usize, usize)>>,
    /// Scratch: groups that fired on the current event.
    fired_groups: Vec<String>,
    /// Scratch: the encoded key of the group being fed (see [`encode_key`]).
    key: String,
    /// Keys the hashes of `value_count` values and of long group values (random per state,
    /// so crafted collisions cannot be precomputed; saved with the state, see [`snapshot`]).
    hasher: KeyedHasher,
    /// Scratch: correlations whose hits were already fed forward for the current event.
    fed_forward: Vec<usize>,
    /// `new_terms`: the oldest event time each correlation has seen (its warm-up start).
    started_ms: Vec<Option<i64>>,
    /// Scratch: `(correlation, input)` of sequence stages matched by the current event.
    sequence_work: Vec<(usize, usize)>,
}

/// Stateful kinds that are not an aggregate over a window (Elastic `new_terms`, EQL
/// `sequence`); see [`Correlator::feed_new_terms`] and [`Correlator::feed_sequences`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Special {
    None,
    NewTerms,
    Sequence { n_stages: u32, has_until: bool },
}

/// A correlation linked to what it references.
struct Linked {
    special: Special,
    inputs: Vec<Input>,
    aggregate: Aggregate,
    /// The field (or computed value) `value_*` correlations read.
    value_field: Option<GroupSource>,
    referenced_ids: Vec<String>,
    /// Dependency depth: 0 when built on rules only; chains are evaluated by increasing rank.
    rank: usize,
}

/// One referenced rule or correlation, with the fields its group key is read from.
struct Input {
    /// Position in the correlation's (deduplicated) `rules` list: the stage.
    stage: u32,
    group_fields: Vec<GroupSource>,
    /// The base rule this input is fed by (`None` for a correlation), whose match context
    /// `p_alert_context.*` group fields read.
    rule: Option<usize>,
}

/// Where one group-by value comes from: a field (of the event, or of the feeding rule's match
/// context for `p_alert_context.*`), or a value the query computed from the event (an ES|QL
/// `EVAL`/`DISSECT`/`GROK` column, [`Correlation::computed`]).
#[derive(Clone, Debug)]
enum GroupSource {
    Field(FieldPath),
    Computed(crate::ir::ValueExpr),
}

impl GroupSource {
    /// The group-by value of `event` as text; `None` when missing (or null).
    fn text<'e>(
        &self,
        event: &'e Event<'_>,
        context: Option<&'e serde_json::Value>,
    ) -> Option<Cow<'e, str>> {
        match self {
            GroupSource::Field(field) => group_value(field, event, context).and_then(text_of),
            GroupSource::Computed(value) => {
                crate::eval::value::eval_text(value, event).map(Cow::Owned)
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Rule(usize),
    Correlation(usize),
}

impl Correlator {
    /// Links every correlation to the rules and correlations it references. A correlation
    /// with an unknown reference, in a reference cycle, or built on a dropped correlation is
    /// dropped with an error; questionable but usable ones load with a warning.
    pub fn new(set: &RuleSet, limits: Limits) -> (Correlator, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let targets = resolve_all(set, &mut diagnostics);
        let keep = drop_cycles_and_dependents(set, &targets, &mut diagnostics);

        let mut new_index = vec![None; set.correlations.len()];
        for (new, old) in keep.iter().enumerate() {
            new_index[*old] = Some(new);
        }
        let mut correlations = Vec::with_capacity(keep.len());
        let mut linked: Vec<Linked> = Vec::with_capacity(keep.len());
        let mut by_rule = vec![Vec::new(); set.rules.len()];
        let mut by_correlation = vec![Vec::new(); keep.len()];
        let mut rule_alerts = vec![None::<bool>; set.rules.len()];
        let mut correlation_alerts = vec![None::<bool>; keep.len()];
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); keep.len()];

        for (new, &old) in keep.iter().enumerate() {
            let corr = &set.correlations[old];
            let Some(resolved) = &targets[old] else {
                continue;
            };
            let mut inputs = Vec::with_capacity(resolved.len());
            let mut referenced_ids = Vec::with_capacity(resolved.len());
            for (stage, (written, target)) in resolved.iter().enumerate() {
                let (id, name) = match *target {
                    Target::Rule(idx) => {
                        let meta = &set.rules[idx].meta;
                        (&meta.id, &meta.name)
                    }
                    Target::Correlation(idx) => {
                        let meta = &set.correlations[idx].meta;
                        (&meta.id, &meta.name)
                    }
                };
                referenced_ids.push(id.clone());
                let handles = [Some(written.as_str()), Some(id.as_str()), name.as_deref()];
                let group_fields = corr
                    .group_by
                    .iter()
                    .map(
                        |group| match corr.computed.iter().find(|(name, _)| name == group) {
                            Some((_, value)) => GroupSource::Computed(value.clone()),
                            None => GroupSource::Field(alias_field(
                                corr,
                                group,
                                &handles,
                                &mut diagnostics,
                            )),
                        },
                    )
                    .collect();
                let input = inputs.len();
                inputs.push(Input {
                    stage: stage as u32,
                    group_fields,
                    rule: match *target {
                        Target::Rule(idx) => Some(idx),
                        Target::Correlation(_) => None,
                    },
                });
                let slot = match *target {
                    Target::Rule(idx) => {
                        by_rule[idx].push((new, input));
                        &mut rule_alerts[idx]
                    }
                    Target::Correlation(idx) => {
                        // Kept correlations only reference kept ones.
                        let Some(dep) = new_index[idx] else {
                            continue;
                        };
                        by_correlation[dep].push((new, input));
                        deps[new].push(dep);
                        &mut correlation_alerts[dep]
                    }
                };
                *slot = Some(slot.unwrap_or(false) || corr.generate);
            }
            let n_stages = inputs.len() as u32;
            let (aggregate, value_field) = match &corr.kind {
                CorrelationKind::EventCount => (Aggregate::EventCount, None),
                CorrelationKind::ValueCount { field } => (Aggregate::ValueCount, Some(field)),
                CorrelationKind::Temporal => (Aggregate::Temporal { n_stages }, None),
                CorrelationKind::TemporalOrdered => (Aggregate::TemporalOrdered { n_stages }, None),
                CorrelationKind::ValueSum { field } => (Aggregate::Sum, Some(field)),
                CorrelationKind::ValueAvg { field } => (Aggregate::Avg, Some(field)),
                CorrelationKind::ValuePercentile { field, percentile } => {
                    (Aggregate::Percentile(*percentile), Some(field))
                }
                CorrelationKind::NewTerms | CorrelationKind::Sequence { .. } => {
                    (Aggregate::EventCount, None)
                }
            };
            let special = match corr.kind {
                CorrelationKind::NewTerms => Special::NewTerms,
                CorrelationKind::Sequence { has_until } => Special::Sequence {
                    n_stages: n_stages - u32::from(has_until),
                    has_until,
                },
                _ => Special::None,
            };
            if special == Special::None {
                warn_on_condition(corr, aggregate, limits, &mut diagnostics);
            }
            correlations.push(corr.clone());
            linked.push(Linked {
                special,
                inputs,
                aggregate,
                value_field: value_field.map(|field| {
                    match corr.computed.iter().find(|(name, _)| *name == field.raw) {
                        Some((_, value)) => GroupSource::Computed(value.clone()),
                        None => GroupSource::Field(field.clone()),
                    }
                }),
                referenced_ids,
                rank: 0,
            });
        }
        // Ranks: longest path from a correlation built on rules only. The graph is acyclic
        // here, so relaxing n times settles it.
        let mut rank = vec![0_usize; linked.len()];
        for _ in 0..linked.len() {
            for c in 0..linked.len() {
                rank[c] = deps[c].iter().map(|d| rank[*d] + 1).max().unwrap_or(0);
            }
        }
        for (linked, rank) in linked.iter_mut().zip(rank) {
            linked.rank = rank;
        }

        let silenced = |alerts: &[Option<bool>]| {
            alerts
                .iter()
                .enumerate()
                .filter(|(_, alert)| **alert == Some(false))
                .map(|(idx, _)| idx)
                .collect()
        };
        let mut silenced_rules: Vec<usize> = silenced(&rule_alerts);
        // Elastic building blocks feed other rules and never alert on their own: the loader
        // tags them, and they are silenced like a rule only referenced with `generate: false`.
        for (idx, rule) in set.rules.iter().enumerate() {
            if rule.meta.tags.iter().any(|tag| tag == BUILDING_BLOCK_TAG)
                && !silenced_rules.contains(&idx)
            {
                silenced_rules.push(idx);
            }
        }
        let correlator = Correlator {
            correlations,
            linked,
            by_rule,
            by_correlation,
            silenced_rules,
            silenced_correlations: silenced(&correlation_alerts),
            limits,
            store: Store::new(limits.max_groups, limits.max_entries),
            dropped_entries: 0,
            late_events: 0,
            work: BinaryHeap::new(),
            fired_groups: Vec::new(),
            key: String::new(),
            hasher: KeyedHasher::random(),
            fed_forward: Vec::new(),
            started_ms: vec![None; keep.len()],
            sequence_work: Vec::new(),
        };
        (correlator, diagnostics)
    }

    pub fn correlations(&self) -> &[Correlation] {
        &self.correlations
    }

    pub fn is_empty(&self) -> bool {
        self.correlations.is_empty()
    }

    /// Rules referenced only by correlations with `generate: false`.
    pub fn silenced_rules(&self) -> Vec<usize> {
        self.silenced_rules.clone()
    }

    /// Correlations (indexes into [`Correlator::correlations`]) referenced only by
    /// correlations with `generate: false`: their hits feed the chain but need not alert.
    pub fn silenced_correlations(&self) -> Vec<usize> {
        self.silenced_correlations.clone()
    }

    /// False for a correlation referenced only by correlations with `generate: false`.
    pub fn correlation_alerts(&self, idx: usize) -> bool {
        !self.silenced_correlations.contains(&idx)
    }

    /// Ids of the rules or correlations that correlation `idx` references, in `rules` order.
    pub fn referenced_ids(&self, idx: usize) -> &[String] {
        self.linked
            .get(idx)
            .map_or(&[], |linked| linked.referenced_ids.as_slice())
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
        self.observe_with_context(event, time_ms, matched_rules, &|_| None, out);
    }

    /// Like [`Correlator::observe`], with the context each matched rule produced (Panther
    /// `alert_context()` output): a group field `p_alert_context.<path>` is read from the
    /// context of the rule that fed the entry, never from the event.
    pub fn observe_with_context<'v>(
        &mut self,
        event: &'v Event<'_>,
        time_ms: i64,
        matched_rules: &[usize],
        context: &dyn Fn(usize) -> Option<&'v serde_json::Value>,
        out: &mut Vec<CorrelationHit>,
    ) {
        self.work.clear();
        self.fired_groups.clear();
        self.fed_forward.clear();
        self.sequence_work.clear();
        for &rule in matched_rules {
            let Some(users) = self.by_rule.get(rule) else {
                continue;
            };
            for &(corr, input) in users {
                self.work
                    .push(Reverse((self.linked[corr].rank, corr, input)));
            }
        }
        let mut last = None;
        while let Some(Reverse(item)) = self.work.pop() {
            // A rule listed twice in `matched_rules` still counts once.
            if last == Some(item) {
                continue;
            }
            last = Some(item);
            let (_, corr, input) = item;
            let rule_context = self.linked[corr].inputs[input].rule.and_then(context);
            let Some(hit) = self.feed(corr, input, event, rule_context, time_ms) else {
                continue;
            };
            out.push(hit);
            if self.linked[corr].special != Special::None {
                continue;
            }
            if !self.fed_forward.contains(&corr) {
                self.fed_forward.push(corr);
                for &(user, user_input) in &self.by_correlation[corr] {
                    self.work
                        .push(Reverse((self.linked[user].rank, user, user_input)));
                }
            }
        }
        self.feed_sequences(event, time_ms, out);
    }

    pub fn stats(&self) -> CorrelationStats {
        CorrelationStats {
            live_groups: self.store.len() as u64,
            live_entries: self.store.entries() as u64,
            evicted_groups: self.store.evicted_groups,
            dropped_entries: self.dropped_entries,
            late_events: self.late_events,
        }
    }

    /// Adds one match to its group and evaluates the condition.
    fn feed<'v>(
        &mut self,
        corr: usize,
        input: usize,
        event: &'v Event<'_>,
        context: Option<&'v serde_json::Value>,
        time_ms: i64,
    ) -> Option<CorrelationHit> {
        match self.linked[corr].special {
            Special::None => {}
            Special::NewTerms => return self.feed_new_terms(corr, input, event, time_ms),
            Special::Sequence { .. } => {
                // Stages are handled after every match of the event is known (last stage
                // first), so one event never advances a sequence through two stages.
                self.sequence_work.push((corr, input));
                return None;
            }
        }
        let linked = &self.linked[corr];
        let correlation = &self.correlations[corr];
        let datum = match (linked.aggregate, &linked.value_field) {
            (Aggregate::ValueCount, Some(field)) => {
                Datum::Hash(self.hasher.hash_str(&field.text(event, context)?))
            }
            (
                Aggregate::Sum | Aggregate::Avg | Aggregate::Percentile(_),
                Some(GroupSource::Field(field)),
            ) => Datum::Number(number_of(group_value(field, event, context)?)?),
            // ES|QL `SUM(expr)`: a row whose value is null (or not a finite number) adds
            // nothing, as ES|QL skips nulls.
            (Aggregate::Sum, Some(GroupSource::Computed(value))) => {
                Datum::Number(crate::eval::value::eval_number(value, event)?)
            }
            // No loader builds an average or percentile over a computed value (ES|QL `AVG`
            // is reported unsupported); ignoring the match keeps this total.
            (Aggregate::Avg | Aggregate::Percentile(_), Some(GroupSource::Computed(_))) => {
                return None;
            }
            _ => Datum::None,
        };
        let stage = linked.inputs[input].stage;
        let group_fields = &linked.inputs[input].group_fields;
        encode_key(
            &mut self.key,
            corr,
            group_fields,
            event,
            context,
            &self.hasher,
        );
        let entry = Entry {
            time_ms,
            stage,
            datum,
        };
        // A group that fired on this event was reset; this event's other matches must not
        // start its next window (the next alert needs events that arrive afterwards).
        if self.fired_groups.contains(&self.key) {
            return None;
        }
        let inserted = self.store.insert(
            &self.key,
            entry,
            correlation.timespan_ms,
            self.limits.max_entries_per_group,
        );
        self.dropped_entries += inserted.dropped;
        if inserted.too_late {
            self.late_events += 1;
        }
        if !inserted.kept {
            return None;
        }
        let fired = self.store.window(&self.key)?.evaluate(
            time_ms,
            correlation.timespan_ms,
            linked.aggregate,
            &correlation.condition,
        )?;
        let group = correlation
            .group_by
            .iter()
            .zip(group_fields)
            .map(|(name, field)| {
                let value = field.text(event, context);
                (name.clone(), value.map(Cow::into_owned).unwrap_or_default())
            })
            .collect();
        self.store.remove(&self.key);
        self.fired_groups.push(self.key.clone());
        Some(CorrelationHit {
            correlation: corr,
            group,
            value: fired.value,
            first_seen_ms: fired.first_seen_ms,
        })
    }
}

impl Correlator {
    /// Elastic `new_terms`. A match fires when its group-by tuple (every field present) was
    /// not seen in the history window `(t - timespan, t)` before it, once the correlation has
    /// seen a whole history window of events (warm-up: before that, "never seen" only means
    /// "not seen since vigil started"). A group keeps one entry (the newest time seen); an
    /// event older than its group's newest time counts as seen. An evicted group forgets
    /// its tuple, which can only repeat an alert, never miss one.
    fn feed_new_terms(
        &mut self,
        corr: usize,
        input: usize,
        event: &Event<'_>,
        time_ms: i64,
    ) -> Option<CorrelationHit> {
        let history_ms = self.correlations[corr].timespan_ms;
        let group_fields = &self.linked[corr].inputs[input].group_fields;
        if group_fields
            .iter()
            .any(|field| field.text(event, None).is_none())
        {
            return None;
        }
        let started = self.started_ms[corr].map_or(time_ms, |start| start.min(time_ms));
        self.started_ms[corr] = Some(started);
        encode_key(&mut self.key, corr, group_fields, event, None, &self.hasher);
        let last_seen = self.store.window(&self.key).and_then(|w| w.newest_ms());
        let fresh = match last_seen {
            None => true,
            Some(last) => last < time_ms.saturating_sub(history_ms),
        };
        let entry = Entry {
            time_ms,
            stage: 0,
            datum: Datum::None,
        };
        self.store.insert(&self.key, entry, history_ms, 1);
        let warmed = time_ms >= started.saturating_add(history_ms);
        if !(fresh && warmed) {
            return None;
        }
        Some(CorrelationHit {
            correlation: corr,
            group: self.group_values(corr, input, event),
            value: 1.0,
            first_seen_ms: time_ms,
        })
    }

    /// EQL `sequence` stages matched by this event, last stage first (EQL's streaming state
    /// machine: one pending sequence per stage and join key; a newer match of a stage replaces
    /// the pending one). Stage 1 starts a sequence; stage k+1 advances the pending sequence of
    /// stage k when it is no older than it and within `maxspan` of the sequence's start; the
    /// last stage completes it and fires. An `until` match drops the key's pending sequences.
    /// Events must arrive in event-time order to advance a sequence: a late event does not.
    fn feed_sequences(&mut self, event: &Event<'_>, time_ms: i64, out: &mut Vec<CorrelationHit>) {
        if self.sequence_work.is_empty() {
            return;
        }
        let mut work = std::mem::take(&mut self.sequence_work);
        work.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        work.dedup();
        let mut fired: Vec<usize> = Vec::new();
        for &(corr, input) in &work {
            let Special::Sequence {
                n_stages,
                has_until,
            } = self.linked[corr].special
            else {
                continue;
            };
            let maxspan = self.correlations[corr].timespan_ms;
            let stage = self.linked[corr].inputs[input].stage;
            encode_key(
                &mut self.key,
                corr,
                &self.linked[corr].inputs[input].group_fields,
                event,
                None,
                &self.hasher,
            );
            if has_until && stage == n_stages {
                self.store.remove(&self.key);
                continue;
            }
            if fired.contains(&corr) {
                continue;
            }
            let completed = self.store.update(&self.key, |window| {
                if stage == 0 {
                    if n_stages > 1 {
                        window.put_stage(Entry {
                            time_ms,
                            stage: 0,
                            datum: Datum::Number(time_ms as f64),
                        });
                    }
                    return (n_stages == 1).then_some(time_ms);
                }
                let pending = window.take_stage(stage - 1)?;
                let last_ms = match pending.datum {
                    Datum::Number(last) => last as i64,
                    _ => pending.time_ms,
                };
                let in_span = time_ms >= last_ms && time_ms - pending.time_ms <= maxspan;
                if !in_span {
                    // Too old for this event; it stays pending only if a later event could
                    // still use it (this one is earlier than its last stage).
                    if time_ms < last_ms {
                        window.put_stage(pending);
                    }
                    return None;
                }
                if stage + 1 == n_stages {
                    return Some(pending.time_ms);
                }
                window.put_stage(Entry {
                    time_ms: pending.time_ms,
                    stage,
                    datum: Datum::Number(time_ms as f64),
                });
                None
            });
            if let Some(start_ms) = completed {
                fired.push(corr);
                out.push(CorrelationHit {
                    correlation: corr,
                    group: self.group_values(corr, input, event),
                    value: f64::from(n_stages),
                    first_seen_ms: start_ms,
                });
            }
        }
        work.clear();
        self.sequence_work = work;
    }

    fn group_values(&self, corr: usize, input: usize, event: &Event<'_>) -> Vec<(String, String)> {
        self.correlations[corr]
            .group_by
            .iter()
            .zip(&self.linked[corr].inputs[input].group_fields)
            .map(|(name, field)| {
                // Only sequences (Elastic EQL) come here, and they read no match context.
                let value = field.text(event, None);
                (name.clone(), value.map(Cow::into_owned).unwrap_or_default())
            })
            .collect()
    }
}

/// Group-by values longer than this are kept in the state key as a hash (`#<len>:<hash>`),
/// so a key's size is bounded whatever the events hold.
const MAX_KEY_VALUE_BYTES: usize = 128;

/// Writes the state key of one group into `key`: the correlation index, then each group-by
/// value, length-prefixed (`+5:alice`) or `-` when missing, so that no two groups share a
/// key (a missing field differs from an empty string) and no allocation is needed to look
/// up a group that exists. Values over [`MAX_KEY_VALUE_BYTES`] are written as a keyed hash.
fn encode_key<'v>(
    key: &mut String,
    corr: usize,
    fields: &[GroupSource],
    event: &'v Event<'_>,
    context: Option<&'v serde_json::Value>,
    hasher: &KeyedHasher,
) {
    use std::fmt::Write;
    key.clear();
    let _ = write!(key, "{corr}/");
    for field in fields {
        let Some(text) = field.text(event, context) else {
            key.push('-');
            continue;
        };
        if text.len() > MAX_KEY_VALUE_BYTES {
            let _ = write!(key, "#{}:{:016x}", text.len(), hasher.hash_str(&text));
        } else {
            let _ = write!(key, "+{}:{text}", text.len());
        }
    }
}

/// The prefix of group fields read from a match's context (Panther's name for the
/// `alert_context()` output attached to an alert).
pub const CONTEXT_PREFIX: &str = "p_alert_context";

/// The value of a group field: `p_alert_context.<path>` walks the context of a match that has
/// one (a Panther rule's `alert_context()` output); any other path, and any path of a match
/// without a context (every Sigma and Elastic rule), reads the event.
fn group_value<'v>(
    field: &FieldPath,
    event: &'v Event<'_>,
    context: Option<&'v serde_json::Value>,
) -> Option<&'v serde_json::Value> {
    match (field.segments.split_first(), context) {
        (Some((head, rest)), Some(context)) if head == CONTEXT_PREFIX && !rest.is_empty() => {
            let mut value = context;
            for segment in rest {
                value = value.get(segment.as_str())?;
            }
            (!value.is_null()).then_some(value)
        }
        _ => event.first(field),
    }
}

/// The field group-by name `group` reads for the input known by `handles` (reference as
/// written, id, name).
fn alias_field(
    corr: &crate::ir::Correlation,
    group: &str,
    handles: &[Option<&str>],
    diagnostics: &mut Vec<Diagnostic>,
) -> FieldPath {
    let Some(alias) = corr.aliases.iter().find(|alias| alias.name == group) else {
        // Elastic rules group by ECS names, read like every field of their queries.
        if corr.meta.format == crate::ir::Format::Elastic {
            return FieldPath::ecs(group);
        }
        return FieldPath::new(group);
    };
    let found = alias
        .fields
        .iter()
        .find(|(rule, _)| handles.contains(&Some(rule.as_str())));
    match found {
        Some((_, field)) => field.clone(),
        None => {
            diagnostics.push(
                Diagnostic::warning(
                    Code::Schema,
                    corr.meta.source.clone(),
                    format!(
                        "alias '{group}' does not map rule '{}'; its field '{group}' is used",
                        handles[0].unwrap_or_default()
                    ),
                )
                .with_rule(corr.meta.id.clone()),
            );
            FieldPath::new(group)
        }
    }
}

/// Each correlation's references resolved (as written, target), or `None` when one is
/// unknown (diagnosed). Duplicate references count once.
fn resolve_all(
    set: &RuleSet,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Option<Vec<(String, Target)>>> {
    let mut handles: HashMap<&str, Target> = HashMap::new();
    // Later insertions do not override earlier ones: rules win over correlations, ids over
    // names, and the first of two duplicates wins (the loader reports duplicates).
    for (idx, corr) in set.correlations.iter().enumerate().rev() {
        if let Some(name) = &corr.meta.name {
            handles.insert(name, Target::Correlation(idx));
        }
        handles.insert(&corr.meta.id, Target::Correlation(idx));
    }
    for (idx, rule) in set.rules.iter().enumerate().rev() {
        if let Some(name) = &rule.meta.name {
            handles.insert(name, Target::Rule(idx));
        }
        handles.insert(&rule.meta.id, Target::Rule(idx));
    }
    set.correlations
        .iter()
        .map(|corr| {
            let mut resolved: Vec<(String, Target)> = Vec::with_capacity(corr.rules.len());
            let mut ok = true;
            for reference in &corr.rules {
                match handles.get(reference.as_str()) {
                    Some(target) => {
                        if !resolved.iter().any(|(_, t)| t == target) {
                            resolved.push((reference.clone(), *target));
                        }
                    }
                    None => {
                        ok = false;
                        diagnostics.push(
                            Diagnostic::error(
                                Code::UnknownReference,
                                corr.meta.source.clone(),
                                format!(
                                    "correlation references unknown rule '{reference}'; correlation dropped"
                                ),
                            )
                            .with_rule(corr.meta.id.clone()),
                        );
                    }
                }
            }
            ok.then_some(resolved)
        })
        .collect()
}

/// Indexes of the correlations to keep, in file order: resolved, in no reference cycle, and
/// built only on kept correlations.
fn drop_cycles_and_dependents(
    set: &RuleSet,
    targets: &[Option<Vec<(String, Target)>>],
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<usize> {
    let n = set.correlations.len();
    let deps = |c: usize| -> Vec<usize> {
        targets[c]
            .iter()
            .flatten()
            .filter_map(|(_, target)| match target {
                Target::Correlation(dep) => Some(*dep),
                Target::Rule(_) => None,
            })
            .collect()
    };
    let mut keep: Vec<bool> = targets.iter().map(Option::is_some).collect();
    // Cycles: a correlation is in one when it can reach itself.
    let reaches_itself = |start: usize| {
        let mut stack = deps(start);
        let mut seen = vec![false; n];
        while let Some(c) = stack.pop() {
            if c == start {
                return true;
            }
            if !std::mem::replace(&mut seen[c], true) {
                stack.extend(deps(c));
            }
        }
        false
    };
    let cyclic: Vec<usize> = (0..n).filter(|c| keep[*c] && reaches_itself(*c)).collect();
    for c in cyclic {
        let corr = &set.correlations[c];
        diagnostics.push(
            Diagnostic::error(
                Code::UnknownReference,
                corr.meta.source.clone(),
                "correlation is part of a reference cycle; correlation dropped",
            )
            .with_rule(corr.meta.id.clone()),
        );
        keep[c] = false;
    }
    // Dependents of dropped correlations, until nothing changes.
    let mut changed = true;
    while changed {
        changed = false;
        for c in 0..n {
            if !keep[c] {
                continue;
            }
            if let Some(dep) = deps(c).into_iter().find(|dep| !keep[*dep]) {
                let corr = &set.correlations[c];
                diagnostics.push(
                    Diagnostic::error(
                        Code::UnknownReference,
                        corr.meta.source.clone(),
                        format!(
                            "correlation references dropped correlation '{}'; correlation dropped",
                            set.correlations[dep].meta.id
                        ),
                    )
                    .with_rule(corr.meta.id.clone()),
                );
                keep[c] = false;
                changed = true;
            }
        }
    }
    (0..n).filter(|c| keep[*c]).collect()
}

/// Warnings for conditions that cannot mean what they say in a stream (see the module doc).
fn warn_on_condition(
    corr: &Correlation,
    aggregate: Aggregate,
    limits: Limits,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let counts = matches!(
        aggregate,
        Aggregate::EventCount
            | Aggregate::ValueCount
            | Aggregate::Temporal { .. }
            | Aggregate::TemporalOrdered { .. }
    );
    let warn = |message: String| {
        Diagnostic::warning(Code::Note, corr.meta.source.clone(), message)
            .with_rule(corr.meta.id.clone())
    };
    if counts && corr.condition.holds(1.0) {
        diagnostics.push(warn(
            "condition holds for a single match and is evaluated on arrival, not at window end: \
             it fires on the first match of every group"
                .to_string(),
        ));
    }
    if aggregate == Aggregate::EventCount {
        let lowest = corr
            .condition
            .comparisons
            .iter()
            .filter_map(|(op, bound)| match op {
                CmpOp::Gt => Some(bound.floor() + 1.0),
                CmpOp::Gte | CmpOp::Eq => Some(bound.ceil()),
                _ => None,
            })
            .fold(0.0_f64, f64::max);
        if lowest > limits.max_entries_per_group as f64 {
            diagnostics.push(warn(format!(
                "condition needs {lowest} events but a group keeps at most {} \
                 (--max-group-entries): it can never fire",
                limits.max_entries_per_group
            )));
        }
    }
}

#[cfg(test)]
mod tests;
