//! The NDJSON protocol with the host pipeline.
//!
//! [`Processor`] turns one input line into its output line(s) with no I/O of its own: it
//! decodes, routes `--payload` / `--unwrap`, calls the engine, and asks `crate::enrich` for the
//! bytes to write. The stdin/stdout loop (framing, flush policy, signals) lives in [`io`] and
//! only moves bytes, so tests and benches can drive a `Processor` directly.
//!
//! Per input line, exactly one output line (or one per record with `--unwrap`), unless
//! `--only-matches` drops the lines without detections:
//! - a JSON object without detections: the line as it came (a trailing `\r` removed, and a
//!   UTF-8 byte order mark at the very start of the input);
//! - a JSON object with detections: the same bytes with the enrichment spliced in;
//! - anything else: an error record `{"message": "<raw text>", "vigil": {"error": "<kind>"}}`
//!   (or, with `--invalid pass`, the raw bytes), counted per kind.

pub mod io;
pub mod listen;
mod pipeline;

pub use pipeline::ReadyLine;
use pipeline::{MatchContext, Outcome, Pipeline};

use serde_json::Value;
use serde_json::value::RawValue;

use std::sync::Arc;

use crate::enrich;
use crate::eval::script::PreVerdict;
use crate::eval::{Detections, Engine};
use crate::event::{Event, EventBuffers, ParseError, json_type};

/// What to do with lines that are not JSON objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidPolicy {
    /// Write a valid JSON error record carrying the raw text (default).
    Wrap,
    /// Write the raw bytes unchanged (plain Unix pipes).
    Pass,
}

#[derive(Clone, Debug)]
pub struct ProtocolConfig {
    /// Top-level key of the enrichment object (`--field`).
    pub field: String,
    /// Longest line accepted (`--max-line-bytes`); longer lines are error records.
    pub max_line_bytes: usize,
    pub invalid: InvalidPolicy,
    /// Write only lines that carry detections (`--only-matches`).
    pub only_matches: bool,
    /// Evaluate the JSON object held (as a string or an object) in the first of these
    /// top-level fields, and enrich the outer record (`--payload`).
    pub payload: Vec<String>,
    /// Expand `{"<key>": [...]}` into one output line per record (`--unwrap Records`).
    pub unwrap: Option<String>,
    /// Threads that decode and match lines (`--threads`); 1 keeps everything on the calling
    /// thread. Correlation, counters and output stay on the calling thread, in input order.
    pub threads: usize,
    /// Largest enrichment object written for one event (`--max-enrichment-bytes`); a larger
    /// one is written truncated (see `enrich::write_enrichment_bounded`).
    pub max_enrichment_bytes: usize,
}

/// Default of [`ProtocolConfig::max_enrichment_bytes`]: far above what any real match writes
/// (a few hundred bytes a match), far below what rule code could make it.
pub const DEFAULT_MAX_ENRICHMENT_BYTES: usize = 256 * 1024;

impl Default for ProtocolConfig {
    fn default() -> ProtocolConfig {
        ProtocolConfig {
            field: "vigil".to_string(),
            max_line_bytes: 1024 * 1024,
            invalid: InvalidPolicy::Wrap,
            only_matches: false,
            payload: Vec::new(),
            unwrap: None,
            threads: 1,
            max_enrichment_bytes: DEFAULT_MAX_ENRICHMENT_BYTES,
        }
    }
}

/// Why a line (or a record, or a payload) could not be evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    InvalidUtf8,
    InvalidJson,
    NotObject,
    TooLong,
    PayloadMissing,
    PayloadInvalid,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::InvalidUtf8,
        ErrorKind::InvalidJson,
        ErrorKind::NotObject,
        ErrorKind::TooLong,
        ErrorKind::PayloadMissing,
        ErrorKind::PayloadInvalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidUtf8 => "invalid_utf8",
            ErrorKind::InvalidJson => "invalid_json",
            ErrorKind::NotObject => "not_object",
            ErrorKind::TooLong => "too_long",
            ErrorKind::PayloadMissing => "payload_missing",
            ErrorKind::PayloadInvalid => "payload_invalid",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One problem with one line, for the rate-limited stderr report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub kind: ErrorKind,
    pub detail: String,
}

