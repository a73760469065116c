//! ES|QL, the subset the AWS rules and hunting queries use, parsed and lowered into the IR.
//!
//! A query is a pipe of commands. What each one becomes on a stream:
//! - `FROM <index> [METADATA ...]`: must name CloudTrail data (`logs-aws.cloudtrail*`).
//! - `WHERE <cond>` before `STATS`: the per-event filter. ES|QL has three-valued logic (a
//!   comparison with a `null` field is `null`, and `WHERE` keeps only rows where the condition
//!   is `true`), so `NOT field == "x"` does *not* match an event without the field, unlike KQL.
//!   The lowering keeps, for every sub-condition, one IR expression for "is true" and one for
//!   "is false"; `NOT` swaps them.
//! - `WHERE @timestamp > now() - N unit`: the window of a `STATS` query (event time).
//! - `EVAL`, `DISSECT`, `GROK`, `RENAME`: compute columns. Each column is kept as the
//!   [`ValueExpr`] that computes it from one event, and a later use of its name inlines it
//!   (before `STATS` every column is a function of one event, so this is exact).
//! - A `WHERE` the per-field lowering above cannot express (a computed column, `true IN
//!   (...)`, a function of a function) becomes one [`Expr::Value`], evaluated with ES|QL's
//!   null semantics.
//! - `STATS agg, ... BY key, ...` then `WHERE <one aggregate> >= | > | == N`: a windowed
//!   correlation per `BY` group (`count(*)`: event count; `count(x)`: count of events where
//!   `x` is not null; `count_distinct(x)`: distinct non-null values; `sum(expr)`: the sum of
//!   the non-null values of an expression, a `value_sum` correlation). A `BY` key or an
//!   aggregate argument may be a computed column or an expression (`BY w = DATE_TRUNC(...)`):
//!   the correlator reads its value per event. `values`, `min`, `max` only add output columns
//!   and do not change when a group qualifies. Without a `WHERE`, every group qualifies
//!   (`>= 1`). A row-count condition implied by a distinct-count one is dropped (see
//!   [`implied_count_conditions`]). The event that makes the condition true is flagged.
//! - `KEEP`, `DROP`, `SORT`, `LIMIT`: no effect on a stream.
//!
//! String comparisons are case-sensitive; `LIKE` uses `*`/`?` wildcards on the whole value;
//! `RLIKE` matches the whole value against a Lucene-syntax regex. `TO_LOWER(f) == "x"` is a
//! case-insensitive comparison when `"x"` is lower case. `=` in a condition is a syntax error,
//! as in ES|QL (it is only assignment; equality is `==`). Unsupported (reported, each with
//! its reason): `LOOKUP`, `ENRICH`, `MV_EXPAND`, `INLINESTATS`, `KQL()`, `MV_*` functions,
//! "fewer than" conditions (`<`, `<=`, `!=` over an aggregate: a stream cannot know a window
//! closed), other combinations of aggregate conditions, `SUM` of a bare field (it may hold
//! several values), `AVG` and filtered aggregates,
//! `EVAL` after `STATS`, `NOW()` outside the window filter (a stream has no query run time),
//! `DATE_FORMAT` without a literal pattern or with pattern letters that print locale text
//! (`eval::java_date` formats the rest exactly, in Elasticsearch's default `Locale.US`),
//! calendar `DATE_TRUNC` units, `DISSECT` modifiers, grok pattern names other than the few
//! translated, and functions not listed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ir::{
    ArithOp, Cidr, CmpOp, DissectKey, DissectPattern, Expr, FieldPath, Func, Literal, Predicate,
    Regex, StrKind, StrMatch, ValueExpr, fold_case,
};

use super::eql::lucene_regex;
use super::{Lookback, LowerError, MAX_QUERY_DEPTH, Nesting, Pattern, ecs_field, pattern_expr};
use crate::eval::java_date::JavaDatePattern;

/// A lowered ES|QL query.
#[derive(Debug)]
pub struct Lowered {
    /// The per-event filter (every `WHERE` before `STATS`).
    pub filter: Expr,
    pub stats: Option<Stats>,
    /// The `@timestamp > now() - N` filter, when there is one.
    pub window: Option<Lookback>,
}

#[derive(Debug)]
pub struct Stats {
    pub by: Vec<String>,
    /// `BY` names (and a `count_distinct` argument) that are values computed from the event.
    pub computed: Vec<(String, ValueExpr)>,
    /// `count_distinct(field)` when the condition counts distinct values; `None` for counts.
    pub distinct_of: Option<String>,
    /// The computed column a `SUM` condition adds up (in `computed`); `None` otherwise.
    pub sum_of: Option<String>,
    pub condition: Vec<(CmpOp, f64)>,
}

