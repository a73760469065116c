//! `--state` through the binary: the correlation state survives a restart (saved on an
//! interval before a kill -9, or at shutdown on SIGTERM), a damaged file starts empty with a
//! warning and every line still comes out, and a changed rule loses its state while an
//! unchanged one keeps it. (The limits on import are unit tests in `src/state/tests.rs`.)

mod lifecycle_support;

use lifecycle_support::{
    TempDir, Vigil, cloudtrail, correlation_ids, match_ids, mtime, wait_for_new_mtime,
};
use serde_json::Value;

/// `iam_new_user_given_admin` of the default pack: CreateUser then AdministratorAccess
/// attached to the same user within 7 days.
const ADMIN_USER: &str = "485dd604-7e04-470c-b9c7-33eea526cab9";

fn create(user: &str) -> String {
    cloudtrail("CreateUser", user, "2024-03-01T10:00:00Z", 1)
}

fn attach(user: &str) -> String {
    cloudtrail("AttachUserPolicy", user, "2024-03-02T10:00:00Z", 2)
}

/// Runs the second half in a new process with `args` and returns the correlations it fired.
fn second_half(args: &[&str], user: &str) -> (Vec<String>, Vec<Value>) {
    let mut vigil = Vigil::spawn(args);
    vigil.send(&attach(user));
    let line = vigil.recv();
    let (status, _, stderr) = vigil.finish();
    assert!(status.success());
    (correlation_ids(&line), stderr)
}

#[test]
fn kill_9_between_the_halves_keeps_the_interval_saved_state() {
    let dir = TempDir::new("kill9");
    let state = dir.arg("state.bin");
    let mut vigil = Vigil::spawn(&["--state", &state, "--state-interval", "100ms"]);
    vigil.wait_stderr("state file not found; starting empty");
    vigil.send(&create("mallory"));
    let line = vigil.recv();
    assert_eq!(match_ids(&line).len(), 1, "{line}");
    // The line is processed. A save exported before it may still be in flight, so wait for
    // two more saves: the second was exported after the line, and holds its group.
    for _ in 0..2 {
        let before = mtime(&dir.path("state.bin"));
        wait_for_new_mtime(&dir.path("state.bin"), before);
    }
    vigil.kill9();

    let (fired, stderr) = second_half(&["--state", &state], "mallory");
    assert_eq!(fired, [ADMIN_USER]);
    let loaded = stderr.iter().find(|l| l["msg"] == "state loaded").unwrap();
    assert_eq!(loaded["groups_loaded"], 1, "{loaded}");
    // Without the state file, the second half alone fires nothing.
    let (fired, _) = second_half(&[], "mallory");
    assert!(fired.is_empty());
}

#[test]
fn sigterm_between_the_halves_saves_the_state_at_shutdown() {
    let dir = TempDir::new("sigterm");
    let state = dir.arg("state.bin");
    // An interval longer than the test: only the shutdown save can write the file.
    let mut vigil = Vigil::spawn(&["--state", &state, "--state-interval", "1h", "--stats"]);
    vigil.send(&create("trudy"));
    vigil.recv();
    assert!(!dir.path("state.bin").exists());
    vigil.signal("TERM");
    let (status, _, stderr) = vigil.wait_exit();
    assert!(status.success());
    let stats = stderr.iter().find(|l| l["msg"] == "stats").unwrap();
    assert_eq!(stats["ending"], "signal");
    assert_eq!(stats["state"]["saves_ok"], 1, "{stats}");
    assert!(stats["state"]["last_save_bytes"].as_u64().unwrap() > 24);

    let (fired, _) = second_half(&["--state", &state], "trudy");
    assert_eq!(fired, [ADMIN_USER]);
    // The state is per group: another user's second half does not fire.
    let (fired, _) = second_half(&["--state", &state], "victor");
    assert!(fired.is_empty());
}

/// Writes a good state file holding the first half for `user`, at `state`.
fn good_state_file(state: &str, user: &str) -> Vec<u8> {
    let mut vigil = Vigil::spawn(&["--state", state]);
    vigil.send(&create(user));
    vigil.recv();
    let (status, _, _) = vigil.finish();
    assert!(status.success());
    std::fs::read(state).unwrap()
}

