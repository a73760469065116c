//! The restricted Python runtime against the Panther rules of the corpus: every rule with
//! `AWS.CloudTrail` in its `LogTypes` is parsed, and `rule()` runs on each of its embedded
//! `Tests:` (with their `Mocks:`) and on each labelled test of `events/panther_tests.ndjson`;
//! the result must equal the expected one. `title()`, `alert_context()` and `dedup()` must run
//! without error on every positive test.
//!
//! Reads `$VIGIL_CORPUS` (the `shared/corpus` directory) and is skipped when it is not set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use vigil::eval::matcher;
use vigil::event::Event;
use vigil::python::{
    CallCtx, MemoryKv, Mocks, Module, PyError, lowering_precondition_holds, truthy,
};
use vigil::rules::yaml::{self, Node, Value as Y};

/// The step budget of every call: the corpus rules fit well within it.
const STEP_BUDGET: u64 = 10_000;
/// Rules whose `rule()` lowers into the IR must not fall below this.
const MIN_RULES_LOWERED: usize = 89;
/// Rules (of the 144) whose every test passes must not fall below this: the regression guard.
const MIN_RULES_ALL_PASS: usize = 135;
/// Tests (YAML and ndjson together) that must pass.
const MIN_TESTS_PASSED: usize = 768;

fn corpus() -> Option<PathBuf> {
    match std::env::var_os("VIGIL_CORPUS") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("skipped: VIGIL_CORPUS is not set");
            None
        }
    }
}

fn to_json(node: &Node) -> Value {
    match &node.value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Int(i) => json!(i),
        Y::Float(f) => json!(f),
        Y::Str(s) => Value::String(s.clone()),
        Y::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Y::Map(entries) => {
            let mut m = Map::new();
            for (k, v) in entries {
                m.insert(k.text.clone(), to_json(v));
            }
            Value::Object(m)
        }
    }
}

struct Test {
    name: String,
    expected: bool,
    log: Value,
    mocks: Mocks,
}

struct Rule {
    id: String,
    module: Result<Module, String>,
    tests: Vec<Test>,
}

fn load_rules(dir: &Path) -> Vec<Rule> {
    let mut files = Vec::new();
    for sub in [
        "aws_cloudtrail_rules",
        "standard_rules",
        "indicator_creation_rules",
    ] {
        let Ok(entries) = std::fs::read_dir(dir.join("panther/rules").join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut rules = Vec::new();
    for yml in files {
        let Ok(text) = std::fs::read_to_string(&yml) else {
            continue;
        };
        let docs = match yaml::parse_documents(&text) {
            Ok(docs) => docs,
            Err(e) => {
                // Counted as a rule that does not load, if the text says it is a CloudTrail rule.
                if text.contains("AnalysisType: rule") && text.contains("AWS.CloudTrail") {
                    // The RuleID line, read as text, so the rule's labelled tests still count.
                    let id = text
                        .lines()
                        .find_map(|l| l.strip_prefix("RuleID:"))
                        .map(|v| v.trim().trim_matches('"').to_string())
                        .unwrap_or_else(|| yml.display().to_string());
                    rules.push(Rule {
                        id,
                        module: Err(format!("YAML not read: line {}: {e}", e.line)),
                        tests: Vec::new(),
                    });
                }
                continue;
            }
        };
        let Some(doc) = docs.first() else { continue };
        let cloudtrail = doc.get("LogTypes").map(to_json).is_some_and(|v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|t| t == "AWS.CloudTrail"))
        });
        if !cloudtrail || doc.get("AnalysisType").and_then(Node::as_str) != Some("rule") {
            continue;
        }
        let id = doc
            .get("RuleID")
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_string();
        let module = match doc.get("Filename").and_then(Node::as_str) {
            None => Err("no Filename".to_string()),
            Some(f) => {
                let py = yml.with_file_name(f);
                match std::fs::read_to_string(&py) {
                    Err(e) => Err(format!("{}: {e}", py.display())),
                    Ok(src) => Module::parse(&src, &py.to_string_lossy())
                        .map_err(|d| format!("line {}: {}", d.line, d.message)),
                }
            }
        };
        let single_log_type = doc
            .get("LogTypes")
            .map(to_json)
            .and_then(|v| v.as_array().map(Vec::len))
            == Some(1);
        let mut tests = Vec::new();
        if let Some(Y::Seq(items)) = doc.get("Tests").map(|n| &n.value) {
            for t in items {
                let log = t.get("Log").map(to_json).unwrap_or(Value::Null);
                // A multi-log-type rule's tests of other log types are not CloudTrail tests.
                let is_cloudtrail = match log.get("p_log_type") {
                    Some(lt) => lt == "AWS.CloudTrail",
                    None => single_log_type || log.get("eventSource").is_some(),
                };
                if !is_cloudtrail {
                    continue;
                }
                let mut mocks = Mocks::none();
                if let Some(Y::Seq(ms)) = t.get("Mocks").map(|n| &n.value) {
                    for m in ms {
                        if let (Some(name), Some(v)) = (
                            m.get("objectName").and_then(Node::as_str),
                            m.get("returnValue"),
                        ) {
                            mocks.insert(name, to_json(v));
                        }
                    }
                }
                tests.push(Test {
                    name: t
                        .get("Name")
                        .and_then(Node::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    expected: matches!(
                        t.get("ExpectedResult").map(|n| &n.value),
                        Some(Y::Bool(true))
                    ),
                    log,
                    mocks,
                });
            }
        }
        rules.push(Rule { id, module, tests });
    }
    rules
}

