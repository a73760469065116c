//! The catalog as one JSON document (`vigil catalog --format json`, `vigil explain --format
//! json`), for other tools. Built as `serde_json::Value`s: the catalog defines no `Serialize`
//! types (only `crate::enrich` does).
//!
//! Shape: `{"version": 1, "attack": "ATT&CK v18.1 Enterprise", "rules": [<entry>...],
//! "overlaps": {"shared_indicators": [...], "duplicates": [...]}, "coverage": [<tactic>...]}`.

use serde_json::{Value, json};

use super::{Catalog, Entry};

pub fn catalog(catalog: &Catalog) -> Value {
    json!({
        "version": 1,
        "attack": "ATT&CK v18.1 Enterprise",
        "rules": catalog.entries.iter().map(entry).collect::<Vec<_>>(),
        "overlaps": {
            "shared_indicators": catalog.shared_indicators.iter().map(|shared| json!({
                "field": shared.indicator.field,
                "op": shared.indicator.op,
                "value": shared.indicator.value,
                "rules": shared.rules,
            })).collect::<Vec<_>>(),
            "duplicates": catalog.duplicates.iter().map(|group| json!({
                "kind": group.kind,
                "shared": group.shared,
                "rules": group.rules,
                "cross_format": group.cross_format,
            })).collect::<Vec<_>>(),
        },
        "coverage": catalog.coverage.iter().map(|column| json!({
            "tactic": column.id,
            "name": column.name,
            "tactic_only": column.tactic_only,
            "techniques": column.cells.iter().filter(|cell| !cell.rules.is_empty()).map(|cell| json!({
                "id": cell.id,
                "name": cell.name,
                "rules": cell.rules,
                "sub_techniques": cell.subs.iter().map(|(id, count)| json!({"id": id, "rules": count})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "uncovered": column.cells.iter().filter(|cell| cell.rules.is_empty()).map(|cell| cell.id.clone()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub fn entry(entry: &Entry) -> Value {
    json!({
        "id": entry.id,
        "name": entry.name,
        "title": entry.title,
        "format": entry.format,
        "type": entry.kind,
        "severity": entry.severity,
        "file": entry.source,
        "description": entry.description,
        "runbook": entry.runbook,
        "references": entry.references,
        "compliance": entry.compliance,
        "log_types": entry.log_types,
        "tags": entry.tags,
        "status": entry.status,
        "alerting": entry.alerting,
        "used_by": entry.used_by,
        "attack": entry.attack.iter().map(|row| json!({
            "tactic": if row.id.is_empty() { Value::Null } else { json!(row.id) },
            "name": row.name,
            "techniques": row.techniques.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "logic": {
            "mode": entry.logic.mode,
            "note": entry.logic.note,
            "conjuncts": entry.logic.conjuncts,
        },
        "exclusions": entry.exclusions.iter().map(|row| json!({
            "field": row.field, "kind": row.kind, "values": row.values,
        })).collect::<Vec<_>>(),
        "indicators": entry.indicators.iter().map(|use_| json!({
            "field": use_.indicator.field,
            "op": use_.indicator.op,
            "value": use_.indicator.value,
            "other_rules": use_.others,
        })).collect::<Vec<_>>(),
        "same_action": entry.same_action.iter().map(|same| json!({
            "action": same.action, "id": same.id, "title": same.title,
            "format": same.format, "severity": same.severity,
        })).collect::<Vec<_>>(),
        "output_fields": entry.output_fields,
        "fields_read": entry.fields_read,
        "tests": entry.tests.iter().map(|test| json!({
            "name": test.name, "expected": test.expected, "actual": test.actual,
            "passed": test.passed, "error": test.error,
        })).collect::<Vec<_>>(),
        "correlation": entry.correlation.as_ref().map(|corr| json!({
            "rules": corr.rules.iter().map(|(reference, id, title)| json!({
                "reference": reference, "id": id, "title": title,
            })).collect::<Vec<_>>(),
            "group_by": corr.group_by,
            "window": corr.window,
            "condition": corr.condition,
            "generate": corr.generate,
        })),
    })
}
