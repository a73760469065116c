//! The rule catalog: what every loaded rule really checks and how it relates to the others,
//! whatever its source format, for `vigil explain` (one rule) and `vigil catalog` (a static
//! site or one JSON document).
//!
//! It reads the IR only (`crate::ir`: metadata, `expr`, `extra.logic`, correlations) and runs
//! the rules' embedded tests through the same machinery as `vigil test`
//! (`crate::eval::script`). Nothing here knows a rule format: what a format has to say beyond
//! its logic (runbook, log types, compliance, output fields) its loader puts in the IR's
//! metadata. [`build`] computes the model; `text`, `html` and `json` render it; this module
//! does no I/O (the CLI writes the files).
//!
//! Definitions used on the pages:
//! - **Detection logic**: the rule's condition in the notation of [`logic`], one conjunct a
//!   line. A rule whose native code (Panther `rule()`) could not be lowered shows the
//!   necessary condition its loader derived, labelled as such, never as its logic.
//! - **Indicator**: a positive field test of the logic (outside any negation), as
//!   (field, operator, value): ECS fields that copy a CloudTrail field are named by the
//!   CloudTrail field (`event.action` is `eventName`), operators and values are compared
//!   without regard to case, and an `in` counts once per value.
//! - **Same action**: two rules have an indicator `eventName eq V` in common.
//! - **Exact duplicates**: the same normalized logic (same conjunct lines once fields are named
//!   canonically), both shown exactly.
//! - **Near duplicates**: not exact duplicates, but the same set of positive conjuncts, compared
//!   with canonical field names and without regard to case, ignoring exclusions, conjuncts on
//!   `eventSource` (the API call name already implies its service) and `event.outcome` (the
//!   success test Sigma and Panther write as an exclusion of `errorCode`), and conjuncts on
//!   fields that only restate the log source (`crate::ecs::constant`: `event.dataset`, ...);
//!   at least one conjunct tests `eventName`, and both are shown exactly.
//! - **Coverage**: the ATT&CK techniques of the rules and correlations that alert (not
//!   disabled, not silent, not only feeding a correlation with `generate: false`), each under
//!   the tactics the rule names it with (under all its tactics when the rule names none of
//!   them); a sub-technique also counts for its parent's cell.

pub mod html;
pub mod json;
pub mod logic;
pub mod text;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::eval::script::{self, ScriptConfig};
use crate::ir::{Correlation, CorrelationKind, Logic, Meta, Rule};
use crate::rules::CorrelationTests;
use logic::{Conjuncts, Node};

/// Everything the pages show.
pub struct Catalog {
    pub entries: Vec<Entry>,
    /// Indicators used by at least two rules, most shared first.
    pub shared_indicators: Vec<SharedIndicator>,
    pub duplicates: Vec<DuplicateGroup>,
    pub coverage: Vec<CoverageColumn>,
}

/// One rule or correlation.
pub struct Entry {
    pub id: String,
    pub name: Option<String>,
    pub title: String,
    pub format: &'static str,
    /// `rule`, or the correlation type (`event_count`, `new_terms`, ...).
    pub kind: &'static str,
    pub severity: &'static str,
    /// `file:line`.
    pub source: String,
    pub description: Option<String>,
    pub runbook: Option<String>,
    pub references: Vec<String>,
    pub compliance: Vec<String>,
    /// Log types as the rule names them, else its log source (`product:aws service:cloudtrail`).
    pub log_types: Vec<String>,
    pub tags: Vec<String>,
    /// Facts about alerting: disabled, does not alert on its own, threshold.
    pub status: Vec<String>,
    pub attack: Vec<TacticRow>,
    pub logic: LogicView,
    pub exclusions: Vec<Exclusion>,
    pub indicators: Vec<IndicatorUse>,
    pub same_action: Vec<SameAction>,
    pub output_fields: Vec<String>,
    pub fields_read: Vec<String>,
    pub tests: Vec<TestView>,
    pub correlation: Option<CorrelationView>,
    /// Correlations built on this rule (ids).
    pub used_by: Vec<String>,
    /// Whether the coverage matrix counts it.
    pub alerting: bool,
    /// Keys of the overlap definitions (see the module doc); `None` when not applicable.
    exact_key: Option<String>,
    near_key: Option<String>,
    indicator_keys: Vec<Indicator>,
}

