//! Elastic detection rules (`[metadata]` + `[rule]` TOML) and hunting queries (`[hunt]` TOML)
//! lowered into the IR.
//!
//! One file holds one rule. Its `type` and `language` pick the front end: `query` rules in KQL
//! ([`kql`]), `eql` rules ([`eql`]), `esql` rules and hunting queries ([`esql`]), and the
//! stateful `threshold` and `new_terms` rules, whose KQL query becomes a non-alerting base rule
//! that feeds a correlation of the same `rule_id`. Field names are ECS names: every path is
//! built with [`crate::ir::FieldPath::ecs`], so the engine reads the literal field when an event
//! has it and derives it from a raw CloudTrail record otherwise ([`crate::ecs`]).
//!
//! What the loader does not evaluate is reported unsupported with the construct named, never
//! approximated: `machine_learning` rules, Lucene queries, threshold rules combining a count
//! above one with a cardinality, and every query construct the parsers list as unsupported.
//! A building block (`building_block_type`) loads with the tag `elastic.building_block`, which
//! the correlator reads to make it non-alerting (the IR has no alert flag on rules).
//!
//! Windows: Elastic runs a rule every `interval` over the last `from` (`now-6m` by default). A
//! stateful rule here uses `from` as its sliding event-time window (`threshold`, ES|QL `STATS`
//! without a time filter); `new_terms` uses `history_window_start`.

pub mod eql;
pub mod esql;
pub mod kql;

use crate::attack::{self, AttackId};
use crate::diag::{Code, Diagnostic};
use crate::ir::{
    Attack, CmpOp, Condition, Correlation, CorrelationKind, Expr, FieldPath, Format, LogSource,
    Meta, Predicate, Regex, Rule, Severity, SourceLoc, StrKind, StrMatch,
};

use super::Loaded;

/// Tag given to building-block rules (they feed other rules and should not alert).
pub const BUILDING_BLOCK_TAG: &str = "elastic.building_block";

/// The deepest nesting (parentheses, `not`, function calls) the KQL, EQL and ES|QL parsers
/// accept. Each parser recurses once per level, and so does everything that later walks the
/// lowered expression (the index, the printer, drop), so a query nested deeper is refused as a
/// syntax error instead of overflowing the stack; real rules nest a handful of levels.
pub const MAX_QUERY_DEPTH: usize = 100;

/// A query that could not be lowered: byte offset in the query, reason, and whether the query
/// is valid but outside what vigil evaluates (unsupported) or simply invalid (syntax).
#[derive(Clone, Debug, PartialEq)]
pub struct LowerError {
    pub offset: usize,
    pub message: String,
    pub unsupported: bool,
}

/// A recursive-descent query parser whose recursion is bounded by [`MAX_QUERY_DEPTH`] (the
/// KQL, EQL and ES|QL parsers), so a deeply nested query is an error, not a stack overflow.
pub(crate) trait Nesting: Sized {
    /// The nesting of the recursive rules being parsed.
    fn depth(&mut self) -> &mut usize;
    /// Where an error points: the offset of the current token.
    fn position(&self) -> usize;

    /// Runs one level of a recursive rule, refusing to go deeper than [`MAX_QUERY_DEPTH`].
    fn nested<T>(
        &mut self,
        rule: impl FnOnce(&mut Self) -> Result<T, LowerError>,
    ) -> Result<T, LowerError> {
        if *self.depth() >= MAX_QUERY_DEPTH {
            return Err(LowerError::too_deep(self.position()));
        }
        *self.depth() += 1;
        let result = rule(self);
        *self.depth() -= 1;
        result
    }
}

impl LowerError {
    pub fn syntax(offset: usize, message: impl Into<String>) -> LowerError {
        LowerError {
            offset,
            message: message.into(),
            unsupported: false,
        }
    }

    /// The error for a query nested deeper than [`MAX_QUERY_DEPTH`].
    pub fn too_deep(offset: usize) -> LowerError {
        LowerError::syntax(
            offset,
            format!("query nested deeper than {MAX_QUERY_DEPTH} levels"),
        )
    }

    pub fn unsupported(offset: usize, construct: impl Into<String>) -> LowerError {
        LowerError {
            offset,
            message: construct.into(),
            unsupported: true,
        }
    }
}