/// Runs three lines (the second half, a bad line, an unmatched event) over the state file and
/// checks they all come out while the run starts empty with a warning of `reason`.
fn starts_empty_with_warning(state: &str, extra_args: &[&str], reason: &str) {
    let mut args = vec!["--state", state];
    args.extend_from_slice(extra_args);
    let mut vigil = Vigil::spawn(&args);
    let warning = vigil.wait_stderr("state file unusable; starting empty");
    assert_eq!(warning["level"], "warn");
    assert_eq!(warning["reason"], reason, "{warning}");
    vigil.send(&attach("mallory"));
    vigil.send("not json");
    let unmatched = cloudtrail("ListUsers", "mallory", "2024-03-02T10:00:00Z", 3);
    vigil.send(&unmatched);
    let first = vigil.recv();
    assert!(correlation_ids(&first).is_empty(), "{first}");
    assert_eq!(match_ids(&first).len(), 1);
    assert_eq!(vigil.recv()["vigil"]["error"], "invalid_json");
    assert_eq!(vigil.recv_raw(), unmatched);
    let (status, rest, _) = vigil.finish();
    assert!(status.success());
    assert!(rest.is_empty());
}

#[test]
fn damaged_state_files_start_empty_with_a_warning() {
    let dir = TempDir::new("damaged");
    let state = dir.arg("state.bin");
    let good = good_state_file(&state, "mallory");
    // The good file works (so the failures below are the damage, not the setup).
    let (fired, _) = second_half(&["--state", &state], "mallory");
    assert_eq!(fired, [ADMIN_USER]);

    std::fs::write(&state, &good[..good.len() / 2]).unwrap();
    starts_empty_with_warning(&state, &[], "truncated");

    let mut corrupt = good.clone();
    let middle = 24 + (corrupt.len() - 24) / 2;
    corrupt[middle] ^= 0xff;
    std::fs::write(&state, &corrupt).unwrap();
    starts_empty_with_warning(&state, &[], "checksum");

    let mut version = good.clone();
    version[8..12].copy_from_slice(&2_u32.to_le_bytes());
    std::fs::write(&state, &version).unwrap();
    starts_empty_with_warning(&state, &[], "version");

    std::fs::write(&state, b"{\"hello\": \"world\"}\n").unwrap();
    starts_empty_with_warning(&state, &[], "bad_magic");

    // Small limits make a small bound; a file past it is refused before it is read.
    let limits = [
        "--max-groups",
        "1",
        "--max-entries",
        "1",
        "--max-threshold-keys",
        "1",
        "--max-kv-keys",
        "1",
        "--max-kv-bytes",
        "1",
    ];
    let mut oversized = good.clone();
    oversized.resize(20 * 1024 * 1024, 0);
    std::fs::write(&state, &oversized).unwrap();
    starts_empty_with_warning(&state, &limits, "too_large");
}

const PAIR_RULES: &str = "\
title: a created
id: a-created
logsource:
  product: aws
  service: cloudtrail
detection:
  sel:
    eventName: CreateUser
  condition: sel
---
title: a attached
id: a-attached
logsource:
  product: aws
  service: cloudtrail
detection:
  sel:
    eventName: AttachUserPolicy
  condition: sel
---
title: a pair
id: a-pair
correlation:
  type: temporal_ordered
  rules:
    - a-created
    - a-attached
  group-by:
    - requestParameters.userName
  timespan: 7d
";

/// The same shape under other ids, so that two correlations see the same events.
fn b_rules(first_condition: &str) -> String {
    PAIR_RULES
        .replace("a-", "b-")
        .replace("a created", "b created")
        .replace("a attached", "b attached")
        .replace("a pair", "b pair")
        .replacen("    eventName: CreateUser\n", first_condition, 1)
}

