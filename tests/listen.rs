//! Binary-level tests of the socket input (`--listen`): the real `vigil` executable, fed over
//! Unix and TCP sockets, its stdout read through a pipe.
//!
//! Every wait has a generous timeout (a hang fails after seconds instead of blocking the
//! suite); nothing asserts on speed. Paths of Unix sockets are kept short (at most 108
//! bytes), under the system temp dir.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_vigil");
const TIMEOUT: Duration = Duration::from_secs(30);
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
const CREATE_USER: &str = r#"{"eventSource":"iam.amazonaws.com","eventName":"CreateUser"}"#;
const LIST_USERS: &str = r#"{"eventSource":"iam.amazonaws.com","eventName":"ListUsers"}"#;

/// A directory under the system temp dir, removed on drop; also holds the rules.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("vlt-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("rules")).unwrap();
        TempDir(path)
    }

    /// The same, with [`RULE`] in its rules directory.
    fn with_rule(name: &str) -> TempDir {
        let dir = TempDir::new(name);
        std::fs::write(dir.0.join("rules/create_user.yml"), RULE).unwrap();
        dir
    }

    fn rules(&self) -> String {
        self.0.join("rules").display().to_string()
    }

    fn socket(&self) -> PathBuf {
        self.0.join("s.sock")
    }

    fn unix_arg(&self) -> String {
        format!("unix:{}", self.socket().display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `vigil run --listen ...`.
struct Vigil {
    child: Child,
    stdout: Option<mpsc::Receiver<String>>,
    stderr: mpsc::Receiver<String>,
    /// Stderr lines seen so far.
    stderr_lines: Vec<Value>,
    /// The bound addresses, from the `listening` reports.
    addresses: Vec<String>,
}

impl Vigil {
    /// Starts vigil and waits until it listens on `n_listen` addresses.
    fn start(args: &[&str], n_listen: usize) -> Vigil {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = channel(child.stdout.take().unwrap());
        let stderr = channel(child.stderr.take().unwrap());
        let mut vigil = Vigil {
            child,
            stdout: Some(stdout),
            stderr,
            stderr_lines: Vec::new(),
            addresses: Vec::new(),
        };
        while vigil.addresses.len() < n_listen {
            let line = vigil.next_stderr();
            if line["msg"] == "listening" {
                vigil
                    .addresses
                    .push(line["address"].as_str().unwrap().to_string());
            }
        }
        vigil
    }

    fn next_stderr(&mut self) -> Value {
        let line = self
            .stderr
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("no stderr line; so far: {:?}", self.stderr_lines));
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|err| panic!("stderr line is not JSON ({err}): {line:?}"));
        self.stderr_lines.push(value.clone());
        value
    }

    /// The TCP port of the first `tcp:` address.
    fn tcp_port(&self) -> u16 {
        let address = self
            .addresses
            .iter()
            .find(|a| a.starts_with("tcp:"))
            .unwrap();
        address.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Waits for `n` stdout lines.
    fn lines(&self, n: usize) -> Vec<String> {
        let stdout = self.stdout.as_ref().unwrap();
        (0..n)
            .map(|idx| {
                stdout
                    .recv_timeout(TIMEOUT)
                    .unwrap_or_else(|_| panic!("only {idx} of {n} lines out"))
            })
            .collect()
    }

    /// Sends SIGTERM, waits for the exit; returns the status, the remaining stdout lines and
    /// every stderr line.
    fn terminate(self) -> (ExitStatus, Vec<String>, Vec<Value>) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait()
    }

    fn wait(mut self) -> (ExitStatus, Vec<String>, Vec<Value>) {
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
        let rest = match self.stdout.take() {
            Some(stdout) => stdout.iter().collect(),
            None => Vec::new(),
        };
        while let Ok(line) = self.stderr.recv_timeout(TIMEOUT) {
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|err| panic!("stderr line is not JSON ({err}): {line:?}"));
            self.stderr_lines.push(value);
        }
        (status, rest, self.stderr_lines)
    }
}

/// Sends each line (without `\n`) down a channel; the channel closes at EOF.
fn channel<R: Read + Send + 'static>(reader: R) -> mpsc::Receiver<String> {
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

