//! Panther front end: `AnalysisType: rule` (YAML spec + Python module, or a YAML-only simple
//! detection) and `AnalysisType: correlation_rule`, lowered into the IR.
//!
//! What each YAML key becomes:
//! - `RuleID` → `meta.id`; `DisplayName` → `meta.title` (else the id); `Severity` →
//!   `meta.severity`; `Description`, `Reference` (→ `references`), `Tags` → `tags`;
//!   `Runbook` → `meta.doc.runbook`; `LogTypes` as written → `meta.doc.log_types`.
//! - `Reports`: `MITRE ATT&CK` entries (`TA0007:T1078`) → `meta.attack`; every other framework
//!   (`CIS: [3.5]`) → `extra.compliance` as `CIS:3.5`.
//! - `LogTypes` → `logsource` through [`log_source`] (a table for the types that have a Sigma
//!   name, `Vendor.Type` → `vendor`/`type` otherwise). A rule with several log types runs on
//!   every source whose product they share, or on every source when they share none.
//! - `Enabled: false` → `extra.disabled`: the rule loads (its tests run) but the engine never
//!   evaluates it; a warning says so. `CreateAlert: false` → `extra.silent`.
//! - `Threshold` > 1 with `DedupPeriodMinutes` (60 by default) → `extra.threshold`.
//! - `Detection` and `InlineFilters` → `expr` ([`detection`]); `Filename` → a Python module
//!   parsed by `crate::python` and carried as `extra.native` (`crate::panther_rt`), run after
//!   `expr` holds. `AlertTitle` / `AlertContext` of a simple detection ride along the same way.
//! - `Tests` → `extra.tests` (`Name`, `ExpectedResult`, `Log`, `Mocks`).
//! - `correlation_rule` → an IR correlation ([`correlation`]).
//!
//! Other analysis types (`global`, `datamodel`, `policy`, `scheduled_rule`, ...) are not rules:
//! a warning names them and they are skipped.

pub mod correlation;
pub mod detection;

use std::path::Path;
use std::sync::Arc;

use crate::attack::{self, AttackId};
use crate::diag::{Code, Diagnostic};
use crate::ir::{
    Attack, Expr, Format, LogSource, Meta, MetaDoc, Native, Rule, RuleExtra, RuleTest, Severity,
    SourceLoc, Threshold,
};
use crate::panther_rt::PantherScript;
use crate::rules::yaml::{self, Node, Value};

use super::{CorrelationTests, FailedRule, Loaded};

/// Panther's default `DedupPeriodMinutes`.
pub const DEFAULT_DEDUP_MINUTES: i64 = 60;

/// True when `text` looks like a Panther spec: a top-level `AnalysisType:` key.
pub fn is_panther(text: &str) -> bool {
    text.lines().any(|line| line.starts_with("AnalysisType:"))
}

