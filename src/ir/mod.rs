//! The rule IR: the one representation every rule format lowers into.
//!
//! Sigma, Panther and Elastic loaders (`crate::rules`) translate their own syntax into these
//! types and nothing else; the engine (`crate::eval`, `crate::correlate`) only ever sees these.
//! The IR is deliberately close to what the evaluator needs (field path + predicate, boolean
//! structure, keyword searches) and far from any format: there is no "selection", no "modifier",
//! no KQL node here.
//!
//! Case handling: a case-insensitive [`StrMatch`] stores its needle already folded with
//! [`fold_case`]; the matcher folds the event value the same way before comparing. Loaders call
//! the constructors on [`StrMatch`] so that this invariant holds by construction.
//!
//! None of these types is `Serialize`: the output schema is owned by `crate::enrich`.

use std::fmt;

pub use regex::Regex;

pub mod print;
pub mod value;

pub use value::{ArithOp, DissectKey, DissectPattern, Func, Literal, ValueExpr};

/// Where a rule came from: its file and, when the parser knows it, its 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLoc {
    pub path: String,
    pub line: Option<u32>,
}

impl fmt::Display for SourceLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}", self.path, line),
            None => write!(f, "{}", self.path),
        }
    }
}

/// The rule language a rule was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Sigma,
    Panther,
    Elastic,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Sigma => "sigma",
            Format::Panther => "panther",
            Format::Elastic => "elastic",
        }
    }
}

/// Severity, ordered from least to most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses the names used by Sigma `level`, Panther `Severity` and Elastic `severity`,
    /// case-insensitively (`info` is Panther's spelling of informational).
    pub fn parse(text: &str) -> Option<Severity> {
        match text.to_ascii_lowercase().as_str() {
            "informational" | "info" => Some(Severity::Informational),
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// The log source a rule applies to, as Sigma names it. A `None` part is a wildcard.
/// Other formats map their log type onto this (Panther `AWS.CloudTrail`, Elastic
/// `logs-aws.cloudtrail-*` both become `product: aws, service: cloudtrail`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LogSource {
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
}

impl LogSource {
    pub fn new(product: Option<&str>, service: Option<&str>, category: Option<&str>) -> LogSource {
        let norm = |s: Option<&str>| s.map(|s| s.to_ascii_lowercase());
        LogSource {
            product: norm(product),
            service: norm(service),
            category: norm(category),
        }
    }

    /// True when every part this rule names agrees with the stream's declared source.
    /// A part the stream does not declare does not exclude the rule.
    pub fn admits(&self, stream: &LogSource) -> bool {
        fn part(rule: &Option<String>, stream: &Option<String>) -> bool {
            match (rule, stream) {
                (Some(rule), Some(stream)) => rule == stream,
                _ => true,
            }
        }
        part(&self.product, &stream.product)
            && part(&self.service, &stream.service)
            && part(&self.category, &stream.category)
    }

    /// Like [`LogSource::admits`], for a source vigil recognised itself (CloudTrail by shape),
    /// whose every part is known: a part the source does not have excludes a rule that names
    /// it, so a `category: proxy` rule never runs on CloudTrail.
    pub fn admits_known(&self, source: &LogSource) -> bool {
        fn part(rule: &Option<String>, source: &Option<String>) -> bool {
            rule.is_none() || rule == source
        }
        part(&self.product, &source.product)
            && part(&self.service, &source.service)
            && part(&self.category, &source.category)
    }
}

impl fmt::Display for LogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [&self.product, &self.service, &self.category];
        let mut first = true;
        for (name, value) in ["product", "service", "category"].iter().zip(parts) {
            if let Some(value) = value {
                if !first {
                    write!(f, " ")?;
                }
                write!(f, "{name}:{value}")?;
                first = false;
            }
        }
        if first {
            write!(f, "any")?;
        }
        Ok(())
    }
}

/// MITRE ATT&CK ids, normalized (`TA0003`, `T1136.003`), sorted and deduplicated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attack {
    pub tactics: Vec<String>,
    pub techniques: Vec<String>,
}

