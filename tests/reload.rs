//! Hot reload through the binary: SIGHUP and `--watch` swap the rule set at a line boundary
//! with no line lost or reordered; a broken rule file keeps the old set; correlation state is
//! carried over for unchanged correlations only.

mod lifecycle_support;

use lifecycle_support::{TempDir, Vigil, cloudtrail, correlation_ids, match_ids};

fn rule(id: &str, event_name: &str) -> String {
    format!(
        "title: {id}\nid: {id}\nlogsource:\n  product: aws\n  service: cloudtrail\n\
         detection:\n  sel:\n    eventName: {event_name}\n  condition: sel\n"
    )
}

fn rules_arg(dir: &TempDir) -> String {
    dir.arg("rules")
}

#[test]
fn a_stream_runs_across_a_reload_in_order_and_whole() {
    let dir = TempDir::new("stream");
    dir.write("rules/r.yml", &rule("old-rule", "CreateUser"));
    let rules = rules_arg(&dir);
    let mut vigil = Vigil::spawn(&["--rules", &rules, "--threads", "2"]);
    let line = |seq: u64| cloudtrail("CreateUser", "u", "2024-03-01T10:00:00Z", seq);
    let mut seq = 0;
    let mut outputs = Vec::new();
    // Before the reload: every line is matched by the old rule.
    for _ in 0..50 {
        vigil.send(&line(seq));
        seq += 1;
    }
    for _ in 0..50 {
        outputs.push(vigil.recv());
    }
    assert!(outputs.iter().all(|o| match_ids(o) == ["old-rule"]));
    dir.write("rules/r.yml", &rule("new-rule", "CreateUser"));
    vigil.signal("HUP");
    // Across the reload: lines keep coming while the new set is built.
    for _ in 0..200 {
        vigil.send(&line(seq));
        seq += 1;
    }
    let reloaded = vigil.wait_stderr("rules reloaded");
    assert_eq!(reloaded["level"], "info");
    assert_eq!(reloaded["rules"], 1);
    // After the reload: the new rule.
    for _ in 0..50 {
        vigil.send(&line(seq));
        seq += 1;
    }
    let (status, rest, _) = vigil.finish();
    assert!(status.success());
    outputs.extend(rest.iter().map(|l| serde_json::from_str(l).unwrap()));
    assert_eq!(outputs.len() as u64, seq);
    for (idx, output) in outputs.iter().enumerate() {
        assert_eq!(output["seq"], idx as u64, "order kept");
    }
    // One switch from the old rule to the new, at a line boundary.
    let ids: Vec<Vec<String>> = outputs.iter().map(match_ids).collect();
    let switch = ids.iter().position(|m| m == &["new-rule"]).unwrap();
    assert!(switch >= 50);
    assert!(ids[..switch].iter().all(|m| m == &["old-rule"]));
    assert!(ids[switch..].iter().all(|m| m == &["new-rule"]));
    assert!(switch <= outputs.len() - 50);
}

#[test]
fn a_broken_rule_file_keeps_the_old_set() {
    let dir = TempDir::new("broken");
    dir.write("rules/r.yml", &rule("old-rule", "CreateUser"));
    let rules = rules_arg(&dir);
    let mut vigil = Vigil::spawn(&["--rules", &rules, "--stats"]);
    let create = cloudtrail("CreateUser", "u", "2024-03-01T10:00:00Z", 0);
    vigil.send(&create);
    assert_eq!(match_ids(&vigil.recv()), ["old-rule"]);
    dir.write("rules/r.yml", &rule("new-rule", "CreateUser"));
    dir.write("rules/broken.yml", "title: broken\ndetection: [unclosed\n");
    vigil.signal("HUP");
    let failed = vigil.wait_stderr("reload failed");
    assert_eq!(failed["level"], "error");
    assert!(failed["errors"].as_u64().unwrap() >= 1, "{failed}");
    let diagnostic = vigil.wait_stderr("rule diagnostic");
    assert!(
        diagnostic["path"].as_str().unwrap().ends_with("broken.yml"),
        "{diagnostic}"
    );
    vigil.send(&create);
    assert_eq!(match_ids(&vigil.recv()), ["old-rule"]);
    // Fixed, the next reload takes.
    std::fs::remove_file(dir.path("rules/broken.yml")).unwrap();
    vigil.signal("HUP");
    vigil.wait_stderr("rules reloaded");
    vigil.send(&create);
    assert_eq!(match_ids(&vigil.recv()), ["new-rule"]);
    let (status, _, stderr) = vigil.finish();
    assert!(status.success());
    let stats = stderr.iter().find(|l| l["msg"] == "stats").unwrap();
    assert_eq!(stats["state"]["reloads_failed"], 1, "{stats}");
    assert_eq!(stats["state"]["reloads_ok"], 1, "{stats}");
}

