//! A restricted Python runtime for Panther rule modules, with no Python interpreter.
//!
//! Panther rules are a YAML spec plus a `.py` module whose `rule(event)`, `title(event)`,
//! `severity(event)`, `alert_context(event)` and `dedup(event)` functions decide and describe a
//! match. This module parses such a module ([`Module::parse`]) with a parser of our own for the
//! subset the corpus uses, rejects anything outside it at load time with a diagnostic naming the
//! construct and line, and runs the functions in a tree-walking evaluator ([`Module::call`])
//! with the Panther helper modules implemented natively in Rust.
//!
//! Rule code is untrusted: it can only import the supported modules, has no file, network or
//! process access, and every call runs under a step budget, a recursion limit and size limits
//! on the strings and collections it builds.

mod ast;
mod helpers;
mod interp;
mod lexer;
mod lower;
mod native;
mod necessary;
mod outputs;
mod parser;
mod udm;
mod value;

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde_json::Value as Json;

use crate::event::Event;

/// A parsed rule module. It holds only the syntax tree, so it is `Send + Sync` and shared via
/// `Arc`; every call evaluates the module's top level afresh, so calls never share state except
/// through [`KvState`].
pub struct Module {
    path: String,
    body: Vec<ast::Stmt>,
    functions: BTreeSet<String>,
    /// Unique per parsed module: the key of the per-thread cache of evaluated globals.
    id: u64,
    /// Whether the evaluated top level can be reused between calls (see
    /// `native::globals_reusable`).
    reuse_globals: bool,
}