/// A tactic and the rule's techniques under it.
pub struct TacticRow {
    /// Empty for techniques whose tactics the rule does not name.
    pub id: String,
    pub name: String,
    pub techniques: Vec<(String, String)>,
}

/// The logic as shown.
pub struct LogicView {
    /// `exact`, `exact (lowered)`, `necessary condition only`, `correlation`.
    pub mode: String,
    /// What the mode means for this rule.
    pub note: String,
    pub conjuncts: Vec<String>,
}

pub struct Exclusion {
    pub field: String,
    pub kind: String,
    pub values: Vec<String>,
}

/// A (canonical field, operator, value) combination, compared without regard to case.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Indicator {
    pub field: String,
    pub op: String,
    pub value: String,
}

impl std::fmt::Display for Indicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.field, self.op, self.value)
    }
}

/// An indicator of this rule and how many other loaded rules use it.
pub struct IndicatorUse {
    pub indicator: Indicator,
    pub others: usize,
}

pub struct SameAction {
    pub action: String,
    pub id: String,
    pub title: String,
    pub format: &'static str,
    pub severity: &'static str,
}

pub struct TestView {
    pub name: String,
    pub expected: bool,
    pub actual: Option<bool>,
    pub passed: bool,
    pub error: Option<String>,
}

pub struct CorrelationView {
    /// (reference as written, the id it resolves to, that rule's title).
    pub rules: Vec<(String, Option<String>, String)>,
    pub group_by: Vec<String>,
    pub window: String,
    pub condition: String,
    pub generate: bool,
}

pub struct SharedIndicator {
    pub indicator: Indicator,
    pub rules: Vec<String>,
}

pub struct DuplicateGroup {
    /// `exact` or `near`.
    pub kind: &'static str,
    /// The normalized logic (exact) or conjunct set (near) they share.
    pub shared: String,
    pub rules: Vec<String>,
    /// More than one source format among them.
    pub cross_format: bool,
}

/// One tactic of the matrix.
pub struct CoverageColumn {
    pub id: String,
    pub name: String,
    /// Rules naming the tactic but no technique of it.
    pub tactic_only: Vec<String>,
    pub cells: Vec<CoverageCell>,
}

pub struct CoverageCell {
    pub id: String,
    pub name: String,
    /// Rules covering the technique or one of its sub-techniques.
    pub rules: Vec<String>,
    /// Sub-techniques named by rules, with their rule counts.
    pub subs: Vec<(String, usize)>,
}

/// Builds the catalog of a rule set. `now_ms` is the clock the rules' tests run with.
pub fn build(
    rules: &[Rule],
    correlations: &[Correlation],
    correlation_tests: &[CorrelationTests],
    now_ms: i64,
) -> Catalog {
    // Rules that only feed a correlation with `generate: false` do not alert on their own.
    let mut feeds_only: BTreeSet<&str> = BTreeSet::new();
    for corr in correlations.iter().filter(|c| !c.generate) {
        feeds_only.extend(corr.rules.iter().map(String::as_str));
    }
    let mut entries = Vec::new();
    for rule in rules {
        entries.push(rule_entry(rule, &feeds_only, now_ms));
    }
    for corr in correlations {
        entries.push(correlation_entry(corr, &feeds_only, correlation_tests));
    }
    resolve_correlations(&mut entries);
    link(&mut entries);
    let shared_indicators = shared_indicators(&entries);
    let duplicates = duplicates(&entries);
    let coverage = coverage(&entries);
    Catalog {
        entries,
        shared_indicators,
        duplicates,
        coverage,
    }
}

impl Catalog {
    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.id == id)
    }
}

fn is_fed_only(meta: &Meta, feeds_only: &BTreeSet<&str>) -> bool {
    feeds_only.contains(meta.id.as_str())
        || meta
            .name
            .as_deref()
            .is_some_and(|name| feeds_only.contains(name))
}

