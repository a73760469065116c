//! Run metrics: one [`Snapshot`] of the running counters, rendered three ways.
//!
//! The final `--stats` line, the `--stats-interval` lines and the Prometheus page of
//! `--metrics` are all rendered from a [`Snapshot`], so they never disagree on a number: a
//! counter is read from the processor in exactly one place ([`Snapshot::take`]).
//!
//! The loop's thread owns the [`Processor`], so the HTTP server cannot read it. Instead the
//! [`Metrics`] housekeeping job renders the Prometheus page at line boundaries, at most once
//! per [`PUBLISH_PERIOD`], into a shared string that the server thread only copies out; a
//! scrape is therefore at most one period stale (longer only while vigil's stdout is blocked
//! by backpressure, when no line boundary is reached). The server is std only: one thread,
//! one connection at a time, a bounded request and a read timeout, `Connection: close`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::correlate::CorrelationStats;
use crate::protocol::io::{self as pio, Ending, Housekeeping, RunSummary};
use crate::protocol::{ErrorKind, Processor};
use crate::state::{StateCounters, StateCountersSnapshot};

/// How often the Prometheus page is re-rendered while lines flow or the input is idle.
pub const PUBLISH_PERIOD: Duration = Duration::from_secs(1);

/// Longest HTTP request head the metrics server reads; a longer one is answered 431.
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// How long the metrics server gives one connection in all, to send its request and to take
/// the answer: the server handles one connection at a time, so no client, silent or sending
/// a byte at a time, holds it longer (a per-read timeout alone would let a client that sends
/// one byte per timeout hold it for hours).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// The counters of a run at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub lines_in: u64,
    pub lines_out: u64,
    pub events: u64,
    pub matched: u64,
    /// Enrichment objects written truncated (`--max-enrichment-bytes`).
    pub enrichments_truncated: u64,
    pub bytes_in: u64,
    /// Per error kind, in [`ErrorKind::ALL`] order.
    pub errors: Vec<(&'static str, u64)>,
    /// Matches per rule id, every loaded rule (zero included), in rule order. Two rules that
    /// share an id are summed under it, so each id appears once.
    pub rule_hits: Vec<(String, u64)>,
    /// Hits per correlation id, every loaded correlation, in order.
    pub correlation_hits: Vec<(String, u64)>,
    pub correlation: CorrelationStats,
    /// Per rule id, only rules with at least one.
    pub script_budget_overruns: Vec<(String, u64)>,
    pub script_runtime_errors: Vec<(String, u64)>,
    pub kv_live_keys: u64,
    pub kv_live_bytes: u64,
    pub kv_evicted_keys: u64,
    pub kv_truncated_values: u64,
    pub threshold_keys: u64,
    pub threshold_evictions: u64,
    pub time_fallbacks: u64,
    pub future_times: u64,
    pub n_rules: u64,
    pub n_correlations: u64,
    pub elapsed_secs: f64,
    /// State saves, loads and reloads (`--state`, SIGHUP, `--watch`), kept outside the
    /// processor by the run's lifecycle job.
    pub state: StateCountersSnapshot,
}

