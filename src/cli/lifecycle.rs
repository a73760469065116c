//! The run's housekeeping: durable state (`--state`, `--state-interval`) and hot reload
//! (SIGHUP, `--watch`), as one [`Housekeeping`] job of the stdin/stdout loop.
//!
//! Both only act at line boundaries, in [`Housekeeping::tick`], and keep slow work off the
//! line loop:
//! - **Saves.** At each interval the engine's state is exported as a value on the loop's thread
//!   (a copy of the groups, counters and cache: the engine does no I/O), and a writer thread
//!   encodes it and replaces the file atomically (`crate::state::save`). While a save is in
//!   progress the next one waits for it. At the end of the run (EOF, SIGTERM/SIGINT, closed
//!   stdout) [`Housekeeping::finish`] saves once more and waits for the file to be written.
//!   A failed save (disk full, permissions) is counted and warned about (at most once a
//!   minute), never fatal.
//! - **Reloads.** SIGHUP, or a change `--watch` sees, asks for one. A loader thread reads and
//!   lowers every rule source again and builds the new engine (rule index included); the
//!   loop goes on with the old one meanwhile. When the build is done, the next tick either
//!   reports its error diagnostics and a "reload failed" line and keeps the old engine (when
//!   there is an error the rule set in force did not already have), or
//!   moves the state over (`Engine::export_state` / `import_state`: kept for rules whose id
//!   and definition are unchanged) and swaps the engine in. A request that comes during a
//!   build starts another build when that one is done.
//! - **`--watch`** polls the rule paths (and the placeholders file) once a second for a change
//!   in the set of files, their sizes or their modification times. Polling a few directories
//!   once a second costs nothing measurable, works on every filesystem (inotify misses changes
//!   on network mounts and in bind-mounted ConfigMaps that swap a symlink), and needs no
//!   dependency.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::diag::Diagnostic;
use crate::eval::{Engine, EngineConfig, state::ImportReport};
use crate::protocol::Processor;
use crate::protocol::io::{Housekeeping, write_json_line};
use crate::state::{self, StateCounters};

/// How often `--watch` looks at the rule paths.
pub const WATCH_PERIOD: Duration = Duration::from_secs(1);
/// The longest an idle loop waits before a tick (how soon a SIGHUP is acted on while no input
/// comes).
const IDLE_TICK: Duration = Duration::from_millis(200);
/// At most one save-failure warning per this interval.
const SAVE_WARN_INTERVAL: Duration = Duration::from_secs(60);

/// What the lifecycle needs from the command line.
pub(super) struct LifecycleConfig {
    pub state_path: Option<PathBuf>,
    pub state_interval: Duration,
    pub watch: bool,
    /// `--rules` (empty: the default pack) and `--placeholders`, read again on reload.
    pub rule_paths: Vec<PathBuf>,
    pub placeholders: Option<PathBuf>,
    pub engine_config: EngineConfig,
    /// Set by SIGHUP (registered by the caller before the rules were first loaded, so that a
    /// SIGHUP during startup is a reload request rather than SIGHUP's default action).
    pub reload_requested: Arc<AtomicBool>,
    /// The error diagnostics of the rule set the run started with (empty with `--strict`,
    /// which refuses to start on any): a reload is refused only for errors not among them.
    pub accepted_errors: Vec<Diagnostic>,
}

pub(super) struct Lifecycle {
    /// The `--state` file's lock (`state::lock`), held until the run ends.
    _state_lock: Option<std::fs::File>,
    counters: Arc<StateCounters>,
    saver: Option<Saver>,
    reloader: Reloader,
}

