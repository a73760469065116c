//! EQL (Elasticsearch Event Query Language) parsed and lowered into the IR.
//!
//! Semantics follow the Elasticsearch EQL reference (elastic.co/guide/en/elasticsearch/
//! reference/current/eql-syntax.html and eql-function-ref.html):
//! - `<category> where cond` tests the event category field (`event.category`, or the rule's
//!   `event_category_override`) for equality with `<category>`; `any where` does not.
//! - `==` and `!=` compare exactly and case-sensitively; `:` compares case-insensitively and
//!   accepts `*`/`?` wildcards, also against a list; `like` / `like~` are wildcard matches
//!   (case-sensitive / insensitive) and accept lists; `regex` / `regex~` match the whole value
//!   against a Lucene regular expression; `in` / `in~` / `not in` are list membership.
//! - Functions are case-sensitive, the `~` variant insensitive: `stringContains`, `startsWith`,
//!   `endsWith`, `wildcard`. `stringContains(a, b)` with a field `b` compares two fields.
//! - A comparison with a missing field is false and `not` makes it true, as the query DSL the
//!   rules are translated to does (`must_not`).
//! - `sequence [by k] [with maxspan=T] [stage] [by k'] ... [until [q]]`: lowered to the
//!   correlation engine's sequence kind (one pending sequence per stage and join key).
//!
//! Unsupported (reported with the construct): `length` and other functions not listed, field
//! arithmetic, `with runs=N`, missing-event stages `![...]`, pipes (`| head`), samples, and
//! Lucene regex operators that have no equal in Rust's regex (`@ # < > & ~`, `"..."`).

use crate::ir::{CmpOp, Expr, FieldPath, Predicate, Regex, StrKind, StrMatch};

use super::{Lookback, LowerError, Nesting, Pattern, ecs_field, parse_duration, pattern_expr};

/// A lowered EQL query.
#[derive(Debug)]
pub enum Lowered {
    Event(Expr),
    Sequence(Sequence),
}

#[derive(Debug)]
pub struct Sequence {
    /// Join keys (the sequence-level `by` followed by each stage's own, which must agree in
    /// number; vigil supports the same fields in every stage).
    pub by: Vec<String>,
    pub maxspan: Lookback,
    pub stages: Vec<Expr>,
    pub until: Option<Expr>,
}

pub fn lower(query: &str, category_field: &str) -> Result<Lowered, LowerError> {
    let tokens = tokenize(query)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        category_field,
        end: query.len(),
        depth: 0,
    };
    let lowered = if parser.peek_word("sequence") {
        Lowered::Sequence(parser.sequence()?)
    } else {
        Lowered::Event(parser.event_query()?)
    };
    if let Some(token) = parser.tokens.get(parser.pos) {
        if token.kind == Kind::Punct && token.text == "|" {
            return Err(LowerError::unsupported(
                token.offset,
                "EQL pipes (| head, | tail, ...)",
            ));
        }
        return Err(LowerError::syntax(
            token.offset,
            format!("unexpected '{}'", token.text),
        ));
    }
    Ok(lowered)
}

