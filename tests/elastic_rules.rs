//! Elastic corpus rules against CloudTrail records written by us, and the corpus load targets.
//!
//! Test format (one sibling file per rule, `tests/elastic_rules/<rule file stem>.tests.ndjson`):
//! the `vigil test --cases` format, one `{"rule_id", "test_name", "expected", "log"}` per line,
//! `log` a raw CloudTrail record. `expected` says whether the rule's per-event query matches the
//! record (for `threshold` and `new_terms` rules, the query part; their windows are tested in
//! `tests/cases/elastic`). The rule is read from
//! `$VIGIL_CORPUS/elastic/rules/integrations/aws/<stem>.toml`. The records are fed raw: the
//! event view derives the ECS fields the rules read (`vigil::ecs::derive`).
//! The same files pass through the binary: `vigil test <aws rules dir> --cases <file>...`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use vigil::correlate::Limits;
use vigil::eval::{Detections, Engine, EngineConfig};
use vigil::event::Event;
use vigil::rules::{LoadOptions, Loader};

/// After every event time used here, so no event is distrusted as ahead of the clock.
const ARRIVAL_MS: i64 = 1_893_456_000_000;

fn corpus() -> Option<PathBuf> {
    match std::env::var_os("VIGIL_CORPUS") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("skipped: VIGIL_CORPUS is not set");
            None
        }
    }
}

fn engine_for(files: &[(String, String)]) -> Engine {
    let mut loader = Loader::new(LoadOptions::default());
    for (name, text) in files {
        loader.add_source(name, text);
    }
    let loaded = loader.finish();
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "rules did not load: {errors:?}");
    let (engine, diags) = Engine::new(loaded.set, EngineConfig::new(Limits::default()));
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    engine
}

#[test]
fn corpus_rules_on_our_cloudtrail_records() {
    let Some(corpus) = corpus() else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/elastic_rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let (mut positives, mut negatives) = (0, 0);
    let mut languages = std::collections::BTreeSet::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let stem = name.trim_end_matches(".tests.ndjson");
        let rule_path = corpus.join(format!("elastic/rules/integrations/aws/{stem}.toml"));
        let text = std::fs::read_to_string(&rule_path)
            .unwrap_or_else(|err| panic!("{}: {err}", rule_path.display()));
        let table: toml::Table = text.parse().unwrap();
        let rule = table["rule"].as_table().unwrap();
        let id = rule["rule_id"].as_str().unwrap().to_string();
        languages.insert(rule["language"].as_str().unwrap_or("-").to_string());
        let mut engine = engine_for(&[(format!("{stem}.toml"), text.clone())]);
        let mut out = Detections::default();
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let case: Value = serde_json::from_str(line).unwrap();
            let expected = case["expected"].as_bool().unwrap();
            if expected {
                positives += 1;
            } else {
                negatives += 1;
            }
            // The raw CloudTrail record: ECS fields come from the event view's derivation.
            engine.evaluate(&Event::new(&case["log"]), ARRIVAL_MS, &mut out);
            let matched = out.matches.iter().any(|&idx| {
                let rule_id = &engine.rules()[idx].meta.id;
                *rule_id == id || rule_id.starts_with(&format!("{id}:"))
            });
            if matched != expected {
                failures.push(format!(
                    "{stem}: case '{}' expected match={expected}",
                    case["test_name"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        files.len() >= 30,
        "only {} rules have test records",
        files.len()
    );
    assert!(
        positives >= 30 && negatives >= 30,
        "{positives} / {negatives}"
    );
    assert!(languages.len() >= 3, "{languages:?}");
}

/// The corpus load targets of issue 4: every rule loads or is reported unsupported with a
/// reason naming the construct, at least 95% of the non-ML AWS rules load, and at least 20 of
/// the 24 hunting queries (21 load; those left: two "fewer than" conditions, which need the
/// end of a window, and one `=` in a `WHERE`, a syntax error in ES|QL).
#[test]
fn corpus_load_targets() {
    let Some(corpus) = corpus() else {
        return;
    };
    let mut aws = (0, 0);
    let mut hunts = (0, 0);
    for (dir, counter) in [
        ("elastic/rules/integrations/aws", &mut aws),
        ("elastic/hunting/aws/queries", &mut hunts),
    ] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus.join(dir))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.contains("type = \"machine_learning\"") {
                continue;
            }
            let mut loader = Loader::new(LoadOptions::default());
            loader.add_source(&path.display().to_string(), &text);
            let loaded = loader.finish();
            counter.1 += 1;
            let errors: Vec<_> = loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
            if errors.is_empty() {
                counter.0 += 1;
                assert!(!loaded.set.rules.is_empty(), "{}", path.display());
            } else {
                // Every rule that does not load says where and why.
                for diag in errors {
                    assert!(diag.source.line.is_some(), "{diag}");
                    assert!(diag.rule.is_some(), "{diag}");
                    assert!(!diag.message.is_empty());
                }
            }
        }
    }
    assert_eq!(aws.1, 189, "non-ML AWS rules in the corpus");
    assert!(aws.0 * 100 >= aws.1 * 95, "AWS rules loaded: {aws:?}");
    assert_eq!(hunts.1, 24);
    assert!(hunts.0 >= 21, "hunting queries loaded: {hunts:?}");
}

