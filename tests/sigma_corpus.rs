//! Every Sigma rule of the shared corpus loads without an error diagnostic.
//!
//! The corpus lives outside the repository; `VIGIL_CORPUS` names it (CI sets it to
//! `../shared/corpus`, relative to the repository root, which is cargo's working directory
//! for tests). Without it these tests say so on stderr and pass.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use vigil::diag::Code;
use vigil::rules::{LoadOptions, Loaded, Loader};

/// The Sigma folders checked here.
const FOLDERS: &[&str] = &[
    "rules",
    "rules-placeholder",
    "rules-threat-hunting",
    "rules-emerging-threats",
    "correlation",
];

fn corpus() -> Option<PathBuf> {
    match std::env::var_os("VIGIL_CORPUS") {
        Some(dir) => Some(PathBuf::from(dir).join("sigma")),
        None => {
            eprintln!("skipped: VIGIL_CORPUS is not set");
            None
        }
    }
}

fn rule_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            rule_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        ) {
            out.push(path);
        }
    }
}

fn load(path: &Path, text: &str, options: LoadOptions) -> Loaded {
    let mut loader = Loader::new(options);
    loader.add_source(&path.display().to_string(), text);
    loader.finish()
}

/// The `%name%` placeholders a rule text uses.
fn placeholder_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if len > 0 && after[len..].starts_with('%') {
            names.insert(after[..len].to_string());
            rest = &after[len + 1..];
        } else {
            rest = after;
        }
    }
    names
}

#[test]
fn every_corpus_rule_loads() {
    let Some(root) = corpus() else {
        return;
    };
    let mut n_files = 0;
    let mut n_rules = 0;
    let mut n_correlations = 0;
    let mut n_placeholder_rules = 0;
    let mut failures = Vec::new();
    for folder in FOLDERS {
        let mut files = Vec::new();
        rule_files(&root.join(folder), &mut files);
        for path in files {
            let Ok(text) = std::fs::read_to_string(&path) else {
                failures.push(format!("{}: cannot read", path.display()));
                continue;
            };
            n_files += 1;
            let uses_expand = text.contains("|expand");
            let mut options = LoadOptions::default();
            if uses_expand {
                // Without values the rule must be refused, as the spec requires.
                let loaded = load(&path, &text, options.clone());
                let refused = !loaded.diagnostics.is_empty()
                    && loaded
                        .diagnostics
                        .iter()
                        .all(|d| d.code == Code::Placeholder);
                if !refused || !loaded.set.rules.is_empty() {
                    failures.push(format!(
                        "{}: not rejected with code placeholder: {:?}",
                        path.display(),
                        loaded.diagnostics
                    ));
                }
                options.placeholders = placeholder_names(&text)
                    .into_iter()
                    .map(|name| (name.clone(), vec![format!("{name}-value"), "other".into()]))
                    .collect::<HashMap<_, _>>();
                n_placeholder_rules += 1;
            }
            let loaded = load(&path, &text, options);
            for diag in loaded.diagnostics.iter().filter(|d| d.is_error()) {
                failures.push(diag.to_string());
            }
            // The spec's correlation schema tests hold one correlation and no detection rule.
            if loaded.set.rules.is_empty() && loaded.set.correlations.is_empty() {
                failures.push(format!("{}: nothing loaded", path.display()));
            }
            n_rules += loaded.set.rules.len();
            n_correlations += loaded.set.correlations.len();
        }
    }
    eprintln!(
        "sigma corpus: {n_files} files, {n_rules} rules, {n_correlations} correlations, \
         {n_placeholder_rules} with placeholders"
    );
    assert!(
        n_correlations >= 11,
        "only {n_correlations} correlations loaded"
    );
    assert!(n_files > 0, "no rule files under {}", root.display());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn placeholder_names_are_found() {
    let names = placeholder_names("a|expand: '%One_1%'\nb: '100%'\nc|expand: '%Two%'");
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["One_1".to_string(), "Two".to_string()]
    );
}

