//! Driving a long-running `vigil` process for `tests/state.rs` and `tests/reload.rs`: lines
//! in, lines out with timeouts, stderr JSON lines waited for by `msg`, signals.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_vigil");
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("vigil-life-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CloudTrail record of `event_name` for user `user` at `time`, with a sequence number.
pub fn cloudtrail(event_name: &str, user: &str, time: &str, seq: u64) -> String {
    let policy = if event_name == "AttachUserPolicy" {
        r#","policyArn":"arn:aws:iam::aws:policy/AdministratorAccess""#
    } else {
        ""
    };
    format!(
        r#"{{"eventVersion":"1.08","eventSource":"iam.amazonaws.com","eventName":"{event_name}","awsRegion":"us-east-1","eventTime":"{time}","requestParameters":{{"userName":"{user}"{policy}}},"seq":{seq}}}"#
    )
}

/// The ids of the rules that matched an output line.
pub fn match_ids(line: &Value) -> Vec<String> {
    line["vigil"]["matches"]
        .as_array()
        .map(|matches| {
            matches
                .iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The ids of the correlations that fired on an output line.
pub fn correlation_ids(line: &Value) -> Vec<String> {
    line["vigil"]["correlations"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub struct Vigil {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stderr line seen so far, parsed.
    pub stderr_seen: Vec<Value>,
}

impl Vigil {
    pub fn spawn(args: &[&str]) -> Vigil {
        let mut child = Command::new(BIN)
            .args(args)
            .arg("--line-buffered")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = lines_in_thread(child.stdout.take().unwrap());
        let stderr = lines_in_thread(child.stderr.take().unwrap());
        Vigil {
            child,
            stdin,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The next stdout line, as written.
    pub fn recv_raw(&self) -> String {
        self.stdout
            .recv_timeout(TIMEOUT)
            .expect("an output line within the timeout")
    }

    /// The next stdout line, parsed.
    pub fn recv(&self) -> Value {
        serde_json::from_str(&self.recv_raw()).unwrap()
    }

    /// Waits for a stderr JSON line whose `msg` is `msg` and returns it (every line seen is
    /// kept in `stderr_seen`).
    pub fn wait_stderr(&mut self, msg: &str) -> Value {
        if let Some(found) = self.stderr_seen.iter().find(|line| line["msg"] == msg) {
            return found.clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .stderr
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no stderr line '{msg}'; saw {:?}", self.stderr_seen));
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|_| panic!("stderr line is not JSON: {line}"));
            self.stderr_seen.push(value.clone());
            if value["msg"] == msg {
                return value;
            }
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {}", self.child.id())])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL: no shutdown work at all.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit (after closing stdin or a signal); returns its status,
    /// the stdout lines not yet received, and every stderr line.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>, Vec<Value>) {
        drop(self.stdin.take());
        self.wait_exit()
    }

    /// Like [`Vigil::finish`] with stdin left open (after a signal: the run must end because
    /// of it, not because of EOF).
    pub fn wait_exit(mut self) -> (ExitStatus, Vec<String>, Vec<Value>) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                panic!("vigil did not exit within {TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        drop(self.stdin.take());
        let rest: Vec<String> = self.stdout.iter().collect();
        for line in self.stderr.iter() {
            self.stderr_seen.push(
                serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("stderr line is not JSON: {line}")),
            );
        }
        (status, rest, std::mem::take(&mut self.stderr_seen))
    }
}

impl Drop for Vigil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_in_thread<R: std::io::Read + Send + 'static>(reader: R) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

/// The modification time of `path`, if it exists.
pub fn mtime(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Waits until `path`'s modification time differs from `before` (a save happened).
pub fn wait_for_new_mtime(path: &Path, before: Option<std::time::SystemTime>) {
    let start = Instant::now();
    while mtime(path) == before || mtime(path).is_none() {
        assert!(
            start.elapsed() < TIMEOUT,
            "{} was not saved",
            path.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}
