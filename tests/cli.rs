//! Binary-level tests: the real `vigil` executable over pipes.
//!
//! Every test runs the binary with generous timeouts (a hang fails after seconds instead of
//! blocking the suite) and never asserts on speed. Tests that need a matching rule write a tiny
//! Sigma rule into a temporary directory; the others use an empty rules directory (zero rules)
//! so they exercise only the protocol.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_vigil");
const TIMEOUT: Duration = Duration::from_secs(30);
const RULE_ID: &str = "11111111-1111-1111-1111-111111111111";
const RULE: &str = "\
title: t
id: 11111111-1111-1111-1111-111111111111
logsource:
  product: aws
  service: cloudtrail
detection:
  sel:
    eventName: CreateUser
  condition: sel
level: high
";
const CREATE_USER: &str = r#"{"eventVersion":"1.08","eventSource":"iam.amazonaws.com","eventName":"CreateUser","awsRegion":"us-east-1"}"#;
const LIST_USERS: &str = r#"{"eventVersion":"1.08","eventSource":"iam.amazonaws.com","eventName":"ListUsers","awsRegion":"us-east-1"}"#;

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("vigil-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
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

/// An empty rules directory: zero rules, so only the protocol is exercised.
fn empty_rules(name: &str) -> TempDir {
    TempDir::new(name)
}

/// A rules directory holding [`RULE`].
fn matching_rules(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    dir.write("create_user.yml", RULE);
    dir
}

struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Output {
    fn stdout_lines(&self) -> Vec<&str> {
        std::str::from_utf8(&self.stdout).unwrap().lines().collect()
    }

    fn stdout_json(&self) -> Vec<Value> {
        self.stdout_lines()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line:?}")))
            .collect()
    }

    /// Every stderr line, which must be a JSON object.
    fn stderr_json(&self) -> Vec<Value> {
        stderr_json_lines(&self.stderr)
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The `--stats` line.
    fn stats(&self) -> Value {
        self.stderr_json()
            .into_iter()
            .find(|line| line["msg"] == "stats")
            .unwrap_or_else(|| panic!("no stats line in {:?}", self.stderr_text()))
    }
}

fn stderr_json_lines(stderr: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(stderr).expect("stderr is UTF-8");
    text.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("stderr line is not JSON ({err}): {line:?}"));
            assert!(value.is_object(), "stderr line is not an object: {line:?}");
            assert!(value["level"].is_string(), "no level: {line:?}");
            assert!(value["msg"].is_string(), "no msg: {line:?}");
            value
        })
        .collect()
}

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn read_all_in_thread<R: Read + Send + 'static>(mut reader: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        out
    })
}

