//! The output schema: the only module that decides what vigil adds to the stream.
//!
//! An event that matched is written as its original bytes with one more top-level key (by
//! default `vigil`) spliced in before the closing brace; the event itself is never
//! re-serialized. A line that is not a JSON object is written as an error record. Both shapes
//! are defined here and nowhere else; every type that derives `Serialize` lives in this module.
//!
//! ```text
//! "vigil": {
//!   "severity": "high",            // highest among alerting entries; absent when none alerts
//!   "matches": [{"id", "title", "format", "severity", "alert", "tactics", "techniques", "tags",
//!                "context", "dedup", "count"}],   // the last three only when the rule has them:
//!                // context = Panther alert_context(), dedup = the dedup string, count = matches
//!                // towards the rule's threshold (alert is false until it is reached)
//!   "correlations": [{"id", "title", "type", "severity", "alert", "group", "count" | "value", "window",
//!                     "first_seen", "rules", "tactics", "techniques"}],
//!   "tactics": [...], "techniques": [...]   // union of the entries above, sorted, deduplicated
//! }
//! ```

use serde::Serialize;

use crate::correlate::CorrelationHit;
use crate::eval::{Detections, Engine};
use crate::ir::{CorrelationKind, Meta, Severity};

#[derive(Serialize)]
struct Enrichment<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    matches: Vec<MatchEntry<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    correlations: Vec<CorrelationEntry<'a>>,
    tactics: Vec<&'a str>,
    techniques: Vec<&'a str>,
    /// Set when the object would have been larger than `--max-enrichment-bytes` and parts of
    /// it were left out (see [`write_enrichment_bounded`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    /// With `truncated`, when the entries themselves were left out: how many there were.
    #[serde(skip_serializing_if = "Option::is_none")]
    n_matches: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n_correlations: Option<usize>,
}

#[derive(Serialize)]
struct MatchEntry<'a> {
    id: &'a str,
    title: &'a str,
    format: &'static str,
    severity: &'static str,
    alert: bool,
    tactics: &'a [String],
    techniques: &'a [String],
    tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dedup: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}

#[derive(Serialize)]
struct CorrelationEntry<'a> {
    id: &'a str,
    title: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    severity: &'static str,
    alert: bool,
    group: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
    window: &'a str,
    first_seen: String,
    rules: &'a [String],
    tactics: &'a [String],
    techniques: &'a [String],
}

#[derive(Serialize)]
struct ErrorRecord<'a> {
    message: &'a str,
    #[serde(flatten)]
    marker: std::collections::BTreeMap<&'a str, ErrorMarker<'a>>,
}

#[derive(Serialize)]
struct ErrorMarker<'a> {
    error: &'a str,
}

/// How much of the enrichment object to write.
#[derive(Clone, Copy, PartialEq)]
enum Detail {
    /// Everything.
    Full,
    /// Every entry, without the per-match outputs of rule code (`context`, `dedup`), which are
    /// the only parts whose size a rule controls.
    NoOutputs,
    /// The record-level summary (severity, ATT&CK ids) and the number of entries.
    Summary,
}

/// Writes the enrichment object for `detections` (which must not be empty) as JSON.
pub fn write_enrichment(engine: &Engine, detections: &Detections, out: &mut Vec<u8>) {
    write_enrichment_with(engine, detections, Detail::Full, out);
}

/// [`write_enrichment`], keeping the object within `max_bytes` (`--max-enrichment-bytes`): when
/// the whole object is larger, it is written again without the rule-code outputs (`context`,
/// `dedup`), and when that is still too large, as the summary alone with the entry counts; both
/// carry `"truncated": true`. Returns whether the object was truncated. The summary is bounded
/// by the rule set (its severity and ATT&CK ids), not by the event, so a limit of a few
/// kilobytes always holds.
pub fn write_enrichment_bounded(
    engine: &Engine,
    detections: &Detections,
    max_bytes: usize,
    out: &mut Vec<u8>,
) -> bool {
    let start = out.len();
    for detail in [Detail::Full, Detail::NoOutputs] {
        write_enrichment_with(engine, detections, detail, out);
        if out.len() - start <= max_bytes {
            return detail != Detail::Full;
        }
        out.truncate(start);
    }
    write_enrichment_with(engine, detections, Detail::Summary, out);
    true
}

