use super::*;
use crate::eval::{Engine, EngineConfig};
use crate::rules::{LoadOptions, Loader};

const RULES: &str = "\
title: created
id: r-created
logsource:
  product: aws
  service: cloudtrail
detection:
  sel:
    eventName: CreateUser
  condition: sel
---
title: attached
id: r-attached
logsource:
  product: aws
  service: cloudtrail
detection:
  sel:
    eventName: AttachUserPolicy
  condition: sel
---
title: created then attached
id: c-pair
correlation:
  type: temporal_ordered
  rules:
    - r-created
    - r-attached
  group-by:
    - requestParameters.userName
  timespan: 7d
  generate: true
";

fn engine(rules: &str, limits: Limits) -> Engine {
    let dir = std::env::temp_dir().join(format!(
        "vigil-state-unit-{}-{}",
        std::process::id(),
        crate::state::tests::unique()
    ));
    let _ = fs::create_dir_all(&dir);
    let path = dir.join("rules.yml");
    let _ = fs::write(&path, rules);
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_path(&path);
    let loaded = loader.finish();
    let _ = fs::remove_dir_all(&dir);
    assert!(
        loaded.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        loaded.diagnostics
    );
    Engine::new(loaded.set, EngineConfig::new(limits)).0
}

fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn feed(engine: &mut Engine, name: &str, user: &str, time: &str) -> usize {
    let line = format!(
        r#"{{"eventVersion":"1.08","eventSource":"iam.amazonaws.com","eventName":"{name}","awsRegion":"us-east-1","eventTime":"{time}","requestParameters":{{"userName":"{user}"}}}}"#
    );
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    let event = crate::event::Event::new(&value);
    let mut out = crate::eval::Detections::default();
    engine.evaluate(&event, 1_900_000_000_000, &mut out);
    out.correlations.len()
}

#[test]
fn round_trip_carries_a_correlation_across_engines() {
    let mut first = engine(RULES, Limits::default());
    assert_eq!(
        feed(&mut first, "CreateUser", "alice", "2024-01-01T00:00:00Z"),
        0
    );
    let bytes = encode(&first.export_state());
    let snapshot = decode(&bytes).unwrap();
    assert_eq!(snapshot.n_groups(), 1);
    let mut second = engine(RULES, Limits::default());
    let report = second.import_state(snapshot);
    assert_eq!(report.correlations_kept, 1);
    assert_eq!(report.correlation.groups_loaded, 1);
    assert_eq!(report.dropped(), 0);
    assert_eq!(
        feed(
            &mut second,
            "AttachUserPolicy",
            "alice",
            "2024-01-02T00:00:00Z"
        ),
        1
    );
    // Without the state, the second half alone does not fire.
    let mut fresh = engine(RULES, Limits::default());
    assert_eq!(
        feed(
            &mut fresh,
            "AttachUserPolicy",
            "alice",
            "2024-01-02T00:00:00Z"
        ),
        0
    );
}

#[test]
fn changed_definition_drops_state_unchanged_keeps_it() {
    let mut first = engine(RULES, Limits::default());
    feed(&mut first, "CreateUser", "alice", "2024-01-01T00:00:00Z");
    let snapshot = first.export_state();
    // The base rule now matches another event name: the correlation's entries were made by
    // the old definition, so they are dropped.
    let changed = RULES.replacen("eventName: CreateUser", "eventName: CreateLoginProfile", 1);
    let mut second = engine(&changed, Limits::default());
    let report = second.import_state(snapshot.clone());
    assert_eq!(report.correlations_dropped, 1);
    assert_eq!(report.correlation.groups_dropped, 1);
    assert_eq!(report.correlation.groups_loaded, 0);
    // A title change is not a definition change.
    let retitled = RULES.replacen("title: created\n", "title: user created\n", 1);
    let mut third = engine(&retitled, Limits::default());
    let report = third.import_state(snapshot);
    assert_eq!(report.correlation.groups_loaded, 1);
    assert_eq!(report.dropped(), 0);
}