impl Lifecycle {
    /// Loads the state file into `engine` (before the first line) and starts the `--watch`
    /// poller; SIGHUP sets `config.reload_requested`. Problems with the state file are
    /// reported and the run starts empty.
    pub fn start(config: LifecycleConfig, engine: &mut Engine) -> io::Result<Lifecycle> {
        let counters = Arc::new(StateCounters::default());
        let max_bytes =
            state::max_file_bytes(&config.engine_config.limits, &config.engine_config.script);
        // Another run holding the file is fatal; a lock that cannot even be created (the
        // directory is missing or read-only) is the save failures' problem, warned and counted
        // there, and the run goes on as it would without the lock.
        let lock = match config.state_path.as_deref().map(state::lock) {
            Some(Ok(file)) => Some(file),
            Some(Err(err)) if err.kind() == io::ErrorKind::WouldBlock => return Err(err),
            Some(Err(err)) => {
                write_json_line(
                    &mut io::stderr(),
                    &json!({
                        "level": "warn",
                        "msg": "cannot lock the state file",
                        "detail": err.to_string(),
                    }),
                );
                None
            }
            None => None,
        };
        let saver = match &config.state_path {
            Some(path) => {
                load_state(path, max_bytes, engine, &counters);
                Some(Saver::start(
                    path.clone(),
                    config.state_interval,
                    Arc::clone(&counters),
                )?)
            }
            None => None,
        };
        let requested = config.reload_requested;
        if config.watch {
            let mut watched = config.rule_paths.clone();
            watched.extend(config.placeholders.clone());
            let flag = Arc::clone(&requested);
            // The first look is taken here, before any line is read, so that a change made
            // once the run has started is always seen as one.
            let first = stamps(&watched);
            std::thread::Builder::new()
                .name("vigil-watch".to_string())
                .spawn(move || watch(&watched, first, &flag))?;
        }
        Ok(Lifecycle {
            _state_lock: lock,
            counters: Arc::clone(&counters),
            saver,
            reloader: Reloader {
                requested,
                pending: None,
                rule_paths: config.rule_paths,
                placeholders: config.placeholders,
                engine_config: config.engine_config,
                counters,
                accepted_errors: config
                    .accepted_errors
                    .iter()
                    .filter(|d| d.is_error())
                    .map(error_key)
                    .collect(),
            },
        })
    }

    /// The counters, for `--stats` and metrics.
    pub fn counters(&self) -> Arc<StateCounters> {
        Arc::clone(&self.counters)
    }
}

impl Housekeeping for Lifecycle {
    fn period(&self) -> Option<Duration> {
        Some(IDLE_TICK)
    }

    fn tick(&mut self, processor: &mut Processor) {
        self.reloader.tick(processor);
        if let Some(saver) = &mut self.saver {
            saver.tick(processor);
        }
    }

    fn finish(&mut self, processor: &mut Processor) {
        if let Some(saver) = &mut self.saver {
            saver.finish(processor);
        }
    }
}

/// Reads the state file into `engine` and reports what happened on stderr.
fn load_state(path: &Path, max_bytes: u64, engine: &mut Engine, counters: &StateCounters) {
    let mut stderr = io::stderr();
    match state::load(path, max_bytes) {
        Ok(None) => write_json_line(
            &mut stderr,
            &json!({
                "level": "info",
                "msg": "state file not found; starting empty",
                "path": path.display().to_string(),
            }),
        ),
        Ok(Some(snapshot)) => {
            let report = engine.import_state(snapshot);
            counters
                .loaded_groups
                .store(report.correlation.groups_loaded, Ordering::Relaxed);
            counters
                .loaded_dropped
                .store(report.dropped(), Ordering::Relaxed);
            let mut line = json!({
                "level": "info",
                "msg": "state loaded",
                "path": path.display().to_string(),
            });
            extend(&mut line, import_fields(&report));
            write_json_line(&mut stderr, &line);
        }
        Err(err) => {
            counters.load_failed.store(1, Ordering::Relaxed);
            write_json_line(
                &mut stderr,
                &json!({
                    "level": "warn",
                    "msg": "state file unusable; starting empty",
                    "path": path.display().to_string(),
                    "reason": err.kind(),
                    "detail": err.to_string(),
                }),
            );
        }
    }
}

/// The fields of an import for the info lines.
fn import_fields(report: &ImportReport) -> Value {
    json!({
        "rules_kept": report.rules_kept,
        "rules_dropped": report.rules_dropped,
        "correlations_kept": report.correlations_kept,
        "correlations_dropped": report.correlations_dropped,
        "groups_loaded": report.correlation.groups_loaded,
        "groups_dropped": report.correlation.groups_dropped,
        "groups_evicted": report.correlation.groups_evicted,
        "entries_dropped": report.correlation.entries_dropped,
        "threshold_counters_loaded": report.thresholds.loaded,
        "threshold_counters_dropped": report.thresholds.dropped,
        "threshold_counters_evicted": report.thresholds.evicted,
        "kv_keys_loaded": report.kv.loaded,
        "kv_keys_evicted": report.kv.evicted,
        "state_kept": report.kept(),
        "state_dropped": report.dropped(),
    })
}

