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
//! - `STATS agg, ... BY field, ...` then `WHERE <one aggregate> >= | > | == N`: a windowed
//!   correlation per `BY` group (`count(*)`: event count; `count(field)`: count of events
//!   with the field; `count_distinct(field)`: distinct values). `values`, `min`, `max` only add
//!   output columns and do not change when a group qualifies. Without a `WHERE`, every group
//!   qualifies (`>= 1`). The event that makes the condition true is flagged.
//! - `KEEP`, `DROP`, `SORT`, `LIMIT`: no effect on a stream.
//! - `EVAL`, `DISSECT`, `GROK`, `RENAME`: accepted while the columns they compute are not used
//!   afterwards; a later use is reported unsupported with the column named.
//!
//! String comparisons are case-sensitive; `LIKE` uses `*`/`?` wildcards on the whole value;
//! `RLIKE` matches the whole value against a Lucene-syntax regex. `TO_LOWER(f) == "x"` is a
//! case-insensitive comparison when `"x"` is lower case. Unsupported (reported): `LOOKUP`,
//! `ENRICH`, `MV_EXPAND`, `INLINESTATS`, `KQL()`, time bucketing (`DATE_TRUNC`) in `BY`,
//! "fewer than" conditions (`<`, `<=`, `!=` over an aggregate: a stream cannot know a window
//! closed), several aggregate conditions, and functions not listed here.

use std::collections::HashSet;

use crate::ir::{Cidr, CmpOp, Expr, FieldPath, Predicate, StrKind, StrMatch, fold_case};