impl Snapshot {
    /// Reads every counter of `processor`; `elapsed_secs` is the time since the run started.
    pub fn take(processor: &Processor, elapsed_secs: f64) -> Snapshot {
        let counters = processor.counters();
        let engine = processor.engine();
        let engine_stats = engine.stats();
        let script_stats = engine.script_stats();
        let rule_ids: Vec<&str> = engine.rules().iter().map(|r| r.meta.id.as_str()).collect();
        let correlation_ids: Vec<&str> = engine
            .correlations()
            .iter()
            .map(|c| c.meta.id.as_str())
            .collect();
        let nonzero = |counts: Vec<(String, u64)>| -> Vec<(String, u64)> {
            counts.into_iter().filter(|(_, n)| *n > 0).collect()
        };
        // Counts of engines a reload replaced, added to the ids still loaded: a rule's
        // counter never goes backwards across a reload.
        let retired = processor.retired();
        let plus = |mut counts: Vec<(String, u64)>, old: &HashMap<String, u64>| {
            for (id, n) in &mut counts {
                *n += old.get(id.as_str()).copied().unwrap_or(0);
            }
            counts
        };
        let mut correlation = engine_stats.correlation.clone();
        correlation.evicted_groups += retired.evicted_groups;
        correlation.dropped_entries += retired.dropped_entries;
        correlation.late_events += retired.late_events;
        Snapshot {
            lines_in: counters.lines_in,
            lines_out: counters.lines_out,
            events: counters.events,
            matched: counters.matched,
            enrichments_truncated: counters.enrichments_truncated,
            bytes_in: counters.bytes_in,
            errors: ErrorKind::ALL
                .iter()
                .map(|&kind| (kind.as_str(), counters.error_count(kind)))
                .collect(),
            rule_hits: plus(
                by_id(&rule_ids, &engine_stats.rule_hits),
                &retired.rule_hits,
            ),
            correlation_hits: plus(
                by_id(&correlation_ids, &engine_stats.correlation_hits),
                &retired.correlation_hits,
            ),
            correlation,
            script_budget_overruns: nonzero(plus(
                by_id(&rule_ids, &script_stats.budget_overruns),
                &retired.budget_overruns,
            )),
            script_runtime_errors: nonzero(plus(
                by_id(&rule_ids, &script_stats.runtime_errors),
                &retired.runtime_errors,
            )),
            kv_live_keys: script_stats.kv.live_keys,
            kv_live_bytes: script_stats.kv.live_bytes,
            kv_evicted_keys: script_stats.kv.evicted_keys + retired.kv_evicted_keys,
            kv_truncated_values: script_stats.kv.truncated_values + retired.kv_truncated_values,
            threshold_keys: script_stats.threshold_keys,
            threshold_evictions: script_stats.threshold_evictions + retired.threshold_evictions,
            time_fallbacks: engine_stats.time_fallbacks + retired.time_fallbacks,
            future_times: engine_stats.future_times + retired.future_times,
            n_rules: rule_ids.len() as u64,
            n_correlations: correlation_ids.len() as u64,
            elapsed_secs,
            state: StateCountersSnapshot::default(),
        }
    }