/// Loads one Panther YAML spec. `path` is also used to find the `Filename:` module next to it.
/// `module_dir`, when given, is where `Filename:` is read from (else next to `path`).
pub fn load(path: &str, text: &str, module_dir: Option<&Path>, out: &mut Loaded) {
    // saphyr rejects a flow mapping whose closing brace ends the file without a newline
    // ("invalid indentation"), which Panther specs do (PyYAML accepts it).
    let owned;
    let text = if text.ends_with('\n') {
        text
    } else {
        owned = format!("{text}\n");
        &owned
    };
    let docs = match yaml::parse_documents(text) {
        Ok(docs) => docs,
        Err(err) => {
            let message = format!("invalid yaml: {}", err.message);
            // The rule id is read from the raw text so that `vigil test` can still name the
            // rule whose tests could not be read.
            let rule_id = text.lines().find_map(|line| {
                let id = line
                    .strip_prefix("RuleID:")?
                    .trim()
                    .trim_matches(['"', '\'']);
                (!id.is_empty()).then(|| id.to_string())
            });
            if let Some(rule_id) = rule_id {
                out.failed_tests.push(FailedRule {
                    rule_id: rule_id.clone(),
                    reason: message.clone(),
                    unsupported: false,
                    tests: Vec::new(),
                });
                out.diagnostics.push(
                    Diagnostic::error(Code::Syntax, loc(path, err.line), message)
                        .with_rule(rule_id),
                );
            } else {
                out.diagnostics.push(Diagnostic::error(
                    Code::Syntax,
                    loc(path, err.line),
                    message,
                ));
            }
            return;
        }
    };
    let doc = match docs.as_slice() {
        [doc] if doc.as_map().is_some() => doc,
        _ => {
            out.diagnostics.push(Diagnostic::error(
                Code::Schema,
                loc(path, 1),
                "a panther spec must be one YAML mapping",
            ));
            return;
        }
    };
    let kind = doc.get("AnalysisType").and_then(Node::as_str).unwrap_or("");
    let rule_id = doc.get("RuleID").and_then(Node::scalar_text);
    let result = match kind {
        "rule" => lower_rule(path, doc, module_dir).map(|rule| {
            if rule.extra.disabled {
                out.diagnostics.push(
                    Diagnostic::warning(
                        Code::Note,
                        rule.meta.source.clone(),
                        "Enabled: false: the rule is loaded (its tests run) but never evaluated",
                    )
                    .with_rule(rule.meta.id.clone()),
                );
            }
            out.set.rules.push(rule);
        }),
        "correlation_rule" => correlation::lower(path, doc).and_then(|(corr, enabled)| {
            let tests = correlation::lower_tests(doc)?;
            if !tests.is_empty() {
                out.correlation_tests.push(CorrelationTests {
                    correlation: corr.clone(),
                    tests,
                });
            }
            if enabled {
                out.set.correlations.push(corr);
            } else {
                out.diagnostics.push(
                    Diagnostic::warning(
                        Code::Note,
                        loc(path, doc.line),
                        "Enabled: false: the correlation rule is not loaded (its tests run)",
                    )
                    .with_rule(rule_id.clone().unwrap_or_default()),
                );
            }
            Ok(())
        }),
        other => {
            out.diagnostics.push(Diagnostic::warning(
                Code::Unsupported,
                loc(path, doc.line),
                format!("AnalysisType '{other}' is not a rule; skipped"),
            ));
            Ok(())
        }
    };
    if let Err(err) = result {
        let diag = Diagnostic::error(err.code, loc(path, err.line), err.message);
        let diag = match &rule_id {
            Some(id) => diag.with_rule(id.clone()),
            None => diag,
        };
        // The tests of a rule that did not load are still reported (as failures), so a
        // test run never silently shrinks.
        if let Some(id) = rule_id {
            let tests = match kind {
                "rule" => lower_tests(doc).unwrap_or_default(),
                // Only the names and expected answers of a correlation's tests are needed to
                // report them as not run.
                _ => correlation::lower_tests(doc)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|test| RuleTest {
                        name: test.name,
                        expected: test.expected,
                        event: serde_json::Value::Null,
                        mocks: Vec::new(),
                        line: test.line,
                    })
                    .collect(),
            };
            out.failed_tests.push(FailedRule {
                rule_id: id,
                reason: diag.message.clone(),
                unsupported: diag.code == Code::Unsupported,
                tests,
            });
        }
        out.diagnostics.push(diag);
    }
}

/// A lowering failure: code, line, reason.
#[derive(Clone, Debug)]
pub struct LowerError {
    pub code: Code,
    pub line: u32,
    pub message: String,
}

impl From<detection::LowerError> for LowerError {
    fn from(err: detection::LowerError) -> LowerError {
        LowerError {
            code: err.code,
            line: err.line,
            message: err.message,
        }
    }
}

pub(crate) fn schema(line: u32, message: impl Into<String>) -> LowerError {
    LowerError {
        code: Code::Schema,
        line,
        message: message.into(),
    }
}