/// Counts kept by the processor, reported by `--stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub lines_in: u64,
    pub lines_out: u64,
    /// Events evaluated (records count one each with `--unwrap`).
    pub events: u64,
    /// Events that carried at least one match or correlation.
    pub matched: u64,
    pub bytes_in: u64,
    pub errors: [u64; ErrorKind::ALL.len()],
    /// Enrichment objects written truncated (`--max-enrichment-bytes`).
    pub enrichments_truncated: u64,
}

impl Counters {
    pub fn error_count(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()]
    }
}

pub struct Processor {
    engine: Engine,
    config: ProtocolConfig,
    counters: Counters,
    detections: Detections,
    enrichment: Vec<u8>,
    /// Errors of the line being processed; drained by the caller through [`Processor::take_errors`].
    errors: Vec<LineError>,
    /// Storage of the event views, reused from line to line.
    buffers: EventBuffers,
    /// The matching threads, with `threads` > 1.
    pool: Option<Arc<rayon::ThreadPool>>,
    /// Lines queued for the matching threads (see [`Processor::queue_line`]).
    pipeline: Pipeline,
    /// Script answers of the line being finished, found by a matching thread.
    verdicts: Vec<PreVerdict>,
    /// Bumped by every [`Processor::replace_engine`]: queued lines matched by an older engine
    /// are processed again.
    generation: u64,
    /// What engines replaced by reloads had counted.
    retired: RetiredCounts,
}

/// The counts of engines replaced by a reload ([`Processor::replace_engine`]), so that the
/// run's counters never go backwards (Prometheus counters must not): a rule id that survives a
/// reload keeps its count, and run-wide totals keep theirs. Per-rule counts are keyed by id,
/// so only ids loaded at some point are held.
#[derive(Clone, Debug, Default)]
pub struct RetiredCounts {
    pub rule_hits: std::collections::HashMap<String, u64>,
    pub correlation_hits: std::collections::HashMap<String, u64>,
    pub budget_overruns: std::collections::HashMap<String, u64>,
    pub runtime_errors: std::collections::HashMap<String, u64>,
    pub evicted_groups: u64,
    pub dropped_entries: u64,
    pub late_events: u64,
    pub time_fallbacks: u64,
    pub future_times: u64,
    pub kv_evicted_keys: u64,
    pub kv_truncated_values: u64,
    pub threshold_evictions: u64,
}

impl RetiredCounts {
    fn add(&mut self, engine: &Engine) {
        let stats = engine.stats();
        let script = engine.script_stats();
        let rule_ids = engine.rules().iter().map(|r| r.meta.id.as_str());
        for (id, n) in rule_ids.clone().zip(&stats.rule_hits) {
            *self.rule_hits.entry(id.to_string()).or_default() += n;
        }
        for (id, n) in rule_ids.clone().zip(&script.budget_overruns) {
            *self.budget_overruns.entry(id.to_string()).or_default() += n;
        }
        for (id, n) in rule_ids.zip(&script.runtime_errors) {
            *self.runtime_errors.entry(id.to_string()).or_default() += n;
        }
        let correlation_ids = engine.correlations().iter().map(|c| c.meta.id.as_str());
        for (id, n) in correlation_ids.zip(&stats.correlation_hits) {
            *self.correlation_hits.entry(id.to_string()).or_default() += n;
        }
        self.evicted_groups += stats.correlation.evicted_groups;
        self.dropped_entries += stats.correlation.dropped_entries;
        self.late_events += stats.correlation.late_events;
        self.time_fallbacks += stats.time_fallbacks;
        self.future_times += stats.future_times;
        self.kv_evicted_keys += script.kv.evicted_keys;
        self.kv_truncated_values += script.kv.truncated_values;
        self.threshold_evictions += script.threshold_evictions;
    }
}

impl Processor {
    pub fn new(engine: Engine, config: ProtocolConfig) -> Processor {
        Processor {
            engine,
            config,
            counters: Counters::default(),
            detections: Detections::default(),
            enrichment: Vec::new(),
            errors: Vec::new(),
            buffers: EventBuffers::default(),
            pool: None,
            pipeline: Pipeline::default(),
            verdicts: Vec::new(),
            generation: 0,
            retired: RetiredCounts::default(),
        }
        .with_pool()
    }