fn write_enrichment_with(
    engine: &Engine,
    detections: &Detections,
    detail: Detail,
    out: &mut Vec<u8>,
) {
    let outputs = detail == Detail::Full;
    let mut severity: Option<Severity> = None;
    let mut tactics: Vec<&str> = Vec::new();
    let mut techniques: Vec<&str> = Vec::new();
    let mut matches = Vec::with_capacity(detections.matches.len());
    for &idx in &detections.matches {
        let rule = &engine.rules()[idx];
        let output = detections.output(idx);
        let alert = engine.alerts(idx) && output.and_then(|o| o.alert) != Some(false);
        let rule_severity = output
            .and_then(|o| o.severity)
            .unwrap_or(rule.meta.severity);
        collect(
            &rule.meta,
            rule_severity,
            alert,
            &mut severity,
            &mut tactics,
            &mut techniques,
        );
        matches.push(MatchEntry {
            id: &rule.meta.id,
            title: output
                .and_then(|o| o.title.as_deref())
                .unwrap_or(&rule.meta.title),
            format: rule.meta.format.as_str(),
            severity: rule_severity.as_str(),
            alert,
            tactics: &rule.meta.attack.tactics,
            techniques: &rule.meta.attack.techniques,
            tags: &rule.meta.tags,
            context: output.filter(|_| outputs).and_then(|o| o.context.as_ref()),
            dedup: output.filter(|_| outputs).and_then(|o| o.dedup.as_deref()),
            count: output.and_then(|o| o.threshold_count),
        });
    }
    let mut correlations = Vec::with_capacity(detections.correlations.len());
    for hit in &detections.correlations {
        let corr = &engine.correlations()[hit.correlation];
        collect(
            &corr.meta,
            corr.meta.severity,
            engine.correlation_alerts(hit.correlation),
            &mut severity,
            &mut tactics,
            &mut techniques,
        );
        correlations.push(correlation_entry(engine, hit));
    }
    tactics.sort_unstable();
    tactics.dedup();
    techniques.sort_unstable();
    techniques.dedup();
    let summary = detail == Detail::Summary;
    let (n_matches, n_correlations) = match summary {
        true => (Some(matches.len()), Some(correlations.len())),
        false => (None, None),
    };
    if summary {
        matches.clear();
        correlations.clear();
    }
    let enrichment = Enrichment {
        severity: severity.map(Severity::as_str),
        matches,
        correlations,
        tactics,
        techniques,
        truncated: detail != Detail::Full,
        n_matches,
        n_correlations,
    };
    // Serializing plain structs of strings, numbers and maps into a Vec cannot fail.
    let _ = serde_json::to_writer(out, &enrichment);
}

/// Adds one entry's severity (when it alerts) and ATT&CK ids to the record-level summary.
fn collect<'a>(
    meta: &'a Meta,
    entry_severity: Severity,
    alert: bool,
    severity: &mut Option<Severity>,
    tactics: &mut Vec<&'a str>,
    techniques: &mut Vec<&'a str>,
) {
    if alert {
        *severity = (*severity).max(Some(entry_severity));
    }
    tactics.extend(meta.attack.tactics.iter().map(String::as_str));
    techniques.extend(meta.attack.techniques.iter().map(String::as_str));
}

fn correlation_entry<'a>(engine: &'a Engine, hit: &CorrelationHit) -> CorrelationEntry<'a> {
    let corr = &engine.correlations()[hit.correlation];
    let is_count = matches!(
        corr.kind,
        CorrelationKind::EventCount
            | CorrelationKind::ValueCount { .. }
            | CorrelationKind::Temporal
            | CorrelationKind::TemporalOrdered
    );
    let group = hit
        .group
        .iter()
        .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
        .collect();
    CorrelationEntry {
        id: &corr.meta.id,
        title: &corr.meta.title,
        kind: corr.kind.as_str(),
        severity: corr.meta.severity.as_str(),
        alert: engine.correlation_alerts(hit.correlation),
        group,
        count: is_count.then_some(hit.value.max(0.0) as u64),
        value: (!is_count).then_some(hit.value),
        window: &corr.timespan_text,
        first_seen: format_time_ms(hit.first_seen_ms),
        rules: engine.correlation_sources(hit.correlation),
        tactics: &corr.meta.attack.tactics,
        techniques: &corr.meta.attack.techniques,
    }
}

/// RFC 3339 with millisecond precision, UTC.
pub fn format_time_ms(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(time) => time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => ms.to_string(),
    }
}