    /// The counters as JSON fields, shared by the final and the interval lines. Per-rule maps
    /// list only ids with at least one hit, as the `--stats` line always did.
    fn counter_fields(&self) -> Map<String, Value> {
        let map = |pairs: &[(String, u64)]| -> Map<String, Value> {
            pairs
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(id, n)| (id.clone(), (*n).into()))
                .collect()
        };
        let errors: Map<String, Value> = self
            .errors
            .iter()
            .map(|(kind, n)| ((*kind).to_string(), (*n).into()))
            .collect();
        let value = json!({
            "lines_in": self.lines_in,
            "lines_out": self.lines_out,
            "events": self.events,
            "matched": self.matched,
            "enrichments_truncated": self.enrichments_truncated,
            "bytes_in": self.bytes_in,
            "errors": errors,
            "rule_hits": map(&self.rule_hits),
            "correlation_hits": map(&self.correlation_hits),
            "correlation": {
                "live_groups": self.correlation.live_groups,
                "live_entries": self.correlation.live_entries,
                "evicted_groups": self.correlation.evicted_groups,
                "dropped_entries": self.correlation.dropped_entries,
                "late_events": self.correlation.late_events,
            },
            "script": {
                "budget_overruns": map(&self.script_budget_overruns),
                "runtime_errors": map(&self.script_runtime_errors),
                "kv_live_keys": self.kv_live_keys,
                "kv_live_bytes": self.kv_live_bytes,
                "kv_evicted_keys": self.kv_evicted_keys,
                "kv_truncated_values": self.kv_truncated_values,
                "threshold_keys": self.threshold_keys,
                "threshold_evictions": self.threshold_evictions,
            },
            "time_fallbacks": self.time_fallbacks,
            "future_times": self.future_times,
            "elapsed_secs": self.elapsed_secs,
            "state": {
                "saves_ok": self.state.saves_ok,
                "saves_failed": self.state.saves_failed,
                "last_save_bytes": self.state.last_save_bytes,
                "last_save_micros": self.state.last_save_micros,
                "loaded_groups": self.state.loaded_groups,
                "loaded_dropped": self.state.loaded_dropped,
                "load_failed": self.state.load_failed,
                "reloads_ok": self.state.reloads_ok,
                "reloads_failed": self.state.reloads_failed,
            },
        });
        match value {
            Value::Object(fields) => fields,
            _ => Map::new(),
        }
    }

    /// The `--stats` line written at exit: the counters, what only the loop knows at its end
    /// (how it ended, bytes written), and rates since the start.
    pub fn final_line(&self, summary: &RunSummary) -> Value {
        let ending = match summary.ending {
            Ending::Eof => "eof",
            Ending::Stopped => "signal",
            Ending::BrokenPipe => "broken_pipe",
            Ending::ReadError => "read_error",
        };
        let mut line = Map::new();
        line.insert("level".into(), "info".into());
        line.insert("msg".into(), "stats".into());
        line.insert("ending".into(), ending.into());
        line.extend(self.counter_fields());
        line.insert("bytes_out".into(), summary.bytes_out.into());
        line.insert("discarded_bytes".into(), summary.discarded_bytes.into());
        // Only with --listen, so that the stdin stats line keeps its shape.
        if let Some(connections) = summary.connections {
            line.insert(
                "connections".into(),
                json!({
                    "accepted": connections.accepted,
                    "refused": connections.refused,
                    "open": connections.open,
                }),
            );
        }
        let rates = Rates::between(None, self);
        line.insert("events_per_sec".into(), rates.events_per_sec.into());
        line.insert("mb_per_sec".into(), rates.mb_per_sec.into());
        Value::Object(line)
    }

    /// A `--stats-interval` line: the counters so far, with rates over the interval since
    /// `previous` (the last interval line's snapshot) and since the start.
    pub fn interval_line(&self, previous: Option<&Snapshot>) -> Value {
        let mut line = Map::new();
        line.insert("level".into(), "info".into());
        line.insert("msg".into(), "stats interval".into());
        line.extend(self.counter_fields());
        let interval = Rates::between(Some(previous.unwrap_or(&Snapshot::zero())), self);
        line.insert(
            "rates".into(),
            json!({
                "interval": interval.to_json(),
                "since_start": Rates::between(None, self).to_json(),
            }),
        );
        Value::Object(line)
    }

    /// A snapshot of a run that has not started: every counter zero.
    fn zero() -> Snapshot {
        Snapshot {
            lines_in: 0,
            lines_out: 0,
            events: 0,
            matched: 0,
            enrichments_truncated: 0,
            bytes_in: 0,
            errors: Vec::new(),
            rule_hits: Vec::new(),
            correlation_hits: Vec::new(),
            correlation: CorrelationStats::default(),
            script_budget_overruns: Vec::new(),
            script_runtime_errors: Vec::new(),
            kv_live_keys: 0,
            kv_live_bytes: 0,
            kv_evicted_keys: 0,
            kv_truncated_values: 0,
            threshold_keys: 0,
            threshold_evictions: 0,
            time_fallbacks: 0,
            future_times: 0,
            n_rules: 0,
            n_correlations: 0,
            elapsed_secs: 0.0,
            state: StateCountersSnapshot::default(),
        }
    }

    /// The Prometheus text exposition format (version 0.0.4) of this snapshot.
    pub fn prometheus(&self) -> String {
        let mut page = Page::default();
        page.counter("vigil_lines_in_total", "Input lines read.", self.lines_in);
        page.counter(
            "vigil_lines_out_total",
            "Output lines written.",
            self.lines_out,
        );
        page.counter(
            "vigil_events_total",
            "Events evaluated (each record counts with --unwrap).",
            self.events,
        );
        page.counter(
            "vigil_events_matched_total",
            "Events that carried at least one match or correlation.",
            self.matched,
        );
        page.counter(
            "vigil_input_bytes_total",
            "Input bytes read, newlines included.",
            self.bytes_in,
        );
        page.labelled_counter(
            "vigil_line_errors_total",
            "Input lines that were not a usable JSON object, by kind.",
            "kind",
            self.errors.iter().map(|(kind, n)| (*kind, *n)),
        );
        page.labelled_counter(
            "vigil_rule_matches_total",
            "Matches per loaded rule (by rule id).",
            "rule",
            self.rule_hits.iter().map(|(id, n)| (id.as_str(), *n)),
        );
        page.labelled_counter(
            "vigil_correlation_matches_total",
            "Hits per loaded correlation (by correlation id).",
            "rule",
            self.correlation_hits
                .iter()
                .map(|(id, n)| (id.as_str(), *n)),
        );
        page.gauge(
            "vigil_correlation_groups",
            "Correlation groups held in memory.",
            self.correlation.live_groups,
        );
        page.gauge(
            "vigil_correlation_entries",
            "Correlation entries held over all groups.",
            self.correlation.live_entries,
        );
        page.counter(
            "vigil_correlation_groups_evicted_total",
            "Correlation groups evicted by the --max-groups or --max-entries bound.",
            self.correlation.evicted_groups,
        );
        page.counter(
            "vigil_correlation_entries_dropped_total",
            "Correlation entries dropped because a group reached --max-group-entries.",
            self.correlation.dropped_entries,
        );
        page.counter(
            "vigil_correlation_late_events_total",
            "Matches ignored because their event time was behind their group's window.",
            self.correlation.late_events,
        );
        page.labelled_counter(
            "vigil_script_budget_overruns_total",
            "Panther rule function calls that ran out of --step-budget, by rule id.",
            "rule",
            self.script_budget_overruns
                .iter()
                .map(|(id, n)| (id.as_str(), *n)),
        );
        page.labelled_counter(
            "vigil_script_runtime_errors_total",
            "Panther rule function runtime errors, by rule id.",
            "rule",
            self.script_runtime_errors
                .iter()
                .map(|(id, n)| (id.as_str(), *n)),
        );
        page.gauge(
            "vigil_kv_keys",
            "Keys held by the Panther caching helpers' state.",
            self.kv_live_keys,
        );
        page.gauge(
            "vigil_kv_bytes",
            "Bytes of keys and string-set members in that state.",
            self.kv_live_bytes,
        );
        page.counter(
            "vigil_kv_evicted_keys_total",
            "Keys of that state evicted by --max-kv-keys or --max-kv-bytes.",
            self.kv_evicted_keys,
        );
        page.counter(
            "vigil_kv_truncated_values_total",
            "String-set members dropped because one set exceeded the byte budget.",
            self.kv_truncated_values,
        );
        page.gauge(
            "vigil_threshold_keys",
            "Live (rule, dedup string) counters of Panther rules with a Threshold.",
            self.threshold_keys,
        );
        page.counter(
            "vigil_threshold_evictions_total",
            "Threshold counters evicted by --max-threshold-keys.",
            self.threshold_evictions,
        );
        page.counter(
            "vigil_time_fallbacks_total",
            "Events without a parseable time field, timed by their arrival.",
            self.time_fallbacks,
        );
        page.counter(
            "vigil_future_times_total",
            "Events more than an hour ahead of the clock, kept out of correlations.",
            self.future_times,
        );
        page.gauge("vigil_rules", "Detection rules loaded.", self.n_rules);
        page.gauge(
            "vigil_correlations",
            "Correlations loaded.",
            self.n_correlations,
        );
        page.counter(
            "vigil_enrichments_truncated_total",
            "Enrichment objects cut to fit --max-enrichment-bytes.",
            self.enrichments_truncated,
        );
        page.counter(
            "vigil_state_saves_total",
            "State files saved (--state).",
            self.state.saves_ok,
        );
        page.counter(
            "vigil_state_save_failures_total",
            "State saves that failed (disk full, permissions).",
            self.state.saves_failed,
        );
        page.gauge(
            "vigil_state_last_save_bytes",
            "Size of the last state file written.",
            self.state.last_save_bytes,
        );
        page.header(
            "vigil_state_last_save_seconds",
            "Time the last state save took (export, encode, write, fsync, rename).",
            "gauge",
        );
        page.sample(
            "vigil_state_last_save_seconds",
            None,
            &format_float(self.state.last_save_micros as f64 / 1e6),
        );
        page.gauge(
            "vigil_state_loaded_groups",
            "Correlation groups restored from the state file at start.",
            self.state.loaded_groups,
        );
        page.gauge(
            "vigil_state_loaded_dropped",
            "State items of the file dropped at start (their rule is gone or changed).",
            self.state.loaded_dropped,
        );
        page.gauge(
            "vigil_state_load_failed",
            "1 when the state file at start was unusable and the run started empty.",
            self.state.load_failed,
        );
        page.counter(
            "vigil_reloads_total",
            "Rule reloads that took effect (SIGHUP, --watch).",
            self.state.reloads_ok,
        );
        page.counter(
            "vigil_reload_failures_total",
            "Rule reloads refused because the new rules had errors.",
            self.state.reloads_failed,
        );
        page.header(
            "vigil_uptime_seconds",
            "Seconds since the run started.",
            "gauge",
        );
        page.sample(
            "vigil_uptime_seconds",
            None,
            &format_float(self.elapsed_secs),
        );
        page.text
    }
}