/// A value with wildcards: literal runs, `*` (any run) and `?` (one character).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pattern {
    pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Literal(String),
    Star,
    One,
}

impl Pattern {
    pub fn literal(text: &str) -> Pattern {
        let mut pattern = Pattern::default();
        for c in text.chars() {
            pattern.push_literal(c);
        }
        pattern
    }

    /// A wildcard pattern where `*` and `?` are wildcards and `\` escapes the next character.
    pub fn wildcard(text: &str) -> Pattern {
        let mut pattern = Pattern::default();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' => pattern.push_star(),
                '?' => pattern.push_one(),
                '\\' => match chars.next() {
                    Some(escaped) => pattern.push_literal(escaped),
                    None => pattern.push_literal('\\'),
                },
                c => pattern.push_literal(c),
            }
        }
        pattern
    }

    pub fn push_literal(&mut self, c: char) {
        match self.pieces.last_mut() {
            Some(Piece::Literal(text)) => text.push(c),
            _ => self.pieces.push(Piece::Literal(c.to_string())),
        }
    }

    pub fn push_star(&mut self) {
        if self.pieces.last() != Some(&Piece::Star) {
            self.pieces.push(Piece::Star);
        }
    }

    pub fn push_one(&mut self) {
        self.pieces.push(Piece::One);
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The value is `*` alone.
    pub fn is_match_all(&self) -> bool {
        self.pieces == [Piece::Star]
    }

    /// The text when there is no wildcard.
    pub fn literal_text(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Literal(text)] => Some(text),
            _ => None,
        }
    }

    pub fn trim_end_whitespace(&mut self) {
        if let Some(Piece::Literal(text)) = self.pieces.last_mut() {
            let trimmed = text.trim_end().len();
            text.truncate(trimmed);
            if text.is_empty() {
                self.pieces.pop();
            }
        }
    }

    /// The pattern as written with `*`/`?`, for display.
    pub fn display(&self) -> String {
        self.pieces
            .iter()
            .map(|piece| match piece {
                Piece::Literal(text) => text.clone(),
                Piece::Star => "*".to_string(),
                Piece::One => "?".to_string(),
            })
            .collect()
    }

    /// An anchored regex for the whole pattern.
    fn regex(&self, cased: bool) -> Option<Regex> {
        let mut source = String::from(if cased { "(?s)^" } else { "(?si)^" });
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => source.push_str(&regex::escape(text)),
                Piece::Star => source.push_str(".*"),
                Piece::One => source.push('.'),
            }
        }
        source.push('$');
        Regex::new(&source).ok()
    }

    /// The IR string test for this pattern: exact, prefix, suffix, contains or glob.
    pub fn str_match(&self, cased: bool) -> StrMatch {
        match self.pieces.as_slice() {
            [] => StrMatch::new(StrKind::Exact, "", cased),
            [Piece::Literal(text)] => StrMatch::new(StrKind::Exact, text, cased),
            [Piece::Literal(text), Piece::Star] => StrMatch::new(StrKind::Prefix, text, cased),
            [Piece::Star, Piece::Literal(text)] => StrMatch::new(StrKind::Suffix, text, cased),
            [Piece::Star, Piece::Literal(text), Piece::Star] => {
                StrMatch::new(StrKind::Contains, text, cased)
            }
            _ => match self.regex(cased) {
                Some(regex) => StrMatch::glob(&self.display(), regex, cased),
                // Escaped literals always compile; this branch is unreachable in practice.
                None => StrMatch::new(StrKind::Exact, &self.display(), cased),
            },
        }
    }
}

/// An ECS field path (literal field first, else derived from raw CloudTrail).
pub fn ecs_field(name: &str) -> FieldPath {
    FieldPath::ecs(name)
}

/// `field` matches `pattern`; a bare `*` matches any non-null value.
pub fn pattern_expr(field: &str, pattern: &Pattern, cased: bool) -> Expr {
    Expr::Field {
        path: ecs_field(field),
        pred: Predicate::Str(pattern.str_match(cased)),
    }
}

