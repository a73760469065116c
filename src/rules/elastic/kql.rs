//! KQL (Kibana Query Language, `language = "kuery"`) parsed and lowered into the IR.
//!
//! Grammar, after Kibana's `kuery.peg` (src/platform/packages/shared/kbn-es-query/grammar):
//! `or` binds looser than `and`, `not` is a prefix, parentheses group; a clause is
//! `field: value`, `field: (v1 or v2 and not v3)`, `field < value` (also `<=`, `>`, `>=`),
//! `field: { nested query }`, or a bare value (a search of every field: unsupported here).
//! Keywords `or`, `and`, `not` are case-insensitive. An unquoted value runs until a special
//! character or a keyword surrounded by whitespace, so `*S3 Browser*` is one value; `*` and `?`
//! are wildcards in it and `\` escapes `\():<>"*{}` and whitespace. A quoted value has no
//! wildcards.
//!
//! Semantics on the ECS documents Elastic rules target (keyword fields): `field: value` is a
//! `term` query, exact and case-sensitive; a value with wildcards is a case-sensitive wildcard
//! query (Kibana's `caseInsensitive` KQL option is off by default); `field: *` is an `exists`
//! query (a non-null value); `not` is `must_not`, so it also matches documents without the
//! field. Numbers and booleans are compared as their text, which is what a term query on a
//! keyword or on a numeric field does with a whole number. A range on a non-numeric value
//! (dates, strings) is unsupported.

use crate::ir::{CmpOp, Expr, Predicate};

use super::{LowerError, Nesting, Pattern, ecs_field, pattern_expr};

/// Parses and lowers a KQL query.
pub fn lower(query: &str) -> Result<Expr, LowerError> {
    let mut parser = Parser {
        text: query,
        pos: 0,
        depth: 0,
    };
    let expr = parser.or_query(None)?;
    parser.skip_ws();
    if parser.pos < query.len() {
        return Err(parser.error("unexpected input"));
    }
    Ok(expr)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    /// Nesting of the recursive rules being parsed, bounded by [`super::MAX_QUERY_DEPTH`].
    depth: usize,
}

/// A value in a field's value list, before lowering.
enum ValueTree {
    Or(Vec<ValueTree>),
    And(Vec<ValueTree>),
    Not(Box<ValueTree>),
    Leaf(Pattern),
}

