//! Sigma correlation documents (`correlation:`) lowered into [`crate::ir::Correlation`].
//!
//! What is accepted (spec v2.1 plus the pySigma extensions our users write):
//! - `type`: `event_count`, `value_count`, `temporal`, `temporal_ordered`, `value_sum`,
//!   `value_avg`, `value_percentile`; pySigma's `value_median` is `value_percentile` at 50.
//! - `rules`: a list of ids or names, or one string.
//! - `group-by`: a list, one string, or absent (one global group, as pySigma).
//! - `timespan`: `<int><unit>` with unit `s m h d` (spec) or `w`, `M` (2629746 s), `y`
//!   (31556952 s) as pySigma.
//! - `condition`: one or more of `gt gte lt lte eq neq` (several are ANDed: a range), plus
//!   `field` (value types) and `percentile`. `field` and `percentile` are also accepted directly
//!   under `correlation:`. For `temporal*` the condition is optional and defaults to
//!   `gte: <number of rules>`; the pySigma string form (`a and b`) is reported as unsupported.
//! - `aliases`, `generate` (default false).
//! - Metadata: lowered exactly as a detection rule's (`super::lower_meta`): `id` (falls back
//!   to `name`, then `title`), `name`, `title` (falls back to `name`, then `id`), `level`
//!   (default `medium`), `tags`, `description`, `references`.

use super::loc;
use crate::diag::{Code, Diagnostic};
use crate::ir::{Alias, CmpOp, Condition, Correlation, CorrelationKind, FieldPath};
use crate::rules::yaml::{Node, Value};

/// Lowers one correlation document. `path` is used in diagnostics.
pub fn lower(path: &str, doc: &Node) -> Result<Correlation, Diagnostic> {
    // The metadata keys are those of a detection rule, and so is their lowering.
    let meta = super::lower_meta(path, doc).map_err(|err| super::fail(path, doc, err))?;
    let cx = Cx {
        path,
        id: meta.id.clone(),
    };
    let Some(body) = doc.get("correlation") else {
        return Err(cx.error(Code::Schema, doc.line, "missing 'correlation' section"));
    };
    if body.as_map().is_none() {
        return Err(cx.error(Code::Schema, body.line, "'correlation' must be a mapping"));
    }
    for (key, _) in body.as_map().unwrap_or_default() {
        if !matches!(
            key.text.as_str(),
            "type"
                | "rules"
                | "group-by"
                | "timespan"
                | "condition"
                | "aliases"
                | "generate"
                | "field"
                | "percentile"
        ) {
            return Err(cx.error(
                Code::Schema,
                key.line,
                format!("unknown correlation key '{}'", key.text),
            ));
        }
    }

    let type_node = cx.required(body, "type")?;
    let Some(type_text) = type_node.as_str() else {
        return Err(cx.error(Code::Schema, type_node.line, "'type' must be a string"));
    };

    let rules_node = cx.required(body, "rules")?;
    let rules = match rules_node.string_list() {
        Some(rules) if !rules.is_empty() => rules,
        _ => {
            return Err(cx.error(
                Code::Schema,
                rules_node.line,
                "'rules' must be a non-empty list of rule ids or names",
            ));
        }
    };

    let group_by = match body.get("group-by") {
        None => Vec::new(),
        Some(node) => match node.string_list() {
            Some(fields) => fields,
            None => {
                return Err(cx.error(
                    Code::Schema,
                    node.line,
                    "'group-by' must be a field name or a list of field names",
                ));
            }
        },
    };

    let timespan_node = cx.required(body, "timespan")?;
    let timespan_text = timespan_node.scalar_text().unwrap_or_default();
    let Some(timespan_ms) = parse_timespan_ms(&timespan_text) else {
        return Err(cx.error(
            Code::Value,
            timespan_node.line,
            format!("invalid timespan '{timespan_text}' (expected <number><s|m|h|d|w|M|y>)"),
        ));
    };

    let parsed = cx.condition(body)?;
    let field = parsed.field.map(|(text, _)| FieldPath::new(&text));
    let kind = match (type_text, field) {
        ("event_count", _) => CorrelationKind::EventCount,
        ("temporal", _) => CorrelationKind::Temporal,
        ("temporal_ordered", _) => CorrelationKind::TemporalOrdered,
        ("value_count", Some(field)) => CorrelationKind::ValueCount { field },
        ("value_sum", Some(field)) => CorrelationKind::ValueSum { field },
        ("value_avg", Some(field)) => CorrelationKind::ValueAvg { field },
        ("value_percentile", Some(field)) => CorrelationKind::ValuePercentile {
            field,
            percentile: parsed.percentile.unwrap_or(50.0),
        },
        ("value_median", Some(field)) => CorrelationKind::ValuePercentile {
            field,
            percentile: 50.0,
        },
        ("value_count" | "value_sum" | "value_avg" | "value_percentile" | "value_median", None) => {
            return Err(cx.error(
                Code::Schema,
                parsed.line,
                format!("correlation type '{type_text}' needs 'condition.field'"),
            ));
        }
        (other, _) => {
            return Err(cx.error(
                Code::Unsupported,
                type_node.line,
                format!("unknown correlation type '{other}'"),
            ));
        }
    };
    if parsed.percentile.is_some() && type_text != "value_percentile" {
        return Err(cx.error(
            Code::Schema,
            parsed.line,
            "'percentile' only applies to value_percentile",
        ));
    }

    let comparisons = if parsed.comparisons.is_empty() {
        match kind {
            CorrelationKind::Temporal | CorrelationKind::TemporalOrdered => {
                vec![(CmpOp::Gte, rules.len() as f64)]
            }
            _ => {
                return Err(cx.error(
                    Code::Schema,
                    parsed.line,
                    "'condition' needs at least one of gt, gte, lt, lte, eq, neq",
                ));
            }
        }
    } else {
        parsed.comparisons
    };

    let aliases = match body.get("aliases") {
        None => Vec::new(),
        Some(node) => cx.aliases(node)?,
    };

    let generate = match body.get("generate") {
        None => false,
        Some(node) => match node.value {
            Value::Bool(generate) => generate,
            _ => {
                return Err(cx.error(Code::Schema, node.line, "'generate' must be true or false"));
            }
        },
    };

    Ok(Correlation {
        meta,
        kind,
        rules,
        group_by,
        aliases,
        timespan_ms,
        timespan_text,
        condition: Condition { comparisons },
        generate,
        computed: Vec::new(),
    })
}