/// Loads one Elastic TOML source (rule or hunting query) into `out`.
pub fn load(path: &str, text: &str, out: &mut Loaded) {
    let table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(err) => {
            let line = err.span().map(|span| line_of(text, span.start));
            out.diagnostics.push(Diagnostic::error(
                Code::Syntax,
                SourceLoc {
                    path: path.to_string(),
                    line,
                },
                format!("invalid toml: {}", err.message()),
            ));
            return;
        }
    };
    let file = File { path, text };
    let result = if let Some(toml::Value::Table(hunt)) = table.get("hunt") {
        load_hunt(&file, hunt)
    } else if let Some(toml::Value::Table(rule)) = table.get("rule") {
        load_rule(&file, rule)
    } else {
        Err(Diagnostic::error(
            Code::Schema,
            file.loc(None),
            "not an elastic rule: no [rule] or [hunt] table",
        ))
    };
    match result {
        Ok(lowered) => {
            out.set.rules.extend(lowered.rules);
            out.set.correlations.extend(lowered.correlations);
            out.diagnostics.extend(lowered.notes);
        }
        Err(diag) => out.diagnostics.push(diag),
    }
}

struct File<'a> {
    path: &'a str,
    text: &'a str,
}

impl File<'_> {
    fn loc(&self, line: Option<u32>) -> SourceLoc {
        SourceLoc {
            path: self.path.to_string(),
            line,
        }
    }

    /// The 1-based line of the first `key =` at the start of a line.
    fn key_line(&self, key: &str) -> Option<u32> {
        let mut offset = 0;
        for (idx, line) in self.text.split('\n').enumerate() {
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix(key)
                && rest.trim_start().starts_with('=')
            {
                let _ = offset;
                return Some(idx as u32 + 1);
            }
            offset += line.len() + 1;
        }
        None
    }

    /// The line of byte `offset` of `query`, found in the file text.
    fn query_line(&self, query: &str, offset: usize) -> Option<u32> {
        let start = self.text.find(query).or_else(|| {
            let first = query.lines().find(|line| !line.trim().is_empty())?;
            self.text.find(first.trim())
        })?;
        let within = query.get(..offset.min(query.len())).unwrap_or_default();
        Some(line_of(self.text, start) + within.matches('\n').count() as u32)
    }
}

fn line_of(text: &str, offset: usize) -> u32 {
    text.get(..offset.min(text.len()))
        .map_or(0, |before| before.matches('\n').count()) as u32
        + 1
}

/// What one file lowered to.
#[derive(Default)]
struct Lowered {
    rules: Vec<Rule>,
    correlations: Vec<Correlation>,
    /// Warnings that accompany a rule that loaded.
    notes: Vec<Diagnostic>,
}

/// The columns an ES|QL query's results show, for the rule catalog's output fields: those of
/// the last `KEEP`, or of the last `STATS` when no `KEEP` follows it (its aggregates' names,
/// then its `BY` columns); empty with neither. A plain scan of the `|`-separated commands: a
/// `|` inside a string literal would be misread, which only costs a wrong catalog line.
fn esql_output_columns(query: &str) -> Vec<String> {
    for command in query.split('|').rev() {
        let command = command.trim();
        let Some((head, rest)) = command.split_once(char::is_whitespace) else {
            continue;
        };
        if head.eq_ignore_ascii_case("keep") {
            return split_top_level(rest);
        }
        if head.eq_ignore_ascii_case("stats") {
            let lower = rest.to_ascii_lowercase();
            let (aggregates, by) = match lower.rfind(" by ") {
                Some(at) => (&rest[..at], &rest[at + 4..]),
                None => (rest, ""),
            };
            let mut columns: Vec<String> = split_top_level(aggregates)
                .into_iter()
                .map(|aggregate| match aggregate.split_once('=') {
                    Some((name, _)) => name.trim().to_string(),
                    None => aggregate,
                })
                .collect();
            columns.extend(split_top_level(by).into_iter().map(
                |column| match column.split_once('=') {
                    Some((name, _)) => name.trim().to_string(),
                    None => column,
                },
            ));
            return columns;
        }
    }
    Vec::new()
}

/// Splits on commas outside parentheses, trimming and dropping empty parts.
fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|part| part.trim().to_string())
        .filter(|part| !part.is_empty())
        .collect()
}

fn get_str<'t>(table: &'t toml::Table, key: &str) -> Option<&'t str> {
    table.get(key).and_then(toml::Value::as_str)
}

