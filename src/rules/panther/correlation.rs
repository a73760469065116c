//! Panther correlation rules lowered onto the correlation engine (`crate::correlate`).
//!
//! - `Group` (every member rule matched, in any order, within `LookbackWindowMinutes`, with
//!   equal `MatchCriteria` values) is a `temporal` correlation. `EventEvaluationOrder:
//!   Chronological` orders the matches by event time rather than by processing time, which is
//!   what vigil's windows always do; it does not order the members (the corpus's own tests
//!   expect a group to fire with its members out of listed order). Each `MatchCriteria` key
//!   becomes a group-by name with an alias mapping every member's RuleID to its `Match` field.
//! - `Sequence` with exactly one transition `From → To` within `WithinTimeFrameMinutes` is a
//!   `temporal_ordered` over those two rules with the transition's time frame as window, its
//!   `Match` (`On`, or `From`/`To`) as group-by.
//! - A join field `p_alert_context.<key>` is read from the base rule's `alert_context()`
//!   output, not from the event (the correlator does that for every `p_alert_context.` path).
//!
//! Unsupported, with the reason: `Absence` ("A not followed by B" needs an alert at window
//! end, and vigil only writes the event being evaluated), `MinMatchCount` > 1 (a per-member
//! count; temporal counts distinct members), a member listed twice, sequences with more or
//! fewer than one transition (each transition has its own window; one IR window cannot state
//! them all), and `Match` criteria with different field names per side of a transition.
//!
//! Panther evaluates correlations on a schedule over the lookback window; vigil evaluates on
//! every base-rule match over a sliding window of the same length, so an alert comes earlier
//! but on the same sets of matches. `Tests` (`RuleOutputs`) are not run yet.

use super::{LowerError, lower_meta, schema};
use crate::diag::Code;
use crate::ir::{
    Alias, CmpOp, Condition, Correlation, CorrelationKind, CorrelationTest, FieldPath,
    SyntheticMatch,
};
use crate::rules::yaml::{Node, Value};

/// The correlation and whether it is enabled (`Enabled: false` correlations are lowered so
/// that their tests run, but the caller does not load them).
pub fn lower(path: &str, doc: &Node) -> Result<(Correlation, bool), LowerError> {
    let meta = lower_meta(path, doc)?;
    let enabled = !matches!(
        doc.get("Enabled").map(|n| &n.value),
        Some(Value::Bool(false))
    );
    let Some(detection) = doc.get("Detection") else {
        return Err(schema(doc.line, "missing 'Detection'"));
    };
    let items = detection.as_seq().unwrap_or_default();
    let [item] = items else {
        return Err(schema(
            detection.line,
            "'Detection' of a correlation rule must hold exactly one Group or Sequence",
        ));
    };
    let lowered = if let Some(group) = item.get("Group") {
        lower_group(item, group)?
    } else if let Some(sequence) = item.get("Sequence") {
        lower_sequence(item, sequence)?
    } else {
        return Err(schema(item.line, "expected 'Group' or 'Sequence'"));
    };
    let timespan_text = format!("{}m", lowered.minutes);
    let correlation = Correlation {
        meta,
        kind: lowered.kind,
        condition: Condition {
            comparisons: vec![(CmpOp::Gte, lowered.rules.len() as f64)],
        },
        rules: lowered.rules,
        group_by: lowered.group_by,
        aliases: lowered.aliases,
        timespan_ms: lowered.minutes * 60_000,
        timespan_text,
        generate: true,
        computed: Vec::new(),
    };
    Ok((correlation, enabled))
}

/// The fixed time minute offsets of test matches count from (2024-01-01T00:00:00Z).
const TEST_BASE_MS: i64 = 1_704_067_200_000;