#[test]
fn import_respects_the_limits() {
    let mut big = engine(RULES, Limits::default());
    for idx in 0..50 {
        feed(
            &mut big,
            "CreateUser",
            &format!("user{idx}"),
            "2024-01-01T00:00:00Z",
        );
    }
    let snapshot = big.export_state();
    assert_eq!(snapshot.n_groups(), 50);
    let limits = Limits {
        max_groups: 10,
        max_entries_per_group: 5,
        max_entries: 1_000,
    };
    let mut small = engine(RULES, limits);
    let report = small.import_state(snapshot);
    assert_eq!(report.correlation.groups_loaded, 50);
    assert_eq!(report.correlation.groups_evicted, 40);
    assert_eq!(small.stats().correlation.live_groups, 10);
    // The most recently used groups are the ones kept.
    assert_eq!(
        feed(
            &mut small,
            "AttachUserPolicy",
            "user49",
            "2024-01-02T00:00:00Z"
        ),
        1
    );
    assert_eq!(
        feed(
            &mut small,
            "AttachUserPolicy",
            "user0",
            "2024-01-02T00:00:00Z"
        ),
        0
    );
    // The entry budget holds too.
    let mut tiny = engine(
        RULES,
        Limits {
            max_groups: 100,
            max_entries_per_group: 100,
            max_entries: 7,
        },
    );
    tiny.import_state(big.export_state());
    assert!(tiny.stats().correlation.live_entries <= 7);
}

#[test]
fn damaged_files_are_refused_whole() {
    let mut first = engine(RULES, Limits::default());
    feed(&mut first, "CreateUser", "alice", "2024-01-01T00:00:00Z");
    let bytes = encode(&first.export_state());
    assert!(decode(&bytes).is_ok());
    let truncated = &bytes[..bytes.len() - 3];
    assert!(matches!(
        decode(truncated),
        Err(StateError::Truncated { .. })
    ));
    assert!(matches!(
        decode(&bytes[..10]),
        Err(StateError::Truncated { .. })
    ));
    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    assert!(matches!(decode(&corrupt), Err(StateError::Checksum)));
    let mut version = bytes.clone();
    version[8] = 99;
    assert!(matches!(
        decode(&version),
        Err(StateError::Version { found: 99 })
    ));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        decode(&trailing),
        Err(StateError::TrailingBytes { extra: 1 })
    ));
    assert!(matches!(
        decode(b"{\"not\": \"state\"}"),
        Err(StateError::BadMagic)
    ));
    // A payload with a valid checksum that is not a snapshot.
    let mut garbage = bytes[..HEADER_BYTES].to_vec();
    let payload = [0xff_u8; 16];
    garbage[12..20].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    garbage[20..24].copy_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    garbage.extend_from_slice(&payload);
    assert!(matches!(decode(&garbage), Err(StateError::Payload(_))));
}

#[test]
fn save_and_load_files() {
    let dir = std::env::temp_dir().join(format!("vigil-state-file-{}", std::process::id()));
    let _ = fs::create_dir_all(&dir);
    let path = dir.join("state.bin");
    let _ = fs::remove_file(&path);
    assert!(load(&path, 1 << 20).unwrap().is_none());
    let mut first = engine(RULES, Limits::default());
    feed(&mut first, "CreateUser", "alice", "2024-01-01T00:00:00Z");
    let bytes = encode(&first.export_state());
    save(&path, &bytes).unwrap();
    assert_eq!(load(&path, 1 << 20).unwrap().map(|s| s.n_groups()), Some(1));
    assert!(matches!(
        load(&path, 10),
        Err(StateError::TooLarge { max: 10, .. })
    ));
    // No temporary file is left behind.
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["state.bin"]);
    // Saving into a missing directory fails and is reported, not a panic.
    assert!(save(&dir.join("missing/state.bin"), &bytes).is_err());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn file_bound_follows_the_limits() {
    let limits = Limits::default();
    let script = ScriptConfig::default();
    let default = max_file_bytes(&limits, &script);
    assert!(default > 100_000_000 && default < 400_000_000, "{default}");
    let small = Limits {
        max_groups: 10,
        max_entries_per_group: 10,
        max_entries: 10,
    };
    assert!(max_file_bytes(&small, &script) < default);
}

