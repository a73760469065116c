//! vigil under a real rsyslog: imfile reads an NDJSON file, omprog runs vigil and captures its
//! stdout (`output=`).
//!
//! Each test runs its own `rsyslogd -n` in the foreground with its own configuration, work
//! directory and pid file in a temporary directory (no system socket, nothing of the host's
//! syslog touched). vigil runs through a small wrapper script that records each start (so a
//! restart can be counted) and keeps vigil's stderr out of the captured output: omprog writes
//! a child's stdout *and* stderr to `output`.
//!
//! Skipped with `skipped: rsyslogd not installed` when there is no rsyslogd, unless
//! `VIGIL_REQUIRE_RSYSLOG=1` (set by .ci/run, which installs it), where that is a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_vigil");
const TIMEOUT: Duration = Duration::from_secs(60);
/// The default pack's "new IAM user given AdministratorAccess" correlation: the sample creates
/// `mallory-backdoor` on line 20 and attaches AdministratorAccess to it on line 66.
const ADMIN_CORRELATION: &str = "485dd604-7e04-470c-b9c7-33eea526cab9";
/// Lines of the sample fed before the kill: the correlation's first half is among them, its
/// second half is not.
const FIRST_PART: usize = 40;

fn rsyslogd() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("rsyslogd"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let known = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"].map(PathBuf::from);
    from_path.into_iter().chain(known).find(|p| p.is_file())
}

/// rsyslogd, or `None` after printing the skip line; a failure when CI requires it.
fn rsyslogd_or_skip() -> Option<PathBuf> {
    let found = rsyslogd();
    if found.is_none() {
        assert!(
            std::env::var("VIGIL_REQUIRE_RSYSLOG").as_deref() != Ok("1"),
            "VIGIL_REQUIRE_RSYSLOG=1 but rsyslogd is not installed"
        );
        println!("skipped: rsyslogd not installed");
    }
    found
}

fn sample_lines() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cloudtrail.ndjson");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().map(str::to_string).collect()
}

