//! Evaluates an IR expression against one event.
//!
//! Every [`Predicate`] is implemented here exactly as `crate::ir` documents it. The matcher is
//! two-valued: a predicate over a field that is absent, `null`, or of a type the predicate does
//! not understand is simply false (and `Expr::Not` makes it true), as in the backends Sigma
//! rules are written for.
//!
//! Value text: strings compare as they are, numbers and booleans as their JSON text, objects as
//! their compact JSON text, and arrays fan out (any element). Case-insensitive comparisons fold
//! the event value with [`fold_case`], without allocating when it is ASCII and already lower
//! case. Nothing here panics on event data.

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Timelike};
use serde_json::Value;

use super::time::parse_time_ms;
use crate::event::{Event, number_of, number_text, text_of};
use crate::ir::{DatePart, Expr, FieldPath, Predicate, StrKind, StrMatch, fold_case};

/// True when `expr` holds for `event`.
pub fn matches(expr: &Expr, event: &Event<'_>) -> bool {
    match expr {
        Expr::Const(value) => *value,
        Expr::And(items) => items.iter().all(|item| matches(item, event)),
        Expr::Or(items) => items.iter().any(|item| matches(item, event)),
        Expr::Not(inner) => !matches(inner, event),
        Expr::Field { path, pred } => field_matches(path, pred, event),
        Expr::Keyword(matcher) => event.any_top_value(&mut |value| keyword_matches(value, matcher)),
    }
}

fn field_matches(path: &FieldPath, pred: &Predicate, event: &Event<'_>) -> bool {
    match pred {
        Predicate::Null => {
            let mut found = false;
            let mut null = false;
            event.any_value(path, &mut |value| {
                found = true;
                null = value.is_null();
                null
            });
            !found || null
        }
        Predicate::Exists(wanted) => event.exists(path) == *wanted,
        Predicate::FieldRef { other, kind, cased } => event.any_value(path, &mut |left| {
            any_scalar(left, &mut |left| {
                event.any_value(other, &mut |right| {
                    any_scalar(right, &mut |right| {
                        fieldref_holds(left, right, *kind, *cased)
                    })
                })
            })
        }),
        _ => event.any_value(path, &mut |value| {
            any_scalar(value, &mut |value| value_matches(pred, value))
        }),
    }
}

/// Calls `visit` with `value`, or with each element when it is an array (recursively).
pub(crate) fn any_scalar<'a>(value: &'a Value, visit: &mut dyn FnMut(&'a Value) -> bool) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| any_scalar(item, visit)),
        other => visit(other),
    }
}

/// One non-array value against a predicate (Null, Exists and FieldRef are handled above).
fn value_matches(pred: &Predicate, value: &Value) -> bool {
    match pred {
        Predicate::Null | Predicate::Exists(_) | Predicate::FieldRef { .. } => false,
        Predicate::Str(matcher) => match text_of(value) {
            Some(text) => str_matches(matcher, &text),
            None => false,
        },
        Predicate::Regex(regex) => match text_of(value) {
            Some(text) => regex.is_match(&text),
            None => false,
        },
        Predicate::Num { op, value: bound } => match number_of(value) {
            Some(number) => op.holds(number, *bound),
            None => false,
        },
        Predicate::Cidr(cidr) => match value {
            Value::String(text) => match text.trim().parse::<IpAddr>() {
                Ok(addr) => cidr.contains(addr),
                Err(_) => false,
            },
            _ => false,
        },
        Predicate::DatePart {
            part,
            op,
            value: bound,
        } => match date_part(value, *part) {
            Some(actual) => op.holds(actual, *bound),
            None => false,
        },
    }
}

/// Folds `text` unless it is ASCII without upper-case letters (then it is borrowed).
fn folded(text: &str) -> Cow<'_, str> {
    if text.is_ascii() && !text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(fold_case(text))
    }
}

/// A string test against one value text.
pub(crate) fn str_matches(matcher: &StrMatch, text: &str) -> bool {
    if matcher.kind == StrKind::Glob {
        // The compiled regex carries the case flag itself, so it sees the value as written.
        return match &matcher.glob {
            Some(regex) => regex.is_match(text),
            None => false,
        };
    }
    if matcher.cased {
        kind_holds(matcher.kind, text, &matcher.needle)
    } else if text.is_ascii() && matcher.needle.is_ascii() {
        // The common case (CloudTrail names and values): compare without folding a copy.
        // Both sides ASCII, so Unicode folding is ASCII folding and the needle is already
        // lower case.
        ascii_fold_holds(matcher.kind, text.as_bytes(), matcher.needle.as_bytes())
    } else {
        kind_holds(matcher.kind, &folded(text), &matcher.needle)
    }
}

