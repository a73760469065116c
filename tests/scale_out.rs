//! Scale-out by partitioning (README "Scale-out"): split a CloudTrail stream by a hash of a key
//! field into several vigil processes, and compare their correlation flags with one process's.
//!
//! A correlation stays exact when every one of its groups lands in one partition: when its
//! group-by includes the partition key (and the correlations it is built on are exact too).
//! That classification is computed here from the loaded rules' IR, never from a list; the test
//! then checks that (1) for those correlations the union of the partitions' flags equals the
//! single process's flags, line by line; (2) detection matches (stateless) are identical on
//! every line; (3) README's table of the default pack's correlations says "yes" for exactly
//! the ones the IR says are exact, for each key; (4) at least one exact correlation fired, and
//! at least one inexact one came out different (events built here send a brute force from one
//! IP against two accounts that land in different partitions).
//!
//! Input: the bundled sample, the events built here, and with `VIGIL_CORPUS` the corpus events.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;

use serde_json::Value;
use vigil::ir::{Correlation, RuleSet};
use vigil::rules::{LoadOptions, Loader};

const BIN: &str = env!("CARGO_BIN_EXE_vigil");
const PARTITIONS: usize = 3;
/// The two partition keys README discusses: the account an event belongs to, and the principal.
const KEYS: [&str; 2] = ["recipientAccountId", "userIdentity.arn"];

/// Rules that group by the account, so that partitioning by account keeps something exact.
const ACCOUNT_RULES: &str = r#"title: Test Console Login Failed
id: 5ca1e0ff-0000-4000-8000-000000000001
name: scale_console_login_failed
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: ConsoleLogin
        responseElements.ConsoleLogin: Failure
    condition: selection
level: low
---
title: Test Failed Console Logins Per Account And IP
id: 5ca1e0ff-0000-4000-8000-000000000002
correlation:
    type: event_count
    rules:
        - scale_console_login_failed
    group-by:
        - recipientAccountId
        - sourceIPAddress
    timespan: 10m
    condition:
        gte: 2
level: medium
---
title: Test Create User
id: 5ca1e0ff-0000-4000-8000-000000000003
name: scale_create_user
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: CreateUser
    condition: selection
level: low
---
title: Test Admin Policy Attached
id: 5ca1e0ff-0000-4000-8000-000000000004
name: scale_admin_attached
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: AttachUserPolicy
        requestParameters.policyArn|endswith: /AdministratorAccess
    condition: selection
level: low
---
title: Test New User Made Admin In One Account
id: 5ca1e0ff-0000-4000-8000-000000000005
correlation:
    type: temporal_ordered
    rules:
        - scale_create_user
        - scale_admin_attached
    group-by:
        - recipientAccountId
        - requestParameters.userName
    timespan: 7d
level: high
"#;

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn default_pack() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/default"))
}

fn load(paths: &[&Path]) -> RuleSet {
    let mut loader = Loader::new(LoadOptions::default());
    for path in paths {
        loader.add_path(path);
    }
    let loaded = loader.finish();
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    loaded.set
}

/// Whether every group of `corr` lands in one partition when the stream is split by `key`:
/// a group-by name is the key itself, or an alias that stands for the key in every rule, and
/// every correlation it is built on is exact too.
fn is_exact(corr: &Correlation, key: &str, all: &[Correlation]) -> bool {
    let groups_by_key = corr.group_by.iter().any(|name| {
        if corr.computed.iter().any(|(computed, _)| computed == name) {
            return false;
        }
        match corr.aliases.iter().find(|alias| &alias.name == name) {
            Some(alias) => {
                !alias.fields.is_empty()
                    && alias
                        .fields
                        .iter()
                        .all(|(_, field)| field.to_string() == key)
            }
            None => name == key,
        }
    });
    groups_by_key
        && corr.rules.iter().all(|reference| {
            match all.iter().find(|other| {
                &other.meta.id == reference || other.meta.name.as_ref() == Some(reference)
            }) {
                Some(inner) => is_exact(inner, key, all),
                None => true,
            }
        })
}

