//! `--stats-interval` and `--metrics` through the real binary.
//!
//! The Prometheus page is checked by a strict parser of the text exposition format 0.0.4
//! written here (not Python's `prometheus_client`): it needs nothing outside the repository, so
//! `cargo test` runs it everywhere, and it is stricter than the client library, which accepts
//! families split in pieces and duplicate series.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_vigil");
const TIMEOUT: Duration = Duration::from_secs(30);

/// A Sigma rule whose id needs escaping in a label value (a quote and a backslash).
const ODD_ID: &str = r#"odd"id\one"#;
const ODD_RULE: &str = r#"title: rule with an odd id
id: 'odd"id\one'
logsource:
  product: aws
  service: cloudtrail
detection:
  sel:
    eventName: ConsoleLogin
  condition: sel
level: low
"#;

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("vigil-metrics-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sample_lines() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cloudtrail.ndjson");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().map(str::to_string).collect()
}

/// Spawns vigil with piped stdio; stderr lines arrive, parsed, on the returned channel.
fn spawn(args: &[&str]) -> (Child, mpsc::Receiver<Value>) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|err| panic!("stderr line is not JSON ({err}): {line}"));
            if sender.send(value).is_err() {
                return;
            }
        }
    });
    // Drain stdout so a full pipe never blocks vigil.
    let mut stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = stdout.read_to_end(&mut sink);
    });
    (child, receiver)
}

/// The next stderr line with this `msg`, within the timeout.
fn next_msg(receiver: &mpsc::Receiver<Value>, msg: &str) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(value) if value["msg"] == msg => return value,
            Ok(_) => {}
            Err(err) => panic!("no stderr line with msg {msg:?}: {err}"),
        }
    }
}

fn wait_exit(mut child: Child) -> i32 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "vigil did not exit");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn interval_lines_carry_increasing_counters() {
    let (mut child, stderr) = spawn(&["--stats", "--stats-interval", "200ms"]);
    let mut stdin = child.stdin.take().unwrap();
    let lines = sample_lines();
    let mut seen = Vec::new();
    // Three batches with pauses longer than the interval: each pause lets at least one
    // interval line out, taken after the batch before it was processed.
    for batch in lines.chunks(lines.len().div_ceil(3)) {
        for line in batch {
            writeln!(stdin, "{line}").unwrap();
        }
        stdin.flush().unwrap();
        let want = seen_total(&seen) + batch.len() as u64;
        // Wait for an interval line that has seen the whole batch.
        loop {
            let line = next_msg(&stderr, "stats interval");
            let lines_in = line["lines_in"].as_u64().unwrap();
            seen.push(line);
            if lines_in >= want {
                break;
            }
        }
    }
    drop(stdin);
    let last = next_msg(&stderr, "stats");
    assert_eq!(wait_exit(child), 0);

    assert!(seen.len() >= 3, "only {} interval lines", seen.len());
    let counts: Vec<u64> = seen
        .iter()
        .map(|l| l["lines_in"].as_u64().unwrap())
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "lines_in went down: {counts:?}"
    );
    let distinct: HashSet<u64> = counts.iter().copied().collect();
    assert!(distinct.len() >= 3, "counters did not grow: {counts:?}");
    let final_in = last["lines_in"].as_u64().unwrap();
    assert_eq!(final_in, lines.len() as u64);
    assert_eq!(*counts.last().unwrap(), final_in);
    // Rates: the interval's own and since the start, both present and sane.
    for line in &seen {
        let rates = &line["rates"];
        for span in ["interval", "since_start"] {
            let secs = rates[span]["secs"].as_f64().unwrap();
            let per_sec = rates[span]["events_per_sec"].as_f64().unwrap();
            assert!(secs > 0.0 && per_sec >= 0.0, "{line}");
        }
    }
    // The interval lines and the final line come from the same snapshot code: on the last
    // interval line (all input seen) every counter but the time equals the final line's.
    let last_interval = seen.last().unwrap();
    for key in [
        "lines_out",
        "events",
        "matched",
        "bytes_in",
        "errors",
        "rule_hits",
        "correlation_hits",
        "correlation",
        "script",
    ] {
        assert_eq!(last_interval[key], last[key], "{key}");
    }
}

fn seen_total(seen: &[Value]) -> u64 {
    seen.last()
        .map_or(0, |line| line["lines_in"].as_u64().unwrap())
}