#[derive(Clone, Debug, PartialEq)]
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
        if query[pos..].starts_with("/*") {
            pos = match query[pos + 2..].find("*/") {
                Some(end) => pos + 2 + end + 2,
                None => return Err(LowerError::syntax(pos, "unterminated comment")),
            };
            continue;
        }
        if query[pos..].starts_with("//") {
            pos = query[pos..].find('\n').map_or(query.len(), |end| pos + end);
            continue;
        }
        let start = pos;
        if query[pos..].starts_with("\"\"\"") {
            let end = query[pos + 3..]
                .find("\"\"\"")
                .ok_or_else(|| LowerError::syntax(pos, "unterminated string"))?;
            tokens.push(Token {
                kind: Kind::Str,
                text: query[pos + 3..pos + 3 + end].to_string(),
                offset: start,
            });
            pos += 3 + end + 3;
            continue;
        }
        if c == b'?' && query[pos + 1..].starts_with('"') {
            // Raw string `?"..."`: no escapes.
            let end = query[pos + 2..]
                .find('"')
                .ok_or_else(|| LowerError::syntax(pos, "unterminated string"))?;
            tokens.push(Token {
                kind: Kind::Str,
                text: query[pos + 2..pos + 2 + end].to_string(),
                offset: start,
            });
            pos += 2 + end + 1;
            continue;
        }
        if c == b'"' || c == b'\'' {
            let quote = c as char;
            let mut text = String::new();
            let mut chars = query[pos + 1..].char_indices();
            let mut closed = None;
            while let Some((idx, ch)) = chars.next() {
                match ch {
                    ch if ch == quote => {
                        closed = Some(idx);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => text.push('\n'),
                        Some((_, 't')) => text.push('\t'),
                        Some((_, 'r')) => text.push('\r'),
                        Some((_, '"')) => text.push('"'),
                        Some((_, '\'')) => text.push('\''),
                        Some((_, '\\')) => text.push('\\'),
                        Some((_, other)) => {
                            return Err(LowerError::syntax(
                                pos + 1 + idx,
                                format!("unknown escape '\\{other}'"),
                            ));
                        }
                        None => break,
                    },
                    ch => text.push(ch),
                }
            }
            let Some(end) = closed else {
                return Err(LowerError::syntax(pos, "unterminated string"));
            };
            tokens.push(Token {
                kind: Kind::Str,
                text,
                offset: start,
            });
            pos += 1 + end + 1;
            continue;
        }
        if c.is_ascii_digit() || (c == b'-' && bytes.get(pos + 1).is_some_and(u8::is_ascii_digit)) {
            pos += 1;
            while pos < bytes.len() && (bytes[pos].is_ascii_alphanumeric() || bytes[pos] == b'.') {
                pos += 1;
            }
            tokens.push(Token {
                kind: Kind::Number,
                text: query[start..pos].to_string(),
                offset: start,
            });
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'@' || c == b'`' {
            if c == b'`' {
                let end = query[pos + 1..]
                    .find('`')
                    .ok_or_else(|| LowerError::syntax(pos, "unterminated `field`"))?;
                tokens.push(Token {
                    kind: Kind::Word,
                    text: query[pos + 1..pos + 1 + end].to_string(),
                    offset: start,
                });
                pos += end + 2;
                continue;
            }
            while pos < bytes.len()
                && (bytes[pos].is_ascii_alphanumeric() || b"_.@-".contains(&bytes[pos]))
            {
                pos += 1;
            }
            // `like~`, `in~`, `regex~`, `stringContains~`.
            if pos < bytes.len() && bytes[pos] == b'~' {
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
        if !"==!=<=>=:()[],|<>+-*/%!".contains(text.as_str()) {
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

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    category_field: &'a str,
    end: usize,
    /// Nesting of the recursive rules being parsed, bounded by [`super::MAX_QUERY_DEPTH`].
    depth: usize,
}

/// The right-hand side of a comparison.
enum Operand {
    Field(String),
    Str(String),
    Number(String),
    Bool(bool),
    Null,
}

impl Nesting for Parser<'_> {
    fn depth(&mut self) -> &mut usize {
        &mut self.depth
    }

    fn position(&self) -> usize {
        self.offset()
    }
}

impl Parser<'_> {
    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |t| t.offset)
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_word(&self, word: &str) -> bool {
        self.peek()
            .is_some_and(|t| t.kind == Kind::Word && t.text.eq_ignore_ascii_case(word))
    }

    fn peek_punct(&self, punct: &str) -> bool {
        self.peek()
            .is_some_and(|t| t.kind == Kind::Punct && t.text == punct)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.peek_word(word);
        if found {
            self.pos += 1;
        }
        found
    }

    fn eat_punct(&mut self, punct: &str) -> bool {
        let found = self.peek_punct(punct);
        if found {
            self.pos += 1;
        }
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
            .ok_or_else(|| LowerError::syntax(self.end, "unexpected end of query"))?;
        self.pos += 1;
        Ok(token)
    }

    fn sequence(&mut self) -> Result<Sequence, LowerError> {
        self.eat_word("sequence");
        let mut by = Vec::new();
        if self.eat_word("by") {
            by = self.field_list()?;
        }
        let mut maxspan = None;
        if self.eat_word("with") {
            let at = self.offset();
            if !self.eat_word("maxspan") {
                return Err(LowerError::unsupported(
                    at,
                    "EQL sequence 'with' other than maxspan",
                ));
            }
            if !self.eat_punct("=") {
                return Err(LowerError::syntax(
                    self.offset(),
                    "expected '=' after maxspan",
                ));
            }
            let token = self.next()?;
            maxspan = Some(
                parse_duration(&token.text)
                    .ok_or_else(|| LowerError::syntax(token.offset, "bad maxspan duration"))?,
            );
        }
        let maxspan = maxspan.ok_or_else(|| {
            LowerError::unsupported(
                self.offset(),
                "EQL sequence without maxspan (unbounded state)",
            )
        })?;
        let mut stages = Vec::new();
        let mut stage_by: Option<Vec<String>> = None;
        while self.peek_punct("[") || self.peek_punct("!") {
            if self.peek_punct("!") {
                return Err(LowerError::unsupported(
                    self.offset(),
                    "EQL missing-event stage ![...]",
                ));
            }
            self.expect_punct("[")?;
            stages.push(self.event_query()?);
            self.expect_punct("]")?;
            if self.peek_word("with") {
                return Err(LowerError::unsupported(
                    self.offset(),
                    "EQL 'with runs' stage",
                ));
            }
            if self.eat_word("by") {
                let at = self.offset();
                let fields = self.field_list()?;
                match &stage_by {
                    Some(previous) if *previous != fields => {
                        return Err(LowerError::unsupported(
                            at,
                            "EQL sequence stages joined by different fields",
                        ));
                    }
                    _ => stage_by = Some(fields),
                }
            }
        }
        if stages.len() < 2 {
            return Err(LowerError::syntax(
                self.offset(),
                "a sequence needs two stages",
            ));
        }
        by.extend(stage_by.unwrap_or_default());
        let mut until = None;
        if self.eat_word("until") {
            self.expect_punct("[")?;
            until = Some(self.event_query()?);
            self.expect_punct("]")?;
        }
        Ok(Sequence {
            by,
            maxspan,
            stages,
            until,
        })
    }

    fn field_list(&mut self) -> Result<Vec<String>, LowerError> {
        let mut fields = vec![self.field_name()?];
        while self.eat_punct(",") {
            fields.push(self.field_name()?);
        }
        Ok(fields)
    }

    fn field_name(&mut self) -> Result<String, LowerError> {
        let token = self.next()?;
        if token.kind != Kind::Word {
            return Err(LowerError::syntax(token.offset, "expected a field name"));
        }
        Ok(token.text)
    }

    fn event_query(&mut self) -> Result<Expr, LowerError> {
        let token = self.next()?;
        if token.kind != Kind::Word && token.kind != Kind::Str {
            return Err(LowerError::syntax(
                token.offset,
                "expected an event category",
            ));
        }
        if !self.eat_word("where") {
            return Err(LowerError::syntax(self.offset(), "expected 'where'"));
        }
        let condition = self.or_expr()?;
        if token.text == "any" {
            return Ok(condition);
        }
        let category = Expr::Field {
            path: ecs_field(self.category_field),
            pred: Predicate::Str(StrMatch::new(StrKind::Exact, &token.text, true)),
        };
        Ok(Expr::and(vec![category, condition]))
    }

    fn or_expr(&mut self) -> Result<Expr, LowerError> {
        self.nested(Self::or_expr_inner)
    }

    fn or_expr_inner(&mut self) -> Result<Expr, LowerError> {
        let mut items = vec![self.and_expr()?];
        while self.eat_word("or") {
            items.push(self.and_expr()?);
        }
        Ok(Expr::or(items))
    }

    fn and_expr(&mut self) -> Result<Expr, LowerError> {
        let mut items = vec![self.not_expr()?];
        while self.eat_word("and") {
            items.push(self.not_expr()?);
        }
        Ok(Expr::and(items))
    }

    fn not_expr(&mut self) -> Result<Expr, LowerError> {
        if self.eat_word("not") {
            return Ok(Expr::not(self.nested(Self::not_expr)?));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, LowerError> {
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
                "EQL comparison with a literal on the left",
            ));
        }
        if self.peek_punct("(") {
            return self.function(&token);
        }
        if token.text == "true" || token.text == "false" {
            return Err(LowerError::unsupported(
                at,
                "EQL boolean literal as a condition",
            ));
        }
        let field = token.text;
        let op_at = self.offset();
        let op = self.next()?;
        let op_text = op.text.to_ascii_lowercase();
        if op.kind == Kind::Punct && ["+", "-", "*", "/", "%"].contains(&op_text.as_str()) {
            return Err(LowerError::unsupported(op_at, "EQL arithmetic"));
        }
        match op_text.as_str() {
            "==" | "!=" => {
                let operand = self.operand()?;
                let expr = match operand {
                    Operand::Null => Expr::Field {
                        path: ecs_field(&field),
                        pred: Predicate::Null,
                    },
                    Operand::Field(other) => Expr::Field {
                        path: ecs_field(&field),
                        pred: Predicate::FieldRef {
                            other: FieldPath::ecs(&other),
                            kind: StrKind::Exact,
                            cased: true,
                        },
                    },
                    Operand::Str(text) | Operand::Number(text) => {
                        pattern_expr(&field, &Pattern::literal(&text), true)
                    }
                    Operand::Bool(flag) => pattern_expr(
                        &field,
                        &Pattern::literal(if flag { "true" } else { "false" }),
                        true,
                    ),
                };
                Ok(if op_text == "!=" {
                    Expr::not(expr)
                } else {
                    expr
                })
            }
            "<" | "<=" | ">" | ">=" => {
                let operand_at = self.offset();
                let Operand::Number(text) = self.operand()? else {
                    return Err(LowerError::unsupported(
                        operand_at,
                        "EQL ordering on a non-number",
                    ));
                };
                let value: f64 = text
                    .parse()
                    .map_err(|_| LowerError::syntax(operand_at, "bad number"))?;
                let op = match op_text.as_str() {
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Lte,
                    ">" => CmpOp::Gt,
                    _ => CmpOp::Gte,
                };
                Ok(Expr::Field {
                    path: ecs_field(&field),
                    pred: Predicate::Num { op, value },
                })
            }
            ":" => {
                let values = self.values()?;
                Ok(Expr::or(
                    values
                        .iter()
                        .map(|v| pattern_expr(&field, &Pattern::wildcard_eql(v), false))
                        .collect(),
                ))
            }
            "like" | "like~" => {
                let cased = op_text == "like";
                let values = self.values()?;
                Ok(Expr::or(
                    values
                        .iter()
                        .map(|v| pattern_expr(&field, &Pattern::wildcard_eql(v), cased))
                        .collect(),
                ))
            }
            "regex" | "regex~" => {
                let cased = op_text == "regex";
                let values = self.values()?;
                let mut items = Vec::new();
                for value in values {
                    let regex = lucene_regex(&value, cased)
                        .map_err(|message| LowerError::unsupported(op_at, message))?;
                    items.push(Expr::Field {
                        path: ecs_field(&field),
                        pred: Predicate::Regex(regex),
                    });
                }
                Ok(Expr::or(items))
            }
            "in" | "in~" => {
                let cased = op_text == "in";
                let values = self.values()?;
                Ok(Expr::or(
                    values
                        .iter()
                        .map(|v| pattern_expr(&field, &Pattern::literal(v), cased))
                        .collect(),
                ))
            }
            "not" => {
                let at = self.offset();
                let next = self.next()?;
                let cased = match next.text.to_ascii_lowercase().as_str() {
                    "in" => true,
                    "in~" => false,
                    _ => return Err(LowerError::syntax(at, "expected 'in' after 'not'")),
                };
                let values = self.values()?;
                Ok(Expr::not(Expr::or(
                    values
                        .iter()
                        .map(|v| pattern_expr(&field, &Pattern::literal(v), cased))
                        .collect(),
                )))
            }
            _ => Err(LowerError::syntax(
                op_at,
                format!("unexpected '{}'", op.text),
            )),
        }
    }

    /// One string, or a parenthesised list of strings (numbers taken as their text).
    fn values(&mut self) -> Result<Vec<String>, LowerError> {
        let mut out = Vec::new();
        if self.eat_punct("(") {
            loop {
                out.push(self.literal_text()?);
                if self.eat_punct(")") {
                    break;
                }
                self.expect_punct(",")?;
            }
        } else {
            out.push(self.literal_text()?);
        }
        Ok(out)
    }

    fn literal_text(&mut self) -> Result<String, LowerError> {
        let at = self.offset();
        match self.operand()? {
            Operand::Str(text) | Operand::Number(text) => Ok(text),
            Operand::Bool(flag) => Ok(flag.to_string()),
            Operand::Field(_) => Err(LowerError::unsupported(at, "EQL field in a value list")),
            Operand::Null => Err(LowerError::unsupported(at, "EQL null in a value list")),
        }
    }

    fn operand(&mut self) -> Result<Operand, LowerError> {
        let token = self.next()?;
        Ok(match token.kind {
            Kind::Str => Operand::Str(token.text),
            Kind::Number => Operand::Number(token.text),
            Kind::Word => match token.text.as_str() {
                "true" => Operand::Bool(true),
                "false" => Operand::Bool(false),
                "null" => Operand::Null,
                _ => {
                    if self.peek_punct("(") {
                        return Err(LowerError::unsupported(
                            token.offset,
                            format!("EQL function '{}' as a value", token.text),
                        ));
                    }
                    Operand::Field(token.text)
                }
            },
            Kind::Punct => {
                return Err(LowerError::syntax(
                    token.offset,
                    format!("unexpected '{}'", token.text),
                ));
            }
        })
    }

    fn function(&mut self, name: &Token) -> Result<Expr, LowerError> {
        let (base, cased) = match name.text.strip_suffix('~') {
            Some(base) => (base, false),
            None => (name.text.as_str(), true),
        };
        let kind = match base.to_ascii_lowercase().as_str() {
            "stringcontains" => Some(StrKind::Contains),
            "startswith" => Some(StrKind::Prefix),
            "endswith" => Some(StrKind::Suffix),
            "wildcard" => None,
            _ => {
                return Err(LowerError::unsupported(
                    name.offset,
                    format!("EQL function '{}'", name.text),
                ));
            }
        };
        self.expect_punct("(")?;
        let field_at = self.offset();
        let Operand::Field(field) = self.operand()? else {
            return Err(LowerError::unsupported(
                field_at,
                "EQL function on a literal",
            ));
        };
        let mut args = Vec::new();
        while self.eat_punct(",") {
            args.push(self.operand()?);
        }
        self.expect_punct(")")?;
        if args.is_empty() {
            return Err(LowerError::syntax(name.offset, "missing function argument"));
        }
        let mut items = Vec::new();
        for arg in args {
            let expr = match (kind, arg) {
                (Some(kind), Operand::Field(other)) => Expr::Field {
                    path: ecs_field(&field),
                    pred: Predicate::FieldRef {
                        other: FieldPath::ecs(&other),
                        kind,
                        cased,
                    },
                },
                (Some(kind), Operand::Str(text) | Operand::Number(text)) => Expr::Field {
                    path: ecs_field(&field),
                    pred: Predicate::Str(StrMatch::new(kind, &text, cased)),
                },
                (None, Operand::Str(text)) => {
                    pattern_expr(&field, &Pattern::wildcard_eql(&text), cased)
                }
                _ => {
                    return Err(LowerError::unsupported(
                        name.offset,
                        format!("EQL function '{}' with this argument", name.text),
                    ));
                }
            };
            items.push(expr);
        }
        // Several needles: true when any of them matches.
        Ok(Expr::or(items))
    }
}

