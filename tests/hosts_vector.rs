//! The repository's `vector.toml` run end to end by a real Vector binary.
//!
//! No registry this project reaches ships Vector (not Debian, PyPI, npm or crates.io: the
//! `vector` crate there is an unrelated library), so CI cannot run this: it runs where
//! `VECTOR_BIN` points at a `vector` executable and prints `skipped: VECTOR_BIN is not set`
//! otherwise. The configuration is used as committed, with only its host paths (input glob,
//! data dir, socket, output dir) and the `vigil` command moved into a temporary directory, so
//! what is tested is the topology a user copies: a socket sink feeding `vigil --listen` run
//! by an exec source, with no socat.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// The committed config with its host paths moved under `dir`; fails when a path it
/// rewrites is no longer in the file (so a change to vector.toml cannot silently bypass it).
fn localized_config(dir: &Path) -> String {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/vector.toml")).unwrap();
    let d = dir.display();
    let mut config = text;
    for (from, to) in [
        (
            "/var/log/cloudtrail/*.ndjson".to_string(),
            format!("{d}/in/*.ndjson"),
        ),
        (
            "/run/vigil/vigil.sock".to_string(),
            format!("{d}/vigil.sock"),
        ),
        (
            "data_dir = \"/var/lib/vector\"".to_string(),
            format!("data_dir = \"{d}/data\""),
        ),
        ("/var/log/vigil/".to_string(), format!("{d}/out/")),
        (
            "command = [\"vigil\", ".to_string(),
            format!("command = [\"{BIN}\", "),
        ),
    ] {
        assert!(config.contains(&from), "vector.toml no longer has {from}");
        config = config.replace(&from, &to);
    }
    config
}

struct Vector {
    child: Child,
    dir: PathBuf,
}

impl Drop for Vector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every JSON line of every file under `dir/out`, by file name prefix (`alerts`,
/// `findings`, `cloudtrail`).
fn outputs(dir: &Path) -> HashMap<String, Vec<Value>> {
    let mut by_sink: HashMap<String, Vec<Value>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir.join("out")) else {
        return by_sink;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let sink = name.split('-').next().unwrap_or("").to_string();
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        // Only complete lines: the sink may be half way through one.
        let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
        for line in complete.lines() {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("{name}: not JSON ({err}): {line}"));
            by_sink.entry(sink.clone()).or_default().push(value);
        }
    }
    by_sink
}

#[test]
fn vector_toml_runs_end_to_end() {
    // The rewrite runs first, with or without a binary: it fails when the committed config no
    // longer has the values this test moves, so the test cannot drift from the file.
    localized_config(Path::new("/nonexistent"));
    let Some(vector_bin) = std::env::var_os("VECTOR_BIN") else {
        println!("skipped: VECTOR_BIN is not set");
        return;
    };
    let dir = std::env::temp_dir().join(format!("vigil-vector-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["in", "data", "out"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let config_path = dir.join("vector.toml");
    std::fs::write(&config_path, localized_config(&dir)).unwrap();
    let child = Command::new(&vector_bin)
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("vector.log")).unwrap())
        .spawn()
        .unwrap();
    let vector = Vector { child, dir };

    let lines = sample_lines();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(vector.dir.join("in/cloudtrail.ndjson"), input).unwrap();

    let deadline = Instant::now() + TIMEOUT;
    let by_sink = loop {
        let by_sink = outputs(&vector.dir);
        if by_sink.values().map(Vec::len).sum::<usize>() >= lines.len() {
            break by_sink;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} events after {TIMEOUT:?}; vector log: {}",
            by_sink.values().map(Vec::len).sum::<usize>(),
            lines.len(),
            std::fs::read_to_string(vector.dir.join("vector.log")).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(250));
    };

    // The file source puts each line in `message`; vigil (`--payload message`) enriches the
    // outer record. Every input event comes out once, in exactly one sink.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for record in by_sink.values().flatten() {
        let inner: Value = serde_json::from_str(record["message"].as_str().unwrap()).unwrap();
        *seen
            .entry(inner["eventID"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for line in &lines {
        let event: Value = serde_json::from_str(line).unwrap();
        let id = event["eventID"].as_str().unwrap();
        assert_eq!(seen.get(id), Some(&1), "event {id}");
    }
    // Routing on the enrichment: the pager gets high/critical, the tickets the lower levels.
    let pager = by_sink.get("alerts").cloned().unwrap_or_default();
    assert!(!pager.is_empty(), "nothing paged");
    for record in &pager {
        let severity = record["vigil"]["severity"].as_str().unwrap();
        assert!(["high", "critical"].contains(&severity), "{record}");
    }
    for record in by_sink.get("findings").into_iter().flatten() {
        let severity = record["vigil"]["severity"].as_str().unwrap();
        assert!(
            ["informational", "low", "medium"].contains(&severity),
            "{record}"
        );
    }
    // The remap dropped the exec source's metadata.
    for record in by_sink.values().flatten() {
        assert!(record.get("pid").is_none() && record.get("command").is_none());
    }
    // The correlation across the sample (CreateUser then AdministratorAccess) paged.
    assert!(pager.iter().any(|record| {
        record["vigil"]["correlations"]
            .as_array()
            .is_some_and(|list| !list.is_empty())
    }));
}