pub(crate) fn loc(path: &str, line: u32) -> SourceLoc {
    SourceLoc {
        path: path.to_string(),
        line: Some(line),
    }
}

fn lower_rule(path: &str, doc: &Node, module_dir: Option<&Path>) -> Result<Rule, LowerError> {
    let mut meta = lower_meta(path, doc)?;
    let logsource = match doc.get("LogTypes") {
        Some(node) => match node.string_list() {
            Some(types) if !types.is_empty() => log_source(&types),
            _ => return Err(schema(node.line, "'LogTypes' must be a list of log types")),
        },
        None => return Err(schema(doc.line, "missing 'LogTypes'")),
    };
    let mut extra = RuleExtra {
        disabled: !bool_key(doc, "Enabled", true)?,
        silent: !bool_key(doc, "CreateAlert", true)?,
        compliance: compliance(doc),
        tests: lower_tests(doc)?,
        ..RuleExtra::default()
    };
    let threshold = int_key(doc, "Threshold")?.unwrap_or(1);
    if threshold > 1 {
        let minutes = int_key(doc, "DedupPeriodMinutes")?.unwrap_or(DEFAULT_DEDUP_MINUTES);
        extra.threshold = Some(Threshold {
            count: threshold as u64,
            period_ms: minutes.max(1) * 60_000,
        });
    }
    let mut parts = Vec::new();
    if let Some(detection) = doc.get("Detection") {
        parts.push(detection::lower_list(detection)?);
    }
    if let Some(filters) = doc.get("InlineFilters") {
        parts.push(detection::lower_list(filters)?);
    }
    let script = match doc.get("Filename") {
        Some(node) => {
            let Some(file) = node.as_str() else {
                return Err(schema(node.line, "'Filename' must be a string"));
            };
            Some(load_module(path, file, module_dir, node.line)?)
        }
        None => None,
    };
    if script.is_none() && doc.get("Detection").is_none() {
        return Err(schema(
            doc.line,
            "a rule needs 'Filename' (a Python module) or 'Detection' (a simple detection)",
        ));
    }
    if let Some(module) = script.as_ref().filter(|module| module.has_function("rule")) {
        // For people reading the rule (the catalog): `rule()` lowered exactly, with the YAML
        // detection parts, or else the admission that `expr` is only a necessary condition.
        extra.logic = match module.lower("rule") {
            Ok(lowered) => {
                let mut exact = parts.clone();
                exact.push(lowered);
                crate::ir::Logic::Lowered {
                    expr: Expr::and(exact),
                    precondition: "on events where every field rule() reads is absent, null \
                                   or a string (as in CloudTrail records)"
                        .to_string(),
                }
            }
            Err(reason) => crate::ir::Logic::NecessaryOnly {
                reason: format!("rule() does not lower into the IR: {reason}"),
            },
        };
    }
    if let Some(module) = &script {
        // `rule()` must hold for a match, so a necessary condition of it may join `expr`: the
        // index then skips the rule on events that cannot match (the native code still
        // decides). Names the rule's tests mock are not trusted, since `vigil test` checks
        // `expr` on the mocked module.
        let mocked: Vec<&str> = extra
            .tests
            .iter()
            .flat_map(|test| test.mocks.iter().map(|(name, _)| name.as_str()))
            .collect();
        parts.push(module.necessary_with_mocks("rule", &mocked));
    }
    let alert_title = doc.get("AlertTitle").and_then(Node::scalar_text);
    let alert_context = match doc.get("AlertContext") {
        Some(node) => lower_alert_context(node)?,
        None => Vec::new(),
    };
    // What a match carries, for the catalog: the keys of `alert_context()`, read from its
    // syntax (with a note when some are computed), else the simple detection's `AlertContext`.
    match script
        .as_ref()
        .and_then(|module| module.returned_keys("alert_context"))
    {
        Some((keys, complete)) => {
            meta.fields = keys;
            if !complete {
                meta.fields
                    .push("(more keys, computed when the rule runs)".to_string());
            }
        }
        None => meta.fields = alert_context.iter().map(|(name, _)| name.clone()).collect(),
    }
    let description = match &script {
        Some(_) => format!("python rule() in {}", sibling_display(path, doc)),
        None => "panther alert title/context".to_string(),
    };
    if script.is_some() || alert_title.is_some() || !alert_context.is_empty() {
        let body = PantherScript::new(
            script,
            alert_title,
            alert_context,
            meta.severity,
            meta.title.clone(),
        );
        extra.native = Some(Native {
            description,
            body: Arc::new(body),
        });
    }
    Ok(Rule {
        meta,
        logsource,
        expr: Expr::and(parts),
        extra,
    })
}