/// FNV-1a: a fixed hash, so partitions do not change with the Rust version.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The key's value as the partitioner sees it (a string as itself, anything else as its JSON
/// text, a missing field or a line that is not JSON as the empty string: a producer's fixed
/// fallback key, since Kafka itself would spread keyless messages round-robin).
fn key_value(line: &str, key: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(line) else {
        return String::new();
    };
    let mut current = &value;
    for part in key.split('.') {
        match current.get(part) {
            Some(next) => current = next,
            None => return String::new(),
        }
    }
    match current {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn partition_of(line: &str, key: &str) -> usize {
    (fnv1a(key_value(line, key).as_bytes()) % PARTITIONS as u64) as usize
}

fn run_vigil(rules: &[&Path], lines: &[&str]) -> Vec<String> {
    let mut command = Command::new(BIN);
    for path in rules {
        command.arg("--rules").arg(path);
    }
    let mut child = command
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
    let text = String::from_utf8(out.stdout).unwrap();
    let out_lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(out_lines.len(), lines.len(), "one line out per line in");
    out_lines
}

/// The correlation entries of one output line, by correlation id.
fn correlation_flags(line: &str) -> BTreeMap<String, Vec<Value>> {
    let mut flags: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let Ok(value) = serde_json::from_str::<Value>(line) else {
        return flags;
    };
    for entry in value["vigil"]["correlations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let id = entry["id"].as_str().unwrap_or("").to_string();
        flags.entry(id).or_default().push(entry.clone());
    }
    flags
}

fn matches_of(line: &str) -> Value {
    serde_json::from_str::<Value>(line)
        .map(|value| value["vigil"]["matches"].clone())
        .unwrap_or(Value::Null)
}

/// Two accounts that land in different partitions, and events in which one source IP fails to
/// sign in twice against each, then succeeds against the first: one process sees four
/// failures from the IP (the default pack's burst of three, then failures-then-success), each
/// partition sees two.
fn cross_account_events(template_failed: &str, template_success: &str) -> Vec<String> {
    let mut accounts = (1..10u64).map(|d| format!("{d}").repeat(12));
    let first = accounts.next().unwrap();
    let first_partition = (fnv1a(first.as_bytes()) % PARTITIONS as u64) as usize;
    let second = accounts
        .find(|a| (fnv1a(a.as_bytes()) % PARTITIONS as u64) as usize != first_partition)
        .unwrap();
    let make = |template: &str, account: &str, n: usize, minute: usize| {
        let mut event: Value = serde_json::from_str(template).unwrap();
        event["recipientAccountId"] = account.into();
        event["userIdentity"]["accountId"] = account.into();
        event["userIdentity"]["arn"] = format!("arn:aws:iam::{account}:user/victim").into();
        event["sourceIPAddress"] = "192.0.2.77".into();
        event["eventTime"] = format!("2026-11-03T10:{minute:02}:00Z").into();
        event["eventID"] = format!("00000000-0000-4000-8000-{n:012}").into();
        event.to_string()
    };
    vec![
        make(template_failed, &first, 1, 0),
        make(template_failed, &second, 2, 1),
        make(template_failed, &first, 3, 2),
        make(template_failed, &second, 4, 3),
        make(template_success, &first, 5, 4),
    ]
}

fn input_lines() -> Vec<String> {
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/cloudtrail.ndjson"
    ))
    .unwrap();
    let mut lines: Vec<String> = sample.lines().map(str::to_string).collect();
    let failed = lines
        .iter()
        .find(|l| l.contains(r#""ConsoleLogin":"Failure""#))
        .unwrap()
        .clone();
    let success = lines
        .iter()
        .find(|l| l.contains(r#""ConsoleLogin":"Success""#))
        .unwrap()
        .clone();
    lines.extend(cross_account_events(&failed, &success));
    match std::env::var_os("VIGIL_CORPUS") {
        Some(corpus) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(&corpus).join("events"))
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "ndjson"))
                .collect();
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                lines.extend(text.lines().map(str::to_string));
            }
        }
        None => println!("skipped: VIGIL_CORPUS is not set (the corpus events are not added)"),
    }
    lines
}

