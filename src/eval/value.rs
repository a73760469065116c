//! Evaluates an [`ValueExpr`] against one event, with ES|QL's null semantics.
//!
//! ES|QL reference, "Working with NULL values in ES|QL"
//! (https://www.elastic.co/docs/reference/query-languages/esql/esql-null-values): a function
//! of null is null, a comparison with null is null, `NOT null` is null, `null AND false` is
//! false, `null OR true` is true, and `WHERE` keeps only rows whose condition is true.
//! Multivalued fields: single-value functions and comparisons return null on them (ES|QL
//! "Multivalued fields" limitations); `IS NULL` is false for them.
//!
//! Types: the event is JSON, not a mapped index, so a value's type is its JSON type. A string
//! compared with a number is compared as a number when it parses as one (the ECS mapping
//! would have made the field numeric), and is null otherwise. Dates are epoch milliseconds:
//! `DATE_TRUNC` reads a date string (RFC 3339) or epoch number.
//!
//! Event access goes through [`read_field`] only.

use std::borrow::Cow;
use std::cmp::Ordering;

use base64::Engine as _;
use serde_json::Value;

use crate::eval::java_date::JavaDatePattern;
use crate::eval::time::parse_time_ms;
use crate::event::{Event, number_text};
use crate::ir::{
    ArithOp, CmpOp, DissectPattern, Func, Literal, StrKind, StrMatch, ValueExpr, fold_case,
};

/// A computed value. `Multi` holds a field's several values.
#[derive(Clone, Debug, PartialEq)]
pub enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(Cow<'a, str>),
    /// Epoch milliseconds (from `DATE_TRUNC`).
    Date(i64),
    Multi(Vec<Val<'a>>),
}

impl Val<'_> {
    fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// The text of a value, as a group-by key or a `count_distinct` value: strings as they
    /// are, numbers as their decimal text, dates as ISO 8601 in UTC with milliseconds (the
    /// way ES|QL prints dates), several values as the first one (as the correlator does for
    /// fields). `None` for null.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Val::Null => None,
            Val::Bool(value) => Some(Cow::Borrowed(if *value { "true" } else { "false" })),
            Val::Int(value) => Some(Cow::Owned(value.to_string())),
            Val::Num(value) => Some(Cow::Owned(crate::ecs::java_double(*value))),
            Val::Str(text) => Some(Cow::Borrowed(text)),
            Val::Date(ms) => Some(Cow::Owned(date_text(*ms))),
            Val::Multi(items) => items.first().and_then(Val::text),
        }
    }
}

/// True when `expr` evaluates to the boolean `true` (what `WHERE` keeps).
pub fn is_true(expr: &ValueExpr, event: &Event<'_>) -> bool {
    matches!(eval(expr, event), Val::Bool(true))
}

/// The value of `expr` as text (see [`Val::text`]); `None` when null.
pub fn eval_text(expr: &ValueExpr, event: &Event<'_>) -> Option<String> {
    eval(expr, event).text().map(Cow::into_owned)
}

/// The value of `expr` as a number, for a sum: integers and finite doubles; `None` for null,
/// text, booleans, several values, or a non-finite double. Integers are summed as doubles,
/// exact up to 2^53.
pub fn eval_number(expr: &ValueExpr, event: &Event<'_>) -> Option<f64> {
    match eval(expr, event) {
        Val::Int(value) => Some(value as f64),
        Val::Num(value) if value.is_finite() => Some(value),
        _ => None,
    }
}

