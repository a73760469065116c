//! The `detection` section: search identifiers and the condition, lowered into one [`Expr`].
//!
//! - a map is the AND of its entries; a list of values under a field is their OR (`|all`:
//!   AND); a list of maps is the OR of the maps; a list of plain values (or one value) as the
//!   whole identifier is a keyword search, `'|all':` makes the keywords AND;
//! - each entry `field|mod1|mod2: value(s)` goes through [`super::modifiers::check`] and then
//!   the modifiers are applied in the written order, except `expand`, which always resolves
//!   placeholders first (so `contains|expand` and `expand|contains` agree);
//! - a value that a modifier expands into variants (`windash`, `base64offset`, several
//!   placeholder values) is the OR of its variants, whatever `all` says about the list.

use std::collections::HashMap;

use crate::diag::Code;
use crate::ir::{Cidr, CmpOp, Expr, FieldPath, Predicate, Regex, StrKind};
use crate::rules::yaml::{Node, Value};

use super::condition::{self, CondError};
use super::modifiers::{self, Mod, Terminal, Written};
use super::strings::{self, ExpandError, Part};

/// Why a detection could not be lowered: a diagnostic code, the line of the YAML node at
/// fault, and a lowercase reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowerError {
    pub code: Code,
    pub line: u32,
    pub message: String,
}

impl LowerError {
    pub fn new(code: Code, line: u32, message: impl Into<String>) -> LowerError {
        LowerError {
            code,
            line,
            message: message.into(),
        }
    }
}

type Result<T> = std::result::Result<T, LowerError>;

/// What lowering reads besides the rule itself.
pub struct Context<'a> {
    pub placeholders: &'a HashMap<String, Vec<String>>,
}

/// Lowers a detection map (search identifiers plus `condition`). Keys in `skip` are not
/// identifiers (a filter's `rules`).
pub fn lower(detection: &Node, skip: &[&str], ctx: &Context<'_>) -> Result<Expr> {
    let Some(entries) = detection.as_map() else {
        return Err(LowerError::new(
            Code::Schema,
            detection.line,
            "detection must be a mapping",
        ));
    };
    let mut idents = Vec::new();
    let mut condition = None;
    for (key, node) in entries {
        match key.text.as_str() {
            "condition" => condition = Some(node),
            "timeframe" => {
                return Err(LowerError::new(
                    Code::Unsupported,
                    key.line,
                    "timeframe on a detection rule (legacy aggregation window) is not \
                     supported; use a correlation rule",
                ));
            }
            name if skip.contains(&name) => {}
            name => idents.push((name.to_string(), lower_ident(name, node, ctx)?)),
        }
    }
    let Some(condition) = condition else {
        return Err(LowerError::new(
            Code::Schema,
            detection.line,
            "detection has no condition",
        ));
    };
    let texts: Vec<&Node> = match &condition.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![condition],
    };
    if texts.is_empty() {
        return Err(LowerError::new(
            Code::Condition,
            condition.line,
            "condition list is empty",
        ));
    }
    let mut alternatives = Vec::with_capacity(texts.len());
    for node in texts {
        let Some(text) = node.as_str() else {
            return Err(LowerError::new(
                Code::Condition,
                node.line,
                "condition must be a string or a list of strings",
            ));
        };
        let resolved = condition::parse(text).and_then(|cond| condition::resolve(&cond, &idents));
        match resolved {
            Ok(expr) => alternatives.push(expr),
            Err(CondError::Invalid(message)) => {
                return Err(LowerError::new(Code::Condition, node.line, message));
            }
            Err(CondError::Unsupported(message)) => {
                return Err(LowerError::new(Code::Unsupported, node.line, message));
            }
        }
    }
    Ok(Expr::or(alternatives))
}