/// The `Tests` of a correlation rule: `RuleOutputs: [{ID, Matches: {field: {value: [time]}}}]`,
/// where `ID` names a group or sequence member and each time is a minute offset (a number) or
/// an RFC 3339 timestamp.
pub fn lower_tests(doc: &Node) -> Result<Vec<CorrelationTest>, LowerError> {
    let Some(items) = doc.get("Tests").and_then(Node::as_seq) else {
        return Ok(Vec::new());
    };
    let members = member_rules(doc);
    let mut tests = Vec::with_capacity(items.len());
    for (idx, item) in items.iter().enumerate() {
        let name = item
            .get("Name")
            .and_then(Node::scalar_text)
            .unwrap_or_else(|| format!("test {}", idx + 1));
        let Some(Value::Bool(expected)) = item.get("ExpectedResult").map(|n| n.value.clone())
        else {
            return Err(schema(
                item.line,
                format!("test '{name}' needs 'ExpectedResult: true|false'"),
            ));
        };
        let mut matches = Vec::new();
        for output in item
            .get("RuleOutputs")
            .and_then(Node::as_seq)
            .unwrap_or_default()
        {
            let id = output
                .get("ID")
                .and_then(Node::scalar_text)
                .unwrap_or_default();
            let Some((_, rule)) = members.iter().find(|(member, _)| *member == id) else {
                return Err(schema(
                    output.line,
                    format!("rule output names unknown member '{id}'"),
                ));
            };
            let fields = output
                .get("Matches")
                .and_then(Node::as_map)
                .unwrap_or_default();
            if fields.len() > 1 {
                return Err(unsupported(
                    output.line,
                    "a rule output with several Matches fields (how they pair up is unspecified)",
                ));
            }
            for (field, values) in fields {
                for (value, times) in values.as_map().unwrap_or_default() {
                    for time in times.as_seq().unwrap_or_default() {
                        let time_ms = match &time.value {
                            Value::Int(minutes) => TEST_BASE_MS + minutes * 60_000,
                            Value::Str(text) => chrono::DateTime::parse_from_rfc3339(text)
                                .map(|t| t.timestamp_millis())
                                .map_err(|err| {
                                    schema(time.line, format!("bad match time '{text}': {err}"))
                                })?,
                            _ => {
                                return Err(schema(
                                    time.line,
                                    "a match time is minutes or an RFC 3339 time",
                                ));
                            }
                        };
                        matches.push(SyntheticMatch {
                            rule: rule.clone(),
                            field: FieldPath::new(&field.text),
                            value: serde_json::Value::String(value.text.clone()),
                            time_ms,
                        });
                    }
                }
            }
        }
        matches.sort_by_key(|m| m.time_ms);
        tests.push(CorrelationTest {
            name,
            expected,
            matches,
            line: Some(item.line),
        });
    }
    Ok(tests)
}

/// `(ID, RuleID)` of the members of a correlation's group or sequence, as far as they read.
fn member_rules(doc: &Node) -> Vec<(String, String)> {
    let Some([item]) = doc.get("Detection").and_then(Node::as_seq) else {
        return Vec::new();
    };
    let list = item.get("Group").or_else(|| item.get("Sequence"));
    list.and_then(Node::as_seq)
        .unwrap_or_default()
        .iter()
        .filter_map(|member| {
            Some((
                member.get("ID").and_then(Node::scalar_text)?,
                member.get("RuleID").and_then(Node::scalar_text)?,
            ))
        })
        .collect()
}

struct Lowered {
    kind: CorrelationKind,
    rules: Vec<String>,
    group_by: Vec<String>,
    aliases: Vec<Alias>,
    minutes: i64,
}

fn unsupported(line: u32, message: impl Into<String>) -> LowerError {
    LowerError {
        code: Code::Unsupported,
        line,
        message: message.into(),
    }
}