/// Sums `counts[i]` under `ids[i]`, keeping the order in which ids first appear.
fn by_id(ids: &[&str], counts: &[u64]) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::with_capacity(ids.len());
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
    for (id, count) in ids.iter().zip(counts) {
        match seen.get(id) {
            Some(&idx) => out[idx].1 += count,
            None => {
                seen.insert(id, out.len());
                out.push(((*id).to_string(), *count));
            }
        }
    }
    out
}

/// Rates between two snapshots (or since the start).
struct Rates {
    secs: f64,
    lines_in_per_sec: f64,
    events_per_sec: f64,
    matched_per_sec: f64,
    mb_per_sec: f64,
}

impl Rates {
    fn between(previous: Option<&Snapshot>, current: &Snapshot) -> Rates {
        let zero = Snapshot::zero();
        let previous = previous.unwrap_or(&zero);
        let secs = current.elapsed_secs - previous.elapsed_secs;
        let per_sec = |now: u64, before: u64| {
            if secs > 0.0 {
                now.saturating_sub(before) as f64 / secs
            } else {
                0.0
            }
        };
        Rates {
            secs,
            lines_in_per_sec: per_sec(current.lines_in, previous.lines_in),
            events_per_sec: per_sec(current.events, previous.events),
            matched_per_sec: per_sec(current.matched, previous.matched),
            mb_per_sec: per_sec(current.bytes_in, previous.bytes_in) / 1_000_000.0,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "secs": self.secs,
            "lines_in_per_sec": self.lines_in_per_sec,
            "events_per_sec": self.events_per_sec,
            "matched_per_sec": self.matched_per_sec,
            "mb_per_sec": self.mb_per_sec,
        })
    }
}

