//! `vigil test [PATH...]`: runs every test the rules carry (Panther `Tests:` with `Mocks:`,
//! Panther correlation rules' `RuleOutputs` tests, and the `tests:` of Sigma rules, see
//! `crate::rules::rule_tests`), plus the cases of any `--cases FILE`, and reports like
//! Panther's own test tool.
//!
//! Text output: one `[FAIL]` line per failing test (rule id, test name, expected and actual
//! answers, the error if any), then a summary (`Passed`, `Failed`, `Invalid` specs). With
//! `--json`, one object per test: `{"rule_id", "test_name", "expected", "actual", "passed",
//! "error"}`; a rule that could not be loaded reports each of its tests with
//! `"error": "unsupported: <reason>"` (or `"invalid: <reason>"` for a broken spec).
//!
//! Exit 0 when every test passed and every spec loaded, 1 otherwise, 2 on a fatal error.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use super::{EXIT_CHECK_FAILED, EXIT_FATAL, EXIT_OK, TestArgs};
use crate::eval::script::{self, ScriptConfig};
use crate::ir::RuleTest;

pub(super) fn test(args: TestArgs) -> u8 {
    let loaded = match super::load_rules(&args.paths, None) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("vigil: error: {err:#}");
            return EXIT_FATAL;
        }
    };
    let mut extra: HashMap<String, Vec<RuleTest>> = HashMap::new();
    for path in &args.cases {
        if let Err(err) = read_cases(path, &mut extra) {
            eprintln!("vigil: error: {err:#}");
            return EXIT_FATAL;
        }
    }
    let config = ScriptConfig {
        step_budget: args.step_budget,
        ..ScriptConfig::default()
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut results = Vec::new();
    for rule in &loaded.set.rules {
        results.extend(run_tests(rule, &rule.extra.tests, now_ms, config));
        if let Some(more) = extra.remove(&rule.meta.id) {
            results.extend(run_tests(rule, &more, now_ms, config));
        }
        // A stateful Elastic rule (threshold, new_terms, EQL sequence, ES|QL STATS) is a
        // correlation over its base query `<id>:query`: a one-event case given for `<id>` asks
        // whether the rule counts that event, which is the base query's answer.
        if let Some(stateful) = rule.meta.id.strip_suffix(":query")
            && let Some(more) = extra.remove(stateful)
        {
            results.extend(run_tests(rule, &more, now_ms, config));
        }
    }
    for entry in &loaded.correlation_tests {
        for test in &entry.tests {
            let outcome = script::run_correlation_test(&entry.correlation, test);
            results.push(TestResult {
                rule_id: entry.correlation.meta.id.clone(),
                test_name: test.name.clone(),
                expected: test.expected,
                actual: outcome.actual,
                passed: outcome.passed(test.expected),
                error: outcome.error,
            });
        }
    }
    let mut invalid = Vec::new();
    for failed in &loaded.failed_tests {
        let kind = if failed.unsupported {
            "unsupported"
        } else {
            "invalid"
        };
        invalid.push(format!("{}: {kind}: {}", failed.rule_id, failed.reason));
        let mut tests = failed.tests.clone();
        tests.extend(extra.remove(&failed.rule_id).unwrap_or_default());
        for test in tests {
            results.push(TestResult {
                rule_id: failed.rule_id.clone(),
                test_name: test.name,
                expected: test.expected,
                actual: None,
                passed: false,
                error: Some(format!("{kind}: {}", failed.reason)),
            });
        }
    }
    let mut orphans: Vec<&String> = extra.keys().collect();
    orphans.sort();
    for rule_id in orphans {
        invalid.push(format!(
            "{rule_id}: cases given for a rule that is not loaded"
        ));
    }

    let mut out = String::new();
    if args.json {
        for result in &results {
            out.push_str(&result.to_json_line());
            out.push('\n');
        }
    } else {
        for result in results.iter().filter(|r| !r.passed) {
            let actual = match result.actual {
                Some(actual) => actual.to_string(),
                None => "error".to_string(),
            };
            out.push_str(&format!(
                "[FAIL] {}: {} (expected {}, got {})",
                result.rule_id, result.test_name, result.expected, actual
            ));
            if let Some(error) = &result.error {
                out.push_str(&format!(": {error}"));
            }
            out.push('\n');
        }
        for line in &invalid {
            out.push_str(&format!("[INVALID] {line}\n"));
        }
        let passed = results.iter().filter(|r| r.passed).count();
        out.push_str(&format!(
            "--------------------------\nTest Summary\n\tPath: {}\n\tPassed: {passed}\n\tFailed: {}\n\tInvalid: {}\n",
            paths_text(&args.paths),
            results.len() - passed,
            invalid.len(),
        ));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    if results.iter().all(|r| r.passed) && invalid.is_empty() {
        EXIT_OK
    } else {
        EXIT_CHECK_FAILED
    }
}

struct TestResult {
    rule_id: String,
    test_name: String,
    expected: bool,
    actual: Option<bool>,
    passed: bool,
    error: Option<String>,
}

impl TestResult {
    /// The JSON line, keys in the documented order.
    fn to_json_line(&self) -> String {
        let text = |value: Value| value.to_string();
        format!(
            "{{\"rule_id\":{},\"test_name\":{},\"expected\":{},\"actual\":{},\"passed\":{},\"error\":{}}}",
            text(json!(self.rule_id)),
            text(json!(self.test_name)),
            self.expected,
            text(json!(self.actual)),
            self.passed,
            text(json!(self.error)),
        )
    }
}

fn run_tests(
    rule: &crate::ir::Rule,
    tests: &[RuleTest],
    now_ms: i64,
    config: ScriptConfig,
) -> Vec<TestResult> {
    tests
        .iter()
        .map(|test| {
            let outcome = script::run_test(rule, test, now_ms, config);
            TestResult {
                rule_id: rule.meta.id.clone(),
                test_name: test.name.clone(),
                expected: test.expected,
                actual: outcome.actual,
                passed: outcome.passed(test.expected),
                error: outcome.error,
            }
        })
        .collect()
}

fn paths_text(paths: &[std::path::PathBuf]) -> String {
    if paths.is_empty() {
        return "<default pack>".to_string();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads test cases from NDJSON: `{"rule_id", "test_name", "expected", "log", "mocks"?}` per
/// line, `mocks` being a list of `{"objectName", "returnValue"}` (the shape of
/// `panther_tests.ndjson`).
fn read_cases(path: &Path, out: &mut HashMap<String, Vec<RuleTest>>) -> anyhow::Result<()> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read cases file {}", path.display()))?;
    for (idx, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), idx + 1);
        let value: Value = serde_json::from_str(line).with_context(at)?;
        let field = |key: &str| value.get(key);
        let (Some(rule_id), Some(name), Some(expected), Some(log)) = (
            field("rule_id").and_then(Value::as_str),
            field("test_name").and_then(Value::as_str),
            field("expected").and_then(Value::as_bool),
            field("log"),
        ) else {
            anyhow::bail!(
                "{}: a case needs rule_id, test_name, expected (bool) and log",
                at()
            );
        };
        let mut mocks = Vec::new();
        for mock in field("mocks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(object) = mock.get("objectName").and_then(Value::as_str) else {
                anyhow::bail!("{}: a mock needs objectName", at());
            };
            let value = mock.get("returnValue").cloned().unwrap_or(Value::Null);
            mocks.push((object.to_string(), value));
        }
        out.entry(rule_id.to_string()).or_default().push(RuleTest {
            name: name.to_string(),
            expected,
            event: log.clone(),
            mocks,
            line: Some(idx as u32 + 1),
        });
    }
    Ok(())
}