/// Evaluates `expr` on `event`.
pub fn eval<'a>(expr: &ValueExpr, event: &'a Event<'_>) -> Val<'a> {
    match expr {
        ValueExpr::Field(path) => read_field(event.first(path)),
        ValueExpr::Lit(literal) => match literal {
            Literal::Null => Val::Null,
            Literal::Bool(value) => Val::Bool(*value),
            Literal::Int(value) => Val::Int(*value),
            Literal::Num(value) => Val::Num(*value),
            Literal::Str(text) => Val::Str(Cow::Owned(text.clone())),
        },
        ValueExpr::Call(func, args) => call(*func, args, event),
        ValueExpr::Case { arms, otherwise } => {
            for (cond, value) in arms {
                if is_true(cond, event) {
                    return eval(value, event);
                }
            }
            match otherwise {
                Some(otherwise) => eval(otherwise, event),
                None => Val::Null,
            }
        }
        ValueExpr::Cmp(op, left, right) => {
            let left = eval(left, event);
            let right = eval(right, event);
            match compare(&left, &right) {
                Some(ordering) => Val::Bool(op_holds(*op, ordering)),
                None => Val::Null,
            }
        }
        ValueExpr::And(items) => {
            let mut null = false;
            for item in items {
                match eval(item, event) {
                    Val::Bool(true) => {}
                    Val::Bool(false) => return Val::Bool(false),
                    _ => null = true,
                }
            }
            if null { Val::Null } else { Val::Bool(true) }
        }
        ValueExpr::Or(items) => {
            let mut null = false;
            for item in items {
                match eval(item, event) {
                    Val::Bool(true) => return Val::Bool(true),
                    Val::Bool(false) => {}
                    _ => null = true,
                }
            }
            if null { Val::Null } else { Val::Bool(false) }
        }
        ValueExpr::Not(inner) => match eval(inner, event) {
            Val::Bool(value) => Val::Bool(!value),
            _ => Val::Null,
        },
        ValueExpr::IsNull(inner) => Val::Bool(eval(inner, event).is_null()),
        ValueExpr::Like(inner, patterns) => match single_text(eval(inner, event)) {
            Some(text) => Val::Bool(patterns.iter().any(|p| str_match_holds(p, &text))),
            None => Val::Null,
        },
        ValueExpr::Rlike(inner, regex) => match single_text(eval(inner, event)) {
            Some(text) => Val::Bool(regex.is_match(&text)),
            None => Val::Null,
        },
        ValueExpr::In(inner, items) => {
            let value = eval(inner, event);
            let mut null = matches!(value, Val::Null | Val::Multi(_));
            for item in items {
                match compare(&value, &eval(item, event)) {
                    Some(Ordering::Equal) => return Val::Bool(true),
                    Some(_) => {}
                    None => null = true,
                }
            }
            if null { Val::Null } else { Val::Bool(false) }
        }
        ValueExpr::Arith(op, left, right) => arith(*op, eval(left, event), eval(right, event)),
        ValueExpr::Neg(inner) => match eval(inner, event) {
            Val::Int(value) => value.checked_neg().map_or(Val::Null, Val::Int),
            Val::Num(value) => Val::Num(-value),
            _ => Val::Null,
        },
        ValueExpr::Dissect {
            source,
            pattern,
            key,
        } => match single_text(eval(source, event)) {
            Some(text) => match dissect(pattern, &text).and_then(|mut values| {
                values
                    .get_mut(*key)
                    .and_then(Option::take)
                    .map(str::to_string)
            }) {
                Some(value) => Val::Str(Cow::Owned(value)),
                None => Val::Null,
            },
            None => Val::Null,
        },
        ValueExpr::Grok {
            source,
            regex,
            group,
        } => match single_text(eval(source, event)) {
            Some(text) => match regex.captures(&text).and_then(|caps| caps.name(group)) {
                Some(found) => Val::Str(Cow::Owned(found.as_str().to_string())),
                None => Val::Null,
            },
            None => Val::Null,
        },
        ValueExpr::CidrMatch(inner, nets) => match single_text(eval(inner, event)) {
            Some(text) => match text.trim().parse::<std::net::IpAddr>() {
                Ok(addr) => Val::Bool(nets.iter().any(|net| net.contains(addr))),
                Err(_) => Val::Null,
            },
            None => Val::Null,
        },
    }
}

