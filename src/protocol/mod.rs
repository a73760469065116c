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

use serde_json::Value;
use serde_json::value::RawValue;

use crate::enrich;
use crate::eval::{Detections, Engine};

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
}

impl Default for ProtocolConfig {
    fn default() -> ProtocolConfig {
        ProtocolConfig {
            field: "vigil".to_string(),
            max_line_bytes: 1024 * 1024,
            invalid: InvalidPolicy::Wrap,
            only_matches: false,
            payload: Vec::new(),
            unwrap: None,
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
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
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
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(err) => {
                self.invalid(line, ErrorKind::InvalidJson, err.to_string(), out);
                return;
            }
        };
        if !value.is_object() {
            self.invalid(
                line,
                ErrorKind::NotObject,
                json_type(&value).to_string(),
                out,
            );
            return;
        }
        if let Some(key) = &self.config.unwrap
            && let Some(Value::Array(records)) = value.get(key.as_str())
        {
            let key = key.clone();
            self.unwrap_records(text, &key, records, arrival_ms, out);
            return;
        }
        self.event(line, &value, arrival_ms, out);
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

    fn unwrap_records(
        &mut self,
        text: &str,
        key: &str,
        records: &[Value],
        arrival_ms: i64,
        out: &mut Vec<u8>,
    ) {
        // The parsed records drive evaluation; their raw bytes are what gets written.
        let raw = raw_records(text, key);
        for (idx, record) in records.iter().enumerate() {
            let bytes = match &raw {
                Some(raw) if raw.len() == records.len() => raw[idx].get().as_bytes().to_vec(),
                _ => serde_json::to_vec(record).unwrap_or_default(),
            };
            if record.is_object() {
                self.event(&bytes, record, arrival_ms, out);
            } else {
                self.record_error(ErrorKind::NotObject, format!("record {idx} of {key}"));
                match self.config.invalid {
                    InvalidPolicy::Wrap => {
                        self.write_error_record(&bytes, ErrorKind::NotObject, out)
                    }
                    InvalidPolicy::Pass => self.write_raw(&bytes, out),
                }
            }
        }
    }

    /// Evaluates one JSON object (`raw` is its text, `value` its parse) and writes it.
    fn event(&mut self, raw: &[u8], value: &Value, arrival_ms: i64, out: &mut Vec<u8>) {
        self.enrichment.clear();
        if self.config.payload.is_empty() {
            self.evaluate(value, arrival_ms);
        } else {
            match payload(value, &self.config.payload) {
                Ok(Payload::Borrowed(inner)) => self.evaluate(inner, arrival_ms),
                Ok(Payload::Owned(inner)) => self.evaluate(&inner, arrival_ms),
                Err((kind, detail)) => {
                    self.record_error(kind, detail);
                    enrich::write_error_marker(kind.as_str(), &mut self.enrichment);
                }
            }
        }
        if self.enrichment.is_empty() {
            if !self.config.only_matches {
                out.extend_from_slice(raw);
                out.push(b'\n');
                self.counters.lines_out += 1;
            }
            return;
        }
        let replaced = value.get(self.config.field.as_str()).is_some()
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
    fn evaluate(&mut self, value: &Value, arrival_ms: i64) {
        self.counters.events += 1;
        self.engine
            .evaluate(value, arrival_ms, &mut self.detections);
        if !self.detections.is_empty() {
            self.counters.matched += 1;
            enrich::write_enrichment(&self.engine, &self.detections, &mut self.enrichment);
        }
    }
}

enum Payload<'a> {
    Borrowed(&'a Value),
    Owned(Value),
}

/// Finds the event inside the first payload field present.
fn payload<'a>(value: &'a Value, fields: &[String]) -> Result<Payload<'a>, (ErrorKind, String)> {
    let Some((name, inner)) = fields
        .iter()
        .find_map(|name| value.get(name.as_str()).map(|inner| (name, inner)))
    else {
        return Err((
            ErrorKind::PayloadMissing,
            format!("none of the payload fields {fields:?} is present"),
        ));
    };
    match inner {
        Value::Object(_) => Ok(Payload::Borrowed(inner)),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(parsed) if parsed.is_object() => Ok(Payload::Owned(parsed)),
            Ok(parsed) => Err((
                ErrorKind::PayloadInvalid,
                format!("payload field {name} holds a JSON {}", json_type(&parsed)),
            )),
            Err(err) => Err((
                ErrorKind::PayloadInvalid,
                format!("payload field {name}: {err}"),
            )),
        },
        other => Err((
            ErrorKind::PayloadInvalid,
            format!("payload field {name} holds a {}", json_type(other)),
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

/// The raw text of each element of the array under `key`.
fn raw_records<'a>(text: &'a str, key: &str) -> Option<Vec<&'a RawValue>> {
    let top: std::collections::HashMap<std::borrow::Cow<'a, str>, &'a RawValue> =
        serde_json::from_str(text).ok()?;
    let array = top.get(key)?;
    serde_json::from_str(array.get()).ok()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
