//! The engine's state as a value: [`Engine::export_state`] and [`Engine::import_state`], for
//! `--state` files and hot reloads. No I/O here: the file (format, checksum, atomic writes)
//! is `crate::state`'s.
//!
//! # What is kept
//!
//! Correlation groups (windows, `new_terms` and `sequence` state), Panther threshold counters
//! and the Panther key-value cache. Counters (`--stats`) are not state: they start at zero.
//!
//! # Identity
//!
//! A snapshot names each rule and correlation by its id and a fingerprint of its definition: a
//! stable 64-bit hash (SipHash-1-3 with a fixed key, [`KeyedHasher::fixed`]) of a text that
//! holds everything that decides what the rule matches or what its state means, and nothing
//! else (not its title, severity, tags, description or file position). For a rule: format,
//! log source, the IR in its printed notation, `disabled`, the threshold, and native code
//! (a Panther module's syntax tree). For a correlation: its kind, group-by, aliases, timespan,
//! condition, computed values, and the definitions of the rules it references, because its
//! entries were made by those rules' matches. State is restored only where id and fingerprint
//! both match; the rest is dropped and counted. The key-value cache is kept whole: Panther's
//! helpers share one table between rules, under keys the rule code chooses.

use crate::correlate::snapshot::{CorrelatorImport, CorrelatorSnapshot, KeyedHasher};
use crate::correlate::threshold::{ThresholdImport, ThresholdSnapshot};
use crate::ir::{Correlation, CorrelationKind, Rule};
use crate::panther_rt::PantherScript;
use crate::panther_rt::kv::{KvImport, KvSnapshot};
use serde::{Deserialize, Serialize};

use super::Engine;

/// The key of the definition fingerprints. Changing it invalidates every saved state.
const FINGERPRINT_KEY: [u64; 2] = [0x7669_6769_6c2d_6670, 0x7374_6174_652d_7631];

/// A rule or correlation as a snapshot names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub id: String,
    pub fingerprint: u64,
}

/// Every piece of engine state, with the identities its indexes refer to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StateSnapshot {
    /// The engine's rules at export time, by index.
    pub rules: Vec<Identity>,
    /// The engine's correlations at export time, by index.
    pub correlations: Vec<Identity>,
    pub correlation: CorrelatorSnapshot,
    pub thresholds: ThresholdSnapshot,
    pub kv: KvSnapshot,
}

impl StateSnapshot {
    /// Correlation groups held.
    pub fn n_groups(&self) -> usize {
        self.correlation.n_groups()
    }
}

/// What [`Engine::import_state`] did, for the load and reload info lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Rules of the snapshot found again (same id and fingerprint).
    pub rules_kept: u64,
    /// Rules of the snapshot that are gone or whose definition changed.
    pub rules_dropped: u64,
    /// Correlations of the snapshot found again (same id and fingerprint).
    pub correlations_kept: u64,
    /// Correlations of the snapshot that are gone or whose definition changed.
    pub correlations_dropped: u64,
    pub correlation: CorrelatorImport,
    pub thresholds: ThresholdImport,
    pub kv: KvImport,
}

impl ImportReport {
    /// State items restored (groups, threshold counters, key-value keys).
    pub fn kept(&self) -> u64 {
        self.correlation.groups_loaded + self.thresholds.loaded + self.kv.loaded
    }

    /// State items dropped because their rule or correlation is gone or changed.
    pub fn dropped(&self) -> u64 {
        self.correlation.groups_dropped + self.thresholds.dropped
    }
}

/// The identities of an engine's rules and correlations, computed once when it is built.
#[derive(Clone, Debug, Default)]
pub(super) struct Identities {
    pub rules: Vec<Identity>,
    pub correlations: Vec<Identity>,
}

impl Identities {
    pub fn new(rules: &[Rule], correlations: &[Correlation], references: &[&[String]]) -> Self {
        let hasher = KeyedHasher::fixed(FINGERPRINT_KEY);
        let rule_texts: Vec<String> = rules.iter().map(rule_definition).collect();
        let rule_identities = rules
            .iter()
            .zip(&rule_texts)
            .map(|(rule, text)| Identity {
                id: rule.meta.id.clone(),
                fingerprint: hasher.hash_str(text),
            })
            .collect();
        let correlation_identities = correlations
            .iter()
            .enumerate()
            .map(|(idx, corr)| {
                let mut text = String::new();
                correlation_definition(
                    idx,
                    correlations,
                    references,
                    rules,
                    &rule_texts,
                    &mut text,
                    0,
                );
                Identity {
                    id: corr.meta.id.clone(),
                    fingerprint: hasher.hash_str(&text),
                }
            })
            .collect();
        Identities {
            rules: rule_identities,
            correlations: correlation_identities,
        }
    }
}