/// One scraped sample: metric name and its labels (sorted), and the value.
type Series = (String, BTreeMap<String, String>);

/// A strict parser of the Prometheus text exposition format 0.0.4, as far as vigil uses it:
/// `# HELP` and `# TYPE` once per family and before its samples, the samples of a family
/// contiguous, valid metric and label names, label values with only the three escapes, Go
/// float values, no duplicate series, counters named `_total`, a final line feed.
fn parse_exposition(text: &str) -> Result<HashMap<Series, f64>, String> {
    if !text.ends_with('\n') {
        return Err("the page does not end with a line feed".into());
    }
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut sampled: HashSet<String> = HashSet::new();
    let mut samples = HashMap::new();
    for (idx, line) in text.lines().enumerate() {
        let n = idx + 1;
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest
                .split_once(' ')
                .ok_or(format!("line {n}: bare comment"))?;
            let (name, tail) = rest.split_once(' ').ok_or(format!("line {n}: no text"))?;
            check_metric_name(name).map_err(|e| format!("line {n}: {e}"))?;
            if finished.contains(name) || sampled.contains(name) {
                return Err(format!("line {n}: {keyword} of {name} after its samples"));
            }
            if current.as_deref() != Some(name)
                && let Some(previous) = current.take()
            {
                finished.insert(previous);
            }
            match keyword {
                "HELP" => {
                    if !helps.insert(name.to_string()) {
                        return Err(format!("line {n}: second HELP for {name}"));
                    }
                    check_help(tail).map_err(|e| format!("line {n}: {e}"))?;
                }
                "TYPE" => {
                    if !["counter", "gauge", "untyped", "summary", "histogram"].contains(&tail) {
                        return Err(format!("line {n}: unknown type {tail}"));
                    }
                    if tail == "counter" && !name.ends_with("_total") {
                        return Err(format!("line {n}: counter {name} is not named _total"));
                    }
                    if types.insert(name.to_string(), tail.to_string()).is_some() {
                        return Err(format!("line {n}: second TYPE for {name}"));
                    }
                }
                _ => return Err(format!("line {n}: unknown comment keyword {keyword}")),
            }
            current = Some(name.to_string());
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            return Err(format!("line {n}: empty line or malformed comment"));
        }
        let (series, value) = parse_sample(line).map_err(|e| format!("line {n}: {e}"))?;
        let name = &series.0;
        if !types.contains_key(name) {
            return Err(format!("line {n}: sample of {name} before its TYPE"));
        }
        if current.as_deref() != Some(name.as_str()) {
            return Err(format!("line {n}: samples of {name} are not contiguous"));
        }
        sampled.insert(name.clone());
        if samples.insert(series.clone(), value).is_some() {
            return Err(format!("line {n}: duplicate series {series:?}"));
        }
    }
    Ok(samples)
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

fn check_help(text: &str) -> Result<(), String> {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
            return Err(format!("bad escape in HELP {text:?}"));
        }
    }
    Ok(())
}

fn parse_sample(line: &str) -> Result<(Series, f64), String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let name = &line[..name_end];
    check_metric_name(name)?;
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        loop {
            // Label name.
            let mut label = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                label.push(c);
            }
            let mut label_chars = label.chars();
            let ok = label_chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && label_chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(format!("bad label name {label:?}"));
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?} in label value")),
                    },
                    Some((_, '"')) => break,
                    Some((_, '\n')) | None => return Err("unterminated label value".into()),
                    Some((_, c)) => value.push(c),
                }
            }
            if labels.insert(label.clone(), value).is_some() {
                return Err(format!("label {label} twice"));
            }
            match chars.next() {
                Some((_, ',')) => {
                    // A trailing comma before `}` is allowed by the format.
                    if let Some(&(idx, '}')) = chars.peek() {
                        rest = &inner[idx + 1..];
                        break;
                    }
                }
                Some((idx, '}')) => {
                    rest = &inner[idx + 1..];
                    break;
                }
                other => return Err(format!("expected , or }} after a label, got {other:?}")),
            }
        }
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or_else(|| format!("no space before the value in {line:?}"))?;
    let mut fields = rest.split(' ');
    let value_text = fields.next().unwrap_or("");
    let value = match value_text {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        text => text
            .parse::<f64>()
            .map_err(|_| format!("bad value {text:?}"))?,
    };
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("bad timestamp {timestamp:?}"))?;
    }
    if fields.next().is_some() {
        return Err(format!("trailing text in {line:?}"));
    }
    Ok(((name.to_string(), labels), value))
}