pub fn lower(query: &str) -> Result<Lowered, LowerError> {
    let tokens = tokenize(query)?;
    let mut commands: Vec<&[Token]> = Vec::new();
    let mut start = 0;
    let mut depth = 0_i32;
    for (idx, token) in tokens.iter().enumerate() {
        match (token.kind, token.text.as_str()) {
            (Kind::Punct, "(") => depth += 1,
            (Kind::Punct, ")") => depth -= 1,
            (Kind::Punct, "|") if depth == 0 => {
                commands.push(&tokens[start..idx]);
                start = idx + 1;
            }
            _ => {}
        }
    }
    commands.push(&tokens[start..]);
    let mut state = State {
        filters: Vec::new(),
        computed: HashMap::new(),
        window: None,
        stats: None,
        end: query.len(),
    };
    for (n, command) in commands.iter().enumerate() {
        let Some(head) = command.first() else {
            return Err(LowerError::syntax(query.len(), "empty command"));
        };
        let name = head.text.to_ascii_lowercase();
        if n == 0 {
            if name != "from" {
                return Err(LowerError::unsupported(
                    head.offset,
                    format!("ES|QL source command '{}'", head.text),
                ));
            }
            let index = command.get(1).map(|t| t.text.as_str()).unwrap_or_default();
            if !index.contains("cloudtrail") {
                return Err(LowerError::unsupported(
                    head.offset,
                    format!("ES|QL source '{index}' (only CloudTrail data is evaluated)"),
                ));
            }
            continue;
        }
        state.command(&name, head, &command[1..])?;
    }
    let filter = Expr::and(state.filters);
    Ok(Lowered {
        filter,
        stats: state.stats.map(|stats| Stats {
            by: stats.by,
            computed: stats.computed,
            distinct_of: stats.distinct_of,
            sum_of: stats.sum_of,
            condition: stats.condition,
        }),
        window: state.window,
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Word,
    Str,
    Number,
    Punct,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    text: String,
    offset: usize,
}

fn tokenize(query: &str) -> Result<Vec<Token>, LowerError> {
    let bytes = query.as_bytes();
    let mut tokens = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let c = bytes[pos];
        if c.is_ascii_whitespace() {
            pos += 1;
            continue;
        }
        let rest = &query[pos..];
        if rest.starts_with("//") {
            pos = rest.find('\n').map_or(query.len(), |end| pos + end);
            continue;
        }
        if rest.starts_with("/*") {
            pos = rest
                .find("*/")
                .map(|end| pos + end + 2)
                .ok_or_else(|| LowerError::syntax(pos, "unterminated comment"))?;
            continue;
        }
        let start = pos;
        if let Some(body) = rest.strip_prefix("\"\"\"") {
            let end = body
                .find("\"\"\"")
                .ok_or_else(|| LowerError::syntax(pos, "unterminated string"))?;
            tokens.push(Token {
                kind: Kind::Str,
                text: body[..end].to_string(),
                offset: start,
            });
            pos += end + 6;
            continue;
        }
        if c == b'"' {
            let mut text = String::new();
            let mut chars = rest[1..].char_indices();
            let mut closed = None;
            while let Some((idx, ch)) = chars.next() {
                match ch {
                    '"' => {
                        closed = Some(idx);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => text.push('\n'),
                        Some((_, 't')) => text.push('\t'),
                        Some((_, 'r')) => text.push('\r'),
                        Some((_, other)) => text.push(other),
                        None => break,
                    },
                    ch => text.push(ch),
                }
            }
            let end = closed.ok_or_else(|| LowerError::syntax(pos, "unterminated string"))?;
            tokens.push(Token {
                kind: Kind::Str,
                text,
                offset: start,
            });
            pos += end + 2;
            continue;
        }
        if c.is_ascii_digit() {
            while pos < bytes.len() && (bytes[pos].is_ascii_digit() || bytes[pos] == b'.') {
                pos += 1;
            }
            tokens.push(Token {
                kind: Kind::Number,
                text: query[start..pos].to_string(),
                offset: start,
            });
            continue;
        }
        if c == b'`' {
            let end = rest[1..]
                .find('`')
                .ok_or_else(|| LowerError::syntax(pos, "unterminated `name`"))?;
            tokens.push(Token {
                kind: Kind::Word,
                text: rest[1..1 + end].to_string(),
                offset: start,
            });
            pos += end + 2;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'@' || c == b'.' {
            while pos < bytes.len()
                && (bytes[pos].is_ascii_alphanumeric() || b"_.@-*".contains(&bytes[pos]))
            {
                pos += 1;
            }
            tokens.push(Token {
                kind: Kind::Word,
                text: query[start..pos].to_string(),
                offset: start,
            });
            continue;
        }
        let two = query.get(pos..pos + 2).unwrap_or("");
        let text = if ["==", "!=", "<=", ">=", "=~"].contains(&two) {
            two.to_string()
        } else {
            (c as char).to_string()
        };
        if !"==!=<=>=()|,+-*/%<>=".contains(text.as_str()) && text != "=~" {
            return Err(LowerError::syntax(
                pos,
                format!("unexpected character '{text}'"),
            ));
        }
        pos += text.len();
        tokens.push(Token {
            kind: Kind::Punct,
            text,
            offset: start,
        });
    }
    Ok(tokens)
}

struct StatsState {
    by: Vec<String>,
    /// `BY` names (and a `count_distinct` argument) computed from the event.
    computed: Vec<(String, ValueExpr)>,
    /// Aggregate names: (name, kind, argument).
    aggregates: Vec<(String, Agg, Option<AggArg>)>,
    distinct_of: Option<String>,
    sum_of: Option<String>,
    condition: Vec<(CmpOp, f64)>,
    conditioned: bool,
}

/// The argument of an aggregate: its text (the name a correlation reads it by) and value.
struct AggArg {
    name: String,
    value: ValueExpr,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Agg {
    CountAll,
    Count,
    CountDistinct,
    /// `sum(expr)` of a computed value: null rows are skipped, as ES|QL does.
    Sum,
    /// `values`, `min`, `max`: output columns only.
    Column,
}

struct State {
    filters: Vec<Expr>,
    /// Columns computed by EVAL, DISSECT, GROK or RENAME, each with the value expression that
    /// computes it from the event. Later commands read a column by inlining its expression:
    /// before STATS every column is a function of one event, so this is exact.
    computed: HashMap<String, ValueExpr>,
    window: Option<Lookback>,
    stats: Option<StatsState>,
    end: usize,
}

impl State {
    fn command(&mut self, name: &str, head: &Token, args: &[Token]) -> Result<(), LowerError> {
        match name {
            "keep" | "drop" | "sort" | "limit" => Ok(()),
            "where" => {
                if self.stats.is_some() {
                    return self.aggregate_where(head, args);
                }
                // The per-field lowering first (it gives the engine indexable field tests);
                // when it cannot express the condition (a computed column, a boolean
                // literal, a function of a function...), the condition becomes one value
                // expression evaluated with ES|QL's null semantics.
                let window = self.window.clone();
                let mut parser = ExprParser {
                    tokens: args,
                    pos: 0,
                    state: self,
                    depth: 0,
                };
                let first = parser
                    .or_expr()
                    .and_then(|cond| match parser.tokens.get(parser.pos) {
                        Some(token) => Err(LowerError::syntax(
                            token.offset,
                            format!("unexpected '{}'", token.text),
                        )),
                        None => Ok(cond),
                    });
                match first {
                    Ok(cond) => {
                        self.filters.push(cond.when_true);
                        Ok(())
                    }
                    Err(err) if !err.unsupported => Err(err),
                    Err(_) => {
                        self.window = window;
                        let value = self.value_expr(args)?;
                        self.filters.push(Expr::Value(value));
                        Ok(())
                    }
                }
            }
            "eval" => {
                if self.stats.is_some() {
                    return Err(LowerError::unsupported(
                        head.offset,
                        "ES|QL EVAL after STATS",
                    ));
                }
                // `name = expr, ...`: each column may use the ones before it.
                for item in split_commas(args) {
                    match item {
                        [name, eq, rest @ ..] if eq.text == "=" && name.kind == Kind::Word => {
                            let value = self.value_expr(rest)?;
                            self.computed.insert(name.text.clone(), value);
                        }
                        [first, ..] => {
                            return Err(LowerError::unsupported(
                                first.offset,
                                "ES|QL EVAL of an unnamed expression",
                            ));
                        }
                        [] => return Err(LowerError::syntax(head.offset, "empty EVAL item")),
                    }
                }
                Ok(())
            }
            "dissect" => {
                let (source, pattern) = self.extract_args(head, args, "DISSECT")?;
                let parsed = parse_dissect(&pattern.text)
                    .map_err(|message| LowerError::unsupported(pattern.offset, message))?;
                let parsed = Arc::new(parsed);
                for (key, dissect_key) in parsed.keys.iter().enumerate() {
                    if let Some(name) = &dissect_key.name {
                        self.computed.insert(
                            name.clone(),
                            ValueExpr::Dissect {
                                source: Box::new(source.clone()),
                                pattern: Arc::clone(&parsed),
                                key,
                            },
                        );
                    }
                }
                Ok(())
            }
            "grok" => {
                let (source, pattern) = self.extract_args(head, args, "GROK")?;
                let (regex, columns) = grok_regex(&pattern.text)
                    .map_err(|message| LowerError::unsupported(pattern.offset, message))?;
                let regex = Arc::new(regex);
                for (group, name) in columns {
                    self.computed.insert(
                        name,
                        ValueExpr::Grok {
                            source: Box::new(source.clone()),
                            regex: Arc::clone(&regex),
                            group,
                        },
                    );
                }
                Ok(())
            }
            "rename" => {
                // `old AS new`: the new name reads what the old one did.
                for item in split_commas(args) {
                    match item {
                        [old, as_word, new] if as_word.text.eq_ignore_ascii_case("as") => {
                            let value = self.column(old);
                            self.computed.insert(new.text.clone(), value);
                        }
                        [first, ..] => {
                            return Err(LowerError::unsupported(
                                first.offset,
                                "ES|QL RENAME other than 'old AS new'",
                            ));
                        }
                        [] => return Err(LowerError::syntax(head.offset, "empty RENAME item")),
                    }
                }
                Ok(())
            }
            "stats" => self.stats(head, args),
            other => Err(LowerError::unsupported(
                head.offset,
                format!("ES|QL command '{}'", other.to_ascii_uppercase()),
            )),
        }
    }

    /// The value a name reads: a computed column, else the (ECS) field of that name.
    fn column(&self, token: &Token) -> ValueExpr {
        match self.computed.get(&token.text) {
            Some(value) => value.clone(),
            None => ValueExpr::Field(ecs_field(&token.text)),
        }
    }

    /// One whole value expression (the tokens of a `WHERE` or an `EVAL` item).
    fn value_expr(&self, tokens: &[Token]) -> Result<ValueExpr, LowerError> {
        let mut parser = ValueParser {
            tokens,
            pos: 0,
            state: self,
            depth: 0,
        };
        let value = parser.or_expr()?;
        match parser.tokens.get(parser.pos) {
            Some(token) => Err(LowerError::syntax(
                token.offset,
                format!("unexpected '{}'", token.text),
            )),
            None => Ok(value),
        }
    }

    /// `DISSECT`/`GROK` arguments: the input column and the pattern string. Options such as
    /// `APPEND_SEPARATOR` are reported.
    fn extract_args(
        &self,
        head: &Token,
        args: &[Token],
        command: &str,
    ) -> Result<(ValueExpr, Token), LowerError> {
        match args {
            [input, pattern] if input.kind == Kind::Word && pattern.kind == Kind::Str => {
                Ok((self.column(input), pattern.clone()))
            }
            [_, _, option, ..] => Err(LowerError::unsupported(
                option.offset,
                format!("ES|QL {command} option '{}'", option.text),
            )),
            _ => Err(LowerError::syntax(
                head.offset,
                format!("{command} needs a column and a pattern string"),
            )),
        }
    }

    fn check_column(&self, token: &Token) -> Result<(), LowerError> {
        if self.computed.contains_key(&token.text) {
            return Err(LowerError::unsupported(
                token.offset,
                format!(
                    "ES|QL column '{}' computed by EVAL/DISSECT/GROK/RENAME and used later",
                    token.text
                ),
            ));
        }
        Ok(())
    }

    fn stats(&mut self, head: &Token, args: &[Token]) -> Result<(), LowerError> {
        if self.stats.is_some() {
            return Err(LowerError::unsupported(head.offset, "ES|QL second STATS"));
        }
        // Split on top-level commas and the `BY` keyword.
        let by_at = args
            .iter()
            .position(|t| t.kind == Kind::Word && t.text.eq_ignore_ascii_case("by"));
        let (aggs, by) = match by_at {
            Some(at) => (&args[..at], &args[at + 1..]),
            None => (args, &args[..0]),
        };
        let mut aggregates = Vec::new();
        for item in split_commas(aggs) {
            let (name, expr) = match item {
                [name, eq, rest @ ..] if eq.text == "=" => (name.text.clone(), rest),
                rest => (
                    rest.iter().map(|t| t.text.as_str()).collect::<String>(),
                    rest,
                ),
            };
            let Some(func) = expr.first() else {
                return Err(LowerError::syntax(head.offset, "empty aggregate"));
            };
            let lower_name = func.text.to_ascii_lowercase();
            let inner = match expr {
                [_, open, inner @ .., close] if open.text == "(" && close.text == ")" => inner,
                _ => {
                    return Err(LowerError::unsupported(
                        func.offset,
                        "ES|QL aggregate with a filter or over an expression of aggregates",
                    ));
                }
            };
            // `count(*)` and `count()` count rows; any other argument is a value expression
            // (a field, a computed column, or an expression over them).
            let arg = match inner {
                [] => None,
                [single] if single.text == "*" => None,
                tokens => {
                    let value = self.value_expr(tokens)?;
                    let name = match (tokens, &value) {
                        ([single], ValueExpr::Field(_)) => single.text.clone(),
                        _ => tokens.iter().map(|t| t.text.as_str()).collect::<String>(),
                    };
                    Some(AggArg { name, value })
                }
            };
            let agg = match (lower_name.as_str(), &arg) {
                ("count", None) => Agg::CountAll,
                ("count", Some(_)) => Agg::Count,
                ("count_distinct", Some(_)) => Agg::CountDistinct,
                // A bare field may hold several values, whose sum ES|QL defines over every
                // value; an expression of fields is single-valued (arithmetic on a
                // multivalued field is null), which the correlator's number reading matches.
                ("sum", Some(AggArg { value, .. })) if !matches!(value, ValueExpr::Field(_)) => {
                    Agg::Sum
                }
                // Output columns only: they never decide when a group qualifies.
                ("values" | "min" | "max", Some(_)) => Agg::Column,
                _ => {
                    return Err(LowerError::unsupported(
                        func.offset,
                        format!("ES|QL aggregate {}()", func.text.to_ascii_uppercase()),
                    ));
                }
            };
            aggregates.push((name, agg, arg));
        }
        let mut by_fields = Vec::new();
        let mut computed = Vec::new();
        for item in split_commas(by) {
            match item {
                [field] if field.kind == Kind::Word => {
                    if let Some(value) = self.computed.get(&field.text) {
                        computed.push((field.text.clone(), value.clone()));
                    }
                    by_fields.push(field.text.clone());
                }
                [name, eq, rest @ ..] if eq.text == "=" && name.kind == Kind::Word => {
                    let value = self.value_expr(rest)?;
                    computed.push((name.text.clone(), value));
                    by_fields.push(name.text.clone());
                }
                [first, ..] => {
                    return Err(LowerError::unsupported(
                        first.offset,
                        "ES|QL STATS BY an unnamed expression",
                    ));
                }
                [] => return Err(LowerError::syntax(head.offset, "empty BY item")),
            }
        }
        self.stats = Some(StatsState {
            by: by_fields,
            computed,
            aggregates,
            distinct_of: None,
            sum_of: None,
            condition: vec![(CmpOp::Gte, 1.0)],
            conditioned: false,
        });
        // Without a later WHERE, `count(*)` decides (every group qualifies).
        Ok(())
    }

    fn aggregate_where(&mut self, head: &Token, args: &[Token]) -> Result<(), LowerError> {
        let end = self.end;
        let Some(stats) = self.stats.as_mut() else {
            return Ok(());
        };
        if stats.conditioned {
            return Err(LowerError::unsupported(
                head.offset,
                "ES|QL second WHERE after STATS",
            ));
        }
        let args = implied_count_conditions(&stats.aggregates, args)?;
        let [name, op, value] = args else {
            let at = args.first().map_or(end, |t| t.offset);
            return Err(LowerError::unsupported(
                at,
                "ES|QL condition over aggregates other than one '<aggregate> >=|>|== <number>'",
            ));
        };
        let Some((_, agg, field)) = stats.aggregates.iter().find(|(n, _, _)| *n == name.text)
        else {
            return Err(LowerError::unsupported(
                name.offset,
                format!("ES|QL condition on '{}' (not an aggregate)", name.text),
            ));
        };
        let op = match op.text.as_str() {
            ">=" => CmpOp::Gte,
            ">" => CmpOp::Gt,
            "==" => CmpOp::Eq,
            "<" | "<=" | "!=" => {
                return Err(LowerError::unsupported(
                    op.offset,
                    "ES|QL 'fewer than' condition over an aggregate (needs the end of a window)",
                ));
            }
            other => {
                return Err(LowerError::syntax(
                    op.offset,
                    format!("unexpected '{other}'"),
                ));
            }
        };
        let bound: f64 = match value.kind {
            Kind::Number => value
                .text
                .parse()
                .map_err(|_| LowerError::syntax(value.offset, "bad number"))?,
            _ => {
                return Err(LowerError::unsupported(
                    value.offset,
                    "ES|QL aggregate compared with a non-number",
                ));
            }
        };
        match agg {
            Agg::CountAll => stats.distinct_of = None,
            Agg::Count => {
                stats.distinct_of = None;
                // count(x) counts only events where x has a value.
                if let Some(arg) = field {
                    let test = match &arg.value {
                        ValueExpr::Field(_) => not_null(&arg.name),
                        value => Expr::Value(ValueExpr::Not(Box::new(ValueExpr::IsNull(
                            Box::new(value.clone()),
                        )))),
                    };
                    self.filters.push(test);
                }
            }
            Agg::CountDistinct => {
                if let Some(arg) = field {
                    stats.distinct_of = Some(arg.name.clone());
                    if !matches!(arg.value, ValueExpr::Field(_)) {
                        stats.computed.push((arg.name.clone(), arg.value.clone()));
                    }
                }
            }
            Agg::Sum => {
                if let Some(arg) = field {
                    stats.sum_of = Some(arg.name.clone());
                    stats.computed.push((arg.name.clone(), arg.value.clone()));
                }
            }
            Agg::Column => {
                return Err(LowerError::unsupported(
                    name.offset,
                    "ES|QL condition on a VALUES/MIN/MAX column",
                ));
            }
        }
        let Some(stats) = self.stats.as_mut() else {
            return Ok(());
        };
        stats.condition = vec![(op, bound)];
        stats.conditioned = true;
        Ok(())
    }
}

/// `count_distinct(x) >= M AND count(*) >= N` with `N <= M`: a group with M distinct
/// values has at least M rows, so the row count condition is implied and dropped; the
/// distinct-count condition alone decides, exactly. Returns the tokens of the one condition
/// left. Any other combination of aggregate conditions is reported unsupported (a window
/// holds one aggregate).
fn implied_count_conditions<'t>(
    aggregates: &[(String, Agg, Option<AggArg>)],
    args: &'t [Token],
) -> Result<&'t [Token], LowerError> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (idx, token) in args.iter().enumerate() {
        if token.kind == Kind::Word && token.text.eq_ignore_ascii_case("and") {
            parts.push(&args[start..idx]);
            start = idx + 1;
        }
    }
    parts.push(&args[start..]);
    if parts.len() == 1 {
        return Ok(args);
    }
    let unsupported = || {
        LowerError::unsupported(
            args.first().map_or(0, |t| t.offset),
            "ES|QL several aggregate conditions (other than a row count implied by a distinct count)",
        )
    };
    // The least whole number of rows (or values) that satisfies `op bound`.
    let least = |part: &[Token]| -> Option<(Agg, f64)> {
        let [name, op, value] = part else {
            return None;
        };
        let agg = aggregates
            .iter()
            .find(|(n, _, _)| *n == name.text)
            .map(|(_, agg, _)| *agg)?;
        let bound: f64 = value.text.parse().ok()?;
        match op.text.as_str() {
            ">=" => Some((agg, bound.ceil())),
            ">" => Some((agg, bound.floor() + 1.0)),
            _ => None,
        }
    };
    let mut distinct: Option<(&'t [Token], f64)> = None;
    let mut counts = Vec::new();
    for part in &parts {
        match least(part) {
            Some((Agg::CountDistinct, at_least)) if distinct.is_none() => {
                distinct = Some((part, at_least));
            }
            Some((Agg::CountAll, at_least)) => counts.push(at_least),
            _ => return Err(unsupported()),
        }
    }
    match distinct {
        Some((part, at_least)) if counts.iter().all(|count| *count <= at_least) => Ok(part),
        _ => Err(unsupported()),
    }
}

fn split_commas(tokens: &[Token]) -> Vec<&[Token]> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (idx, token) in tokens.iter().enumerate() {
        match token.text.as_str() {
            "(" => depth += 1,
            ")" => depth -= 1,
            "," if depth == 0 => {
                out.push(&tokens[start..idx]);
                start = idx + 1;
            }
            _ => {}
        }
    }
    if start < tokens.len() {
        out.push(&tokens[start..]);
    }
    out
}