    fn with_pool(mut self) -> Processor {
        if self.config.threads > 1 {
            // This thread matches too (see `pipeline`), so the pool has one thread less.
            // Without a pool (the system refused threads) every line takes the sequential path.
            self.pool = rayon::ThreadPoolBuilder::new()
                .num_threads(self.config.threads - 1)
                .thread_name(|idx| format!("vigil-match-{idx}"))
                .build()
                .ok()
                .map(Arc::new);
        }
        self
    }

    /// Whether lines go through [`Processor::queue_line`]: matching threads (`threads` > 1)
    /// and the plain path (no `--payload`, no `--unwrap`).
    pub fn is_pipelined(&self) -> bool {
        self.pool.is_some() && self.config.payload.is_empty() && self.config.unwrap.is_none()
    }

    fn match_context(&self) -> MatchContext {
        MatchContext {
            matcher: self.engine.matcher(),
            generation: self.generation,
            max_line_bytes: self.config.max_line_bytes,
            confirmer: self.engine.pre_confirmer(),
        }
    }

    /// Queues one complete line (without its `\n`) for the matching threads
    /// ([`Processor::is_pipelined`] only; otherwise it is finished at once). `tag` comes back
    /// with the line. Lines are finished strictly in queue order, by `each`, which hands them
    /// to [`Processor::finish_ready`] and does the caller's per-line work: here, when too many
    /// lines are in flight, or in [`Processor::drain`]. Stops at the first error of `each`.
    pub fn queue_line<E>(
        &mut self,
        line: &[u8],
        arrival_ms: i64,
        tag: u64,
        mut each: impl FnMut(&mut Processor, ReadyLine) -> Result<(), E>,
    ) -> Result<(), E> {
        // The first line of the input is processed whole (its byte order mark).
        let eligible = self.counters.lines_in > 0 || !self.pipeline.is_empty();
        let send = self.pipeline.push(line, arrival_ms, tag, eligible);
        let pool = match &self.pool {
            Some(pool) if self.is_pipelined() => Arc::clone(pool),
            _ => return self.drain(each),
        };
        if send {
            let ctx = self.match_context();
            self.pipeline.submit(&pool, &ctx);
        }
        while self.pipeline.is_full() {
            self.finish_oldest(&mut each)?;
        }
        Ok(())
    }

    /// Finishes every queued line, in order (see [`Processor::queue_line`]): before anything
    /// that must come after them (a line processed whole, an idle flush, the end of input).
    pub fn drain<E>(
        &mut self,
        mut each: impl FnMut(&mut Processor, ReadyLine) -> Result<(), E>,
    ) -> Result<(), E> {
        while self.finish_oldest(&mut each)? {}
        if !self.pipeline.is_empty() {
            let ctx = self.match_context();
            for ready in self.pipeline.take_filling(&ctx) {
                each(self, ready)?;
            }
        }
        Ok(())
    }

    /// Whether lines are queued and not finished.
    pub fn has_queued(&self) -> bool {
        !self.pipeline.is_empty()
    }

    fn finish_oldest<E>(
        &mut self,
        each: &mut impl FnMut(&mut Processor, ReadyLine) -> Result<(), E>,
    ) -> Result<bool, E> {
        let Some(ready) = self.pipeline.take_oldest() else {
            return Ok(false);
        };
        for line in ready {
            each(self, line)?;
        }
        Ok(true)
    }

