//! Limits at and past their bound: every parser refuses absurd nesting with an error instead of
//! overflowing the stack, and every run-time budget leaves the line in the output.
//!
//! Each deep-nesting test runs on a test thread (2 MiB of stack by default, a quarter of the
//! main thread's 8 MiB), so a parser that recursed once per level would abort the process here
//! long before it did in production.

use vigil::correlate::Limits;
use vigil::eval::{Engine, EngineConfig};
use vigil::protocol::{Processor, ProtocolConfig};
use vigil::rules::elastic::{eql, esql, kql};
use vigil::rules::sigma::condition;
use vigil::rules::{LoadOptions, Loaded, Loader, load_default_pack, yaml};

/// A depth no real rule or event comes near, far past every limit below.
const ABSURD: usize = 100_000;

fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    let mut text = open.repeat(depth);
    text.push_str(inner);
    text.push_str(&close.repeat(depth));
    text
}

fn load(path: &str, text: &str) -> Loaded {
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_source(path, text);
    loader.finish()
}

fn default_processor() -> Processor {
    let loaded = load_default_pack(LoadOptions::default());
    assert_eq!(loaded.n_errors(), 0);
    let (engine, _) = Engine::new(loaded.set, EngineConfig::new(Limits::default()));
    Processor::new(engine, ProtocolConfig::default())
}

#[test]
fn kql_absurd_nesting_is_an_error() {
    let query = nested("(", "event.action: x", ")", ABSURD);
    assert!(kql::lower(&query).is_err());
    let query = format!("{}event.action: x", "not ".repeat(ABSURD));
    assert!(kql::lower(&query).is_err());
    let query = format!("event.action: {}", nested("(", "x", ")", ABSURD));
    assert!(kql::lower(&query).is_err());
}

#[test]
fn eql_absurd_nesting_is_an_error() {
    let query = format!(
        "any where {}",
        nested("(", "event.action == \"x\"", ")", ABSURD)
    );
    assert!(eql::lower(&query, "event.category").is_err());
    let query = format!("any where {}event.action == \"x\"", "not ".repeat(ABSURD));
    assert!(eql::lower(&query, "event.category").is_err());
    let query = format!(
        "any where {} == 1",
        nested("length(", "event.action", ")", ABSURD)
    );
    assert!(eql::lower(&query, "event.category").is_err());
}

#[test]
fn esql_absurd_nesting_is_an_error() {
    let query = format!(
        "FROM logs-* | WHERE {}",
        nested("(", "event.action == \"x\"", ")", ABSURD)
    );
    assert!(esql::lower(&query).is_err());
    let query = format!(
        "FROM logs-* | WHERE {}event.action == \"x\"",
        "NOT ".repeat(ABSURD)
    );
    assert!(esql::lower(&query).is_err());
    let query = format!(
        "FROM logs-* | WHERE {} == \"x\"",
        nested("TO_LOWER(", "event.action", ")", ABSURD)
    );
    assert!(esql::lower(&query).is_err());
    let query = format!("FROM logs-* | WHERE x == {}1", "-".repeat(ABSURD));
    assert!(esql::lower(&query).is_err());
    let query = format!("FROM logs-* | WHERE x == {}1", "1 + ".repeat(ABSURD));
    assert!(esql::lower(&query).is_err());
    let query = format!("FROM logs-* | EVAL y = {}1", "1 * ".repeat(ABSURD));
    assert!(esql::lower(&query).is_err());
}

#[test]
fn sigma_condition_absurd_nesting_is_an_error() {
    assert!(condition::parse(&nested("(", "selection", ")", ABSURD)).is_err());
    assert!(condition::parse(&format!("{}selection", "not ".repeat(ABSURD))).is_err());
}

#[test]
fn python_absurd_nesting_is_an_error() {
    for body in [
        nested("(", "1", ")", ABSURD),
        nested("[", "1", "]", ABSURD),
        format!("{}1", "not ".repeat(ABSURD)),
        format!("{}1", "-".repeat(ABSURD)),
        nested("f(", "1", ")", ABSURD),
        format!("x{}", "[0]".repeat(ABSURD)),
        format!("x{}", ".a".repeat(ABSURD)),
        format!("{}1", "lambda: ".repeat(ABSURD)),
        format!("{}1", "1 + ".repeat(ABSURD)),
        format!("{}1", "2 ** ".repeat(ABSURD)),
        format!("{}x", "x if x else ".repeat(ABSURD)),
    ] {
        let source = format!("def rule(event):\n    return {body}\n");
        assert!(vigil::python::Module::parse(&source, "deep.py").is_err());
    }
    let mut source = String::new();
    for level in 0..2_000 {
        source.push_str(&" ".repeat(level));
        source.push_str("if x:\n");
    }
    assert!(vigil::python::Module::parse(&source, "deep.py").is_err());
}