static NEXT_MODULE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A load-time diagnostic: a syntax error, or `unsupported: <construct>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyDiag {
    pub line: u32,
    pub message: String,
}

impl fmt::Display for PyDiag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// A run-time failure of a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PyError {
    /// The call used up its step budget.
    Budget,
    /// An uncaught Python exception or an exceeded limit, at the line of the statement.
    Runtime { line: u32, message: String },
}

impl fmt::Display for PyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PyError::Budget => f.write_str("step budget exceeded"),
            PyError::Runtime { line, message } => write!(f, "line {line}: {message}"),
        }
    }
}

impl std::error::Error for PyError {}

/// What a call may use besides the event.
pub struct CallCtx<'s> {
    /// Evaluation steps (statements and expression nodes) the call may take.
    pub step_budget: u64,
    /// Cross-event state behind `panther_detection_helpers.caching`.
    pub state: &'s mut dyn KvState,
    /// The current time (`datetime.now()`, cache expiry), in milliseconds since the epoch.
    pub now_ms: i64,
    pub mocks: &'s Mocks,
}

/// Panther test `Mocks:`: each patches a module-level name (function or constant) with a
/// `MagicMock(return_value=...)`, as Panther's test tool does: calling it returns the value,
/// and it is truthy and an instance of `MagicMock`.
#[derive(Clone, Debug, Default)]
pub struct Mocks {
    map: HashMap<String, Json>,
}

impl Mocks {
    pub fn none() -> Mocks {
        Mocks::default()
    }

    pub fn insert(&mut self, object_name: &str, return_value: Json) {
        self.map.insert(object_name.to_string(), return_value);
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The cross-event key-value state of `panther_detection_helpers.caching`. Panther keeps it in
/// DynamoDB; vigil keeps it in the engine's bounded LRU. Times are milliseconds since the
/// epoch; an expiry is in epoch seconds, as Panther's `epoch_seconds` arguments are.
pub trait KvState {
    /// The string set at `key`; empty when absent or expired.
    fn get_string_set(&mut self, key: &str, now_ms: i64) -> Vec<String>;
    /// Replaces the string set at `key`, with an optional expiry.
    fn put_string_set(
        &mut self,
        key: &str,
        values: Vec<String>,
        expires_s: Option<i64>,
        now_ms: i64,
    );
    /// Adds to the string set at `key` and returns the new set.
    fn add_to_string_set(&mut self, key: &str, values: Vec<String>, now_ms: i64) -> Vec<String>;
    /// Removes from the string set at `key` and returns the new set.
    fn remove_from_string_set(
        &mut self,
        key: &str,
        values: Vec<String>,
        now_ms: i64,
    ) -> Vec<String>;
    /// Deletes the string set at `key`.
    fn reset_string_set(&mut self, key: &str);
    /// The counter at `key`; 0 when absent or expired.
    fn get_counter(&mut self, key: &str, now_ms: i64) -> i64;
    /// Adds `by` to the counter at `key` and returns its new value.
    fn increment_counter(&mut self, key: &str, by: i64, now_ms: i64) -> i64;
    /// Deletes the counter at `key`.
    fn reset_counter(&mut self, key: &str);
    /// Sets the expiry of `key` (string set or counter).
    fn set_key_expiration(&mut self, key: &str, epoch_seconds: i64);
}

#[derive(Clone, Debug)]
enum KvEntry {
    Set(Vec<String>),
    Counter(i64),
}

/// A bounded in-memory [`KvState`] for tests and single runs: at most `capacity` keys, the
/// least recently used one evicted first.
pub struct MemoryKv {
    capacity: usize,
    tick: u64,
    entries: HashMap<String, (KvEntry, Option<i64>, u64)>,
}

impl MemoryKv {
    pub fn new(capacity: usize) -> MemoryKv {
        MemoryKv {
            capacity: capacity.max(1),
            tick: 0,
            entries: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn live(&mut self, key: &str, now_ms: i64) -> Option<&mut (KvEntry, Option<i64>, u64)> {
        let expired =
            matches!(self.entries.get(key), Some((_, Some(exp), _)) if exp * 1000 <= now_ms);
        if expired {
            self.entries.remove(key);
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        let entry = self.entries.get_mut(key)?;
        entry.2 = tick;
        Some(entry)
    }

    fn store(&mut self, key: &str, entry: KvEntry, expires: Option<i64>) {
        self.tick += 1;
        if !self.entries.contains_key(key) && self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, _, t))| *t)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries
            .insert(key.to_string(), (entry, expires, self.tick));
    }
}

/// The members of a Panther string set, first occurrence kept, in order (shared by every
/// `KvState`).
pub fn dedup_strings(values: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

impl KvState for MemoryKv {
    fn get_string_set(&mut self, key: &str, now_ms: i64) -> Vec<String> {
        match self.live(key, now_ms) {
            Some((KvEntry::Set(values), _, _)) => values.clone(),
            _ => Vec::new(),
        }
    }

    fn put_string_set(
        &mut self,
        key: &str,
        values: Vec<String>,
        expires_s: Option<i64>,
        _now_ms: i64,
    ) {
        self.store(key, KvEntry::Set(dedup_strings(values)), expires_s);
    }

    fn add_to_string_set(&mut self, key: &str, values: Vec<String>, now_ms: i64) -> Vec<String> {
        let (mut current, expires) = match self.live(key, now_ms) {
            Some((KvEntry::Set(v), exp, _)) => (v.clone(), *exp),
            _ => (Vec::new(), None),
        };
        current.extend(values);
        let current = dedup_strings(current);
        self.store(key, KvEntry::Set(current.clone()), expires);
        current
    }

    fn remove_from_string_set(
        &mut self,
        key: &str,
        values: Vec<String>,
        now_ms: i64,
    ) -> Vec<String> {
        let (mut current, expires) = match self.live(key, now_ms) {
            Some((KvEntry::Set(v), exp, _)) => (v.clone(), *exp),
            _ => return Vec::new(),
        };
        current.retain(|v| !values.contains(v));
        self.store(key, KvEntry::Set(current.clone()), expires);
        current
    }

    fn reset_string_set(&mut self, key: &str) {
        self.entries.remove(key);
    }

    fn get_counter(&mut self, key: &str, now_ms: i64) -> i64 {
        match self.live(key, now_ms) {
            Some((KvEntry::Counter(n), _, _)) => *n,
            _ => 0,
        }
    }

    fn increment_counter(&mut self, key: &str, by: i64, now_ms: i64) -> i64 {
        let (current, expires) = match self.live(key, now_ms) {
            Some((KvEntry::Counter(n), exp, _)) => (*n, *exp),
            _ => (0, None),
        };
        let next = current.saturating_add(by);
        self.store(key, KvEntry::Counter(next), expires);
        next
    }

    fn reset_counter(&mut self, key: &str) {
        self.entries.remove(key);
    }

    fn set_key_expiration(&mut self, key: &str, epoch_seconds: i64) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.1 = Some(epoch_seconds);
        }
    }
}

/// Python truthiness of a converted call result.
pub fn truthy(value: &Json) -> bool {
    match value {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

impl Module {
    /// Parses a module and checks it against the subset: every import must name a supported
    /// module and function, and every constant regex must compile exactly.
    pub fn parse(source: &str, path: &str) -> Result<Module, PyDiag> {
        let body = parser::parse_module(source)?;
        native::check_module(&body)?;
        let mut functions = BTreeSet::new();
        for stmt in &body {
            if let ast::StmtKind::Def(def) = &stmt.kind {
                functions.insert(def.name.clone());
            }
        }
        let reuse_globals = native::globals_reusable(&body);
        Ok(Module {
            path: path.to_string(),
            body,
            functions,
            id: NEXT_MODULE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            reuse_globals,
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The module's code as a stable text (its syntax tree), for fingerprinting a rule's
    /// definition (`--state`, hot reload): two modules with the same text behave the same.
    pub fn definition_text(&self) -> String {
        format!("{:?}", self.body)
    }

    /// True when the module defines a top-level function `name`.
    pub fn has_function(&self, name: &str) -> bool {
        self.functions.contains(name)
    }

    /// Calls a module-level function with the event as its only argument; the Python result
    /// converted to JSON (None->null, bool, int/float->number, str, list/tuple/set->array,
    /// dict->object).
    pub fn call(
        &self,
        name: &str,
        event: &Event<'_>,
        ctx: &mut CallCtx<'_>,
    ) -> Result<Json, PyError> {
        interp::call(self, name, event, ctx)
    }

    /// Lowers a pure predicate function (`rule()` of a single return or guard chain over
    /// `event.get`/`deep_get`, `==`, `in`, `startswith`, `aws_cloudtrail_success`, ...) into an IR
    /// expression that is true exactly when the call returns a truthy value without raising;
    /// or says why it cannot. Exact under the precondition documented in `lower.rs` (the fields
    /// it reads are absent, null or strings), which the IR cannot express; mocks are not
    /// applied.
    pub fn lower(&self, name: &str) -> Result<crate::ir::Expr, String> {
        lower::lower_function(&self.body, name)
    }

    /// An IR expression that holds on every event where `name(event)` returns a truthy value
    /// (a necessary condition, for the rule index; `Const(true)` when nothing can be proven).
    /// See `necessary.rs`.
    pub fn necessary(&self, name: &str) -> crate::ir::Expr {
        necessary::necessary_condition(&self.body, name, &[])
    }

    /// The keys the function `name` (`alert_context`) may return, read from its syntax, and
    /// whether the list is complete; `None` when the module has no such function. See
    /// `outputs.rs`.
    pub fn returned_keys(&self, name: &str) -> Option<(Vec<String>, bool)> {
        outputs::returned_keys(&self.body, name)
    }

    /// [`Module::necessary`], trusting none of the module-level names in `mocked` (a test's
    /// mocks replace them, and a condition taken from the original would not hold).
    pub fn necessary_with_mocks(&self, name: &str, mocked: &[&str]) -> crate::ir::Expr {
        necessary::necessary_condition(&self.body, name, mocked)
    }
}

/// Whether `event` meets the precondition of [`Module::lower`] for `expr`: where it does, the
/// lowered expression and the evaluator agree; where it does not, run the evaluator.
pub fn lowering_precondition_holds(expr: &crate::ir::Expr, event: &Event<'_>) -> bool {
    lower::precondition_holds(expr, event)
}

/// A lowered function ([`Module::lower`]) with the field paths of its precondition collected
/// once, for engines that check the precondition on every event.
#[derive(Clone, Debug)]
pub struct Lowered {
    expr: crate::ir::Expr,
    paths: Vec<lower::PrePath>,
}

impl Lowered {
    pub fn new(expr: crate::ir::Expr) -> Lowered {
        let paths = lower::precondition_paths(&expr);
        Lowered { expr, paths }
    }

    pub fn expr(&self) -> &crate::ir::Expr {
        &self.expr
    }

    /// [`lowering_precondition_holds`] for this expression.
    pub fn precondition_holds(&self, event: &Event<'_>) -> bool {
        lower::paths_precondition_holds(&self.paths, event)
    }
}

#[cfg(test)]
mod tests;