/// A Prometheus text page being written.
#[derive(Default)]
struct Page {
    text: String,
}

impl Page {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        self.text.push_str("# HELP ");
        self.text.push_str(name);
        self.text.push(' ');
        self.text.push_str(&escape_help(help));
        self.text.push_str("\n# TYPE ");
        self.text.push_str(name);
        self.text.push(' ');
        self.text.push_str(kind);
        self.text.push('\n');
    }

    fn sample(&mut self, name: &str, label: Option<(&str, &str)>, value: &str) {
        self.text.push_str(name);
        if let Some((key, label_value)) = label {
            self.text.push('{');
            self.text.push_str(key);
            self.text.push_str("=\"");
            self.text.push_str(&escape_label_value(label_value));
            self.text.push_str("\"}");
        }
        self.text.push(' ');
        self.text.push_str(value);
        self.text.push('\n');
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, "counter");
        self.sample(name, None, &value.to_string());
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, "gauge");
        self.sample(name, None, &value.to_string());
    }

    fn labelled_counter<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        samples: impl Iterator<Item = (&'a str, u64)>,
    ) {
        self.header(name, help, "counter");
        for (label_value, value) in samples {
            self.sample(name, Some((label, label_value)), &value.to_string());
        }
    }
}

/// Escapes a `# HELP` text: backslash and line feed (exposition format 0.0.4).
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Escapes a label value: backslash, double quote and line feed (exposition format 0.0.4).
pub fn escape_label_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A float sample value as Prometheus reads it (Go `ParseFloat` syntax).
fn format_float(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else if value.is_nan() {
        "NaN".to_string()
    } else if value > 0.0 {
        "+Inf".to_string()
    } else {
        "-Inf".to_string()
    }
}