/// The hunting query "User Creation with Administrator Policy Assigned" from the corpus, end
/// to end on raw CloudTrail records: CreateUser then AttachUserPolicy(AdministratorAccess) for
/// one target user within 7 days flags the second event, in either arrival order.
#[test]
fn admin_user_hunting_query_end_to_end() {
    let Some(corpus) = corpus() else {
        return;
    };
    let path = corpus.join(
        "elastic/hunting/aws/queries/iam_user_creation_with_administrator_policy_assigned.toml",
    );
    let text = std::fs::read_to_string(path).unwrap();
    let record = |name: &str, time: &str, user: &str, policy: Option<&str>| {
        let mut params = json!({"userName": user});
        if let Some(policy) = policy {
            params["policyArn"] = json!(format!("arn:aws:iam::aws:policy/{policy}"));
        }
        json!({
            "eventVersion": "1.08", "eventTime": time, "eventSource": "iam.amazonaws.com",
            "eventName": name, "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.1",
            "userIdentity": {"type": "IAMUser", "userName": "attacker", "accountId": "111122223333",
                             "arn": "arn:aws:iam::111122223333:user/attacker"},
            "requestParameters": params
        })
    };
    let create = record("CreateUser", "2026-11-01T10:00:00Z", "backdoor", None);
    let attach = record(
        "AttachUserPolicy",
        "2026-11-03T10:00:00Z",
        "backdoor",
        Some("AdministratorAccess"),
    );
    let read_only = record(
        "AttachUserPolicy",
        "2026-11-03T10:00:00Z",
        "backdoor",
        Some("ReadOnlyAccess"),
    );
    let late = record(
        "AttachUserPolicy",
        "2026-11-20T10:00:00Z",
        "backdoor",
        Some("AdministratorAccess"),
    );
    let run = |events: &[&Value]| -> Vec<usize> {
        let mut engine = engine_for(&[("hunt.toml".to_string(), text.clone())]);
        let mut out = Detections::default();
        let mut flagged = Vec::new();
        for (n, event) in events.iter().enumerate() {
            engine.evaluate(&Event::new(event), ARRIVAL_MS, &mut out);
            if let Some(hit) = out.correlations.first() {
                assert_eq!(
                    hit.group,
                    vec![("user.target.name".to_string(), "backdoor".to_string())]
                );
                assert_eq!(hit.value, 2.0);
                flagged.push(n);
            }
        }
        flagged
    };
    assert_eq!(run(&[&create, &attach]), vec![1]);
    assert_eq!(run(&[&attach, &create]), vec![1]);
    assert!(run(&[&create, &read_only]).is_empty());
    assert!(run(&[&create, &late]).is_empty(), "19 days apart");
}