/// What vigil writes for `lines` when run directly, with `args`.
fn direct_output(lines: &[String], args: &[&str]) -> String {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let writer = thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// One rsyslogd with its directory: `in.ndjson` (read by imfile), `out.ndjson` (vigil's
/// stdout, through omprog), `starts` (one pid per vigil start), `vigil.stderr`.
struct Host {
    dir: PathBuf,
    rsyslogd: Child,
}

impl Host {
    fn start(rsyslogd: &Path, name: &str, vigil_args: &[&str]) -> Host {
        let dir = std::env::temp_dir().join(format!("vigil-rsyslog-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("work")).unwrap();
        // imfile needs the file to exist (it reads it from the start the first time it sees it).
        std::fs::write(dir.join("in.ndjson"), "").unwrap();
        let d = dir.display();
        let wrapper = dir.join("vigil.sh");
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\necho $$ >> {d}/starts\nexec {BIN} \"$@\" 2>>{d}/vigil.stderr\n"),
        )
        .unwrap();
        make_executable(&wrapper);
        // maxMessageSize: the default 8k would cut long CloudTrail records. `%rawmsg%` is the
        // line as imfile read it, without the syslog header a default template would add.
        let config = format!(
            r#"global(workDirectory="{d}/work" maxMessageSize="1m")
module(load="imfile" mode="polling" pollingInterval="1")
module(load="omprog")
template(name="raw" type="string" string="%rawmsg%\n")
input(type="imfile" file="{d}/in.ndjson" tag="vigil" ruleset="vigil")
ruleset(name="vigil") {{
  action(type="omprog" binary="{d}/vigil.sh {args}" output="{d}/out.ndjson" template="raw")
}}
"#,
            args = vigil_args.join(" "),
        );
        std::fs::write(dir.join("rsyslog.conf"), config).unwrap();
        let rsyslogd = Command::new(rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("rsyslogd.log")).unwrap())
            .spawn()
            .unwrap();
        Host { dir, rsyslogd }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn append_input(&self, lines: &[String]) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("in.ndjson"))
            .unwrap();
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        file.write_all(text.as_bytes()).unwrap();
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.path("out.ndjson")).unwrap_or_default()
    }

    /// Waits until the captured output has `n` complete lines.
    fn wait_output_lines(&mut self, n: usize) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let out = self.output();
            let complete = out.matches('\n').count();
            if complete >= n {
                return out;
            }
            if let Some(status) = self.rsyslogd.try_wait().unwrap() {
                panic!("rsyslogd exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{complete} of {n} lines after {TIMEOUT:?}; rsyslogd: {}; vigil stderr: {}",
                self.log(),
                std::fs::read_to_string(self.path("vigil.stderr")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("rsyslogd.log")).unwrap_or_default()
    }

    /// Pids of the vigil processes started so far, in order.
    fn starts(&self) -> Vec<i32> {
        std::fs::read_to_string(self.path("starts"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    }

    /// SIGTERM to rsyslogd, which closes vigil's stdin (EOF) and waits for it; then waits for
    /// rsyslogd to exit.
    fn stop(&mut self) {
        signal(self.rsyslogd.id() as i32, libc::SIGTERM);
        let deadline = Instant::now() + TIMEOUT;
        while self.rsyslogd.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "rsyslogd ignored SIGTERM");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// vigil's stderr, one JSON object a line.
    fn vigil_stderr(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("vigil.stderr"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.rsyslogd.try_wait().ok().flatten().is_none() {
            let _ = self.rsyslogd.kill();
            let _ = self.rsyslogd.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) with a pid this test started and a valid signal number; it touches no
    // memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn event_ids(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap();
            value["eventID"].as_str().unwrap().to_string()
        })
        .collect()
}

fn correlations_of(line: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(line).unwrap();
    value["vigil"]["correlations"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| c["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn rsyslog_omprog_gets_every_line_enriched_in_order() {
    let Some(rsyslogd) = rsyslogd_or_skip() else {
        return;
    };
    let lines = sample_lines();
    let mut host = Host::start(&rsyslogd, "order", &["--stats"]);
    // Two parts, the second appended while vigil runs: the stream, not one file read at once.
    let (first, second) = lines.split_at(FIRST_PART);
    host.append_input(first);
    host.wait_output_lines(first.len());
    host.append_input(second);
    let out = host.wait_output_lines(lines.len());
    host.stop();

    // Byte for byte what vigil writes when run directly: every line, in order, enriched the
    // same way (unmatched ones unchanged, correlations across the two parts included).
    let expected = direct_output(&lines, &[]);
    assert_eq!(out, expected);
    assert!(out.contains(ADMIN_CORRELATION), "no correlation fired");
    let enriched = out.lines().filter(|l| l.contains("\"vigil\":")).count();
    assert!(
        enriched > 0 && enriched < lines.len(),
        "{enriched} enriched"
    );
    // One vigil for the whole run, which saw rsyslog's EOF and wrote its --stats line.
    assert_eq!(host.starts().len(), 1);
    let stats = host.vigil_stderr();
    let stats = stats.iter().find(|l| l["msg"] == "stats").unwrap();
    assert_eq!(stats["lines_in"], lines.len() as u64);
    assert_eq!(stats["ending"], "eof");
}

/// Whether this build has `--state` (durable correlation state, built on another branch).
fn has_state_flag() -> bool {
    let out = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("--state ")
}

#[test]
fn rsyslog_restarts_a_killed_vigil_which_goes_on() {
    let Some(rsyslogd) = rsyslogd_or_skip() else {
        return;
    };
    let lines = sample_lines();
    let with_state = has_state_flag();
    let state_path =
        std::env::temp_dir().join(format!("vigil-rsyslog-{}-kill.state", std::process::id()));
    let _ = std::fs::remove_file(&state_path);
    let state_arg = state_path.display().to_string();
    let args: Vec<&str> = if with_state {
        vec!["--state", &state_arg, "--state-interval", "200ms"]
    } else {
        Vec::new()
    };
    let mut host = Host::start(&rsyslogd, "kill", &args);
    let (first, second) = lines.split_at(FIRST_PART);
    host.append_input(first);
    let before_kill = host.wait_output_lines(first.len());
    if with_state {
        // The interval save that follows the first part, so the kill loses nothing.
        let seen = SystemTime::now();
        let deadline = Instant::now() + TIMEOUT;
        while std::fs::metadata(&state_path)
            .and_then(|m| m.modified())
            .map_or(true, |modified| modified <= seen)
        {
            assert!(
                Instant::now() < deadline,
                "no state save after the first part"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
    let starts = host.starts();
    assert_eq!(starts.len(), 1);
    signal(starts[0], libc::SIGKILL);
    // The second part reaches a dead pipe: rsyslog's omprog restarts vigil and retries.
    host.append_input(second);
    let out = host.wait_output_lines(lines.len());
    host.stop();
    let _ = std::fs::remove_file(&state_path);

    assert_eq!(host.starts().len(), 2, "vigil was not restarted once");
    assert!(out.starts_with(&before_kill));
    // Nothing was in flight at the kill (the first part was all written back), so every line
    // arrives, once, in order.
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(event_ids(&out), event_ids(&input));
    let fired: Vec<usize> = out
        .lines()
        .enumerate()
        .filter(|(_, line)| correlations_of(line).iter().any(|c| c == ADMIN_CORRELATION))
        .map(|(idx, _)| idx + 1)
        .collect();
    let expected = direct_output(&lines, &[]);
    if with_state {
        // The first half of the correlation survived the kill in the saved state: the output is
        // what one uninterrupted vigil writes.
        assert_eq!(fired, vec![66]);
        assert_eq!(out, expected);
    } else {
        // FIXME: without --state (memory-only correlation state), the restart forgets the
        // CreateUser of line 20 and the AdministratorAccess of line 66 fires nothing. This
        // branch goes once --state is merged; the one above is the behaviour we want.
        assert!(fired.is_empty(), "{fired:?}");
        assert!(
            expected
                .lines()
                .nth(65)
                .unwrap()
                .contains(ADMIN_CORRELATION)
        );
        // The lines after the restart are still matched by the stateless rules.
        let after: Vec<&str> = out.lines().skip(FIRST_PART).collect();
        assert!(after.iter().any(|l| l.contains("\"matches\":")));
    }
}