fn extend(line: &mut Value, fields: Value) {
    if let (Value::Object(line), Value::Object(fields)) = (line, fields) {
        line.extend(fields);
    }
}

/// Periodic and final saves, written by a thread of their own.
struct Saver {
    interval: Duration,
    next_due: Instant,
    /// A save is being written; the next waits for it.
    busy: Arc<AtomicBool>,
    sender: Option<SyncSender<(Vec<u8>, Instant)>>,
    /// The writer hands each buffer back for the next save.
    recycled: Receiver<Vec<u8>>,
    writer: Option<JoinHandle<()>>,
}

impl Saver {
    fn start(path: PathBuf, interval: Duration, counters: Arc<StateCounters>) -> io::Result<Saver> {
        let (sender, receiver) = mpsc::sync_channel(1);
        let (give_back, recycled) = mpsc::sync_channel(1);
        let busy = Arc::new(AtomicBool::new(false));
        let writer_busy = Arc::clone(&busy);
        let writer = std::thread::Builder::new()
            .name("vigil-state".to_string())
            .spawn(move || write_loop(&path, &receiver, &give_back, &writer_busy, &counters))?;
        Ok(Saver {
            interval,
            next_due: Instant::now() + interval,
            busy,
            sender: Some(sender),
            recycled,
            writer: Some(writer),
        })
    }

    fn tick(&mut self, processor: &mut Processor) {
        let now = Instant::now();
        if now < self.next_due || self.busy.load(Ordering::SeqCst) {
            return;
        }
        self.next_due = now + self.interval;
        let bytes = self.encode(processor);
        if let Some(sender) = &self.sender {
            self.busy.store(true, Ordering::SeqCst);
            if sender.try_send((bytes, now)).is_err() {
                self.busy.store(false, Ordering::SeqCst);
            }
        }
    }

    /// The state file's bytes, exported and encoded on the loop's thread into the buffer the
    /// writer gave back. The snapshot's many small allocations are made and freed by one thread,
    /// so the allocator reuses their pages at once, and the megabytes of the file are one buffer
    /// for the whole run. (Encoded and freed on the writer thread, they stayed committed: with
    /// `--state-interval 1s` RSS was about 50 MB against 29 MB with mimalloc purging at once.)
    fn encode(&self, processor: &Processor) -> Vec<u8> {
        let mut bytes = self.recycled.try_recv().unwrap_or_default();
        state::encode_into(&processor.engine().export_state(), &mut bytes);
        bytes
    }

