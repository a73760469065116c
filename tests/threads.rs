//! `--threads N` changes how fast, never what: the binary's output with several matching
//! threads is byte-identical to `--threads 1`, on the bundled sample mixed with bad lines,
//! and (with `$VIGIL_CORPUS`) on every corpus event file through every corpus Sigma rule.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait for vigil");
    writer.join().expect("stdin writer thread");
    output
}

/// The sample, many times over, with bad lines, a BOM, CRLF endings and a partial last line
/// mixed in, so that batches hold every kind of line.
fn mixed_input() -> Vec<u8> {
    let sample =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cloudtrail.ndjson"))
            .expect("sample");
    let mut input = b"\xef\xbb\xbf".to_vec();
    for round in 0..40 {
        for (idx, line) in sample
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            input.extend_from_slice(line);
            match (round + idx) % 7 {
                0 => input.extend_from_slice(b"\r\n"),
                1 => input.extend_from_slice(b"\nnot json\n[1,2]\n{\"a\":1e400}\n"),
                2 => input.extend_from_slice(b"\n{\"eventName\":\"\\u0041\"}\n\xff\xfe\n"),
                _ => input.push(b'\n'),
            }
        }
    }
    input.extend_from_slice(b"{\"partial\":true}");
    input
}

fn assert_same_output(rules: &[&str], input: Vec<u8>) -> usize {
    let mut single_args = rules.to_vec();
    single_args.extend(["--threads", "1"]);
    let single = run_vigil(&single_args, input.clone());
    assert!(
        single.status.success(),
        "{}",
        String::from_utf8_lossy(&single.stderr)
    );
    for threads in ["2", "3"] {
        let mut args = rules.to_vec();
        args.extend(["--threads", threads]);
        let multi = run_vigil(&args, input.clone());
        assert!(
            multi.status.success(),
            "{}",
            String::from_utf8_lossy(&multi.stderr)
        );
        assert!(
            multi.stdout == single.stdout,
            "--threads {threads} differs from --threads 1"
        );
    }
    // Something must fire for the comparison to mean anything: count the enriched lines
    // (error records carry `vigil.error` and no `matches`).
    String::from_utf8_lossy(&single.stdout)
        .lines()
        .filter(|line| line.contains("\"matches\":["))
        .count()
}

/// `$VIGIL_CORPUS`, or `None` (the test is skipped, and says so).
fn corpus() -> Option<PathBuf> {
    match std::env::var_os("VIGIL_CORPUS").filter(|dir| !dir.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            eprintln!("skipped: VIGIL_CORPUS is not set");
            None
        }
    }
}

/// The corpus event files (`events/*.ndjson`), sorted.
fn event_files(corpus: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus.join("events"))
        .unwrap()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "ndjson"))
        .collect();
    files.sort();
    files
}

#[test]
fn threads_do_not_change_the_output_of_the_default_pack() {
    let marked = assert_same_output(&[], mixed_input());
    assert!(marked > 100, "only {marked} enriched lines");
}

#[test]
fn threads_do_not_change_the_output_on_the_corpus() {
    let Some(corpus) = corpus() else {
        return;
    };
    let files = event_files(&corpus);
    let mut input = Vec::new();
    for file in files {
        input.extend(std::fs::read(file).unwrap());
        if !input.ends_with(b"\n") {
            input.push(b'\n');
        }
    }
    let rules = corpus.join("sigma/rules");
    let marked = assert_same_output(&["--rules", rules.to_str().unwrap()], input);
    assert!(marked > 100, "only {marked} enriched lines");
}

/// Lines over `--max-line-bytes`, inside a chunk and across chunks, processed whole between
/// queued lines: as error records, and streamed through with `--invalid pass`.
#[test]
fn threads_do_not_change_the_output_around_over_long_lines() {
    let mut input = Vec::new();
    for (idx, line) in mixed_input().split(|&b| b == b'\n').enumerate() {
        input.extend_from_slice(line);
        input.push(b'\n');
        if idx % 13 == 5 {
            let long = if idx % 2 == 0 { 2500 } else { 200_000 };
            input.extend_from_slice(b"{\"pad\":\"");
            input.resize(input.len() + long, b'y');
            input.extend_from_slice(b"\"}\r\n");
        }
    }
    for extra in [&[][..], &["--invalid", "pass"][..]] {
        let mut args = vec!["--max-line-bytes", "2000"];
        args.extend_from_slice(extra);
        let marked = assert_same_output(&args, input.clone());
        assert!(marked > 100, "only {marked} enriched lines");
    }
}

/// Panther rules run their Python on the matching threads where it needs no cross-event state
/// (`PreConfirmer`), and on the main thread where it does (the key-value helpers): the output
/// must still be byte-identical, with every CloudTrail rule of the corpus in every format.
#[test]
fn threads_do_not_change_the_output_of_every_corpus_format() {
    let Some(corpus) = corpus() else {
        return;
    };
    // Every event file, and the events of the Panther rule tests (whose rules are the ones
    // with Python, some of it using the key-value helpers), twice so that state builds up.
    let files = event_files(&corpus);
    let mut input = Vec::new();
    for _ in 0..2 {
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            if file.ends_with("panther_tests.ndjson") {
                for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    let test: serde_json::Value = serde_json::from_slice(line).unwrap();
                    input.extend(serde_json::to_vec(&test["log"]).unwrap());
                    input.push(b'\n');
                }
            } else {
                input.extend(bytes);
                if !input.ends_with(b"\n") {
                    input.push(b'\n');
                }
            }
        }
    }
    let dirs = [
        corpus.join("sigma/rules/cloud/aws"),
        corpus.join("panther/rules"),
        corpus.join("elastic/rules/integrations/aws"),
    ];
    let mut args = Vec::new();
    for dir in &dirs {
        args.push("--rules");
        args.push(dir.to_str().unwrap());
    }
    let marked = assert_same_output(&args, input);
    assert!(marked > 500, "only {marked} enriched lines");
}