/// Parses `<int><unit>` into milliseconds: `s m h d` (spec), `w M y` (pySigma).
/// Zero, negative and overflowing spans are rejected.
pub fn parse_timespan_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let number: i64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let seconds: i64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        'M' => 2_629_746,
        'y' => 31_556_952,
        _ => return None,
    };
    if number <= 0 {
        return None;
    }
    number.checked_mul(seconds)?.checked_mul(1_000)
}

/// The condition section once read: comparisons plus the value field and percentile.
struct ParsedCondition {
    /// Line of the condition (or of the correlation when absent), for diagnostics.
    line: u32,
    comparisons: Vec<(CmpOp, f64)>,
    field: Option<(String, u32)>,
    percentile: Option<f64>,
}

/// Where diagnostics point: the file and the correlation's id.
struct Cx<'a> {
    path: &'a str,
    id: String,
}

impl Cx<'_> {
    fn error(&self, code: Code, line: u32, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(code, loc(self.path, line), message).with_rule(self.id.clone())
    }

    fn required<'n>(&self, body: &'n Node, key: &str) -> Result<&'n Node, Diagnostic> {
        body.get(key).ok_or_else(|| {
            self.error(
                Code::Schema,
                body.line,
                format!("correlation is missing '{key}'"),
            )
        })
    }

    fn condition(&self, body: &Node) -> Result<ParsedCondition, Diagnostic> {
        let mut parsed = ParsedCondition {
            line: body.line,
            comparisons: Vec::new(),
            field: None,
            percentile: None,
        };
        // `field` / `percentile` directly under `correlation:` (older drafts, pySigma).
        if let Some(node) = body.get("field") {
            parsed.field = Some((self.field(node)?, node.line));
        }
        if let Some(node) = body.get("percentile") {
            parsed.percentile = Some(self.percentile(node)?);
        }
        let Some(node) = body.get("condition") else {
            return Ok(parsed);
        };
        parsed.line = node.line;
        let Some(entries) = node.as_map() else {
            if node.as_str().is_some() {
                return Err(self.error(
                    Code::Unsupported,
                    node.line,
                    "extended (string) correlation conditions are not supported",
                ));
            }
            return Err(self.error(Code::Schema, node.line, "'condition' must be a mapping"));
        };
        for (key, value) in entries {
            match key.text.as_str() {
                "field" => parsed.field = Some((self.field(value)?, value.line)),
                "percentile" => parsed.percentile = Some(self.percentile(value)?),
                op_text => {
                    let Some(op) = CmpOp::parse(op_text) else {
                        return Err(self.error(
                            Code::Schema,
                            key.line,
                            format!("unknown condition operator '{op_text}'"),
                        ));
                    };
                    let Some(bound) = number(value) else {
                        return Err(self.error(
                            Code::Value,
                            value.line,
                            format!("condition '{op_text}' needs a number"),
                        ));
                    };
                    parsed.comparisons.push((op, bound));
                }
            }
        }
        Ok(parsed)
    }

    fn field(&self, node: &Node) -> Result<String, Diagnostic> {
        match node.string_list().as_deref() {
            Some([field]) if !field.is_empty() => Ok(field.clone()),
            Some([_, _, ..]) => Err(self.error(
                Code::Unsupported,
                node.line,
                "a list of several value fields is not supported",
            )),
            _ => Err(self.error(Code::Schema, node.line, "'field' must be a field name")),
        }
    }

    fn percentile(&self, node: &Node) -> Result<f64, Diagnostic> {
        match number(node) {
            Some(p) if (0.0..=100.0).contains(&p) => Ok(p),
            _ => Err(self.error(
                Code::Value,
                node.line,
                "'percentile' must be a number from 0 to 100",
            )),
        }
    }

    fn aliases(&self, node: &Node) -> Result<Vec<Alias>, Diagnostic> {
        let Some(entries) = node.as_map() else {
            return Err(self.error(Code::Schema, node.line, "'aliases' must be a mapping"));
        };
        let mut aliases = Vec::with_capacity(entries.len());
        for (name, mapping) in entries {
            let Some(pairs) = mapping.as_map() else {
                return Err(self.error(
                    Code::Schema,
                    mapping.line,
                    format!("alias '{}' must map rule names to fields", name.text),
                ));
            };
            let mut fields = Vec::with_capacity(pairs.len());
            for (rule, field) in pairs {
                match field.as_str() {
                    Some(field) if !field.is_empty() => {
                        fields.push((rule.text.clone(), FieldPath::new(field)))
                    }
                    _ => {
                        return Err(self.error(
                            Code::Schema,
                            field.line,
                            format!(
                                "alias '{}': field for '{}' must be a string",
                                name.text, rule.text
                            ),
                        ));
                    }
                }
            }
            aliases.push(Alias {
                name: name.text.clone(),
                fields,
            });
        }
        Ok(aliases)
    }
}