impl Nesting for Parser<'_> {
    fn depth(&mut self) -> &mut usize {
        &mut self.depth
    }

    fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Parser<'a> {
    fn error(&self, message: &str) -> LowerError {
        LowerError::syntax(self.pos, message)
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    /// Consumes keyword `word` (case-insensitive) when it is followed by whitespace or `(`.
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_ws();
        let rest = self.rest();
        if rest.len() >= word.len()
            && rest.is_char_boundary(word.len())
            && rest[..word.len()].eq_ignore_ascii_case(word)
        {
            let after = rest[word.len()..].chars().next();
            if after.is_none_or(|c| c.is_whitespace() || c == '(') {
                self.pos += word.len();
                return true;
            }
        }
        false
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// `or_query` over clauses; `field` is set inside `field: { ... }`.
    fn or_query(&mut self, field: Option<&str>) -> Result<Expr, LowerError> {
        self.nested(|parser| parser.or_query_inner(field))
    }

    fn or_query_inner(&mut self, field: Option<&str>) -> Result<Expr, LowerError> {
        let mut items = vec![self.and_query(field)?];
        while self.keyword("or") {
            items.push(self.and_query(field)?);
        }
        Ok(Expr::or(items))
    }

    fn and_query(&mut self, field: Option<&str>) -> Result<Expr, LowerError> {
        let mut items = vec![self.not_query(field)?];
        while self.keyword("and") {
            items.push(self.not_query(field)?);
        }
        Ok(Expr::and(items))
    }

    fn not_query(&mut self, field: Option<&str>) -> Result<Expr, LowerError> {
        if self.keyword("not") {
            return Ok(Expr::not(self.sub_query(field)?));
        }
        self.sub_query(field)
    }

    fn sub_query(&mut self, prefix: Option<&str>) -> Result<Expr, LowerError> {
        if self.eat('(') {
            let inner = self.or_query(prefix)?;
            if !self.eat(')') {
                return Err(self.error("expected ')'"));
            }
            return Ok(inner);
        }
        self.skip_ws();
        let start = self.pos;
        let name = self.field_name()?;
        let field = match prefix {
            Some(prefix) => format!("{prefix}.{name}"),
            None => name,
        };
        self.skip_ws();
        for (op_text, op) in [
            ("<=", CmpOp::Lte),
            (">=", CmpOp::Gte),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
        ] {
            if self.rest().starts_with(op_text) {
                self.pos += op_text.len();
                self.skip_ws();
                let at = self.pos;
                let value = self.value()?;
                let Some(number) = value
                    .literal_text()
                    .and_then(|text| text.parse::<f64>().ok())
                else {
                    return Err(LowerError::unsupported(
                        at,
                        "KQL range on a non-numeric value (dates and strings)",
                    ));
                };
                return Ok(Expr::Field {
                    path: ecs_field(&field),
                    pred: Predicate::Num { op, value: number },
                });
            }
        }
        if !self.eat(':') {
            self.pos = start;
            return Err(LowerError::unsupported(
                start,
                "KQL free-text search (a value without a field)",
            ));
        }
        if self.eat('{') {
            let at = self.pos;
            let inner = self.or_query(Some(&field))?;
            if !self.eat('}') {
                return Err(self.error("expected '}'"));
            }
            if count_leaves(&inner) > 1 {
                return Err(LowerError::unsupported(
                    at,
                    "KQL nested query with several conditions (same-object semantics)",
                ));
            }
            return Ok(inner);
        }
        let tree = self.value_expression()?;
        Ok(lower_tree(&field, tree))
    }

    fn field_name(&mut self) -> Result<String, LowerError> {
        self.skip_ws();
        let at = self.pos;
        if self.rest().starts_with('"') {
            return Err(LowerError::unsupported(
                at,
                "KQL free-text search (a quoted value without a field) or quoted field name",
            ));
        }
        let mut name = String::new();
        let mut chars = self.rest().char_indices();
        let mut end = self.rest().len();
        while let Some((idx, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, escaped)) => name.push(escaped),
                    None => return Err(self.error("dangling escape")),
                },
                c if c.is_whitespace() || "():<>\"{}".contains(c) => {
                    end = idx;
                    break;
                }
                '*' => {
                    return Err(LowerError::unsupported(
                        self.pos + idx,
                        "KQL wildcard in a field name",
                    ));
                }
                c => name.push(c),
            }
        }
        if name.is_empty() {
            return Err(self.error("expected a field name"));
        }
        self.pos += end;
        Ok(name)
    }

    /// `(a or b)` lists, or one value.
    fn value_expression(&mut self) -> Result<ValueTree, LowerError> {
        if self.eat('(') {
            let tree = self.value_or()?;
            if !self.eat(')') {
                return Err(self.error("expected ')'"));
            }
            return Ok(tree);
        }
        Ok(ValueTree::Leaf(self.value()?))
    }

    fn value_or(&mut self) -> Result<ValueTree, LowerError> {
        self.nested(Self::value_or_inner)
    }

    fn value_or_inner(&mut self) -> Result<ValueTree, LowerError> {
        let mut items = vec![self.value_and()?];
        while self.keyword("or") {
            items.push(self.value_and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            ValueTree::Or(items)
        })
    }

    fn value_and(&mut self) -> Result<ValueTree, LowerError> {
        let mut items = vec![self.value_not()?];
        while self.keyword("and") {
            items.push(self.value_not()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            ValueTree::And(items)
        })
    }

    fn value_not(&mut self) -> Result<ValueTree, LowerError> {
        self.nested(Self::value_not_inner)
    }

    fn value_not_inner(&mut self) -> Result<ValueTree, LowerError> {
        if self.keyword("not") {
            return Ok(ValueTree::Not(Box::new(self.value_not()?)));
        }
        if self.eat('(') {
            let tree = self.value_or()?;
            if !self.eat(')') {
                return Err(self.error("expected ')'"));
            }
            return Ok(tree);
        }
        Ok(ValueTree::Leaf(self.value()?))
    }

    /// One quoted or unquoted value.
    fn value(&mut self) -> Result<Pattern, LowerError> {
        self.skip_ws();
        if self.rest().starts_with('"') {
            return self.quoted();
        }
        let mut pattern = Pattern::default();
        let rest = self.rest();
        let mut chars = rest.char_indices().peekable();
        let mut end = rest.len();
        while let Some(&(idx, c)) = chars.peek() {
            if c == '\\' {
                chars.next();
                match chars.next() {
                    Some((_, escaped)) => pattern.push_literal(escaped),
                    None => return Err(LowerError::syntax(self.pos + idx, "dangling escape")),
                }
                continue;
            }
            if "():<>\"{}".contains(c) {
                end = idx;
                break;
            }
            if c.is_whitespace() && keyword_follows(&rest[idx..]) {
                end = idx;
                break;
            }
            match c {
                '*' => pattern.push_star(),
                '?' => pattern.push_one(),
                c => pattern.push_literal(c),
            }
            chars.next();
        }
        pattern.trim_end_whitespace();
        if pattern.is_empty() {
            return Err(self.error("expected a value"));
        }
        self.pos += end;
        Ok(pattern)
    }

    fn quoted(&mut self) -> Result<Pattern, LowerError> {
        let start = self.pos;
        self.pos += 1;
        let mut pattern = Pattern::default();
        let mut chars = self.rest().char_indices();
        while let Some((idx, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += idx + 1;
                    return Ok(pattern);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => pattern.push_literal('\n'),
                    Some((_, 't')) => pattern.push_literal('\t'),
                    Some((_, 'r')) => pattern.push_literal('\r'),
                    Some((_, escaped)) => pattern.push_literal(escaped),
                    None => break,
                },
                c => pattern.push_literal(c),
            }
        }
        Err(LowerError::syntax(start, "unterminated quoted string"))
    }
}