/// `GET path` over a fresh connection; the status line and the body.
fn http_get(addr: &str, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_string();
    assert!(head.contains("Connection: close"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, body.len(), "Content-Length");
    (status, body.to_string())
}

fn scrape(addr: &str) -> HashMap<Series, f64> {
    let (status, body) = http_get(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n",
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    parse_exposition(&body).unwrap_or_else(|err| panic!("invalid exposition: {err}\n{body}"))
}

fn plain(samples: &HashMap<Series, f64>, name: &str) -> f64 {
    *samples
        .get(&(name.to_string(), BTreeMap::new()))
        .unwrap_or_else(|| panic!("no sample {name}"))
}

/// Every series of `name`, by the value of its one label `label`.
fn labelled(samples: &HashMap<Series, f64>, name: &str, label: &str) -> HashMap<String, f64> {
    samples
        .iter()
        .filter(|((n, _), _)| n == name)
        .map(|((_, labels), value)| {
            assert_eq!(labels.len(), 1, "{name} {labels:?}");
            (labels[label].clone(), *value)
        })
        .collect()
}

#[test]
fn scrape_is_valid_exposition_and_equals_the_stats_line() {
    let rules = TempDir::new("scrape");
    std::fs::write(rules.0.join("odd.yml"), ODD_RULE).unwrap();
    let pack = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/default");
    let rules_arg = rules.0.to_str().unwrap();
    let (mut child, stderr) = spawn(&[
        "--rules",
        pack,
        "--rules",
        rules_arg,
        "--stats",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let addr = next_msg(&stderr, "metrics listening")["addr"]
        .as_str()
        .unwrap()
        .to_string();

    // Before any input: a valid page with zero counters.
    let before = scrape(&addr);
    assert_eq!(plain(&before, "vigil_lines_in_total"), 0.0);

    let mut stdin = child.stdin.take().unwrap();
    let mut lines = sample_lines();
    lines.push("not json".to_string());
    lines.push("[1]".to_string());
    for line in &lines {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    // The page is re-rendered at most once a second: wait until it has every line.
    let deadline = Instant::now() + TIMEOUT;
    let scraped = loop {
        let samples = scrape(&addr);
        if plain(&samples, "vigil_lines_in_total") == lines.len() as f64 {
            break samples;
        }
        assert!(Instant::now() < deadline, "the page never caught up");
        thread::sleep(Duration::from_millis(200));
    };
    drop(stdin);
    let stats = next_msg(&stderr, "stats");
    assert_eq!(wait_exit(child), 0);

    for (metric, key) in [
        ("vigil_lines_in_total", "lines_in"),
        ("vigil_lines_out_total", "lines_out"),
        ("vigil_events_total", "events"),
        ("vigil_events_matched_total", "matched"),
        ("vigil_input_bytes_total", "bytes_in"),
        ("vigil_time_fallbacks_total", "time_fallbacks"),
        ("vigil_future_times_total", "future_times"),
    ] {
        assert_eq!(
            plain(&scraped, metric),
            stats[key].as_f64().unwrap(),
            "{metric}"
        );
    }
    for (metric, key) in [
        ("vigil_correlation_groups", "live_groups"),
        ("vigil_correlation_entries", "live_entries"),
        ("vigil_correlation_groups_evicted_total", "evicted_groups"),
        ("vigil_correlation_entries_dropped_total", "dropped_entries"),
        ("vigil_correlation_late_events_total", "late_events"),
    ] {
        assert_eq!(
            plain(&scraped, metric),
            stats["correlation"][key].as_f64().unwrap(),
            "{metric}"
        );
    }
    for (metric, key) in [
        ("vigil_kv_keys", "kv_live_keys"),
        ("vigil_kv_bytes", "kv_live_bytes"),
        ("vigil_kv_evicted_keys_total", "kv_evicted_keys"),
        ("vigil_kv_truncated_values_total", "kv_truncated_values"),
        ("vigil_threshold_keys", "threshold_keys"),
        ("vigil_threshold_evictions_total", "threshold_evictions"),
    ] {
        assert_eq!(
            plain(&scraped, metric),
            stats["script"][key].as_f64().unwrap(),
            "{metric}"
        );
    }

    // Errors: one series per kind, equal to the stats line's map, and the two bad lines seen.
    let errors = labelled(&scraped, "vigil_line_errors_total", "kind");
    let stats_errors = stats["errors"].as_object().unwrap();
    assert_eq!(errors.len(), stats_errors.len());
    for (kind, count) in stats_errors {
        assert_eq!(errors[kind], count.as_f64().unwrap(), "errors {kind}");
    }
    assert_eq!(errors["invalid_json"], 1.0);
    assert_eq!(errors["not_object"], 1.0);

    // Per rule and per correlation: one series for every loaded one; the stats line lists
    // the non-zero ones, which must be exactly the series above zero.
    for (metric, key, loaded_gauge) in [
        ("vigil_rule_matches_total", "rule_hits", "vigil_rules"),
        (
            "vigil_correlation_matches_total",
            "correlation_hits",
            "vigil_correlations",
        ),
    ] {
        let series = labelled(&scraped, metric, "rule");
        assert_eq!(
            series.len() as f64,
            plain(&scraped, loaded_gauge),
            "{metric}"
        );
        let nonzero: HashMap<String, f64> = series
            .iter()
            .filter(|(_, v)| **v > 0.0)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let from_stats: HashMap<String, f64> = stats[key]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
            .collect();
        assert_eq!(nonzero, from_stats, "{metric}");
        assert!(!nonzero.is_empty(), "{metric}: the sample fires nothing");
    }
    // The odd id went through label escaping and came back whole.
    let rules_seen = labelled(&scraped, "vigil_rule_matches_total", "rule");
    assert!(rules_seen[ODD_ID] >= 1.0, "{rules_seen:?}");
    assert!(plain(&scraped, "vigil_uptime_seconds") > 0.0);
}

#[test]
fn other_paths_methods_and_huge_requests_are_refused() {
    let rules = TempDir::new("paths");
    let (mut child, stderr) = spawn(&[
        "--rules",
        rules.0.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
    ]);
    let addr = next_msg(&stderr, "metrics listening")["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = http_get(&addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http_get(&addr, "GET /metricsx HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http_get(&addr, "POST /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    let (status, body) = http_get(&addr, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("vigil_lines_in_total 0\n"));
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    let (status, _) = http_get(&addr, &huge);
    assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");
    // A client that says nothing is dropped after the read timeout; the next one is served.
    let silent = TcpStream::connect(&addr).unwrap();
    let (status, _) = http_get(&addr, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    drop(silent);
    drop(child.stdin.take());
    assert_eq!(wait_exit(child), 0);
}

#[test]
fn non_loopback_address_is_refused_unless_allowed() {
    let rules = TempDir::new("loopback");
    let out = Command::new(BIN)
        .args([
            "--rules",
            rules.0.to_str().unwrap(),
            "--metrics",
            "0.0.0.0:0",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(out.stdout.is_empty());

    let out = Command::new(BIN)
        .args([
            "--rules",
            rules.0.to_str().unwrap(),
            "--metrics",
            "0.0.0.0:0",
            "--metrics-any",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("metrics listening"), "{stderr}");
}

#[test]
fn the_strict_parser_rejects_what_prometheus_rejects() {
    let good = "# HELP a_total x\n# TYPE a_total counter\na_total{rule=\"q\\\"\"} 1\n";
    assert!(parse_exposition(good).is_ok());
    for bad in [
        // No final line feed.
        "# TYPE a_total counter\na_total 1",
        // Sample before its TYPE.
        "a_total 1\n# TYPE a_total counter\n",
        // Counter without _total.
        "# TYPE a counter\na 1\n",
        // Unknown escape in a label value.
        "# TYPE a_total counter\na_total{rule=\"\\x\"} 1\n",
        // Duplicate series.
        "# TYPE a_total counter\na_total 1\na_total 2\n",
        // A family split in two.
        "# TYPE a_total counter\na_total{k=\"1\"} 1\n# TYPE b gauge\nb 1\na_total{k=\"2\"} 1\n",
        // Not a number.
        "# TYPE b gauge\nb one\n",
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted: {bad:?}");
    }
}
