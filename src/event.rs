//! The event view the evaluator reads: field lookup by dotted path.
//!
//! Lookup rules (shared by every rule format):
//! - a path is first tried as one literal key of the top-level object (`"userIdentity.type"`
//!   written flat, as some shippers flatten), then walked segment by segment;
//! - while walking, an array fans out: `requestParameters.ipPermissions.items.cidrIp` visits
//!   `cidrIp` in every element of `items`;
//! - the value found at the end is handed to the caller as is, arrays included (the matcher
//!   decides that "any element matches").

use std::borrow::Cow;

use serde_json::Value;

use crate::ir::FieldPath;

#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    root: &'a Value,
}

impl<'a> Event<'a> {
    pub fn new(root: &'a Value) -> Event<'a> {
        Event { root }
    }

    pub fn root(&self) -> &'a Value {
        self.root
    }

    /// Calls `visit` with each value found at `path` until it returns true; returns whether it
    /// did. A path that leads nowhere visits nothing.
    pub fn any_value(&self, path: &FieldPath, visit: &mut dyn FnMut(&'a Value) -> bool) -> bool {
        if let Some(value) = self.root.get(path.raw.as_str()) {
            return visit(value);
        }
        if path.segments.len() < 2 {
            return false;
        }
        walk(self.root, &path.segments, visit)
    }

    /// The first value found at `path`, if any.
    pub fn first(&self, path: &FieldPath) -> Option<&'a Value> {
        let mut found = None;
        self.any_value(path, &mut |value| {
            found = Some(value);
            true
        });
        found
    }

    /// True when `path` leads to at least one value (JSON `null` included).
    pub fn exists(&self, path: &FieldPath) -> bool {
        self.any_value(path, &mut |_| true)
    }
}

/// The text a value compares as, for every rule format and for correlation keys: strings as
/// they are, numbers and booleans as their JSON text ([`number_text`]), objects and arrays as
/// compact JSON; `null` has none.
pub fn text_of(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Bool(true) => Some(Cow::Borrowed("true")),
        Value::Bool(false) => Some(Cow::Borrowed("false")),
        Value::Number(number) => Some(Cow::Owned(number_text(number))),
        Value::Object(_) | Value::Array(_) => Some(Cow::Owned(value.to_string())),
        Value::Null => None,
    }
}

/// The canonical text of a JSON number. `10`, `10.0` and `1e1` are the same JSON number, so a
/// whole float within the exactly representable range is written as an integer (`10`): a rule
/// value `10` matches all three, and they group and count as one value in correlations.
pub fn number_text(number: &serde_json::Number) -> String {
    match number.as_f64() {
        Some(float) if number.is_f64() && float.fract() == 0.0 && float.abs() < 9.0e15 => {
            format!("{}", float as i64)
        }
        _ => number.to_string(),
    }
}

/// The number a value compares as: a JSON number, or a string that parses as a finite number.
pub fn number_of(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(number) => number.as_f64()?,
        Value::String(text) => text.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    number.is_finite().then_some(number)
}

fn walk<'a>(
    current: &'a Value,
    segments: &[String],
    visit: &mut dyn FnMut(&'a Value) -> bool,
) -> bool {
    let Some((head, rest)) = segments.split_first() else {
        return visit(current);
    };
    match current {
        Value::Object(map) => match map.get(head.as_str()) {
            Some(next) => walk(next, rest, visit),
            None => false,
        },
        Value::Array(items) => items.iter().any(|item| walk(item, segments, visit)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collect(event: &Value, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        Event::new(event).any_value(&FieldPath::new(path), &mut |v| {
            out.push(v.clone());
            false
        });
        out
    }

    #[test]
    fn nested_flat_and_fan_out() {
        let event = json!({
            "userIdentity": {"type": "Root", "sessionContext": {"mfa": "false"}},
            "flat.key": 1,
            "requestParameters": {"items": [{"cidrIp": "0.0.0.0/0"}, {"cidrIp": "10.0.0.0/8"}]}
        });
        assert_eq!(collect(&event, "userIdentity.type"), vec![json!("Root")]);
        assert_eq!(collect(&event, "flat.key"), vec![json!(1)]);
        assert_eq!(
            collect(&event, "requestParameters.items.cidrIp"),
            vec![json!("0.0.0.0/0"), json!("10.0.0.0/8")]
        );
        assert!(collect(&event, "userIdentity.missing").is_empty());
        assert!(collect(&event, "userIdentity.type.deeper").is_empty());
        let ev = Event::new(&event);
        assert!(ev.exists(&FieldPath::new("userIdentity")));
        assert!(!ev.exists(&FieldPath::new("nope")));
    }

    #[test]
    fn whole_floats_read_as_integers() {
        let text = |value: Value| text_of(&value).map(Cow::into_owned);
        assert_eq!(text(json!(10)).as_deref(), Some("10"));
        assert_eq!(text(json!(10.0)).as_deref(), Some("10"));
        assert_eq!(text(json!(-0.0)).as_deref(), Some("0"));
        assert_eq!(text(json!(10.5)).as_deref(), Some("10.5"));
        assert_eq!(text(json!(1e300)).as_deref(), Some("1e+300"));
        assert_eq!(
            text(json!(u64::MAX)).as_deref(),
            Some("18446744073709551615")
        );
    }
}