impl Attack {
    pub fn normalize(&mut self) {
        self.tactics.sort();
        self.tactics.dedup();
        self.techniques.sort();
        self.techniques.dedup();
    }
}

/// Metadata every rule and correlation carries, whatever its format.
#[derive(Clone, Debug)]
pub struct Meta {
    /// Stable identifier (Sigma `id`, Panther `RuleID`, Elastic `rule_id`).
    pub id: String,
    /// Sigma `name`: a second handle correlations may use instead of `id`.
    pub name: Option<String>,
    pub title: String,
    pub format: Format,
    pub severity: Severity,
    /// Tags as written by the source (Sigma `tags`), kept for the output.
    pub tags: Vec<String>,
    pub attack: Attack,
    pub description: Option<String>,
    pub references: Vec<String>,
    /// What the rule shows about a hit: Sigma `fields`, the keys of Panther's `alert_context()`
    /// (or a simple detection's `AlertContext`), the columns an ES|QL query shows (its last
    /// `KEEP` or `STATS`).
    pub fields: Vec<String>,
    pub source: SourceLoc,
    /// Documentation only the rule catalog reads (`crate::catalog`); the engine ignores it.
    pub doc: MetaDoc,
}

/// What a rule says about itself for people, beyond what the engine needs: read by the rule
/// catalog (`vigil explain`, `vigil catalog`) only. Empty when the format has no such key.
#[derive(Clone, Debug, Default)]
pub struct MetaDoc {
    /// How to triage a hit (Panther `Runbook`, Elastic `note`, the investigation guide).
    pub runbook: Option<String>,
    /// The log types as the rule names them (Panther `LogTypes`, Elastic `index` patterns);
    /// empty when `logsource` says it all (Sigma).
    pub log_types: Vec<String>,
}

/// A single-event detection rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub meta: Meta,
    pub logsource: LogSource,
    pub expr: Expr,
    /// What only some formats use (native code, thresholds, embedded tests); all empty for a
    /// plain Sigma rule.
    pub extra: RuleExtra,
}

/// The parts of a rule beyond `expr` that some formats have. Defaults mean "none": enabled,
/// alerting, no native predicate, no threshold, no tests.
#[derive(Clone, Debug, Default)]
pub struct RuleExtra {
    /// Loaded but not run by the engine (Panther `Enabled: false`); its tests still run.
    pub disabled: bool,
    /// A match never alerts on its own (Panther `CreateAlert: false`: a signal for correlations).
    pub silent: bool,
    /// Code the IR cannot express, run after `expr` holds; the rule matches when both do.
    pub native: Option<Native>,
    /// Alert only once this many matches share a dedup string within a period.
    pub threshold: Option<Threshold>,
    /// Compliance references that are not ATT&CK (`CIS:3.5`), as `framework:id`.
    pub compliance: Vec<String>,
    /// Examples carried by the rule, run by `vigil test`.
    pub tests: Vec<RuleTest>,
    /// How much of the rule's logic `expr` states, for people reading it (the rule catalog);
    /// the engine does not read it.
    pub logic: Logic,
}

/// How a rule's logic can be shown in the IR notation.
#[derive(Clone, Debug, Default)]
pub enum Logic {
    /// `expr` is the whole logic (with `native`, if any, only computing outputs).
    #[default]
    Exact,
    /// `native` decides and could be lowered: this expression is equal to `expr` and the
    /// native predicate together, on events where `precondition` (a sentence) holds.
    Lowered { expr: Expr, precondition: String },
    /// `native` decides and could not be lowered: `expr` is only a condition every match
    /// meets (an index guard), never the rule's logic.
    NecessaryOnly { reason: String },
}

/// A rule that alerts once `count` matches with the same dedup string fall within `period_ms`
/// (event time) of the first of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold {
    pub count: u64,
    pub period_ms: i64,
}