fn not_null(field: &str) -> Expr {
    Expr::not(Expr::Field {
        path: ecs_field(field),
        pred: Predicate::Null,
    })
}

/// A condition in three-valued logic: when it is true, and when it is false (neither: null).
struct Cond {
    when_true: Expr,
    when_false: Expr,
}

impl Cond {
    /// A test on `field` that is null when the field is null.
    fn on_field(field: &str, test: Expr) -> Cond {
        Cond {
            when_false: Expr::and(vec![not_null(field), Expr::not(test.clone())]),
            when_true: test,
        }
    }
}

struct ExprParser<'t, 's> {
    tokens: &'t [Token],
    pos: usize,
    state: &'s mut State,
    /// Nesting of the recursive rules being parsed, bounded by [`MAX_QUERY_DEPTH`].
    depth: usize,
}

impl Nesting for ExprParser<'_, '_> {
    fn depth(&mut self) -> &mut usize {
        &mut self.depth
    }

    fn position(&self) -> usize {
        self.offset()
    }
}

impl ExprParser<'_, '_> {
    fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.state.end, |t| t.offset)
    }

    fn peek_word(&self, word: &str) -> bool {
        self.tokens
            .get(self.pos)
            .is_some_and(|t| t.kind == Kind::Word && t.text.eq_ignore_ascii_case(word))
    }

    fn peek_punct(&self, punct: &str) -> bool {
        self.tokens
            .get(self.pos)
            .is_some_and(|t| t.kind == Kind::Punct && t.text == punct)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.peek_word(word);
        self.pos += usize::from(found);
        found
    }

    fn eat_punct(&mut self, punct: &str) -> bool {
        let found = self.peek_punct(punct);
        self.pos += usize::from(found);
        found
    }

    fn expect_punct(&mut self, punct: &str) -> Result<(), LowerError> {
        if self.eat_punct(punct) {
            Ok(())
        } else {
            Err(LowerError::syntax(
                self.offset(),
                format!("expected '{punct}'"),
            ))
        }
    }

    fn next(&mut self) -> Result<Token, LowerError> {
        let token = self
            .tokens
            .get(self.pos)
            .cloned()
            .ok_or_else(|| LowerError::syntax(self.state.end, "unexpected end of command"))?;
        self.pos += 1;
        Ok(token)
    }

    fn or_expr(&mut self) -> Result<Cond, LowerError> {
        self.nested(Self::or_expr_inner)
    }

    fn or_expr_inner(&mut self) -> Result<Cond, LowerError> {
        let mut items = vec![self.and_expr()?];
        while self.eat_word("or") {
            items.push(self.and_expr()?);
        }
        if items.len() == 1 {
            return Ok(items.remove(0));
        }
        let (trues, falses): (Vec<Expr>, Vec<Expr>) = items
            .into_iter()
            .map(|c| (c.when_true, c.when_false))
            .unzip();
        Ok(Cond {
            when_true: Expr::or(trues),
            when_false: Expr::and(falses),
        })
    }

    fn and_expr(&mut self) -> Result<Cond, LowerError> {
        let mut items = vec![self.not_expr()?];
        while self.eat_word("and") {
            items.push(self.not_expr()?);
        }
        if items.len() == 1 {
            return Ok(items.remove(0));
        }
        let (trues, falses): (Vec<Expr>, Vec<Expr>) = items
            .into_iter()
            .map(|c| (c.when_true, c.when_false))
            .unzip();
        Ok(Cond {
            when_true: Expr::and(trues),
            when_false: Expr::or(falses),
        })
    }

    fn not_expr(&mut self) -> Result<Cond, LowerError> {
        if self.eat_word("not") {
            let inner = self.nested(Self::not_expr)?;
            return Ok(Cond {
                when_true: inner.when_false,
                when_false: inner.when_true,
            });
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Cond, LowerError> {
        if self.eat_punct("(") {
            let inner = self.or_expr()?;
            self.expect_punct(")")?;
            return Ok(inner);
        }
        let at = self.offset();
        let token = self.next()?;
        if token.kind != Kind::Word {
            return Err(LowerError::unsupported(
                at,
                "ES|QL condition starting with a literal",
            ));
        }
        if token.text.eq_ignore_ascii_case("true") || token.text.eq_ignore_ascii_case("false") {
            return Err(LowerError::unsupported(
                at,
                "ES|QL boolean literal in a condition",
            ));
        }
        // A function call on the left.
        if self.peek_punct("(") {
            return self.function(&token);
        }
        self.state.check_column(&token)?;
        let field = token.text.clone();
        if field == "@timestamp" {
            return self.time_filter(at);
        }
        self.field_test(&field, false)
    }

    /// `@timestamp > now() - N unit` (or `>=`): the window of a STATS query.
    fn time_filter(&mut self, at: usize) -> Result<Cond, LowerError> {
        let texts: Vec<String> = self.tokens[self.pos..]
            .iter()
            .take(7)
            .map(|t| t.text.to_ascii_lowercase())
            .collect();
        let shape_ok = texts.len() >= 7
            && (texts[0] == ">" || texts[0] == ">=")
            && texts[1] == "now"
            && texts[2] == "("
            && texts[3] == ")"
            && texts[4] == "-";
        if !shape_ok {
            return Err(LowerError::unsupported(
                at,
                "ES|QL @timestamp condition other than '> now() - N unit'",
            ));
        }
        let number: i64 = texts[5]
            .parse()
            .map_err(|_| LowerError::syntax(at, "bad time span"))?;
        if number <= 0 {
            // A window of no time holds no event: the query could never return a row.
            return Err(LowerError::syntax(at, "time span must be positive"));
        }
        let unit_ms: i64 = match texts[6].trim_end_matches('s') {
            "second" => 1_000,
            "minute" => 60_000,
            "hour" => 3_600_000,
            "day" => 86_400_000,
            "week" => 7 * 86_400_000,
            _ => {
                return Err(LowerError::unsupported(
                    at,
                    format!("ES|QL time unit '{}'", texts[6]),
                ));
            }
        };
        self.pos += 7;
        self.state.window = Some(Lookback {
            ms: number.saturating_mul(unit_ms),
            text: format!("{number} {}", texts[6]),
        });
        Ok(Cond {
            when_true: Expr::Const(true),
            when_false: Expr::Const(false),
        })
    }

    /// What follows a field (or `TO_LOWER(field)` when `folded`): a comparison, LIKE, RLIKE,
    /// IN, IS [NOT] NULL, each possibly negated with NOT.
    fn field_test(&mut self, field: &str, folded: bool) -> Result<Cond, LowerError> {
        let cased = !folded;
        let op_at = self.offset();
        if self.eat_word("is") {
            let negated = self.eat_word("not");
            if !self.eat_word("null") {
                return Err(LowerError::syntax(self.offset(), "expected NULL"));
            }
            let null = Expr::Field {
                path: ecs_field(field),
                pred: Predicate::Null,
            };
            let cond = Cond {
                when_false: Expr::not(null.clone()),
                when_true: null,
            };
            return Ok(if negated {
                Cond {
                    when_true: cond.when_false,
                    when_false: cond.when_true,
                }
            } else {
                cond
            });
        }
        let negated = self.eat_word("not");
        let op = self.next()?;
        let lowered = op.text.to_ascii_lowercase();
        let test = match lowered.as_str() {
            "like" => {
                let patterns = self.strings()?;
                Expr::or(
                    patterns
                        .iter()
                        .map(|p| pattern_expr(field, &Pattern::wildcard(p), cased))
                        .collect(),
                )
            }
            "rlike" => {
                let patterns = self.strings()?;
                let mut items = Vec::new();
                for pattern in patterns {
                    let regex = lucene_regex(&pattern, cased)
                        .map_err(|message| LowerError::unsupported(op.offset, message))?;
                    items.push(Expr::Field {
                        path: ecs_field(field),
                        pred: Predicate::Regex(regex),
                    });
                }
                Expr::or(items)
            }
            "in" => {
                self.expect_punct("(")?;
                let mut items = Vec::new();
                loop {
                    let value = self.literal()?;
                    items.push(self.equals(field, &value, cased, op_at)?);
                    if self.eat_punct(")") {
                        break;
                    }
                    self.expect_punct(",")?;
                }
                Expr::or(items)
            }
            "==" | "!=" | "<" | "<=" | ">" | ">=" if !negated => {
                let value_at = self.offset();
                let value = self.next()?;
                let test = match value.kind {
                    Kind::Str => self.equals(field, &value.text, cased, value_at)?,
                    Kind::Number if lowered == "==" || lowered == "!=" => {
                        self.equals(field, &value.text, cased, value_at)?
                    }
                    Kind::Number => {
                        let number: f64 = value
                            .text
                            .parse()
                            .map_err(|_| LowerError::syntax(value_at, "bad number"))?;
                        let op = match lowered.as_str() {
                            "<" => CmpOp::Lt,
                            "<=" => CmpOp::Lte,
                            ">" => CmpOp::Gt,
                            _ => CmpOp::Gte,
                        };
                        Expr::Field {
                            path: ecs_field(field),
                            pred: Predicate::Num { op, value: number },
                        }
                    }
                    Kind::Word if value.text == "true" || value.text == "false" => {
                        self.equals(field, &value.text, cased, value_at)?
                    }
                    Kind::Word if !folded && !self.peek_punct("(") => {
                        self.state.check_column(&value)?;
                        if lowered != "==" && lowered != "!=" {
                            return Err(LowerError::unsupported(
                                value_at,
                                "ES|QL ordering between two fields",
                            ));
                        }
                        // Field against field: null when either is null.
                        let eq = Expr::Field {
                            path: ecs_field(field),
                            pred: Predicate::FieldRef {
                                other: FieldPath::ecs(&value.text),
                                kind: StrKind::Exact,
                                cased: true,
                            },
                        };
                        let both = Expr::and(vec![not_null(field), not_null(&value.text)]);
                        let (when_true, when_false) = if lowered == "==" {
                            (eq.clone(), Expr::and(vec![both, Expr::not(eq)]))
                        } else {
                            (Expr::and(vec![both, Expr::not(eq.clone())]), eq)
                        };
                        return Ok(Cond {
                            when_true,
                            when_false,
                        });
                    }
                    _ => {
                        return Err(LowerError::unsupported(
                            value_at,
                            format!("ES|QL comparison with '{}'", value.text),
                        ));
                    }
                };
                if lowered == "!=" {
                    return Ok(Cond {
                        when_true: Expr::and(vec![not_null(field), Expr::not(test.clone())]),
                        when_false: test,
                    });
                }
                test
            }
            "=" => return Err(LowerError::syntax(op.offset, "'=' is assignment; use '=='")),
            other => {
                return Err(LowerError::unsupported(
                    op.offset,
                    format!("ES|QL operator '{other}'"),
                ));
            }
        };
        let cond = Cond::on_field(field, test);
        Ok(if negated {
            Cond {
                when_true: cond.when_false,
                when_false: cond.when_true,
            }
        } else {
            cond
        })
    }

    /// `field == value` as an exact test (case-insensitive when the field was `TO_LOWER`ed,
    /// which needs a lower-case literal).
    fn equals(&self, field: &str, value: &str, cased: bool, at: usize) -> Result<Expr, LowerError> {
        if !cased && fold_case(value) != value {
            return Err(LowerError::unsupported(
                at,
                "ES|QL TO_LOWER(field) compared with a literal that has upper case",
            ));
        }
        Ok(Expr::Field {
            path: ecs_field(field),
            pred: Predicate::Str(StrMatch::new(StrKind::Exact, value, cased)),
        })
    }

    fn literal(&mut self) -> Result<String, LowerError> {
        let token = self.next()?;
        match token.kind {
            Kind::Str | Kind::Number => Ok(token.text),
            _ => Err(LowerError::unsupported(
                token.offset,
                format!("ES|QL non-literal '{}' in a list", token.text),
            )),
        }
    }

    /// One string or a parenthesised list (`LIKE ("a*", "b*")`).
    fn strings(&mut self) -> Result<Vec<String>, LowerError> {
        if self.eat_punct("(") {
            let mut out = Vec::new();
            loop {
                out.push(self.literal()?);
                if self.eat_punct(")") {
                    return Ok(out);
                }
                self.expect_punct(",")?;
            }
        }
        Ok(vec![self.literal()?])
    }

    fn function(&mut self, name: &Token) -> Result<Cond, LowerError> {
        let lowered = name.text.to_ascii_lowercase();
        self.expect_punct("(")?;
        match lowered.as_str() {
            "to_lower" => {
                let field = self.next()?;
                self.state.check_column(&field)?;
                self.expect_punct(")")?;
                self.field_test(&field.text, true)
            }
            "starts_with" | "ends_with" => {
                let field = self.next()?;
                if field.kind != Kind::Word {
                    return Err(LowerError::unsupported(
                        field.offset,
                        format!("ES|QL {}() on a literal", name.text),
                    ));
                }
                self.state.check_column(&field)?;
                self.expect_punct(",")?;
                let needle = self.literal()?;
                self.expect_punct(")")?;
                let kind = if lowered == "starts_with" {
                    StrKind::Prefix
                } else {
                    StrKind::Suffix
                };
                Ok(Cond::on_field(
                    &field.text,
                    Expr::Field {
                        path: ecs_field(&field.text),
                        pred: Predicate::Str(StrMatch::new(kind, &needle, true)),
                    },
                ))
            }
            "cidr_match" => {
                let field = self.next()?;
                self.state.check_column(&field)?;
                let mut items = Vec::new();
                while self.eat_punct(",") {
                    let at = self.offset();
                    let text = self.literal()?;
                    let cidr = Cidr::parse(&text)
                        .ok_or_else(|| LowerError::syntax(at, format!("bad CIDR '{text}'")))?;
                    items.push(Expr::Field {
                        path: ecs_field(&field.text),
                        pred: Predicate::Cidr(cidr),
                    });
                }
                self.expect_punct(")")?;
                Ok(Cond::on_field(&field.text, Expr::or(items)))
            }
            "kql" => Err(LowerError::unsupported(name.offset, "ES|QL KQL() function")),
            _ => Err(LowerError::unsupported(
                name.offset,
                format!("ES|QL function '{}'", name.text),
            )),
        }
    }
}

/// Parses a dissect pattern into the text before the first key and each key with the
/// delimiter after it, as Elasticsearch's `DissectParser` does (a key is `%{...}` up to the
/// first `}`, so `%{{?a}` is a key named `{?a`). `%{}` and `%{?name}` are skipped keys.
/// The `+` (append), `*`/`&` (reference) and `->` (right padding) modifiers are reported
/// unsupported, as are two keys with no delimiter between them.
fn parse_dissect(text: &str) -> Result<DissectPattern, String> {
    let Some(first) = text.find("%{") else {
        return Err("ES|QL DISSECT pattern without keys".into());
    };
    let leading = text[..first].to_string();
    let mut keys = Vec::new();
    let mut rest = &text[first..];
    while let Some(body) = rest.strip_prefix("%{") {
        let Some(close) = body.find('}') else {
            return Err("ES|QL DISSECT pattern with an unclosed '%{'".into());
        };
        let key = &body[..close];
        if key.starts_with(['+', '*', '&']) || key.ends_with("->") {
            return Err(format!("ES|QL DISSECT key modifier in '%{{{key}}}'"));
        }
        let after = &body[close + 1..];
        let next = after.find("%{").unwrap_or(after.len());
        let delimiter = after[..next].to_string();
        if delimiter.is_empty() && next < after.len() {
            return Err("ES|QL DISSECT keys with no delimiter between them".into());
        }
        let name = match key.strip_prefix('?') {
            Some(_) => None,
            None if key.is_empty() => None,
            None => Some(key.to_string()),
        };
        keys.push(DissectKey { name, delimiter });
        rest = &after[next..];
    }
    if keys.iter().all(|key| key.name.is_none()) {
        return Err("ES|QL DISSECT pattern without named keys".into());
    }
    Ok(DissectPattern {
        text: text.to_string(),
        leading,
        keys,
    })
}

/// The grok patterns we translate, as defined in Elasticsearch's `grok-patterns` (legacy
/// set, the one ES|QL uses). A pattern not listed here is reported unsupported by name.
const GROK_PATTERNS: &[(&str, &str)] = &[
    ("NOTSPACE", r"\S+"),
    ("SPACE", r"\s*"),
    ("DATA", r".*?"),
    ("GREEDYDATA", r".*"),
    ("WORD", r"\b\w+\b"),
    ("INT", r"(?:[+-]?(?:[0-9]+))"),
];

/// Translates an ES|QL `GROK` pattern (Oniguruma syntax with `%{NAME:column}` references)
/// into a Rust regex, searched unanchored as grok does. Named groups `(?<column>...)` and
/// `%{NAME:column}` become groups `c0`, `c1`, ... (column names may hold dots); the columns
/// are returned as (group, column). Type suffixes (`%{INT:n:int}`) and constructs the Rust
/// regex engine lacks (look-around, back-references) are reported unsupported.
fn grok_regex(text: &str) -> Result<(Regex, Vec<(String, String)>), String> {
    let mut out = String::new();
    let mut columns = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(body) = rest.strip_prefix("%{") {
            let close = body
                .find('}')
                .ok_or("ES|QL GROK pattern with an unclosed '%{'")?;
            let mut parts = body[..close].split(':');
            let name = parts.next().unwrap_or_default();
            let column = parts.next();
            if parts.next().is_some() {
                return Err(format!(
                    "ES|QL GROK type conversion in '%{{{}}}'",
                    &body[..close]
                ));
            }
            let Some((_, regex)) = GROK_PATTERNS.iter().find(|(known, _)| *known == name) else {
                return Err(format!("ES|QL GROK pattern name '{name}'"));
            };
            match column {
                Some(column) => {
                    let group = format!("c{}", columns.len());
                    out.push_str(&format!("(?<{group}>{regex})"));
                    columns.push((group, column.to_string()));
                }
                None => out.push_str(&format!("(?:{regex})")),
            }
            rest = &body[close + 1..];
        } else if let Some(body) = rest.strip_prefix("(?<") {
            let close = body
                .find('>')
                .ok_or("ES|QL GROK pattern with an unclosed group name")?;
            let name = &body[..close];
            if name.starts_with(['=', '!']) {
                return Err("ES|QL GROK look-behind".into());
            }
            let group = format!("c{}", columns.len());
            out.push_str(&format!("(?<{group}>"));
            columns.push((group, name.to_string()));
            rest = &body[close + 1..];
        } else if rest.starts_with("(?=") || rest.starts_with("(?!") {
            return Err("ES|QL GROK look-ahead".into());
        } else if let Some(body) = rest.strip_prefix('\\') {
            let mut chars = body.chars();
            let Some(escaped) = chars.next() else {
                return Err("ES|QL GROK pattern ending in '\\'".into());
            };
            if escaped.is_ascii_digit() || escaped == 'k' {
                return Err("ES|QL GROK back-reference".into());
            }
            out.push('\\');
            out.push(escaped);
            rest = chars.as_str();
        } else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
        }
    }
    if columns.is_empty() {
        return Err("ES|QL GROK pattern without named captures".into());
    }
    let regex = Regex::new(&out).map_err(|err| format!("ES|QL GROK regex: {err}"))?;
    Ok((regex, columns))
}