fn sibling_display(path: &str, doc: &Node) -> String {
    let file = doc.get("Filename").and_then(Node::as_str).unwrap_or("");
    match Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(file).display().to_string(),
        _ => file.to_string(),
    }
}

/// Reads and parses the module `file` next to the spec at `path`.
fn load_module(
    path: &str,
    file: &str,
    module_dir: Option<&Path>,
    line: u32,
) -> Result<crate::panther_rt::Module, LowerError> {
    let beside = match Path::new(path).parent() {
        Some(dir) => dir.join(file),
        None => Path::new(file).to_path_buf(),
    };
    let display = beside.display().to_string();
    let module_path = match module_dir {
        Some(dir) => dir.join(file),
        None => beside,
    };
    let source = std::fs::read_to_string(&module_path).map_err(|err| LowerError {
        code: Code::Io,
        line,
        message: format!("cannot read python module {display}: {err}"),
    })?;
    crate::panther_rt::parse_module(&source, &display).map_err(|(py_line, message)| {
        // The runtime prefixes constructs outside its subset with `unsupported: `; anything
        // else is a syntax error in the module.
        let (code, reason) = match message.strip_prefix("unsupported: ") {
            Some(reason) => (Code::Unsupported, reason.to_string()),
            None => (Code::Syntax, message),
        };
        LowerError {
            code,
            line,
            message: format!("{display}:{py_line}: {reason}"),
        }
    })
}

/// `AlertContext: [{KeyName, KeyValue: {Key | KeyPath}}]` of a simple detection.
fn lower_alert_context(node: &Node) -> Result<Vec<(String, crate::ir::FieldPath)>, LowerError> {
    let Some(items) = node.as_seq() else {
        return Err(schema(node.line, "'AlertContext' must be a list"));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let name = item.get("KeyName").and_then(Node::scalar_text);
        let value = item.get("KeyValue");
        let path = value.and_then(|value| {
            value
                .get("Key")
                .and_then(Node::scalar_text)
                .or_else(|| value.get("KeyPath").and_then(Node::scalar_text))
        });
        match (name, path) {
            (Some(name), Some(path)) => {
                out.push((name, crate::ir::FieldPath::new(&path.replace("[*]", ""))))
            }
            _ => {
                return Err(schema(
                    item.line,
                    "an AlertContext entry needs 'KeyName' and 'KeyValue: {Key | KeyPath}'",
                ));
            }
        }
    }
    Ok(out)
}

