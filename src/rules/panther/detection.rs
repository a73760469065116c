//! Panther simple detections (`Detection:` and `InlineFilters:` lists) lowered into the IR.
//!
//! A list of matchers is an implicit `All`. A matcher is either a combinator (`All`, `Any`,
//! `OnlyOne`, `None`, each holding a list of matchers) or a key test: `Key` (a top-level
//! field), `KeyPath` (a dotted path, `[*]` steps allowed since the IR fans out arrays anyway)
//! or `DeepKey` (a list of keys), with a `Condition` and a `Value` (or `Values` for `IsIn`).
//!
//! Values compare the way every IR rule does (`crate::event::text_of`): a string `Value` also
//! equals a number or boolean with the same JSON text, and an array field matches when any
//! element does. Python's `==` would say false in those two cases; we keep the one IR
//! definition and say so here. Conditions whose meaning the IR cannot state exactly
//! (`IsNullOrEmpty` and the list-element conditions) make the rule unsupported, by name.

use crate::diag::Code;
use crate::ir::{Cidr, CmpOp, Expr, FieldPath, Predicate, StrKind, StrMatch};
use crate::rules::yaml::{Node, Value};

/// Why a detection could not be lowered, with the line of the offending node.
#[derive(Clone, Debug)]
pub struct LowerError {
    pub code: Code,
    pub line: u32,
    pub message: String,
}

fn err(code: Code, line: u32, message: impl Into<String>) -> LowerError {
    LowerError {
        code,
        line,
        message: message.into(),
    }
}

/// Lowers a list of matchers (an implicit `All`).
pub fn lower_list(node: &Node) -> Result<Expr, LowerError> {
    let Some(items) = node.as_seq() else {
        return Err(err(
            Code::Schema,
            node.line,
            "a detection must be a list of matchers",
        ));
    };
    let exprs = items.iter().map(lower_matcher).collect::<Result<_, _>>()?;
    Ok(Expr::and(exprs))
}

fn lower_matcher(node: &Node) -> Result<Expr, LowerError> {
    let Some(entries) = node.as_map() else {
        return Err(err(Code::Schema, node.line, "a matcher must be a mapping"));
    };
    for (key, value) in entries {
        let children = || lower_children(value);
        match key.text.as_str() {
            "All" => return Ok(Expr::and(children()?)),
            "Any" => return Ok(Expr::or(children()?)),
            "None" => return Ok(Expr::not(Expr::or(children()?))),
            "OnlyOne" => {
                // Exactly one holds: for each i, i holds and no other does.
                let items = children()?;
                let mut alternatives = Vec::with_capacity(items.len());
                for (idx, item) in items.iter().enumerate() {
                    let others = items
                        .iter()
                        .enumerate()
                        .filter(|(other, _)| *other != idx)
                        .map(|(_, other)| other.clone())
                        .collect();
                    alternatives.push(Expr::and(vec![item.clone(), Expr::not(Expr::or(others))]));
                }
                return Ok(Expr::or(alternatives));
            }
            _ => {}
        }
    }
    lower_key_test(node)
}

fn lower_children(node: &Node) -> Result<Vec<Expr>, LowerError> {
    match node.as_seq() {
        Some(items) => items.iter().map(lower_matcher).collect(),
        None => Err(err(
            Code::Schema,
            node.line,
            "a combinator holds a list of matchers",
        )),
    }
}