/// `(ID, RuleID)` of each member, rejecting what has no exact form.
fn members(list: &Node) -> Result<Vec<(String, String)>, LowerError> {
    let Some(items) = list.as_seq() else {
        return Err(schema(list.line, "expected a list of {ID, RuleID}"));
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for item in items {
        let id = item.get("ID").and_then(Node::scalar_text);
        let rule = item.get("RuleID").and_then(Node::scalar_text);
        let (Some(id), Some(rule)) = (id, rule) else {
            return Err(schema(item.line, "a member needs 'ID' and 'RuleID'"));
        };
        if let Some(node) = item.get("Absence")
            && node.value == Value::Bool(true)
        {
            return Err(unsupported(
                node.line,
                "Absence (a rule that must NOT match) needs an alert at window end; vigil only \
                 alerts on the event being evaluated",
            ));
        }
        if let Some(node) = item.get("MinMatchCount")
            && !matches!(node.value, Value::Int(0 | 1))
        {
            return Err(unsupported(
                node.line,
                "MinMatchCount > 1 needs a per-member count; temporal correlations count distinct members",
            ));
        }
        if out.iter().any(|(_, other)| *other == rule) {
            return Err(unsupported(
                item.line,
                format!("rule '{rule}' is listed twice; members must be distinct rules"),
            ));
        }
        out.push((id, rule));
    }
    if out.is_empty() {
        return Err(schema(list.line, "a correlation needs at least one member"));
    }
    Ok(out)
}

fn minutes(node: Option<&Node>, line: u32, key: &str) -> Result<i64, LowerError> {
    match node.map(|node| &node.value) {
        Some(Value::Int(minutes)) if *minutes > 0 => Ok(*minutes),
        _ => Err(schema(
            line,
            format!("'{key}' must be a positive number of minutes"),
        )),
    }
}

fn lower_group(item: &Node, group: &Node) -> Result<Lowered, LowerError> {
    let members = members(group)?;
    let minutes = minutes(
        item.get("LookbackWindowMinutes"),
        item.line,
        "LookbackWindowMinutes",
    )?;
    if let Some(node) = item.get("EventEvaluationOrder") {
        match node.as_str() {
            Some("Chronological") => {}
            _ => {
                return Err(unsupported(
                    node.line,
                    format!(
                        "EventEvaluationOrder '{}' is not supported (Chronological is)",
                        node.scalar_text().unwrap_or_default()
                    ),
                ));
            }
        }
    }
    let mut group_by = Vec::new();
    let mut aliases = Vec::new();
    if let Some(criteria) = item.get("MatchCriteria") {
        let Some(entries) = criteria.as_map() else {
            return Err(schema(criteria.line, "'MatchCriteria' must be a mapping"));
        };
        for (name, list) in entries {
            let mut fields = Vec::new();
            for entry in list.as_seq().unwrap_or_default() {
                let group_id = entry.get("GroupID").and_then(Node::scalar_text);
                let field = entry.get("Match").and_then(Node::scalar_text);
                let (Some(group_id), Some(field)) = (group_id, field) else {
                    return Err(schema(
                        entry.line,
                        "a criterion needs 'GroupID' and 'Match'",
                    ));
                };
                let Some((_, rule)) = members.iter().find(|(id, _)| *id == group_id) else {
                    return Err(schema(
                        entry.line,
                        format!("criterion names unknown group member '{group_id}'"),
                    ));
                };
                fields.push((rule.clone(), FieldPath::new(&field)));
            }
            if fields.len() != members.len() {
                return Err(unsupported(
                    name.line,
                    format!(
                        "MatchCriteria '{}' does not name every member; a partial join has no exact form",
                        name.text
                    ),
                ));
            }
            group_by.push(name.text.clone());
            aliases.push(Alias {
                name: name.text.clone(),
                fields,
            });
        }
    }
    Ok(Lowered {
        kind: CorrelationKind::Temporal,
        rules: members.into_iter().map(|(_, rule)| rule).collect(),
        group_by,
        aliases,
        minutes,
    })
}

fn lower_sequence(item: &Node, sequence: &Node) -> Result<Lowered, LowerError> {
    let members = members(sequence)?;
    let transitions = item
        .get("Transitions")
        .and_then(Node::as_seq)
        .unwrap_or_default();
    let [transition] = transitions else {
        return Err(unsupported(
            item.line,
            format!(
                "a Sequence with {} transitions: each transition has its own time frame, which one \
                 correlation window cannot state (exactly one transition is supported)",
                transitions.len()
            ),
        ));
    };
    let from = transition.get("From").and_then(Node::scalar_text);
    let to = transition.get("To").and_then(Node::scalar_text);
    let (Some(from), Some(to)) = (from, to) else {
        return Err(schema(
            transition.line,
            "a transition needs 'From' and 'To'",
        ));
    };
    let rule_of = |id: &str| {
        members
            .iter()
            .find(|(member, _)| member == id)
            .map(|(_, rule)| rule.clone())
            .ok_or_else(|| {
                schema(
                    transition.line,
                    format!("transition names unknown member '{id}'"),
                )
            })
    };
    let (from_rule, to_rule) = (rule_of(&from)?, rule_of(&to)?);
    if members.len() != 2 {
        return Err(unsupported(
            sequence.line,
            "a Sequence with members outside its one transition is not supported",
        ));
    }
    let minutes = minutes(
        transition.get("WithinTimeFrameMinutes"),
        transition.line,
        "WithinTimeFrameMinutes",
    )?;
    let mut group_by = Vec::new();
    let mut aliases = Vec::new();
    for (idx, criterion) in transition
        .get("Match")
        .and_then(Node::as_seq)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let (from_field, to_field) = match criterion.get("On").and_then(Node::scalar_text) {
            Some(on) => (on.clone(), on),
            None => {
                let from_field = criterion.get("From").and_then(Node::scalar_text);
                let to_field = criterion.get("To").and_then(Node::scalar_text);
                match (from_field, to_field) {
                    (Some(from_field), Some(to_field)) => (from_field, to_field),
                    _ => {
                        return Err(schema(
                            criterion.line,
                            "a Match criterion needs 'On' or 'From' and 'To'",
                        ));
                    }
                }
            }
        };
        let name = format!("match{}", idx + 1);
        group_by.push(name.clone());
        aliases.push(Alias {
            name,
            fields: vec![
                (from_rule.clone(), FieldPath::new(&from_field)),
                (to_rule.clone(), FieldPath::new(&to_field)),
            ],
        });
    }
    Ok(Lowered {
        kind: CorrelationKind::TemporalOrdered,
        rules: vec![from_rule, to_rule],
        group_by,
        aliases,
        minutes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::yaml::parse_documents;

    fn lower_text(text: &str) -> Result<Correlation, String> {
        let docs = parse_documents(text).unwrap();
        match lower("c.yml", &docs[0]) {
            Ok((corr, true)) => Ok(corr),
            Ok((_, false)) => Err("disabled".to_string()),
            Err(err) => Err(format!("{}: {}", err.line, err.message)),
        }
    }

    const GROUP: &str = "AnalysisType: correlation_rule\nRuleID: C\nSeverity: High\nDetection:\n  - Group:\n      - ID: A\n        RuleID: Rule.A\n      - ID: B\n        RuleID: Rule.B\n    MatchCriteria:\n      user:\n        - GroupID: A\n          Match: p_alert_context.user\n        - GroupID: B\n          Match: userName\n    LookbackWindowMinutes: 30\n";

    #[test]
    fn group_is_temporal_with_aliases() {
        let corr = lower_text(GROUP).unwrap();
        assert_eq!(corr.kind, CorrelationKind::Temporal);
        assert_eq!(corr.rules, ["Rule.A", "Rule.B"]);
        assert_eq!(corr.group_by, ["user"]);
        assert_eq!(corr.aliases[0].fields[0].1.raw, "p_alert_context.user");
        assert_eq!(corr.timespan_ms, 30 * 60_000);
        assert!(corr.condition.holds(2.0) && !corr.condition.holds(1.0));
        // Chronological orders matches by event time (as vigil always does), not the members.
        let chronological =
            lower_text(&format!("{GROUP}    EventEvaluationOrder: Chronological\n")).unwrap();
        assert_eq!(chronological.kind, CorrelationKind::Temporal);
        assert!(lower_text(&format!("{GROUP}    EventEvaluationOrder: Random\n")).is_err());
    }

    #[test]
    fn rule_output_tests() {
        let text = format!(
            "{GROUP}Tests:\n  - Name: both\n    ExpectedResult: true\n    RuleOutputs:\n      - ID: B\n        Matches:\n          userName:\n            bob: [5]\n      - ID: A\n        Matches:\n          p_alert_context.user:\n            bob: ['2024-01-01T00:01:00Z']\n"
        );
        let docs = parse_documents(&text).unwrap();
        let tests = lower_tests(&docs[0]).unwrap();
        assert_eq!(tests.len(), 1);
        let matches = &tests[0].matches;
        assert_eq!(matches[0].rule, "Rule.A");
        assert_eq!(matches[0].time_ms, TEST_BASE_MS + 60_000);
        assert_eq!(matches[1].rule, "Rule.B");
        assert_eq!(matches[1].time_ms, TEST_BASE_MS + 5 * 60_000);
        assert_eq!(matches[1].field.raw, "userName");
    }

    #[test]
    fn absence_and_counts_are_unsupported_with_reasons() {
        let absent = GROUP.replace(
            "RuleID: Rule.B\n",
            "RuleID: Rule.B\n        Absence: true\n",
        );
        assert!(lower_text(&absent).unwrap_err().contains("Absence"));
        let counted = GROUP.replace(
            "RuleID: Rule.B\n",
            "RuleID: Rule.B\n        MinMatchCount: 5\n",
        );
        assert!(lower_text(&counted).unwrap_err().contains("MinMatchCount"));
    }

    #[test]
    fn one_transition_sequence_is_temporal_ordered() {
        let corr = lower_text("AnalysisType: correlation_rule\nRuleID: S\nSeverity: High\nDetection:\n  - Sequence:\n      - ID: A\n        RuleID: Rule.A\n      - ID: B\n        RuleID: Rule.B\n    Transitions:\n      - ID: t\n        From: A\n        To: B\n        WithinTimeFrameMinutes: 45\n        Match:\n          - On: p_alert_context.target\n    LookbackWindowMinutes: 2160\n").unwrap();
        assert_eq!(corr.kind, CorrelationKind::TemporalOrdered);
        assert_eq!(corr.timespan_ms, 45 * 60_000);
        assert_eq!(corr.group_by, ["match1"]);
    }
}