/// One search identifier.
fn lower_ident(name: &str, node: &Node, ctx: &Context<'_>) -> Result<Expr> {
    match &node.value {
        Value::Map(entries) if entries.is_empty() => Err(empty(name, node)),
        Value::Map(entries) => lower_map(entries, ctx),
        Value::Seq(items) if items.is_empty() => Err(empty(name, node)),
        Value::Seq(items) => {
            let mut alternatives = Vec::with_capacity(items.len());
            for item in items {
                alternatives.push(match &item.value {
                    Value::Map(entries) if entries.is_empty() => return Err(empty(name, item)),
                    Value::Map(entries) => lower_map(entries, ctx)?,
                    Value::Seq(_) => {
                        return Err(LowerError::new(
                            Code::Schema,
                            item.line,
                            format!("search identifier '{name}' holds a nested list"),
                        ));
                    }
                    _ => lower_keywords(&[], std::slice::from_ref(item), item.line)?,
                });
            }
            Ok(Expr::or(alternatives))
        }
        Value::Null => Err(LowerError::new(
            Code::Schema,
            node.line,
            format!("search identifier '{name}' is null"),
        )),
        _ => lower_keywords(&[], std::slice::from_ref(node), node.line),
    }
}

fn empty(name: &str, node: &Node) -> LowerError {
    LowerError::new(
        Code::Schema,
        node.line,
        format!("search identifier '{name}' is empty"),
    )
}

/// A map: the AND of its entries.
fn lower_map(entries: &[(crate::rules::yaml::Key, Node)], ctx: &Context<'_>) -> Result<Expr> {
    let mut items = Vec::with_capacity(entries.len());
    for (key, node) in entries {
        items.push(lower_entry(&key.text, key.line, node, ctx)?);
    }
    Ok(Expr::and(items))
}

/// One `field|mods: value(s)` entry (an empty field is a keyword entry: `'|all':`).
fn lower_entry(key: &str, line: u32, node: &Node, ctx: &Context<'_>) -> Result<Expr> {
    let mut names = key.split('|');
    let field = names.next().unwrap_or("");
    let mut mods = Vec::new();
    for name in names {
        match modifiers::parse(name) {
            Some(modifier) => mods.push(Written { modifier, name }),
            None => {
                return Err(LowerError::new(
                    Code::Modifier,
                    line,
                    format!("unknown modifier '{name}' in '{key}'"),
                ));
            }
        }
    }
    let values = value_list(node)?;
    let has = |wanted: Mod| mods.iter().any(|w| w.modifier == wanted);
    if has(Mod::All) && values.len() < 2 {
        return Err(LowerError::new(
            Code::Modifier,
            line,
            format!("modifier 'all' in '{key}' needs a list of more than one value"),
        ));
    }
    if field.is_empty() {
        modifiers::check(&mods, true).map_err(|message| {
            LowerError::new(Code::Modifier, line, format!("{message} in '{key}'"))
        })?;
        return lower_keywords(&mods, &values, line);
    }
    let terminal = modifiers::check(&mods, false).map_err(|message| {
        LowerError::new(Code::Modifier, line, format!("{message} in '{key}'"))
    })?;
    let path = FieldPath::new(field);
    if terminal == Terminal::Exists {
        return match values.as_slice() {
            [
                Node {
                    value: Value::Bool(wanted),
                    ..
                },
            ] => Ok(Expr::Field {
                path,
                pred: Predicate::Exists(*wanted),
            }),
            _ => Err(LowerError::new(
                Code::Value,
                node.line,
                format!("modifier 'exists' in '{key}' takes a single true or false"),
            )),
        };
    }
    let mut per_value = Vec::with_capacity(values.len());
    for value in &values {
        let expr = if value.value == Value::Null {
            if let Some(bad) = mods.iter().find(|w| w.modifier != Mod::Neq) {
                return Err(LowerError::new(
                    Code::Value,
                    value.line,
                    format!("null cannot be used with modifier '{}'", bad.name),
                ));
            }
            Expr::Field {
                path: path.clone(),
                pred: Predicate::Null,
            }
        } else {
            let preds = lower_value(&mods, terminal, value, ctx)?;
            Expr::or(
                preds
                    .into_iter()
                    .map(|pred| Expr::Field {
                        path: path.clone(),
                        pred,
                    })
                    .collect(),
            )
        };
        per_value.push(expr);
    }
    let linked = if has(Mod::All) {
        Expr::and(per_value)
    } else {
        Expr::or(per_value)
    };
    // `neq` negates the whole item, as pySigma's SigmaNegateModifier does (detection.py
    // wraps the linked values in ConditionNOT): `f|neq: [a, b]` means f is neither a nor b,
    // and `f|neq|all: [a, b]` means f is not both. An absent field satisfies `neq`.
    Ok(if has(Mod::Neq) {
        Expr::not(linked)
    } else {
        linked
    })
}

