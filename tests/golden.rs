//! Golden cases: `tests/cases/<group>/<case>/` holds rule files (`*.yml`), `input.ndjson` and
//! `expected.ndjson` (the exact output), plus optionally `config.json` (engine and protocol
//! options) and `diagnostics.txt` (the rendered load diagnostics, one per line; without it the
//! rules must load cleanly).
//!
//! Each case runs twice, with the rule index on and off, and both runs must give the same
//! bytes. Each case runs through the library's real pipeline (`rules::Loader` → `eval::Engine` →
//! `protocol::Processor`), the same code the binary runs, with a fixed arrival clock.
//! `UPDATE_EXPECT=1 cargo test --test golden` rewrites `expected.ndjson` and `diagnostics.txt`;
//! read what it wrote before committing.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use vigil::correlate::Limits;
use vigil::eval::{Engine, EngineConfig};
use vigil::ir::{FieldPath, LogSource};
use vigil::protocol::{InvalidPolicy, Processor, ProtocolConfig};
use vigil::rules::{LoadOptions, Loader};

/// The arrival clock: 2030-01-01T00:00:00Z, after every event time in the cases (an event
/// time ahead of the clock is distrusted). Events without a parseable time get this one.
const ARRIVAL_MS: i64 = 1_893_456_000_000;

fn case_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut out = Vec::new();
    for group in sorted_entries(&root) {
        if group.is_dir() {
            for case in sorted_entries(&group) {
                if case.join("input.ndjson").is_file() {
                    out.push(case);
                }
            }
        }
    }
    out
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map(|it| it.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}

struct CaseConfig {
    options: LoadOptions,
    engine: EngineConfig,
    protocol: ProtocolConfig,
}

fn case_config(dir: &Path) -> CaseConfig {
    let mut options = LoadOptions::default();
    let mut limits = Limits::default();
    let mut protocol = ProtocolConfig::default();
    let mut logsource = None;
    let mut time_fields = None;
    let path = dir.join("config.json");
    if path.is_file() {
        let text = fs::read_to_string(&path).unwrap();
        let config: Value =
            serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        for (key, value) in config.as_object().expect("config.json is an object") {
            match key.as_str() {
                "max_groups" => limits.max_groups = value.as_u64().unwrap() as usize,
                "max_entries" => limits.max_entries = value.as_u64().unwrap() as usize,
                "max_entries_per_group" => {
                    limits.max_entries_per_group = value.as_u64().unwrap() as usize
                }
                "field" => protocol.field = value.as_str().unwrap().to_string(),
                "max_line_bytes" => protocol.max_line_bytes = value.as_u64().unwrap() as usize,
                "invalid_pass" => {
                    if value.as_bool().unwrap() {
                        protocol.invalid = InvalidPolicy::Pass;
                    }
                }
                "only_matches" => protocol.only_matches = value.as_bool().unwrap(),
                "payload" => {
                    protocol.payload = value
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_string())
                        .collect()
                }
                "unwrap" => protocol.unwrap = Some(value.as_str().unwrap().to_string()),
                "logsource" => {
                    let mut parts = value.as_str().unwrap().splitn(3, ':');
                    logsource = Some(LogSource::new(parts.next(), parts.next(), parts.next()));
                }
                "time_field" => time_fields = Some(vec![FieldPath::new(value.as_str().unwrap())]),
                "placeholders" => {
                    let map: HashMap<String, Vec<String>> =
                        serde_json::from_value(value.clone()).unwrap();
                    options.placeholders = map;
                }
                other => panic!("{}: unknown config key {other}", path.display()),
            }
        }
    }
    let mut engine = EngineConfig::new(limits);
    engine.stream_logsource = logsource;
    if let Some(fields) = time_fields {
        engine.time_fields = fields;
    }
    CaseConfig {
        options,
        engine,
        protocol,
    }
}

/// Runs one case with the rule index on or off; returns (output, rendered diagnostics).
fn run_case(dir: &Path, use_index: bool) -> (String, String) {
    let mut config = case_config(dir);
    config.engine.use_index = use_index;
    let mut loader = Loader::new(config.options);
    loader.set_source_dir(dir);
    for file in sorted_entries(dir) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".yml") || name.ends_with(".yaml") || name.ends_with(".toml") {
            loader.add_source(&name, &fs::read_to_string(&file).unwrap());
        }
    }
    let loaded = loader.finish();
    let (engine, link_diags) = Engine::new(loaded.set, config.engine);
    let mut diagnostics = String::new();
    for diag in loaded.diagnostics.iter().chain(&link_diags) {
        diagnostics.push_str(&diag.to_string());
        diagnostics.push('\n');
    }
    let mut processor = Processor::new(engine, config.protocol);
    let input = fs::read(dir.join("input.ndjson")).unwrap();
    let mut out = Vec::new();
    let body = input.strip_suffix(b"\n").unwrap_or(&input);
    if !body.is_empty() {
        for line in body.split(|&b| b == b'\n') {
            processor.process_line(line, ARRIVAL_MS, &mut out);
        }
    }
    (String::from_utf8(out).unwrap(), diagnostics)
}

#[test]
fn golden_cases() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let cases = case_dirs();
    assert!(!cases.is_empty(), "no golden cases found");
    let mut failures = Vec::new();
    for dir in &cases {
        let (output, diagnostics) = run_case(dir, true);
        // The optimiser must never change an answer: the same case without the index gives
        // the same bytes.
        let (unindexed, unindexed_diagnostics) = run_case(dir, false);
        if unindexed != output || unindexed_diagnostics != diagnostics {
            failures.push(format!(
                "{}: the index changes the output\n--- without\n{unindexed}--- with\n{output}",
                dir.display()
            ));
        }
        let expected_path = dir.join("expected.ndjson");
        let diag_path = dir.join("diagnostics.txt");
        if update {
            fs::write(&expected_path, &output).unwrap();
            if diagnostics.is_empty() {
                let _ = fs::remove_file(&diag_path);
            } else {
                fs::write(&diag_path, &diagnostics).unwrap();
            }
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        let expected_diags = fs::read_to_string(&diag_path).unwrap_or_default();
        if output != expected {
            failures.push(format!(
                "{}: output differs\n--- expected\n{expected}--- got\n{output}",
                dir.display()
            ));
        }
        if diagnostics != expected_diags {
            failures.push(format!(
                "{}: diagnostics differ\n--- expected\n{expected_diags}--- got\n{diagnostics}",
                dir.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