    /// Saves the final state and waits until it is written (or failed).
    fn finish(&mut self, processor: &mut Processor) {
        let started = Instant::now();
        let bytes = self.encode(processor);
        if let Some(sender) = self.sender.take() {
            let _ = sender.send((bytes, started));
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn write_loop(
    path: &Path,
    receiver: &Receiver<(Vec<u8>, Instant)>,
    give_back: &SyncSender<Vec<u8>>,
    busy: &AtomicBool,
    counters: &StateCounters,
) {
    let mut last_warning: Option<Instant> = None;
    let mut unreported_failures = 0_u64;
    while let Ok((bytes, started)) = receiver.recv() {
        match state::save(path, &bytes) {
            Ok(()) => {
                counters.saves_ok.fetch_add(1, Ordering::Relaxed);
                counters
                    .last_save_bytes
                    .store(bytes.len() as u64, Ordering::Relaxed);
                counters
                    .last_save_micros
                    .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            Err(err) => {
                counters.saves_failed.fetch_add(1, Ordering::Relaxed);
                unreported_failures += 1;
                let due = last_warning.is_none_or(|at| at.elapsed() >= SAVE_WARN_INTERVAL);
                if due {
                    write_json_line(
                        &mut io::stderr(),
                        &json!({
                            "level": "warn",
                            "msg": "cannot save state",
                            "path": path.display().to_string(),
                            "detail": err.to_string(),
                            "failures": unreported_failures,
                        }),
                    );
                    last_warning = Some(Instant::now());
                    unreported_failures = 0;
                }
            }
        }
        let _ = give_back.try_send(bytes);
        busy.store(false, Ordering::SeqCst);
    }
}

/// Rule reloads: requested by SIGHUP or `--watch`, built on a thread, applied at a tick.
struct Reloader {
    requested: Arc<AtomicBool>,
    pending: Option<Receiver<Built>>,
    rule_paths: Vec<PathBuf>,
    placeholders: Option<PathBuf>,
    engine_config: EngineConfig,
    counters: Arc<StateCounters>,
    /// Keys ([`error_key`]) of the error diagnostics of the rule set in force. A rule source
    /// that already could not load (an unsupported construct in a downloaded pack) does not
    /// block every later reload; an error the edit introduced does.
    accepted_errors: std::collections::HashSet<String>,
}

/// What identifies an error diagnostic across reloads: where (file, rule) and what, but not
/// the line, which an edit elsewhere in the file moves.
fn error_key(diagnostic: &Diagnostic) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}",
        diagnostic.source.path,
        diagnostic.rule.as_deref().unwrap_or_default(),
        diagnostic.code.as_str(),
        diagnostic.message
    )
}

/// What a reload thread built.
struct Built {
    /// `Err`: a path could not be read at all (the message says which).
    engine: Result<Engine, String>,
    diagnostics: Vec<Diagnostic>,
    n_rules: usize,
    n_correlations: usize,
}

impl Reloader {
    fn tick(&mut self, processor: &mut Processor) {
        if let Some(receiver) = &self.pending {
            match receiver.try_recv() {
                Ok(built) => {
                    self.pending = None;
                    self.apply(built, processor);
                }
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.pending = None;
                    self.fail(0, "the rule loader stopped without a result".to_string());
                }
            }
        }
        if self.requested.swap(false, Ordering::SeqCst) {
            self.pending = self.spawn_build();
        }
    }

    fn spawn_build(&mut self) -> Option<Receiver<Built>> {
        let (sender, receiver) = mpsc::channel();
        let paths = self.rule_paths.clone();
        let placeholders = self.placeholders.clone();
        let config = self.engine_config.clone();
        let spawned = std::thread::Builder::new()
            .name("vigil-reload".to_string())
            .spawn(move || {
                let _ = sender.send(build(&paths, placeholders.as_deref(), config));
            });
        match spawned {
            Ok(_) => Some(receiver),
            Err(err) => {
                self.fail(0, format!("cannot start the rule loader: {err}"));
                None
            }
        }
    }

    fn apply(&mut self, built: Built, processor: &mut Processor) {
        let mut stderr = io::stderr();
        for diagnostic in &built.diagnostics {
            super::run::report_diagnostic(&mut stderr, diagnostic);
        }
        let errors: std::collections::HashSet<String> = built
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(error_key)
            .collect();
        let n_new = errors.difference(&self.accepted_errors).count();
        let mut engine = match built.engine {
            Err(message) => return self.fail(n_new, message),
            Ok(_) if n_new > 0 => {
                return self.fail(
                    n_new,
                    format!(
                        "{n_new} new rule diagnostic(s) of level error (errors the running rules already had do not count)"
                    ),
                );
            }
            Ok(engine) => engine,
        };
        self.accepted_errors = errors;
        let report = engine.import_state(processor.engine().export_state());
        drop(processor.replace_engine(engine));
        self.counters.reloads_ok.fetch_add(1, Ordering::Relaxed);
        let mut line = json!({
            "level": "info",
            "msg": "rules reloaded",
            "rules": built.n_rules,
            "correlations": built.n_correlations,
        });
        extend(&mut line, import_fields(&report));
        write_json_line(&mut stderr, &line);
    }

    fn fail(&mut self, n_errors: usize, reason: String) {
        self.counters.reloads_failed.fetch_add(1, Ordering::Relaxed);
        write_json_line(
            &mut io::stderr(),
            &json!({
                "level": "error",
                "msg": "reload failed",
                "errors": n_errors,
                "detail": format!("{reason}; the previous rules stay in force"),
            }),
        );
    }
}