/// `kind_holds` for an ASCII haystack against an ASCII, already folded needle, ignoring case.
fn ascii_fold_holds(kind: StrKind, haystack: &[u8], needle: &[u8]) -> bool {
    let n = needle.len();
    match kind {
        StrKind::Exact => haystack.eq_ignore_ascii_case(needle),
        StrKind::Prefix => haystack.len() >= n && haystack[..n].eq_ignore_ascii_case(needle),
        StrKind::Suffix => {
            haystack.len() >= n && haystack[haystack.len() - n..].eq_ignore_ascii_case(needle)
        }
        StrKind::Contains => {
            n == 0
                || haystack
                    .windows(n)
                    .any(|window| window.eq_ignore_ascii_case(needle))
        }
        StrKind::Glob => false,
    }
}

fn kind_holds(kind: StrKind, haystack: &str, needle: &str) -> bool {
    match kind {
        StrKind::Exact => haystack == needle,
        StrKind::Prefix => haystack.starts_with(needle),
        StrKind::Suffix => haystack.ends_with(needle),
        StrKind::Contains => haystack.contains(needle),
        // Glob needs a compiled regex; a fieldref never builds one.
        StrKind::Glob => false,
    }
}

fn fieldref_holds(left: &Value, right: &Value, kind: StrKind, cased: bool) -> bool {
    let (Some(left), Some(right)) = (text_of(left), text_of(right)) else {
        return false;
    };
    if cased {
        kind_holds(kind, &left, &right)
    } else {
        kind_holds(kind, &folded(&left), &folded(&right))
    }
}

pub(crate) fn keyword_matches(value: &Value, matcher: &StrMatch) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => str_matches(matcher, text),
        Value::Bool(true) => str_matches(matcher, "true"),
        Value::Bool(false) => str_matches(matcher, "false"),
        Value::Number(number) => str_matches(matcher, &number_text(number)),
        Value::Array(items) => items.iter().any(|item| keyword_matches(item, matcher)),
        Value::Object(map) => map.values().any(|item| keyword_matches(item, matcher)),
    }
}

/// The date part of a time value. RFC 3339 strings keep their own offset (the Sigma time
/// modifiers are "not designed for timezone conversion"), a date-time without an offset is
/// read as written, and epoch seconds or milliseconds (numbers or numeric strings) are UTC.
fn date_part(value: &Value, part: DatePart) -> Option<i64> {
    let time: DateTime<FixedOffset> = match value {
        Value::String(text) => {
            let text = text.trim();
            match DateTime::parse_from_rfc3339(text) {
                Ok(time) => time,
                Err(_) => match parse_naive(text) {
                    Some(naive) => naive.and_utc().fixed_offset(),
                    None => epoch_to_time(parse_time_ms(value)?)?,
                },
            }
        }
        Value::Number(_) => epoch_to_time(parse_time_ms(value)?)?,
        _ => return None,
    };
    Some(match part {
        DatePart::Minute => i64::from(time.minute()),
        DatePart::Hour => i64::from(time.hour()),
        DatePart::Day => i64::from(time.day()),
        DatePart::Week => i64::from(time.iso_week().week()),
        DatePart::Month => i64::from(time.month()),
        DatePart::Year => i64::from(time.year()),
    })
}

fn parse_naive(text: &str) -> Option<NaiveDateTime> {
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
}

fn epoch_to_time(ms: i64) -> Option<DateTime<FixedOffset>> {
    DateTime::from_timestamp_millis(ms).map(|time| time.fixed_offset())
}

#[cfg(test)]
mod ascii_tests {
    use super::*;

