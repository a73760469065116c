//! Integration tests of the `vigil` binary against the real detection corpus and the bundled
//! sample.
//!
//! The corpus tests read `$VIGIL_CORPUS` (the `shared/corpus` directory: `events/*.ndjson`,
//! `sigma/rules/cloud/`) and are skipped, with a note on stderr, when it is not set. The corpus is
//! data only: nothing from it is copied into the project; the tests read it where it lies.
//!
//! CLI contract used here: `vigil [--rules PATH]... < input`, the embedded default pack when no
//! `--rules` is given, one output line per input line on stdout, enrichment under `vigil`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

/// `iam_new_user_given_admin` in `rules/default/correlations.yml`.
const ADMIN_USER_CORRELATION_ID: &str = "485dd604-7e04-470c-b9c7-33eea526cab9";
/// `signin_failed_logins_then_success`.
const FAILED_THEN_SUCCESS_ID: &str = "396ca5fe-7bb2-4043-b450-8d3e610b074b";
/// `aws_access_denied_burst`.
const ACCESS_DENIED_BURST_ID: &str = "483f0145-8a46-48e2-81e0-35f323e09d8c";
/// `secretsmanager_many_secrets_read`.
const MANY_SECRETS_ID: &str = "0ca48949-3672-414b-a678-9173182ccde8";
/// `root_login_then_logging_stopped`.
const ROOT_THEN_STOP_LOGGING_ID: &str = "139736f2-70f9-4ab8-82ac-eaf8f156a066";