/// Sends a signal with the shell's built-in `kill`, which every POSIX `sh` has (a separate
/// `kill` binary may not be installed).
fn send_signal(child: &Child, signal: &str) -> ExitStatus {
    Command::new("sh")
        .args(["-c", &format!("kill -{signal} {}", child.id())])
        .status()
        .unwrap()
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("vigil did not exit within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs vigil with `input` on stdin (closed after it), collecting stdout and stderr.
fn run(args: &[&str], input: impl Into<Vec<u8>>) -> Output {
    let input = input.into();
    let mut child = spawn(args);
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        // vigil may exit before reading everything (fatal errors): ignore EPIPE.
        let _ = stdin.write_all(&input);
    });
    let stdout = read_all_in_thread(child.stdout.take().unwrap());
    let stderr = read_all_in_thread(child.stderr.take().unwrap());
    let status = wait_timeout(&mut child, TIMEOUT);
    writer.join().unwrap();
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Sends each stdout line (without `\n`) down a channel, so a test can wait with a timeout.
fn line_channel(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

fn error_kind(record: &Value) -> &str {
    record["vigil"]["error"].as_str().unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// The stream: order, count, bytes.

#[test]
fn preserves_line_count_order_and_bytes() {
    let rules = empty_rules("order");
    let mut input = String::new();
    for idx in 0..5000 {
        // Odd spacing and key order must survive: unmatched lines are byte-identical.
        input.push_str(&format!(
            "{{\"n\": {idx},  \"b\":\"x\" ,\"a\":[1, 2,{{}}], \"s\":\"\\u00e9\\n\"}}\n"
        ));
    }
    let out = run(&["--rules", rules.arg()], input.clone());
    assert!(out.status.success(), "{}", out.stderr_text());
    assert_eq!(out.stdout.len(), input.len());
    assert!(out.stdout == input.as_bytes(), "output differs from input");
    assert!(out.stderr.is_empty(), "{}", out.stderr_text());
}

#[test]
fn crlf_lines_lose_only_the_cr() {
    let rules = empty_rules("crlf");
    let out = run(&["--rules", rules.arg()], "{\"a\":1}\r\n{\"b\":2}\r\n");
    assert!(out.status.success());
    assert_eq!(out.stdout, b"{\"a\":1}\n{\"b\":2}\n");
}

#[test]
fn byte_order_mark_at_the_start_of_the_input_is_dropped() {
    let rules = matching_rules("bom");
    let mut input = b"\xef\xbb\xbf".to_vec();
    input.extend_from_slice(format!("{CREATE_USER}\n{LIST_USERS}\n").as_bytes());
    let out = run(&["--rules", rules.arg()], input);
    assert!(out.status.success(), "{}", out.stderr_text());
    let records = out.stdout_json();
    assert_eq!(records.len(), 2);
    // The first event is evaluated (not an invalid_json record) and written without the mark.
    assert_eq!(records[0]["vigil"]["matches"][0]["id"], RULE_ID);
    assert!(out.stdout_lines()[0].starts_with(&CREATE_USER[..CREATE_USER.len() - 1]));
    assert_eq!(out.stdout_lines()[1], LIST_USERS);
    // Only at the start: a mark later in the stream is bad input like any other.
    let out = run(
        &["--rules", rules.arg()],
        format!("{LIST_USERS}\n\u{feff}{LIST_USERS}\n"),
    );
    assert_eq!(error_kind(&out.stdout_json()[1]), "invalid_json");
}

#[test]
fn final_line_without_newline_is_processed() {
    let rules = empty_rules("final");
    let out = run(&["--rules", rules.arg()], "{\"a\":1}\n{\"b\":2}");
    assert!(out.status.success());
    assert_eq!(out.stdout, b"{\"a\":1}\n{\"b\":2}\n");

    let out = run(&["--rules", rules.arg()], "not json");
    assert!(out.status.success());
    assert_eq!(out.stdout_json().len(), 1);
    assert_eq!(error_kind(&out.stdout_json()[0]), "invalid_json");

    let out = run(&["--rules", rules.arg()], "");
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Bad input.

#[test]
fn each_bad_input_kind_is_wrapped_and_counted() {
    let rules = empty_rules("bad");
    let mut input: Vec<u8> = Vec::new();
    input.extend_from_slice(b"{\"ok\":1}\n");
    input.extend_from_slice(b"{\"broken\":\n"); // invalid JSON
    input.extend_from_slice(b"[1]\n42\n\"s\"\n"); // not objects
    input.extend_from_slice(b"{\"a\":\"\xff\xfe\"}\n"); // invalid UTF-8
    input.extend_from_slice(b"\x00\x01\x02garbage\x00\n"); // binary with NUL bytes
    input.extend_from_slice(format!("{{\"long\":\"{}\"}}\n", "x".repeat(300)).as_bytes());
    input.extend_from_slice(b"{\"ok\":2}\n");
    let out = run(
        &["--rules", rules.arg(), "--max-line-bytes", "100", "--stats"],
        input,
    );
    assert!(out.status.success(), "{}", out.stderr_text());
    let records = out.stdout_json();
    let kinds: Vec<&str> = records.iter().map(error_kind).collect();
    assert_eq!(
        kinds,
        [
            "",
            "invalid_json",
            "not_object",
            "not_object",
            "not_object",
            "invalid_utf8",
            "invalid_json",
            "too_long",
            ""
        ]
    );
    for record in &records {
        assert!(record.is_object());
    }
    assert_eq!(records[1]["message"], "{\"broken\":");
    assert_eq!(records[2]["message"], "[1]");
    assert_eq!(records[6]["message"], "\u{0}\u{1}\u{2}garbage\u{0}");
    // The too-long record carries the first 100 bytes.
    assert_eq!(records[7]["message"].as_str().unwrap().len(), 100);
    assert_eq!(records[8], serde_json::json!({"ok": 2}));

    let stats = out.stats();
    assert_eq!(stats["lines_in"], 9);
    assert_eq!(stats["lines_out"], 9);
    assert_eq!(stats["errors"]["invalid_json"], 2);
    assert_eq!(stats["errors"]["not_object"], 3);
    assert_eq!(stats["errors"]["invalid_utf8"], 1);
    assert_eq!(stats["errors"]["too_long"], 1);
    let warnings: Vec<Value> = out
        .stderr_json()
        .into_iter()
        .filter(|line| line["msg"] == "bad input line")
        .collect();
    // Rate-limited: one report per kind within the first second.
    let mut reported: Vec<&str> = warnings
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect();
    reported.sort_unstable();
    assert_eq!(
        reported,
        ["invalid_json", "invalid_utf8", "not_object", "too_long"]
    );
    let first_json = warnings
        .iter()
        .find(|w| w["kind"] == "invalid_json")
        .unwrap();
    assert_eq!(first_json["line"], 2);
    assert_eq!(first_json["level"], "warn");
}

#[test]
fn many_bad_lines_are_reported_rate_limited() {
    let rules = empty_rules("ratelimit");
    let input = "nope\n".repeat(10_000);
    let out = run(&["--rules", rules.arg(), "--stats"], input);
    assert!(out.status.success());
    assert_eq!(out.stdout_json().len(), 10_000);
    let warnings = out
        .stderr_json()
        .into_iter()
        .filter(|line| line["msg"] == "bad input line")
        .count();
    // At most one per second; this run takes far less than the timeout allows, so a few.
    assert!(
        (1..=TIMEOUT.as_secs() as usize + 1).contains(&warnings),
        "{warnings}"
    );
    assert_eq!(out.stats()["errors"]["invalid_json"], 10_000);
}

#[test]
fn invalid_pass_writes_bad_lines_unchanged() {
    let rules = empty_rules("pass");
    let mut input: Vec<u8> = Vec::new();
    input.extend_from_slice(b"{\"ok\":1}\n");
    input.extend_from_slice(b"plain text line\n");
    input.extend_from_slice(b"[1]\n");
    input.extend_from_slice(b"\xff\x00bin\n");
    input.extend_from_slice(format!("{{\"long\":\"{}\"}}\n", "y".repeat(300)).as_bytes());
    input.extend_from_slice(b"{\"ok\":2}");
    let out = run(
        &[
            "--rules",
            rules.arg(),
            "--invalid",
            "pass",
            "--max-line-bytes",
            "100",
            "--stats",
        ],
        input.clone(),
    );
    assert!(out.status.success());
    let mut expected = input.clone();
    expected.push(b'\n');
    assert!(
        out.stdout == expected,
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stats = out.stats();
    assert_eq!(stats["lines_in"], 6);
    assert_eq!(stats["lines_out"], 6);
    assert_eq!(stats["errors"]["too_long"], 1);
    assert_eq!(stats["errors"]["invalid_json"], 1);
    assert_eq!(stats["errors"]["not_object"], 1);
    assert_eq!(stats["errors"]["invalid_utf8"], 1);
}

fn five_mib_input() -> Vec<u8> {
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"before\":1}\n{\"big\":\"");
    input.resize(input.len() + 5 * 1024 * 1024, b'z');
    input.extend_from_slice(b"\"}\n{\"after\":1}\n");
    input
}

#[test]
fn five_mib_line_is_too_long_by_default() {
    let rules = empty_rules("big-default");
    let out = run(&["--rules", rules.arg(), "--stats"], five_mib_input());
    assert!(out.status.success(), "{}", out.stderr_text());
    let records = out.stdout_json();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0], serde_json::json!({"before": 1}));
    assert_eq!(error_kind(&records[1]), "too_long");
    let message = records[1]["message"].as_str().unwrap();
    assert_eq!(message.len(), 1024 * 1024);
    assert!(message.starts_with("{\"big\":\"zzz"));
    assert_eq!(records[2], serde_json::json!({"after": 1}));
    let stats = out.stats();
    assert_eq!(stats["errors"]["too_long"], 1);
    assert_eq!(stats["lines_in"], 3);
    assert_eq!(stats["bytes_in"], five_mib_input().len());
}

#[test]
fn too_long_message_is_cut_on_a_character_boundary() {
    let rules = empty_rules("cut");
    // `{"m":"` is 6 bytes, each `é` 2: an 11-byte limit falls inside the third `é`, both for a
    // line the reader still holds whole and for one it stopped buffering.
    for total in [20, 200_000] {
        let line = format!("{{\"m\":\"{}\"}}\n", "é".repeat(total));
        let out = run(&["--rules", rules.arg(), "--max-line-bytes", "11"], line);
        assert!(out.status.success(), "{}", out.stderr_text());
        let records = out.stdout_json();
        assert_eq!(error_kind(&records[0]), "too_long");
        assert_eq!(records[0]["message"], "{\"m\":\"éé");
    }
}

#[test]
fn five_mib_line_passes_with_a_larger_max() {
    let rules = empty_rules("big-max");
    let input = five_mib_input();
    let out = run(
        &["--rules", rules.arg(), "--max-line-bytes", "8388608"],
        input.clone(),
    );
    assert!(out.status.success(), "{}", out.stderr_text());
    assert!(out.stdout == input, "output differs from input");
}

#[test]
fn five_mib_line_streams_through_with_invalid_pass() {
    let rules = empty_rules("big-pass");
    let input = five_mib_input();
    let out = run(
        &["--rules", rules.arg(), "--invalid", "pass", "--stats"],
        input.clone(),
    );
    assert!(out.status.success(), "{}", out.stderr_text());
    assert!(out.stdout == input, "output differs from input");
    assert_eq!(out.stats()["errors"]["too_long"], 1);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle: EPIPE, signals, flushing.

#[test]
fn closed_stdout_ends_the_run_with_exit_0() {
    let rules = empty_rules("epipe");
    let mut child = spawn(&["--rules", rules.arg()]);
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        let line = b"{\"n\":1,\"pad\":\"................................................\"}\n";
        // Stops at the first error: vigil has exited and the pipe is closed.
        for _ in 0..1_000_000 {
            if stdin.write_all(line).is_err() {
                return;
            }
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("{\"n\":1"));
    drop(stdout);
    let stderr = read_all_in_thread(child.stderr.take().unwrap());
    let status = wait_timeout(&mut child, TIMEOUT);
    writer.join().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&stderr)
    );
}

#[test]
fn closed_stdout_is_noticed_while_stdin_is_idle() {
    let rules = empty_rules("epipe-idle");
    let mut child = spawn(&["--rules", rules.arg(), "--stats"]);
    let mut stdin = child.stdin.take().unwrap();
    let stderr = read_all_in_thread(child.stderr.take().unwrap());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(b"{}\n").unwrap();
    stdin.flush().unwrap();
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "{}\n");
    // The host stops reading but keeps stdin open and writes nothing more.
    drop(stdout);
    let status = wait_timeout(&mut child, TIMEOUT);
    assert_eq!(status.code(), Some(0));
    let stats = stderr_json_lines(&stderr.join().unwrap())
        .into_iter()
        .find(|l| l["msg"] == "stats")
        .unwrap();
    assert_eq!(stats["ending"], "broken_pipe");
    drop(stdin);
}