fn get_strings(table: &toml::Table, key: &str) -> Vec<String> {
    match table.get(key) {
        Some(toml::Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_string))
            .collect(),
        Some(toml::Value::String(text)) => vec![text.clone()],
        _ => Vec::new(),
    }
}

fn load_rule(file: &File<'_>, rule: &toml::Table) -> Result<Lowered, Diagnostic> {
    let rule_line = file.key_line("rule_id");
    let schema = |message: &str| Diagnostic::error(Code::Schema, file.loc(rule_line), message);
    let id = get_str(rule, "rule_id").ok_or_else(|| schema("missing 'rule_id'"))?;
    let with_rule = |diag: Diagnostic| diag.with_rule(id.to_string());
    let name = get_str(rule, "name").ok_or_else(|| with_rule(schema("missing 'name'")))?;
    let severity = match get_str(rule, "severity") {
        Some(text) => Severity::parse(text)
            .ok_or_else(|| with_rule(schema(&format!("unknown severity '{text}'"))))?,
        None => return Err(with_rule(schema("missing 'severity'"))),
    };
    let mut tags = get_strings(rule, "tags");
    if rule.contains_key("building_block_type") {
        tags.push(BUILDING_BLOCK_TAG.to_string());
    }
    if let Some(score) = rule.get("risk_score").and_then(toml::Value::as_integer) {
        tags.push(format!("elastic.risk_score.{score}"));
    }
    let meta = Meta {
        id: id.to_string(),
        name: None,
        title: name.to_string(),
        format: Format::Elastic,
        severity,
        tags,
        attack: threat_attack(rule.get("threat")),
        description: get_str(rule, "description").map(str::to_string),
        references: get_strings(rule, "references"),
        fields: Vec::new(),
        source: file.loc(rule_line),
        doc: crate::ir::MetaDoc {
            runbook: get_str(rule, "note").map(|note| note.trim().to_string()),
            log_types: get_strings(rule, "index"),
        },
    };
    let rule_type = get_str(rule, "type").unwrap_or("query");
    let language = get_str(rule, "language");
    let query_line = file.key_line("query");
    let unsupported = |message: String| {
        Diagnostic::error(
            Code::Unsupported,
            file.loc(query_line.or(rule_line)),
            message,
        )
        .with_rule(id.to_string())
    };
    if rule_type == "machine_learning" {
        return Err(unsupported(
            "rule type 'machine_learning' (anomaly jobs) is not evaluated".into(),
        ));
    }
    let query = get_str(rule, "query")
        .ok_or_else(|| with_rule(schema(&format!("'{rule_type}' rule without 'query'"))))?;
    let mut meta = meta;
    if language == Some("esql") {
        meta.fields = esql_output_columns(query);
    }
    let index = get_strings(rule, "index");
    let logsource = logsource_of(&index);
    let lookback = match get_str(rule, "from") {
        Some(text) => parse_now_minus(text).ok_or_else(|| {
            with_rule(schema(&format!(
                "cannot read 'from' = '{text}' (expected now-<n><unit>)"
            )))
        })?,
        None => Lookback::default_from(),
    };
    let query_error = |err: LowerError, what: &str| {
        let loc = file.loc(file.query_line(query, err.offset).or(query_line));
        let code = if err.unsupported {
            Code::Unsupported
        } else {
            Code::Syntax
        };
        let message = if err.unsupported {
            format!("unsupported {what} construct: {}", err.message)
        } else {
            format!("invalid {what}: {}", err.message)
        };
        Diagnostic::error(code, loc, message).with_rule(id.to_string())
    };
    let kql_query = || -> Result<Expr, Diagnostic> {
        match language {
            Some("kuery") | None => kql::lower(query).map_err(|err| query_error(err, "KQL")),
            Some(other) => Err(unsupported(format!("query language '{other}'"))),
        }
    };
    let mut lowered = Lowered::default();
    match rule_type {
        "query" => {
            lowered.rules.push(Rule {
                meta,
                logsource,
                expr: kql_query()?,
                extra: crate::ir::RuleExtra::default(),
            });
        }
        "eql" => {
            let category_field =
                get_str(rule, "event_category_override").unwrap_or("event.category");
            match eql::lower(query, category_field).map_err(|err| query_error(err, "EQL"))? {
                eql::Lowered::Event(expr) => lowered.rules.push(Rule {
                    meta,
                    logsource,
                    expr,
                    extra: crate::ir::RuleExtra::default(),
                }),
                eql::Lowered::Sequence(sequence) => {
                    lower_sequence(meta, logsource, sequence, &mut lowered);
                }
            }
        }
        "esql" => {
            let lowered_query = esql::lower(query).map_err(|err| query_error(err, "ES|QL"))?;
            lower_esql(meta, lowered_query, lookback, &mut lowered);
        }
        "threshold" => {
            let expr = kql_query()?;
            let threshold = match rule.get("threshold") {
                Some(toml::Value::Table(table)) => table,
                _ => return Err(with_rule(schema("threshold rule without [rule.threshold]"))),
            };
            lower_threshold(meta, logsource, expr, threshold, lookback, &mut lowered)
                .map_err(&unsupported)?;
        }
        "new_terms" => {
            let expr = kql_query()?;
            let new_terms = match rule.get("new_terms") {
                Some(toml::Value::Table(table)) => table,
                _ => return Err(with_rule(schema("new_terms rule without [rule.new_terms]"))),
            };
            lower_new_terms(meta, logsource, expr, new_terms, &mut lowered)
                .map_err(|message| with_rule(schema(&message)))?;
        }
        other => return Err(unsupported(format!("rule type '{other}'"))),
    }
    Ok(lowered)
}

