//! The pipelined path of `Processor` (`--threads` > 1): lines queued for the matching
//! threads come out exactly as `process_line` one by one would write them, whatever is in
//! flight; a reload while lines are in flight switches engines at one line boundary, and the
//! output equals a sequential run that reloads at that boundary.

use std::path::Path;

use vigil::correlate::Limits;
use vigil::eval::{Engine, EngineConfig};
use vigil::protocol::{Processor, ProtocolConfig};
use vigil::rules::{LoadOptions, Loader, load_default_pack};

const ARRIVAL_MS: i64 = 1_893_456_000_000;

fn config(threads: usize) -> ProtocolConfig {
    ProtocolConfig {
        threads,
        max_line_bytes: 4000,
        ..ProtocolConfig::default()
    }
}

fn default_engine() -> Engine {
    Engine::new(
        load_default_pack(LoadOptions::default()).set,
        EngineConfig::new(Limits::default()),
    )
    .0
}

fn engine_of(path: &str, text: &str) -> Engine {
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_source(path, text);
    let loaded = loader.finish();
    assert!(
        loaded.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        loaded.diagnostics
    );
    Engine::new(loaded.set, EngineConfig::new(Limits::default())).0
}

fn sigma_rule(id: &str, event_name: &str) -> String {
    format!(
        "title: {id}\nid: {id}\nlogsource:\n  product: aws\n  service: cloudtrail\n\
         detection:\n  sel:\n    eventName: {event_name}\n  condition: sel\n"
    )
}

/// The bundled sample many times over, with every kind of line the pipeline hands back to
/// the whole-line path: a BOM first, CRLF (and a doubled `\r`), bad JSON, non-objects, invalid
/// UTF-8, a number beyond f64, `\u` escapes, lines over `max_line_bytes`, empty lines.
fn mixed_lines() -> Vec<Vec<u8>> {
    let sample =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cloudtrail.ndjson"))
            .expect("the bundled sample");
    let sample: Vec<&[u8]> = sample
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut lines = Vec::new();
    for round in 0..30 {
        for (idx, line) in sample.iter().enumerate() {
            let mut line = line.to_vec();
            if lines.is_empty() {
                line.splice(0..0, *b"\xef\xbb\xbf");
            }
            match (round + idx) % 9 {
                0 => line.push(b'\r'),
                1 => line.extend_from_slice(b"\r\r"),
                _ => {}
            }
            lines.push(line);
            match (round * 7 + idx) % 11 {
                0 => lines.push(b"not json".to_vec()),
                1 => lines.push(b"[1,2]".to_vec()),
                2 => lines.push(b"{\"a\":1e400}".to_vec()),
                3 => lines.push(b"\xff\xfe{}".to_vec()),
                4 => lines.push(b"{\"eventName\":\"\\u0041\"}".to_vec()),
                5 => {
                    let mut long = b"{\"pad\":\"".to_vec();
                    long.resize(5000, b'x');
                    long.extend_from_slice(b"\"}");
                    lines.push(long);
                }
                6 => lines.push(Vec::new()),
                _ => {}
            }
        }
    }
    lines
}

fn sequential(engine: Engine, lines: &[Vec<u8>], reload: Option<(usize, Engine)>) -> Vec<u8> {
    let mut processor = Processor::new(engine, config(1));
    let mut reload = reload;
    let mut out = Vec::new();
    for (idx, line) in lines.iter().enumerate() {
        if reload.as_ref().is_some_and(|(at, _)| *at == idx)
            && let Some((_, engine)) = reload.take()
        {
            processor.replace_engine(engine);
        }
        processor.process_line(line, ARRIVAL_MS, &mut out);
    }
    out
}

/// Queues every line on a pipelined processor; before queuing line `reload.0`, replaces the
/// engine with lines in flight. Returns the output and how many lines were finished when the
/// engine was replaced.
fn pipelined(
    engine: Engine,
    threads: usize,
    lines: &[Vec<u8>],
    reload: Option<(usize, Engine)>,
) -> (Vec<u8>, Option<usize>) {
    let mut processor = Processor::new(engine, config(threads));
    assert!(processor.is_pipelined());
    let mut reload = reload;
    let mut out = Vec::new();
    let mut finished = 0;
    let mut switched_at = None;
    for (idx, line) in lines.iter().enumerate() {
        if reload.as_ref().is_some_and(|(at, _)| *at == idx)
            && let Some((_, engine)) = reload.take()
        {
            assert!(
                processor.has_queued(),
                "the reload must find lines in flight"
            );
            switched_at = Some(finished);
            processor.replace_engine(engine);
        }
        let result: Result<(), ()> =
            processor.queue_line(line, ARRIVAL_MS, idx as u64, |processor, ready| {
                finished += 1;
                processor.finish_ready(ready, &mut out);
                Ok(())
            });
        assert!(result.is_ok());
    }
    let result: Result<(), ()> = processor.drain(|processor, ready| {
        finished += 1;
        processor.finish_ready(ready, &mut out);
        Ok(())
    });
    assert!(result.is_ok());
    assert!(!processor.has_queued());
    assert_eq!(finished, lines.len(), "every line finished once");
    assert_eq!(processor.counters().lines_in, lines.len() as u64);
    (out, switched_at)
}

#[test]
fn pipelined_lines_come_out_as_sequential_ones() {
    let lines = mixed_lines();
    let expected = sequential(default_engine(), &lines, None);
    let enriched = String::from_utf8_lossy(&expected)
        .lines()
        .filter(|line| line.contains("\"matches\":["))
        .count();
    assert!(enriched > 100, "only {enriched} enriched lines");
    assert!(String::from_utf8_lossy(&expected).contains("\"too_long\""));
    for threads in [2, 3] {
        let (out, _) = pipelined(default_engine(), threads, &lines, None);
        assert!(
            out == expected,
            "--threads {threads} differs from one thread"
        );
    }
}

#[test]
fn a_reload_with_lines_in_flight_switches_at_one_line_boundary() {
    let lines: Vec<Vec<u8>> = mixed_lines();
    let old = || engine_of("old.yml", &sigma_rule("old-rule", "ConsoleLogin"));
    let new = || engine_of("new.yml", &sigma_rule("new-rule", "GetSecretValue"));
    let reload_at = lines.len() / 2;
    let (out, switched_at) = pipelined(old(), 2, &lines, Some((reload_at, new())));
    let switched_at = switched_at.expect("reloaded");
    assert!(
        switched_at < reload_at,
        "lines were in flight at the reload"
    );
    let expected = sequential(old(), &lines, Some((switched_at, new())));
    assert!(
        out == expected,
        "output differs from a sequential reload at line {switched_at}"
    );
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("old-rule") && text.contains("new-rule"));
}
