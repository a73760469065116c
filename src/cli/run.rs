//! `vigil run`: load rules, build the engine, run the stdin/stdout loop, report.
//!
//! Everything written to stderr here is one JSON object per line: rule diagnostics at start
//! (`"msg": "rule diagnostic"`), fatal errors (`"level": "error"`), and the `--stats` line.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde_json::json;

use super::lifecycle::{Lifecycle, LifecycleConfig};
use super::metrics::Metrics;
use super::{EXIT_FATAL, EXIT_OK, RunArgs};
use crate::correlate::Limits;
use crate::diag::{Diagnostic, Level};
use crate::eval::{Engine, EngineConfig};
use crate::ir::FieldPath;
use crate::protocol::io::{self as pio, Ending, IoOptions};
use crate::protocol::listen;
use crate::protocol::{Processor, ProtocolConfig};

/// The most matching threads `--threads` defaults to.
const DEFAULT_MAX_THREADS: usize = 2;

pub(super) fn run(args: RunArgs) -> u8 {
    let mut stderr = io::stderr();
    // SIGHUP means "reload" from the first moment: registered before the rules are loaded
    // (which can take seconds), so a SIGHUP during startup is a reload request acted on once
    // the run has started, not SIGHUP's default action, which would kill vigil.
    let reload_requested = Arc::new(AtomicBool::new(false));
    if let Err(err) =
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload_requested))
    {
        return fatal(&mut stderr, &format!("cannot handle SIGHUP: {err}"));
    }
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
    let (mut engine, link_diagnostics) = Engine::new(loaded.set, config.clone());
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
        // The available cores, at most DEFAULT_MAX_THREADS: two threads beat one on the 2-core
        // machine we measure on (README, "Benchmarks"); more are untested, so only on request.
        threads: args.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(DEFAULT_MAX_THREADS)
        }),
        max_enrichment_bytes: args.max_enrichment_bytes,
    };
    // The state file is read before the first line; reloads and saves run at line boundaries.
    let lifecycle = Lifecycle::start(
        LifecycleConfig {
            state_path: args.state.clone(),
            state_interval: args.state_interval,
            watch: args.watch,
            rule_paths: args.source.rules.clone(),
            placeholders: args.source.placeholders.clone(),
            engine_config: config,
            reload_requested,
            accepted_errors: loaded
                .diagnostics
                .iter()
                .chain(&link_diagnostics)
                .filter(|d| d.is_error())
                .cloned()
                .collect(),
        },
        &mut engine,
    );
    let mut lifecycle = match lifecycle {
        Ok(lifecycle) => lifecycle,
        Err(err) => {
            return fatal(
                &mut stderr,
                &format!("cannot set up state or reload: {err}"),
            );
        }
    };
    let state_counters = lifecycle.counters();
    let mut processor = Processor::new(engine, protocol);
    let options = IoOptions {
        line_buffered: args.line_buffered,
    };
    // With --listen the sockets are bound before the first event is read, and a bind
    // failure (a non-loopback address, a live socket, a regular file at PATH) is fatal.
    let listeners = if args.listen.is_empty() {
        None
    } else {
        let config = listen::ListenConfig {
            addrs: args.listen.clone(),
            allow_any: args.listen_any,
            max_connections: args.max_connections,
            watch_stdout: true,
        };
        match listen::Listeners::bind(&config) {
            Ok(listeners) => Some(listeners),
            Err(err) => return fatal(&mut stderr, &err.to_string()),
        }
    };
    let start = Instant::now();
    let mut metrics = Metrics::new(start, args.stats_interval).with_state(state_counters);
    if let Some(addr) = &args.metrics {
        let listener = match super::metrics::bind(addr, args.metrics_any) {
            Ok(listener) => listener,
            Err(err) => return fatal(&mut stderr, &format!("{err:#}")),
        };
        // With port 0 the kernel picks the port: say which, so a caller can find it.
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        if let Err(err) = metrics.serve(listener, &processor) {
            return fatal(&mut stderr, &format!("--metrics {addr}: {err}"));
        }
        pio::write_json_line(
            &mut stderr,
            &json!({"level": "info", "msg": "metrics listening", "addr": local}),
        );
    }
    let result = match listeners {
        // Stdin is not read: Vector's exec source gives its child /dev/null.
        Some(listeners) => listen::run(
            &mut processor,
            listeners,
            io::stdout().lock(),
            io::stderr(),
            options,
            pio::stop_on_signals,
            &mut (&mut lifecycle, &mut metrics),
        ),
        None => pio::run(
            &mut processor,
            pio::PolledStdin::new(),
            io::stdout().lock(),
            io::stderr(),
            options,
            pio::stop_on_signals,
            &mut (&mut lifecycle, &mut metrics),
        ),
    };
    let summary = match result {
        Ok(summary) => summary,
        Err(err) => return fatal(&mut stderr, &format!("i/o error: {err}")),
    };
    if args.stats {
        let line = metrics.snapshot(&processor).final_line(&summary);
        pio::write_json_line(&mut stderr, &line);
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

pub(super) fn report_diagnostic(stderr: &mut impl Write, diagnostic: &Diagnostic) {
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