/// The metadata shared by rules and correlation rules.
pub(crate) fn lower_meta(path: &str, doc: &Node) -> Result<Meta, LowerError> {
    let text = |key: &str| -> Result<Option<String>, LowerError> {
        match doc.get(key) {
            None => Ok(None),
            Some(node) if node.value == Value::Null => Ok(None),
            Some(node) => node
                .scalar_text()
                .map(Some)
                .ok_or_else(|| schema(node.line, format!("'{key}' must be a string"))),
        }
    };
    let Some(id) = text("RuleID")? else {
        return Err(schema(doc.line, "missing 'RuleID'"));
    };
    let title = text("DisplayName")?
        .filter(|title| !title.is_empty())
        .unwrap_or_else(|| id.clone());
    let severity = match doc.get("Severity") {
        None => return Err(schema(doc.line, "missing 'Severity'")),
        Some(node) => match node.as_str().and_then(Severity::parse) {
            Some(severity) => severity,
            None => {
                return Err(schema(
                    node.line,
                    format!(
                        "unknown Severity '{}' (expected Info, Low, Medium, High or Critical)",
                        node.scalar_text().unwrap_or_default()
                    ),
                ));
            }
        },
    };
    let tags = match doc.get("Tags") {
        None => Vec::new(),
        Some(node) if node.value == Value::Null => Vec::new(),
        Some(node) => node
            .string_list()
            .ok_or_else(|| schema(node.line, "'Tags' must be a list of strings"))?,
    };
    let mut attack = Attack::default();
    if let Some(entries) = doc
        .get("Reports")
        .and_then(|reports| reports.get("MITRE ATT&CK"))
        .and_then(Node::string_list)
    {
        for entry in entries {
            for id in attack::from_panther(&entry) {
                match id {
                    AttackId::Tactic(id) => attack.tactics.push(id),
                    AttackId::Technique(id) => attack.techniques.push(id),
                }
            }
        }
    }
    attack.normalize();
    let mut references = Vec::new();
    references.extend(text("Reference")?.filter(|r| !r.trim().is_empty()));
    let log_types = match doc.get("LogTypes") {
        Some(node) => node.string_list().unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Meta {
        id,
        name: None,
        title,
        format: Format::Panther,
        severity,
        tags,
        attack,
        description: text("Description")?.map(|d| d.trim().to_string()),
        references,
        fields: Vec::new(),
        source: loc(path, doc.line),
        doc: MetaDoc {
            runbook: text("Runbook")?
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty()),
            log_types,
        },
    })
}

/// Non-ATT&CK `Reports` entries as `framework:id`.
fn compliance(doc: &Node) -> Vec<String> {
    let Some(reports) = doc.get("Reports").and_then(Node::as_map) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (framework, ids) in reports {
        if framework.text == "MITRE ATT&CK" {
            continue;
        }
        for id in ids.string_list().unwrap_or_default() {
            out.push(format!("{}:{id}", framework.text));
        }
    }
    out
}

fn bool_key(doc: &Node, key: &str, default: bool) -> Result<bool, LowerError> {
    match doc.get(key).map(|node| (&node.value, node.line)) {
        None | Some((Value::Null, _)) => Ok(default),
        Some((Value::Bool(value), _)) => Ok(*value),
        Some((_, line)) => Err(schema(line, format!("'{key}' must be true or false"))),
    }
}

fn int_key(doc: &Node, key: &str) -> Result<Option<i64>, LowerError> {
    match doc.get(key).map(|node| (&node.value, node.line)) {
        None | Some((Value::Null, _)) => Ok(None),
        Some((Value::Int(value), _)) if *value >= 0 => Ok(Some(*value)),
        Some((_, line)) => Err(schema(
            line,
            format!("'{key}' must be a non-negative integer"),
        )),
    }
}