/// The hunting query "Multiple Service Logging Deleted or Stopped" from the corpus, end to end:
/// its `STATS ... BY` groups on `DATE_FORMAT("YYYY-mm-dd", @timestamp)`, which in Elasticsearch
/// (request locale `Locale.US`) is the week-based year, the minute and the day of the month.
#[test]
fn logging_stopped_hunting_query_groups_by_its_java_date_format() {
    let Some(corpus) = corpus() else {
        return;
    };
    let path =
        corpus.join("elastic/hunting/aws/queries/multiple_service_logging_deleted_or_stopped.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let record = |name: &str, time: &str| {
        json!({
            "eventVersion": "1.08", "eventTime": time, "eventSource": "cloudtrail.amazonaws.com",
            "eventName": name, "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.1",
            "userIdentity": {"type": "IAMUser", "userName": "attacker", "accountId": "111122223333",
                             "arn": "arn:aws:iam::111122223333:user/attacker"},
            "requestParameters": {"name": "trail"}
        })
    };
    let mut engine = engine_for(&[("hunt.toml".to_string(), text)]);
    let mut out = Detections::default();
    let mut dates = Vec::new();
    // A Sunday at the end of December is in week 1 of the next week-based year in Locale.US.
    for (name, time) in [
        ("StopLogging", "2024-12-29T10:07:00Z"),
        ("DeleteTrail", "2024-08-27T13:45:10Z"),
        ("CreateTrail", "2024-08-27T13:46:10Z"),
    ] {
        engine.evaluate(&Event::new(&record(name, time)), ARRIVAL_MS, &mut out);
        for hit in &out.correlations {
            let date = hit.group.iter().find(|(field, _)| field == "date");
            dates.push(date.map(|(_, value)| value.clone()));
        }
    }
    assert_eq!(
        dates,
        vec![
            Some("2025-07-29".to_string()),
            Some("2024-45-27".to_string())
        ]
    );
}

/// The hunting query "High EC2 Instance Deployment Count Attempts by Single User or Role": a
/// `SUM` of `maxCount - minCount + 1` (DISSECTed from the ECS request parameters) per user,
/// day key, subnet and instance type, flagged when it reaches 10 within 7 days.
#[test]
fn instance_count_hunting_query_sums_requested_instances() {
    let Some(corpus) = corpus() else {
        return;
    };
    let path =
        corpus.join("elastic/hunting/aws/queries/ec2_high_instance_deployment_count_attempts.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let run_instances = |user: &str, time: &str, min: u32, max: u32| {
        json!({
            "eventVersion": "1.08", "eventTime": time, "eventSource": "ec2.amazonaws.com",
            "eventName": "RunInstances", "awsRegion": "us-east-1", "sourceIPAddress": "192.0.2.1",
            "userIdentity": {"type": "IAMUser", "userName": user, "accountId": "111122223333",
                             "arn": format!("arn:aws:iam::111122223333:user/{user}")},
            "requestParameters": {
                "instancesSet": {"items": [{"imageId": "ami-1", "minCount": min, "maxCount": max}]},
                "instanceType": "p3.16xlarge", "subnetId": "subnet-1"
            }
        })
    };
    let run = |events: &[Value]| -> Vec<(usize, f64)> {
        let mut engine = engine_for(&[("hunt.toml".to_string(), text.clone())]);
        let mut out = Detections::default();
        let mut flagged = Vec::new();
        for (n, event) in events.iter().enumerate() {
            engine.evaluate(&Event::new(event), ARRIVAL_MS, &mut out);
            for hit in &out.correlations {
                flagged.push((n, hit.value));
            }
        }
        flagged
    };
    // 4 + 7 = 11 requested instances, within the same minute-keyed "date".
    let two = [
        run_instances("alice", "2025-07-10T15:04:10Z", 1, 4),
        run_instances("alice", "2025-07-10T15:04:50Z", 2, 8),
    ];
    assert_eq!(run(&two), vec![(1, 11.0)]);
    // 4 + 3 = 7: below 10.
    let small = [
        run_instances("alice", "2025-07-10T15:04:10Z", 1, 4),
        run_instances("alice", "2025-07-10T15:04:50Z", 1, 3),
    ];
    assert!(run(&small).is_empty());
    // Different users are different groups.
    let users = [
        run_instances("alice", "2025-07-10T15:04:10Z", 1, 4),
        run_instances("bob", "2025-07-10T15:04:50Z", 2, 8),
    ];
    assert!(run(&users).is_empty());
}

/// The rule tests above, through `vigil test --cases` on the whole corpus AWS directory: every
/// case passes, stateful rules included (their cases test the base query).
#[test]
fn rule_tests_pass_through_vigil_test() {
    let Some(corpus) = corpus() else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/elastic_rules");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    command
        .arg("test")
        .arg(corpus.join("elastic/rules/integrations/aws"))
        .arg("--json");
    let mut n_cases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        n_cases += std::fs::read_to_string(&path).unwrap().lines().count();
        command.arg("--cases").arg(path);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let failed: Vec<&Value> = results.iter().filter(|r| r["passed"] != true).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(results.len(), n_cases, "every case ran");
    assert!(output.status.success());
}