#[test]
fn yaml_absurd_nesting_is_an_error() {
    assert!(yaml::parse_documents(&nested("[", "1", "]", ABSURD)).is_err());
    assert!(yaml::parse_documents(&nested("{a: ", "1", "}", ABSURD)).is_err());
    let mut block = String::new();
    for level in 0..2_000 {
        block.push_str(&" ".repeat(level));
        block.push_str("a:\n");
    }
    assert!(yaml::parse_documents(&block).is_err());
}

#[test]
fn toml_absurd_nesting_is_a_diagnostic() {
    let text = format!("[rule]\nquery = {}\n", nested("[", "1", "]", ABSURD));
    let loaded = load("deep.toml", &text);
    assert!(loaded.n_errors() > 0);
    let text = format!("[rule]\nquery = {}\n", nested("{a = ", "1", "}", ABSURD));
    let loaded = load("deep.toml", &text);
    assert!(loaded.n_errors() > 0);
}

#[test]
fn event_absurd_nesting_still_comes_out() {
    let mut processor = default_processor();
    for line in [
        nested("[", "", "]", ABSURD),
        nested("{\"a\":", "1", "}", ABSURD),
        format!(
            "{{\"eventName\":\"CreateUser\",\"requestParameters\":{}}}",
            nested("{\"a\":", "1", "}", ABSURD)
        ),
        format!(
            "{{\"eventName\":\"CreateUser\",\"requestParameters\":{}}}",
            nested("[", "\"x\"", "]", ABSURD)
        ),
    ] {
        let mut out = Vec::new();
        processor.process_line(line.as_bytes(), 1_893_456_000_000, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(value.is_object());
    }
}

#[test]
fn python_nested_f_strings_are_bounded() {
    let mut body = String::from("1");
    for level in 0..2_000 {
        let quote = if level % 2 == 0 { '"' } else { '\'' };
        body = format!("f{quote}{{{body}}}{quote}");
    }
    let source = format!("def rule(event):\n    return {body}\n");
    let result = vigil::python::Module::parse(&source, "deep.py");
    assert!(result.is_err(), "2,000 nested f-strings were accepted");
}

/// The enrichment of `line` through the default pack with `max_enrichment_bytes`, and
/// whether the processor counted it truncated.
fn enrich_with_limit(line: &str, max_enrichment_bytes: usize) -> (serde_json::Value, u64) {
    let loaded = load_default_pack(LoadOptions::default());
    let (engine, _) = Engine::new(loaded.set, EngineConfig::new(Limits::default()));
    let mut processor = Processor::new(
        engine,
        ProtocolConfig {
            max_enrichment_bytes,
            ..ProtocolConfig::default()
        },
    );
    let mut out = Vec::new();
    processor.process_line(line.as_bytes(), 1_893_456_000_000, &mut out);
    let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
    (value, processor.counters().enrichments_truncated)
}

#[test]
fn enrichment_at_and_past_its_limit() {
    let sample = include_str!("../examples/cloudtrail.ndjson");
    let (line, full) = sample
        .lines()
        .map(|line| (line, enrich_with_limit(line, usize::MAX).0))
        .find(|(_, value)| value.get("vigil").is_some())
        .expect("the sample has a matching event");
    let size = full["vigil"].to_string().len();
    let (at_limit, n_truncated) = enrich_with_limit(line, size);
    assert_eq!(at_limit, full);
    assert_eq!(n_truncated, 0);
    let (past_limit, n_truncated) = enrich_with_limit(line, size - 1);
    assert_eq!(n_truncated, 1);
    let vigil = &past_limit["vigil"];
    assert_eq!(vigil["truncated"], true);
    let n_matches = full["vigil"]["matches"].as_array().map_or(0, Vec::len);
    assert_eq!(vigil["n_matches"], n_matches);
    assert!(vigil.get("matches").is_none());
    assert_eq!(vigil["severity"], full["vigil"]["severity"]);
    // The event's own fields are untouched.
    assert_eq!(past_limit["eventName"], full["eventName"]);
}

#[test]
fn event_nesting_at_and_past_serde_json_limit() {
    let mut processor = default_processor();
    for (depth, valid) in [(120, true), (130, false)] {
        let line = format!("{{\"a\":{}}}", nested("[", "1", "]", depth));
        let mut out = Vec::new();
        processor.process_line(line.as_bytes(), 1_893_456_000_000, &mut out);
        assert_eq!(
            &out[..out.len() - 1] == line.as_bytes(),
            valid,
            "depth {depth}"
        );
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value.get("vigil").is_some(), !valid, "depth {depth}");
    }
}

#[test]
fn query_nesting_at_and_past_the_limit() {
    use vigil::rules::elastic::MAX_QUERY_DEPTH;
    // `or_query` counts the top level as one: MAX_QUERY_DEPTH - 1 parentheses fit.
    let at = nested("(", "event.action: x", ")", MAX_QUERY_DEPTH - 1);
    assert!(kql::lower(&at).is_ok());
    let past = nested("(", "event.action: x", ")", MAX_QUERY_DEPTH);
    let err = kql::lower(&past).unwrap_err();
    assert!(err.message.contains("nested deeper"), "{}", err.message);
    let at = format!(
        "any where {}",
        nested("(", "a == 1", ")", MAX_QUERY_DEPTH - 1)
    );
    assert!(eql::lower(&at, "event.category").is_ok());
    let past = format!("any where {}", nested("(", "a == 1", ")", MAX_QUERY_DEPTH));
    assert!(eql::lower(&past, "event.category").is_err());
}