/// A field's JSON value as a [`Val`]: an array of one value is that value, a longer array is
/// `Multi`, an object (no ES|QL type) is null.
fn read_field(value: Option<&Value>) -> Val<'_> {
    match value {
        None | Some(Value::Null) | Some(Value::Object(_)) => Val::Null,
        Some(Value::Bool(value)) => Val::Bool(*value),
        Some(Value::Number(number)) => match number.as_i64() {
            Some(value) => Val::Int(value),
            None => number
                .as_f64()
                .map_or_else(|| Val::Str(Cow::Owned(number_text(number))), Val::Num),
        },
        Some(Value::String(text)) => Val::Str(Cow::Borrowed(text)),
        Some(Value::Array(items)) => {
            let mut values: Vec<Val<'_>> = items
                .iter()
                .map(|item| read_field(Some(item)))
                .filter(|value| !value.is_null())
                .collect();
            match values.len() {
                0 => Val::Null,
                1 => values.remove(0),
                _ => Val::Multi(values),
            }
        }
    }
}

/// The text of a single-valued string (or scalar) value; `None` for null and several values.
fn single_text(value: Val<'_>) -> Option<Cow<'_, str>> {
    match value {
        Val::Null | Val::Multi(_) => None,
        Val::Str(text) => Some(text),
        other => other.text().map(|text| Cow::Owned(text.into_owned())),
    }
}

fn number(value: &Val<'_>) -> Option<f64> {
    match value {
        Val::Int(value) => Some(*value as f64),
        Val::Num(value) => Some(*value),
        Val::Date(ms) => Some(*ms as f64),
        Val::Str(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// The order of two single values, `None` (null) when either is null, several values, or
/// they cannot be compared.
fn compare(left: &Val<'_>, right: &Val<'_>) -> Option<Ordering> {
    match (left, right) {
        (Val::Null | Val::Multi(_), _) | (_, Val::Null | Val::Multi(_)) => None,
        (Val::Str(a), Val::Str(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(b)),
        (Val::Int(a), Val::Int(b)) => Some(a.cmp(b)),
        (Val::Date(a), Val::Date(b)) => Some(a.cmp(b)),
        // A boolean field stored as the string "true"/"false".
        (Val::Bool(a), Val::Str(b)) | (Val::Str(b), Val::Bool(a)) => {
            let text = if *a { "true" } else { "false" };
            let ordering = text.cmp(b.as_ref());
            Some(if matches!(left, Val::Bool(_)) {
                ordering
            } else {
                ordering.reverse()
            })
        }
        (Val::Bool(_), _) | (_, Val::Bool(_)) => None,
        _ => number(left)?.partial_cmp(&number(right)?),
    }
}

fn op_holds(op: CmpOp, ordering: Ordering) -> bool {
    match op {
        CmpOp::Lt => ordering == Ordering::Less,
        CmpOp::Lte => ordering != Ordering::Greater,
        CmpOp::Gt => ordering == Ordering::Greater,
        CmpOp::Gte => ordering != Ordering::Less,
        CmpOp::Eq => ordering == Ordering::Equal,
        CmpOp::Neq => ordering != Ordering::Equal,
    }
}

/// ES|QL arithmetic: integer operations stay integers (division truncates toward zero, as
/// Java's), overflow and division by zero are null (ES|QL returns null with a warning).
fn arith<'a>(op: ArithOp, left: Val<'a>, right: Val<'a>) -> Val<'a> {
    match (&left, &right) {
        (Val::Int(a), Val::Int(b)) => {
            let (a, b) = (*a, *b);
            let result = match op {
                ArithOp::Add => a.checked_add(b),
                ArithOp::Sub => a.checked_sub(b),
                ArithOp::Mul => a.checked_mul(b),
                ArithOp::Div => a.checked_div(b),
                ArithOp::Rem => a.checked_rem(b),
            };
            result.map_or(Val::Null, Val::Int)
        }
        (Val::Int(_) | Val::Num(_), Val::Int(_) | Val::Num(_)) => {
            let (Some(a), Some(b)) = (number(&left), number(&right)) else {
                return Val::Null;
            };
            let result = match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Div if b == 0.0 => return Val::Null,
                ArithOp::Div => a / b,
                ArithOp::Rem if b == 0.0 => return Val::Null,
                ArithOp::Rem => a % b,
            };
            if result.is_finite() {
                Val::Num(result)
            } else {
                Val::Null
            }
        }
        _ => Val::Null,
    }
}

fn call<'a>(func: Func, args: &[ValueExpr], event: &'a Event<'_>) -> Val<'a> {
    if func == Func::Coalesce {
        return args
            .iter()
            .map(|arg| eval(arg, event))
            .find(|value| !value.is_null())
            .unwrap_or(Val::Null);
    }
    let values: Vec<Val<'a>> = args.iter().map(|arg| eval(arg, event)).collect();
    // Every other function is null when an argument is null or has several values.
    if values
        .iter()
        .any(|value| matches!(value, Val::Null | Val::Multi(_)))
    {
        return Val::Null;
    }
    let text = |idx: usize| values.get(idx).and_then(Val::text);
    match func {
        Func::Coalesce => Val::Null,
        Func::ToLower => text(0).map_or(Val::Null, |t| Val::Str(Cow::Owned(fold_case(&t)))),
        Func::ToUpper => text(0).map_or(Val::Null, |t| Val::Str(Cow::Owned(t.to_uppercase()))),
        Func::Concat => {
            let mut out = String::new();
            for value in &values {
                match value.text() {
                    Some(part) => out.push_str(&part),
                    None => return Val::Null,
                }
            }
            Val::Str(Cow::Owned(out))
        }
        Func::Substring => {
            let (Some(text), Some(start)) = (text(0), values.get(1).and_then(number)) else {
                return Val::Null;
            };
            let chars: Vec<char> = text.chars().collect();
            let n_chars = chars.len() as i64;
            let start = start as i64;
            // ES|QL: 1-based; a negative start counts from the end; 0 is the first.
            let from = if start < 0 {
                (n_chars + start).max(0)
            } else {
                (start - 1).max(0)
            };
            let length = match values.get(2) {
                Some(value) => match number(value) {
                    Some(length) if length >= 0.0 => length as i64,
                    _ => return Val::Null,
                },
                None => n_chars,
            };
            let to = from.saturating_add(length).min(n_chars);
            let out: String = chars
                .get(from.min(n_chars) as usize..to.max(from.min(n_chars)) as usize)
                .map(|slice| slice.iter().collect())
                .unwrap_or_default();
            Val::Str(Cow::Owned(out))
        }
        Func::Length => text(0).map_or(Val::Null, |t| Val::Int(t.chars().count() as i64)),
        Func::ToString => text(0).map_or(Val::Null, |t| Val::Str(Cow::Owned(t.into_owned()))),
        Func::ToInteger => match values.first() {
            Some(Val::Int(value)) => Val::Int(*value),
            Some(Val::Num(value)) => to_integer(*value),
            Some(Val::Bool(value)) => Val::Int(i64::from(*value)),
            Some(Val::Date(ms)) => Val::Int(*ms),
            Some(Val::Str(text)) => match text.trim().parse::<i64>() {
                Ok(value) => Val::Int(value),
                // A decimal string is parsed as a double, then converted.
                Err(_) => text.trim().parse::<f64>().map_or(Val::Null, to_integer),
            },
            _ => Val::Null,
        },
        Func::ToDouble => match values.first() {
            Some(Val::Bool(value)) => Val::Num(f64::from(u8::from(*value))),
            Some(value) => number(value).map_or(Val::Null, Val::Num),
            None => Val::Null,
        },
        Func::StartsWith | Func::EndsWith => {
            let (Some(text), Some(affix)) = (text(0), text(1)) else {
                return Val::Null;
            };
            Val::Bool(if func == Func::StartsWith {
                text.starts_with(affix.as_ref())
            } else {
                text.ends_with(affix.as_ref())
            })
        }
        Func::FromBase64 => {
            let Some(text) = text(0) else {
                return Val::Null;
            };
            match base64::engine::general_purpose::STANDARD.decode(text.trim().as_bytes()) {
                // Invalid UTF-8 bytes are replaced: a keyword cannot hold them either.
                Ok(bytes) => Val::Str(Cow::Owned(String::from_utf8_lossy(&bytes).into_owned())),
                Err(_) => Val::Null,
            }
        }
        Func::DateTrunc { span_ms } => {
            let ms = date_ms(values.first());
            match ms {
                Some(ms) if span_ms > 0 => Val::Date(ms.div_euclid(span_ms) * span_ms),
                _ => Val::Null,
            }
        }
        Func::DateFormat => {
            let pattern = text(0).map(|p| JavaDatePattern::parse(p.as_ref()));
            let ms = date_ms(values.get(1));
            match (pattern, ms) {
                (Some(Ok(pattern)), Some(ms)) => pattern
                    .format(ms)
                    .map_or(Val::Null, |s| Val::Str(Cow::Owned(s))),
                _ => Val::Null,
            }
        }
    }
}

/// A date argument as epoch milliseconds: a date, an RFC 3339 string or an epoch number.
fn date_ms(value: Option<&Val<'_>>) -> Option<i64> {
    match value {
        Some(Val::Date(ms)) => Some(*ms),
        Some(Val::Str(text)) => parse_time_ms(&Value::String(text.to_string())),
        Some(Val::Int(ms)) => Some(*ms),
        _ => None,
    }
}

/// A double to a long as ES|QL's `TO_INTEGER`/`TO_LONG` do: truncated, null when out of
/// range or not finite.
fn to_integer(value: f64) -> Val<'static> {
    if value.is_finite() && value >= i64::MIN as f64 && value < i64::MAX as f64 {
        Val::Int(value.trunc() as i64)
    } else {
        Val::Null
    }
}

fn str_match_holds(matcher: &StrMatch, text: &str) -> bool {
    let folded;
    let text = if matcher.cased {
        text
    } else {
        folded = fold_case(text);
        folded.as_str()
    };
    match matcher.kind {
        StrKind::Exact => text == matcher.needle,
        StrKind::Prefix => text.starts_with(matcher.needle.as_str()),
        StrKind::Suffix => text.ends_with(matcher.needle.as_str()),
        StrKind::Contains => text.contains(matcher.needle.as_str()),
        StrKind::Glob => matcher
            .glob
            .as_ref()
            .is_some_and(|glob| glob.is_match(text)),
    }
}

/// Applies a dissect pattern as Elasticsearch's `DissectParser.parse` does
/// (`libs/dissect/.../DissectParser.java`): the input must be longer than the text before the
/// first key and start with it; then the input is walked left to right looking for the
/// current key's delimiter; a match ends the key's value, and each further copy of the same
/// delimiter right after it gives the next key an empty value (consecutive delimiters); a
/// last key without a delimiter takes the rest of the input, while text after a trailing
/// delimiter is ignored. `None` (no match) unless every key got a value. Returns each key's
/// value, `None` for skipped keys.
pub fn dissect<'t>(pattern: &DissectPattern, input: &'t str) -> Option<Vec<Option<&'t str>>> {
    let leading = pattern.leading.as_str();
    if input.len() <= leading.len() || !input.starts_with(leading) || pattern.keys.is_empty() {
        return None;
    }
    let bytes = input.as_bytes();
    let n_keys = pattern.keys.len();
    let mut values: Vec<Option<&'t str>> = vec![None; n_keys];
    let mut n_matched = 0;
    let mut key = 0;
    let mut delimiter = pattern.keys[0].delimiter.as_bytes();
    let mut idx = leading.len();
    let mut value_start = idx;
    while idx < bytes.len() {
        if delimiter.is_empty() || !bytes[idx..].starts_with(delimiter) {
            idx += 1;
            continue;
        }
        values[key] = Some(input.get(value_start..idx)?);
        n_matched += 1;
        idx += delimiter.len();
        let mut exhausted = false;
        while bytes[idx..].starts_with(delimiter) {
            idx += delimiter.len();
            if key + 1 >= n_keys {
                exhausted = true;
                break;
            }
            key += 1;
            values[key] = Some("");
            n_matched += 1;
        }
        if exhausted || key + 1 >= n_keys {
            break;
        }
        key += 1;
        delimiter = pattern.keys[key].delimiter.as_bytes();
        value_start = idx;
    }
    if n_matched < n_keys && delimiter.is_empty() {
        values[key] = Some(input.get(value_start..)?);
        n_matched += 1;
    }
    if n_matched < n_keys {
        return None;
    }
    Some(
        values
            .into_iter()
            .zip(&pattern.keys)
            .map(|(value, key)| key.name.as_ref().and(value))
            .collect(),
    )
}

/// Epoch milliseconds as `2024-01-01T00:00:10.000Z`.
fn date_text(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(time) => time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DissectKey, FieldPath};
    use serde_json::json;

    fn field(name: &str) -> ValueExpr {
        ValueExpr::Field(FieldPath::new(name))
    }

    fn lit(text: &str) -> ValueExpr {
        ValueExpr::Lit(Literal::Str(text.to_string()))
    }

    fn int(value: i64) -> ValueExpr {
        ValueExpr::Lit(Literal::Int(value))
    }

    #[test]
    fn null_propagation_and_three_valued_logic() {
        let doc = json!({"a": "x", "n": 7, "m": ["p", "q"]});
        let event = Event::new(&doc);
        let eq = |l, r| ValueExpr::Cmp(CmpOp::Eq, Box::new(l), Box::new(r));
        assert_eq!(eval(&eq(field("a"), lit("x")), &event), Val::Bool(true));
        assert_eq!(eval(&eq(field("missing"), lit("x")), &event), Val::Null);
        // Several values: a comparison is null, IS NULL is false.
        assert_eq!(eval(&eq(field("m"), lit("p")), &event), Val::Null);
        assert_eq!(
            eval(&ValueExpr::IsNull(Box::new(field("m"))), &event),
            Val::Bool(false)
        );
        let null = eq(field("missing"), lit("x"));
        let yes = eq(field("a"), lit("x"));
        let no = eq(field("a"), lit("y"));
        let and = ValueExpr::And(vec![null.clone(), no.clone()]);
        assert_eq!(eval(&and, &event), Val::Bool(false));
        let and = ValueExpr::And(vec![null.clone(), yes.clone()]);
        assert_eq!(eval(&and, &event), Val::Null);
        let or = ValueExpr::Or(vec![null.clone(), yes]);
        assert_eq!(eval(&or, &event), Val::Bool(true));
        assert_eq!(eval(&ValueExpr::Not(Box::new(null)), &event), Val::Null);
        // A string field compared with a number as a number.
        let gt = ValueExpr::Cmp(CmpOp::Gt, Box::new(field("n")), Box::new(lit("6")));
        assert_eq!(eval(&gt, &event), Val::Bool(true));
    }

    #[test]
    fn functions() {
        let doc = json!({"a": "Hello", "d": "90", "t": "2024-05-01T10:00:17.250Z", "b": "aGkK"});
        let event = Event::new(&doc);
        let call = |func, args| eval(&ValueExpr::Call(func, args), &event);
        let text = |value: Val<'_>| value.text().map(Cow::into_owned);
        assert_eq!(
            text(call(Func::ToLower, vec![field("a")])).as_deref(),
            Some("hello")
        );
        assert_eq!(
            text(call(Func::ToUpper, vec![field("a")])).as_deref(),
            Some("HELLO")
        );
        assert_eq!(
            text(call(Func::Concat, vec![field("a"), lit("-"), field("d")])).as_deref(),
            Some("Hello-90")
        );
        assert_eq!(
            call(Func::Concat, vec![field("a"), field("missing")]),
            Val::Null
        );
        assert_eq!(
            text(call(Func::Substring, vec![field("a"), int(2), int(3)])).as_deref(),
            Some("ell")
        );
        assert_eq!(
            text(call(Func::Substring, vec![field("a"), int(-2)])).as_deref(),
            Some("lo")
        );
        assert_eq!(call(Func::Length, vec![field("a")]), Val::Int(5));
        assert_eq!(
            text(call(Func::Coalesce, vec![field("missing"), field("a")])).as_deref(),
            Some("Hello")
        );
        assert_eq!(call(Func::ToInteger, vec![field("d")]), Val::Int(90));
        assert_eq!(call(Func::ToInteger, vec![lit("1.9")]), Val::Int(1));
        assert_eq!(call(Func::ToInteger, vec![lit("x")]), Val::Null);
        assert_eq!(call(Func::ToDouble, vec![field("d")]), Val::Num(90.0));
        assert_eq!(
            call(Func::StartsWith, vec![field("a"), lit("He")]),
            Val::Bool(true)
        );
        assert_eq!(
            call(Func::EndsWith, vec![field("a"), lit("He")]),
            Val::Bool(false)
        );
        assert_eq!(
            text(call(Func::FromBase64, vec![field("b")])).as_deref(),
            Some("hi\n")
        );
        assert_eq!(call(Func::FromBase64, vec![lit("!!")]), Val::Null);
        assert_eq!(
            text(call(Func::DateTrunc { span_ms: 10_000 }, vec![field("t")])).as_deref(),
            Some("2024-05-01T10:00:10.000Z")
        );
        // Integer division truncates; division by zero is null.
        let div = |l, r| {
            eval(
                &ValueExpr::Arith(ArithOp::Div, Box::new(l), Box::new(r)),
                &event,
            )
        };
        assert_eq!(
            div(call_expr(Func::ToInteger, field("d")), int(60)),
            Val::Int(1)
        );
        assert_eq!(div(int(1), int(0)), Val::Null);
    }

    fn call_expr(func: Func, arg: ValueExpr) -> ValueExpr {
        ValueExpr::Call(func, vec![arg])
    }

    #[test]
    fn doubles_print_as_java_does() {
        assert_eq!(crate::ecs::java_double(12.0), "12.0");
        assert_eq!(crate::ecs::java_double(0.5), "0.5");
        assert_eq!(crate::ecs::java_double(-0.0), "-0.0");
        assert_eq!(crate::ecs::java_double(1e7), "1.0E7");
        assert_eq!(crate::ecs::java_double(12345678.9), "1.23456789E7");
        assert_eq!(crate::ecs::java_double(0.00015), "1.5E-4");
    }

    #[test]
    fn dissect_follows_delimiters_left_to_right() {
        let pattern = DissectPattern {
            text: "{%{?k}=%{v}, %{?k2}=%{w}}".into(),
            leading: "{".into(),
            keys: vec![
                DissectKey {
                    name: None,
                    delimiter: "=".into(),
                },
                DissectKey {
                    name: Some("v".into()),
                    delimiter: ", ".into(),
                },
                DissectKey {
                    name: None,
                    delimiter: "=".into(),
                },
                DissectKey {
                    name: Some("w".into()),
                    delimiter: "}".into(),
                },
            ],
        };
        assert_eq!(
            dissect(&pattern, "{a=1, b=2}"),
            Some(vec![None, Some("1"), None, Some("2")])
        );
        assert_eq!(dissect(&pattern, "{a=1; b=2}"), None);
        // Text after the trailing delimiter is ignored.
        assert_eq!(
            dissect(&pattern, "{a=1, b=2}, c=3}"),
            Some(vec![None, Some("1"), None, Some("2")])
        );
        // Consecutive delimiters give the next key an empty value.
        let pair = DissectPattern {
            text: "%{a},%{b},%{c}".into(),
            leading: String::new(),
            keys: ["a", "b", "c"]
                .iter()
                .enumerate()
                .map(|(idx, name)| DissectKey {
                    name: Some(name.to_string()),
                    delimiter: if idx < 2 { ",".into() } else { String::new() },
                })
                .collect(),
        };
        assert_eq!(
            dissect(&pair, "x,,y"),
            Some(vec![Some("x"), Some(""), Some("y")])
        );
        assert_eq!(dissect(&pair, "x,y"), None);
        assert_eq!(dissect(&pattern, "x{a=1, b=2}"), None);
    }
}