    /// The ASCII fast path and the folding path agree on every kind.
    #[test]
    fn ascii_fast_path_agrees_with_folding() {
        let haystacks = [
            "CreateUser",
            "createuser",
            "",
            "xCreateUserx",
            "Create",
            "USER",
        ];
        let needles = ["createuser", "create", "user", "", "teus", "x"];
        for kind in [
            StrKind::Exact,
            StrKind::Prefix,
            StrKind::Suffix,
            StrKind::Contains,
        ] {
            for haystack in haystacks {
                for needle in needles {
                    assert_eq!(
                        ascii_fold_holds(kind, haystack.as_bytes(), needle.as_bytes()),
                        kind_holds(kind, &fold_case(haystack), needle),
                        "{kind:?} {haystack:?} {needle:?}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Cidr, CmpOp, Regex};
    use serde_json::json;

    fn check(expr: &Expr, event: &Value) -> bool {
        matches(expr, &Event::new(event))
    }

    fn str_pred(kind: StrKind, needle: &str, cased: bool) -> Predicate {
        Predicate::Str(StrMatch::new(kind, needle, cased))
    }

    #[test]
    fn string_kinds_fold_case() {
        let event = json!({"a": "Hello World", "n": 42, "b": true, "f": 1.5});
        let cases = [
            (StrKind::Exact, "hello world", true),
            (StrKind::Exact, "hello", false),
            (StrKind::Prefix, "HELLO", true),
            (StrKind::Suffix, "world", true),
            (StrKind::Contains, "o w", true),
            (StrKind::Contains, "xyz", false),
        ];
        for (kind, needle, want) in cases {
            let expr = Expr::field("a", str_pred(kind, needle, false));
            assert_eq!(check(&expr, &event), want, "{kind:?} {needle}");
        }
        assert!(!check(
            &Expr::field("a", str_pred(StrKind::Prefix, "hello", true)),
            &event
        ));
        assert!(check(
            &Expr::field("a", str_pred(StrKind::Prefix, "Hello", true)),
            &event
        ));
        assert!(check(
            &Expr::field("n", str_pred(StrKind::Exact, "42", false)),
            &event
        ));
        assert!(check(
            &Expr::field("b", str_pred(StrKind::Exact, "TRUE", false)),
            &event
        ));
        assert!(check(
            &Expr::field("f", str_pred(StrKind::Exact, "1.5", false)),
            &event
        ));
    }

    #[test]
    fn non_ascii_folding() {
        let event = json!({"a": "ÄRGER"});
        assert!(check(
            &Expr::field("a", str_pred(StrKind::Exact, "ärger", false)),
            &event
        ));
    }

    #[test]
    fn glob_uses_the_compiled_regex() {
        let regex = Regex::new("(?si)^a.c$").unwrap();
        let expr = Expr::field("a", Predicate::Str(StrMatch::glob("a?c", regex, false)));
        assert!(check(&expr, &json!({"a": "AbC"})));
        assert!(!check(&expr, &json!({"a": "abbc"})));
    }

    #[test]
    fn arrays_fan_out_and_null_never_matches_strings() {
        let expr = Expr::field("a", str_pred(StrKind::Exact, "x", false));
        assert!(check(&expr, &json!({"a": ["y", ["x"]]})));
        assert!(!check(&expr, &json!({"a": []})));
        assert!(!check(&expr, &json!({"a": null})));
        assert!(!check(&expr, &json!({})));
    }

    #[test]
    fn objects_compare_as_compact_json() {
        let expr = Expr::field(
            "requestParameters",
            str_pred(StrKind::Contains, "\"policyname\":\"admin\"", false),
        );
        assert!(check(
            &expr,
            &json!({"requestParameters": {"policyName": "Admin", "x": 1}})
        ));
    }

    #[test]
    fn null_and_exists() {
        let null = Expr::field("a", Predicate::Null);
        assert!(check(&null, &json!({})));
        assert!(check(&null, &json!({"a": null})));
        assert!(!check(&null, &json!({"a": ""})));
        assert!(!check(&null, &json!({"a": []})));
        let exists = Expr::field("a", Predicate::Exists(true));
        assert!(check(&exists, &json!({"a": null})));
        assert!(!check(&exists, &json!({"b": 1})));
        let absent = Expr::field("a", Predicate::Exists(false));
        assert!(check(&absent, &json!({"b": 1})));
        assert!(!check(&absent, &json!({"a": []})));
    }

    #[test]
    fn regex_search() {
        let expr = Expr::field("a", Predicate::Regex(Regex::new("b+c").unwrap()));
        assert!(check(&expr, &json!({"a": "abbbcd"})));
        assert!(!check(&expr, &json!({"a": "ABC"})));
        assert!(check(&expr, &json!({"a": ["x", "bc"]})));
    }

    #[test]
    fn numeric_comparisons() {
        let expr = Expr::field(
            "n",
            Predicate::Num {
                op: CmpOp::Gt,
                value: 10.0,
            },
        );
        assert!(check(&expr, &json!({"n": 11})));
        assert!(check(&expr, &json!({"n": " 10.5 "})));
        assert!(!check(&expr, &json!({"n": 10})));
        assert!(!check(&expr, &json!({"n": "NaN"})));
        assert!(!check(&expr, &json!({"n": "inf"})));
        assert!(!check(&expr, &json!({"n": true})));
        assert!(!check(&expr, &json!({"n": "eleven"})));
    }

    #[test]
    fn cidr_membership() {
        let expr = Expr::field("ip", Predicate::Cidr(Cidr::parse("10.0.0.0/8").unwrap()));
        assert!(check(&expr, &json!({"ip": "10.1.2.3"})));
        assert!(!check(&expr, &json!({"ip": "AWS Internal"})));
        assert!(!check(&expr, &json!({"ip": "11.0.0.1"})));
        assert!(check(&expr, &json!({"ip": ["1.1.1.1", "10.9.9.9"]})));
    }

    #[test]
    fn field_references() {
        let pred = |kind, cased| Predicate::FieldRef {
            other: FieldPath::new("b"),
            kind,
            cased,
        };
        let event = json!({"a": "arn:aws:iam::1:user/Bob", "b": "bob", "c": 5, "d": "5"});
        assert!(check(
            &Expr::field("a", pred(StrKind::Suffix, false)),
            &event
        ));
        assert!(!check(
            &Expr::field("a", pred(StrKind::Suffix, true)),
            &event
        ));
        assert!(!check(
            &Expr::field("a", pred(StrKind::Exact, false)),
            &event
        ));
        let num = Expr::field(
            "c",
            Predicate::FieldRef {
                other: FieldPath::new("d"),
                kind: StrKind::Exact,
                cased: false,
            },
        );
        assert!(check(&num, &event));
        assert!(!check(
            &Expr::field("missing", pred(StrKind::Exact, false)),
            &event
        ));
    }

    #[test]
    fn date_parts() {
        let part = |part, op, value| Expr::field("t", Predicate::DatePart { part, op, value });
        let event = json!({"t": "2024-12-30T23:15:00+02:00"});
        assert!(check(&part(DatePart::Hour, CmpOp::Eq, 23), &event));
        assert!(check(&part(DatePart::Minute, CmpOp::Eq, 15), &event));
        assert!(check(&part(DatePart::Day, CmpOp::Eq, 30), &event));
        assert!(check(&part(DatePart::Month, CmpOp::Eq, 12), &event));
        assert!(check(&part(DatePart::Year, CmpOp::Eq, 2024), &event));
        // 2024-12-30 is a Monday in ISO week 1 of 2025.
        assert!(check(&part(DatePart::Week, CmpOp::Eq, 1), &event));
        assert!(check(&part(DatePart::Hour, CmpOp::Gte, 18), &event));
        let epoch = json!({"t": 0});
        assert!(check(&part(DatePart::Year, CmpOp::Eq, 1970), &epoch));
        let naive = json!({"t": "2023-07-10 11:42:00"});
        assert!(check(&part(DatePart::Hour, CmpOp::Eq, 11), &naive));
        assert!(!check(
            &part(DatePart::Hour, CmpOp::Eq, 11),
            &json!({"t": "noon"})
        ));
    }

    #[test]
    fn keywords_search_values_not_keys() {
        let matcher = StrMatch::new(StrKind::Contains, "secret", false);
        let expr = Expr::Keyword(matcher);
        assert!(check(&expr, &json!({"a": {"b": ["x", "TopSecret"]}})));
        assert!(!check(&expr, &json!({"secret": "no"})));
        let num = Expr::Keyword(StrMatch::new(StrKind::Contains, "443", false));
        assert!(check(&num, &json!({"port": 8443})));
    }

    #[test]
    fn boolean_structure() {
        let yes = Expr::field("a", Predicate::Exists(true));
        let no = Expr::field("z", Predicate::Exists(true));
        let event = json!({"a": 1});
        assert!(check(
            &Expr::And(vec![yes.clone(), Expr::Not(Box::new(no.clone()))]),
            &event
        ));
        assert!(!check(&Expr::And(vec![yes.clone(), no.clone()]), &event));
        assert!(check(&Expr::Or(vec![no, yes]), &event));
        assert!(check(&Expr::Const(true), &event));
    }
}