/// The log source a list of Panther log types routes to.
///
/// | Panther log type | product | service |
/// |---|---|---|
/// | `AWS.CloudTrail` | aws | cloudtrail |
/// | `AWS.VPCFlow` | aws | vpcflow |
/// | `AWS.S3ServerAccess` | aws | s3 |
/// | `Okta.SystemLog` | okta | okta |
/// | `GCP.AuditLog` | gcp | gcp.audit |
/// | `GitHub.Audit` | github | audit |
/// | `Azure.Audit` | azure | activitylogs |
/// | `OneLogin.Events` | onelogin | onelogin.events |
/// | any other `Vendor.Type` | vendor | type (both lowercased) |
///
/// Several log types with one product keep the product only; with different products the
/// rule admits every source (its Python decides; `p_log_type` is not in vigil's events).
pub fn log_source(types: &[String]) -> LogSource {
    let one = |log_type: &str| -> (String, Option<String>) {
        let (product, service) = match log_type {
            "AWS.CloudTrail" => ("aws", "cloudtrail"),
            "AWS.VPCFlow" => ("aws", "vpcflow"),
            "AWS.S3ServerAccess" => ("aws", "s3"),
            "Okta.SystemLog" => ("okta", "okta"),
            "GCP.AuditLog" => ("gcp", "gcp.audit"),
            "GitHub.Audit" => ("github", "audit"),
            "Azure.Audit" => ("azure", "activitylogs"),
            "OneLogin.Events" => ("onelogin", "onelogin.events"),
            other => {
                let lower = other.to_ascii_lowercase();
                return match lower.split_once('.') {
                    Some((vendor, kind)) => (vendor.to_string(), Some(kind.to_string())),
                    None => (lower, None),
                };
            }
        };
        (product.to_string(), Some(service.to_string()))
    };
    let parts: Vec<(String, Option<String>)> = types.iter().map(|t| one(t)).collect();
    let first = &parts[0];
    if parts.iter().all(|part| part == first) {
        return LogSource::new(Some(&first.0), first.1.as_deref(), None);
    }
    if parts.iter().all(|part| part.0 == first.0) {
        return LogSource::new(Some(&first.0), None, None);
    }
    LogSource::default()
}

/// `Tests: [{Name, ExpectedResult, Log, Mocks: [{objectName, returnValue}]}]`.
fn lower_tests(doc: &Node) -> Result<Vec<RuleTest>, LowerError> {
    let Some(node) = doc.get("Tests") else {
        return Ok(Vec::new());
    };
    if node.value == Value::Null {
        return Ok(Vec::new());
    }
    let Some(items) = node.as_seq() else {
        return Err(schema(node.line, "'Tests' must be a list"));
    };
    let mut tests = Vec::with_capacity(items.len());
    for (idx, item) in items.iter().enumerate() {
        let name = item
            .get("Name")
            .and_then(Node::scalar_text)
            .unwrap_or_else(|| format!("test {}", idx + 1));
        let expected = match item.get("ExpectedResult").map(|n| &n.value) {
            Some(Value::Bool(value)) => *value,
            _ => {
                return Err(schema(
                    item.line,
                    format!("test '{name}' needs 'ExpectedResult: true|false'"),
                ));
            }
        };
        let Some(log) = item.get("Log") else {
            // Correlation-style tests (`RuleOutputs`) have no log; the caller decides.
            return Err(schema(item.line, format!("test '{name}' has no 'Log'")));
        };
        let mut mocks = Vec::new();
        if let Some(list) = item.get("Mocks").and_then(Node::as_seq) {
            for mock in list {
                let Some(object) = mock.get("objectName").and_then(Node::scalar_text) else {
                    return Err(schema(mock.line, "a mock needs 'objectName'"));
                };
                let value = mock.get("returnValue").map(to_json).unwrap_or_default();
                mocks.push((object, value));
            }
        }
        tests.push(RuleTest {
            name,
            expected,
            event: to_json(log),
            mocks,
            line: Some(item.line),
        });
    }
    Ok(tests)
}