fn stats(stderr: &[Value]) -> &Value {
    stderr
        .iter()
        .find(|line| line["msg"] == "stats")
        .unwrap_or_else(|| panic!("no stats line in {stderr:?}"))
}

/// Runs vigil to a fatal exit; returns the status and stderr.
fn run_fatal(args: &[&str]) -> (ExitStatus, String) {
    let output = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line:?}"))
}

#[test]
fn unix_round_trip_sigterm_and_socket_removal() {
    let dir = TempDir::with_rule("unix");
    let vigil = Vigil::start(
        &[
            "--rules",
            &dir.rules(),
            "--listen",
            &dir.unix_arg(),
            "--stats",
        ],
        1,
    );
    assert!(vigil.addresses[0].starts_with("unix:"));
    let mut conn = UnixStream::connect(dir.socket()).unwrap();
    conn.write_all(format!("{CREATE_USER}\n{LIST_USERS}\r\n").as_bytes())
        .unwrap();
    let out = vigil.lines(2);
    assert_eq!(
        json(&out[0])["vigil"]["matches"][0]["id"],
        "11111111-1111-1111-1111-111111111111"
    );
    assert_eq!(
        out[1], LIST_USERS,
        "unmatched lines leave unchanged, \\r dropped"
    );
    // An incomplete line when the signal comes is dropped and counted.
    conn.write_all(b"{\"half\":").unwrap();
    thread::sleep(Duration::from_millis(500));
    let (status, rest, stderr) = vigil.terminate();
    assert!(status.success(), "{status:?}");
    assert!(rest.is_empty(), "{rest:?}");
    let stats = stats(&stderr);
    assert_eq!(stats["ending"], "signal");
    assert_eq!(stats["lines_in"], 2);
    assert_eq!(stats["discarded_bytes"], 8);
    assert_eq!(stats["connections"]["accepted"], 1);
    assert_eq!(stats["connections"]["refused"], 0);
    assert_eq!(stats["connections"]["open"], 1);
    assert!(
        stderr
            .iter()
            .any(|line| line["msg"] == "incomplete line dropped at shutdown"
                && line["connection"] == 1),
        "{stderr:?}"
    );
    assert!(!dir.socket().exists(), "the socket file is removed at exit");
}