/// The housekeeping job of `--stats-interval` and `--metrics`.
pub struct Metrics {
    start: Instant,
    /// The lifecycle job's counters, read into every snapshot.
    state: Option<Arc<StateCounters>>,
    /// `--stats-interval`, with the time of the next line and the last line's snapshot.
    interval: Option<IntervalLines>,
    /// `--metrics`: the page the server thread serves, and when to render it next.
    published: Option<Published>,
}

struct IntervalLines {
    every: Duration,
    next: Instant,
    previous: Option<Snapshot>,
}

struct Published {
    page: Arc<Mutex<String>>,
    next: Instant,
}

impl Metrics {
    /// `start` is when the run started (the origin of `elapsed_secs`).
    pub fn new(start: Instant, stats_interval: Option<Duration>) -> Metrics {
        Metrics {
            start,
            state: None,
            interval: stats_interval.map(|every| IntervalLines {
                every,
                next: start + every,
                previous: None,
            }),
            published: None,
        }
    }

    /// Serves `GET /metrics` on `listener` from now on, starting with `processor`'s counters.
    pub fn serve(&mut self, listener: TcpListener, processor: &Processor) -> io::Result<()> {
        let page = Arc::new(Mutex::new(self.snapshot(processor).prometheus()));
        let server_page = Arc::clone(&page);
        std::thread::Builder::new()
            .name("vigil-metrics".to_string())
            .spawn(move || serve_forever(&listener, &server_page))?;
        self.published = Some(Published {
            page,
            next: Instant::now() + PUBLISH_PERIOD,
        });
        Ok(())
    }

    /// Reads the state, save and reload counters of `counters` into every snapshot.
    pub fn with_state(mut self, counters: Arc<StateCounters>) -> Metrics {
        self.state = Some(counters);
        self
    }

    /// Every counter now: the processor's and the lifecycle job's.
    pub fn snapshot(&self, processor: &Processor) -> Snapshot {
        let mut snapshot = Snapshot::take(processor, self.start.elapsed().as_secs_f64());
        if let Some(state) = &self.state {
            snapshot.state = state.snapshot();
        }
        snapshot
    }

    fn publish(&mut self, processor: &Processor) {
        let Some(published) = &self.published else {
            return;
        };
        let text = self.snapshot(processor).prometheus();
        // A poisoned lock only means the server thread panicked while copying: the string is
        // still whole, so keep publishing into it.
        let mut page = match published.page.lock() {
            Ok(page) => page,
            Err(poisoned) => poisoned.into_inner(),
        };
        *page = text;
    }
}

impl Housekeeping for Metrics {
    fn period(&self) -> Option<Duration> {
        let interval = self.interval.as_ref().map(|lines| lines.every);
        let publish = self.published.as_ref().map(|_| PUBLISH_PERIOD);
        match (interval, publish) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn tick(&mut self, processor: &mut Processor) {
        let now = Instant::now();
        if self.published.as_ref().is_some_and(|p| now >= p.next) {
            self.publish(processor);
            if let Some(published) = &mut self.published {
                published.next = now + PUBLISH_PERIOD;
            }
        }
        let due = self
            .interval
            .as_ref()
            .is_some_and(|lines| now >= lines.next);
        if due {
            let snapshot = self.snapshot(processor);
            if let Some(lines) = &mut self.interval {
                let line = snapshot.interval_line(lines.previous.as_ref());
                pio::write_json_line(&mut io::stderr(), &line);
                lines.previous = Some(snapshot);
                // Skip missed beats (a long stall) instead of writing a burst of lines.
                while lines.next <= now {
                    lines.next += lines.every;
                }
            }
        }
    }

    fn finish(&mut self, processor: &mut Processor) {
        // The last counts stay visible to a scrape until the process exits.
        self.publish(processor);
    }
}

/// Resolves `--metrics ADDR` and binds it; a non-loopback address needs `allow_any`.
pub fn bind(addr: &str, allow_any: bool) -> anyhow::Result<TcpListener> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|err| anyhow::format_err!("--metrics {addr}: {err}"))?
        .collect();
    if addrs.is_empty() {
        anyhow::bail!("--metrics {addr}: the address resolves to nothing");
    }
    if let Some(open) = addrs.iter().find(|a| !allow_any && !a.ip().is_loopback()) {
        anyhow::bail!(
            "--metrics {addr}: {} is not a loopback address; add --metrics-any to serve metrics on it",
            open.ip()
        );
    }
    TcpListener::bind(addrs.as_slice())
        .map_err(|err| anyhow::format_err!("--metrics {addr}: cannot listen: {err}"))
}