#[test]
fn idle_flush_without_closing_stdin() {
    for flag in [None, Some("--line-buffered")] {
        let rules = empty_rules("idle");
        let mut args = vec!["--rules", rules.arg()];
        args.extend(flag);
        let mut child = spawn(&args);
        let mut stdin = child.stdin.take().unwrap();
        let lines = line_channel(child.stdout.take().unwrap());
        for idx in 0..3 {
            stdin
                .write_all(format!("{{\"idle\":{idx}}}\n").as_bytes())
                .unwrap();
            stdin.flush().unwrap();
            let line = lines
                .recv_timeout(TIMEOUT)
                .expect("line flushed while idle");
            assert_eq!(line, format!("{{\"idle\":{idx}}}"));
        }
        drop(stdin);
        assert!(wait_timeout(&mut child, TIMEOUT).success());
    }
}

#[test]
fn sigterm_finishes_buffered_lines_flushes_and_exits_0() {
    let rules = empty_rules("sigterm");
    let mut child = spawn(&["--rules", rules.arg(), "--stats"]);
    let mut stdin = child.stdin.take().unwrap();
    let lines = line_channel(child.stdout.take().unwrap());
    let stderr = read_all_in_thread(child.stderr.take().unwrap());
    stdin
        .write_all(b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n")
        .unwrap();
    stdin.flush().unwrap();
    for idx in 1..=3 {
        let line = lines
            .recv_timeout(TIMEOUT)
            .expect("line out before SIGTERM");
        assert_eq!(line, format!("{{\"a\":{idx}}}"));
    }
    // An incomplete line: dropped at shutdown, and reported.
    stdin.write_all(b"{\"partial\":").unwrap();
    stdin.flush().unwrap();
    let status = send_signal(&child, "TERM");
    assert!(status.success());
    let status = wait_timeout(&mut child, TIMEOUT);
    assert_eq!(status.code(), Some(0));
    assert!(lines.recv_timeout(TIMEOUT).is_err(), "no more output");
    drop(stdin);
    let stderr = stderr_json_lines(&stderr.join().unwrap());
    let stats = stderr.iter().find(|l| l["msg"] == "stats").unwrap();
    assert_eq!(stats["ending"], "signal");
    assert_eq!(stats["lines_in"], 3);
    assert_eq!(stats["lines_out"], 3);
    // The partial line may or may not have been read before the signal arrived.
    assert!(stats["discarded_bytes"] == 0 || stats["discarded_bytes"] == 11);
}

#[test]
fn sigterm_under_backpressure_loses_no_byte_it_read() {
    // vigil's stdout is not read, so it blocks, and stdin fills up behind it; then SIGTERM.
    // Every byte vigil took from stdin must come out as a line or be counted as discarded:
    // after a stop it must read nothing more.
    let rules = empty_rules("sigterm-full");
    let (stdin_read, mut stdin_write) = std::io::pipe().unwrap();
    let mut leftover = stdin_read.try_clone().unwrap();
    let mut child = Command::new(BIN)
        .args(["--rules", rules.arg(), "--stats"])
        .stdin(stdin_read)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(1_000));
    let input = line.repeat(4_000);
    let total = input.len();
    let writer = thread::spawn(move || {
        // Blocks until the test drains the pipe below; dropping the writer then ends it.
        let _ = stdin_write.write_all(input.as_bytes());
    });
    thread::sleep(Duration::from_millis(500));
    assert!(send_signal(&child, "TERM").success());
    let stdout = read_all_in_thread(child.stdout.take().unwrap());
    let stderr = read_all_in_thread(child.stderr.take().unwrap());
    let status = wait_timeout(&mut child, TIMEOUT);
    assert_eq!(status.code(), Some(0));
    // What vigil did not read is still in the pipe.
    let mut left = Vec::new();
    let reader = thread::spawn(move || leftover.read_to_end(&mut left).map(|_| left.len()));
    writer.join().unwrap();
    let left = reader.join().unwrap().unwrap();
    let stdout = stdout.join().unwrap();
    let stats = stderr_json_lines(&stderr.join().unwrap())
        .into_iter()
        .find(|l| l["msg"] == "stats")
        .unwrap();
    assert_eq!(stats["ending"], "signal");
    let read_by_vigil = (total - left) as u64;
    assert_eq!(stats["bytes_in"].as_u64().unwrap(), stdout.len() as u64);
    assert_eq!(
        stats["bytes_in"].as_u64().unwrap() + stats["discarded_bytes"].as_u64().unwrap(),
        read_by_vigil,
        "bytes vigil read from stdin but neither wrote nor counted: {stats}"
    );
}

