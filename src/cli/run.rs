//! `vigil run`: load rules, build the engine, run the stdin/stdout loop, report.
//!
//! Everything written to stderr here is one JSON object per line: rule diagnostics at start
//! (`"msg": "rule diagnostic"`), fatal errors (`"level": "error"`), and the `--stats` line.

use std::io::{self, Write};
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::{EXIT_FATAL, EXIT_OK, RunArgs};
use crate::correlate::Limits;
use crate::diag::{Diagnostic, Level};
use crate::eval::{Engine, EngineConfig};
use crate::ir::FieldPath;
use crate::protocol::io::{self as pio, Ending, IoOptions, RunSummary};
use crate::protocol::{ErrorKind, Processor, ProtocolConfig};

pub(super) fn run(args: RunArgs) -> u8 {
    let mut stderr = io::stderr();
    let loaded = match super::load_rules(&args.source.rules, args.source.placeholders.as_deref()) {
        Ok(loaded) => loaded,
        Err(err) => return fatal(&mut stderr, &format!("{err:#}")),
    };
    let mut config = EngineConfig::new(Limits {
        max_groups: args.max_groups,
        max_entries_per_group: args.max_group_entries,
        max_entries: args.max_entries,
    });
    config.stream_logsource = args.logsource.clone();
    config.script = crate::eval::script::ScriptConfig {
        step_budget: args.step_budget,
        kv: crate::panther_rt::kv::KvLimits {
            max_keys: args.max_kv_keys,
            max_bytes: args.max_kv_bytes,
        },
        max_threshold_keys: args.max_threshold_keys,
    };
    config.use_index = !args.no_index;
    if !args.time_fields.is_empty() {
        config.time_fields = args.time_fields.iter().map(|f| FieldPath::new(f)).collect();
    }
    let (engine, link_diagnostics) = Engine::new(loaded.set, config);
    let mut n_errors = 0;
    for diagnostic in loaded.diagnostics.iter().chain(&link_diagnostics) {
        n_errors += usize::from(diagnostic.is_error());
        report_diagnostic(&mut stderr, diagnostic);
    }
    if args.strict && n_errors > 0 {
        return fatal(
            &mut stderr,
            &format!("--strict: {n_errors} rule diagnostic(s) of level error"),
        );
    }

    let protocol = ProtocolConfig {
        field: args.field.clone(),
        max_line_bytes: args.max_line_bytes,
        invalid: args.invalid.into(),
        only_matches: args.only_matches,
        payload: args.payload.clone().map(|p| p.0).unwrap_or_default(),
        unwrap: args.unwrap.clone(),
        // One thread unless asked: on the 2-core machine we measure on, the matching pool
        // costs more than it saves (README, "Benchmarks"), so it is opt-in until it wins.
        threads: args.threads.unwrap_or(1),
        max_enrichment_bytes: args.max_enrichment_bytes,
    };
    let mut processor = Processor::new(engine, protocol);
    let options = IoOptions {
        line_buffered: args.line_buffered,
    };
    let start = Instant::now();
    let result = pio::run(
        &mut processor,
        pio::PolledStdin::new(),
        io::stdout().lock(),
        io::stderr(),
        options,
        pio::stop_on_signals,
        &mut (),
    );
    let elapsed = start.elapsed().as_secs_f64();
    let summary = match result {
        Ok(summary) => summary,
        Err(err) => return fatal(&mut stderr, &format!("i/o error: {err}")),
    };
    if args.stats {
        pio::write_json_line(&mut stderr, &stats(&processor, &summary, elapsed));
    }
    match summary.ending {
        Ending::Eof | Ending::Stopped | Ending::BrokenPipe => EXIT_OK,
        Ending::ReadError => EXIT_FATAL,
    }
}

fn fatal(stderr: &mut impl Write, message: &str) -> u8 {
    pio::write_json_line(stderr, &json!({"level": "error", "msg": message}));
    EXIT_FATAL
}