/// An ES|QL time-span unit (`1 hour`, `10 seconds`, ...).
fn is_time_unit(word: &str) -> bool {
    let word = word.to_ascii_lowercase();
    let unit = word.strip_suffix('s').unwrap_or(&word);
    [
        "millisecond",
        "ms",
        "second",
        "sec",
        "minute",
        "min",
        "hour",
        "h",
        "day",
        "d",
        "week",
        "w",
        "month",
        "mo",
        "quarter",
        "q",
        "year",
        "yr",
        "y",
    ]
    .contains(&unit)
}

/// Parser of ES|QL value expressions into [`ValueExpr`], names resolved through the
/// computed columns. Precedence (ES|QL grammar, lowest first): `OR`, `AND`, `NOT`, then a
/// comparison / `LIKE` / `RLIKE` / `IN` / `IS NULL` on arithmetic (`+ -`, then `* / %`, then
/// unary minus).
struct ValueParser<'t, 's> {
    tokens: &'t [Token],
    pos: usize,
    state: &'s State,
    /// Nesting of the recursive rules being parsed, bounded by [`MAX_QUERY_DEPTH`].
    depth: usize,
}

impl Nesting for ValueParser<'_, '_> {
    fn depth(&mut self) -> &mut usize {
        &mut self.depth
    }