impl Pattern {
    /// An EQL wildcard value: `*` and `?` are wildcards; there is no escape inside the value
    /// (the string's own escapes were resolved by the tokenizer).
    pub fn wildcard_eql(text: &str) -> Pattern {
        let mut pattern = Pattern::default();
        for c in text.chars() {
            match c {
                '*' => pattern.push_star(),
                '?' => pattern.push_one(),
                c => pattern.push_literal(c),
            }
        }
        pattern
    }
}

/// A Lucene regular expression (the syntax of Elasticsearch `regexp` queries, which match the
/// whole value) as an anchored Rust regex. Operators Rust lacks are refused.
pub fn lucene_regex(pattern: &str, cased: bool) -> Result<Regex, String> {
    let mut out = String::from(if cased { "(?s)^(?:" } else { "(?si)^(?:" });
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                // In Lucene `\x` is always the literal `x` (no `\d`, `\w` classes).
                Some(escaped) => out.push_str(&regex::escape(&escaped.to_string())),
                None => return Err("Lucene regex ending in '\\'".into()),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '@' | '#' | '<' | '>' | '&' | '~' | '"' if !in_class => {
                return Err(format!("Lucene regex operator '{c}'"));
            }
            '^' | '$' if !in_class => {
                return Err(format!(
                    "Lucene regex character '{c}' (not an anchor in Lucene)"
                ));
            }
            c => out.push(c),
        }
    }
    out.push_str(")$");
    Regex::new(&out).map_err(|err| format!("regex does not compile: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::matcher::matches;
    use crate::event::Event;
    use serde_json::{Value, json};

    fn check(query: &str, event: Value) -> bool {
        match lower(query, "event.category").unwrap_or_else(|err| panic!("{query}: {err:?}")) {
            Lowered::Event(expr) => matches(&expr, &Event::new(&event)),
            Lowered::Sequence(_) => panic!("sequence"),
        }
    }

    fn unsupported(query: &str) -> bool {
        matches!(
            lower(query, "event.category"),
            Err(LowerError {
                unsupported: true,
                ..
            })
        )
    }

    #[test]
    fn equality_is_case_sensitive_colon_is_not() {
        let event = json!({"event": {"action": "CreateUser"}});
        assert!(check(
            "any where event.action == \"CreateUser\"",
            event.clone()
        ));
        assert!(!check(
            "any where event.action == \"createuser\"",
            event.clone()
        ));
        assert!(check(
            "any where event.action : \"createuser\"",
            event.clone()
        ));
        assert!(check("any where event.action : \"create*\"", event.clone()));
        assert!(check(
            "any where event.action : (\"x\", \"CREATE?SER\")",
            event.clone()
        ));
        assert!(check("any where event.action != \"X\"", event.clone()));
        assert!(check("any where missing != \"X\"", event));
    }

    #[test]
    fn like_regex_in() {
        let event = json!({"k": "AKIAXYZ", "a": "arn:aws:s3:::bucket/HOW_TO_decrypt.txt"});
        assert!(check("any where k like \"AKIA*\"", event.clone()));
        assert!(!check("any where k like \"akia*\"", event.clone()));
        assert!(check("any where k like~ \"akia*\"", event.clone()));
        assert!(check("any where k in (\"A\", \"AKIAXYZ\")", event.clone()));
        assert!(!check("any where k in (\"akiaxyz\")", event.clone()));
        assert!(check("any where k in~ (\"akiaxyz\")", event.clone()));
        assert!(check("any where k not in (\"A\")", event.clone()));
        assert!(check(
            "any where a regex~ \"arn:aws:s3:::[^/]+/.*?(how|decrypt).*\"",
            event.clone()
        ));
        assert!(!check(
            "any where a regex \"arn:aws:s3:::[^/]+/.*?(how).*\"",
            event.clone()
        ));
        // Regex matches the whole value.
        assert!(!check("any where a regex \"bucket\"", event));
        assert!(unsupported("any where a regex \"a@b\""));
    }

    #[test]
    fn functions() {
        let event = json!({"p": "{Effect=Allow, Account=1}", "id": "AROA:i-1", "acct": "1"});
        assert!(check(
            "any where stringContains(p, \"Effect=Allow\")",
            event.clone()
        ));
        assert!(!check(
            "any where stringContains(p, \"effect=allow\")",
            event.clone()
        ));
        assert!(check(
            "any where stringContains~(p, \"effect=allow\")",
            event.clone()
        ));
        assert!(check(
            "any where stringContains (id, \":i-\")",
            event.clone()
        ));
        assert!(check("any where startsWith(id, \"AROA\")", event.clone()));
        assert!(check("any where endsWith(id, \"i-1\")", event.clone()));
        assert!(check("any where wildcard(p, \"*Allow*\")", event.clone()));
        // Field argument: compare two fields.
        assert!(check("any where stringContains(p, acct)", event.clone()));
        assert!(unsupported("any where length(p) > 3"));
    }

    #[test]
    fn categories_and_structure() {
        let event = json!({"event": {"category": ["iam"], "type": ["info"]}, "a": 1});
        assert!(check("iam where a == 1", event.clone()));
        assert!(!check("file where a == 1", event.clone()));
        let Lowered::Event(expr) = lower("info where a == 1", "event.type").unwrap() else {
            panic!()
        };
        assert!(matches(&expr, &Event::new(&event)));
        assert!(check(
            "any where (a == 2 or a == 1) and not a == 3",
            event.clone()
        ));
        assert!(check("any where a >= 1 and a < 2 /* comment */", event));
    }

    #[test]
    fn sequences() {
        let query = "sequence by k with maxspan=15m [any where a == 1] [any where a == 2] until [any where a == 3]";
        match lower(query, "event.category").unwrap() {
            Lowered::Sequence(sequence) => {
                assert_eq!(sequence.by, vec!["k".to_string()]);
                assert_eq!(sequence.maxspan.ms, 15 * 60_000);
                assert_eq!(sequence.stages.len(), 2);
                assert!(sequence.until.is_some());
            }
            Lowered::Event(_) => panic!("not a sequence"),
        }
        assert!(unsupported(
            "sequence [any where a == 1] [any where a == 2]"
        ));
        assert!(unsupported(
            "sequence with maxspan=1m [any where a == 1] by x [any where a == 2] by y"
        ));
        assert!(unsupported("any where a == 1 | head 5"));
        let err = lower("any where a ==", "event.category").unwrap_err();
        assert!(!err.unsupported);
    }
}