/// An opaque predicate in a rule language the IR cannot express (Panther's Python), with a
/// printable description. The engine hands it to the runtime that knows its concrete type
/// (`as_any` downcast); the IR, the index and the printer only ever see the description.
#[derive(Clone)]
pub struct Native {
    /// How the rule's logic is shown (`python rule() in x.py`).
    pub description: String,
    pub body: std::sync::Arc<dyn NativeBody>,
}

impl fmt::Debug for Native {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Native({})", self.description)
    }
}

/// The runtime object behind a [`Native`].
pub trait NativeBody: Send + Sync + 'static {
    fn as_any(&self) -> &dyn std::any::Any;
}

/// One example event carried by a rule, with the answer it must give.
#[derive(Clone, Debug)]
pub struct RuleTest {
    pub name: String,
    pub expected: bool,
    pub event: serde_json::Value,
    /// Names patched for this test (Panther `Mocks`: module-level functions and constants),
    /// each with its return value or constant.
    pub mocks: Vec<(String, serde_json::Value)>,
    pub line: Option<u32>,
}

/// A dotted field path. Lookup first tries `raw` as one literal key of the top-level object
/// (`"userIdentity.type"` written flat), then walks `segments` through nested objects.
#[derive(Clone, Debug)]
pub struct FieldPath {
    pub raw: String,
    pub segments: Vec<String>,
    /// When the event has no value at this path, derive one from what it has (the Elastic
    /// "ECS view" of raw CloudTrail); `None` for a plain path. The derived value is computed
    /// once per event and cached by `crate::event::Event` like a value it read.
    pub derive: Option<crate::event::DeriveFn>,
    /// [`FieldPath::text_hash`] of `raw`: the event's cache of derived values compares it
    /// before the text.
    pub hash: u64,
}

// Two paths are the same when they read the same field the same way; a derivation compares
// by its address, which is enough for deduplicating the paths rules read.
impl PartialEq for FieldPath {
    fn eq(&self, other: &FieldPath) -> bool {
        self.raw == other.raw
            && self.derive.map(|derive| derive as usize)
                == other.derive.map(|derive| derive as usize)
    }
}

impl Eq for FieldPath {}

impl std::hash::Hash for FieldPath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

impl FieldPath {
    pub fn new(raw: &str) -> FieldPath {
        FieldPath {
            raw: raw.to_string(),
            segments: raw.split('.').map(str::to_string).collect(),
            derive: None,
            hash: FieldPath::text_hash(raw),
        }
    }

    /// A path's `hash`: 64-bit FNV-1a of its text (stable, and cheap on short names).
    pub fn text_hash(raw: &str) -> u64 {
        raw.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// An ECS field name written by an Elastic rule: the literal field when the event has it,
    /// else the value Elastic's AWS integration would have indexed, derived from a raw
    /// CloudTrail record by [`crate::ecs::derive`].
    pub fn ecs(raw: &str) -> FieldPath {
        FieldPath {
            derive: crate::ecs::is_derivable(raw)
                .then_some(crate::ecs::derive as crate::event::DeriveFn),
            ..FieldPath::new(raw)
        }
    }
}

impl fmt::Display for FieldPath {
    /// The path's text; a single key holding a dot (read only as that one flat key, never as
    /// a nested path) is written in brackets and quotes, `["a.b"]`, to tell the two apart.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.len() == 1 && self.raw.contains('.') {
            write!(f, "[{}]", serde_json::Value::from(self.raw.as_str()))
        } else {
            f.write_str(&self.raw)
        }
    }
}

/// A boolean expression over one event.
#[derive(Clone, Debug)]
pub enum Expr {
    Const(bool),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// True when the value at `path` satisfies `pred`. When the value is an array, true when
    /// any element satisfies it (except for [`Predicate::Null`] and [`Predicate::Exists`],
    /// which look at the array itself).
    Field {
        path: FieldPath,
        pred: Predicate,
    },
    /// True when any string value anywhere in the event (recursively, keys excluded)
    /// satisfies the match. Numbers and booleans are searched as their JSON text.
    Keyword(StrMatch),
    /// True when the computed value is the boolean `true` (null and false are not): a
    /// condition over columns a query computed (see [`value`]).
    Value(ValueExpr),
}