/// Loads and links every rule source, as at start.
fn build(paths: &[PathBuf], placeholders: Option<&Path>, config: EngineConfig) -> Built {
    let loaded = match super::load_rules(paths, placeholders) {
        Ok(loaded) => loaded,
        Err(err) => {
            return Built {
                engine: Err(format!("{err:#}")),
                diagnostics: Vec::new(),
                n_rules: 0,
                n_correlations: 0,
            };
        }
    };
    let mut diagnostics = loaded.diagnostics;
    let (engine, link_diagnostics) = Engine::new(loaded.set, config);
    diagnostics.extend(link_diagnostics);
    Built {
        n_rules: engine.rules().len(),
        n_correlations: engine.correlations().len(),
        engine: Ok(engine),
        diagnostics,
    }
}

/// One file under a watched path: where, how long, when last modified.
type FileStamp = (PathBuf, u64, Option<SystemTime>);

/// Polls `paths` every [`WATCH_PERIOD`] and sets `flag` when what they hold differs from
/// `last`, the previous look. Runs for the life of the process.
fn watch(paths: &[PathBuf], mut last: Vec<FileStamp>, flag: &AtomicBool) {
    loop {
        std::thread::sleep(WATCH_PERIOD);
        let now = stamps(paths);
        if now != last {
            last = now;
            flag.store(true, Ordering::SeqCst);
        }
    }
}

/// Every file under `paths` (recursively; a missing path is simply absent), sorted.
fn stamps(paths: &[PathBuf]) -> Vec<FileStamp> {
    let mut out = Vec::new();
    for path in paths {
        collect_stamps(path, 0, &mut out);
    }
    out.sort();
    out
}

fn collect_stamps(path: &Path, depth: usize, out: &mut Vec<FileStamp>) {
    let Ok(metadata) = std::fs::metadata(path) else {
        return;
    };
    if metadata.is_dir() {
        // A symlink loop is cut off rather than followed for ever.
        if depth > 32 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        // Hidden entries are skipped, as the loader skips them (`rules::collect_rule_files`):
        // a change there (an editor's swap file) changes no rule.
        for entry in entries.flatten() {
            if !entry.file_name().as_encoded_bytes().starts_with(b".") {
                collect_stamps(&entry.path(), depth + 1, out);
            }
        }
    } else {
        out.push((path.to_path_buf(), metadata.len(), metadata.modified().ok()));
    }
}

/// A duration with its unit: `500ms`, `30s`, `5m`, `1h`; at least 1 ms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| "expected a number with a unit: 500ms, 30s, 5m, 1h".to_string())?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1_000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => return Err(format!("unknown unit '{unit}': use ms, s, m or h")),
    };
    match millis {
        Some(0) => Err("must be at least 1ms".to_string()),
        Some(millis) => Ok(Duration::from_millis(millis)),
        None => Err("too long".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("99999999999999999h").is_err());
    }

    /// The watcher looks at what the loader reads: hidden entries of a directory (an editor's
    /// swap file, a ConfigMap's `..data` copy) are skipped by both, so an editor saving its swap
    /// file every few seconds does not reload the rules each time.
    #[test]
    fn stamps_skip_hidden_entries_as_the_loader_does() {
        let dir = std::env::temp_dir().join(format!("vigil-watch-hidden-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".hidden")).unwrap();
        std::fs::write(dir.join("a.yml"), "a").unwrap();
        let paths = [dir.clone()];
        let first = stamps(&paths);
        std::fs::write(dir.join(".a.yml.swp"), "swap").unwrap();
        std::fs::write(dir.join(".hidden/b.yml"), "b").unwrap();
        assert_eq!(stamps(&paths), first);
        // A hidden file named as a rule path itself is watched.
        let named = [dir.join(".a.yml.swp")];
        assert_eq!(stamps(&named).len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stamps_see_added_changed_and_removed_files() {
        let dir = std::env::temp_dir().join(format!("vigil-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.yml"), "a").unwrap();
        let paths = [dir.clone()];
        let first = stamps(&paths);
        assert_eq!(first.len(), 1);
        std::fs::write(dir.join("sub/b.yml"), "b").unwrap();
        let second = stamps(&paths);
        assert_eq!(second.len(), 2);
        std::fs::write(dir.join("a.yml"), "aa").unwrap();
        let third = stamps(&paths);
        assert_ne!(second, third);
        std::fs::remove_file(dir.join("sub/b.yml")).unwrap();
        assert_eq!(stamps(&paths).len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