fn report_diagnostic(stderr: &mut impl Write, diagnostic: &Diagnostic) {
    let level = match diagnostic.level {
        Level::Warning => "warn",
        Level::Error => "error",
    };
    pio::write_json_line(
        stderr,
        &json!({
            "level": level,
            "msg": "rule diagnostic",
            "code": diagnostic.code.as_str(),
            "path": diagnostic.source.path,
            "line": diagnostic.source.line,
            "rule": diagnostic.rule,
            "detail": diagnostic.message,
            "text": diagnostic.to_string(),
        }),
    );
}

/// The `--stats` line.
fn stats(processor: &Processor, summary: &RunSummary, elapsed_secs: f64) -> Value {
    let counters = processor.counters();
    let engine = processor.engine();
    let engine_stats = engine.stats();
    let errors: Map<String, Value> = ErrorKind::ALL
        .iter()
        .map(|&kind| (kind.as_str().to_string(), counters.error_count(kind).into()))
        .collect();
    let rule_hits: Map<String, Value> = engine_stats
        .rule_hits
        .iter()
        .zip(engine.rules())
        .filter(|(hits, _)| **hits > 0)
        .map(|(hits, rule)| (rule.meta.id.clone(), (*hits).into()))
        .collect();
    let correlation_hits: Map<String, Value> = engine_stats
        .correlation_hits
        .iter()
        .zip(engine.correlations())
        .filter(|(hits, _)| **hits > 0)
        .map(|(hits, corr)| (corr.meta.id.clone(), (*hits).into()))
        .collect();
    let script_stats = engine.script_stats();
    let per_rule = |counts: &[u64]| -> Map<String, Value> {
        counts
            .iter()
            .zip(engine.rules())
            .filter(|(count, _)| **count > 0)
            .map(|(count, rule)| (rule.meta.id.clone(), (*count).into()))
            .collect()
    };
    let per_sec = |n: f64| {
        if elapsed_secs > 0.0 {
            n / elapsed_secs
        } else {
            0.0
        }
    };
    let ending = match summary.ending {
        Ending::Eof => "eof",
        Ending::Stopped => "signal",
        Ending::BrokenPipe => "broken_pipe",
        Ending::ReadError => "read_error",
    };
    json!({
        "level": "info",
        "msg": "stats",
        "ending": ending,
        "lines_in": counters.lines_in,
        "lines_out": counters.lines_out,
        "events": counters.events,
        "matched": counters.matched,
        "enrichments_truncated": counters.enrichments_truncated,
        "bytes_in": counters.bytes_in,
        "bytes_out": summary.bytes_out,
        "discarded_bytes": summary.discarded_bytes,
        "errors": errors,
        "rule_hits": rule_hits,
        "correlation_hits": correlation_hits,
        "correlation": {
            "live_groups": engine_stats.correlation.live_groups,
            "live_entries": engine_stats.correlation.live_entries,
            "evicted_groups": engine_stats.correlation.evicted_groups,
            "dropped_entries": engine_stats.correlation.dropped_entries,
            "late_events": engine_stats.correlation.late_events,
        },
        "script": {
            "budget_overruns": per_rule(&script_stats.budget_overruns),
            "runtime_errors": per_rule(&script_stats.runtime_errors),
            "kv_live_keys": script_stats.kv.live_keys,
            "kv_live_bytes": script_stats.kv.live_bytes,
            "kv_evicted_keys": script_stats.kv.evicted_keys,
            "kv_truncated_values": script_stats.kv.truncated_values,
            "threshold_keys": script_stats.threshold_keys,
            "threshold_evictions": script_stats.threshold_evictions,
        },
        "time_fallbacks": engine_stats.time_fallbacks,
        "future_times": engine_stats.future_times,
        "elapsed_secs": elapsed_secs,
        "events_per_sec": per_sec(counters.events as f64),
        "mb_per_sec": per_sec(counters.bytes_in as f64 / 1_000_000.0),
    })
}