fn corpus() -> Option<PathBuf> {
    match std::env::var_os("VIGIL_CORPUS") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("skipped: VIGIL_CORPUS is not set");
            None
        }
    }
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary with `args`, feeding `input` on stdin from a thread (so a full stdout pipe
/// cannot deadlock the test).
fn run_vigil(args: &[&str], input: Vec<u8>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigil");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        // vigil may exit early on a fatal error; the assertion on its status reports that.
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait for vigil");
    writer.join().expect("stdin writer thread");
    output
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if out.last().is_some_and(|last| last.is_empty()) {
        out.pop();
    }
    out
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Checks the pass-through contract on one run: status 0, one output line per input line, every
/// output line a JSON object, and lines that carry no enrichment identical to their input.
fn assert_pass_through(label: &str, input: &[u8], output: &Output) {
    assert!(
        output.status.success(),
        "{label}: exit status {:?}, stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let input_lines = lines(input);
    let output_lines = lines(&output.stdout);
    assert_eq!(
        input_lines.len(),
        output_lines.len(),
        "{label}: input and output line counts differ"
    );
    let mut n_enriched = 0;
    for (idx, (inp, out)) in input_lines.iter().zip(&output_lines).enumerate() {
        let value: Value = serde_json::from_slice(out).unwrap_or_else(|err| {
            panic!(
                "{label}:{}: output is not JSON ({err}): {}",
                idx + 1,
                String::from_utf8_lossy(out)
            )
        });
        let object = value
            .as_object()
            .unwrap_or_else(|| panic!("{label}:{}: output is not a JSON object", idx + 1));
        if object.contains_key("vigil") {
            n_enriched += 1;
        } else {
            assert_eq!(
                strip_cr(inp),
                *out,
                "{label}:{}: an unmatched line was changed",
                idx + 1
            );
        }
    }
    eprintln!(
        "{label}: {} lines, {n_enriched} enriched",
        input_lines.len()
    );
}

fn event_files(corpus: &Path) -> Vec<PathBuf> {
    let dir = corpus.join("events");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "ndjson"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.ndjson in {}", dir.display());
    files
}

#[test]
fn corpus_events_pass_through_with_sigma_cloud_rules() {
    let Some(corpus) = corpus() else { return };
    let rules = corpus.join("sigma/rules/cloud");
    let rules = rules.to_str().expect("UTF-8 corpus path");
    for file in event_files(&corpus) {
        let input = std::fs::read(&file).expect("read event file");
        let output = run_vigil(&["--rules", rules], input.clone());
        assert_pass_through(&file.display().to_string(), &input, &output);
    }
}

#[test]
fn corpus_events_pass_through_with_default_pack() {
    let Some(corpus) = corpus() else { return };
    for file in event_files(&corpus) {
        let input = std::fs::read(&file).expect("read event file");
        let output = run_vigil(&[], input.clone());
        assert_pass_through(&file.display().to_string(), &input, &output);
    }
}

/// The pack file really holds the correlation these tests look for.
#[test]
fn admin_user_correlation_id_is_in_the_pack() {
    let text = std::fs::read_to_string(manifest_dir().join("rules/default/correlations.yml"))
        .expect("read correlations.yml");
    assert!(
        text.contains(&format!(
            "id: {ADMIN_USER_CORRELATION_ID}\nname: iam_new_user_given_admin\n"
        )),
        "iam_new_user_given_admin does not have the id the tests expect"
    );
}

/// A CreateUser log and an AttachUserPolicy(AdministratorAccess) log from Panther's tests.
struct AdminScenario {
    create_user: Value,
    attach_admin: Value,
    unrelated: Vec<Value>,
}

fn admin_scenario(corpus: &Path) -> AdminScenario {
    let text = std::fs::read_to_string(corpus.join("events/panther_tests.ndjson"))
        .expect("read panther_tests.ndjson");
    let mut create_user = None;
    let mut attach_admin = None;
    let mut unrelated = Vec::new();
    for line in text.lines() {
        let test: Value = serde_json::from_str(line).expect("panther test line is JSON");
        let log = &test["log"];
        let name = log["eventName"].as_str().unwrap_or("");
        let failed = !log["errorCode"].is_null();
        match name {
            "CreateUser" if create_user.is_none() && !failed => create_user = Some(log.clone()),
            "AttachUserPolicy"
                if attach_admin.is_none()
                    && !failed
                    && log["requestParameters"]["policyArn"]
                        .as_str()
                        .is_some_and(|arn| arn.ends_with("/AdministratorAccess")) =>
            {
                attach_admin = Some(log.clone());
            }
            "DescribeInstances" | "GetCallerIdentity" | "ListBuckets" | "AssumeRole"
                if unrelated.len() < 6 =>
            {
                unrelated.push(log.clone());
            }
            _ => {}
        }
    }
    AdminScenario {
        create_user: create_user.expect("a CreateUser test log"),
        attach_admin: attach_admin.expect("an AttachUserPolicy AdministratorAccess test log"),
        unrelated,
    }
}

/// Sets `requestParameters.userName`, `eventTime`, and the fields the Panther test log may lack
/// (its CreateUser log carries only eventName and responseElements).
fn rewrite(log: &Value, user: &str, time: &str) -> Value {
    let mut log = log.clone();
    let object = log.as_object_mut().expect("test log is an object");
    object.insert("eventTime".into(), json!(time));
    object
        .entry("eventSource")
        .or_insert_with(|| json!("iam.amazonaws.com"));
    object.remove("errorCode");
    let params = object
        .entry("requestParameters")
        .or_insert_with(|| json!({}));
    if !params.is_object() {
        *params = json!({});
    }
    params
        .as_object_mut()
        .expect("requestParameters is an object")
        .insert("userName".into(), json!(user));
    log
}

/// Runs CreateUser(user_a) at `t_create`, some unrelated events, then
/// AttachUserPolicy(user_b, AdministratorAccess) at `t_attach`; returns the output record of the
/// AttachUserPolicy event.
fn run_admin_scenario(
    scenario: &AdminScenario,
    user_a: &str,
    t_create: &str,
    user_b: &str,
    t_attach: &str,
) -> Value {
    let mut events = vec![rewrite(&scenario.create_user, user_a, t_create)];
    for (idx, log) in scenario.unrelated.iter().enumerate() {
        let mut log = log.clone();
        if let Some(object) = log.as_object_mut() {
            // Between the two stages, so that event-time order is kept.
            object.insert(
                "eventTime".into(),
                json!(format!("2026-03-01T0{}:30:00Z", idx % 4 + 1)),
            );
        }
        events.push(log);
    }
    events.push(rewrite(&scenario.attach_admin, user_b, t_attach));
    let mut input = Vec::new();
    for event in &events {
        serde_json::to_writer(&mut input, event).expect("serialize event");
        input.push(b'\n');
    }
    let output = run_vigil(&[], input.clone());
    assert_pass_through("admin scenario", &input, &output);
    let last = *lines(&output.stdout).last().expect("output lines");
    serde_json::from_slice(last).expect("last output line is JSON")
}

fn correlation_entry<'a>(record: &'a Value, id: &str) -> Option<&'a Value> {
    record["vigil"]["correlations"]
        .as_array()?
        .iter()
        .find(|entry| entry["id"] == id)
}

#[test]
fn default_pack_flags_new_user_given_admin() {
    let Some(corpus) = corpus() else { return };
    let scenario = admin_scenario(&corpus);
    let user = "mallory-backdoor";
    let record = run_admin_scenario(
        &scenario,
        user,
        "2026-03-01T00:05:00Z",
        user,
        "2026-03-01T05:40:00Z",
    );
    let entry = correlation_entry(&record, ADMIN_USER_CORRELATION_ID).unwrap_or_else(|| {
        panic!("no iam_new_user_given_admin correlation on the AttachUserPolicy event: {record}")
    });
    let group = &entry["group"];
    assert!(
        group.to_string().contains(user),
        "correlation group does not name the user: {group}"
    );
    assert_eq!(group["requestParameters.userName"], user, "group: {group}");
}

#[test]
fn default_pack_admin_correlation_needs_7_days() {
    let Some(corpus) = corpus() else { return };
    let scenario = admin_scenario(&corpus);
    let user = "mallory-backdoor";
    let record = run_admin_scenario(
        &scenario,
        user,
        "2026-03-01T00:05:00Z",
        user,
        "2026-03-09T00:05:00Z",
    );
    assert!(
        correlation_entry(&record, ADMIN_USER_CORRELATION_ID).is_none(),
        "fired with 8 days between the stages: {record}"
    );
}

#[test]
fn default_pack_admin_correlation_needs_the_same_user() {
    let Some(corpus) = corpus() else { return };
    let scenario = admin_scenario(&corpus);
    let record = run_admin_scenario(
        &scenario,
        "mallory-backdoor",
        "2026-03-01T00:05:00Z",
        "someone-else",
        "2026-03-01T05:40:00Z",
    );
    assert!(
        correlation_entry(&record, ADMIN_USER_CORRELATION_ID).is_none(),
        "fired for two different users: {record}"
    );
}

/// The bundled sample (no corpus needed): each scenario in it reaches its correlation.
#[test]
fn example_sample_fires_the_default_pack() {
    let input = std::fs::read(manifest_dir().join("examples/cloudtrail.ndjson"))
        .expect("read examples/cloudtrail.ndjson");
    let output = run_vigil(&[], input.clone());
    assert_pass_through("examples/cloudtrail.ndjson", &input, &output);
    let records: Vec<Value> = lines(&output.stdout)
        .iter()
        .map(|line| serde_json::from_slice(line).expect("JSON line"))
        .collect();
    let fired_on = |id: &str| -> Vec<String> {
        records
            .iter()
            .filter(|record| correlation_entry(record, id).is_some())
            .map(|record| format!("{} {}", record["eventName"], record["eventTime"]))
            .collect()
    };
    assert_eq!(
        fired_on(ADMIN_USER_CORRELATION_ID),
        [r#""AttachUserPolicy" "2026-11-02T14:40:18Z""#]
    );
    assert_eq!(
        fired_on(FAILED_THEN_SUCCESS_ID),
        [r#""ConsoleLogin" "2026-11-02T09:43:10Z""#]
    );
    assert_eq!(
        fired_on(ROOT_THEN_STOP_LOGGING_ID),
        [r#""StopLogging" "2026-11-02T11:14:55Z""#]
    );
    assert_eq!(
        fired_on(MANY_SECRETS_ID),
        [r#""GetSecretValue" "2026-11-02T13:14:24Z""#]
    );
    // 11 denied calls in 70 s: the 10th is the first to complete a window of 10 (whether the
    // 11th fires again depends on the re-firing policy, which this test leaves open).
    assert_eq!(
        fired_on(ACCESS_DENIED_BURST_ID).first().map(String::as_str),
        Some(r#""ListKeys" "2026-11-02T12:31:07Z""#)
    );
    // The first line (alice's MFA sign-in) only feeds a generate: false correlation.
    assert!(records[0]["vigil"]["severity"].is_null());
}

/// The default pack on the real Stratus Red Team capture (every AWS technique detonated in one
/// account): the attacks it was written for are found in real CloudTrail, not only in our
/// sample.
#[test]
fn default_pack_detects_stratus_techniques_in_real_cloudtrail() {
    let Some(corpus) = corpus() else { return };
    let input = std::fs::read(corpus.join("events/invictus_sigma_aws_stratus_cloudtrail.ndjson"))
        .expect("read the Stratus capture");
    let output = run_vigil(&[], input.clone());
    assert_pass_through("stratus capture", &input, &output);
    let mut fired = std::collections::BTreeSet::new();
    for line in lines(&output.stdout) {
        let record: Value = serde_json::from_slice(line).expect("JSON output line");
        let vigil = &record["vigil"];
        for entry in vigil["matches"].as_array().into_iter().flatten() {
            if entry["alert"] == true {
                fired.insert(entry["id"].as_str().unwrap_or_default().to_string());
            }
        }
        for entry in vigil["correlations"].as_array().into_iter().flatten() {
            fired.insert(entry["id"].as_str().unwrap_or_default().to_string());
        }
    }
    for (id, what) in [
        (
            ADMIN_USER_CORRELATION_ID,
            "iam-backdoor-user: user created then given admin",
        ),
        (
            "276d207e-bb8a-4865-bedd-7d1fefe154f5",
            "ec2-get-user-data: bulk user-data reads",
        ),
        (
            "8eb28bf9-892d-4f3e-a5d7-4ea8701f0ba8",
            "cloudtrail-stop: logging stopped",
        ),
        (
            "801d6378-6755-4275-b827-25fff94cf116",
            "vpc-remove-flow-logs: flow logs deleted",
        ),
        (
            "ab3271cb-dd6c-43cf-a248-3fbdfea2e269",
            "ebs-snapshot-shared: snapshot shared",
        ),
        (
            "16e295ab-ae8d-4c1b-bf25-fcb8cc5cde78",
            "ec2-security-group-open-port-22-ingress",
        ),
    ] {
        assert!(
            fired.contains(id),
            "{what} ({id}) not detected; fired: {fired:?}"
        );
    }
}