fn attack_rows(meta: &Meta) -> Vec<TacticRow> {
    let mut rows: Vec<TacticRow> = meta
        .attack
        .tactics
        .iter()
        .map(|id| TacticRow {
            id: id.clone(),
            name: crate::attack::tactic(id)
                .map(|t| t.2.to_string())
                .unwrap_or_else(|| "(not an ATT&CK v18.1 tactic)".to_string()),
            techniques: Vec::new(),
        })
        .collect();
    let mut loose = Vec::new();
    for technique in &meta.attack.techniques {
        let name = crate::attack::technique(technique)
            .map(|t| t.name.to_string())
            .unwrap_or_else(|| "(not in ATT&CK v18.1)".to_string());
        let tactics = crate::attack::technique_tactics(technique);
        let mut placed = false;
        for row in rows.iter_mut() {
            if tactics.contains(&row.id.as_str()) {
                row.techniques.push((technique.clone(), name.clone()));
                placed = true;
            }
        }
        if !placed {
            loose.push((technique.clone(), name));
        }
    }
    if !loose.is_empty() {
        rows.push(TacticRow {
            id: String::new(),
            name: "(a tactic the rule does not name)".to_string(),
            techniques: loose,
        });
    }
    rows
}

fn base_entry(meta: &Meta, kind: &'static str) -> Entry {
    Entry {
        id: meta.id.clone(),
        name: meta.name.clone(),
        title: meta.title.clone(),
        format: meta.format.as_str(),
        kind,
        severity: meta.severity.as_str(),
        source: meta.source.to_string(),
        description: meta.description.clone(),
        runbook: meta.doc.runbook.clone(),
        references: meta.references.clone(),
        compliance: Vec::new(),
        log_types: meta.doc.log_types.clone(),
        tags: meta.tags.clone(),
        status: Vec::new(),
        attack: attack_rows(meta),
        logic: LogicView {
            mode: String::new(),
            note: String::new(),
            conjuncts: Vec::new(),
        },
        exclusions: Vec::new(),
        indicators: Vec::new(),
        same_action: Vec::new(),
        output_fields: meta.fields.clone(),
        fields_read: Vec::new(),
        tests: Vec::new(),
        correlation: None,
        used_by: Vec::new(),
        alerting: true,
        exact_key: None,
        near_key: None,
        indicator_keys: Vec::new(),
    }
}