fn load_hunt(file: &File<'_>, hunt: &toml::Table) -> Result<Lowered, Diagnostic> {
    let line = file.key_line("uuid");
    let schema = |message: &str| Diagnostic::error(Code::Schema, file.loc(line), message);
    let id = get_str(hunt, "uuid").ok_or_else(|| schema("missing 'uuid'"))?;
    let name = get_str(hunt, "name").ok_or_else(|| schema("missing 'name'").with_rule(id))?;
    let queries = get_strings(hunt, "query");
    let mut attack = Attack::default();
    for entry in get_strings(hunt, "mitre") {
        match attack::parse_id(&entry) {
            Some(AttackId::Tactic(tactic)) => attack.tactics.push(tactic),
            Some(AttackId::Technique(technique)) => attack.techniques.push(technique),
            None => {}
        }
    }
    attack.normalize();
    let meta = |suffix: Option<usize>| Meta {
        id: match suffix {
            Some(n) => format!("{id}:{n}"),
            None => id.to_string(),
        },
        name: None,
        title: name.to_string(),
        format: Format::Elastic,
        // Hunting queries carry no severity; they are leads for an analyst.
        severity: Severity::Low,
        tags: vec!["elastic.hunt".to_string()],
        attack: attack.clone(),
        description: get_str(hunt, "description").map(|text| text.trim().to_string()),
        references: Vec::new(),
        fields: Vec::new(),
        source: file.loc(line),
        doc: crate::ir::MetaDoc::default(),
    };
    if queries.is_empty() {
        return Err(schema("hunting query without 'query'").with_rule(id));
    }
    let languages = get_strings(hunt, "language");
    if !languages.iter().any(|language| language == "ES|QL") {
        return Err(Diagnostic::error(
            Code::Unsupported,
            file.loc(line),
            format!("hunting query language {languages:?} (only ES|QL is evaluated)"),
        )
        .with_rule(id));
    }
    let mut lowered = Lowered::default();
    let several = queries.len() > 1;
    for (n, query) in queries.iter().enumerate() {
        let lowered_query = esql::lower(query).map_err(|err| {
            let loc = file.loc(
                file.query_line(query, err.offset)
                    .or(file.key_line("query")),
            );
            let (code, message) = if err.unsupported {
                (
                    Code::Unsupported,
                    format!("unsupported ES|QL construct: {}", err.message),
                )
            } else {
                (Code::Syntax, format!("invalid ES|QL: {}", err.message))
            };
            Diagnostic::error(code, loc, message).with_rule(id)
        })?;
        let meta = meta(several.then_some(n + 1));
        lower_esql(meta, lowered_query, Lookback::default_from(), &mut lowered);
    }
    Ok(lowered)
}

