//! `examples/fluent-bit.yaml` run end to end by a real Fluent Bit binary.
//!
//! No registry this project reaches ships Fluent Bit (Debian has no `fluent-bit` package, and
//! PyPI and npm only have clients), so CI cannot run this: it runs where `FLUENT_BIT_BIN`
//! points at a `fluent-bit` executable and prints `skipped: FLUENT_BIT_BIN is not set`
//! otherwise. The example is used as committed, with only its host paths (input glob, offsets
//! DB, output dir), its loopback port and the `vigil` command moved, so what is tested is the
//! setup a user copies. It needs `socat`, as the example says.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_vigil");
const TIMEOUT: Duration = Duration::from_secs(90);

fn sample_lines() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cloudtrail.ndjson");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().map(str::to_string).collect()
}

fn has_program(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The committed example with its host paths and port moved; fails when a value it rewrites
/// is no longer in the file.
fn localized_config(dir: &Path, port: u16) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/fluent-bit.yaml"
    ))
    .unwrap();
    let d = dir.display();
    let mut config = text;
    for (from, to) in [
        (
            "/var/log/cloudtrail/*.ndjson".to_string(),
            format!("{d}/in/*.ndjson"),
        ),
        (
            "/var/lib/fluent-bit/cloudtrail.db".to_string(),
            format!("{d}/tail.db"),
        ),
        ("path: /var/log/vigil".to_string(), format!("path: {d}/out")),
        ("5170".to_string(), port.to_string()),
        ("| vigil".to_string(), format!("| {BIN}")),
    ] {
        assert!(
            config.contains(&from),
            "fluent-bit.yaml no longer has {from}"
        );
        config = config.replace(&from, &to);
    }
    config
}

fn read_records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
    complete
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .collect()
}

#[test]
fn fluent_bit_example_runs_end_to_end() {
    // The rewrite runs first, with or without a binary: it fails when the committed config no
    // longer has the values this test moves, so the test cannot drift from the file.
    localized_config(Path::new("/nonexistent"), 1);
    let Some(fluent_bit) = std::env::var_os("FLUENT_BIT_BIN") else {
        println!("skipped: FLUENT_BIT_BIN is not set");
        return;
    };
    assert!(
        has_program("socat"),
        "examples/fluent-bit.yaml feeds vigil through socat, which is not installed"
    );
    let dir = std::env::temp_dir().join(format!("vigil-fluent-bit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["in", "out"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    // parsers_file is relative to the configuration file.
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/fluent-bit-parsers.yaml"
        ),
        dir.join("fluent-bit-parsers.yaml"),
    )
    .unwrap();
    let config_path = dir.join("fluent-bit.yaml");
    std::fs::write(&config_path, localized_config(&dir, free_port())).unwrap();
    let mut child = Command::new(&fluent_bit)
        .arg("-c")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("fluent-bit.log")).unwrap())
        .spawn()
        .unwrap();

    let lines = sample_lines();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("in/cloudtrail.ndjson"), input).unwrap();

    let deadline = Instant::now() + TIMEOUT;
    let (alerts, rest) = loop {
        let alerts = read_records(&dir.join("out/alerts.ndjson"));
        let rest = read_records(&dir.join("out/cloudtrail-enriched.ndjson"));
        if alerts.len() + rest.len() >= lines.len() {
            break (alerts, rest);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} of {} records after {TIMEOUT:?}; fluent-bit log: {}",
                alerts.len() + rest.len(),
                lines.len(),
                std::fs::read_to_string(dir.join("fluent-bit.log")).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(250));
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    // Every event once, over the two outputs; alerts are exactly the high/critical ones.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for record in alerts.iter().chain(&rest) {
        *seen
            .entry(record["eventID"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for line in &lines {
        let event: Value = serde_json::from_str(line).unwrap();
        let id = event["eventID"].as_str().unwrap();
        assert_eq!(seen.get(id), Some(&1), "event {id}");
    }
    assert!(!alerts.is_empty(), "no alerts");
    for record in &alerts {
        let severity = record["vigil"]["severity"].as_str().unwrap();
        assert!(["high", "critical"].contains(&severity), "{record}");
    }
    for record in &rest {
        let severity = record["vigil"]["severity"].as_str().unwrap_or("none");
        assert!(!["high", "critical"].contains(&severity), "{record}");
    }
}