/// The values under a key: one scalar, or a list of scalars.
fn value_list(node: &Node) -> Result<Vec<Node>> {
    match &node.value {
        Value::Seq(items) if items.is_empty() => {
            Err(LowerError::new(Code::Value, node.line, "empty value list"))
        }
        Value::Seq(items) => {
            for item in items {
                if matches!(item.value, Value::Seq(_) | Value::Map(_)) {
                    return Err(LowerError::new(
                        Code::Schema,
                        item.line,
                        "a value list may only hold scalars",
                    ));
                }
            }
            Ok(items.clone())
        }
        Value::Map(_) => Err(LowerError::new(
            Code::Schema,
            node.line,
            "a field value must be a scalar or a list of scalars",
        )),
        _ => Ok(vec![node.clone()]),
    }
}

/// One non-null value of a field item: the predicates its variants become (ORed).
fn lower_value(
    mods: &[Written<'_>],
    terminal: Terminal,
    value: &Node,
    ctx: &Context<'_>,
) -> Result<Vec<Predicate>> {
    let has = |wanted: Mod| mods.iter().any(|w| w.modifier == wanted);
    let line = value.line;
    match terminal {
        Terminal::Exists => Err(LowerError::new(Code::Value, line, "unexpected exists")),
        Terminal::Regex => {
            let Some(text) = value.scalar_text() else {
                return Err(LowerError::new(Code::Value, line, "regex must be a string"));
            };
            let mut flags = String::new();
            for (modifier, flag) in [
                (Mod::ReIgnoreCase, 'i'),
                (Mod::ReMultiline, 'm'),
                (Mod::ReDotAll, 's'),
            ] {
                if has(modifier) {
                    flags.push(flag);
                }
            }
            let pattern = if flags.is_empty() {
                text.clone()
            } else {
                format!("(?{flags}){text}")
            };
            match Regex::new(&pattern) {
                Ok(regex) => Ok(vec![Predicate::Regex(regex)]),
                Err(err) => Err(LowerError::new(
                    Code::Regex,
                    line,
                    format!(
                        "invalid regular expression '{text}': {}",
                        regex_reason(&err)
                    ),
                )),
            }
        }
        Terminal::Cidr => {
            let Some(text) = value.scalar_text() else {
                return Err(LowerError::new(Code::Value, line, "cidr must be a string"));
            };
            let texts = if has(Mod::Expand) {
                expand(&text, line, ctx)?
            } else {
                vec![text]
            };
            texts
                .iter()
                .map(|text| match Cidr::parse(text.trim()) {
                    Some(cidr) => Ok(Predicate::Cidr(cidr)),
                    None => Err(LowerError::new(
                        Code::Value,
                        line,
                        format!("invalid cidr network '{text}'"),
                    )),
                })
                .collect()
        }
        Terminal::Compare { cmp, date } => {
            let number = match &value.value {
                Value::Int(n) => Some(*n as f64),
                Value::Float(f) => Some(*f),
                Value::Str(text) => text.trim().parse::<f64>().ok(),
                _ => None,
            };
            let Some(number) = number.filter(|n| n.is_finite()) else {
                return Err(LowerError::new(
                    Code::Value,
                    line,
                    "numeric modifier needs a number",
                ));
            };
            Ok(vec![match date {
                Some(part) => {
                    if number.fract() != 0.0 || number.abs() > 1e15 {
                        return Err(LowerError::new(
                            Code::Value,
                            line,
                            format!("date part '{}' needs a whole number", part.as_str()),
                        ));
                    }
                    Predicate::DatePart {
                        part,
                        op: cmp.unwrap_or(CmpOp::Eq),
                        value: number as i64,
                    }
                }
                None => Predicate::Num {
                    op: cmp.unwrap_or(CmpOp::Eq),
                    value: number,
                },
            }])
        }
        Terminal::FieldRef => {
            let Some(text) = value.scalar_text() else {
                return Err(LowerError::new(
                    Code::Value,
                    line,
                    "fieldref needs a field name",
                ));
            };
            if text.contains(['*', '?']) {
                return Err(LowerError::new(
                    Code::Value,
                    line,
                    "a field reference must not contain wildcards",
                ));
            }
            let kind = if has(Mod::Contains) {
                StrKind::Contains
            } else if has(Mod::StartsWith) {
                StrKind::Prefix
            } else if has(Mod::EndsWith) {
                StrKind::Suffix
            } else {
                StrKind::Exact
            };
            Ok(vec![Predicate::FieldRef {
                other: FieldPath::new(&text),
                kind,
                cased: has(Mod::Cased),
            }])
        }
        Terminal::Strings => {
            let cased = has(Mod::Cased);
            string_variants(mods, value, ctx)?
                .iter()
                .map(|parts| {
                    strings::to_str_match(parts, cased)
                        .map(Predicate::Str)
                        .map_err(|err| {
                            LowerError::new(
                                Code::Value,
                                line,
                                format!("value is too complex: {}", regex_reason(&err)),
                            )
                        })
                })
                .collect()
        }
    }
}

/// A value in the middle of the string transforms.
enum Stage {
    Text(Vec<Part>),
    Bytes(Vec<u8>),
}

/// Runs a value through the string modifiers in written order; the variants come back as
/// parsed Sigma strings.
fn string_variants(
    mods: &[Written<'_>],
    value: &Node,
    ctx: &Context<'_>,
) -> Result<Vec<Vec<Part>>> {
    let line = value.line;
    let has = |wanted: Mod| mods.iter().any(|w| w.modifier == wanted);
    let mut stages: Vec<Stage> = match &value.value {
        Value::Str(text) if has(Mod::Expand) => expand(text, line, ctx)?
            .iter()
            .map(|text| Stage::Text(strings::parse(text)))
            .collect(),
        Value::Str(text) => vec![Stage::Text(strings::parse(text))],
        _ => match value.scalar_text() {
            // Numbers and booleans compare as their text (Sigma: "all values are strings").
            Some(text) => vec![Stage::Text(strings::literal(&text))],
            None => return Err(LowerError::new(Code::Value, line, "value must be a scalar")),
        },
    };
    for written in mods {
        let name = written.name;
        let mut next = Vec::with_capacity(stages.len());
        for stage in stages {
            match (written.modifier, stage) {
                (Mod::Contains | Mod::StartsWith | Mod::EndsWith, Stage::Text(parts)) => {
                    let start = matches!(written.modifier, Mod::Contains | Mod::EndsWith);
                    let end = matches!(written.modifier, Mod::Contains | Mod::StartsWith);
                    next.push(Stage::Text(strings::wrap(parts, start, end)));
                }
                (Mod::Windash, Stage::Text(parts)) => match strings::windash(&parts) {
                    Some(variants) => next.extend(variants.into_iter().map(Stage::Text)),
                    None => {
                        return Err(LowerError::new(
                            Code::Value,
                            line,
                            "windash would expand this value into too many variants",
                        ));
                    }
                },
                (Mod::Utf16(encoding), Stage::Text(parts)) => {
                    let text = no_wildcards(&parts, name, line)?;
                    next.push(Stage::Bytes(strings::utf16(&text, encoding)));
                }
                (Mod::Base64 | Mod::Base64Offset, stage) => {
                    let bytes = match stage {
                        Stage::Text(parts) => no_wildcards(&parts, name, line)?.into_bytes(),
                        Stage::Bytes(bytes) => bytes,
                    };
                    if written.modifier == Mod::Base64 {
                        next.push(Stage::Text(strings::literal(&strings::base64(&bytes))));
                    } else {
                        next.extend(
                            strings::base64_offsets(&bytes)
                                .iter()
                                .map(|text| Stage::Text(strings::literal(text))),
                        );
                    }
                }
                (Mod::All | Mod::Neq | Mod::Cased | Mod::Expand, stage) => next.push(stage),
                (_, Stage::Bytes(_)) => {
                    return Err(LowerError::new(
                        Code::Modifier,
                        line,
                        format!("modifier '{name}' cannot apply to an encoded value before base64"),
                    ));
                }
                (_, Stage::Text(_)) => {
                    return Err(LowerError::new(
                        Code::Modifier,
                        line,
                        format!("modifier '{name}' cannot apply to a string value"),
                    ));
                }
            }
        }
        if next.len() > strings::MAX_VARIANTS {
            return Err(LowerError::new(
                Code::Value,
                line,
                "modifiers expand this value into too many variants",
            ));
        }
        stages = next;
    }
    stages
        .into_iter()
        .map(|stage| match stage {
            Stage::Text(parts) => Ok(parts),
            Stage::Bytes(_) => Err(LowerError::new(
                Code::Modifier,
                line,
                "utf16 encodings must be followed by 'base64' or 'base64offset'",
            )),
        })
        .collect()
}

fn no_wildcards(parts: &[Part], name: &str, line: u32) -> Result<String> {
    strings::plain_text(parts).ok_or_else(|| {
        LowerError::new(
            Code::Value,
            line,
            format!("modifier '{name}' cannot encode a value with wildcards"),
        )
    })
}

fn expand(text: &str, line: u32, ctx: &Context<'_>) -> Result<Vec<String>> {
    strings::expand(text, ctx.placeholders).map_err(|err| match err {
        ExpandError::Unresolved(name) => LowerError::new(
            Code::Placeholder,
            line,
            format!(
                "placeholder '%{name}%' has no value; the sigma specification requires a tool \
                 that cannot resolve a placeholder to reject the rule (give it with --placeholders)"
            ),
        ),
        ExpandError::TooMany => LowerError::new(
            Code::Value,
            line,
            "placeholders expand this value into too many variants",
        ),
    })
}

/// Keyword values: each one a case-insensitive substring search over every string of the
/// event (wildcards allowed), ORed (`all`: ANDed).
fn lower_keywords(mods: &[Written<'_>], values: &[Node], line: u32) -> Result<Expr> {
    let cased = mods.iter().any(|w| w.modifier == Mod::Cased);
    let all = mods.iter().any(|w| w.modifier == Mod::All);
    let mut items = Vec::with_capacity(values.len());
    for value in values {
        let parts = match &value.value {
            Value::Str(text) => strings::parse(text),
            Value::Null => {
                return Err(LowerError::new(
                    Code::Value,
                    value.line,
                    "a keyword cannot be null",
                ));
            }
            _ => match value.scalar_text() {
                Some(text) => strings::literal(&text),
                None => {
                    return Err(LowerError::new(
                        Code::Schema,
                        value.line.max(line),
                        "a keyword must be a scalar",
                    ));
                }
            },
        };
        let parts = strings::wrap(parts, true, true);
        let matcher = strings::to_str_match(&parts, cased).map_err(|err| {
            LowerError::new(
                Code::Value,
                value.line,
                format!("keyword is too complex: {}", regex_reason(&err)),
            )
        })?;
        items.push(Expr::Keyword(matcher));
    }
    Ok(if all {
        Expr::and(items)
    } else {
        Expr::or(items)
    })
}

/// The useful last line of a regex error (its Display is a multi-line drawing).
fn regex_reason(err: &regex::Error) -> String {
    match err {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .unwrap_or("syntax error")
            .trim_start_matches("error: ")
            .to_string(),
        regex::Error::CompiledTooBig(_) => "it compiles too big".to_string(),
        _ => "it does not compile".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::yaml::parse_documents;

    fn lowered_with(yaml: &str, placeholders: &HashMap<String, Vec<String>>) -> Result<String> {
        let docs = parse_documents(yaml).expect("test yaml parses");
        let ctx = Context { placeholders };
        lower(&docs[0], &[], &ctx).map(|expr| expr.to_string())
    }

    fn lowered(yaml: &str) -> String {
        match lowered_with(yaml, &HashMap::new()) {
            Ok(text) => text,
            Err(err) => panic!("{yaml}: {err:?}"),
        }
    }

    fn rejected(yaml: &str) -> (Code, String) {
        match lowered_with(yaml, &HashMap::new()) {
            Ok(text) => panic!("{yaml}: lowered to {text}"),
            Err(err) => (err.code, err.message),
        }
    }

    #[test]
    fn structure() {
        assert_eq!(
            lowered("sel:\n  a: 1\n  b: [x, y]\ncondition: sel"),
            r#"a eq "1" and (b eq "x" or b eq "y")"#
        );
        assert_eq!(
            lowered("sel:\n  - a: x\n  - b: y\n    c: z\ncondition: sel"),
            r#"a eq "x" or (b eq "y" and c eq "z")"#
        );
        assert_eq!(
            lowered("kw:\n  - Foo\n  - bar*baz\ncondition: kw"),
            r#"any_string contains "foo" or any_string glob "*bar*baz*""#
        );
        assert_eq!(
            lowered("kw:\n  '|all':\n    - a\n    - b\ncondition: kw"),
            r#"any_string contains "a" and any_string contains "b""#
        );
        assert_eq!(
            lowered("kw: single\ncondition: kw"),
            r#"any_string contains "single""#
        );
        assert_eq!(
            lowered("a:\n  f: x\nb:\n  g: y\ncondition:\n  - a\n  - b"),
            r#"f eq "x" or g eq "y""#
        );
    }

    #[test]
    fn string_modifiers() {
        assert_eq!(
            lowered("s:\n  f|contains: X\ncondition: s"),
            r#"f contains "x""#
        );
        assert_eq!(
            lowered("s:\n  f|startswith: X\ncondition: s"),
            r#"f startswith "x""#
        );
        assert_eq!(
            lowered("s:\n  f|endswith: X\ncondition: s"),
            r#"f endswith "x""#
        );
        assert_eq!(
            lowered("s:\n  f|contains|cased: X\ncondition: s"),
            r#"f contains_cased "X""#
        );
        assert_eq!(
            lowered("s:\n  f|contains|all: [a, b]\ncondition: s"),
            r#"f contains "a" and f contains "b""#
        );
        assert_eq!(
            lowered("s:\n  f|startswith: 'a*b'\ncondition: s"),
            r#"f glob "a*b*""#
        );
        assert_eq!(
            lowered("s:\n  f|windash|contains: ' -x'\ncondition: s"),
            "f contains \" -x\" or f contains \" /x\" or f contains \" \u{2013}x\" or f contains \" \u{2014}x\" or f contains \" \u{2015}x\""
        );
        assert_eq!(
            lowered("s:\n  f|base64: 'http://'\ncondition: s"),
            r#"f eq "ahr0cdovlw==""#
        );
        assert_eq!(
            lowered("s:\n  f|base64|cased: 'http://'\ncondition: s"),
            r#"f eq_cased "aHR0cDovLw==""#
        );
        assert_eq!(
            lowered("s:\n  f|base64offset|contains|cased: 'http://'\ncondition: s"),
            r#"f contains_cased "aHR0cDovL" or f contains_cased "h0dHA6Ly" or f contains_cased "odHRwOi8v""#
        );
        assert_eq!(
            lowered("s:\n  f|wide|base64|cased: ping\ncondition: s"),
            r#"f eq_cased "cABpAG4AZwA=""#
        );
        assert_eq!(
            lowered("s:\n  f|utf16be|base64|cased: ab\ncondition: s"),
            r#"f eq_cased "AGEAYg==""#
        );
        assert_eq!(
            lowered("s:\n  f|utf16|base64|cased: a\ncondition: s"),
            r#"f eq_cased "//5hAA==""#
        );
    }

    #[test]
    fn other_modifiers() {
        assert_eq!(lowered("s:\n  f|exists: true\ncondition: s"), "f exists");
        assert_eq!(
            lowered("s:\n  f|exists: false\ncondition: s"),
            "f not_exists"
        );
        assert_eq!(
            lowered("s:\n  f|re: 'a.+b'\ncondition: s"),
            r#"f regex "a.+b""#
        );
        assert_eq!(
            lowered("s:\n  f|re|i|m|s: 'a.+b'\ncondition: s"),
            r#"f regex "(?ims)a.+b""#
        );
        assert_eq!(
            lowered("s:\n  f|re|ignorecase|dotall: x\ncondition: s"),
            r#"f regex "(?is)x""#
        );
        assert_eq!(lowered("s:\n  f|gt: 5\ncondition: s"), "f gt 5");
        assert_eq!(lowered("s:\n  f|lte: '2.5'\ncondition: s"), "f lte 2.5");
        assert_eq!(lowered("s:\n  f|hour: 3\ncondition: s"), "f hour() eq 3");
        assert_eq!(
            lowered("s:\n  f|week|gte: 10\ncondition: s"),
            "f week() gte 10"
        );
        assert_eq!(
            lowered("s:\n  f|cidr: [10.0.0.0/8, 'fd00::/8']\ncondition: s"),
            "f cidr 10.0.0.0/8 or f cidr fd00::/8"
        );
        assert_eq!(
            lowered("s:\n  f|fieldref: g\ncondition: s"),
            "f eq field(g)"
        );
        assert_eq!(
            lowered("s:\n  f|fieldref|endswith|cased: g\ncondition: s"),
            "f endswith_cased field(g)"
        );
        assert_eq!(
            lowered("s:\n  f|neq: [a, b]\ncondition: s"),
            r#"not (f eq "a" or f eq "b")"#
        );
        assert_eq!(lowered("s:\n  f|neq|gt: 3\ncondition: s"), "not f gt 3");
        assert_eq!(lowered("s:\n  f: null\ncondition: s"), "f is_null");
        assert_eq!(lowered("s:\n  f|neq: null\ncondition: s"), "not f is_null");
        assert_eq!(
            lowered("s:\n  f: [null, x]\ncondition: s"),
            r#"f is_null or f eq "x""#
        );
        assert_eq!(lowered("s:\n  f: true\ncondition: s"), r#"f eq "true""#);
        assert_eq!(lowered("s:\n  f: 4624\ncondition: s"), r#"f eq "4624""#);
        assert_eq!(lowered("s:\n  f: '*'\ncondition: s"), r#"f contains """#);
    }

    #[test]
    fn expand_placeholders() {
        let mut map = HashMap::new();
        map.insert("Hosts".to_string(), vec!["a".to_string(), "b*".to_string()]);
        map.insert("Nets".to_string(), vec!["10.0.0.0/8".to_string()]);
        let yaml = "s:\n  f|expand: '%Hosts%'\ncondition: s";
        assert_eq!(
            lowered_with(yaml, &map).unwrap(),
            r#"f eq "a" or f startswith "b""#
        );
        let yaml = "s:\n  f|contains|expand: '%Hosts%'\ncondition: s";
        assert_eq!(
            lowered_with(yaml, &map).unwrap(),
            r#"f contains "a" or f contains "b""#
        );
        let yaml = "s:\n  f|cidr|expand: '%Nets%'\ncondition: s";
        assert_eq!(lowered_with(yaml, &map).unwrap(), "f cidr 10.0.0.0/8");
        // Without expand a placeholder is literal text.
        assert_eq!(
            lowered("s:\n  f: '%Hosts%'\ncondition: s"),
            r#"f eq "%hosts%""#
        );
        let err = lowered_with("s:\n  f|expand: '%Other%'\ncondition: s", &map).unwrap_err();
        assert_eq!(err.code, Code::Placeholder);
        assert_eq!(err.line, 2);
        assert!(
            err.message
                .starts_with("placeholder '%Other%' has no value"),
            "{}",
            err.message
        );
    }

    #[test]
    fn rejections() {
        let cases = [
            (
                "s:\n  f|contain: x\ncondition: s",
                Code::Modifier,
                "unknown modifier 'contain' in 'f|contain'",
            ),
            (
                "s:\n  f|all: x\ncondition: s",
                Code::Modifier,
                "modifier 'all' in 'f|all' needs a list of more than one value",
            ),
            (
                "s:\n  f|exists: yes\ncondition: s",
                Code::Value,
                "modifier 'exists' in 'f|exists' takes a single true or false",
            ),
            (
                "s:\n  f|re: '(?<=a)b'\ncondition: s",
                Code::Regex,
                "invalid regular expression '(?<=a)b': look-around, including look-ahead and look-behind, is not supported",
            ),
            (
                "s:\n  f|cidr: 10.0.0.0/33\ncondition: s",
                Code::Value,
                "invalid cidr network '10.0.0.0/33'",
            ),
            (
                "s:\n  f|gt: ten\ncondition: s",
                Code::Value,
                "numeric modifier needs a number",
            ),
            (
                "s:\n  f|hour: 1.5\ncondition: s",
                Code::Value,
                "date part 'hour' needs a whole number",
            ),
            (
                "s:\n  f|base64: 'a*'\ncondition: s",
                Code::Value,
                "modifier 'base64' cannot encode a value with wildcards",
            ),
            (
                "s:\n  f|contains|base64: a\ncondition: s",
                Code::Value,
                "modifier 'base64' cannot encode a value with wildcards",
            ),
            (
                "s:\n  f|fieldref: 'g*'\ncondition: s",
                Code::Value,
                "a field reference must not contain wildcards",
            ),
            (
                "s:\n  f|contains: null\ncondition: s",
                Code::Value,
                "null cannot be used with modifier 'contains'",
            ),
            ("s:\n  f: []\ncondition: s", Code::Value, "empty value list"),
            (
                "s: {}\ncondition: s",
                Code::Schema,
                "search identifier 's' is empty",
            ),
            (
                "s: ~\ncondition: s",
                Code::Schema,
                "search identifier 's' is null",
            ),
            ("s:\n  f: x\n", Code::Schema, "detection has no condition"),
            (
                "s:\n  f: x\ncondition: t",
                Code::Condition,
                "unknown search identifier 't'",
            ),
            (
                "s:\n  f: x\ncondition: s | count() > 5",
                Code::Unsupported,
                "legacy aggregation ('| count() ...') in condition is not supported; use a correlation rule",
            ),
            (
                "s:\n  f: x\ntimeframe: 5m\ncondition: s",
                Code::Unsupported,
                "timeframe on a detection rule (legacy aggregation window) is not supported; use a correlation rule",
            ),
            (
                "s:\n  '|contains': x\ncondition: s",
                Code::Modifier,
                "modifier 'contains' cannot be used on keywords (only 'all' and 'cased') in '|contains'",
            ),
            (
                "s:\n  - [a]\ncondition: s",
                Code::Schema,
                "search identifier 's' holds a nested list",
            ),
            (
                "s:\n  f:\n    g: x\ncondition: s",
                Code::Schema,
                "a field value must be a scalar or a list of scalars",
            ),
        ];
        for (yaml, code, message) in cases {
            assert_eq!(rejected(yaml), (code, message.to_string()), "{yaml}");
        }
    }
}