/// A YAML node as JSON (test logs, mock values).
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        Value::Null => J::Null,
        Value::Bool(value) => J::Bool(*value),
        Value::Int(value) => J::from(*value),
        Value::Float(value) => serde_json::Number::from_f64(*value).map_or(J::Null, J::Number),
        Value::Str(text) => J::String(text.clone()),
        Value::Seq(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(key, value)| (key.text.clone(), to_json(value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Loaded {
        let mut loaded = Loaded::default();
        load("mem/rule.yml", text, None, &mut loaded);
        loaded
    }

    const SIMPLE: &str = "AnalysisType: rule\nRuleID: Simple.One\nDisplayName: One\nEnabled: true\nCreateAlert: false\nLogTypes: [GitHub.Audit]\nSeverity: Medium\nReports:\n  MITRE ATT&CK: ['TA0007:T1078']\n  CIS: [3.5]\nThreshold: 3\nDetection:\n  - Key: action\n    Condition: Equals\n    Value: repo.archived\nTests:\n  - Name: yes\n    ExpectedResult: true\n    Log: {action: repo.archived}\n    Mocks: [{objectName: f, returnValue: 'true'}]\n";

    #[test]
    fn simple_detection_metadata() {
        let loaded = load_text(SIMPLE);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let rule = &loaded.set.rules[0];
        assert_eq!(rule.meta.id, "Simple.One");
        assert_eq!(rule.meta.format, Format::Panther);
        assert_eq!(rule.meta.attack.tactics, ["TA0007"]);
        assert_eq!(rule.meta.attack.techniques, ["T1078"]);
        assert_eq!(rule.extra.compliance, ["CIS:3.5"]);
        assert!(rule.extra.silent && !rule.extra.disabled);
        assert_eq!(
            rule.extra.threshold,
            Some(Threshold {
                count: 3,
                period_ms: 3_600_000
            })
        );
        assert_eq!(
            rule.logsource,
            LogSource::new(Some("github"), Some("audit"), None)
        );
        assert_eq!(rule.expr.to_string(), "action eq_cased \"repo.archived\"");
        assert_eq!(rule.extra.tests.len(), 1);
        assert_eq!(rule.extra.tests[0].mocks[0].0, "f");
        assert!(rule.extra.native.is_none());
    }

    #[test]
    fn broken_specs_are_diagnosed_with_lines() {
        let loaded = load_text(
            "AnalysisType: rule\nRuleID: X\nSeverity: Bogus\nLogTypes: [A.B]\nDetection: []\n",
        );
        assert_eq!(
            loaded.diagnostics[0].to_string(),
            "mem/rule.yml:3: error[schema] rule X: unknown Severity 'Bogus' (expected Info, Low, Medium, High or Critical)"
        );
        let loaded = load_text(
            "AnalysisType: rule\nRuleID: X\nSeverity: Info\nLogTypes: [A.B]\nFilename: nope.py\n",
        );
        assert_eq!(loaded.diagnostics[0].code, Code::Io);
        assert_eq!(loaded.diagnostics[0].source.line, Some(5));
        let loaded = load_text("AnalysisType: [\n");
        assert_eq!(loaded.diagnostics[0].code, Code::Syntax);
        let loaded = load_text("AnalysisType: global\nGlobalID: x\n");
        assert!(!loaded.diagnostics[0].is_error());
    }

    #[test]
    fn disabled_rules_load_with_a_note() {
        let loaded = load_text(&SIMPLE.replace("Enabled: true", "Enabled: false"));
        assert!(loaded.set.rules[0].extra.disabled);
        assert_eq!(loaded.diagnostics[0].code, Code::Note);
    }

    #[test]
    fn log_type_table() {
        let ls =
            |types: &[&str]| log_source(&types.iter().map(|t| t.to_string()).collect::<Vec<_>>());
        assert_eq!(
            ls(&["AWS.CloudTrail"]),
            LogSource::new(Some("aws"), Some("cloudtrail"), None)
        );
        assert_eq!(
            ls(&["AWS.CloudTrail", "AWS.VPCFlow"]),
            LogSource::new(Some("aws"), None, None)
        );
        assert_eq!(
            ls(&["AWS.CloudTrail", "Okta.SystemLog"]),
            LogSource::default()
        );
        assert_eq!(
            ls(&["Zoom.Activity"]),
            LogSource::new(Some("zoom"), Some("activity"), None)
        );
    }
}