fn rule_entry(rule: &Rule, feeds_only: &BTreeSet<&str>, now_ms: i64) -> Entry {
    let mut entry = base_entry(&rule.meta, "rule");
    entry.compliance = rule.extra.compliance.clone();
    if entry.log_types.is_empty() {
        entry.log_types.push(rule.logsource.to_string());
    }
    if rule.extra.disabled {
        entry
            .status
            .push("disabled: loaded, never evaluated".to_string());
    }
    if rule.extra.silent {
        entry
            .status
            .push("does not alert on its own (a signal for correlations)".to_string());
    }
    let fed_only = is_fed_only(&rule.meta, feeds_only);
    if fed_only {
        entry.status.push(
            "does not alert on its own: feeds a correlation with generate: false".to_string(),
        );
    }
    if let Some(threshold) = rule.extra.threshold {
        entry.status.push(format!(
            "alerts once {} matches share a dedup string within {} minutes",
            threshold.count,
            threshold.period_ms / 60_000
        ));
    }
    entry.alerting = !rule.extra.disabled && !rule.extra.silent && !fed_only;
    let (shown, exact) = match &rule.extra.logic {
        Logic::Exact => {
            entry.logic.mode = "exact".to_string();
            entry.logic.note = match &rule.extra.native {
                Some(native) => format!(
                    "the rule's whole logic; its code ({}) only computes outputs",
                    native.description
                ),
                None => "the rule's whole logic".to_string(),
            };
            (&rule.expr, true)
        }
        Logic::Lowered { expr, precondition } => {
            entry.logic.mode = "exact (lowered)".to_string();
            entry.logic.note = format!(
                "{} lowered into the IR: equal to it {precondition}",
                rule.extra
                    .native
                    .as_ref()
                    .map_or("the rule's code", |n| n.description.as_str())
            );
            (expr, true)
        }
        Logic::NecessaryOnly { reason } => {
            entry.logic.mode = "necessary condition only".to_string();
            entry.logic.note = format!(
                "NOT the rule's logic: {} decides ({reason}); every match meets these conditions, \
                 not every event meeting them matches",
                rule.extra
                    .native
                    .as_ref()
                    .map_or("the rule's code", |n| n.description.as_str())
            );
            (&rule.expr, false)
        }
    };
    let node = logic::from_expr(shown);
    let conjuncts = Conjuncts::of(node.clone());
    entry.logic.conjuncts = conjuncts.lines();
    entry.exclusions = conjuncts
        .exclusions
        .iter()
        .flat_map(exclusion_rows)
        .collect();
    let mut leaves = Vec::new();
    logic::leaves(&node, true, &mut leaves);
    let mut read = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for (leaf, positive) in &leaves {
        if leaf.field != "any_string" {
            read.insert(leaf.field.clone());
        }
        if *positive && leaf.values.len() == leaf.folded.len() && !leaf.values.is_empty() {
            for value in &leaf.folded {
                keys.insert(Indicator {
                    field: leaf.canonical.clone(),
                    // An `in` counts once per value, as `eq`.
                    op: match leaf.base_op() {
                        "in" => "eq".to_string(),
                        other => other.to_string(),
                    },
                    value: value.clone(),
                });
            }
        }
    }
    entry.indicator_keys = keys.into_iter().collect();
    entry.fields_read = read.into_iter().collect();
    if exact {
        entry.exact_key = Some(canonical_lines(&conjuncts, false).join("\n"));
        let near = canonical_lines(&conjuncts, true);
        if near.iter().any(|line| line.starts_with("eventName ")) {
            entry.near_key = Some(near.join("\n"));
        }
    }
    let config = ScriptConfig::default();
    entry.tests = rule
        .extra
        .tests
        .iter()
        .map(|test| {
            let outcome = script::run_test(rule, test, now_ms, config);
            TestView {
                name: test.name.clone(),
                expected: test.expected,
                actual: outcome.actual,
                passed: outcome.passed(test.expected),
                error: outcome.error,
            }
        })
        .collect();
    entry
}

/// The conjunct lines with canonical field names; for the near key, positive conjuncts only,
/// case-folded, without `eventSource` ones, sorted.
fn canonical_lines(conjuncts: &Conjuncts, near: bool) -> Vec<String> {
    fn canon(node: &Node, fold: bool) -> Node {
        match node {
            Node::And(items) => Node::And(items.iter().map(|n| canon(n, fold)).collect()),
            Node::Or(items) => Node::Or(items.iter().map(|n| canon(n, fold)).collect()),
            Node::Not(inner) => Node::Not(Box::new(canon(inner, fold))),
            Node::Leaf(leaf) => {
                let mut leaf = leaf.clone();
                leaf.field = leaf.canonical.clone();
                if fold {
                    leaf.op = leaf.base_op().to_string();
                    leaf.values = leaf.folded.clone();
                }
                Node::Leaf(leaf)
            }
            Node::Other(text) => Node::Other(text.clone()),
        }
    }
    if near {
        let mut lines: Vec<String> = conjuncts
            .positive
            .iter()
            .filter(|node| match node {
                Node::Leaf(leaf) => {
                    leaf.canonical != "eventSource"
                        && leaf.canonical != "event.outcome"
                        && crate::ecs::constant(&leaf.canonical).is_none()
                }
                _ => true,
            })
            .map(|node| logic::render(&canon(node, true), false))
            .collect();
        lines.sort();
        lines.dedup();
        return lines;
    }
    let canonical = Conjuncts {
        positive: conjuncts.positive.iter().map(|n| canon(n, false)).collect(),
        exclusions: conjuncts
            .exclusions
            .iter()
            .map(|n| canon(n, false))
            .collect(),
    };
    canonical.lines()
}