/// Runs events through the rules of one corpus file; returns the ids of the correlations each
/// output line carries.
fn correlations_fired(file: &Path, events: &[serde_json::Value]) -> Vec<Vec<String>> {
    use vigil::correlate::Limits;
    use vigil::eval::{Engine, EngineConfig};
    use vigil::protocol::{Processor, ProtocolConfig};

    let text = std::fs::read_to_string(file).unwrap();
    let loaded = load(file, &text, LoadOptions::default());
    assert_eq!(loaded.n_errors(), 0, "{:?}", loaded.diagnostics);
    let (engine, diags) = Engine::new(loaded.set, EngineConfig::new(Limits::default()));
    assert!(diags.is_empty(), "{diags:?}");
    let mut processor = Processor::new(engine, ProtocolConfig::default());
    events
        .iter()
        .map(|event| {
            let mut out = Vec::new();
            // Arrival clock 2030-01-01, after the events (a time ahead of it is distrusted).
            processor.process_line(event.to_string().as_bytes(), 1_893_456_000_000, &mut out);
            let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
            line["vigil"]["correlations"]
                .as_array()
                .map(|hits| {
                    hits.iter()
                        .map(|hit| hit["id"].as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn spec_example_failed_logins_then_success_fires() {
    let Some(root) = corpus() else { return };
    let file = root.join("correlation/spec_examples/failed_logins_then_success_chain.yml");
    let outer = "b180ead8-d58f-40b2-ae54-c8940995b9b6";
    let login = |event_id: u32, user: &str, second: u32| {
        serde_json::json!({
            "EventID": event_id,
            "User": user,
            "@timestamp": format!("2024-05-01T12:{:02}:{:02}Z", second / 60, second % 60),
        })
    };
    // Ten failures for admin within 10 minutes, then a success: the chain completes on it.
    let mut events: Vec<_> = (0..10).map(|i| login(4625, "admin", i * 30)).collect();
    events.push(login(4624, "admin", 320));
    let fired = correlations_fired(&file, &events);
    assert!(fired[10].iter().any(|id| id == outer), "{fired:?}");
    assert!(
        fired[..10]
            .iter()
            .all(|ids| !ids.iter().any(|id| id == outer))
    );

    // Nine failures are not "multiple failed logins" (gte: 10): no chain.
    let mut events: Vec<_> = (0..9).map(|i| login(4625, "admin", i * 30)).collect();
    events.push(login(4624, "admin", 300));
    let fired = correlations_fired(&file, &events);
    assert!(fired.iter().all(|ids| ids.is_empty()), "{fired:?}");

    // The success of another user does not complete admin's chain.
    let mut events: Vec<_> = (0..10).map(|i| login(4625, "admin", i * 30)).collect();
    events.push(login(4624, "bob", 320));
    let fired = correlations_fired(&file, &events);
    assert!(!fired[10].iter().any(|id| id == outer), "{fired:?}");
}

#[test]
fn spec_example_aliases_fire() {
    let Some(root) = corpus() else { return };
    let file = root.join("correlation/spec_examples/temporal_aliases_example.yml");
    let error = |internal: &str, remote: &str, second: u32| {
        serde_json::json!({
            "@timestamp": format!("2024-05-01T12:00:{second:02}Z"),
            "http": {"response": {"status_code": 500}},
            "source": {"ip": remote},
            "destination": {"ip": internal},
        })
    };
    let connection = |internal: &str, remote: &str, second: u32| {
        serde_json::json!({
            "@timestamp": format!("2024-05-01T12:00:{second:02}Z"),
            "event": {"category": "network", "type": "connection", "outcome": "success"},
            "source": {"ip": internal},
            "destination": {"ip": remote},
        })
    };
    // The web server answered 500 to 203.0.113.9, then called it back: same pair, read
    // from opposite fields of the two rules.
    let fired = correlations_fired(
        &file,
        &[
            error("10.0.0.5", "203.0.113.9", 0),
            connection("10.0.0.5", "203.0.113.9", 4),
        ],
    );
    assert!(fired[0].is_empty());
    assert_eq!(fired[1].len(), 1, "{fired:?}");
    // A connection to another host, or one outside the 10 s window, does not complete it.
    let fired = correlations_fired(
        &file,
        &[
            error("10.0.0.5", "203.0.113.9", 0),
            connection("10.0.0.5", "198.51.100.1", 4),
            connection("10.0.0.5", "203.0.113.9", 30),
        ],
    );
    assert!(fired.iter().all(|ids| ids.is_empty()), "{fired:?}");
}