/// The text a rule's fingerprint hashes (see the module doc).
fn rule_definition(rule: &Rule) -> String {
    let native = rule.extra.native.as_ref().map(|native| {
        match native.body.as_any().downcast_ref::<PantherScript>() {
            Some(script) => script.definition_text(),
            None => native.description.clone(),
        }
    });
    format!(
        "rule\nid={}\nformat={}\nlogsource={}\nexpr={}\ndisabled={}\nthreshold={:?}\nnative={:?}\n",
        rule.meta.id,
        rule.meta.format.as_str(),
        rule.logsource,
        rule.expr,
        rule.extra.disabled,
        rule.extra.threshold,
        native,
    )
}

/// Appends the text correlation `idx`'s fingerprint hashes: its own definition, then the
/// definitions of what it references (recursively: links are acyclic; `depth` guards anyway).
fn correlation_definition(
    idx: usize,
    correlations: &[Correlation],
    references: &[&[String]],
    rules: &[Rule],
    rule_texts: &[String],
    out: &mut String,
    depth: usize,
) {
    use std::fmt::Write;
    let Some(corr) = correlations.get(idx) else {
        return;
    };
    let kind = match &corr.kind {
        CorrelationKind::ValueCount { field }
        | CorrelationKind::ValueSum { field }
        | CorrelationKind::ValueAvg { field } => format!("{} {}", corr.kind.as_str(), field.raw),
        CorrelationKind::ValuePercentile { field, percentile } => {
            format!("{} {} {percentile}", corr.kind.as_str(), field.raw)
        }
        CorrelationKind::Sequence { has_until } => format!("sequence until={has_until}"),
        other => other.as_str().to_string(),
    };
    let aliases: Vec<(&str, Vec<(&str, &str)>)> = corr
        .aliases
        .iter()
        .map(|alias| {
            let fields = alias
                .fields
                .iter()
                .map(|(rule, field)| (rule.as_str(), field.raw.as_str()))
                .collect();
            (alias.name.as_str(), fields)
        })
        .collect();
    let condition: Vec<(&str, f64)> = corr
        .condition
        .comparisons
        .iter()
        .map(|(op, bound)| (op.as_str(), *bound))
        .collect();
    let computed: Vec<String> = corr
        .computed
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let _ = write!(
        out,
        "correlation\nid={}\nformat={}\nkind={kind}\ngroup_by={:?}\naliases={aliases:?}\n\
         timespan_ms={}\ncondition={condition:?}\ngenerate={}\ncomputed={computed:?}\n",
        corr.meta.id,
        corr.meta.format.as_str(),
        corr.group_by,
        corr.timespan_ms,
        corr.generate,
    );
    let referenced = references.get(idx).copied().unwrap_or_default();
    for id in referenced {
        if let Some(rule) = rules.iter().position(|rule| &rule.meta.id == id) {
            out.push_str(&rule_texts[rule]);
        } else if let Some(dep) = correlations.iter().position(|c| &c.meta.id == id)
            && depth < 64
        {
            correlation_definition(
                dep,
                correlations,
                references,
                rules,
                rule_texts,
                out,
                depth + 1,
            );
        }
    }
}

/// For each snapshot identity, the index of the same identity in `current`.
fn mapping(saved: &[Identity], current: &[Identity]) -> Vec<Option<usize>> {
    let by_id: std::collections::HashMap<(&str, u64), usize> = current
        .iter()
        .enumerate()
        .map(|(idx, identity)| ((identity.id.as_str(), identity.fingerprint), idx))
        .collect();
    saved
        .iter()
        .map(|identity| {
            by_id
                .get(&(identity.id.as_str(), identity.fingerprint))
                .copied()
        })
        .collect()
}

impl Engine {
    /// All correlation and stateful-rule state, as a value (no I/O).
    pub fn export_state(&self) -> StateSnapshot {
        let (thresholds, kv) = self.script.export_state();
        StateSnapshot {
            rules: self.identities.rules.clone(),
            correlations: self.identities.correlations.clone(),
            correlation: self.correlator.export(),
            thresholds,
            kv,
        }
    }

    /// Replaces this engine's state with `snapshot`'s, for the rules and correlations whose id
    /// and definition fingerprint are unchanged; everything else in it is dropped and counted.
    /// The result holds within this engine's limits (`--max-groups`, `--max-entries`,
    /// `--max-group-entries`, `--max-threshold-keys`, `--max-kv-*`), evicting as live does.
    pub fn import_state(&mut self, snapshot: StateSnapshot) -> ImportReport {
        let rule_mapping = mapping(&snapshot.rules, &self.identities.rules);
        let correlation_mapping = mapping(&snapshot.correlations, &self.identities.correlations);
        let kept = correlation_mapping.iter().flatten().count() as u64;
        let rules_kept = rule_mapping.iter().flatten().count() as u64;
        let (thresholds, kv) =
            self.script
                .import_state(snapshot.thresholds, snapshot.kv, &rule_mapping);
        ImportReport {
            rules_kept,
            rules_dropped: rule_mapping.len() as u64 - rules_kept,
            correlations_kept: kept,
            correlations_dropped: correlation_mapping.len() as u64 - kept,
            correlation: self
                .correlator
                .import(snapshot.correlation, &correlation_mapping),
            thresholds,
            kv,
        }
    }
}