fn lower_key_test(node: &Node) -> Result<Expr, LowerError> {
    let path = match (node.get("Key"), node.get("KeyPath"), node.get("DeepKey")) {
        (Some(key), None, None) => match key.scalar_text() {
            // `Key` names one top-level key, dots included.
            Some(key) => FieldPath {
                hash: FieldPath::text_hash(&key),
                raw: key.clone(),
                segments: vec![key],
                derive: None,
            },
            None => return Err(err(Code::Schema, key.line, "'Key' must be a string")),
        },
        (None, Some(path), None) => match path.scalar_text() {
            Some(path) => FieldPath::new(&path.replace("[*]", "")),
            None => return Err(err(Code::Schema, path.line, "'KeyPath' must be a string")),
        },
        (None, None, Some(deep)) => match deep.string_list() {
            Some(keys) if !keys.is_empty() => FieldPath::new(&keys.join(".")),
            _ => {
                return Err(err(
                    Code::Schema,
                    deep.line,
                    "'DeepKey' must be a list of keys",
                ));
            }
        },
        (None, None, None) => {
            return Err(err(
                Code::Schema,
                node.line,
                "a matcher needs 'Key', 'KeyPath' or 'DeepKey' (or All/Any/OnlyOne/None)",
            ));
        }
        _ => {
            return Err(err(
                Code::Schema,
                node.line,
                "a matcher names its field once: 'Key', 'KeyPath' or 'DeepKey'",
            ));
        }
    };
    let Some(condition_node) = node.get("Condition") else {
        return Err(err(
            Code::Schema,
            node.line,
            "a matcher needs a 'Condition'",
        ));
    };
    let Some(condition) = condition_node.as_str() else {
        return Err(err(
            Code::Schema,
            condition_node.line,
            "'Condition' must be a string",
        ));
    };
    let line = condition_node.line;
    let field = |pred: Predicate| Expr::Field {
        path: path.clone(),
        pred,
    };
    let value = || -> Result<String, LowerError> {
        match node.get("Value") {
            Some(value) => value.scalar_text().ok_or_else(|| {
                err(
                    Code::Value,
                    value.line,
                    format!("'{condition}' needs a scalar 'Value'"),
                )
            }),
            None => Err(err(
                Code::Schema,
                line,
                format!("'{condition}' needs a 'Value'"),
            )),
        }
    };
    let string = |kind: StrKind, cased: bool| -> Result<Expr, LowerError> {
        Ok(field(Predicate::Str(StrMatch::new(kind, &value()?, cased))))
    };
    let number = |op: CmpOp| -> Result<Expr, LowerError> {
        let text = value()?;
        match text.trim().parse::<f64>() {
            Ok(number) if number.is_finite() => Ok(field(Predicate::Num { op, value: number })),
            _ => Err(err(
                Code::Value,
                line,
                format!("'{condition}' needs a numeric 'Value', got '{text}'"),
            )),
        }
    };
    let cidr = || -> Result<Expr, LowerError> {
        let text = value()?;
        match Cidr::parse(&text) {
            Some(cidr) => Ok(field(Predicate::Cidr(cidr))),
            None => Err(err(
                Code::Value,
                line,
                format!("'{condition}' needs a CIDR 'Value', got '{text}'"),
            )),
        }
    };
    let expr = match condition {
        "Equals" => string(StrKind::Exact, true)?,
        "DoesNotEqual" => Expr::not(string(StrKind::Exact, true)?),
        "IEquals" => string(StrKind::Exact, false)?,
        "IDoesNotEqual" => Expr::not(string(StrKind::Exact, false)?),
        "StartsWith" => string(StrKind::Prefix, true)?,
        "DoesNotStartWith" => Expr::not(string(StrKind::Prefix, true)?),
        "IStartsWith" => string(StrKind::Prefix, false)?,
        "IDoesNotStartWith" => Expr::not(string(StrKind::Prefix, false)?),
        "EndsWith" => string(StrKind::Suffix, true)?,
        "DoesNotEndWith" => Expr::not(string(StrKind::Suffix, true)?),
        "IEndsWith" => string(StrKind::Suffix, false)?,
        "IDoesNotEndWith" => Expr::not(string(StrKind::Suffix, false)?),
        "Contains" => string(StrKind::Contains, true)?,
        "DoesNotContain" => Expr::not(string(StrKind::Contains, true)?),
        "IContains" => string(StrKind::Contains, false)?,
        "IDoesNotContain" => Expr::not(string(StrKind::Contains, false)?),
        "IsIn" | "IsNotIn" => {
            let Some(values) = node.get("Values").and_then(Node::string_list) else {
                return Err(err(
                    Code::Schema,
                    line,
                    format!("'{condition}' needs a list of 'Values'"),
                ));
            };
            let any = Expr::or(
                values
                    .iter()
                    .map(|value| field(Predicate::Str(StrMatch::new(StrKind::Exact, value, true))))
                    .collect(),
            );
            if condition == "IsIn" {
                any
            } else {
                Expr::not(any)
            }
        }
        "IsGreaterThan" => number(CmpOp::Gt)?,
        "IsGreaterThanOrEqual" => number(CmpOp::Gte)?,
        "IsLessThan" => number(CmpOp::Lt)?,
        "IsLessThanOrEqual" => number(CmpOp::Lte)?,
        "Exists" => field(Predicate::Exists(true)),
        "DoesNotExist" => field(Predicate::Exists(false)),
        "IsNull" => field(Predicate::Null),
        "IsNotNull" => Expr::not(field(Predicate::Null)),
        "IsIPAddressInCIDR" => cidr()?,
        "IsIPAddressNotInCIDR" => Expr::not(cidr()?),
        other => {
            return Err(err(
                Code::Unsupported,
                line,
                format!(
                    "simple detection condition '{other}' is not supported (it has no exact IR form)"
                ),
            ));
        }
    };
    if matches!(node.get("Value").map(|v| &v.value), Some(Value::Seq(_))) {
        return Err(err(
            Code::Value,
            line,
            "'Value' must be a scalar; use 'Values' with IsIn",
        ));
    }
    Ok(expr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::yaml::parse_documents;

    fn lower(text: &str) -> Result<String, String> {
        let docs = parse_documents(text).unwrap();
        lower_list(&docs[0])
            .map(|expr| expr.to_string())
            .map_err(|err| format!("{}: {}", err.line, err.message))
    }

    #[test]
    fn key_conditions_and_combinators() {
        assert_eq!(
            lower("- Key: action\n  Condition: Equals\n  Value: repo.archived\n").unwrap(),
            "action eq_cased \"repo.archived\""
        );
        assert_eq!(
            lower(
                "- Any:\n  - KeyPath: a.b[*].c\n    Condition: IStartsWith\n    Value: X\n  - Key: n\n    Condition: IsGreaterThan\n    Value: 3\n"
            )
            .unwrap(),
            "a.b.c startswith \"x\" or n gt 3"
        );
        assert_eq!(
            lower("- Key: k\n  Condition: IsNotIn\n  Values: [a, b]\n").unwrap(),
            "not (k eq_cased \"a\" or k eq_cased \"b\")"
        );
        assert_eq!(lower("- All: []\n").unwrap(), "true");
        assert!(
            lower("- OnlyOne:\n  - {Key: a, Condition: Exists}\n  - {Key: b, Condition: Exists}\n")
                .unwrap()
                .contains("not")
        );
    }

    #[test]
    fn unsupported_and_broken_matchers_name_the_line() {
        assert_eq!(
            lower("- Key: a\n  Condition: IsNullOrEmpty\n").unwrap_err(),
            "2: simple detection condition 'IsNullOrEmpty' is not supported (it has no exact IR form)"
        );
        assert!(lower("- Key: a\n").unwrap_err().contains("Condition"));
        assert!(
            lower("- Key: a\n  Condition: IsGreaterThan\n  Value: x\n")
                .unwrap_err()
                .contains("numeric")
        );
        assert!(lower("Key: a\n").is_err());
    }
}