    fn position(&self) -> usize {
        self.offset()
    }
}

impl ValueParser<'_, '_> {
    fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.state.end, |t| t.offset)
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self
            .peek()
            .is_some_and(|t| t.kind == Kind::Word && t.text.eq_ignore_ascii_case(word));
        self.pos += usize::from(found);
        found
    }

    fn eat_punct(&mut self, punct: &str) -> bool {
        let found = self
            .peek()
            .is_some_and(|t| t.kind == Kind::Punct && t.text == punct);
        self.pos += usize::from(found);
        found
    }

    fn expect_punct(&mut self, punct: &str) -> Result<(), LowerError> {
        if self.eat_punct(punct) {
            Ok(())
        } else {
            Err(LowerError::syntax(
                self.offset(),
                format!("expected '{punct}'"),
            ))
        }
    }

    fn next(&mut self) -> Result<Token, LowerError> {
        let token =
            self.tokens.get(self.pos).cloned().ok_or_else(|| {
                LowerError::syntax(self.state.end, "unexpected end of expression")
            })?;
        self.pos += 1;
        Ok(token)
    }

    fn or_expr(&mut self) -> Result<ValueExpr, LowerError> {
        self.nested(Self::or_expr_inner)
    }

    fn or_expr_inner(&mut self) -> Result<ValueExpr, LowerError> {
        let mut items = vec![self.and_expr()?];
        while self.eat_word("or") {
            items.push(self.and_expr()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            ValueExpr::Or(items)
        })
    }

    fn and_expr(&mut self) -> Result<ValueExpr, LowerError> {
        let mut items = vec![self.not_expr()?];
        while self.eat_word("and") {
            items.push(self.not_expr()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            ValueExpr::And(items)
        })
    }

    fn not_expr(&mut self) -> Result<ValueExpr, LowerError> {
        if self.eat_word("not") {
            return Ok(ValueExpr::Not(Box::new(self.nested(Self::not_expr)?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<ValueExpr, LowerError> {
        let left = self.additive()?;
        if self.eat_word("is") {
            let negated = self.eat_word("not");
            if !self.eat_word("null") {
                return Err(LowerError::syntax(self.offset(), "expected NULL"));
            }
            let test = ValueExpr::IsNull(Box::new(left));
            return Ok(if negated {
                ValueExpr::Not(Box::new(test))
            } else {
                test
            });
        }
        let negated = self.eat_word("not");
        let Some(op) = self.peek().cloned() else {
            if negated {
                return Err(LowerError::syntax(
                    self.offset(),
                    "expected LIKE, RLIKE or IN",
                ));
            }
            return Ok(left);
        };
        let lowered = op.text.to_ascii_lowercase();
        let test = match (op.kind, lowered.as_str()) {
            (Kind::Word, "like") => {
                self.pos += 1;
                let patterns = self.strings()?;
                ValueExpr::Like(
                    Box::new(left),
                    patterns
                        .iter()
                        .map(|p| Pattern::wildcard(p).str_match(true))
                        .collect(),
                )
            }
            (Kind::Word, "rlike") => {
                self.pos += 1;
                let patterns = self.strings()?;
                let mut items = Vec::new();
                for pattern in patterns {
                    let regex = lucene_regex(&pattern, true)
                        .map_err(|message| LowerError::unsupported(op.offset, message))?;
                    items.push(ValueExpr::Rlike(Box::new(left.clone()), regex));
                }
                if items.len() == 1 {
                    items.remove(0)
                } else {
                    ValueExpr::Or(items)
                }
            }
            (Kind::Word, "in") => {
                self.pos += 1;
                self.expect_punct("(")?;
                let mut items = Vec::new();
                loop {
                    items.push(self.additive()?);
                    if self.eat_punct(")") {
                        break;
                    }
                    self.expect_punct(",")?;
                }
                ValueExpr::In(Box::new(left), items)
            }
            (Kind::Punct, "==" | "!=" | "<" | "<=" | ">" | ">=") if !negated => {
                self.pos += 1;
                let cmp = CmpOp::parse(match lowered.as_str() {
                    "==" => "eq",
                    "!=" => "neq",
                    "<" => "lt",
                    "<=" => "lte",
                    ">" => "gt",
                    _ => "gte",
                })
                .ok_or_else(|| LowerError::syntax(op.offset, "bad operator"))?;
                let right = self.additive()?;
                return Ok(ValueExpr::Cmp(cmp, Box::new(left), Box::new(right)));
            }
            // ES|QL's lexer has `ASSIGN : '='` and `EQ : '=='` (elastic/elasticsearch,
            // x-pack/plugin/esql/src/main/antlr): `=` is never a comparison.
            (Kind::Punct, "=") => {
                return Err(LowerError::syntax(op.offset, "'=' is assignment; use '=='"));
            }
            (Kind::Punct, "=~") => {
                return Err(LowerError::unsupported(
                    op.offset,
                    "ES|QL '=~' (case-insensitive equality)",
                ));
            }
            _ if negated => {
                return Err(LowerError::syntax(op.offset, "expected LIKE, RLIKE or IN"));
            }
            _ => return Ok(left),
        };
        Ok(if negated {
            ValueExpr::Not(Box::new(test))
        } else {
            test
        })
    }

    /// One string or a parenthesised list of strings.
    fn strings(&mut self) -> Result<Vec<String>, LowerError> {
        let single = !self.eat_punct("(");
        let mut out = Vec::new();
        loop {
            let token = self.next()?;
            if token.kind != Kind::Str {
                return Err(LowerError::unsupported(
                    token.offset,
                    format!(
                        "ES|QL pattern '{}' that is not a string literal",
                        token.text
                    ),
                ));
            }
            out.push(token.text);
            if single || self.eat_punct(")") {
                return Ok(out);
            }
            self.expect_punct(",")?;
        }
    }

    fn additive(&mut self) -> Result<ValueExpr, LowerError> {
        let mut left = self.multiplicative()?;
        // The loop builds a left-deep tree that later walks recurse into: each link counts
        // as one level of nesting.
        let mut n_links = 0;
        loop {
            let op = if self.eat_punct("+") {
                ArithOp::Add
            } else if self.eat_punct("-") {
                ArithOp::Sub
            } else {
                return Ok(left);
            };
            n_links += 1;
            if self.depth + n_links > MAX_QUERY_DEPTH {
                return Err(LowerError::too_deep(self.offset()));
            }
            let right = self.multiplicative()?;
            left = ValueExpr::Arith(op, Box::new(left), Box::new(right));
        }
    }

    fn multiplicative(&mut self) -> Result<ValueExpr, LowerError> {
        let mut left = self.unary()?;
        // The loop builds a left-deep tree that later walks recurse into: each link counts
        // as one level of nesting.
        let mut n_links = 0;
        loop {
            let op = if self.eat_punct("*") {
                ArithOp::Mul
            } else if self.eat_punct("/") {
                ArithOp::Div
            } else if self.eat_punct("%") {
                ArithOp::Rem
            } else {
                return Ok(left);
            };
            n_links += 1;
            if self.depth + n_links > MAX_QUERY_DEPTH {
                return Err(LowerError::too_deep(self.offset()));
            }
            let right = self.unary()?;
            left = ValueExpr::Arith(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<ValueExpr, LowerError> {
        if self.eat_punct("-") {
            return Ok(ValueExpr::Neg(Box::new(self.nested(Self::unary)?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<ValueExpr, LowerError> {
        if self.eat_punct("(") {
            let inner = self.or_expr()?;
            self.expect_punct(")")?;
            return Ok(inner);
        }
        let token = self.next()?;
        match token.kind {
            Kind::Str => Ok(ValueExpr::Lit(Literal::Str(token.text))),
            Kind::Number => {
                if self
                    .peek()
                    .is_some_and(|t| t.kind == Kind::Word && is_time_unit(&t.text))
                {
                    return Err(LowerError::unsupported(
                        token.offset,
                        "ES|QL time span outside DATE_TRUNC",
                    ));
                }
                if let Ok(value) = token.text.parse::<i64>() {
                    return Ok(ValueExpr::Lit(Literal::Int(value)));
                }
                let value: f64 = token
                    .text
                    .parse()
                    .map_err(|_| LowerError::syntax(token.offset, "bad number"))?;
                Ok(ValueExpr::Lit(Literal::Num(value)))
            }
            Kind::Punct => Err(LowerError::syntax(
                token.offset,
                format!("unexpected '{}'", token.text),
            )),
            Kind::Word => {
                if self.eat_punct("(") {
                    return self.function(&token);
                }
                match token.text.to_ascii_lowercase().as_str() {
                    "true" => Ok(ValueExpr::Lit(Literal::Bool(true))),
                    "false" => Ok(ValueExpr::Lit(Literal::Bool(false))),
                    "null" => Ok(ValueExpr::Lit(Literal::Null)),
                    _ => Ok(self.state.column(&token)),
                }
            }
        }
    }

    /// A function call, after its `(`.
    fn function(&mut self, name: &Token) -> Result<ValueExpr, LowerError> {
        let lowered = name.text.to_ascii_lowercase();
        if lowered == "date_trunc" {
            return self.date_trunc(name);
        }
        let mut args = Vec::new();
        if !self.eat_punct(")") {
            loop {
                args.push(self.or_expr()?);
                if self.eat_punct(")") {
                    break;
                }
                self.expect_punct(",")?;
            }
        }
        let arity = |min: usize, max: usize| {
            if args.len() < min || args.len() > max {
                Err(LowerError::syntax(
                    name.offset,
                    format!("{}() takes {min} to {max} arguments", name.text),
                ))
            } else {
                Ok(())
            }
        };
        let func = match lowered.as_str() {
            "to_lower" => Func::ToLower,
            "to_upper" => Func::ToUpper,
            "concat" => Func::Concat,
            "substring" => Func::Substring,
            "length" => Func::Length,
            "coalesce" => Func::Coalesce,
            "to_string" => Func::ToString,
            "to_integer" | "to_int" | "to_long" => Func::ToInteger,
            "to_double" | "to_dbl" => Func::ToDouble,
            "starts_with" => Func::StartsWith,
            "ends_with" => Func::EndsWith,
            "from_base64" => Func::FromBase64,
            "case" => {
                arity(2, usize::MAX)?;
                let otherwise = if args.len() % 2 == 1 {
                    args.pop()
                } else {
                    None
                };
                let mut arms = Vec::new();
                let mut items = args.into_iter();
                while let (Some(cond), Some(value)) = (items.next(), items.next()) {
                    arms.push((cond, value));
                }
                return Ok(ValueExpr::Case {
                    arms,
                    otherwise: otherwise.map(Box::new),
                });
            }
            "cidr_match" => {
                arity(2, usize::MAX)?;
                let mut nets = Vec::new();
                for arg in &args[1..] {
                    let ValueExpr::Lit(Literal::Str(text)) = arg else {
                        return Err(LowerError::unsupported(
                            name.offset,
                            "ES|QL CIDR_MATCH with a non-literal network",
                        ));
                    };
                    nets.push(Cidr::parse(text).ok_or_else(|| {
                        LowerError::syntax(name.offset, format!("bad CIDR '{text}'"))
                    })?);
                }
                let ip = args.swap_remove(0);
                return Ok(ValueExpr::CidrMatch(Box::new(ip), nets));
            }
            "now" => {
                return Err(LowerError::unsupported(
                    name.offset,
                    "ES|QL NOW() outside '@timestamp > now() - N unit' (a stream has no query run time)",
                ));
            }
            "date_format" => {
                // The pattern must be a literal so that it is checked here: only patterns
                // formatted exactly load (see `eval::java_date`).
                if args.len() == 1 {
                    return Err(LowerError::unsupported(
                        name.offset,
                        "ES|QL DATE_FORMAT without a pattern (the default format)",
                    ));
                }
                arity(2, 2)?;
                let ValueExpr::Lit(Literal::Str(pattern)) = &args[0] else {
                    return Err(LowerError::unsupported(
                        name.offset,
                        "ES|QL DATE_FORMAT with a pattern that is not a string literal",
                    ));
                };
                if let Err(reason) = JavaDatePattern::parse(pattern) {
                    return Err(LowerError::unsupported(
                        name.offset,
                        format!("ES|QL DATE_FORMAT: {reason}"),
                    ));
                }
                Func::DateFormat
            }
            _ => {
                return Err(LowerError::unsupported(
                    name.offset,
                    format!("ES|QL function '{}'", name.text.to_ascii_uppercase()),
                ));
            }
        };
        match func {
            Func::ToLower
            | Func::ToUpper
            | Func::Length
            | Func::ToString
            | Func::ToInteger
            | Func::ToDouble
            | Func::FromBase64 => arity(1, 1)?,
            Func::StartsWith | Func::EndsWith => arity(2, 2)?,
            Func::Substring => arity(2, 3)?,
            Func::Concat | Func::Coalesce => arity(1, usize::MAX)?,
            Func::DateTrunc { .. } | Func::DateFormat => {}
        }
        Ok(ValueExpr::Call(func, args))
    }

    /// `DATE_TRUNC(N unit, date)`: fixed intervals (milliseconds to days) round down to a
    /// multiple of the interval since the epoch, in UTC, as Elasticsearch's fixed-interval
    /// rounding does. Calendar units (week, month, quarter, year) are reported.
    fn date_trunc(&mut self, name: &Token) -> Result<ValueExpr, LowerError> {
        let number = self.next()?;
        let count: i64 = match number.kind {
            Kind::Number => number
                .text
                .parse()
                .map_err(|_| LowerError::syntax(number.offset, "bad DATE_TRUNC interval"))?,
            _ => {
                return Err(LowerError::unsupported(
                    number.offset,
                    "ES|QL DATE_TRUNC interval that is not 'N unit'",
                ));
            }
        };
        let unit = self.next()?;
        let unit_ms: i64 = match unit.text.to_ascii_lowercase().trim_end_matches('s') {
            "millisecond" | "m" => 1,
            "second" => 1_000,
            "minute" => 60_000,
            "hour" => 3_600_000,
            "day" => 86_400_000,
            other => {
                return Err(LowerError::unsupported(
                    unit.offset,
                    format!("ES|QL DATE_TRUNC calendar unit '{other}'"),
                ));
            }
        };
        self.expect_punct(",")?;
        let date = self.or_expr()?;
        self.expect_punct(")")?;
        if count <= 0 {
            return Err(LowerError::syntax(
                name.offset,
                "DATE_TRUNC interval must be positive",
            ));
        }
        Ok(ValueExpr::Call(
            Func::DateTrunc {
                span_ms: count.saturating_mul(unit_ms),
            },
            vec![date],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::matcher::matches;
    use crate::event::Event;
    use serde_json::{Value, json};

    fn filter(query: &str) -> Expr {
        match lower(query) {
            Ok(lowered) => lowered.filter,
            Err(err) => panic!("{query}: {err:?}"),
        }
    }

    fn check(condition: &str, event: Value) -> bool {
        let expr = filter(&format!("from logs-aws.cloudtrail-* | where {condition}"));
        matches(&expr, &Event::new(&event))
    }

    fn unsupported(query: &str) -> String {
        match lower(query) {
            Err(err) if err.unsupported => err.message,
            Err(err) => panic!("{query}: syntax error {err:?}"),
            Ok(_) => panic!("{query}: loaded"),
        }
    }

    #[test]
    fn three_valued_not() {
        let event = json!({"a": "x"});
        assert!(check("a == \"x\"", event.clone()));
        assert!(!check("a == \"X\"", event.clone()));
        assert!(check("not a == \"y\"", event.clone()));
        // A comparison with a missing field is null, and NOT null is null: no match.
        assert!(!check("not b == \"y\"", event.clone()));
        assert!(!check("b != \"y\"", event.clone()));
        assert!(check("b is null and a is not null", event.clone()));
        assert!(!check("not (b == \"y\" or a == \"x\")", event.clone()));
        // null OR true is true.
        assert!(check("b == \"y\" or a == \"x\"", event));
    }

    #[test]
    fn like_rlike_in_functions() {
        let event = json!({"ua": "aws-cli/2.0", "ip": "10.1.2.3", "p": "{policyArn=x/AdministratorAccess}"});
        assert!(check("ua like \"aws-cli*\"", event.clone()));
        assert!(!check("ua like \"AWS-CLI*\"", event.clone()));
        assert!(check("to_lower(ua) like \"aws-cli*\"", event.clone()));
        assert!(check("p rlike \".*AdministratorAccess.*\"", event.clone()));
        assert!(!check("p rlike \"AdministratorAccess\"", event.clone()));
        assert!(check("ua in (\"x\", \"aws-cli/2.0\")", event.clone()));
        assert!(check("ua not in (\"x\")", event.clone()));
        assert!(!check("missing not in (\"x\")", event.clone()));
        assert!(check(
            "starts_with(ua, \"aws\") and ends_with(ua, \"2.0\")",
            event.clone()
        ));
        assert!(check(
            "cidr_match(ip, \"10.0.0.0/8\", \"192.168.0.0/16\")",
            event.clone()
        ));
        assert!(!check("not cidr_match(ip, \"10.0.0.0/8\")", event));
    }

    #[test]
    fn stats_and_windows() {
        let lowered = lower(
            "from logs-aws.cloudtrail-* | where @timestamp > now() - 7 day \
             | where event.action == \"CreateUser\" \
             | stats n = count_distinct(event.action) by user.target.name | where n == 2",
        )
        .unwrap();
        let stats = lowered.stats.unwrap();
        assert_eq!(stats.by, vec!["user.target.name".to_string()]);
        assert_eq!(stats.distinct_of.as_deref(), Some("event.action"));
        assert_eq!(stats.condition, vec![(CmpOp::Eq, 2.0)]);
        assert_eq!(lowered.window.unwrap().ms, 7 * 86_400_000);
        let plain = lower("from logs-aws.cloudtrail* | stats c = count(*) by a").unwrap();
        assert_eq!(plain.stats.unwrap().condition, vec![(CmpOp::Gte, 1.0)]);
    }

    #[test]
    fn unsupported_constructs_are_named() {
        assert!(unsupported("from .alerts-security.* | where a == 1").contains("source"));
        assert!(
            unsupported("from logs-aws.cloudtrail-* | stats c = count(*) by a | where c < 2")
                .contains("fewer than")
        );
        assert!(
            unsupported("from logs-aws.cloudtrail-* | dissect p \"%{+y}x\" | where y == \"1\"")
                .contains("modifier")
        );
        assert!(
            unsupported("from logs-aws.cloudtrail-* | grok p \"%{IPV4:ip}\"").contains("'IPV4'")
        );
        assert!(unsupported(
            "from logs-aws.cloudtrail-* | stats c = count(*) by b = date_trunc(1 month, @timestamp)"
        )
        .contains("calendar unit"));
        assert!(
            unsupported("from logs-aws.cloudtrail-* | eval d = date_format(\"MMM\", @timestamp)")
                .contains("'MMM'")
        );
        assert!(
            unsupported("from logs-aws.cloudtrail-* | eval d = date_format(@timestamp)")
                .contains("without a pattern")
        );
        assert!(lower("from logs-aws.cloudtrail-* | eval d = date_format(\"YYYY-mm-dd\", @timestamp) | stats c = count(*) by d").is_ok());
        assert!(
            unsupported("from logs-aws.cloudtrail-* | stats s = sum(x) by a | where s > 1")
                .contains("SUM")
        );
        assert!(unsupported(
            "from logs-aws.cloudtrail-* | stats c = count(*), d = count_distinct(x) by a | where c > 2 and d > 1"
        )
        .contains("several aggregate conditions"));
        // An unused DISSECT is fine.
        assert!(lower("from logs-aws.cloudtrail-* | dissect p \"%{}x=%{y},\" | keep p").is_ok());
        assert!(
            !lower("from logs-aws.cloudtrail-* | where a = 1")
                .unwrap_err()
                .unsupported
        );
    }

    #[test]
    fn number_before_keyword_is_not_a_span() {
        let expr =
            filter("from logs-aws.cloudtrail-* | eval m = to_integer(n) | where m > 6.5 or m < 0");
        assert!(matches(&expr, &Event::new(&json!({"n": "7"}))));
        assert!(!matches(&expr, &Event::new(&json!({"n": "6"}))));
        assert!(
            lower("from logs-aws.cloudtrail-* | eval m = n | where m > 1 hours")
                .unwrap_err()
                .unsupported
        );
    }

    #[test]
    fn computed_columns_in_where() {
        let event = json!({"a": "Hello", "p": "{k=v1, j=v2}", "n": "7"});
        let check_query = |query: &str| {
            let expr = filter(&format!("from logs-aws.cloudtrail-* {query}"));
            matches(&expr, &Event::new(&event))
        };
        assert!(check_query(
            "| eval x = to_lower(a), y = concat(x, \"!\") | where y == \"hello!\""
        ));
        // A later EVAL (or DISSECT) of the same name replaces the column.
        assert!(check_query(
            "| eval x = a | eval x = length(x) | where x == 5"
        ));
        assert!(check_query(
            "| dissect p \"{%{?key}=%{first}, %{?key2}=%{second}}\" | where second == \"v2\" and first != second"
        ));
        assert!(check_query(
            "| grok p \"j=(?<Esql.j>[a-z0-9]+)\" | where Esql.j like \"v*\""
        ));
        assert!(check_query("| rename a as b | where b == \"Hello\""));
        assert!(check_query(
            "| where true in (starts_with(a, \"x\"), ends_with(a, \"lo\"))"
        ));
        assert!(check_query(
            "| eval m = to_integer(n) * 2 - 1 | where m == 13 and -m < 0"
        ));
        assert!(!check_query(
            "| eval m = to_integer(missing) | where m is not null"
        ));
        assert!(!check_query(
            "| where true in (starts_with(missing, \"x\"))"
        ));
        // `=` in a condition is a syntax error in ES|QL (it is only assignment).
        let err = lower("from logs-aws.cloudtrail-* | eval x = a | where x = 1").unwrap_err();
        assert!(!err.unsupported, "{err:?}");
        let err = lower("from logs-aws.cloudtrail-* | where a =~ \"x\"").unwrap_err();
        assert!(err.unsupported && err.message.contains("=~"), "{err:?}");
    }

    #[test]
    fn sum_of_an_expression_is_a_value_sum_over_a_computed_column() {
        let lowered = lower(
            "from logs-aws.cloudtrail-* | dissect p \"%{}n=%{n},\" \
             | stats total = sum(to_integer(n) + 1), tries = count(*) by user.name \
             | where total >= 10",
        )
        .unwrap();
        let stats = lowered.stats.unwrap();
        assert_eq!(stats.sum_of.as_deref(), Some("to_integer(n)+1"));
        assert!(
            stats
                .computed
                .iter()
                .any(|(name, _)| name == "to_integer(n)+1")
        );
        assert_eq!(stats.condition, vec![(CmpOp::Gte, 10.0)]);
        assert_eq!(stats.distinct_of, None);
        // A SUM that no condition reads is an output column: the count decides.
        let lowered = lower(
            "from logs-aws.cloudtrail-* | stats total = sum(to_integer(n)), c = count(*) by a \
             | where c >= 2",
        )
        .unwrap();
        assert_eq!(lowered.stats.unwrap().sum_of, None);
        // SUM of a bare field (perhaps multivalued) is not supported.
        assert!(unsupported("from logs-aws.cloudtrail-* | stats s = sum(x) by a").contains("SUM"));
    }

    #[test]
    fn stats_over_computed_columns() {
        let lowered = lower(
            "from logs-aws.cloudtrail-* | eval w = date_trunc(10 seconds, @timestamp) \
             | dissect p \"{k=%{v}}\" \
             | stats c = count_distinct(v), x = max(length(v)) by w, user.name, z = to_lower(q) \
             | where c >= 3",
        )
        .unwrap();
        let stats = lowered.stats.unwrap();
        assert_eq!(stats.by, vec!["w", "user.name", "z"]);
        let names: Vec<&str> = stats
            .computed
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, vec!["w", "z", "v"]);
        assert_eq!(stats.distinct_of.as_deref(), Some("v"));
        // count(column) counts rows where the column is not null: a filter.
        let counted = lower(
            "from logs-aws.cloudtrail-* | dissect p \"{k=%{v}}\" | stats c = count(v) by a | where c > 1",
        )
        .unwrap();
        let event = json!({"p": "{k=1}"});
        assert!(matches(&counted.filter, &Event::new(&event)));
        let event = json!({"p": "{j=1}"});
        assert!(!matches(&counted.filter, &Event::new(&event)));
    }

    #[test]
    fn implied_row_count_condition() {
        let query = |cond: &str| {
            lower(&format!(
                "from logs-aws.cloudtrail-* | stats d = count_distinct(r), n = count(*) by a | where {cond}"
            ))
        };
        let lowered = query("d >= 10 and n >= 10").unwrap();
        let stats = lowered.stats.unwrap();
        assert_eq!(stats.distinct_of.as_deref(), Some("r"));
        assert_eq!(stats.condition, vec![(CmpOp::Gte, 10.0)]);
        assert!(query("n > 9 and d > 9").is_ok());
        // 11 rows are not implied by 10 distinct values.
        assert!(query("d >= 10 and n >= 11").unwrap_err().unsupported);
        assert!(query("d >= 10 and n == 10").unwrap_err().unsupported);
    }

    #[test]
    fn dissect_and_grok_patterns() {
        let pattern = parse_dissect("%{{?a}=%{b}, %{?c}=%{d}}").unwrap();
        assert_eq!(pattern.leading, "");
        let names: Vec<Option<&str>> = pattern.keys.iter().map(|k| k.name.as_deref()).collect();
        assert_eq!(names, vec![Some("{?a"), Some("b"), None, Some("d")]);
        assert_eq!(pattern.keys[3].delimiter, "}");
        assert!(
            parse_dissect("%{a}%{b}")
                .unwrap_err()
                .contains("no delimiter")
        );
        assert!(
            parse_dissect("%{a->} %{b}")
                .unwrap_err()
                .contains("modifier")
        );
        let (regex, columns) = grok_regex("id=%{NOTSPACE:x.y}, (?<z>[0-9]+)").unwrap();
        assert_eq!(
            columns,
            vec![
                ("c0".to_string(), "x.y".to_string()),
                ("c1".to_string(), "z".to_string())
            ]
        );
        let caps = regex.captures("pre id=abc, 42").unwrap();
        assert_eq!(&caps["c0"], "abc");
        assert_eq!(&caps["c1"], "42");
        assert!(grok_regex("%{IP:ip}").unwrap_err().contains("'IP'"));
        assert!(
            grok_regex("%{INT:n:int}")
                .unwrap_err()
                .contains("type conversion")
        );
        assert!(
            grok_regex("(?<=a)(?<b>x)")
                .unwrap_err()
                .contains("look-behind")
        );
    }
}