impl Expr {
    /// `And` that flattens nested `And`s and folds constants.
    pub fn and(items: Vec<Expr>) -> Expr {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Expr::Const(true) => {}
                Expr::Const(false) => return Expr::Const(false),
                Expr::And(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Expr::Const(true),
            1 => out.pop().unwrap_or(Expr::Const(true)),
            _ => Expr::And(out),
        }
    }

    /// `Or` that flattens nested `Or`s and folds constants.
    pub fn or(items: Vec<Expr>) -> Expr {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Expr::Const(false) => {}
                Expr::Const(true) => return Expr::Const(true),
                Expr::Or(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Expr::Const(false),
            1 => out.pop().unwrap_or(Expr::Const(false)),
            _ => Expr::Or(out),
        }
    }

    /// `Not` that cancels a double negation and folds constants.
    #[allow(clippy::should_implement_trait)]
    pub fn not(item: Expr) -> Expr {
        match item {
            Expr::Const(value) => Expr::Const(!value),
            Expr::Not(inner) => *inner,
            other => Expr::Not(Box::new(other)),
        }
    }

    pub fn field(path: &str, pred: Predicate) -> Expr {
        Expr::Field {
            path: FieldPath::new(path),
            pred,
        }
    }
}

/// What must hold of one field value.
#[derive(Clone, Debug)]
pub enum Predicate {
    /// The field is absent or JSON `null` (Sigma `field: null`).
    Null,
    /// The field is present (whatever its value, `null` included) when `true`; absent when `false`.
    Exists(bool),
    /// String comparison. Strings compare as they are, numbers and booleans as their JSON text,
    /// objects as their compact JSON text; `null` never matches.
    Str(StrMatch),
    /// Regular expression search (unanchored, as Sigma `re`); flags are compiled in.
    Regex(Regex),
    /// Numeric comparison; numbers and numeric strings take part, anything else does not match.
    Num { op: CmpOp, value: f64 },
    /// IP network membership; values that are not IP addresses do not match.
    Cidr(Cidr),
    /// Compare with another field of the same event (Sigma `fieldref`).
    FieldRef {
        other: FieldPath,
        kind: StrKind,
        cased: bool,
    },
    /// Compare one part of a date/time value (RFC 3339 string or epoch seconds).
    DatePart {
        part: DatePart,
        op: CmpOp,
        value: i64,
    },
}

/// A string test. Build it with [`StrMatch::new`] so the needle is folded when `cased` is false.
#[derive(Clone, Debug)]
pub struct StrMatch {
    pub kind: StrKind,
    pub needle: String,
    pub cased: bool,
    /// Compiled form for [`StrKind::Glob`], anchored at both ends; `None` otherwise.
    pub glob: Option<Regex>,
}

/// How a needle is compared with a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrKind {
    Exact,
    Prefix,
    Suffix,
    Contains,
    /// A Sigma wildcard pattern (`*` any run, `?` one character) with escapes already resolved
    /// into the compiled regex. `needle` keeps the pattern text for display.
    Glob,
}

impl StrKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StrKind::Exact => "eq",
            StrKind::Prefix => "startswith",
            StrKind::Suffix => "endswith",
            StrKind::Contains => "contains",
            StrKind::Glob => "glob",
        }
    }
}

impl StrMatch {
    /// A non-glob string test; folds the needle unless `cased`.
    pub fn new(kind: StrKind, needle: &str, cased: bool) -> StrMatch {
        debug_assert!(kind != StrKind::Glob, "use StrMatch::glob");
        StrMatch {
            kind,
            needle: if cased {
                needle.to_string()
            } else {
                fold_case(needle)
            },
            cased,
            glob: None,
        }
    }

    /// A wildcard test from an already compiled anchored regex (the loader owns the
    /// wildcard/escape syntax); `display` is the pattern as written.
    pub fn glob(display: &str, compiled: Regex, cased: bool) -> StrMatch {
        StrMatch {
            kind: StrKind::Glob,
            needle: display.to_string(),
            cased,
            glob: Some(compiled),
        }
    }
}

