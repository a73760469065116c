//! Panther rules through the engine: step budget and runtime errors counted per rule as
//! non-matches, cross-event state through the caching helpers, disabled rules never run.

use std::path::PathBuf;

use serde_json::{Value, json};
use vigil::correlate::Limits;
use vigil::eval::{Detections, Engine, EngineConfig};
use vigil::rules::{LoadOptions, Loader};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("vigil-peng-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A rule that fires on the first event of each user, through the caching helpers.
const FIRST_SEEN_PY: &str = "from panther_detection_helpers.caching import get_string_set, put_string_set\n\n\
def rule(event):\n    user = event.deep_get('userIdentity', 'userName')\n    seen = get_string_set('users')\n    if user in seen:\n        return False\n    put_string_set('users', list(seen) + [user])\n    return True\n";

fn spec(id: &str, file: &str) -> String {
    format!(
        "AnalysisType: rule\nFilename: {file}\nRuleID: {id}\nDisplayName: {id}\nEnabled: true\nLogTypes: [AWS.CloudTrail]\nSeverity: Medium\n"
    )
}

fn engine(dir: &TempDir, budget: u64) -> Engine {
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_path(&dir.0);
    let loaded = loader.finish();
    assert!(
        loaded.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        loaded.diagnostics
    );
    let mut config = EngineConfig::new(Limits::default());
    config.script.step_budget = budget;
    Engine::new(loaded.set, config).0
}

fn event(name: &str, user: &str) -> Value {
    json!({"eventVersion": "1.09", "eventSource": "iam.amazonaws.com", "eventName": name,
           "awsRegion": "us-east-1", "userIdentity": {"userName": user}})
}

fn matched_ids(engine: &mut Engine, value: &Value) -> Vec<String> {
    let mut out = Detections::default();
    engine.evaluate(
        &vigil::event::Event::new(value),
        1_700_000_000_000,
        &mut out,
    );
    out.matches
        .iter()
        .map(|&idx| engine.rules()[idx].meta.id.clone())
        .collect()
}

#[test]
fn budget_overruns_and_errors_are_counted_non_matches() {
    let dir = TempDir::new("budget");
    dir.write("loop.yml", &spec("Test.Loop", "loop.py"));
    dir.write(
        "loop.py",
        "def rule(event):\n    n = 0\n    while event.get('eventName') == 'Spin':\n        n = n + 1\n    return True\n",
    );
    dir.write("raise.yml", &spec("Test.Raise", "raise.py"));
    dir.write(
        "raise.py",
        "def rule(event):\n    return event['missing'] == 1\n",
    );
    let mut engine = engine(&dir, 1_000);
    assert!(matched_ids(&mut engine, &event("Spin", "a")).is_empty());
    assert_eq!(
        matched_ids(&mut engine, &event("Other", "a")),
        ["Test.Loop"]
    );
    let stats = engine.script_stats();
    let index = |id: &str| engine.rules().iter().position(|r| r.meta.id == id).unwrap();
    assert_eq!(stats.budget_overruns[index("Test.Loop")], 1);
    assert_eq!(stats.runtime_errors[index("Test.Raise")], 2);
    assert_eq!(stats.budget_overruns[index("Test.Raise")], 0);
}

#[test]
fn caching_helpers_keep_state_across_events() {
    let dir = TempDir::new("kv");
    dir.write("first.yml", &spec("Test.FirstSeen", "first.py"));
    dir.write("first.py", FIRST_SEEN_PY);
    let mut engine = engine(&dir, 100_000);
    let hits: Vec<usize> = ["alice", "bob", "alice", "carol", "bob"]
        .iter()
        .map(|user| matched_ids(&mut engine, &event("GetUser", user)).len())
        .collect();
    assert_eq!(hits, [1, 1, 0, 1, 0]);
    assert_eq!(engine.script_stats().kv.live_keys, 1);
}

#[test]
fn disabled_rules_never_run() {
    let dir = TempDir::new("disabled");
    dir.write(
        "off.yml",
        &spec("Test.Off", "off.py").replace("Enabled: true", "Enabled: false"),
    );
    dir.write("off.py", "def rule(event):\n    return True\n");
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_path(&dir.0);
    let loaded = loader.finish();
    assert_eq!(loaded.set.rules.len(), 1);
    let mut engine = Engine::new(loaded.set, EngineConfig::new(Limits::default())).0;
    assert!(matched_ids(&mut engine, &event("GetUser", "a")).is_empty());
}

/// A line the event view finds broken (a number beyond f64, in a field no rule reads) is an
/// invalid line: it must not count towards a threshold, even though the rule's code would
/// have matched it.
#[test]
fn broken_lines_leave_threshold_state_alone() {
    let dir = TempDir::new("broken");
    dir.write(
        "t.yml",
        &format!(
            "{}Threshold: 2\nDedupPeriodMinutes: 60\n",
            spec("Threshold.Rule", "t.py")
        ),
    );
    dir.write(
        "t.py",
        "def rule(event):\n    return event.get('eventName') == 'CreateUser'\n",
    );
    let mut engine = engine(&dir, 10_000);
    let line = r#"{"eventVersion":"1.09","eventSource":"iam.amazonaws.com","eventName":"CreateUser","awsRegion":"us-east-1","junk":1e400}"#;
    let broken = vigil::event::Event::parse(line).unwrap();
    let mut out = Detections::default();
    engine.evaluate(&broken, 0, &mut out);
    assert!(broken.is_broken() && out.matches.is_empty());
    let whole = event("CreateUser", "alice");
    let mut out = Detections::default();
    engine.evaluate(&vigil::event::Event::new(&whole), 0, &mut out);
    assert_eq!(out.matches.len(), 1);
    let output = out.output(out.matches[0]).unwrap();
    assert_eq!(
        output.threshold_count,
        Some(1),
        "the broken line was counted"
    );
    assert_eq!(output.alert, Some(false));
}

/// `Engine::pre_confirmer` (the matching threads' half of `--threads`) answers for scripts
/// that need no cross-event state and leaves the ones that use the caching helpers to the
/// engine; fed its answers, `observe` gives what `evaluate` gives alone.
#[test]
fn pre_confirmed_scripts_give_what_the_engine_gives() {
    let dir = TempDir::new("pre");
    dir.write("first.yml", &spec("Test.FirstSeen", "first.py"));
    dir.write("first.py", FIRST_SEEN_PY);
    dir.write("pure.yml", &spec("Test.Pure", "pure.py"));
    dir.write(
        "pure.py",
        "def rule(event):\n    return event.get('eventName', '').startswith('Get')\n\n\
def title(event):\n    return 'user ' + event.deep_get('userIdentity', 'userName', default='?')\n",
    );
    let mut alone = engine(&dir, 100_000);
    let mut fed = engine(&dir, 100_000);
    let confirmer = fed.pre_confirmer().expect("no mocks, so a pre-confirmer");
    let matcher = fed.matcher();
    let mut scratch = vigil::eval::MatchScratch::default();
    let mut verdict_rules = Vec::new();
    for (name, user) in [
        ("GetUser", "alice"),
        ("GetUser", "bob"),
        ("ListUsers", "alice"),
        ("GetUser", "carol"),
        ("GetUser", "bob"),
    ] {
        let value = event(name, user);
        let view = vigil::event::Event::new(&value);
        let mut expected = Detections::default();
        alone.evaluate(&view, 1_700_000_000_000, &mut expected);
        let mut out = Detections::default();
        matcher.match_rules(&view, &mut scratch, &mut out.matches);
        confirmer.run(&view, 1_700_000_000_000, &out.matches, &mut out.pre);
        verdict_rules.push(
            out.pre
                .iter()
                .map(|verdict| fed.rules()[verdict.rule()].meta.id.clone())
                .collect::<Vec<_>>(),
        );
        fed.observe(&view, 1_700_000_000_000, &mut out);
        assert_eq!(out.matches, expected.matches, "{name} {user}");
        assert_eq!(
            format!("{:?}", out.outputs),
            format!("{:?}", expected.outputs),
            "{name} {user}"
        );
    }
    // The pure rule is answered ahead on every event it is a candidate for (not ListUsers),
    // the caching one never.
    let pure = ["Test.Pure".to_string()];
    assert_eq!(
        verdict_rules,
        [&pure[..], &pure, &[], &pure, &pure],
        "{verdict_rules:?}"
    );
    assert_eq!(fed.script_stats().kv.live_keys, 1);
}