fn call(module: &Module, name: &str, log: &Value, mocks: &Mocks) -> Result<Value, PyError> {
    let event = Event::new(log);
    let mut kv = MemoryKv::new(1024);
    let mut ctx = CallCtx {
        step_budget: STEP_BUDGET,
        state: &mut kv,
        now_ms: 1_700_000_000_000,
        mocks,
    };
    module.call(name, &event, &mut ctx)
}

/// Runs one test; returns an error text when it does not pass.
fn run_test(module: &Module, t: &Test) -> Result<(), String> {
    let got = call(module, "rule", &t.log, &t.mocks).map_err(|e| format!("rule(): {e}"))?;
    if truthy(&got) != t.expected {
        return Err(format!("rule() returned {got}, expected {}", t.expected));
    }
    if t.expected {
        for f in ["title", "alert_context", "dedup", "severity"] {
            if module.has_function(f) {
                call(module, f, &t.log, &t.mocks).map_err(|e| format!("{f}(): {e}"))?;
            }
        }
    }
    Ok(())
}

#[test]
fn panther_cloudtrail_rules_pass_their_tests() {
    let Some(dir) = corpus() else { return };
    let rules = load_rules(&dir);
    assert!(
        rules.len() >= 144,
        "found only {} CloudTrail rules",
        rules.len()
    );

    // ndjson tests, keyed by rule id; their mocks come from the YAML test of the same name.
    let mut labelled: BTreeMap<String, Vec<(String, bool, Value)>> = BTreeMap::new();
    let text = std::fs::read_to_string(dir.join("events/panther_tests.ndjson")).unwrap_or_default();
    let mut ndjson_total = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let id = v["rule_id"].as_str().unwrap_or_default().to_string();
        let name = v["test_name"].as_str().unwrap_or_default().to_string();
        labelled.entry(id).or_default().push((
            name,
            v["expected"] == json!(true),
            v["log"].clone(),
        ));
        ndjson_total += 1;
    }
    assert!(ndjson_total >= 400, "only {ndjson_total} labelled tests");

    let (mut loaded, mut all_pass, mut passed, mut failed) = (0, 0, 0, 0);
    let mut unsupported = Vec::new();
    let mut failures = Vec::new();
    for rule in &rules {
        let module = match &rule.module {
            Ok(m) => m,
            Err(why) => {
                unsupported.push(format!("{}: {why}", rule.id));
                failed += rule.tests.len() + labelled.get(&rule.id).map_or(0, Vec::len);
                continue;
            }
        };
        loaded += 1;
        let mut rule_ok = true;
        let mut cases: Vec<(String, &Test)> = rule
            .tests
            .iter()
            .map(|t| (format!("yaml: {}", t.name), t))
            .collect();
        let extra: Vec<Test> = labelled
            .get(&rule.id)
            .map(|ts| {
                ts.iter()
                    .map(|(name, expected, log)| Test {
                        name: name.clone(),
                        expected: *expected,
                        log: log.clone(),
                        mocks: rule
                            .tests
                            .iter()
                            .find(|t| &t.name == name)
                            .map(|t| t.mocks.clone())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        cases.extend(extra.iter().map(|t| (format!("ndjson: {}", t.name), t)));
        for (label, t) in cases {
            match run_test(module, t) {
                Ok(()) => passed += 1,
                Err(e) => {
                    failed += 1;
                    rule_ok = false;
                    failures.push(format!("{} [{label}]: {e}", rule.id));
                }
            }
        }
        if rule_ok {
            all_pass += 1;
        }
    }
    println!(
        "rules: {} CloudTrail rules, {loaded} parsed, {all_pass} pass every test",
        rules.len()
    );
    let yaml_tests: usize = rules.iter().map(|r| r.tests.len()).sum();
    println!(
        "tests: {passed} passed, {failed} failed ({yaml_tests} YAML tests, {ndjson_total} from panther_tests.ndjson)"
    );
    println!("unsupported ({}):", unsupported.len());
    for u in &unsupported {
        println!("  {u}");
    }
    println!("failures ({}):", failures.len());
    for f in &failures {
        println!("  {f}");
    }
    assert!(
        all_pass >= MIN_RULES_ALL_PASS,
        "{all_pass} rules pass every test, floor {MIN_RULES_ALL_PASS}"
    );
    assert!(
        passed >= MIN_TESTS_PASSED,
        "{passed} tests passed, floor {MIN_TESTS_PASSED}"
    );
}

/// The lowered form of `rule()` and the evaluator agree on every corpus test event (YAML tests
/// and panther_tests.ndjson), for every rule that lowers. Mocks are not applied to either, as
/// lowering is for production, where there are none.
#[test]
fn lowered_rules_agree_with_the_evaluator() {
    let Some(dir) = corpus() else { return };
    let rules = load_rules(&dir);
    let text = std::fs::read_to_string(dir.join("events/panther_tests.ndjson")).unwrap_or_default();
    let mut logs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let id = v["rule_id"].as_str().unwrap_or_default().to_string();
        logs.entry(id).or_default().push(v["log"].clone());
    }
    // Every event of the corpus tests is tried on every lowered rule, not only on its own.
    let all_events: Vec<Value> = rules
        .iter()
        .flat_map(|r| r.tests.iter().map(|t| t.log.clone()))
        .chain(logs.values().flatten().cloned())
        .collect();
    let (mut lowered, mut checks, mut outside) = (0, 0, 0);
    let mut refused = BTreeMap::new();
    let mut disagreements = Vec::new();
    for rule in &rules {
        let Ok(module) = &rule.module else { continue };
        let expr = match module.lower("rule") {
            Ok(e) => e,
            Err(why) => {
                let key = why.split(": ").last().unwrap_or(&why).to_string();
                *refused.entry(key).or_insert(0) += 1;
                continue;
            }
        };
        lowered += 1;
        for log in &all_events {
            let event = Event::new(log);
            if !lowering_precondition_holds(&expr, &event) {
                outside += 1;
                continue;
            }
            let by_ir = matcher::matches(&expr, &event);
            let by_python =
                matches!(call(module, "rule", log, &Mocks::none()), Ok(v) if truthy(&v));
            checks += 1;
            if by_ir != by_python {
                disagreements.push(format!(
                    "{}: ir {by_ir}, python {by_python} on {}",
                    rule.id, log
                ));
            }
        }
    }
    println!(
        "lowered: {lowered} rules, {checks} (rule, event) pairs checked, {outside} outside the precondition"
    );
    println!("not lowered, by reason: {refused:?}");
    for d in disagreements.iter().take(20) {
        println!("  {d}");
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements",
        disagreements.len()
    );
    assert!(
        lowered >= MIN_RULES_LOWERED,
        "{lowered} rules lowered, floor {MIN_RULES_LOWERED}"
    );
    // The precondition must leave almost every corpus pair in, or the check says little.
    assert!(
        outside * 20 < checks,
        "{outside} pairs outside the precondition, {checks} checked"
    );
}