/// Splices `"<field>": <value>` into the JSON object `original` (whose last non-space byte is
/// `}`) and appends the result to `out`. The original bytes are copied unchanged.
pub fn splice(original: &[u8], field: &str, value: &[u8], out: &mut Vec<u8>) {
    let close = original
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .filter(|&idx| original[idx] == b'}');
    let Some(close) = close else {
        debug_assert!(false, "splice called on a non-object");
        out.extend_from_slice(original);
        return;
    };
    let empty = original[..close]
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .is_some_and(|idx| original[idx] == b'{');
    out.extend_from_slice(&original[..close]);
    if !empty {
        out.push(b',');
    }
    let _ = serde_json::to_writer(&mut *out, field);
    out.push(b':');
    out.extend_from_slice(value);
    out.push(b'}');
}

/// Like [`splice`], for an object that already has a top-level `field`: that entry is replaced
/// by `value` (moved to the end), every other entry is copied with its value's bytes unchanged.
/// Returns false (writing nothing) if `original` is not a JSON object.
pub fn replace_key(original: &str, field: &str, value: &[u8], out: &mut Vec<u8>) -> bool {
    let Ok(RawEntries(entries)) = serde_json::from_str::<RawEntries<'_>>(original) else {
        return false;
    };
    out.push(b'{');
    for (key, raw) in entries.iter().filter(|(key, _)| key != field) {
        let _ = serde_json::to_writer(&mut *out, key);
        out.push(b':');
        out.extend_from_slice(raw.get().as_bytes());
        out.push(b',');
    }
    let _ = serde_json::to_writer(&mut *out, field);
    out.push(b':');
    out.extend_from_slice(value);
    out.push(b'}');
    true
}

/// A JSON object's entries in source order, values kept as raw text.
struct RawEntries<'a>(Vec<(String, &'a serde_json::value::RawValue)>);

impl<'de> serde::Deserialize<'de> for RawEntries<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> serde::de::Visitor<'de> for EntriesVisitor {
            type Value = RawEntries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(RawEntries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// The record written for a line that cannot be passed through as an event:
/// `{"message": "<text>", "<field>": {"error": "<kind>"}}`.
pub fn write_error_record(field: &str, message: &str, kind: &str, out: &mut Vec<u8>) {
    let mut marker = std::collections::BTreeMap::new();
    marker.insert(field, ErrorMarker { error: kind });
    let record = ErrorRecord { message, marker };
    let _ = serde_json::to_writer(out, &record);
}

/// The marker spliced into a valid outer record whose payload could not be evaluated:
/// `{"error": "<kind>"}`.
pub fn write_error_marker(kind: &str, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(out, &ErrorMarker { error: kind });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spliced(original: &str) -> String {
        let mut out = Vec::new();
        splice(original.as_bytes(), "vigil", br#"{"x":1}"#, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn splice_keeps_original_bytes() {
        assert_eq!(
            spliced(r#"{"b": 2,  "a":1}"#),
            r#"{"b": 2,  "a":1,"vigil":{"x":1}}"#
        );
        assert_eq!(spliced("{}"), r#"{"vigil":{"x":1}}"#);
        assert_eq!(spliced("{ }  "), r#"{ "vigil":{"x":1}}"#);
        assert_eq!(spliced("{\"a\":{}}\r"), r#"{"a":{},"vigil":{"x":1}}"#);
    }

    #[test]
    fn replace_key_keeps_order_and_value_bytes() {
        let mut out = Vec::new();
        let original = r#"{"b": 1.50, "vigil": {"old": true}, "a": [1, 2]}"#;
        assert!(replace_key(original, "vigil", br#"{"x":1}"#, &mut out));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"b":1.50,"a":[1, 2],"vigil":{"x":1}}"#
        );
        assert!(!replace_key("[1]", "vigil", b"{}", &mut Vec::new()));
    }

    #[test]
    fn error_record_is_valid_json() {
        let mut out = Vec::new();
        write_error_record("vigil", "not \"json\"\u{fffd}", "invalid_json", &mut out);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["message"], "not \"json\"\u{fffd}");
        assert_eq!(value["vigil"]["error"], "invalid_json");
    }

    #[test]
    fn time_format() {
        assert_eq!(
            format_time_ms(1_688_989_320_500),
            "2023-07-10T11:42:00.500Z"
        );
    }
}
