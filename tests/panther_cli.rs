//! `vigil test` at binary level: exit codes, the failure lines and summary, `--json`, `--cases`,
//! and how rules that do not load are reported.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_vigil");

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("vigil-ptest-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn vigil(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

const RULE: &str = "\
AnalysisType: rule
RuleID: Test.Archived
DisplayName: Archived
Enabled: true
LogTypes: [GitHub.Audit]
Severity: Low
Detection:
  - Key: action
    Condition: Equals
    Value: repo.archived
Tests:
  - Name: archived
    ExpectedResult: true
    Log: {action: repo.archived}
  - Name: created
    ExpectedResult: false
    Log: {action: repo.create}
  - Name: wrong expectation
    ExpectedResult: true
    Log: {action: repo.create}
";

const UNSUPPORTED: &str = "\
AnalysisType: rule
RuleID: Test.Unsupported
Enabled: true
LogTypes: [GitHub.Audit]
Severity: Low
Detection:
  - Key: action
    Condition: IsNullOrEmpty
Tests:
  - Name: empty
    ExpectedResult: true
    Log: {action: ''}
";

#[test]
fn default_pack_tests_pass() {
    let out = vigil(&["test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("\tFailed: 0\n"), "{stdout}");
    let passed: usize = stdout
        .lines()
        .find_map(|line| line.strip_prefix("\tPassed: "))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(passed >= 8, "{stdout}");
}

#[test]
fn failures_are_listed_and_exit_1() {
    let dir = TempDir::new("fail");
    dir.write("rule.yml", RULE);
    let out = vigil(&["test", dir.0.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("[FAIL] Test.Archived: wrong expectation (expected true, got false)\n"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("[FAIL]").count(), 1, "{stdout}");
    assert!(
        stdout.contains("\tPassed: 2\n\tFailed: 1\n\tInvalid: 0\n"),
        "{stdout}"
    );
}

#[test]
fn json_lines_have_the_documented_keys_in_order() {
    let dir = TempDir::new("json");
    dir.write("rule.yml", RULE);
    dir.write("bad.yml", UNSUPPORTED);
    let out = vigil(&["test", "--json", dir.0.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].starts_with(
        "{\"rule_id\":\"Test.Archived\",\"test_name\":\"archived\",\"expected\":true,\"actual\":true,\"passed\":true,\"error\":null}"
    ));
    let unsupported: Value = serde_json::from_str(lines[3]).unwrap();
    assert_eq!(unsupported["rule_id"], "Test.Unsupported");
    assert_eq!(unsupported["passed"], false);
    assert_eq!(unsupported["actual"], Value::Null);
    let error = unsupported["error"].as_str().unwrap();
    assert!(
        error.starts_with("unsupported: simple detection condition 'IsNullOrEmpty'"),
        "{error}"
    );
}

#[test]
fn cases_file_adds_tests_by_rule_id() {
    let dir = TempDir::new("cases");
    let rule = RULE.split("Tests:").next().unwrap();
    dir.write("rule.yml", rule);
    let cases = dir.write(
        "cases.ndjson",
        "{\"rule_id\":\"Test.Archived\",\"test_name\":\"from file\",\"expected\":true,\"log\":{\"action\":\"repo.archived\"}}\n\
         {\"rule_id\":\"Test.Archived\",\"test_name\":\"from file, mocked\",\"expected\":false,\"log\":{\"action\":\"x\"},\"mocks\":[{\"objectName\":\"f\",\"returnValue\":\"1\"}]}\n",
    );
    let rules = dir.0.join("rule.yml");
    let out = vigil(&[
        "test",
        "--cases",
        cases.to_str().unwrap(),
        rules.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("\tPassed: 2\n"), "{stdout}");
    let broken = dir.write("broken.ndjson", "{\"rule_id\": 1}\n");
    let out = vigil(&[
        "test",
        "--cases",
        broken.to_str().unwrap(),
        rules.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

const CORRELATION: &str = "\
AnalysisType: correlation_rule
RuleID: Test.Chain
Enabled: false
Severity: High
Detection:
  - Group:
      - ID: First
        RuleID: Test.Archived
      - ID: Second
        RuleID: Test.Other
    MatchCriteria:
      repo:
        - GroupID: First
          Match: p_alert_context.repo
        - GroupID: Second
          Match: repo
    LookbackWindowMinutes: 30
Tests:
  - Name: both in the window, second first
    ExpectedResult: true
    RuleOutputs:
      - ID: Second
        Matches:
          repo:
            org/a: [0]
      - ID: First
        Matches:
          p_alert_context.repo:
            org/a: [10]
  - Name: too far apart
    ExpectedResult: false
    RuleOutputs:
      - ID: First
        Matches:
          p_alert_context.repo:
            org/a: ['2024-01-01T00:00:00Z']
      - ID: Second
        Matches:
          repo:
            org/a: ['2024-01-01T00:31:00Z']
  - Name: different repos (wrongly expected to fire)
    ExpectedResult: true
    RuleOutputs:
      - ID: First
        Matches:
          p_alert_context.repo:
            org/a: [0]
      - ID: Second
        Matches:
          repo:
            org/b: [1]
";

#[test]
fn correlation_rule_outputs_run_even_when_disabled() {
    let dir = TempDir::new("corr");
    dir.write("corr.yml", CORRELATION);
    let out = vigil(&["test", dir.0.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("[FAIL] Test.Chain: different repos (wrongly expected to fire) (expected true, got false)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\tPassed: 2\n\tFailed: 1\n"), "{stdout}");
}

#[test]
fn run_stats_count_budget_overruns_per_rule() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = TempDir::new("stats");
    dir.write(
        "spin.yml",
        "AnalysisType: rule\nFilename: spin.py\nRuleID: Test.Spin\nEnabled: true\nLogTypes: [AWS.CloudTrail]\nSeverity: Low\n",
    );
    dir.write(
        "spin.py",
        "def rule(event):\n    while event.get('eventName') == 'Spin':\n        pass\n    return True\n",
    );
    let mut child = Command::new(BIN)
        .args([
            "--stats",
            "--step-budget",
            "500",
            "--rules",
            dir.0.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = "{\"eventVersion\":\"1.09\",\"eventSource\":\"x.amazonaws.com\",\"eventName\":\"Spin\"}\n\
                 {\"eventVersion\":\"1.09\",\"eventSource\":\"x.amazonaws.com\",\"eventName\":\"Other\"}\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(!lines[0].contains("\"vigil\""), "{stdout}");
    assert!(lines[1].contains("\"id\":\"Test.Spin\""), "{stdout}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let stats: Value = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|value| value["msg"] == "stats")
        .unwrap();
    assert_eq!(
        stats["script"]["budget_overruns"]["Test.Spin"], 1,
        "{stats}"
    );
    assert_eq!(stats["rule_hits"]["Test.Spin"], 1, "{stats}");
}