    /// Finishes one queued line, in order: the stateful half (script confirmation,
    /// correlation), counters and output, appended to `out`.
    pub fn finish_ready(&mut self, ready: ReadyLine, out: &mut Vec<u8>) {
        let ReadyLine {
            outcome,
            arrival_ms,
            generation,
            ..
        } = ready;
        let store = match outcome {
            Outcome::Matched {
                event,
                matches,
                mut verdicts,
                cr,
            } if generation == self.generation => {
                let line = event.text().as_bytes();
                self.counters.lines_in += 1;
                self.counters.bytes_in += line.len() as u64 + 1;
                // `event` hands them to the engine (and this storage back).
                std::mem::swap(&mut self.verdicts, &mut verdicts);
                self.event(line, &event, Some(&matches), arrival_ms, out);
                std::mem::swap(&mut self.verdicts, &mut verdicts);
                pipeline::into_store(event, matches, verdicts, cr)
            }
            Outcome::Matched {
                event,
                matches,
                verdicts,
                cr,
            } => {
                // Matched by an engine a reload has replaced: its rule indexes mean nothing
                // now, so the new engine processes the line whole.
                let store = pipeline::into_store(event, matches, verdicts, cr);
                self.process_line(store.raw(), arrival_ms, out);
                store
            }
            Outcome::Raw(store) => {
                self.process_line(store.raw(), arrival_ms, out);
                store
            }
        };
        self.pipeline.recycle(store);
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Replaces the engine (a hot reload) and returns the old one. Call it only between lines
    /// (a `Housekeeping` tick): the next line is evaluated by the new engine. The matching
    /// threads take the matcher afresh for every chunk, so they follow at once; the matching
    /// scratch, sized for the old rules, starts over.
    pub fn replace_engine(&mut self, engine: Engine) -> Engine {
        self.pipeline.reset_scratch();
        self.generation += 1;
        self.retired.add(&self.engine);
        std::mem::replace(&mut self.engine, engine)
    }

    /// What the engines replaced so far had counted (see [`RetiredCounts`]).
    pub fn retired(&self) -> &RetiredCounts {
        &self.retired
    }

    pub fn config(&self) -> &ProtocolConfig {
        &self.config
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The errors found in the lines processed since the last call.
    pub fn take_errors(&mut self) -> std::vec::Drain<'_, LineError> {
        self.errors.drain(..)
    }

    /// Processes one complete line (without its `\n`) and appends the output to `out`.
    /// `arrival_ms` is the wall-clock time, used when an event carries no parseable time.
    pub fn process_line(&mut self, line: &[u8], arrival_ms: i64, out: &mut Vec<u8>) {
        let mut line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.counters.lines_in == 0 {
            // Files saved by Windows tools start with a UTF-8 byte order mark, which is not
            // JSON: drop it from the first line rather than lose that event as bad input.
            line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
        }
        self.counters.lines_in += 1;
        self.counters.bytes_in += line.len() as u64 + 1;
        if line.len() > self.config.max_line_bytes {
            self.too_long(&line[..self.config.max_line_bytes], line, out);
            return;
        }
        let text = match std::str::from_utf8(line) {
            Ok(text) => text,
            Err(err) => {
                self.invalid(line, ErrorKind::InvalidUtf8, err.to_string(), out);
                return;
            }
        };
        let event = match Event::parse_with(text, &mut self.buffers) {
            Ok(event) => event,
            Err(ParseError::InvalidJson(detail)) => {
                self.invalid(line, ErrorKind::InvalidJson, detail, out);
                return;
            }
            Err(ParseError::NotObject(kind)) => {
                self.invalid(line, ErrorKind::NotObject, kind.to_string(), out);
                return;
            }
        };
        if let Some(key) = &self.config.unwrap
            && let Some(raw) = event.raw(key.as_str())
            && raw.starts_with('[')
        {
            let key = key.clone();
            self.unwrap_records(raw, &key, arrival_ms, out);
            event.into_buffers(&mut self.buffers);
            return;
        }
        self.event(line, &event, None, arrival_ms, out);
        event.into_buffers(&mut self.buffers);
    }

    /// A line longer than `--max-line-bytes`, of which the caller kept only `prefix` (the
    /// first `max_line_bytes` bytes). `--invalid pass` callers stream such lines through
    /// themselves; this writes the error record.
    pub fn process_too_long(&mut self, prefix: &[u8], total_len: u64, out: &mut Vec<u8>) {
        self.counters.lines_in += 1;
        self.counters.bytes_in += total_len + 1;
        self.record_error(
            ErrorKind::TooLong,
            format!(
                "line of {total_len} bytes exceeds --max-line-bytes {}",
                self.config.max_line_bytes
            ),
        );
        self.write_error_record(whole_chars(prefix), ErrorKind::TooLong, out);
    }

    fn too_long(&mut self, prefix: &[u8], line: &[u8], out: &mut Vec<u8>) {
        self.record_error(
            ErrorKind::TooLong,
            format!(
                "line of {} bytes exceeds --max-line-bytes {}",
                line.len(),
                self.config.max_line_bytes
            ),
        );
        match self.config.invalid {
            InvalidPolicy::Wrap => {
                self.write_error_record(whole_chars(prefix), ErrorKind::TooLong, out)
            }
            InvalidPolicy::Pass => self.write_raw(line, out),
        }
    }

    fn invalid(&mut self, line: &[u8], kind: ErrorKind, detail: String, out: &mut Vec<u8>) {
        self.record_error(kind, detail);
        match self.config.invalid {
            InvalidPolicy::Wrap => self.write_error_record(line, kind, out),
            InvalidPolicy::Pass => self.write_raw(line, out),
        }
    }

    fn record_error(&mut self, kind: ErrorKind, detail: String) {
        self.counters.errors[kind.index()] += 1;
        self.errors.push(LineError { kind, detail });
    }

    fn write_error_record(&mut self, raw: &[u8], kind: ErrorKind, out: &mut Vec<u8>) {
        if self.config.only_matches {
            return;
        }
        let text = String::from_utf8_lossy(raw);
        enrich::write_error_record(&self.config.field, &text, kind.as_str(), out);
        out.push(b'\n');
        self.counters.lines_out += 1;
    }

    fn write_raw(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        if self.config.only_matches {
            return;
        }
        out.extend_from_slice(raw);
        out.push(b'\n');
        self.counters.lines_out += 1;
    }

    /// Evaluates and writes each record of the array `raw` (the text under `key`).
    fn unwrap_records(&mut self, raw: &str, key: &str, arrival_ms: i64, out: &mut Vec<u8>) {
        // The line was valid JSON, so its array is too; serde_json splits it (it keeps its
        // depth limit on this path, which is not the hot one).
        let records: Vec<&RawValue> = serde_json::from_str(raw).unwrap_or_default();
        for (idx, record) in records.iter().enumerate() {
            let text = record.get();
            match Event::parse(text) {
                Ok(event) => self.event(text.as_bytes(), &event, None, arrival_ms, out),
                Err(_) => {
                    self.record_error(ErrorKind::NotObject, format!("record {idx} of {key}"));
                    match self.config.invalid {
                        InvalidPolicy::Wrap => {
                            self.write_error_record(text.as_bytes(), ErrorKind::NotObject, out)
                        }
                        InvalidPolicy::Pass => self.write_raw(text.as_bytes(), out),
                    }
                }
            }
        }
    }

    /// Evaluates one JSON object (`raw` is its text, `event` its view) and writes it.
    /// `matches` are its rule matches when a matching thread found them already.
    fn event(
        &mut self,
        raw: &[u8],
        event: &Event<'_>,
        matches: Option<&[usize]>,
        arrival_ms: i64,
        out: &mut Vec<u8>,
    ) {
        self.enrichment.clear();
        // Whether the line holds a value serde_json cannot represent (see `crate::event`).
        let mut broken = false;
        if let Some(matches) = matches {
            self.detections.clear();
            self.detections.matches.extend_from_slice(matches);
            // The scripts' answers found with the matches (`finish_ready`), if any.
            std::mem::swap(&mut self.detections.pre, &mut self.verdicts);
            self.engine.observe(event, arrival_ms, &mut self.detections);
            broken = self.enrich(event);
        } else if self.config.payload.is_empty() {
            broken = self.evaluate(event, arrival_ms);
        } else {
            let found = payload(event, &self.config.payload);
            if event.is_broken() {
                broken = true;
            } else {
                match found {
                    Ok(Payload::Object(text)) => {
                        // The line is valid, so its object value is too.
                        if let Ok(inner) = Event::parse(text) {
                            broken = self.evaluate(&inner, arrival_ms);
                        }
                    }
                    Ok(Payload::Text(idx, text)) => {
                        let name = self.config.payload[idx].clone();
                        let error = match Event::parse(text) {
                            Ok(inner) => match self.evaluate(&inner, arrival_ms) {
                                true => Some(match serde_json::from_str::<Value>(text) {
                                    Err(err) => format!("payload field {name}: {err}"),
                                    Ok(_) => format!("payload field {name}: invalid value"),
                                }),
                                false => None,
                            },
                            Err(ParseError::NotObject(kind)) => {
                                Some(format!("payload field {name} holds a JSON {kind}"))
                            }
                            Err(ParseError::InvalidJson(err)) => {
                                Some(format!("payload field {name}: {err}"))
                            }
                        };
                        if let Some(detail) = error {
                            self.record_error(ErrorKind::PayloadInvalid, detail);
                            self.enrichment.clear();
                            enrich::write_error_marker(
                                ErrorKind::PayloadInvalid.as_str(),
                                &mut self.enrichment,
                            );
                        }
                    }
                    Err((kind, detail)) => {
                        self.record_error(kind, detail);
                        enrich::write_error_marker(kind.as_str(), &mut self.enrichment);
                    }
                }
            }
        }
        if broken {
            // The line is invalid JSON for serde_json, as when every line was parsed whole.
            let detail = match serde_json::from_slice::<Value>(raw) {
                Err(err) => err.to_string(),
                Ok(_) => "invalid value".to_string(),
            };
            self.enrichment.clear();
            self.invalid(raw, ErrorKind::InvalidJson, detail, out);
            return;
        }
        if self.enrichment.is_empty() {
            if !self.config.only_matches {
                out.extend_from_slice(raw);
                out.push(b'\n');
                self.counters.lines_out += 1;
            }
            return;
        }
        let replaced = event.contains_key(self.config.field.as_str())
            && std::str::from_utf8(raw).is_ok_and(|text| {
                // The event already has our key: replace it rather than write a duplicate.
                enrich::replace_key(text, &self.config.field, &self.enrichment, out)
            });
        if !replaced {
            enrich::splice(raw, &self.config.field, &self.enrichment, out);
        }
        out.push(b'\n');
        self.counters.lines_out += 1;
    }

    /// Runs the engine; leaves the enrichment bytes in `self.enrichment` when anything fired.
    /// Returns true when the event turned out broken: it is then not counted and left
    /// no enrichment.
    fn evaluate(&mut self, event: &Event<'_>, arrival_ms: i64) -> bool {
        self.engine
            .evaluate(event, arrival_ms, &mut self.detections);
        self.enrich(event)
    }

    /// Counts the detections of an evaluated event and writes its enrichment; true when the
    /// event turned out broken.
    fn enrich(&mut self, event: &Event<'_>) -> bool {
        if event.is_broken() {
            return true;
        }
        self.counters.events += 1;
        if !self.detections.is_empty() {
            self.counters.matched += 1;
            let truncated = enrich::write_enrichment_bounded(
                &self.engine,
                &self.detections,
                self.config.max_enrichment_bytes,
                &mut self.enrichment,
            );
            self.counters.enrichments_truncated += u64::from(truncated);
        }
        false
    }
}

enum Payload<'a> {
    /// The text of an object value of the line.
    Object(&'a str),
    /// The index of the field in `--payload` and the text of its string value.
    Text(usize, &'a str),
}

/// Finds the event inside the first payload field present.
fn payload<'a>(
    event: &'a Event<'_>,
    fields: &[String],
) -> Result<Payload<'a>, (ErrorKind, String)> {
    let Some((idx, name, raw)) = fields
        .iter()
        .enumerate()
        .find_map(|(idx, name)| event.raw(name.as_str()).map(|raw| (idx, name, raw)))
    else {
        return Err((
            ErrorKind::PayloadMissing,
            format!("none of the payload fields {fields:?} is present"),
        ));
    };
    if raw.starts_with('{') {
        return Ok(Payload::Object(raw));
    }
    match event.get(name.as_str()) {
        Some(Value::String(text)) => Ok(Payload::Text(idx, text)),
        Some(other) => Err((
            ErrorKind::PayloadInvalid,
            format!("payload field {name} holds a {}", json_type(other)),
        )),
        // Not representable: the event is broken, and the caller looks at that first.
        None => Err((
            ErrorKind::PayloadInvalid,
            format!("payload field {name} holds an invalid value"),
        )),
    }
}

/// `prefix` without the start of a UTF-8 character that the cut at `--max-line-bytes` split, so
/// the error record's message neither ends in a replacement character nor exceeds the limit.
fn whole_chars(prefix: &[u8]) -> &[u8] {
    match std::str::from_utf8(prefix) {
        Err(err) if err.error_len().is_none() => &prefix[..err.valid_up_to()],
        _ => prefix,
    }
}