fn exclusion_rows(node: &Node) -> Vec<Exclusion> {
    match node {
        Node::Leaf(leaf) => vec![Exclusion {
            field: leaf.field.clone(),
            kind: leaf.op.clone(),
            values: leaf.values.clone(),
        }],
        Node::Or(items) => items.iter().flat_map(exclusion_rows).collect(),
        other => {
            let mut leaves = Vec::new();
            logic::leaves(other, true, &mut leaves);
            let mut fields: Vec<String> = leaves.iter().map(|(l, _)| l.field.clone()).collect();
            fields.dedup();
            vec![Exclusion {
                field: fields.join(", "),
                kind: "all of".to_string(),
                values: vec![logic::render(other, false)],
            }]
        }
    }
}

fn correlation_entry(
    corr: &Correlation,
    feeds_only: &BTreeSet<&str>,
    correlation_tests: &[CorrelationTests],
) -> Entry {
    let mut entry = base_entry(&corr.meta, corr.kind.as_str());
    let fed_only = is_fed_only(&corr.meta, feeds_only);
    if fed_only {
        entry.status.push(
            "does not alert on its own: feeds a correlation with generate: false".to_string(),
        );
    }
    entry.alerting = !fed_only;
    let aggregate = match &corr.kind {
        CorrelationKind::EventCount => "count of matches".to_string(),
        CorrelationKind::ValueCount { field } => format!("count of distinct {field}"),
        CorrelationKind::Temporal => "count of distinct rules matched".to_string(),
        CorrelationKind::TemporalOrdered => {
            "count of distinct rules matched in the listed order".to_string()
        }
        CorrelationKind::ValueSum { field } => format!("sum of {field}"),
        CorrelationKind::ValueAvg { field } => format!("average of {field}"),
        CorrelationKind::ValuePercentile { field, percentile } => {
            format!("percentile {percentile} of {field}")
        }
        CorrelationKind::NewTerms => String::new(),
        CorrelationKind::Sequence { .. } => String::new(),
    };
    let condition = match &corr.kind {
        CorrelationKind::NewTerms => {
            "the group-by values were not seen in the window before the match".to_string()
        }
        CorrelationKind::Sequence { has_until } => {
            let until = if *has_until {
                " (the last rule ends a pending sequence)"
            } else {
                ""
            };
            format!("the rules match in order, joined by the group-by values{until}")
        }
        _ => {
            let parts: Vec<String> = corr
                .condition
                .comparisons
                .iter()
                .map(|(op, value)| format!("{aggregate} {} {value}", op.as_str()))
                .collect();
            parts.join(" and ")
        }
    };
    let mut group_by = corr.group_by.clone();
    for alias in &corr.aliases {
        for (rule, field) in &alias.fields {
            group_by.push(format!("{} = {field} in {rule}", alias.name));
        }
    }
    entry.logic = LogicView {
        mode: "correlation".to_string(),
        note: "over the matches of other rules, per group, in event-time windows".to_string(),
        conjuncts: vec![
            format!("{} of [{}]", corr.kind.as_str(), corr.rules.join(", ")),
            format!("group by [{}]", corr.group_by.join(", ")),
            format!("within {}", corr.timespan_text),
            format!("when {condition}"),
        ],
    };
    entry.fields_read = corr.group_by.clone();
    if entry.output_fields.is_empty() {
        entry.output_fields = corr.group_by.clone();
    }
    entry.correlation = Some(CorrelationView {
        rules: corr
            .rules
            .iter()
            .map(|r| (r.clone(), None, String::new()))
            .collect(),
        group_by,
        window: corr.timespan_text.clone(),
        condition,
        generate: corr.generate,
    });
    for tests in correlation_tests
        .iter()
        .filter(|t| t.correlation.meta.id == corr.meta.id)
    {
        for test in &tests.tests {
            let outcome = script::run_correlation_test(&tests.correlation, test);
            entry.tests.push(TestView {
                name: test.name.clone(),
                expected: test.expected,
                actual: outcome.actual,
                passed: outcome.passed(test.expected),
                error: outcome.error,
            });
        }
    }
    entry
}