#[test]
fn sigma_condition_nesting_at_and_past_the_limit() {
    let at = nested("(", "selection", ")", condition::MAX_DEPTH - 1);
    assert!(condition::parse(&at).is_ok());
    let past = nested("(", "selection", ")", condition::MAX_DEPTH + 1);
    assert!(condition::parse(&past).is_err());
}

#[test]
fn yaml_nesting_at_and_past_the_limit() {
    assert!(yaml::parse_documents(&nested("[", "1", "]", yaml::MAX_DEPTH)).is_ok());
    let err = yaml::parse_documents(&nested("[", "1", "]", yaml::MAX_DEPTH + 1)).unwrap_err();
    assert!(err.message.contains("nested deeper"), "{}", err.message);
    let many = "a: 1\n---\n".repeat(yaml::MAX_DOCUMENTS + 1);
    let err = yaml::parse_documents(&many).unwrap_err();
    assert!(err.message.contains("documents"), "{}", err.message);
}

#[test]
fn yaml_aliases_are_refused_not_expanded() {
    // Billion laughs: nine levels of ten aliases each would be 10^9 strings if expanded.
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10 {
        let prev = level - 1;
        let refs = vec![format!("*a{prev}"); 10].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
    }
    let err = yaml::parse_documents(&text).unwrap_err();
    // saphyr stops expanding at its node budget; a rule with any alias is refused anyway.
    assert!(err.message.contains("alias"), "{}", err.message);
    let loaded = load("laughs.yml", &format!("title: t\n{text}"));
    assert!(loaded.n_errors() > 0);
}

#[test]
fn rule_file_size_at_and_past_the_limit() {
    use vigil::rules::MAX_RULE_FILE_BYTES;
    let rule = "title: big\nlogsource:\n  product: aws\ndetection:\n  sel:\n    eventName: x\n  condition: sel\n";
    let mut at = rule.to_string();
    at.push('#');
    at.push_str(&" ".repeat(MAX_RULE_FILE_BYTES - at.len()));
    assert_eq!(at.len(), MAX_RULE_FILE_BYTES);
    let loaded = load("big.yml", &at);
    assert!(
        loaded
            .diagnostics
            .iter()
            .all(|d| !d.message.contains("larger than"))
    );
    at.push(' ');
    let loaded = load("big.yml", &at);
    assert!(
        loaded
            .diagnostics
            .iter()
            .any(|d| d.message.contains("larger than"))
    );
    assert!(loaded.set.rules.is_empty());
}

/// A Panther rule whose `rule()` loops `n` times, loaded from a temporary directory.
fn looping_rule(n: usize) -> Loaded {
    let dir = std::env::temp_dir().join(format!("vigil-limits-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = format!(
        "def rule(event):\n    total = 0\n    for i in range({n}):\n        total += 1\n    return event.get(\"eventName\") == \"Loop\"\n"
    );
    std::fs::write(dir.join("loop.py"), module).unwrap();
    let spec = "AnalysisType: rule\nFilename: loop.py\nRuleID: \"Test.Loop\"\nEnabled: true\nLogTypes:\n  - AWS.CloudTrail\nSeverity: Low\n";
    let path = dir.join("loop.yml");
    std::fs::write(&path, spec).unwrap();
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_path(&path);
    let loaded = loader.finish();
    assert_eq!(loaded.n_errors(), 0, "{:?}", loaded.diagnostics);
    loaded
}

#[test]
fn step_budget_overrun_is_counted_and_the_line_comes_out() {
    let line = r#"{"eventVersion":"1.08","eventSource":"iam.amazonaws.com","eventName":"Loop","awsRegion":"us-east-1","userIdentity":{"type":"IAMUser"}}"#;
    for (n, budget, matches) in [(100, 100_000, true), (100_000, 1_000, false)] {
        let mut config = EngineConfig::new(Limits::default());
        config.script.step_budget = budget;
        let (engine, _) = Engine::new(looping_rule(n).set, config);
        let mut processor = Processor::new(engine, ProtocolConfig::default());
        let mut out = Vec::new();
        processor.process_line(line.as_bytes(), 1_893_456_000_000, &mut out);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value.get("vigil").is_some(), matches, "{value}");
        let overruns: u64 = processor
            .engine()
            .script_stats()
            .budget_overruns
            .iter()
            .sum();
        assert_eq!(overruns, u64::from(!matches));
        if !matches {
            assert_eq!(&out[..out.len() - 1], line.as_bytes());
        }
    }
}