#[test]
fn tcp_round_trip_and_final_line_without_newline() {
    let dir = TempDir::new("tcp");
    let vigil = Vigil::start(&["--rules", &dir.rules(), "--listen", "tcp:127.0.0.1:0"], 1);
    let port = vigil.tcp_port();
    assert_ne!(port, 0);
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"{\"a\":1}\n{\"a\":2}").unwrap();
    assert_eq!(vigil.lines(1), [r#"{"a":1}"#]);
    // The last line has no newline: it is a line when the connection closes.
    drop(conn);
    assert_eq!(vigil.lines(1), [r#"{"a":2}"#]);
    // Closing a connection does not end the run; a new one is served.
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"{\"a\":3}\n").unwrap();
    assert_eq!(vigil.lines(1), [r#"{"a":3}"#]);
    let (status, rest, _) = vigil.terminate();
    assert!(status.success());
    assert!(rest.is_empty());
}

#[test]
fn several_listeners_at_once() {
    let dir = TempDir::new("several");
    let vigil = Vigil::start(
        &[
            "--rules",
            &dir.rules(),
            "--listen",
            &dir.unix_arg(),
            "--listen",
            "tcp:localhost:0",
        ],
        2,
    );
    let mut unix = UnixStream::connect(dir.socket()).unwrap();
    unix.write_all(b"{\"via\":\"unix\"}\n").unwrap();
    assert_eq!(vigil.lines(1), [r#"{"via":"unix"}"#]);
    let address = vigil.addresses[1].strip_prefix("tcp:").unwrap().to_string();
    let mut tcp = TcpStream::connect(address.as_str()).unwrap();
    tcp.write_all(b"{\"via\":\"tcp\"}\n").unwrap();
    assert_eq!(vigil.lines(1), [r#"{"via":"tcp"}"#]);
    let (status, _, _) = vigil.terminate();
    assert!(status.success());
    assert!(!dir.socket().exists());
}

/// Writes `text` in pieces of varying sizes (cutting lines anywhere), pausing now and then so
/// that other connections' bytes come in between.
fn write_in_pieces(conn: &mut impl Write, text: &[u8], seed: usize) {
    let mut pos = 0;
    let mut step = seed;
    while pos < text.len() {
        step = (step * 7919 + 13) % 4099;
        let len = (step % 3000 + 1).min(text.len() - pos);
        conn.write_all(&text[pos..pos + len]).unwrap();
        pos += len;
        if step.is_multiple_of(5) {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn concurrent_connections_keep_order_and_lose_nothing() {
    const CONNECTIONS: usize = 8;
    const LINES: usize = 3000;
    let dir = TempDir::new("concurrent");
    let vigil = Vigil::start(
        &[
            "--rules",
            &dir.rules(),
            "--listen",
            &dir.unix_arg(),
            "--stats",
        ],
        1,
    );
    let writers: Vec<_> = (0..CONNECTIONS)
        .map(|conn_idx| {
            let path = dir.socket();
            thread::spawn(move || {
                let mut text = String::new();
                for line_idx in 0..LINES {
                    // Lines of different lengths, some with \r\n.
                    let pad = "x".repeat((line_idx * 31 + conn_idx) % 200);
                    let end = if line_idx.is_multiple_of(7) {
                        "\r\n"
                    } else {
                        "\n"
                    };
                    text.push_str(&format!(
                        "{{\"c\":{conn_idx},\"n\":{line_idx},\"p\":\"{pad}\"}}{end}"
                    ));
                }
                let mut conn = UnixStream::connect(&path).unwrap();
                write_in_pieces(&mut conn, text.as_bytes(), conn_idx + 1);
            })
        })
        .collect();
    let out = vigil.lines(CONNECTIONS * LINES);
    for writer in writers {
        writer.join().unwrap();
    }
    let mut next: HashMap<u64, u64> = HashMap::new();
    let mut switches = 0;
    let mut previous = None;
    for line in &out {
        let value = json(line);
        let conn_idx = value["c"].as_u64().unwrap();
        switches += usize::from(previous.is_some_and(|p| p != conn_idx));
        previous = Some(conn_idx);
        let line_idx = value["n"].as_u64().unwrap();
        let expected = next.entry(conn_idx).or_insert(0);
        // Each connection's lines in its order, none lost or repeated in between.
        assert_eq!(line_idx, *expected, "connection {conn_idx}: {line}");
        *expected += 1;
        assert_eq!(
            value["p"].as_str().unwrap().len() as u64,
            (line_idx * 31 + conn_idx) % 200
        );
    }
    assert_eq!(next.len(), CONNECTIONS);
    assert!(next.values().all(|&n| n == LINES as u64), "{next:?}");
    // The connections did run at the same time (else this test proves little).
    assert!(switches > CONNECTIONS, "only {switches} switches");
    let (status, rest, stderr) = vigil.terminate();
    assert!(status.success());
    assert!(rest.is_empty(), "no line twice: {} more", rest.len());
    let stats = stats(&stderr);
    assert_eq!(stats["lines_in"], (CONNECTIONS * LINES) as u64);
    assert_eq!(stats["connections"]["accepted"], CONNECTIONS as u64);
    assert_eq!(stats["discarded_bytes"], 0);
}

#[test]
fn bad_lines_on_one_connection_do_not_disturb_another() {
    let dir = TempDir::new("bad");
    let vigil = Vigil::start(
        &[
            "--rules",
            &dir.rules(),
            "--listen",
            &dir.unix_arg(),
            "--max-line-bytes",
            "64",
            "--stats",
        ],
        1,
    );
    let mut good = UnixStream::connect(dir.socket()).unwrap();
    let mut bad = UnixStream::connect(dir.socket()).unwrap();
    let long = format!("{{\"long\":\"{}\"}}\n", "y".repeat(500));
    let bad_lines: [&[u8]; 4] = [
        b"not json\n",
        b"{\"a\":\"\xff\"}\n",
        b"[1,2]\n",
        long.as_bytes(),
    ];
    let mut expected_good = Vec::new();
    for (idx, bad_line) in bad_lines.iter().enumerate() {
        // The bad line is cut in two around a whole good line of the other connection.
        let (head, tail) = bad_line.split_at(bad_line.len() / 2);
        bad.write_all(head).unwrap();
        thread::sleep(Duration::from_millis(20));
        let good_line = format!("{{\"good\":{idx}}}");
        good.write_all(format!("{good_line}\n").as_bytes()).unwrap();
        expected_good.push(good_line);
        thread::sleep(Duration::from_millis(20));
        bad.write_all(tail).unwrap();
    }
    let out = vigil.lines(8);
    let (from_good, from_bad): (Vec<&String>, Vec<&String>) =
        out.iter().partition(|line| line.starts_with("{\"good\""));
    assert_eq!(from_good, expected_good.iter().collect::<Vec<_>>());
    let kinds: Vec<String> = from_bad
        .iter()
        .map(|line| json(line)["vigil"]["error"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["invalid_json", "invalid_utf8", "not_object", "too_long"]
    );
    assert_eq!(json(from_bad[0])["message"], "not json");
    let (status, _, stderr) = vigil.terminate();
    assert!(status.success());
    let reports: Vec<&Value> = stderr
        .iter()
        .filter(|line| line["msg"] == "bad input line")
        .collect();
    assert_eq!(reports.len(), 4, "{stderr:?}");
    assert!(reports.iter().all(|report| report["connection"] == 2));
    let stats = stats(&stderr);
    assert_eq!(stats["errors"]["too_long"], 1);
    assert_eq!(stats["lines_in"], 8);
}

#[test]
fn stale_socket_is_replaced_and_other_files_are_refused() {
    let dir = TempDir::new("stale");
    let path = dir.socket();
    // A socket nobody listens on any more.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let vigil = Vigil::start(&["--rules", &dir.rules(), "--listen", &dir.unix_arg()], 1);
    let mut conn = UnixStream::connect(&path).unwrap();
    conn.write_all(b"{}\n").unwrap();
    assert_eq!(vigil.lines(1), ["{}"]);

    // While it runs, a second vigil on the same path is refused and leaves it alone.
    let (status, stderr) = run_fatal(&["--rules", &dir.rules(), "--listen", &dir.unix_arg()]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("another process is listening"), "{stderr}");
    conn.write_all(b"{\"still\":1}\n").unwrap();
    assert_eq!(vigil.lines(1), [r#"{"still":1}"#]);
    let (status, _, _) = vigil.terminate();
    assert!(status.success());
    assert!(!path.exists());

    // A regular file and a directory are never deleted.
    std::fs::write(&path, "keep me").unwrap();
    let (status, stderr) = run_fatal(&["--rules", &dir.rules(), "--listen", &dir.unix_arg()]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("a regular file"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let (status, stderr) = run_fatal(&["--rules", &dir.rules(), "--listen", &dir.unix_arg()]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("a directory"), "{stderr}");
    assert!(path.is_dir());
}

#[test]
fn non_loopback_address_needs_listen_any() {
    let dir = TempDir::new("any");
    let (status, stderr) = run_fatal(&["--rules", &dir.rules(), "--listen", "tcp:0.0.0.0:0"]);
    assert_eq!(status.code(), Some(2));
    let report = json(stderr.lines().last().unwrap());
    assert_eq!(report["level"], "error");
    assert!(
        report["msg"].as_str().unwrap().contains("--listen-any"),
        "{stderr}"
    );
    let vigil = Vigil::start(
        &[
            "--rules",
            &dir.rules(),
            "--listen",
            "tcp:0.0.0.0:0",
            "--listen-any",
        ],
        1,
    );
    assert!(vigil.addresses[0].starts_with("tcp:0.0.0.0:"));
    let (status, _, _) = vigil.terminate();
    assert!(status.success());
}

#[test]
fn connections_over_the_maximum_are_refused_and_counted() {
    let dir = TempDir::new("max");
    let vigil = Vigil::start(
        &[
            "--rules",
            &dir.rules(),
            "--listen",
            &dir.unix_arg(),
            "--max-connections",
            "2",
            "--stats",
        ],
        1,
    );
    let mut first = UnixStream::connect(dir.socket()).unwrap();
    let mut second = UnixStream::connect(dir.socket()).unwrap();
    first.write_all(b"{\"c\":1}\n").unwrap();
    second.write_all(b"{\"c\":2}\n").unwrap();
    let mut out = vigil.lines(2);
    out.sort();
    assert_eq!(out, [r#"{"c":1}"#, r#"{"c":2}"#]);
    // Both are open: a third is closed at once, before anything is read from it.
    let mut third = UnixStream::connect(dir.socket()).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(third.read(&mut buf).unwrap(), 0, "closed by vigil");
    // Once one closes, a new connection is served (tried again while vigil has not yet
    // seen the close, each try refused and counted).
    drop(first);
    let mut refused = 1;
    let start = Instant::now();
    let mut fourth = loop {
        let conn = UnixStream::connect(dir.socket()).unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match (&conn).read(&mut buf) {
            Ok(0) => refused += 1,
            Ok(_) => panic!("vigil wrote to a connection"),
            // Still open after 200 ms: accepted.
            Err(_) => break conn,
        }
        assert!(start.elapsed() < TIMEOUT, "no connection accepted again");
    };
    fourth.write_all(b"{\"c\":4}\n").unwrap();
    assert_eq!(vigil.lines(1), [r#"{"c":4}"#]);
    let (status, _, stderr) = vigil.terminate();
    assert!(status.success());
    let stats = stats(&stderr);
    assert_eq!(stats["connections"]["accepted"], 3);
    assert_eq!(stats["connections"]["refused"], refused);
    assert_eq!(stats["connections"]["open"], 2);
    assert!(
        stderr.iter().any(|line| line["msg"]
            .as_str()
            .unwrap()
            .starts_with("connection refused")
            && line["max_connections"] == 2),
        "{stderr:?}"
    );
}

#[test]
fn stdin_is_not_read_and_closed_stdout_ends_the_run() {
    let dir = TempDir::new("stdout");
    let mut child = Command::new(BIN)
        .args(["--rules", &dir.rules(), "--listen", &dir.unix_arg()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stdin holds a line and then ends: neither the line nor the EOF matters with --listen.
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"{\"from\":\"stdin\"}\n");
    drop(stdin);
    let stderr = channel(child.stderr.take().unwrap());
    let listening = stderr.recv_timeout(TIMEOUT).unwrap();
    assert!(listening.contains("listening"), "{listening}");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut conn = UnixStream::connect(dir.socket()).unwrap();
    conn.write_all(b"{\"from\":\"socket\"}\n").unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "{\"from\":\"socket\"}\n");
    assert!(
        child.try_wait().unwrap().is_none(),
        "EOF on stdin is no ending"
    );
    // The host closes our stdout while no connection sends anything.
    drop(stdout);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "vigil did not notice its closed stdout"
        );
        thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
    assert!(!Path::new(&dir.socket()).exists());
}

#[test]
fn sigterm_mid_stream_writes_every_complete_line_read() {
    const CONNECTIONS: usize = 3;
    const LINES: usize = 1_000_000;
    let dir = TempDir::new("midstream");
    let vigil = Vigil::start(
        &[
            "--rules",
            &dir.rules(),
            "--listen",
            &dir.unix_arg(),
            "--stats",
        ],
        1,
    );
    let writers: Vec<_> = (0..CONNECTIONS)
        .map(|conn_idx| {
            let path = dir.socket();
            thread::spawn(move || {
                let mut conn = UnixStream::connect(&path).unwrap();
                for line_idx in 0..LINES {
                    let line = format!("{{\"c\":{conn_idx},\"n\":{line_idx}}}\n");
                    // vigil stops reading at the signal and closes the connection at exit.
                    if conn.write_all(line.as_bytes()).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    // Some lines are through, many more are on their way: stop now.
    let mut out = vigil.lines(1000);
    let (status, rest, stderr) = vigil.terminate();
    assert!(status.success(), "{status:?}");
    out.extend(rest);
    for writer in writers {
        writer.join().unwrap();
    }
    let mut next: HashMap<u64, u64> = HashMap::new();
    for line in &out {
        let value = json(line);
        let expected = next.entry(value["c"].as_u64().unwrap()).or_insert(0);
        assert_eq!(value["n"].as_u64().unwrap(), *expected, "{line}");
        *expected += 1;
    }
    assert!(
        out.len() < CONNECTIONS * LINES,
        "the signal came before the end of the input"
    );
    let stats = stats(&stderr);
    assert_eq!(stats["ending"], "signal");
    // Every line vigil took in is out, whole.
    assert_eq!(stats["lines_in"], out.len() as u64);
    assert_eq!(stats["lines_out"], out.len() as u64);
}