#[test]
fn a_changed_rule_drops_its_state_an_unchanged_one_keeps_it() {
    let dir = TempDir::new("changed");
    let rules = dir.0.join("rules");
    dir.write("rules/a.yml", PAIR_RULES);
    dir.write("rules/b.yml", &b_rules("    eventName: CreateUser\n"));
    let state = dir.arg("state.bin");
    let rules_arg = rules.to_str().unwrap();
    let mut vigil = Vigil::spawn(&["--rules", rules_arg, "--state", &state]);
    vigil.send(&create("mallory"));
    vigil.recv();
    assert!(vigil.finish().0.success());

    // b's first rule still matches CreateUser, but its definition changed.
    dir.write(
        "rules/b.yml",
        &b_rules("    eventName: CreateUser\n    eventSource: iam.amazonaws.com\n"),
    );
    let (fired, stderr) = second_half(&["--rules", rules_arg, "--state", &state], "mallory");
    assert_eq!(fired, ["a-pair"]);
    let loaded = stderr.iter().find(|l| l["msg"] == "state loaded").unwrap();
    assert_eq!(loaded["correlations_kept"], 1, "{loaded}");
    assert_eq!(loaded["correlations_dropped"], 1, "{loaded}");
    assert_eq!(loaded["groups_loaded"], 1, "{loaded}");
    assert_eq!(loaded["groups_dropped"], 1, "{loaded}");
}

#[test]
fn an_unwritable_state_path_is_warned_and_counted_not_fatal() {
    let dir = TempDir::new("unwritable");
    // The parent directory does not exist, so no save can succeed.
    let state = dir.arg("missing/state.bin");
    let mut vigil = Vigil::spawn(&["--state", &state, "--state-interval", "100ms", "--stats"]);
    vigil.send(&create("mallory"));
    assert_eq!(match_ids(&vigil.recv()).len(), 1);
    let warning = vigil.wait_stderr("cannot save state");
    assert_eq!(warning["level"], "warn");
    vigil.send(&attach("mallory"));
    // The run goes on: the second half fires in the same process.
    assert_eq!(correlation_ids(&vigil.recv()), [ADMIN_USER]);
    let (status, _, stderr) = vigil.finish();
    assert!(status.success());
    let stats = stderr.iter().find(|l| l["msg"] == "stats").unwrap();
    assert!(
        stats["state"]["saves_failed"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    assert_eq!(stats["state"]["saves_ok"], 0);
    // One warning however many failures (rate-limited).
    let warnings = stderr
        .iter()
        .filter(|l| l["msg"] == "cannot save state")
        .count();
    assert_eq!(warnings, 1);
}

/// Fingerprints are stable across processes for every corpus rule (no hash-map order or
/// address leaks into a definition's text): a state saved by one run is recognised whole by
/// the next, so a restart over the same rules drops nothing.
#[test]
fn corpus_rule_fingerprints_are_stable_across_processes() {
    let Some(corpus) = std::env::var_os("VIGIL_CORPUS").map(std::path::PathBuf::from) else {
        eprintln!("skipped: VIGIL_CORPUS is not set");
        return;
    };
    let dir = TempDir::new("fingerprints");
    let state = dir.arg("state.bin");
    let paths = [
        corpus.join("sigma"),
        corpus.join("panther/rules"),
        corpus.join("panther/correlation_rules"),
        corpus.join("elastic/rules"),
    ];
    let mut args: Vec<String> = Vec::new();
    for path in &paths {
        args.push("--rules".to_string());
        args.push(path.to_str().unwrap().to_string());
    }
    args.push("--state".to_string());
    args.push(state.clone());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, _, _) = Vigil::spawn(&args).finish();
    assert!(status.success());
    let (status, _, stderr) = Vigil::spawn(&args).finish();
    assert!(status.success());
    let loaded = stderr.iter().find(|l| l["msg"] == "state loaded").unwrap();
    assert!(loaded["rules_kept"].as_u64().unwrap() > 500, "{loaded}");
    assert!(
        loaded["correlations_kept"].as_u64().unwrap() > 10,
        "{loaded}"
    );
    assert_eq!(loaded["rules_dropped"], 0, "{loaded}");
    assert_eq!(loaded["correlations_dropped"], 0, "{loaded}");
}

#[test]
fn a_closed_stdout_saves_the_state_at_shutdown() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let dir = TempDir::new("epipe");
    let state = dir.arg("state.bin");
    let mut child = Command::new(lifecycle_support::BIN)
        .args([
            "--state",
            &state,
            "--state-interval",
            "1h",
            "--line-buffered",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", create("judy")).unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("\"vigil\""));
    // The host goes away: vigil notices the closed stdout while idle and ends the run.
    drop(stdout);
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < lifecycle_support::TIMEOUT,
            "vigil did not exit"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(status.success());
    drop(stdin);
    let (fired, _) = second_half(&["--state", &state], "judy");
    assert_eq!(fired, [ADMIN_USER]);
}
