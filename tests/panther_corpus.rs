//! The Panther corpus through the loader and `vigil test` semantics (`eval::script::run_test`).
//!
//! Reads `$VIGIL_CORPUS/panther` (the panther-analysis rules of the shared corpus) and
//! `$VIGIL_CORPUS/events/panther_tests.ndjson`; skipped, saying so, when `VIGIL_CORPUS` is not
//! set. The floors below are the figures measured when this test was last updated (see
//! docs/panther-report.md); a change that loses rules or tests fails here.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde_json::Value;
use vigil::eval::script::{ScriptConfig, run_test};
use vigil::ir::{LogSource, RuleTest};
use vigil::rules::{LoadOptions, Loader};

/// AWS CloudTrail rules that must load and pass every embedded test.
const MIN_CLOUDTRAIL_RULES_PASSING: usize = 132;
/// Embedded tests (over all Panther rules of the corpus) that must pass.
const MIN_TESTS_PASSING: usize = 401;
/// Correlation-rule tests (`RuleOutputs`) of correlations vigil lowers; all must pass.
const MIN_CORRELATION_TESTS: usize = 67;

fn corpus() -> Option<PathBuf> {
    match std::env::var_os("VIGIL_CORPUS") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("skipped: VIGIL_CORPUS is not set");
            None
        }
    }
}

#[test]
fn panther_corpus_loads_and_its_tests_pass() {
    let Some(corpus) = corpus() else {
        return;
    };
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_path(&corpus.join("panther"));
    let loaded = loader.finish();
    // Nothing panics, every spec that did not load says why, with a file and a line.
    for diag in &loaded.diagnostics {
        assert!(diag.source.line.is_some(), "{diag}");
    }
    let cloudtrail = LogSource::new(Some("aws"), Some("cloudtrail"), None);
    let now_ms = 1_750_000_000_000;
    let mut passed = 0;
    let mut failed = Vec::new();
    let mut cloudtrail_ok = 0;
    let mut cloudtrail_rules = 0;
    for rule in &loaded.set.rules {
        let mut all_pass = true;
        for test in &rule.extra.tests {
            let outcome = run_test(rule, test, now_ms, ScriptConfig::default());
            if outcome.passed(test.expected) {
                passed += 1;
            } else {
                all_pass = false;
                failed.push(format!("{}: {} ({:?})", rule.meta.id, test.name, outcome));
            }
        }
        if rule.logsource == cloudtrail {
            cloudtrail_rules += 1;
            cloudtrail_ok += usize::from(all_pass);
        }
    }
    let unloaded: Vec<&str> = loaded
        .failed_tests
        .iter()
        .map(|failed| failed.rule_id.as_str())
        .collect();
    eprintln!(
        "panther corpus: {} rules loaded ({cloudtrail_rules} CloudTrail, {cloudtrail_ok} passing all tests), \
         {} not loaded, {passed} tests passed, {} failed",
        loaded.set.rules.len(),
        unloaded.len(),
        failed.len()
    );
    assert!(
        cloudtrail_ok >= MIN_CLOUDTRAIL_RULES_PASSING,
        "only {cloudtrail_ok} CloudTrail rules pass all their tests; failures:\n{}",
        failed.join("\n")
    );
    // Correlation rules' RuleOutputs tests: every one of a correlation vigil can lower passes.
    let mut correlation_tests = 0;
    for entry in &loaded.correlation_tests {
        for test in &entry.tests {
            let outcome = vigil::eval::script::run_correlation_test(&entry.correlation, test);
            assert!(
                outcome.passed(test.expected),
                "{}: {}: {outcome:?}",
                entry.correlation.meta.id,
                test.name
            );
            correlation_tests += 1;
        }
    }
    assert!(
        correlation_tests >= MIN_CORRELATION_TESTS,
        "only {correlation_tests} correlation tests ran"
    );
    assert!(
        passed >= MIN_TESTS_PASSING,
        "only {passed} tests pass; failures:\n{}",
        failed.join("\n")
    );
}

/// The labelled CloudTrail tests exported to NDJSON give the same answers as the same tests
/// embedded in the YAML (the two copies must not drift apart, and neither may the runner).
#[test]
fn exported_tests_agree_with_embedded_ones() {
    let Some(corpus) = corpus() else {
        return;
    };
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_path(&corpus.join("panther"));
    let loaded = loader.finish();
    let rules: HashMap<&str, &vigil::ir::Rule> = loaded
        .set
        .rules
        .iter()
        .map(|rule| (rule.meta.id.as_str(), rule))
        .collect();
    let text = std::fs::read_to_string(corpus.join("events/panther_tests.ndjson")).unwrap();
    let mut compared = 0;
    let mut disagreements = BTreeMap::new();
    for line in text.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let Some(rule) = rules.get(case["rule_id"].as_str().unwrap()) else {
            continue;
        };
        let name = case["test_name"].as_str().unwrap();
        let Some(embedded) = rule.extra.tests.iter().find(|t| t.name == name) else {
            continue;
        };
        let mocks = case["mocks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                (
                    m["objectName"].as_str().unwrap().to_string(),
                    m["returnValue"].clone(),
                )
            })
            .collect();
        let exported = RuleTest {
            name: name.to_string(),
            expected: case["expected"].as_bool().unwrap(),
            event: case["log"].clone(),
            mocks,
            line: None,
        };
        let now_ms = 1_750_000_000_000;
        let a = run_test(rule, embedded, now_ms, ScriptConfig::default());
        let b = run_test(rule, &exported, now_ms, ScriptConfig::default());
        compared += 1;
        if a.actual != b.actual {
            disagreements.insert(format!("{}: {name}", rule.meta.id), (a, b));
        }
    }
    assert!(
        compared >= 300,
        "only {compared} exported tests matched embedded ones"
    );
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}