use super::eql::lucene_regex;
use super::{Lookback, LowerError, Pattern, ecs_field, pattern_expr};

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
    /// `count_distinct(field)` when the condition counts distinct values; `None` for counts.
    pub distinct_of: Option<String>,
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
        computed: HashSet::new(),
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
            distinct_of: stats.distinct_of,
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
        let text = if ["==", "!=", "<=", ">="].contains(&two) {
            two.to_string()
        } else {
            (c as char).to_string()
        };
        if !"==!=<=>=()|,+-*/%<>=".contains(text.as_str()) {
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
    /// Aggregate names: (name, kind, field).
    aggregates: Vec<(String, Agg, Option<String>)>,
    distinct_of: Option<String>,
    condition: Vec<(CmpOp, f64)>,
    conditioned: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Agg {
    CountAll,
    Count,
    CountDistinct,
    /// `values`, `min`, `max`: output columns only.
    Column,
}

struct State {
    filters: Vec<Expr>,
    /// Columns computed by EVAL, DISSECT, GROK or RENAME.
    computed: HashSet<String>,
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
                let mut parser = ExprParser {
                    tokens: args,
                    pos: 0,
                    state: self,
                };
                let cond = parser.or_expr()?;
                if let Some(token) = parser.tokens.get(parser.pos) {
                    return Err(LowerError::syntax(
                        token.offset,
                        format!("unexpected '{}'", token.text),
                    ));
                }
                self.filters.push(cond.when_true);
                Ok(())
            }
            "eval" => {
                if self.stats.is_some() {
                    return Err(LowerError::unsupported(
                        head.offset,
                        "ES|QL EVAL after STATS",
                    ));
                }
                // `name = expr, name2 = expr2`: remember the names.
                let mut depth = 0;
                let mut expect_name = true;
                for (idx, token) in args.iter().enumerate() {
                    match token.text.as_str() {
                        "(" => depth += 1,
                        ")" => depth -= 1,
                        "," if depth == 0 => expect_name = true,
                        _ => {
                            if expect_name && depth == 0 && token.kind == Kind::Word {
                                if args.get(idx + 1).is_some_and(|t| t.text == "=") {
                                    self.computed.insert(token.text.clone());
                                }
                                expect_name = false;
                            }
                        }
                    }
                }
                Ok(())
            }
            "dissect" => {
                if let Some(pattern) = args.iter().find(|t| t.kind == Kind::Str) {
                    let mut rest = pattern.text.as_str();
                    while let Some(open) = rest.find("%{") {
                        let after = &rest[open + 2..];
                        let Some(close) = after.find('}') else { break };
                        let key = after[..close].trim_start_matches(['?', '+', '*', '&']);
                        let key = key.split("->").next().unwrap_or(key);
                        if !key.is_empty() && !after[..close].starts_with('?') {
                            self.computed.insert(key.to_string());
                        }
                        rest = &after[close + 1..];
                    }
                }
                Ok(())
            }
            "grok" => {
                if let Some(pattern) = args.iter().find(|t| t.kind == Kind::Str) {
                    let text = &pattern.text;
                    let mut rest = text.as_str();
                    while let Some(open) = rest.find("(?<") {
                        let after = &rest[open + 3..];
                        let Some(close) = after.find('>') else { break };
                        self.computed.insert(after[..close].to_string());
                        rest = &after[close..];
                    }
                    let mut rest = text.as_str();
                    while let Some(open) = rest.find("%{") {
                        let after = &rest[open + 2..];
                        let Some(close) = after.find('}') else { break };
                        if let Some((_, name)) = after[..close].split_once(':') {
                            self.computed
                                .insert(name.split(':').next().unwrap_or(name).to_string());
                        }
                        rest = &after[close + 1..];
                    }
                }
                Ok(())
            }
            "rename" => {
                // `old AS new`: the new name is a computed column.
                for window in args.windows(3) {
                    if window[1].text.eq_ignore_ascii_case("as") {
                        self.computed.insert(window[2].text.clone());
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

    fn check_column(&self, token: &Token) -> Result<(), LowerError> {
        if self.computed.contains(&token.text) {
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
                        "ES|QL aggregate over an expression",
                    ));
                }
            };
            let field = match inner {
                [single] if single.text == "*" => None,
                [single] if single.kind == Kind::Word => {
                    self.check_column(single)?;
                    Some(single.text.clone())
                }
                _ => {
                    return Err(LowerError::unsupported(
                        func.offset,
                        format!("ES|QL aggregate {}() over an expression", func.text),
                    ));
                }
            };
            let agg = match (lower_name.as_str(), &field) {
                ("count", None) => Agg::CountAll,
                ("count", Some(_)) => Agg::Count,
                ("count_distinct", Some(_)) => Agg::CountDistinct,
                ("values" | "min" | "max", Some(_)) => Agg::Column,
                _ => {
                    return Err(LowerError::unsupported(
                        func.offset,
                        format!("ES|QL aggregate '{}'", func.text),
                    ));
                }
            };
            aggregates.push((name, agg, field));
        }
        let mut by_fields = Vec::new();
        for item in split_commas(by) {
            match item {
                [field] if field.kind == Kind::Word => {
                    self.check_column(field)?;
                    by_fields.push(field.text.clone());
                }
                [first, ..] => {
                    return Err(LowerError::unsupported(
                        first.offset,
                        "ES|QL STATS BY an expression (time buckets such as DATE_TRUNC)",
                    ));
                }
                [] => return Err(LowerError::syntax(head.offset, "empty BY item")),
            }
        }
        self.stats = Some(StatsState {
            by: by_fields,
            aggregates,
            distinct_of: None,
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
                // count(field) counts only events where the field has a value.
                if let Some(field) = field {
                    self.filters.push(not_null(field));
                }
            }
            Agg::CountDistinct => stats.distinct_of = field.clone(),
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
            let inner = self.not_expr()?;
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
            unsupported("from logs-aws.cloudtrail-* | dissect p \"%{}x=%{y},\" | where y == \"1\"")
                .contains("'y'")
        );
        assert!(unsupported(
            "from logs-aws.cloudtrail-* | stats c = count(*) by b = date_trunc(1 minute, @timestamp)"
        )
        .contains("BY an expression"));
        assert!(unsupported(
            "from logs-aws.cloudtrail-* | stats c = count(*), d = count_distinct(x) by a | where c > 1 and d > 1"
        )
        .contains("aggregates"));
        // An unused DISSECT is fine.
        assert!(lower("from logs-aws.cloudtrail-* | dissect p \"%{}x=%{y},\" | keep p").is_ok());
        assert!(
            !lower("from logs-aws.cloudtrail-* | where a = 1")
                .unwrap_err()
                .unsupported
        );
    }
}