/// A rule source that already failed to load when the run started (here an unsupported
/// construct, as downloaded packs have) does not block reloads; an error the edit brings does.
#[test]
fn errors_the_running_rules_already_had_do_not_block_a_reload() {
    let dir = TempDir::new("old-errors");
    dir.write("rules/r.yml", &rule("old-rule", "CreateUser"));
    dir.write(
        "rules/unsupported.yml",
        "title: broken\ndetection: [unclosed\n",
    );
    let rules = rules_arg(&dir);
    let mut vigil = Vigil::spawn(&["--rules", &rules, "--stats"]);
    let create = cloudtrail("CreateUser", "u", "2024-03-01T10:00:00Z", 0);
    vigil.send(&create);
    assert_eq!(match_ids(&vigil.recv()), ["old-rule"]);
    // The edit is good: the old error is still there, the reload takes.
    dir.write("rules/r.yml", &rule("new-rule", "CreateUser"));
    vigil.signal("HUP");
    vigil.wait_stderr("rules reloaded");
    vigil.send(&create);
    assert_eq!(match_ids(&vigil.recv()), ["new-rule"]);
    // A second broken file is a new error: refused.
    dir.write("rules/r.yml", &rule("newer-rule", "CreateUser"));
    dir.write("rules/also-broken.yml", "title: x\ndetection: {sel: [\n");
    vigil.signal("HUP");
    let failed = vigil.wait_stderr("reload failed");
    assert_eq!(failed["errors"], 1, "{failed}");
    vigil.send(&create);
    assert_eq!(match_ids(&vigil.recv()), ["new-rule"]);
    let (status, _, stderr) = vigil.finish();
    assert!(status.success());
    let stats = stderr.iter().find(|l| l["msg"] == "stats").unwrap();
    assert_eq!(stats["state"]["reloads_ok"], 1, "{stats}");
    assert_eq!(stats["state"]["reloads_failed"], 1, "{stats}");
}

/// A rule that survives a reload keeps its count in `--stats` (and so in the Prometheus
/// counters, read from the same snapshot): counters never go backwards at a reload.
#[test]
fn counters_of_a_rule_that_survives_a_reload_keep_counting() {
    let dir = TempDir::new("counters");
    dir.write("rules/kept.yml", &rule("kept-rule", "CreateUser"));
    dir.write("rules/r.yml", &rule("old-rule", "CreateUser"));
    let rules = rules_arg(&dir);
    let mut vigil = Vigil::spawn(&["--rules", &rules, "--stats"]);
    let create = cloudtrail("CreateUser", "u", "2024-03-01T10:00:00Z", 0);
    for _ in 0..3 {
        vigil.send(&create);
        let _ = vigil.recv();
    }
    dir.write("rules/r.yml", &rule("new-rule", "CreateUser"));
    vigil.signal("HUP");
    vigil.wait_stderr("rules reloaded");
    for _ in 0..2 {
        vigil.send(&create);
        assert_eq!(match_ids(&vigil.recv()).len(), 2);
    }
    let (status, _, stderr) = vigil.finish();
    assert!(status.success());
    let stats = stderr.iter().find(|l| l["msg"] == "stats").unwrap();
    assert_eq!(stats["rule_hits"]["kept-rule"], 5, "{stats}");
    assert_eq!(stats["rule_hits"]["new-rule"], 2, "{stats}");
    // A rule no longer loaded has no series.
    assert!(stats["rule_hits"].get("old-rule").is_none(), "{stats}");
}

const PAIR: &str = "\
title: pair
id: pair
correlation:
  type: temporal_ordered
  rules:
    - created
    - attached
  group-by:
    - requestParameters.userName
  timespan: 7d