/// `[[rule.threat]]` tactics, techniques and subtechniques, as normalized ids.
fn threat_attack(threat: Option<&toml::Value>) -> Attack {
    let mut attack = Attack::default();
    let Some(toml::Value::Array(entries)) = threat else {
        return attack;
    };
    fn ids(value: Option<&toml::Value>) -> Vec<&toml::Table> {
        match value {
            Some(toml::Value::Array(items)) => items.iter().filter_map(|i| i.as_table()).collect(),
            Some(toml::Value::Table(table)) => vec![table],
            _ => Vec::new(),
        }
    }
    for entry in entries.iter().filter_map(|e| e.as_table()) {
        for tactic in ids(entry.get("tactic")) {
            if let Some(Some(AttackId::Tactic(id))) = get_str(tactic, "id").map(attack::parse_id) {
                attack.tactics.push(id);
            }
        }
        for technique in ids(entry.get("technique")) {
            if let Some(Some(AttackId::Technique(id))) =
                get_str(technique, "id").map(attack::parse_id)
            {
                attack.techniques.push(id);
            }
            for sub in ids(technique.get("subtechnique")) {
                if let Some(Some(AttackId::Technique(id))) =
                    get_str(sub, "id").map(attack::parse_id)
                {
                    attack.techniques.push(id);
                }
            }
        }
    }
    attack.normalize();
    attack
}

/// AWS CloudTrail index patterns map to the `aws/cloudtrail` log source; other patterns name
/// no source (the rule runs on every stream).
fn logsource_of(index: &[String]) -> LogSource {
    if index.iter().any(|pattern| pattern.contains("cloudtrail")) {
        LogSource::new(Some("aws"), Some("cloudtrail"), None)
    } else {
        LogSource::default()
    }
}

/// A duration: milliseconds and the text it was read from.
#[derive(Clone, Debug, PartialEq)]
pub struct Lookback {
    pub ms: i64,
    pub text: String,
}

impl Lookback {
    /// Elastic's default `from` (`now-6m`).
    fn default_from() -> Lookback {
        Lookback {
            ms: 6 * 60_000,
            text: "6m".into(),
        }
    }
}

/// `now-6m`, `now-10d`: the span back from now.
pub fn parse_now_minus(text: &str) -> Option<Lookback> {
    parse_duration(text.trim().strip_prefix("now-")?)
}

/// `15m`, `7d`, `30s`, `2h`: a positive span. Zero is refused (`now-0h`, `maxspan=0s`): a
/// window of no time holds no event, so the rule could never fire as written.
pub fn parse_duration(text: &str) -> Option<Lookback> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    if number <= 0 {
        return None;
    }
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(Lookback {
        ms: number.checked_mul(unit_ms)?,
        text: text.to_string(),
    })
}

/// The id of the non-alerting base rule feeding a stateful rule.
fn base_id(id: &str) -> String {
    format!("{id}:query")
}

fn base_rule(meta: &Meta, logsource: LogSource, expr: Expr) -> Rule {
    Rule {
        meta: Meta {
            id: base_id(&meta.id),
            ..meta.clone()
        },
        logsource,
        expr,
        extra: crate::ir::RuleExtra::default(),
    }
}

fn correlation(
    meta: Meta,
    kind: CorrelationKind,
    group_by: Vec<String>,
    window: &Lookback,
    condition: Vec<(CmpOp, f64)>,
) -> Correlation {
    Correlation {
        rules: vec![base_id(&meta.id)],
        meta,
        kind,
        group_by,
        aliases: Vec::new(),
        timespan_ms: window.ms,
        timespan_text: window.text.clone(),
        condition: Condition {
            comparisons: condition,
        },
        generate: false,
        computed: Vec::new(),
    }
}

/// `threshold`: a count (and/or a cardinality) per group within the lookback.
fn lower_threshold(
    meta: Meta,
    logsource: LogSource,
    expr: Expr,
    threshold: &toml::Table,
    lookback: Lookback,
    out: &mut Lowered,
) -> Result<(), String> {
    let fields = get_strings(threshold, "field");
    let value = threshold
        .get("value")
        .and_then(toml::Value::as_integer)
        .ok_or("threshold without an integer 'value'")?;
    let cardinality: Vec<&toml::Table> = match threshold.get("cardinality") {
        Some(toml::Value::Array(items)) => items.iter().filter_map(|i| i.as_table()).collect(),
        _ => Vec::new(),
    };
    let (kind, bound) = match cardinality.as_slice() {
        [] => (CorrelationKind::EventCount, value),
        [card] => {
            let field = get_str(card, "field").ok_or("threshold cardinality without 'field'")?;
            let bound = card
                .get("value")
                .and_then(toml::Value::as_integer)
                .ok_or("threshold cardinality without an integer 'value'")?;
            if value > 1 {
                return Err(format!(
                    "threshold with both a count (>= {value}) and a cardinality: one window \
                     condition cannot test both"
                ));
            }
            (
                CorrelationKind::ValueCount {
                    field: ecs_field(field),
                },
                bound,
            )
        }
        _ => return Err("threshold with several cardinality fields".into()),
    };
    out.rules.push(base_rule(&meta, logsource, expr));
    out.correlations.push(correlation(
        meta,
        kind,
        fields,
        &lookback,
        vec![(CmpOp::Gte, bound as f64)],
    ));
    Ok(())
}