/// True when `text` (starting with whitespace) continues with `or`/`and`/`not` and whitespace
/// or `(`: the end of an unquoted value.
fn keyword_follows(text: &str) -> bool {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return true;
    }
    ["or", "and", "not"].iter().any(|word| {
        trimmed.len() > word.len()
            && trimmed.is_char_boundary(word.len())
            && trimmed[..word.len()].eq_ignore_ascii_case(word)
            && trimmed[word.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_whitespace() || c == '(')
    })
}

fn lower_tree(field: &str, tree: ValueTree) -> Expr {
    match tree {
        ValueTree::Or(items) => Expr::or(items.into_iter().map(|t| lower_tree(field, t)).collect()),
        ValueTree::And(items) => {
            Expr::and(items.into_iter().map(|t| lower_tree(field, t)).collect())
        }
        ValueTree::Not(inner) => Expr::not(lower_tree(field, *inner)),
        ValueTree::Leaf(pattern) => {
            if pattern.is_match_all() {
                // `exists`: a non-null value.
                Expr::not(Expr::Field {
                    path: ecs_field(field),
                    pred: Predicate::Null,
                })
            } else {
                pattern_expr(field, &pattern, true)
            }
        }
    }
}

fn count_leaves(expr: &Expr) -> usize {
    match expr {
        Expr::And(items) | Expr::Or(items) => items.iter().map(count_leaves).sum(),
        Expr::Not(inner) => count_leaves(inner),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::matcher::matches;
    use crate::event::Event;
    use serde_json::{Value, json};

    fn check(query: &str, event: Value) -> bool {
        let expr = lower(query).unwrap_or_else(|err| panic!("{query}: {err:?}"));
        matches(&expr, &Event::new(&event))
    }

    #[test]
    fn exact_values_are_case_sensitive() {
        let event = json!({"event": {"action": "CreateUser"}});
        assert!(check("event.action: \"CreateUser\"", event.clone()));
        assert!(check("event.action:CreateUser", event.clone()));
        assert!(!check("event.action: createuser", event.clone()));
        assert!(!check("event.action: Create", event));
    }

    #[test]
    fn value_lists_and_precedence() {
        let event = json!({"a": "x", "b": "y"});
        assert!(check("a: (z or x)", event.clone()));
        assert!(!check("a: (z or w)", event.clone()));
        // and binds tighter than or.
        assert!(check("a: z and b: y or a: x", event.clone()));
        assert!(!check("a: x and (b: z or a: z)", event.clone()));
        assert!(check("not a: z and b: y", event.clone()));
        assert!(check("a: (* and not z)", event.clone()));
        assert!(!check("a: (* and not x)", event));
    }

    #[test]
    fn wildcards_and_phrases() {
        let event = json!({"ua": "Mozilla S3 Browser 1.0", "k": "a*b"});
        assert!(check("ua: *S3 Browser*", event.clone()));
        assert!(!check("ua: *s3 browser*", event.clone()));
        assert!(check("ua: Mozilla*", event.clone()));
        assert!(check("ua: *1.0", event.clone()));
        assert!(check("ua: Mo?illa*", event.clone()));
        // A quoted star is literal; an escaped star too.
        assert!(check("k: \"a*b\"", event.clone()));
        assert!(!check("k: \"a*\"", event.clone()));
        assert!(check("k: a\\*b", event.clone()));
        assert!(check("ua: (*S3 Browser* or *Cyberduck*)", event));
    }

    #[test]
    fn exists_and_not_on_missing_fields() {
        let event = json!({"a": "x", "n": null});
        assert!(check("a: *", event.clone()));
        assert!(!check("b: *", event.clone()));
        assert!(!check("n: *", event.clone()));
        // must_not matches documents without the field.
        assert!(check("not b: x", event));
    }

    #[test]
    fn numbers_booleans_and_ranges() {
        let event = json!({"port": 22, "flag": true, "s": "true"});
        assert!(check("port: (21 or 22)", event.clone()));
        assert!(check("flag: true", event.clone()));
        assert!(check("s: (true or \"true\")", event.clone()));
        assert!(check("port >= 22", event.clone()));
        assert!(!check("port > 22", event.clone()));
        assert!(check("port < 23 and port <= 22", event));
        assert!(matches!(
            lower("t > now-1d"),
            Err(LowerError {
                unsupported: true,
                ..
            })
        ));
    }

    #[test]
    fn nested_groups_and_errors() {
        let event = json!({"user": {"name": "bob"}});
        assert!(check("user: { name: bob }", event));
        let err = lower("a: (x or").unwrap_err();
        assert!(!err.unsupported);
        assert!(lower("justtext").unwrap_err().unsupported);
        assert!(lower("a.*: x").unwrap_err().unsupported);
        assert!(lower("u: { a: 1 and b: 2 }").unwrap_err().unsupported);
    }

    #[test]
    fn escapes_in_unquoted_values() {
        let event = json!({"user": {"id": "AROA:i-123"}});
        assert!(check("user.id: *\\:i-*", event));
    }
}