/// Resolves correlation references (by id or name) to entries; a correlation without log
/// types of its own takes those of its base rules.
fn resolve_correlations(entries: &mut [Entry]) {
    let mut by_handle: HashMap<String, (String, String, Vec<String>)> = HashMap::new();
    for entry in entries.iter() {
        let target = (
            entry.id.clone(),
            entry.title.clone(),
            entry.log_types.clone(),
        );
        by_handle.insert(entry.id.clone(), target.clone());
        if let Some(name) = &entry.name {
            by_handle.entry(name.clone()).or_insert(target);
        }
    }
    let mut used_by: HashMap<String, Vec<String>> = HashMap::new();
    for entry in entries.iter_mut() {
        let mut log_types = Vec::new();
        if let Some(corr) = &mut entry.correlation {
            for (reference, id, title) in &mut corr.rules {
                if let Some((target, target_title, target_types)) =
                    by_handle.get(reference.as_str())
                {
                    *id = Some(target.clone());
                    *title = target_title.clone();
                    used_by
                        .entry(target.clone())
                        .or_default()
                        .push(entry.id.clone());
                    for log_type in target_types {
                        if !log_types.contains(log_type) {
                            log_types.push(log_type.clone());
                        }
                    }
                }
            }
        }
        if entry.log_types.is_empty() {
            entry.log_types = log_types;
        }
    }
    for entry in entries.iter_mut() {
        if let Some(users) = used_by.remove(&entry.id) {
            entry.used_by = users;
        }
    }
}

/// Indicator counts and rules detecting the same action.
fn link(entries: &mut [Entry]) {
    let mut users: HashMap<Indicator, Vec<usize>> = HashMap::new();
    for (idx, entry) in entries.iter().enumerate() {
        for key in &entry.indicator_keys {
            users.entry(key.clone()).or_default().push(idx);
        }
    }
    let summaries: Vec<(String, String, &'static str, &'static str)> = entries
        .iter()
        .map(|e| (e.id.clone(), e.title.clone(), e.format, e.severity))
        .collect();
    for (idx, entry) in entries.iter_mut().enumerate() {
        let mut same = Vec::new();
        for key in &entry.indicator_keys {
            let others: Vec<usize> = users
                .get(key)
                .map(|list| list.iter().copied().filter(|&o| o != idx).collect())
                .unwrap_or_default();
            entry.indicators.push(IndicatorUse {
                indicator: key.clone(),
                others: others.len(),
            });
            if key.field == "eventName" && key.op == "eq" {
                for other in others {
                    let (id, title, format, severity) = &summaries[other];
                    same.push(SameAction {
                        action: key.value.clone(),
                        id: id.clone(),
                        title: title.clone(),
                        format,
                        severity,
                    });
                }
            }
        }
        entry.same_action = same;
    }
}

fn shared_indicators(entries: &[Entry]) -> Vec<SharedIndicator> {
    let mut users: BTreeMap<Indicator, Vec<String>> = BTreeMap::new();
    for entry in entries {
        for key in &entry.indicator_keys {
            users.entry(key.clone()).or_default().push(entry.id.clone());
        }
    }
    let mut out: Vec<SharedIndicator> = users
        .into_iter()
        .filter(|(_, rules)| rules.len() > 1)
        .map(|(indicator, rules)| SharedIndicator { indicator, rules })
        .collect();
    out.sort_by_key(|shared| std::cmp::Reverse(shared.rules.len()));
    out
}

fn duplicates(entries: &[Entry]) -> Vec<DuplicateGroup> {
    let mut exact: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    let mut near: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for entry in entries {
        if let Some(key) = &entry.exact_key {
            exact.entry(key).or_default().push(entry);
        }
        if let Some(key) = &entry.near_key {
            near.entry(key).or_default().push(entry);
        }
    }
    let mut out = Vec::new();
    let mut in_exact: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (key, group) in &exact {
        if group.len() < 2 {
            continue;
        }
        for a in group {
            for b in group {
                in_exact.insert((a.id.as_str(), b.id.as_str()));
            }
        }
        out.push(group_of("exact", key, group));
    }
    for (key, group) in &near {
        // A near group is only news when some pair in it is not already an exact duplicate.
        let news = group.iter().enumerate().any(|(i, a)| {
            group[i + 1..]
                .iter()
                .any(|b| !in_exact.contains(&(a.id.as_str(), b.id.as_str())))
        });
        if group.len() >= 2 && news {
            out.push(group_of("near", key, group));
        }
    }
    out
}