";

/// Feeds the first half, rewrites the correlation file with `correlation`, reloads, feeds the
/// second half; returns the correlations that fired on it.
fn across_a_reload(name: &str, correlation: &str) -> Vec<String> {
    let dir = TempDir::new(name);
    dir.write("rules/base.yml", &rule("created", "CreateUser"));
    dir.write("rules/base2.yml", &rule("attached", "AttachUserPolicy"));
    dir.write("rules/pair.yml", PAIR);
    let rules = rules_arg(&dir);
    let mut vigil = Vigil::spawn(&["--rules", &rules]);
    vigil.send(&cloudtrail("CreateUser", "eve", "2024-03-01T10:00:00Z", 0));
    assert_eq!(match_ids(&vigil.recv()), ["created"]);
    dir.write("rules/pair.yml", correlation);
    // An unrelated rule added at the same time: the rule set does change.
    dir.write("rules/other.yml", &rule("other", "ListUsers"));
    vigil.signal("HUP");
    let reloaded = vigil.wait_stderr("rules reloaded");
    assert_eq!(reloaded["rules"], 3);
    vigil.send(&cloudtrail(
        "AttachUserPolicy",
        "eve",
        "2024-03-02T10:00:00Z",
        1,
    ));
    let line = vigil.recv();
    assert_eq!(match_ids(&line), ["attached"]);
    assert!(vigil.finish().0.success());
    correlation_ids(&line)
}

#[test]
fn correlation_state_is_kept_for_an_unchanged_correlation_only() {
    assert_eq!(across_a_reload("unchanged", PAIR), ["pair"]);
    let changed = PAIR.replace("timespan: 7d", "timespan: 8d");
    assert!(across_a_reload("changed", &changed).is_empty());
}

#[test]
fn watch_reloads_without_a_signal() {
    let dir = TempDir::new("watch");
    dir.write("rules/r.yml", &rule("old-rule", "CreateUser"));
    let rules = rules_arg(&dir);
    let mut vigil = Vigil::spawn(&["--rules", &rules, "--watch"]);
    let list = cloudtrail("ListUsers", "u", "2024-03-01T10:00:00Z", 0);
    vigil.send(&list);
    assert_eq!(vigil.recv_raw(), list);
    // The watcher took its first look before reading the first line; a file with another
    // size is a change whatever the clock's resolution.
    dir.write("rules/r.yml", &rule("new-rule", "ListUsers"));
    let reloaded = vigil.wait_stderr("rules reloaded");
    assert_eq!(reloaded["rules"], 1);
    vigil.send(&list);
    assert_eq!(match_ids(&vigil.recv()), ["new-rule"]);
    assert!(vigil.finish().0.success());
}

/// A SIGHUP that comes while the rules are still loading at start (a config-management run
/// or logrotate script reloading right after a restart) must not kill vigil with SIGHUP's
/// default action: it is a reload request like any other, acted on once the run has started.
#[test]
fn a_sighup_during_startup_is_a_reload_not_a_kill() {
    let dir = TempDir::new("early-hup");
    // Enough rules that loading them takes far longer than the delay before the signal, in
    // files of 500 documents (a rule file holds at most 1,000: README "Limits").
    for file in 0..8 {
        let many: Vec<String> = (0..500)
            .map(|idx| {
                let idx = file * 500 + idx;
                rule(&format!("r{idx}"), &format!("Event{idx}"))
            })
            .collect();
        dir.write(&format!("rules/many{file}.yml"), &many.join("---\n"));
    }
    dir.write("rules/create.yml", &rule("create-rule", "CreateUser"));
    let rules = rules_arg(&dir);
    let mut vigil = Vigil::spawn(&["--rules", &rules]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    vigil.signal("HUP");
    vigil.send(&cloudtrail("CreateUser", "u", "2024-03-01T10:00:00Z", 0));
    let output = vigil.recv();
    assert_eq!(match_ids(&output), ["create-rule"]);
    let reloaded = vigil.wait_stderr("rules reloaded");
    assert_eq!(reloaded["rules"], 4001);
    let (status, rest, _) = vigil.finish();
    assert!(status.success(), "{status:?}");
    assert!(rest.is_empty(), "{rest:?}");
}