#[test]
fn sigint_is_handled_like_sigterm() {
    let rules = empty_rules("sigint");
    let mut child = spawn(&["--rules", rules.arg()]);
    let mut stdin = child.stdin.take().unwrap();
    let lines = line_channel(child.stdout.take().unwrap());
    stdin.write_all(b"{\"a\":1}\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(lines.recv_timeout(TIMEOUT).unwrap(), "{\"a\":1}");
    let status = send_signal(&child, "INT");
    assert!(status.success());
    assert_eq!(wait_timeout(&mut child, TIMEOUT).code(), Some(0));
    drop(stdin);
}

// ---------------------------------------------------------------------------------------------
// Flags that shape the output.

#[test]
fn field_renames_the_error_marker() {
    let rules = empty_rules("field-err");
    let out = run(&["--rules", rules.arg(), "--field", "det"], "oops\n");
    assert!(out.status.success());
    let records = out.stdout_json();
    assert_eq!(records[0]["det"]["error"], "invalid_json");
    assert!(records[0].get("vigil").is_none());
}

#[test]
fn unwrap_records_splits_a_records_line() {
    let rules = empty_rules("unwrap");
    let input = "{\"Records\":[{\"a\":1}, {\"b\": 2},3]}\n{\"x\":1}\n";
    let out = run(
        &["--rules", rules.arg(), "--unwrap", "Records", "--stats"],
        input,
    );
    assert!(out.status.success());
    assert_eq!(
        out.stdout_lines(),
        [
            "{\"a\":1}",
            "{\"b\": 2}",
            r#"{"message":"3","vigil":{"error":"not_object"}}"#,
            "{\"x\":1}"
        ]
    );
    let stats = out.stats();
    assert_eq!(stats["lines_in"], 2);
    assert_eq!(stats["lines_out"], 4);
    assert_eq!(stats["events"], 3);
}

#[test]
fn stats_line_shape() {
    let rules = empty_rules("stats");
    let out = run(&["--rules", rules.arg(), "--stats"], "{\"a\":1}\n{}\n");
    assert!(out.status.success());
    let stats = out.stats();
    assert_eq!(stats["level"], "info");
    for key in [
        "lines_in",
        "lines_out",
        "events",
        "matched",
        "bytes_in",
        "bytes_out",
        "time_fallbacks",
    ] {
        assert!(stats[key].is_u64(), "{key}: {stats}");
    }
    for key in ["elapsed_secs", "events_per_sec", "mb_per_sec"] {
        assert!(stats[key].is_number(), "{key}: {stats}");
    }
    for kind in [
        "invalid_utf8",
        "invalid_json",
        "not_object",
        "too_long",
        "payload_missing",
        "payload_invalid",
    ] {
        assert_eq!(stats["errors"][kind], 0, "{kind}");
    }
    assert!(stats["rule_hits"].as_object().unwrap().is_empty());
    assert!(stats["correlation_hits"].as_object().unwrap().is_empty());
    for key in ["live_groups", "evicted_groups", "dropped_entries"] {
        assert_eq!(stats["correlation"][key], 0, "{key}");
    }
    assert_eq!(stats["lines_in"], 2);
    assert_eq!(stats["events"], 2);
    assert_eq!(stats["bytes_in"], 11);
    assert_eq!(stats["bytes_out"], 11);
    assert_eq!(stats["ending"], "eof");
}

#[test]
fn no_stats_line_without_the_flag() {
    let rules = empty_rules("nostats");
    let out = run(&["--rules", rules.arg()], "{}\n");
    assert!(out.status.success());
    assert!(out.stderr.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Rules, diagnostics and exit codes.

#[test]
fn unreadable_rules_path_exits_2() {
    let out = run(&["--rules", "/nonexistent/vigil/rules"], "{}\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let lines = out.stderr_json();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["level"], "error");
    assert!(
        lines[0]["msg"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/vigil/rules")
    );
}

#[test]
fn unreadable_placeholders_file_exits_2() {
    let rules = empty_rules("placeholders");
    let out = run(
        &[
            "--rules",
            rules.arg(),
            "--placeholders",
            "/nonexistent/p.yml",
        ],
        "{}\n",
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(out.stderr_json()[0]["level"], "error");
}

#[test]
fn bad_flag_values_exit_2() {
    for args in [
        &["--max-line-bytes", "0"][..],
        &["--max-line-bytes", "lots"],
        &["--invalid", "drop"],
        &["--logsource", "a:b:c:d"],
        &["--payload", "a,,b"],
        // The error record's text key: the marker would be a duplicate key.
        &["--field", "message"],
        &["--no-such-flag"],
        &["check"],
    ] {
        let out = run(args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_and_version_exit_0() {
    let out = run(&["--help"], "");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--max-line-bytes"));
    assert!(help.contains("Exit codes"));
    let out = run(&["--version"], "");
    assert_eq!(out.status.code(), Some(0));
}

/// A rule file vigil cannot load (wrong extension): an error diagnostic without needing the
/// Sigma loader.
fn unsupported_rules(name: &str) -> (TempDir, String) {
    let dir = TempDir::new(name);
    let path = dir.write("rule.txt", "not a rule");
    (dir, path.to_str().unwrap().to_string())
}

#[test]
fn diagnostics_are_json_lines_during_run() {
    let (_dir, path) = unsupported_rules("diag-run");
    let out = run(&["--rules", &path, "--stats"], "{}\nbad\n");
    assert!(out.status.success(), "{}", out.stderr_text());
    assert_eq!(out.stdout_lines().len(), 2);
    let lines = out.stderr_json();
    let diagnostic = lines
        .iter()
        .find(|line| line["msg"] == "rule diagnostic")
        .unwrap();
    assert_eq!(diagnostic["level"], "error");
    assert_eq!(diagnostic["code"], "unsupported");
    assert_eq!(diagnostic["path"], path.as_str());
    assert!(lines.iter().any(|line| line["msg"] == "bad input line"));
    assert!(lines.iter().any(|line| line["msg"] == "stats"));
}

#[test]
fn strict_makes_error_diagnostics_fatal() {
    let (_dir, path) = unsupported_rules("strict");
    let out = run(&["--rules", &path, "--strict"], "{}\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no input is read");
    let lines = out.stderr_json();
    assert!(lines.iter().any(|line| line["msg"] == "rule diagnostic"));
    assert_eq!(lines.last().unwrap()["level"], "error");

    // Without errors, --strict changes nothing.
    let rules = empty_rules("strict-ok");
    let out = run(&["--rules", rules.arg(), "--strict"], "{}\n");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"{}\n");
}

#[test]
fn check_exit_codes() {
    let rules = empty_rules("check-ok");
    let out = run(&["check", rules.arg()], "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "0 files, 0 rules, 0 correlations, 0 errors, 0 warnings\n"
    );

    let (_dir, path) = unsupported_rules("check-bad");
    let out = run(&["check", &path], "");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("{path}: error[unsupported]")),
        "{text}"
    );
    assert!(text.ends_with("1 files, 0 rules, 0 correlations, 1 errors, 0 warnings\n"));

    let out = run(&["check", "/nonexistent/vigil/rules"], "");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn rules_lists_nothing_for_an_empty_directory() {
    let rules = empty_rules("rules-empty");
    let out = run(&["rules", "--rules", rules.arg()], "");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
}

// ---------------------------------------------------------------------------------------------
// With a matching rule (these need the Sigma loader).

#[test]
fn matching_event_is_enriched_and_others_untouched() {
    let rules = matching_rules("match");
    let input = format!("{CREATE_USER}\n{LIST_USERS}\n");
    let out = run(&["--rules", rules.arg(), "--stats"], input);
    assert!(out.status.success(), "{}", out.stderr_text());
    let lines = out.stdout_lines();
    assert_eq!(lines.len(), 2);
    // The original bytes, then the spliced key.
    assert!(lines[0].starts_with(&CREATE_USER[..CREATE_USER.len() - 1]));
    let record: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(record["vigil"]["matches"][0]["id"], RULE_ID);
    assert_eq!(record["vigil"]["severity"], "high");
    assert_eq!(lines[1], LIST_USERS);
    let stats = out.stats();
    assert_eq!(stats["matched"], 1);
    assert_eq!(stats["rule_hits"][RULE_ID], 1);
}

#[test]
fn only_matches_writes_only_enriched_events() {
    let rules = matching_rules("only");
    let input = format!("{LIST_USERS}\nbad\n{CREATE_USER}\n{LIST_USERS}\n");
    let out = run(&["--rules", rules.arg(), "--only-matches"], input);
    assert!(out.status.success(), "{}", out.stderr_text());
    let records = out.stdout_json();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["eventName"], "CreateUser");
    assert_eq!(records[0]["vigil"]["matches"][0]["id"], RULE_ID);
}

#[test]
fn payload_message_on_vector_records() {
    let rules = matching_rules("payload");
    let wrap = |inner: &str| serde_json::json!({"message": inner, "host": "h"}).to_string();
    let input = format!(
        "{}\n{}\n{}\n",
        wrap(CREATE_USER),
        wrap(LIST_USERS),
        r#"{"host":"h"}"#
    );
    let out = run(
        &["--rules", rules.arg(), "--payload", "message", "--stats"],
        input,
    );
    assert!(out.status.success(), "{}", out.stderr_text());
    let records = out.stdout_json();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["host"], "h");
    assert_eq!(records[0]["message"], CREATE_USER);
    assert_eq!(records[0]["vigil"]["matches"][0]["id"], RULE_ID);
    assert!(records[1].get("vigil").is_none());
    assert_eq!(records[2]["vigil"]["error"], "payload_missing");
    assert_eq!(out.stats()["errors"]["payload_missing"], 1);
}

#[test]
fn unwrap_records_matches_each_record() {
    let rules = matching_rules("unwrap-match");
    let input = format!("{{\"Records\":[{LIST_USERS},{CREATE_USER}]}}\n");
    let out = run(&["--rules", rules.arg(), "--unwrap", "Records"], input);
    assert!(out.status.success(), "{}", out.stderr_text());
    let lines = out.stdout_lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], LIST_USERS);
    let record: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(record["vigil"]["matches"][0]["id"], RULE_ID);
}

#[test]
fn field_renames_the_enrichment_key() {
    let rules = matching_rules("field");
    let out = run(
        &["--rules", rules.arg(), "--field", "detections"],
        format!("{CREATE_USER}\n"),
    );
    assert!(out.status.success(), "{}", out.stderr_text());
    let records = out.stdout_json();
    assert_eq!(records[0]["detections"]["matches"][0]["id"], RULE_ID);
    assert!(records[0].get("vigil").is_none());
}

#[test]
fn check_and_rules_with_a_sigma_rule() {
    let rules = matching_rules("check-sigma");
    let out = run(&["check", rules.arg()], "");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "1 files, 1 rules, 0 correlations, 0 errors, 0 warnings\n"
    );

    let out = run(&["rules", "--rules", rules.arg(), "--ir"], "");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("{RULE_ID}\tsigma\thigh\trule\tt\t-")
    );
    assert!(lines.next().unwrap().starts_with("    eventName"));

    // A Sigma rule without a detection is an error.
    rules.write(
        "broken.yml",
        "title: broken\nid: 22222222-2222-2222-2222-222222222222\nlogsource: {product: aws}\n",
    );
    let out = run(&["check", rules.arg()], "");
    assert_eq!(out.status.code(), Some(1));
    let out = run(
        &["--rules", rules.arg(), "--strict"],
        format!("{CREATE_USER}\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn logsource_flag_routes_unrecognised_events() {
    let rules = matching_rules("logsource");
    // Not CloudTrail by shape: only the declared stream source decides.
    let event = r#"{"eventName":"CreateUser"}"#;
    let out = run(
        &["--rules", rules.arg(), "--logsource", "aws:cloudtrail"],
        format!("{event}\n"),
    );
    assert!(out.status.success(), "{}", out.stderr_text());
    assert_eq!(out.stdout_json()[0]["vigil"]["matches"][0]["id"], RULE_ID);
    let out = run(
        &["--rules", rules.arg(), "--logsource", "windows:security"],
        format!("{event}\n"),
    );
    assert!(out.status.success(), "{}", out.stderr_text());
    assert_eq!(out.stdout_lines(), [event]);
}

// The embedded default pack.

/// A `PutUserPolicy` record carrying the policy `document` (a JSON string, as CloudTrail has it).
fn put_user_policy(document: &str) -> String {
    serde_json::json!({
        "eventVersion": "1.08",
        "eventSource": "iam.amazonaws.com",
        "eventName": "PutUserPolicy",
        "awsRegion": "us-east-1",
        "requestParameters": {"userName": "someone", "policyName": "p", "policyDocument": document},
    })
    .to_string()
}

#[test]
fn default_pack_inline_full_access_needs_an_allow() {
    const RULE: &str = "55c2bc49-fb8b-4dc3-af3f-f6ac822c7a31";
    let doc = |statements: &str| {
        put_user_policy(&format!(
            "{{\n\t\"Version\": \"2012-10-17\",\n\t\"Statement\": [{statements}]\n}}"
        ))
    };
    let cases = [
        // Quarantine: deny everything (Panther's AWSCompromisedKeyQuarantine test event).
        (
            doc(r#"{"Sid": "DenyAll", "Effect": "Deny", "Action": ["*"], "Resource": ["*"]}"#),
            false,
        ),
        (
            doc(
                r#"{"Effect":"Deny","Action":"*","Resource":"*"},{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}"#,
            ),
            false,
        ),
        (
            doc(r#"{"Effect": "Allow", "Action": ["*"], "Resource": ["*"]}"#),
            true,
        ),
        (
            doc(r#"{"Action":"*","Resource":"*","Effect":"Allow"}"#),
            true,
        ),
        (
            doc(
                r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"},{"Effect":"Allow","Action":"*","Resource":"*"}"#,
            ),
            true,
        ),
    ];
    let input: String = cases.iter().map(|(line, _)| format!("{line}\n")).collect();
    let out = run(&[], input);
    assert!(out.status.success(), "{}", out.stderr_text());
    let records = out.stdout_json();
    assert_eq!(records.len(), cases.len());
    for ((line, want), record) in cases.iter().zip(&records) {
        let fired = record["vigil"]["matches"]
            .as_array()
            .is_some_and(|matches| matches.iter().any(|m| m["id"] == RULE));
        assert_eq!(fired, *want, "{line}");
    }
}