/// The case folding shared by loaders and the matcher: Unicode lowercase.
pub fn fold_case(text: &str) -> String {
    if text.is_ascii() {
        text.to_ascii_lowercase()
    } else {
        text.to_lowercase()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Lt,
    Lte,
    Gt,
    Gte,
    Eq,
    Neq,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Lt => "lt",
            CmpOp::Lte => "lte",
            CmpOp::Gt => "gt",
            CmpOp::Gte => "gte",
            CmpOp::Eq => "eq",
            CmpOp::Neq => "neq",
        }
    }

    pub fn parse(text: &str) -> Option<CmpOp> {
        match text {
            "lt" => Some(CmpOp::Lt),
            "lte" => Some(CmpOp::Lte),
            "gt" => Some(CmpOp::Gt),
            "gte" => Some(CmpOp::Gte),
            "eq" => Some(CmpOp::Eq),
            "neq" => Some(CmpOp::Neq),
            _ => None,
        }
    }

    pub fn holds<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            CmpOp::Lt => left < right,
            CmpOp::Lte => left <= right,
            CmpOp::Gt => left > right,
            CmpOp::Gte => left >= right,
            CmpOp::Eq => left == right,
            CmpOp::Neq => left != right,
        }
    }
}

/// An IPv4 or IPv6 network (`10.0.0.0/8`, `fd00::/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub network: std::net::IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, len.parse::<u8>().ok()?),
            None => {
                let addr: std::net::IpAddr = text.parse().ok()?;
                (text, if addr.is_ipv4() { 32 } else { 128 })
            }
        };
        let network: std::net::IpAddr = addr.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        if len > max {
            return None;
        }
        Some(Cidr {
            network,
            prefix_len: len,
        })
    }

    pub fn contains(&self, addr: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.network, addr) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(addr) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(addr) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// The date parts of the Sigma 2.1 time modifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl DatePart {
    pub fn as_str(self) -> &'static str {
        match self {
            DatePart::Minute => "minute",
            DatePart::Hour => "hour",
            DatePart::Day => "day",
            DatePart::Week => "week",
            DatePart::Month => "month",
            DatePart::Year => "year",
        }
    }
}

/// A multi-event correlation over the matches of other rules (or other correlations).
#[derive(Clone, Debug)]
pub struct Correlation {
    pub meta: Meta,
    pub kind: CorrelationKind,
    /// Referenced rules or correlations, by `id` or `name`, as written. Resolved by the engine.
    pub rules: Vec<String>,
    /// Group-by field names; an alias name stands for a per-rule field (see `aliases`).
    pub group_by: Vec<String>,
    pub aliases: Vec<Alias>,
    /// Window length in milliseconds.
    pub timespan_ms: i64,
    /// The timespan as written (`7d`), for the output.
    pub timespan_text: String,
    pub condition: Condition,
    /// Sigma `generate`: when false, the referenced rules feed this correlation without
    /// alerting on their own.
    pub generate: bool,
    /// Group-by names (and a `value_count` field name) that stand for a value computed from
    /// the event rather than a field (ES|QL `STATS ... BY` over an `EVAL`/`DISSECT`/`GROK`
    /// column). Empty for every other format.
    pub computed: Vec<(String, ValueExpr)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CorrelationKind {
    EventCount,
    ValueCount {
        field: FieldPath,
    },
    Temporal,
    TemporalOrdered,
    ValueSum {
        field: FieldPath,
    },
    ValueAvg {
        field: FieldPath,
    },
    ValuePercentile {
        field: FieldPath,
        percentile: f64,
    },
    /// Elastic `new_terms`: fires when the group-by value tuple of a match was not seen in the
    /// `timespan` before it (the history window). One referenced rule.
    NewTerms,
    /// EQL `sequence`: the referenced rules are the stages in order (plus a last `until` rule
    /// when `has_until`), joined by the group-by fields, within `timespan` (maxspan).
    Sequence {
        has_until: bool,
    },
}

impl CorrelationKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            CorrelationKind::EventCount => "event_count",
            CorrelationKind::ValueCount { .. } => "value_count",
            CorrelationKind::Temporal => "temporal",
            CorrelationKind::TemporalOrdered => "temporal_ordered",
            CorrelationKind::ValueSum { .. } => "value_sum",
            CorrelationKind::ValueAvg { .. } => "value_avg",
            CorrelationKind::ValuePercentile { .. } => "value_percentile",
            CorrelationKind::NewTerms => "new_terms",
            CorrelationKind::Sequence { .. } => "sequence",
        }
    }
}