fn serve_forever(listener: &TcpListener, page: &Mutex<String>) {
    for stream in listener.incoming() {
        // A failed accept (a client that reset before we took it, too many open files) is
        // that client's problem; the next one may succeed.
        match stream {
            Ok(stream) => {
                let _ = answer(stream, page);
            }
            // Back off a little, so a lasting failure (no file descriptors left) does not
            // spin this thread.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Reads one request head and writes one response, then closes the connection.
fn answer(mut stream: TcpStream, page: &Mutex<String>) -> io::Result<()> {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let head = match read_head(&mut stream, deadline) {
        Ok(Some(head)) => head,
        Ok(None) => {
            respond(&mut stream, "431 Request Header Fields Too Large", "")?;
            return linger(stream, deadline);
        }
        Err(err) => return Err(err),
    };
    let request_line = head.lines().next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        return respond(&mut stream, "400 Bad Request", "");
    };
    if !version.starts_with("HTTP/1.") {
        return respond(&mut stream, "400 Bad Request", "");
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return respond(&mut stream, "404 Not Found", "not found\n");
    }
    if method != "GET" && method != "HEAD" {
        return respond(&mut stream, "405 Method Not Allowed", "");
    }
    let body = match page.lock() {
        Ok(page) => page.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let head_only = method == "HEAD";
    write_response(&mut stream, "200 OK", &body, head_only)
}

/// The time left before `deadline`, as a read timeout; an error once it has passed.
fn time_left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client took too long",
        ));
    }
    Ok(left)
}

/// The request head up to the blank line; `None` when it exceeds [`MAX_REQUEST_BYTES`].
/// Every read waits at most until `deadline`.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> io::Result<Option<String>> {
    let mut head = Vec::new();
    let mut buf = [0; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
        }
        if head.len() > MAX_REQUEST_BYTES {
            return Ok(None);
        }
        stream.set_read_timeout(Some(time_left(deadline)?))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            // The client closed before the blank line: answer what it sent, if anything.
            return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
        }
        head.extend_from_slice(&buf[..n]);
    }
}

/// Closes after an early answer without resetting the connection: closing a socket with
/// unread input makes the kernel send a reset, which can destroy the answer before the client
/// reads it. So half-close, then discard what the client still sends (bounded in bytes and by
/// `deadline`), as HTTP servers' "lingering close" does.
fn linger(mut stream: TcpStream, deadline: Instant) -> io::Result<()> {
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut buf = [0; 4096];
    let mut left = 16 * MAX_REQUEST_BYTES;
    while left > 0 {
        let Ok(wait) = time_left(deadline) else {
            break;
        };
        stream.set_read_timeout(Some(wait))?;
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
    Ok(())
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    write_response(stream, status, body, false)
}

fn write_response(
    stream: &mut TcpStream,
    status: &str,
    body: &str,
    head_only: bool,
) -> io::Result<()> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(body);
    }
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label_value("x\ny"), "x\\ny");
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    }

    #[test]
    fn duplicate_ids_are_summed_in_first_order() {
        let got = by_id(&["b", "a", "b"], &[1, 2, 3]);
        assert_eq!(got, vec![("b".to_string(), 4), ("a".to_string(), 2)]);
    }

    #[test]
    fn non_loopback_is_refused_without_any() {
        let err = bind("0.0.0.0:0", false).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("not a loopback address")));
        assert!(bind("127.0.0.1:0", false).is_ok());
    }

    #[test]
    fn rates_over_an_interval() {
        let mut before = Snapshot::zero();
        before.events = 10;
        before.elapsed_secs = 1.0;
        let mut after = before.clone();
        after.events = 30;
        after.elapsed_secs = 3.0;
        let rates = Rates::between(Some(&before), &after);
        assert_eq!(rates.events_per_sec, 10.0);
        assert_eq!(Rates::between(None, &after).events_per_sec, 10.0);
    }
}
