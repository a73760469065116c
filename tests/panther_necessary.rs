//! The necessary conditions taken from Panther `rule()` bodies (`python::Module::necessary`,
//! joined to each rule's `expr` by the loader) never reject an event the rule matches.
//!
//! For every Panther rule of `$VIGIL_CORPUS/panther` with a Python module and every corpus test
//! event (the rules' embedded `Tests`, `events/panther_tests.ndjson`, and for CloudTrail rules
//! the CloudTrail event files), wherever the rule's `expr` does not hold, `rule()` (with the
//! event's own mocks when it is one of the rule's tests) must not be truthy. Skipped, saying so,
//! when `VIGIL_CORPUS` is not set.

use std::path::PathBuf;

use serde_json::Value;
use vigil::correlate::Limits;
use vigil::eval::matcher::matches;
use vigil::eval::{Engine, EngineConfig};
use vigil::event::Event;
use vigil::ir::{Expr, LogSource, Rule};
use vigil::panther_rt::{CallCtx, Mocks, PantherScript};
use vigil::protocol::{Processor, ProtocolConfig};
use vigil::python::MemoryKv;
use vigil::rules::{LoadOptions, Loader};

/// Rules with a Python module whose necessary condition says something (measured when this
/// test was written); a change that loses conditions fails here.
const MIN_RULES_WITH_CONDITION: usize = 135;

fn corpus() -> Option<PathBuf> {
    match std::env::var_os("VIGIL_CORPUS") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("skipped: VIGIL_CORPUS is not set");
            None
        }
    }
}

/// One test event: the rule it belongs to (for its mocks) and the event.
struct Case {
    rule_id: Option<String>,
    mocks: Vec<(String, Value)>,
    event: Value,
    cloudtrail_file: bool,
}

fn script(rule: &Rule) -> Option<&PantherScript> {
    rule.extra
        .native
        .as_ref()
        .and_then(|native| native.body.as_any().downcast_ref::<PantherScript>())
        .filter(|script| script.has_module())
}

/// Whether `rule()` is truthy without raising (the output functions run too and do not count).
fn rule_holds(script: &PantherScript, event: &Event<'_>, mocks: &[(String, Value)]) -> bool {
    let mut m = Mocks::none();
    for (name, value) in mocks {
        m.insert(name, value.clone());
    }
    let mut kv = MemoryKv::new(64);
    let mut ctx = CallCtx {
        step_budget: 1_000_000,
        state: &mut kv,
        now_ms: 1_750_000_000_000,
        mocks: &m,
    };
    matches!(script.run(event, &mut ctx), Ok(Some(_)))
}

#[test]
fn necessary_conditions_never_reject_a_match() {
    let Some(corpus) = corpus() else {
        return;
    };
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_path(&corpus.join("panther"));
    let loaded = loader.finish();
    let mut cases = Vec::new();
    for rule in &loaded.set.rules {
        for test in &rule.extra.tests {
            cases.push(Case {
                rule_id: Some(rule.meta.id.clone()),
                mocks: test.mocks.clone(),
                event: test.event.clone(),
                cloudtrail_file: false,
            });
        }
    }
    let text = std::fs::read_to_string(corpus.join("events/panther_tests.ndjson"))
        .expect("the corpus has panther_tests.ndjson");
    for line in text.lines() {
        let case: Value = serde_json::from_str(line).expect("a JSON line");
        let mocks = case["mocks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some((
                    m["objectName"].as_str()?.to_string(),
                    m["returnValue"].clone(),
                ))
            })
            .collect();
        cases.push(Case {
            rule_id: case["rule_id"].as_str().map(str::to_string),
            mocks,
            event: case["log"].clone(),
            cloudtrail_file: false,
        });
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus.join("events"))
        .expect("the corpus has events/")
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "ndjson")
                && path
                    .file_name()
                    .is_some_and(|name| name != "panther_tests.ndjson")
        })
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("a readable event file");
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            cases.push(Case {
                rule_id: None,
                mocks: Vec::new(),
                event,
                cloudtrail_file: true,
            });
        }
    }
    // One event per case, shared by every rule as the engine shares it: its caches (the parsed
    // object, derived values) are what a run has too.
    let events: Vec<Event<'static>> = cases.iter().map(|case| Event::new(&case.event)).collect();
    let cloudtrail = LogSource::new(Some("aws"), Some("cloudtrail"), None);
    let mut n_scripted = 0;
    let mut n_with_condition = 0;
    let mut n_pairs = 0;
    let mut n_filtered = 0;
    let mut violations = Vec::new();
    for rule in &loaded.set.rules {
        let Some(script) = script(rule) else {
            continue;
        };
        n_scripted += 1;
        if !matches!(rule.expr, Expr::Const(true)) {
            n_with_condition += 1;
        }
        for (case, event) in cases.iter().zip(&events) {
            if case.cloudtrail_file && rule.logsource != cloudtrail {
                continue;
            }
            n_pairs += 1;
            if matches(&rule.expr, event) {
                continue;
            }
            n_filtered += 1;
            let own = case.rule_id.as_deref() == Some(rule.meta.id.as_str());
            let mocks: &[(String, Value)] = if own { &case.mocks } else { &[] };
            if rule_holds(script, event, mocks) {
                violations.push(format!(
                    "{}: expr {} rejects {}",
                    rule.meta.id, rule.expr, case.event
                ));
            }
        }
    }
    eprintln!(
        "panther necessary conditions: {n_with_condition} of {n_scripted} rules with a module have one; \
         {n_filtered} of {n_pairs} (rule, event) pairs filtered"
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    assert!(
        n_with_condition >= MIN_RULES_WITH_CONDITION,
        "{n_with_condition} rules with a condition"
    );
    assert!(n_filtered > 0);
}

/// 2030-01-01T00:00:00Z: after every event time of the corpus.
const ARRIVAL_MS: i64 = 1_893_456_000_000;

fn panther_processor(corpus: &std::path::Path, use_index: bool) -> Processor {
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_path(&corpus.join("panther"));
    let mut config = EngineConfig::new(Limits::default());
    config.use_index = use_index;
    let (engine, _) = Engine::new(loader.finish().set, config);
    Processor::new(engine, ProtocolConfig::default())
}

/// With the conditions in `expr`, the index now narrows Panther rules: it must change no
/// answer on the corpus CloudTrail files (the index decides nothing).
#[test]
fn panther_rules_with_and_without_index() {
    let Some(corpus) = corpus() else {
        return;
    };
    let mut indexed = panther_processor(&corpus, true);
    let mut plain = panther_processor(&corpus, false);
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus.join("events"))
        .expect("the corpus has events/")
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "ndjson"))
        .collect();
    files.sort();
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for file in &files {
        let text = std::fs::read(file).expect("a readable event file");
        for (idx, line) in text
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .enumerate()
        {
            with.clear();
            without.clear();
            indexed.process_line(line, ARRIVAL_MS, &mut with);
            plain.process_line(line, ARRIVAL_MS, &mut without);
            assert_eq!(
                String::from_utf8_lossy(&with),
                String::from_utf8_lossy(&without),
                "{}: line {}",
                file.display(),
                idx + 1
            );
        }
    }
    // The comparison means something only if rules fire.
    assert!(indexed.counters().matched > 100, "{:?}", indexed.counters());
    assert_eq!(indexed.counters(), plain.counters());
}