/// An engine over a Panther rule with a threshold of 2, whose `rule()` is `code`.
fn panther_engine(code: &str) -> Engine {
    let dir = std::env::temp_dir().join(format!(
        "vigil-state-panther-{}-{}",
        std::process::id(),
        unique()
    ));
    let _ = fs::create_dir_all(&dir);
    let spec = "AnalysisType: rule\nFilename: t.py\nRuleID: Threshold.Rule\nDisplayName: t\n\
                Enabled: true\nLogTypes: [AWS.CloudTrail]\nSeverity: Medium\nThreshold: 2\n\
                DedupPeriodMinutes: 60\n";
    let _ = fs::write(dir.join("t.yml"), spec);
    let _ = fs::write(dir.join("t.py"), code);
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_path(&dir);
    let loaded = loader.finish();
    let _ = fs::remove_dir_all(&dir);
    assert!(
        loaded.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        loaded.diagnostics
    );
    Engine::new(loaded.set, EngineConfig::new(Limits::default())).0
}

/// The threshold count of the Panther rule's match on a CreateUser event.
fn threshold_count(engine: &mut Engine) -> Option<u64> {
    let value = serde_json::json!({"eventVersion": "1.09", "eventSource": "iam.amazonaws.com",
        "eventName": "CreateUser", "awsRegion": "us-east-1",
        "eventTime": "2024-01-01T00:00:00Z"});
    let event = crate::event::Event::new(&value);
    let mut out = crate::eval::Detections::default();
    engine.evaluate(&event, 1_900_000_000_000, &mut out);
    out.outputs
        .first()
        .and_then(|output| output.threshold_count)
}

#[test]
fn panther_threshold_counts_follow_their_rule_code() {
    let code = "def rule(event):\n    return event.get('eventName') == 'CreateUser'\n";
    let mut first = panther_engine(code);
    assert_eq!(threshold_count(&mut first), Some(1));
    let snapshot = decode(&encode(&first.export_state())).unwrap();
    let mut same = panther_engine(code);
    let report = same.import_state(snapshot.clone());
    assert_eq!(report.thresholds.loaded, 1);
    assert_eq!(threshold_count(&mut same), Some(2));
    // Other code, same id: the counter is dropped.
    let other = "def rule(event):\n    return event.get('eventName') in ['CreateUser']\n";
    let mut changed = panther_engine(other);
    let report = changed.import_state(snapshot);
    assert_eq!(report.thresholds.dropped, 1);
    assert_eq!(threshold_count(&mut changed), Some(1));
}

/// The file holds event values (group-by values such as user names and addresses): only its
/// owner may read it, whatever the umask. And the fixed temporary name must not be a way to
/// make vigil write elsewhere: a symbolic link planted there is replaced, not followed.
#[test]
fn saved_file_is_private_and_the_temporary_name_is_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("vigil-state-private-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.bin");
    let victim = dir.join("victim");
    fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join(".state.bin.tmp")).unwrap();
    let bytes = encode(&StateSnapshot::default());
    save(&path, &bytes).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "state file mode {mode:o}");
    assert_eq!(
        load(&path, 1 << 20).unwrap(),
        Some(StateSnapshot::default())
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn encode_into_a_used_buffer_gives_the_same_bytes() {
    let mut first = engine(RULES, Limits::default());
    feed(&mut first, "CreateUser", "alice", "2024-01-01T00:00:00Z");
    let snapshot = first.export_state();
    let fresh = encode(&snapshot);
    // A buffer left over from a larger save, as the periodic saver hands it back.
    let mut reused = vec![0xAA; fresh.len() * 3];
    encode_into(&snapshot, &mut reused);
    assert_eq!(reused, fresh);
    assert_eq!(decode(&reused).unwrap().n_groups(), 1);
    encode_into(&StateSnapshot::default(), &mut reused);
    assert_eq!(reused, encode(&StateSnapshot::default()));
    assert_eq!(decode(&reused).unwrap(), StateSnapshot::default());
}
