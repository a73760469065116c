//! Tests carried by Sigma rules: vigil's own `tests:` key.
//!
//! ```yaml
//! tests:
//!   - name: root console login
//!     match: true
//!     event: {eventSource: signin.amazonaws.com, eventName: ConsoleLogin, ...}
//! ```
//!
//! Why a key inside the rule document rather than a sibling file: the Sigma specification
//! allows custom top-level attributes (pySigma keeps them as `custom_attributes`, other tools
//! ignore them), so the rule stays valid Sigma; the examples travel with the rule wherever it
//! goes, into the embedded default pack included; and there is no second file whose name can
//! drift from the rule's or that a directory load would mistake for a rule. The shape mirrors
//! Panther's `Tests:` (name, expected answer, event) in Sigma's lowercase style, so both
//! formats lower into the same `ir::RuleTest` and `vigil test` runs them the same way.

use crate::ir::RuleTest;
use crate::rules::panther::to_json;
use crate::rules::yaml::{Node, Value};

/// The `tests:` of a Sigma rule document; an error is `(line, reason)`.
pub fn lower_sigma(doc: &Node) -> Result<Vec<RuleTest>, (u32, String)> {
    let Some(node) = doc.get("tests") else {
        return Ok(Vec::new());
    };
    let Some(items) = node.as_seq() else {
        return Err((node.line, "'tests' must be a list".to_string()));
    };
    let mut tests = Vec::with_capacity(items.len());
    for (idx, item) in items.iter().enumerate() {
        let name = item
            .get("name")
            .and_then(Node::scalar_text)
            .unwrap_or_else(|| format!("test {}", idx + 1));
        let expected = match item.get("match").map(|node| &node.value) {
            Some(Value::Bool(expected)) => *expected,
            _ => {
                return Err((
                    item.line,
                    format!("test '{name}' needs 'match: true' or 'match: false'"),
                ));
            }
        };
        let event = match item.get("event") {
            Some(event) if event.as_map().is_some() => to_json(event),
            _ => {
                return Err((item.line, format!("test '{name}' needs an 'event' mapping")));
            }
        };
        tests.push(RuleTest {
            name,
            expected,
            event,
            mocks: Vec::new(),
            line: Some(item.line),
        });
    }
    Ok(tests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::yaml::parse_documents;

    #[test]
    fn sigma_tests_key() {
        let docs = parse_documents(
            "title: t\ntests:\n  - name: a\n    match: true\n    event: {eventName: X}\n  - match: false\n    event: {eventName: Y}\n",
        )
        .unwrap();
        let tests = lower_sigma(&docs[0]).unwrap();
        assert_eq!(tests.len(), 2);
        assert_eq!(tests[0].event["eventName"], "X");
        assert_eq!(tests[1].name, "test 2");
        assert!(!tests[1].expected);
        let docs = parse_documents("tests:\n  - name: a\n    event: {}\n").unwrap();
        assert_eq!(lower_sigma(&docs[0]).unwrap_err().0, 2);
    }
}