fn group_of(kind: &'static str, key: &str, group: &[&Entry]) -> DuplicateGroup {
    let formats: BTreeSet<&str> = group.iter().map(|e| e.format).collect();
    DuplicateGroup {
        kind,
        shared: key.to_string(),
        rules: group.iter().map(|e| e.id.clone()).collect(),
        cross_format: formats.len() > 1,
    }
}

fn coverage(entries: &[Entry]) -> Vec<CoverageColumn> {
    // (tactic, parent technique) → rules, (tactic, sub-technique) → rules, tactic → rules
    // naming it alone. A technique counts under the tactics the rule names it with; one the
    // rule names under none of its tactics counts under all of them.
    type Cells = BTreeMap<(String, String), BTreeSet<String>>;
    let mut by_parent: Cells = BTreeMap::new();
    let mut by_sub: Cells = BTreeMap::new();
    let mut by_tactic: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in entries.iter().filter(|e| e.alerting) {
        for row in &entry.attack {
            if !row.id.is_empty() && row.techniques.is_empty() {
                by_tactic
                    .entry(row.id.clone())
                    .or_default()
                    .insert(entry.id.clone());
            }
            for (technique, _) in &row.techniques {
                let tactics: Vec<String> = if row.id.is_empty() {
                    crate::attack::technique_tactics(technique)
                        .into_iter()
                        .map(str::to_string)
                        .collect()
                } else {
                    vec![row.id.clone()]
                };
                let parent = technique.split('.').next().unwrap_or(technique);
                for tactic in tactics {
                    by_parent
                        .entry((tactic.clone(), parent.to_string()))
                        .or_default()
                        .insert(entry.id.clone());
                    if technique.contains('.') {
                        by_sub
                            .entry((tactic, technique.clone()))
                            .or_default()
                            .insert(entry.id.clone());
                    }
                }
            }
        }
    }
    crate::attack::TACTICS
        .iter()
        .map(|(id, short, name)| {
            let cells = crate::attack::techniques()
                .iter()
                .filter(|t| !t.id.contains('.') && t.tactics.split(',').any(|s| s == *short))
                .map(|t| CoverageCell {
                    id: t.id.to_string(),
                    name: t.name.to_string(),
                    rules: by_parent
                        .get(&(id.to_string(), t.id.to_string()))
                        .map(|set| set.iter().cloned().collect())
                        .unwrap_or_default(),
                    subs: by_sub
                        .range(
                            (id.to_string(), format!("{}.", t.id))
                                ..(id.to_string(), format!("{}/", t.id)),
                        )
                        .map(|((_, sub), rules)| (sub.clone(), rules.len()))
                        .collect(),
                })
                .collect();
            CoverageColumn {
                id: id.to_string(),
                name: name.to_string(),
                tactic_only: by_tactic
                    .get(*id)
                    .map(|set| set.iter().cloned().collect())
                    .unwrap_or_default(),
                cells,
            }
        })
        .collect()
}