/// `new_terms`: the first time a value tuple is seen within the history window.
fn lower_new_terms(
    meta: Meta,
    logsource: LogSource,
    expr: Expr,
    new_terms: &toml::Table,
    out: &mut Lowered,
) -> Result<(), String> {
    let fields = get_strings(new_terms, "value");
    if fields.is_empty() {
        return Err("new_terms without fields".into());
    }
    let history = match new_terms.get("history_window_start") {
        Some(toml::Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_table())
            .find_map(|item| get_str(item, "value").and_then(parse_now_minus)),
        _ => None,
    }
    .ok_or("new_terms without a readable history_window_start (now-<n><unit>)")?;
    out.rules.push(base_rule(&meta, logsource, expr));
    out.correlations.push(correlation(
        meta,
        CorrelationKind::NewTerms,
        fields,
        &history,
        vec![(CmpOp::Gte, 1.0)],
    ));
    Ok(())
}

fn lower_sequence(meta: Meta, logsource: LogSource, sequence: eql::Sequence, out: &mut Lowered) {
    let n_stages = sequence.stages.len();
    let mut references = Vec::new();
    for (n, stage) in sequence.stages.into_iter().enumerate() {
        let id = format!("{}:stage{}", meta.id, n + 1);
        references.push(id.clone());
        out.rules.push(Rule {
            meta: Meta { id, ..meta.clone() },
            logsource: logsource.clone(),
            expr: stage,
            extra: crate::ir::RuleExtra::default(),
        });
    }
    let until = sequence.until.map(|until| {
        let id = format!("{}:until", meta.id);
        out.rules.push(Rule {
            meta: Meta {
                id: id.clone(),
                ..meta.clone()
            },
            logsource: logsource.clone(),
            expr: until,
            extra: crate::ir::RuleExtra::default(),
        });
        id
    });
    let has_until = until.is_some();
    references.extend(until);
    out.correlations.push(Correlation {
        rules: references,
        meta,
        kind: CorrelationKind::Sequence { has_until },
        group_by: sequence.by,
        aliases: Vec::new(),
        timespan_ms: sequence.maxspan.ms,
        timespan_text: sequence.maxspan.text,
        condition: Condition {
            comparisons: vec![(CmpOp::Gte, n_stages as f64)],
        },
        generate: false,
        computed: Vec::new(),
    });
}

fn lower_esql(meta: Meta, query: esql::Lowered, lookback: Lookback, out: &mut Lowered) {
    let logsource = LogSource::new(Some("aws"), Some("cloudtrail"), None);
    match query.stats {
        None => out.rules.push(Rule {
            meta,
            logsource,
            expr: query.filter,
            extra: crate::ir::RuleExtra::default(),
        }),
        Some(stats) => {
            let window = query.window.unwrap_or(lookback);
            out.rules.push(base_rule(&meta, logsource, query.filter));
            let kind = match (stats.distinct_of, stats.sum_of) {
                (Some(field), _) => CorrelationKind::ValueCount {
                    field: ecs_field(&field),
                },
                // A computed column: the correlator reads it by name from `computed`.
                (None, Some(column)) => CorrelationKind::ValueSum {
                    field: crate::ir::FieldPath::new(&column),
                },
                (None, None) => CorrelationKind::EventCount,
            };
            let mut correlation = correlation(meta, kind, stats.by, &window, stats.condition);
            correlation.computed = stats.computed;
            out.correlations.push(correlation);
        }
    }
}

#[cfg(test)]
mod tests;