fn number(node: &Node) -> Option<f64> {
    match &node.value {
        Value::Int(n) => Some(*n as f64),
        Value::Float(f) if f.is_finite() => Some(*f),
        Value::Str(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Severity;
    use crate::rules::yaml::parse_documents;

    fn lower_text(text: &str) -> Result<Correlation, Diagnostic> {
        let docs = parse_documents(text).unwrap();
        lower("test.yml", &docs[0])
    }

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan_ms("30s"), Some(30_000));
        assert_eq!(parse_timespan_ms("5m"), Some(300_000));
        assert_eq!(parse_timespan_ms("1h"), Some(3_600_000));
        assert_eq!(parse_timespan_ms("7d"), Some(604_800_000));
        assert_eq!(parse_timespan_ms("1w"), Some(604_800_000));
        assert_eq!(parse_timespan_ms("1M"), Some(2_629_746_000));
        assert_eq!(parse_timespan_ms("1y"), Some(31_556_952_000));
        assert_eq!(parse_timespan_ms("0s"), None);
        assert_eq!(parse_timespan_ms("-1s"), None);
        assert_eq!(parse_timespan_ms("10"), None);
        assert_eq!(parse_timespan_ms("h"), None);
        assert_eq!(parse_timespan_ms("5x"), None);
        assert_eq!(parse_timespan_ms("99999999999999999y"), None);
        assert_eq!(parse_timespan_ms(""), None);
        assert_eq!(parse_timespan_ms("1é"), None);
    }

    #[test]
    fn event_count_with_meta() {
        let corr = lower_text(
            "title: Many\nid: c1\nname: many\nlevel: high\ntags: [attack.t1110, attack.credential-access]\n\
             correlation:\n  type: event_count\n  rules: r1\n  group-by: User\n  timespan: 1h\n  \
             condition:\n    gte: 10\n    lt: 20\n  generate: true\n",
        )
        .unwrap();
        assert_eq!(corr.meta.id, "c1");
        assert_eq!(corr.meta.name.as_deref(), Some("many"));
        assert_eq!(corr.meta.severity, Severity::High);
        assert_eq!(corr.meta.attack.techniques, vec!["T1110"]);
        assert_eq!(corr.meta.attack.tactics, vec!["TA0006"]);
        assert_eq!(corr.kind, CorrelationKind::EventCount);
        assert_eq!(corr.rules, vec!["r1"]);
        assert_eq!(corr.group_by, vec!["User"]);
        assert_eq!(corr.timespan_ms, 3_600_000);
        assert_eq!(corr.timespan_text, "1h");
        assert_eq!(
            corr.condition.comparisons,
            vec![(CmpOp::Gte, 10.0), (CmpOp::Lt, 20.0)]
        );
        assert!(corr.generate);
    }

    #[test]
    fn temporal_defaults_and_fallback_ids() {
        let corr = lower_text(
            "title: T\ncorrelation:\n  type: temporal_ordered\n  rules: [a, b, c]\n  timespan: 5m\n",
        )
        .unwrap();
        assert_eq!(corr.kind, CorrelationKind::TemporalOrdered);
        assert_eq!(corr.condition.comparisons, vec![(CmpOp::Gte, 3.0)]);
        assert!(corr.group_by.is_empty());
        assert!(!corr.generate);
        assert_eq!(corr.meta.id, "T");
        assert_eq!(corr.meta.severity, Severity::Medium);
        let named =
            lower_text("name: n\ncorrelation:\n  type: temporal\n  rules: [a]\n  timespan: 5m\n")
                .unwrap();
        assert_eq!(named.meta.id, "n");
        assert_eq!(named.meta.title, "n");
    }

    #[test]
    fn value_types_need_a_field() {
        let corr = lower_text(
            "id: p\ncorrelation:\n  type: value_percentile\n  rules: [a]\n  timespan: 1d\n  \
             condition:\n    field: Bytes\n    percentile: 95\n    gt: 10\n",
        )
        .unwrap();
        assert_eq!(
            corr.kind,
            CorrelationKind::ValuePercentile {
                field: FieldPath::new("Bytes"),
                percentile: 95.0
            }
        );
        let top_level = lower_text(
            "id: s\ncorrelation:\n  type: value_sum\n  field: Bytes\n  rules: [a]\n  timespan: 1d\n  \
             condition:\n    gt: 10\n",
        )
        .unwrap();
        assert_eq!(
            top_level.kind,
            CorrelationKind::ValueSum {
                field: FieldPath::new("Bytes")
            }
        );
        let err = lower_text(
            "id: v\ncorrelation:\n  type: value_count\n  rules: [a]\n  timespan: 1d\n  \
             condition:\n    gt: 10\n",
        )
        .unwrap_err();
        assert_eq!(err.code, Code::Schema);
        assert_eq!(err.rule.as_deref(), Some("v"));
        assert_eq!(err.source.line, Some(7));
    }

    #[test]
    fn aliases_lower() {
        let corr = lower_text(
            "id: a\ncorrelation:\n  type: temporal\n  rules: [r1, r2]\n  group-by: [ip]\n  timespan: 10s\n  \
             aliases:\n    ip:\n      r1: source.ip\n      r2: destination.ip\n",
        )
        .unwrap();
        assert_eq!(corr.aliases.len(), 1);
        assert_eq!(corr.aliases[0].name, "ip");
        assert_eq!(
            corr.aliases[0].fields,
            vec![
                ("r1".to_string(), FieldPath::new("source.ip")),
                ("r2".to_string(), FieldPath::new("destination.ip"))
            ]
        );
    }

    #[test]
    fn malformed_documents_are_diagnosed_with_lines() {
        let cases: &[(&str, Code, u32)] = &[
            ("id: x\ncorrelation: 3\n", Code::Schema, 2),
            (
                "id: x\ncorrelation:\n  type: nope\n  rules: [a]\n  timespan: 1h\n",
                Code::Unsupported,
                3,
            ),
            (
                "id: x\ncorrelation:\n  type: event_count\n  rules: []\n  timespan: 1h\n  condition: {gt: 1}\n",
                Code::Schema,
                4,
            ),
            (
                "id: x\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: 1fortnight\n  condition: {gt: 1}\n",
                Code::Value,
                5,
            ),
            (
                "id: x\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: 1h\n",
                Code::Schema,
                3,
            ),
            (
                "id: x\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: 1h\n  condition:\n    above: 3\n",
                Code::Schema,
                7,
            ),
            (
                "id: x\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: 1h\n  condition:\n    gt: many\n",
                Code::Value,
                7,
            ),
            (
                "id: x\ncorrelation:\n  type: temporal\n  rules: [a, b]\n  timespan: 1h\n  condition: a and b\n",
                Code::Unsupported,
                6,
            ),
            (
                "id: x\ncorrelation:\n  type: temporal\n  rules: [a, b]\n  timespan: 1h\n  generate: maybe\n",
                Code::Schema,
                6,
            ),
            (
                "id: x\nlevel: severe\ncorrelation:\n  type: temporal\n  rules: [a]\n  timespan: 1h\n",
                Code::Schema,
                2,
            ),
            (
                "id: x\ncorrelation:\n  type: temporal\n  rules: [a]\n  timespan: 1h\n  aliases: [a]\n",
                Code::Schema,
                6,
            ),
            (
                "id: x\ncorrelation:\n  type: temporal\n  rules: [a]\n  timespan: 1h\n  frobnicate: 1\n",
                Code::Schema,
                6,
            ),
            (
                "id: x\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: 1h\n  condition: {gt: 1, percentile: 5}\n",
                Code::Schema,
                6,
            ),
        ];
        for (text, code, line) in cases {
            let err = lower_text(text).unwrap_err();
            assert_eq!(
                (err.code, err.source.line),
                (*code, Some(*line)),
                "{text}\n{err}"
            );
            assert_eq!(err.rule.as_deref(), Some("x"));
            assert_eq!(err.source.path, "test.yml");
        }
    }

    /// Every correlation document of the corpus lowers without a diagnostic.
    #[test]
    fn corpus_correlations_lower() {
        let Some(corpus) = std::env::var_os("VIGIL_CORPUS") else {
            eprintln!("skipped: VIGIL_CORPUS is not set");
            return;
        };
        let root = std::path::Path::new(&corpus).join("sigma/correlation");
        let mut n_lowered = 0;
        for dir in ["spec_tests", "spec_examples"] {
            let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "yml"))
                .collect();
            files.sort();
            assert!(!files.is_empty(), "no files in {dir}");
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                let display = file.display().to_string();
                for doc in parse_documents(&text).unwrap() {
                    if doc.get("correlation").is_none() {
                        continue;
                    }
                    if let Err(diag) = lower(&display, &doc) {
                        panic!("{diag}");
                    }
                    n_lowered += 1;
                }
            }
        }
        assert_eq!(n_lowered, 11);
    }
}