/// A file name for a rule's page: the id when it is made of safe characters, else the safe
/// characters and a hash of the id (so two ids never share a page).
pub fn page_name(id: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !id.is_empty() && !id.starts_with('.') && id.chars().all(safe) {
        return format!("{id}.html");
    }
    let cleaned: String = id
        .chars()
        .map(|c| if safe(c) { c } else { '_' })
        .take(80)
        .collect();
    // FNV-1a: stable across runs and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{}-{hash:016x}.html", cleaned.trim_start_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{
        Attack, Expr, FieldPath, Format, LogSource, MetaDoc, Predicate, RuleExtra, Severity,
        SourceLoc, StrKind, StrMatch,
    };

    fn rule(id: &str, format: Format, expr: Expr) -> Rule {
        Rule {
            meta: Meta {
                id: id.to_string(),
                name: None,
                title: format!("title of {id}"),
                format,
                severity: Severity::Low,
                tags: Vec::new(),
                attack: Attack {
                    tactics: vec!["TA0003".into()],
                    techniques: vec!["T1136.003".into()],
                },
                description: None,
                references: Vec::new(),
                fields: Vec::new(),
                source: SourceLoc {
                    path: "mem".into(),
                    line: None,
                },
                doc: MetaDoc::default(),
            },
            logsource: LogSource::new(Some("aws"), Some("cloudtrail"), None),
            expr,
            extra: RuleExtra::default(),
        }
    }

    fn field(path: FieldPath, needle: &str, cased: bool) -> Expr {
        Expr::Field {
            path,
            pred: Predicate::Str(StrMatch::new(StrKind::Exact, needle, cased)),
        }
    }

    #[test]
    fn one_action_in_three_formats() {
        let sigma = rule(
            "sigma",
            Format::Sigma,
            Expr::and(vec![
                field(FieldPath::new("eventSource"), "iam.amazonaws.com", false),
                field(FieldPath::new("eventName"), "CreateUser", false),
                Expr::field("errorCode", Predicate::Null),
            ]),
        );
        let elastic = rule(
            "elastic",
            Format::Elastic,
            Expr::and(vec![
                field(FieldPath::ecs("event.dataset"), "aws.cloudtrail", true),
                field(FieldPath::ecs("event.action"), "CreateUser", true),
                field(FieldPath::ecs("event.outcome"), "success", true),
            ]),
        );
        let mut panther = rule(
            "panther",
            Format::Panther,
            field(FieldPath::new("eventName"), "CreateUser", true),
        );
        panther.extra.silent = true;
        let other = rule(
            "other",
            Format::Sigma,
            field(FieldPath::new("eventName"), "DeleteUser", false),
        );
        let catalog = build(&[sigma, elastic, panther, other], &[], &[], 0);

        let sigma = catalog.entry("sigma").unwrap();
        let create = sigma
            .indicators
            .iter()
            .find(|i| i.indicator.field == "eventName")
            .unwrap();
        assert_eq!(create.indicator.value, "\"createuser\"");
        assert_eq!(create.others, 2, "the Elastic and Panther rules");
        let same: Vec<&str> = sigma.same_action.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(same, ["elastic", "panther"]);
        assert_eq!(sigma.exclusions.len(), 1);
        assert_eq!(sigma.exclusions[0].field, "errorCode");

        // Near duplicates: the Elastic outcome and dataset tests, the Sigma eventSource test
        // and exclusion do not count; case does not either.
        assert_eq!(catalog.duplicates.len(), 1);
        let group = &catalog.duplicates[0];
        assert_eq!(group.kind, "near");
        assert!(group.cross_format);
        assert_eq!(group.rules, ["sigma", "elastic", "panther"]);
        assert_eq!(group.shared, "eventName eq \"createuser\"");

        // The silent Panther rule does not count in the matrix.
        let persistence = catalog.coverage.iter().find(|c| c.id == "TA0003").unwrap();
        let cell = persistence.cells.iter().find(|c| c.id == "T1136").unwrap();
        assert_eq!(cell.rules, ["elastic", "other", "sigma"]);
        assert_eq!(cell.subs, [("T1136.003".to_string(), 3)]);
        let initial = catalog.coverage.iter().find(|c| c.id == "TA0001").unwrap();
        assert!(initial.cells.iter().all(|c| c.rules.is_empty()));
    }

    #[test]
    fn page_names_are_safe_and_distinct() {
        assert_eq!(page_name("AWS.IAM.CreateUser"), "AWS.IAM.CreateUser.html");
        let a = page_name("x:query");
        let b = page_name("x/query");
        assert_ne!(a, b);
        for name in [&a, &b, &page_name("../etc"), &page_name("")] {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    && !name.starts_with('.'),
                "{name}"
            );
        }
    }
}