/// README's "Scale-out" table: correlation title → (exact by account, exact by principal).
fn readme_table() -> HashMap<String, [bool; 2]> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## Scale-out")
        .nth(1)
        .expect("README has a Scale-out section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut table = HashMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells.len() != 4 {
            continue;
        }
        let yes_no = |cell: &str| match cell {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        };
        if let (Some(account), Some(principal)) = (yes_no(cells[2]), yes_no(cells[3])) {
            table.insert(cells[0].to_string(), [account, principal]);
        }
    }
    table
}

#[test]
fn readme_table_says_which_default_correlations_stay_exact() {
    let pack = load(&[&default_pack()]);
    let table = readme_table();
    assert_eq!(table.len(), pack.correlations.len(), "{table:?}");
    for corr in &pack.correlations {
        let row = table
            .get(&corr.meta.title)
            .unwrap_or_else(|| panic!("README's table has no row for {}", corr.meta.title));
        for (idx, key) in KEYS.iter().enumerate() {
            assert_eq!(
                row[idx],
                is_exact(corr, key, &pack.correlations),
                "{} partitioned by {key}",
                corr.meta.title
            );
        }
    }
}

#[test]
fn partitions_agree_with_one_process_on_exact_correlations() {
    let dir = TempDir(std::env::temp_dir().join(format!("vigil-scale-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(dir.0.join("by_account.yml"), ACCOUNT_RULES).unwrap();
    let pack = default_pack();
    let rule_paths: [&Path; 2] = [&pack, &dir.0];
    let set = load(&rule_paths);

    let lines = input_lines();
    let line_refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let single = run_vigil(&rule_paths, &line_refs);

    for key in KEYS {
        let exact: BTreeSet<String> = set
            .correlations
            .iter()
            .filter(|c| is_exact(c, key, &set.correlations))
            .map(|c| c.meta.id.clone())
            .collect();
        assert!(!exact.is_empty(), "no correlation is exact by {key}");

        // Split in input order, run each part, and put the outputs back in input order.
        let mut parts: Vec<Vec<usize>> = vec![Vec::new(); PARTITIONS];
        for (idx, line) in lines.iter().enumerate() {
            parts[partition_of(line, key)].push(idx);
        }
        assert!(
            parts.iter().all(|p| !p.is_empty()),
            "an empty partition by {key}"
        );
        let mut union: Vec<String> = vec![String::new(); lines.len()];
        for part in &parts {
            let part_lines: Vec<&str> = part.iter().map(|&idx| line_refs[idx]).collect();
            for (&idx, out) in part.iter().zip(run_vigil(&rule_paths, &part_lines)) {
                union[idx] = out;
            }
        }

        let mut exact_fired = 0;
        let mut inexact_differ: BTreeSet<String> = BTreeSet::new();
        for (idx, (one, many)) in single.iter().zip(&union).enumerate() {
            assert_eq!(
                matches_of(one),
                matches_of(many),
                "matches of line {}",
                idx + 1
            );
            let one_flags = correlation_flags(one);
            let many_flags = correlation_flags(many);
            let ids: BTreeSet<&String> = one_flags.keys().chain(many_flags.keys()).collect();
            for id in ids {
                let (a, b) = (one_flags.get(id), many_flags.get(id));
                if exact.contains(id) {
                    assert_eq!(a, b, "exact correlation {id} by {key}, line {}", idx + 1);
                    exact_fired += usize::from(a.is_some());
                } else if a != b {
                    inexact_differ.insert(id.clone());
                }
            }
        }
        assert!(exact_fired > 0, "no exact correlation fired by {key}");
        if key == "recipientAccountId" {
            // The cross-account brute force: one process sees it, no partition does.
            assert!(
                inexact_differ.contains("396ca5fe-7bb2-4043-b450-8d3e610b074b"),
                "{inexact_differ:?}"
            );
        }
        println!(
            "by {key}: {} exact correlations, {exact_fired} exact flags equal; inexact that differed: {inexact_differ:?}",
            exact.len()
        );
    }
}