/// Sigma correlation `aliases`: the group-by name `name` reads `field` from events matched by
/// rule `rule` (referenced by id or name).
#[derive(Clone, Debug, PartialEq)]
pub struct Alias {
    pub name: String,
    pub fields: Vec<(String, FieldPath)>,
}

/// The condition on the aggregate: all comparisons must hold (two make a range).
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub comparisons: Vec<(CmpOp, f64)>,
}

impl Condition {
    pub fn holds(&self, value: f64) -> bool {
        self.comparisons
            .iter()
            .all(|(op, bound)| op.holds(value, *bound))
    }
}

/// An example for a correlation: base-rule matches (as the rule outputs they would be) and
/// whether the correlation must fire on them (Panther `RuleOutputs` tests).
#[derive(Clone, Debug)]
pub struct CorrelationTest {
    pub name: String,
    pub expected: bool,
    pub matches: Vec<SyntheticMatch>,
    pub line: Option<u32>,
}

/// One base-rule match of a [`CorrelationTest`]: rule `rule` matched at `time_ms` with `value`
/// at `field` (a `p_alert_context.*` field is the match's context, any other the event's).
#[derive(Clone, Debug)]
pub struct SyntheticMatch {
    pub rule: String,
    pub field: FieldPath,
    pub value: serde_json::Value,
    pub time_ms: i64,
}

/// Everything the loaders produced from a set of sources.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub correlations: Vec<Correlation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_membership() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.200.1.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("AWS Internal").is_none());
    }

    #[test]
    fn smart_constructors_fold() {
        let leaf = || Expr::field("a", Predicate::Null);
        assert!(matches!(
            Expr::and(vec![Expr::Const(true), leaf()]),
            Expr::Field { .. }
        ));
        assert!(matches!(
            Expr::and(vec![Expr::Const(false), leaf()]),
            Expr::Const(false)
        ));
        assert!(matches!(
            Expr::or(vec![Expr::Const(true), leaf()]),
            Expr::Const(true)
        ));
        assert!(matches!(Expr::not(Expr::not(leaf())), Expr::Field { .. }));
        match Expr::and(vec![Expr::and(vec![leaf(), leaf()]), leaf()]) {
            Expr::And(items) => assert_eq!(items.len(), 3),
            other => panic!("not flattened: {other:?}"),
        }
    }

    #[test]
    fn logsource_admits() {
        let rule = LogSource::new(Some("aws"), Some("cloudtrail"), None);
        assert!(rule.admits(&LogSource::new(Some("AWS"), Some("cloudtrail"), None)));
        assert!(!rule.admits(&LogSource::new(Some("okta"), Some("okta"), None)));
        assert!(rule.admits(&LogSource::default()));
        let proxy = LogSource::new(None, None, Some("proxy"));
        let cloudtrail = LogSource::new(Some("aws"), Some("cloudtrail"), None);
        assert!(proxy.admits(&LogSource::new(Some("okta"), Some("okta"), None)));
        assert!(!proxy.admits_known(&cloudtrail));
        assert!(rule.admits_known(&cloudtrail));
        assert!(LogSource::new(Some("aws"), None, None).admits_known(&cloudtrail));
        assert!(LogSource::default().admits_known(&cloudtrail));
    }

    #[test]
    fn severity_order_and_names() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Informational < Severity::Low);
        assert_eq!(Severity::parse("INFO"), Some(Severity::Informational));
        assert_eq!(Severity::parse("bogus"), None);
    }
}
