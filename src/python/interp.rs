//! The tree-walking evaluator: statements, expressions, scopes, calls and the limits that keep
//! untrusted rule code bounded (step budget, recursion depth, sizes).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::Value as Json;

use super::ast::*;
use super::native;
use super::value::*;
use super::{CallCtx, Module, PyError};
use crate::event::Event;

/// Nested Python calls allowed (the corpus has no recursion; this only stops runaway code).
pub const MAX_DEPTH: usize = 32;
/// Longest string a rule may build, in bytes.
pub const MAX_STR: usize = 1 << 20;
/// Most items a list, tuple, dict or set built by a rule may hold.
pub const MAX_ITEMS: usize = 100_000;

/// Non-local control flow and failures.
pub enum Ctl {
    /// A Python exception: its class name, message and line. Rule code can catch it.
    Exc {
        kind: Rc<str>,
        msg: String,
        line: u32,
    },
    Budget,
    /// A limit was exceeded or the construct cannot run: never catchable.
    Fatal {
        line: u32,
        msg: String,
    },
    Return(Val),
    Break,
    Continue,
}

pub type R<T> = Result<T, Ctl>;

thread_local! {
    /// Evaluated module globals, per thread, for modules whose top level can be reused
    /// (`Module::reuse_globals`): a rule's constants are built once, not on every event.
    static GLOBALS_CACHE: RefCell<HashMap<u64, Scope>> = RefCell::new(HashMap::new());
}

pub struct Frame {
    scopes: Vec<Scope>,
    globals_decl: Vec<String>,
}

pub struct Interp<'a, 'e, 's> {
    pub event: &'a Event<'e>,
    pub ctx: &'a mut CallCtx<'s>,
    steps: std::cell::Cell<u64>,
    pub line: u32,
    pub globals: Scope,
    /// Whether `globals` is shared with the per-thread cache (and so must not be emptied).
    globals_cached: bool,
    depth: usize,
    /// The exceptions being handled, innermost last (for a bare `raise`).
    handling: Vec<(Rc<str>, String)>,
}

pub fn call(
    module: &Module,
    name: &str,
    event: &Event<'_>,
    ctx: &mut CallCtx<'_>,
) -> Result<Json, PyError> {
    let globals: Scope = Rc::new(RefCell::new(Names::default()));
    let mut it = Interp {
        event,
        ctx,
        steps: std::cell::Cell::new(0),
        line: 0,
        globals: globals.clone(),
        globals_cached: false,
        depth: 0,
        handling: Vec::new(),
    };
    take_too_deep();
    let result = it.run(module, name);
    // A module's functions are values in its globals that point back at those globals (an `Rc`
    // cycle), so a scope built for this call alone is emptied here, after the result no longer
    // needs it; otherwise every call would leak its module's globals. A scope kept in the
    // per-thread cache lives on (and is emptied when the cache evicts it).
    let result = result.map(|v| to_json(&v, event, 0));
    if !it.globals_cached {
        it.globals.borrow_mut().clear();
        globals.borrow_mut().clear();
    }
    if take_too_deep() {
        return Err(PyError::Runtime {
            line: it.line,
            message: "a container nested too deeply (or holding itself) was compared or printed"
                .into(),
        });
    }
    match result {
        Ok(json) => Ok(json),
        Err(Ctl::Budget) => Err(PyError::Budget),
        Err(Ctl::Exc { kind, msg, line }) => Err(PyError::Runtime {
            line,
            message: if msg.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}: {msg}")
            },
        }),
        Err(Ctl::Fatal { line, msg }) => Err(PyError::Runtime { line, message: msg }),
        Err(Ctl::Return(_) | Ctl::Break | Ctl::Continue) => Err(PyError::Runtime {
            line: it.line,
            message: "return, break or continue outside a function or loop".into(),
        }),
    }
}

impl<'a, 'e, 's> Interp<'a, 'e, 's> {
    fn run(&mut self, module: &Module, name: &str) -> R<Val> {
        let mut frame = Frame {
            scopes: vec![self.globals.clone()],
            globals_decl: Vec::new(),
        };
        let reuse = module.reuse_globals && self.ctx.mocks.map.is_empty();
        let cached = if reuse {
            GLOBALS_CACHE.with(|c| c.borrow().get(&module.id).cloned())
        } else {
            None
        };
        match cached {
            Some(scope) => {
                self.globals = scope;
                self.globals_cached = true;
            }
            None => {
                self.exec_block(&module.body, &mut frame)?;
                if reuse {
                    GLOBALS_CACHE.with(|c| {
                        let mut c = c.borrow_mut();
                        if c.len() >= 4096 {
                            // Emptied first: each scope is an `Rc` cycle (see `call`).
                            for scope in c.values() {
                                scope.borrow_mut().clear();
                            }
                            c.clear();
                        }
                        c.insert(module.id, self.globals.clone());
                        self.globals_cached = true;
                    });
                }
            }
        }
        let mocks: Vec<(String, Json)> = self
            .ctx
            .mocks
            .map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in mocks {
            self.globals
                .borrow_mut()
                .insert(k, Val::Mock(Rc::new(from_json_plain(&v))));
        }
        let f = self.globals.borrow().get(name).cloned();
        let Some(f) = f else {
            return Err(self.fatal(format!("the module defines no function {name}()")));
        };
        self.call_value(f, vec![Val::Event], Vec::new())
    }

    // ---- errors and limits ----

    pub fn exc(&self, kind: &str, msg: impl Into<String>) -> Ctl {
        Ctl::Exc {
            kind: Rc::from(kind),
            msg: msg.into(),
            line: self.line,
        }
    }

    pub fn type_error(&self, msg: impl Into<String>) -> Ctl {
        self.exc("TypeError", msg)
    }

    pub fn fatal(&self, msg: impl Into<String>) -> Ctl {
        Ctl::Fatal {
            line: self.line,
            msg: msg.into(),
        }
    }

    pub fn step(&self) -> R<()> {
        let steps = self.steps.get() + 1;
        self.steps.set(steps);
        if steps > self.ctx.step_budget {
            return Err(Ctl::Budget);
        }
        Ok(())
    }

    /// Charges `n` extra steps for work proportional to `n` done natively.
    pub fn charge(&self, n: usize) -> R<()> {
        self.steps
            .set(self.steps.get().saturating_add(n as u64 / 8));
        self.step()
    }

    pub fn check_str(&self, len: usize) -> R<()> {
        if len > MAX_STR {
            return Err(self.fatal(format!("string longer than the limit of {MAX_STR} bytes")));
        }
        Ok(())
    }

    pub fn check_items(&self, len: usize) -> R<()> {
        if len > MAX_ITEMS {
            return Err(self.fatal(format!(
                "collection larger than the limit of {MAX_ITEMS} items"
            )));
        }
        Ok(())
    }

    pub fn mk_str(&self, s: String) -> R<Val> {
        self.check_str(s.len())?;
        Ok(new_str(s))
    }

    pub fn mk_list(&self, items: Vec<Val>) -> R<Val> {
        self.check_items(items.len())?;
        Ok(new_list(items))
    }

    pub fn hkey_err(&self, e: String) -> Ctl {
        self.type_error(e)
    }

    // ---- statements ----

    fn exec_block(&mut self, stmts: &[Stmt], frame: &mut Frame) -> R<()> {
        for s in stmts {
            self.exec(s, frame)?;
        }
        Ok(())
    }

    fn exec(&mut self, stmt: &Stmt, frame: &mut Frame) -> R<()> {
        self.line = stmt.line;
        self.step()?;
        match &stmt.kind {
            StmtKind::Expr(e) => {
                self.eval(e, frame)?;
            }
            StmtKind::Assign(targets, value) => {
                let v = self.eval(value, frame)?;
                for t in targets {
                    self.assign(t, v.clone(), frame)?;
                }
            }
            StmtKind::AugAssign(target, op, value) => {
                let current = self.eval(target, frame)?;
                let rhs = self.eval(value, frame)?;
                let new = match (op, &current) {
                    (BinOp::Add, Val::List(l)) => {
                        let items = self.iterate(&rhs)?;
                        let len = l.borrow().len() + items.len();
                        self.check_items(len)?;
                        l.borrow_mut().extend(items);
                        current.clone()
                    }
                    (BinOp::BitOr, Val::Set(s)) => {
                        let Val::Set(other) = &rhs else {
                            return Err(self.type_error("unsupported operand type(s) for |="));
                        };
                        let keys = other.borrow().keys.clone();
                        for k in keys {
                            s.borrow_mut()
                                .insert(k, Val::None)
                                .map_err(|e| self.hkey_err(e))?;
                        }
                        current.clone()
                    }
                    _ => self.binop(*op, &current, &rhs)?,
                };
                self.assign(target, new, frame)?;
            }
            StmtKind::Return(e) => {
                let v = match e {
                    Some(e) => self.eval(e, frame)?,
                    None => Val::None,
                };
                return Err(Ctl::Return(v));
            }
            StmtKind::If(cond, body, orelse) => {
                let c = self.eval(cond, frame)?;
                if self.truth(&c)? {
                    self.exec_block(body, frame)?;
                } else {
                    self.exec_block(orelse, frame)?;
                }
            }
            StmtKind::For(target, iter, body, orelse) => {
                let it = self.eval(iter, frame)?;
                let items = self.iterate(&it)?;
                let mut broke = false;
                for item in items {
                    self.line = stmt.line;
                    self.assign(target, item, frame)?;
                    match self.exec_block(body, frame) {
                        Ok(()) | Err(Ctl::Continue) => {}
                        Err(Ctl::Break) => {
                            broke = true;
                            break;
                        }
                        Err(other) => return Err(other),
                    }
                }
                if !broke {
                    self.exec_block(orelse, frame)?;
                }
            }
            StmtKind::While(cond, body, orelse) => {
                let mut broke = false;
                loop {
                    self.line = stmt.line;
                    let c = self.eval(cond, frame)?;
                    if !self.truth(&c)? {
                        break;
                    }
                    match self.exec_block(body, frame) {
                        Ok(()) | Err(Ctl::Continue) => {}
                        Err(Ctl::Break) => {
                            broke = true;
                            break;
                        }
                        Err(other) => return Err(other),
                    }
                }
                if !broke {
                    self.exec_block(orelse, frame)?;
                }
            }
            StmtKind::Break => return Err(Ctl::Break),
            StmtKind::Continue => return Err(Ctl::Continue),
            StmtKind::Pass => {}
            StmtKind::Try {
                body,
                handlers,
                orelse,
                finally,
            } => {
                let mut outcome = self.exec_block(body, frame);
                if let Err(Ctl::Exc { kind, msg, line }) = &outcome {
                    let handler = handlers.iter().find(|h| {
                        h.types.is_empty() || h.types.iter().any(|t| exc_matches(kind, t))
                    });
                    if let Some(h) = handler {
                        let (kind, msg, _line) = (kind.clone(), msg.clone(), *line);
                        if let Some(n) = &h.name {
                            self.set_name(n, Val::Exc(kind.clone(), Rc::from(msg.as_str())), frame);
                        }
                        self.handling.push((kind, msg));
                        outcome = self.exec_block(&h.body, frame);
                        self.handling.pop();
                    }
                } else if outcome.is_ok() {
                    outcome = self.exec_block(orelse, frame);
                }
                if !finally.is_empty() {
                    // A budget overrun or fatal error does not run `finally`: the call is over.
                    if matches!(outcome, Err(Ctl::Budget | Ctl::Fatal { .. })) {
                        return outcome;
                    }
                    self.exec_block(finally, frame)?;
                }
                outcome?;
            }
            StmtKind::Def(def) => {
                let c = self.make_closure(
                    def.name.clone(),
                    Arc::new(def.params.clone()),
                    ClosureBody::Def(def.clone()),
                    frame,
                )?;
                self.set_name(&def.name, c, frame);
            }
            StmtKind::Import(items) => {
                for (module, bound) in items {
                    let v =
                        native::import_module(module).map_err(|m| self.exc("ImportError", m))?;
                    // `import a.b` binds `a`; only dotted modules we know are supported.
                    self.set_name(bound, v, frame);
                }
            }
            StmtKind::ImportFrom(module, items) => {
                for (name, bound) in items {
                    let v = native::import_name(module, name)
                        .map_err(|m| self.exc("ImportError", m))?;
                    self.set_name(bound, v, frame);
                }
            }
            StmtKind::Global(names) => frame.globals_decl.extend(names.iter().cloned()),
            StmtKind::Raise(e) => {
                let Some(e) = e else {
                    let Some((kind, msg)) = self.handling.last().cloned() else {
                        return Err(self.exc("RuntimeError", "No active exception to reraise"));
                    };
                    return Err(Ctl::Exc {
                        kind,
                        msg,
                        line: self.line,
                    });
                };
                let v = self.eval(e, frame)?;
                return Err(match v {
                    Val::Native(n) if native::is_exception_class(n) => self.exc(n, ""),
                    Val::Exc(k, m) => self.exc(&k, m.to_string()),
                    _ => self.type_error("exceptions must derive from BaseException"),
                });
            }
            StmtKind::Assert(cond, msg) => {
                let c = self.eval(cond, frame)?;
                if !self.truth(&c)? {
                    let m = match msg {
                        Some(m) => py_str(&self.eval(m, frame)?),
                        None => String::new(),
                    };
                    return Err(self.exc("AssertionError", m));
                }
            }
            StmtKind::Del(targets) => {
                for t in targets {
                    self.delete(t, frame)?;
                }
            }
        }
        Ok(())
    }

    fn make_closure(
        &mut self,
        name: String,
        params: Arc<Params>,
        body: ClosureBody,
        frame: &mut Frame,
    ) -> R<Val> {
        let mut defaults = Vec::new();
        for (_, d) in &params.positional {
            defaults.push(match d {
                Some(e) => Some(self.eval(e, frame)?),
                None => None,
            });
        }
        let mut kw_defaults = Vec::new();
        for (_, d) in &params.kwonly {
            kw_defaults.push(match d {
                Some(e) => Some(self.eval(e, frame)?),
                None => None,
            });
        }
        Ok(Val::Func(Rc::new(Closure {
            name,
            params,
            body,
            defaults,
            kw_defaults,
            enclosing: frame.scopes.clone(),
        })))
    }

    fn set_name(&mut self, name: &str, v: Val, frame: &mut Frame) {
        if frame.globals_decl.iter().any(|g| g == name) {
            self.globals.borrow_mut().insert(name.to_string(), v);
            return;
        }
        if let Some(scope) = frame.scopes.last() {
            // A name bound again (a loop variable) keeps its key: no allocation per iteration.
            let mut scope = scope.borrow_mut();
            match scope.get_mut(name) {
                Some(slot) => *slot = v,
                None => {
                    scope.insert(name.to_string(), v);
                }
            }
        }
    }

    fn lookup(&self, name: &str, frame: &Frame) -> R<Val> {
        if !frame.globals_decl.iter().any(|g| g == name) {
            for scope in frame.scopes.iter().rev() {
                if let Some(v) = scope.borrow().get(name) {
                    return Ok(v.clone());
                }
            }
        }
        if let Some(v) = self.globals.borrow().get(name) {
            return Ok(v.clone());
        }
        if let Some(v) = native::builtin(name) {
            return Ok(v);
        }
        if native::is_python_builtin(name) {
            return Err(self.fatal(format!("unsupported: builtin {name}")));
        }
        Err(self.exc("NameError", format!("name '{name}' is not defined")))
    }

    fn assign(&mut self, target: &Expr, v: Val, frame: &mut Frame) -> R<()> {
        match target {
            Expr::Name(n) => {
                self.set_name(n, v, frame);
                Ok(())
            }
            Expr::Tuple(targets) | Expr::List(targets) => {
                let items = self.iterate(&v)?;
                let star = targets.iter().position(|t| matches!(t, Expr::Starred(_)));
                match star {
                    None => {
                        if items.len() != targets.len() {
                            return Err(self.exc(
                                "ValueError",
                                format!(
                                    "{} values to unpack (expected {})",
                                    if items.len() > targets.len() {
                                        "too many"
                                    } else {
                                        "not enough"
                                    },
                                    targets.len()
                                ),
                            ));
                        }
                        for (t, item) in targets.iter().zip(items) {
                            self.assign(t, item, frame)?;
                        }
                    }
                    Some(si) => {
                        let after = targets.len() - si - 1;
                        if items.len() < si + after {
                            return Err(self.exc("ValueError", "not enough values to unpack"));
                        }
                        let mut items = items;
                        let tail = items.split_off(items.len() - after);
                        let middle = items.split_off(si);
                        for (t, item) in targets[..si].iter().zip(items) {
                            self.assign(t, item, frame)?;
                        }
                        if let Expr::Starred(inner) = &targets[si] {
                            self.assign(inner, new_list(middle), frame)?;
                        }
                        for (t, item) in targets[si + 1..].iter().zip(tail) {
                            self.assign(t, item, frame)?;
                        }
                    }
                }
                Ok(())
            }
            Expr::Subscript(obj, idx) => {
                let o = self.eval(obj, frame)?;
                let i = self.eval(idx, frame)?;
                match &o {
                    Val::List(l) => {
                        let len = l.borrow().len();
                        let pos = self.index_of(&i, len)?;
                        l.borrow_mut()[pos] = v;
                        Ok(())
                    }
                    Val::Dict(d) => {
                        let len = d.borrow().len();
                        self.check_items(len + 1)?;
                        d.borrow_mut().insert(i, v).map_err(|e| self.hkey_err(e))
                    }
                    other => Err(self.type_error(format!(
                        "'{}' object does not support item assignment",
                        type_name(other)
                    ))),
                }
            }
            _ => Err(self.fatal("unsupported: assignment target")),
        }
    }

    fn delete(&mut self, target: &Expr, frame: &mut Frame) -> R<()> {
        match target {
            Expr::Name(n) => {
                if let Some(scope) = frame.scopes.last() {
                    scope.borrow_mut().remove(n);
                }
                Ok(())
            }
            Expr::Subscript(obj, idx) => {
                let o = self.eval(obj, frame)?;
                let i = self.eval(idx, frame)?;
                match &o {
                    Val::List(l) => {
                        let len = l.borrow().len();
                        let pos = self.index_of(&i, len)?;
                        l.borrow_mut().remove(pos);
                        Ok(())
                    }
                    Val::Dict(d) => {
                        let removed = d.borrow_mut().remove(&i).map_err(|e| self.hkey_err(e))?;
                        if removed.is_none() {
                            return Err(self.exc("KeyError", py_repr(&i)));
                        }
                        Ok(())
                    }
                    other => Err(self.type_error(format!(
                        "'{}' object does not support item deletion",
                        type_name(other)
                    ))),
                }
            }
            _ => Err(self.fatal("unsupported: del target")),
        }
    }

    /// Python truthiness.
    pub fn truth(&self, v: &Val) -> R<bool> {
        if let Val::Event = v {
            return Ok(self.event.root().as_object().is_none_or(|o| !o.is_empty()));
        }
        Ok(truthy(v))
    }

    /// A list index: an int (negative counts from the end) within `len`.
    pub fn index_of(&self, i: &Val, len: usize) -> R<usize> {
        let n = match i {
            Val::Int(n) => *n,
            Val::Bool(b) => *b as i64,
            other => {
                return Err(self.type_error(format!(
                    "indices must be integers, not {}",
                    type_name(other)
                )));
            }
        };
        let pos = if n < 0 { n + len as i64 } else { n };
        if pos < 0 || pos >= len as i64 {
            return Err(self.exc("IndexError", "index out of range"));
        }
        Ok(pos as usize)
    }

    // ---- expressions ----

    pub fn eval(&mut self, e: &Expr, frame: &mut Frame) -> R<Val> {
        self.step()?;
        match e {
            Expr::Const(c) => Ok(match c {
                Const::None => Val::None,
                Const::Bool(b) => Val::Bool(*b),
                Const::Int(i) => Val::Int(*i),
                Const::Float(f) => Val::Float(*f),
                Const::Str(s) => new_str(s.as_str()),
            }),
            Expr::Name(n) => self.lookup(n, frame),
            Expr::Attr(obj, name) => {
                let o = self.eval(obj, frame)?;
                native::get_attr(self, &o, name)
            }
            Expr::Subscript(obj, idx) => {
                let o = self.eval(obj, frame)?;
                if let Expr::Slice(lo, hi, st) = &**idx {
                    let lo = self.eval_opt(lo, frame)?;
                    let hi = self.eval_opt(hi, frame)?;
                    let st = self.eval_opt(st, frame)?;
                    return self.slice(&o, lo, hi, st);
                }
                let i = self.eval(idx, frame)?;
                self.subscript(&o, &i)
            }
            Expr::Slice(..) => Err(self.fatal("unsupported: slice outside a subscript")),
            Expr::Call(func, args) => self.eval_call(func, args, frame),
            Expr::Bin(op, l, r) => {
                let a = self.eval(l, frame)?;
                let b = self.eval(r, frame)?;
                self.binop(*op, &a, &b)
            }
            Expr::Unary(op, inner) => {
                let v = self.eval(inner, frame)?;
                match op {
                    UnaryOp::Not => Ok(Val::Bool(!self.truth(&v)?)),
                    UnaryOp::Neg => match v {
                        Val::Int(i) => i
                            .checked_neg()
                            .map(Val::Int)
                            .ok_or_else(|| self.fatal("unsupported: integer overflow")),
                        Val::Bool(b) => Ok(Val::Int(-(b as i64))),
                        Val::Float(f) => Ok(Val::Float(-f)),
                        Val::Delta(d) => Ok(Val::Delta(-d)),
                        other => Err(self.type_error(format!(
                            "bad operand type for unary -: '{}'",
                            type_name(&other)
                        ))),
                    },
                    UnaryOp::Pos => match v {
                        Val::Int(_) | Val::Float(_) | Val::Delta(_) => Ok(v),
                        Val::Bool(b) => Ok(Val::Int(b as i64)),
                        other => Err(self.type_error(format!(
                            "bad operand type for unary +: '{}'",
                            type_name(&other)
                        ))),
                    },
                    UnaryOp::Invert => match v {
                        Val::Int(i) => Ok(Val::Int(!i)),
                        Val::Bool(b) => Ok(Val::Int(!(b as i64))),
                        other => Err(self.type_error(format!(
                            "bad operand type for unary ~: '{}'",
                            type_name(&other)
                        ))),
                    },
                }
            }
            Expr::And(items) => {
                let mut last = Val::Bool(true);
                for item in items {
                    last = self.eval(item, frame)?;
                    if !self.truth(&last)? {
                        return Ok(last);
                    }
                }
                Ok(last)
            }
            Expr::Or(items) => {
                let mut last = Val::Bool(false);
                for item in items {
                    last = self.eval(item, frame)?;
                    if self.truth(&last)? {
                        return Ok(last);
                    }
                }
                Ok(last)
            }
            Expr::Compare(first, rest) => {
                let mut left = self.eval(first, frame)?;
                for (op, right) in rest {
                    let r = self.eval(right, frame)?;
                    if !self.compare(*op, &left, &r)? {
                        return Ok(Val::Bool(false));
                    }
                    left = r;
                }
                Ok(Val::Bool(true))
            }
            Expr::IfExp(cond, a, b) => {
                let c = self.eval(cond, frame)?;
                if self.truth(&c)? {
                    self.eval(a, frame)
                } else {
                    self.eval(b, frame)
                }
            }
            Expr::List(items) => {
                let v = self.eval_items(items, frame)?;
                self.mk_list(v)
            }
            Expr::Tuple(items) => {
                let v = self.eval_items(items, frame)?;
                Ok(Val::Tuple(Rc::new(v)))
            }
            Expr::Set(items) => {
                let v = self.eval_items(items, frame)?;
                let mut d = Dict::default();
                for item in v {
                    d.insert(item, Val::None).map_err(|e| self.hkey_err(e))?;
                }
                Ok(new_set(d))
            }
            Expr::Dict(items) => {
                let mut d = Dict::default();
                for (k, v) in items {
                    match k {
                        Some(k) => {
                            let key = self.eval(k, frame)?;
                            let val = self.eval(v, frame)?;
                            d.insert(key, val).map_err(|e| self.hkey_err(e))?;
                        }
                        None => {
                            let spread = self.eval(v, frame)?;
                            for (key, val) in self.mapping_items(&spread)? {
                                d.insert(key, val).map_err(|e| self.hkey_err(e))?;
                            }
                        }
                    }
                }
                self.check_items(d.len())?;
                Ok(new_dict(d))
            }
            Expr::ListComp(elt, comps) | Expr::GenExp(elt, comps) => {
                let mut out = Vec::new();
                self.comprehension(comps, frame, &mut |it, f| {
                    let v = it.eval(elt, f)?;
                    out.push(v);
                    it.check_items(out.len())?;
                    Ok(true)
                })?;
                Ok(new_list(out))
            }
            Expr::SetComp(elt, comps) => {
                let mut d = Dict::default();
                self.comprehension(comps, frame, &mut |it, f| {
                    let v = it.eval(elt, f)?;
                    d.insert(v, Val::None).map_err(|e| it.hkey_err(e))?;
                    it.check_items(d.len())?;
                    Ok(true)
                })?;
                Ok(new_set(d))
            }
            Expr::DictComp(k, v, comps) => {
                let mut d = Dict::default();
                self.comprehension(comps, frame, &mut |it, f| {
                    let key = it.eval(k, f)?;
                    let val = it.eval(v, f)?;
                    d.insert(key, val).map_err(|e| it.hkey_err(e))?;
                    it.check_items(d.len())?;
                    Ok(true)
                })?;
                Ok(new_dict(d))
            }
            Expr::FString(parts) => {
                let s = self.fstring(parts, frame)?;
                self.mk_str(s)
            }
            Expr::Lambda(params, body) => self.make_closure(
                "<lambda>".into(),
                params.clone(),
                ClosureBody::Lambda(Arc::new((**body).clone())),
                frame,
            ),
            Expr::Walrus(name, value) => {
                let v = self.eval(value, frame)?;
                self.set_name(name, v.clone(), frame);
                Ok(v)
            }
            Expr::Starred(_) => Err(self.fatal("unsupported: starred expression here")),
        }
    }

    fn eval_opt(&mut self, e: &Option<Box<Expr>>, frame: &mut Frame) -> R<Option<Val>> {
        match e {
            Some(e) => Ok(Some(self.eval(e, frame)?)),
            None => Ok(None),
        }
    }

    fn eval_items(&mut self, items: &[Expr], frame: &mut Frame) -> R<Vec<Val>> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Expr::Starred(inner) = item {
                let v = self.eval(inner, frame)?;
                out.extend(self.iterate(&v)?);
            } else {
                out.push(self.eval(item, frame)?);
            }
        }
        Ok(out)
    }

    fn fstring(&mut self, parts: &[FPart], frame: &mut Frame) -> R<String> {
        let mut s = String::new();
        for p in parts {
            match p {
                FPart::Lit(l) => s.push_str(l),
                FPart::Expr { expr, conv, spec } => {
                    let v = self.eval(expr, frame)?;
                    let v = match conv {
                        Some('r') | Some('a') => new_str(self.repr(&v)),
                        Some(_) => new_str(self.to_str(&v)),
                        None => v,
                    };
                    let spec = self.fstring(spec, frame)?;
                    s.push_str(&native::format_value(self, &v, &spec)?);
                    self.check_str(s.len())?;
                }
            }
        }
        Ok(s)
    }

    /// Runs the comprehension loops in a new scope, calling `body` for each binding; `body`
    /// returns false to stop early (lazy `any`/`all`).
    fn comprehension(
        &mut self,
        comps: &[Comprehension],
        frame: &mut Frame,
        body: &mut dyn FnMut(&mut Self, &mut Frame) -> R<bool>,
    ) -> R<bool> {
        // The first iterable is evaluated in the enclosing scope, as in Python.
        let Some(first) = comps.first() else {
            return Ok(true);
        };
        let it = self.eval(&first.iter, frame)?;
        let items = self.iterate(&it)?;
        frame.scopes.push(Rc::new(RefCell::new(Names::default())));
        let result = self.comp_loop(comps, 0, Some(items), frame, body);
        frame.scopes.pop();
        result
    }

    fn comp_loop(
        &mut self,
        comps: &[Comprehension],
        level: usize,
        items: Option<Vec<Val>>,
        frame: &mut Frame,
        body: &mut dyn FnMut(&mut Self, &mut Frame) -> R<bool>,
    ) -> R<bool> {
        let Some(c) = comps.get(level) else {
            return body(self, frame);
        };
        let items = match items {
            Some(items) => items,
            None => {
                let it = self.eval(&c.iter, frame)?;
                self.iterate(&it)?
            }
        };
        'items: for item in items {
            self.step()?;
            self.assign(&c.target, item, frame)?;
            for cond in &c.conds {
                let v = self.eval(cond, frame)?;
                if !self.truth(&v)? {
                    continue 'items;
                }
            }
            if !self.comp_loop(comps, level + 1, None, frame, body)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn eval_call(&mut self, func: &Expr, args: &[Arg], frame: &mut Frame) -> R<Val> {
        // `x.method(...)` with a built-in method: called on `x` without building the bound
        // method first (a box and a string per call). The steps and the order of evaluation
        // are those of `eval(func)`: the node, the receiver, the attribute, then the arguments.
        if let Expr::Attr(obj, name) = func {
            self.step()?;
            let recv = self.eval(obj, frame)?;
            if native::is_builtin_method(&recv, name) {
                let (pos, kw) = self.eval_args(args, frame)?;
                return native::call_method(self, &recv, name, pos, kw);
            }
            let f = native::get_attr(self, &recv, name)?;
            return self.call_evaluated(f, args, frame);
        }
        let f = self.eval(func, frame)?;
        self.call_evaluated(f, args, frame)
    }

    /// Calls `f`, the value of a call's function expression, with `args` (not yet evaluated).
    fn call_evaluated(&mut self, f: Val, args: &[Arg], frame: &mut Frame) -> R<Val> {
        // `any`/`all` over a generator expression stop at the first deciding item, as Python's
        // lazy generators do (later items may raise, or cost steps).
        if let (Val::Native(n @ ("any" | "all")), [Arg::Pos(Expr::GenExp(elt, comps))]) = (&f, args)
        {
            let want = *n == "any";
            let mut found = false;
            self.comprehension(comps, frame, &mut |it, f| {
                let v = it.eval(elt, f)?;
                if it.truth(&v)? == want {
                    found = true;
                    return Ok(false);
                }
                Ok(true)
            })?;
            return Ok(Val::Bool(if want { found } else { !found }));
        }
        if let (Val::Native("next"), [Arg::Pos(Expr::GenExp(elt, comps)), rest @ ..]) = (&f, args) {
            let mut first = None;
            self.comprehension(comps, frame, &mut |it, f| {
                first = Some(it.eval(elt, f)?);
                Ok(false)
            })?;
            if let Some(v) = first {
                return Ok(v);
            }
            if let [Arg::Pos(default)] = rest {
                return self.eval(default, frame);
            }
            return Err(self.exc("StopIteration", ""));
        }
        let (pos, kw) = self.eval_args(args, frame)?;
        self.call_value(f, pos, kw)
    }

    /// A call's arguments, in order: the positional ones and the keyword ones.
    #[allow(clippy::type_complexity)]
    fn eval_args(&mut self, args: &[Arg], frame: &mut Frame) -> R<(Vec<Val>, Vec<(String, Val)>)> {
        let mut pos = Vec::with_capacity(args.len());
        let mut kw = Vec::new();
        for a in args {
            match a {
                Arg::Pos(e) => pos.push(self.eval(e, frame)?),
                Arg::Star(e) => {
                    let v = self.eval(e, frame)?;
                    pos.extend(self.iterate(&v)?);
                }
                Arg::Kw(n, e) => kw.push((n.clone(), self.eval(e, frame)?)),
                Arg::StarStar(e) => {
                    let v = self.eval(e, frame)?;
                    for (k, val) in self.mapping_items(&v)? {
                        let Val::Str(k) = k else {
                            return Err(self.type_error("keywords must be strings"));
                        };
                        kw.push((k.to_string(), val));
                    }
                }
            }
        }
        Ok((pos, kw))
    }

    pub fn call_value(&mut self, f: Val, args: Vec<Val>, kwargs: Vec<(String, Val)>) -> R<Val> {
        match f {
            Val::Func(c) => {
                if self.depth >= MAX_DEPTH {
                    return Err(self.fatal(format!("recursion deeper than {MAX_DEPTH} calls")));
                }
                let locals = self.bind(&c, args, kwargs)?;
                let mut scopes = c.enclosing.clone();
                scopes.push(Rc::new(RefCell::new(locals)));
                let mut frame = Frame {
                    scopes,
                    globals_decl: Vec::new(),
                };
                let saved_line = self.line;
                self.depth += 1;
                let result = match &c.body {
                    ClosureBody::Def(def) => match self.exec_block(&def.body, &mut frame) {
                        Ok(()) => Ok(Val::None),
                        Err(Ctl::Return(v)) => Ok(v),
                        Err(Ctl::Break | Ctl::Continue) => {
                            Err(self.fatal("break or continue outside a loop"))
                        }
                        Err(other) => Err(other),
                    },
                    ClosureBody::Lambda(e) => self.eval(e, &mut frame),
                };
                self.depth -= 1;
                if result.is_ok() {
                    self.line = saved_line;
                }
                result
            }
            Val::Native(n) => native::call_native(self, n, args, kwargs),
            Val::Method(recv, name) => native::call_method(self, &recv, &name, args, kwargs),
            Val::Mock(v) => Ok((*v).clone()),
            other => {
                Err(self.type_error(format!("'{}' object is not callable", type_name(&other))))
            }
        }
    }

    fn bind(&self, c: &Closure, mut args: Vec<Val>, mut kwargs: Vec<(String, Val)>) -> R<Names> {
        let p = &c.params;
        let mut locals = Names::default();
        let extra = if args.len() > p.positional.len() {
            args.split_off(p.positional.len())
        } else {
            Vec::new()
        };
        let mut args = args.into_iter();
        for (i, (name, _)) in p.positional.iter().enumerate() {
            let v = if let Some(v) = args.next() {
                if kwargs.iter().any(|(k, _)| k == name) {
                    return Err(self.type_error(format!(
                        "{}() got multiple values for argument '{name}'",
                        c.name
                    )));
                }
                v
            } else if let Some(at) = kwargs.iter().position(|(k, _)| k == name) {
                kwargs.remove(at).1
            } else if let Some(Some(d)) = c.defaults.get(i) {
                d.clone()
            } else {
                return Err(
                    self.type_error(format!("{}() missing required argument: '{name}'", c.name))
                );
            };
            locals.insert(name.clone(), v);
        }
        match &p.star {
            Some(star) => {
                locals.insert(star.clone(), Val::Tuple(Rc::new(extra)));
            }
            None if !extra.is_empty() => {
                return Err(self.type_error(format!(
                    "{}() takes {} positional arguments",
                    c.name,
                    p.positional.len()
                )));
            }
            None => {}
        }
        for (i, (name, _)) in p.kwonly.iter().enumerate() {
            let v = if let Some(at) = kwargs.iter().position(|(k, _)| k == name) {
                kwargs.remove(at).1
            } else if let Some(Some(d)) = c.kw_defaults.get(i) {
                d.clone()
            } else {
                return Err(self.type_error(format!(
                    "{}() missing keyword-only argument: '{name}'",
                    c.name
                )));
            };
            locals.insert(name.clone(), v);
        }
        match &p.starstar {
            Some(ss) => {
                let mut d = Dict::default();
                for (k, v) in kwargs {
                    d.insert(new_str(k), v).map_err(|e| self.hkey_err(e))?;
                }
                locals.insert(ss.clone(), new_dict(d));
            }
            None => {
                if let Some((k, _)) = kwargs.first() {
                    return Err(self.type_error(format!(
                        "{}() got an unexpected keyword argument '{k}'",
                        c.name
                    )));
                }
            }
        }
        Ok(locals)
    }

    // ---- operations ----

    /// The items of an iterable, as a snapshot.
    pub fn iterate(&mut self, v: &Val) -> R<Vec<Val>> {
        let items = match v {
            Val::List(l) => l.borrow().clone(),
            Val::Tuple(t) => (**t).clone(),
            Val::Str(s) => s.chars().map(|c| new_str(c.to_string())).collect(),
            Val::Dict(d) | Val::Set(d) => d.borrow().keys.clone(),
            Val::Event => match self.event.root() {
                Json::Object(o) => o.keys().map(|k| new_str(k.as_str())).collect(),
                _ => Vec::new(),
            },
            Val::Mock(_) => Vec::new(),
            other => {
                return Err(
                    self.type_error(format!("'{}' object is not iterable", type_name(other)))
                );
            }
        };
        self.charge(items.len())?;
        Ok(items)
    }

    /// (key, value) pairs of a mapping.
    pub fn mapping_items(&mut self, v: &Val) -> R<Vec<(Val, Val)>> {
        match v {
            Val::Dict(d) => {
                let d = d.borrow();
                Ok(d.keys.iter().cloned().zip(d.vals.iter().cloned()).collect())
            }
            Val::Event => match self.event.root() {
                Json::Object(o) => Ok(o
                    .iter()
                    .map(|(k, v)| (new_str(k.as_str()), from_json(v)))
                    .collect()),
                _ => Ok(Vec::new()),
            },
            other => {
                Err(self.type_error(format!("'{}' object is not a mapping", type_name(other))))
            }
        }
    }

    /// The items of [`Interp::mapping_items`] whose key is a `str` for which `pred` holds, in
    /// the same order. From the event, only those values are built: no conversion of the whole
    /// event to find a few keys (Panther's `pantherflow_investigation` looks for `p_any_*`).
    pub fn mapping_items_where(
        &mut self,
        v: &Val,
        pred: impl Fn(&str) -> bool,
    ) -> R<Vec<(Val, Val)>> {
        if let Val::Event = v {
            // An event holding a number beyond `f64` converts as a whole to nothing (see
            // `mapping_items`); `check_whole` finds out without building any other event.
            self.event.check_whole();
            if self.event.is_broken() {
                return Ok(Vec::new());
            }
            let keys = self.event.keys_where(&pred);
            let items: Option<Vec<(Val, Val)>> = keys
                .into_iter()
                .map(|k| Some((new_str(k), from_json(self.event.get(k)?))))
                .collect();
            if let Some(items) = items {
                return Ok(items);
            }
        }
        let mut items = self.mapping_items(v)?;
        items.retain(|(k, _)| matches!(k, Val::Str(k) if pred(k)));
        Ok(items)
    }

    pub fn repr(&self, v: &Val) -> String {
        match v {
            Val::Event => py_repr(&from_json(self.event.root())),
            other => py_repr(other),
        }
    }

    pub fn to_str(&self, v: &Val) -> String {
        match v {
            Val::Event => py_repr(&from_json(self.event.root())),
            other => py_str(other),
        }
    }

    pub fn subscript(&mut self, o: &Val, i: &Val) -> R<Val> {
        match o {
            Val::List(l) => {
                let l = l.borrow();
                let pos = self.index_of(i, l.len())?;
                Ok(l[pos].clone())
            }
            Val::Tuple(t) => {
                let pos = self.index_of(i, t.len())?;
                Ok(t[pos].clone())
            }
            Val::Str(s) => {
                let chars: Vec<char> = s.chars().collect();
                let pos = self.index_of(i, chars.len())?;
                Ok(new_str(chars[pos].to_string()))
            }
            Val::Dict(d) => {
                let d = d.borrow();
                match d.get(i).map_err(|e| self.hkey_err(e))? {
                    Some(v) => Ok(v.clone()),
                    None => Err(self.exc("KeyError", py_repr(i))),
                }
            }
            Val::Event => {
                let Val::Str(key) = i else {
                    return Err(self.exc("KeyError", py_repr(i)));
                };
                match native::event_get(self, key) {
                    Some(v) => Ok(v),
                    None => Err(self.exc("KeyError", py_repr(i))),
                }
            }
            Val::Match(groups) => {
                let Val::Int(n) = i else {
                    return Err(self.exc("IndexError", "no such group"));
                };
                match groups.get(*n as usize) {
                    Some(Some(g)) => Ok(new_str(g.as_str())),
                    Some(None) => Ok(Val::None),
                    None => Err(self.exc("IndexError", "no such group")),
                }
            }
            other => Err(self.type_error(format!(
                "'{}' object is not subscriptable",
                type_name(other)
            ))),
        }
    }

    fn slice(&mut self, o: &Val, lo: Option<Val>, hi: Option<Val>, st: Option<Val>) -> R<Val> {
        let as_int = |it: &Self, v: Option<Val>| -> R<Option<i64>> {
            match v {
                None | Some(Val::None) => Ok(None),
                Some(Val::Int(i)) => Ok(Some(i)),
                Some(Val::Bool(b)) => Ok(Some(b as i64)),
                Some(_) => Err(it.type_error("slice indices must be integers or None")),
            }
        };
        let lo = as_int(self, lo)?;
        let hi = as_int(self, hi)?;
        let st = as_int(self, st)?.unwrap_or(1);
        if st == 0 {
            return Err(self.exc("ValueError", "slice step cannot be zero"));
        }
        let pick = |len: usize| -> Vec<usize> {
            let len = len as i64;
            let norm = |v: i64, lower: i64, upper: i64| -> i64 {
                let v = if v < 0 { v + len } else { v };
                v.clamp(lower, upper)
            };
            let mut out = Vec::new();
            if st > 0 {
                let start = lo.map_or(0, |v| norm(v, 0, len));
                let stop = hi.map_or(len, |v| norm(v, 0, len));
                let mut i = start;
                while i < stop {
                    out.push(i as usize);
                    i += st;
                }
            } else {
                let start = lo.map_or(len - 1, |v| norm(v, -1, len - 1));
                let stop = hi.map_or(-1, |v| norm(v, -1, len - 1));
                let mut i = start;
                while i > stop {
                    out.push(i as usize);
                    i += st;
                }
            }
            out
        };
        match o {
            Val::Str(s) => {
                let chars: Vec<char> = s.chars().collect();
                Ok(new_str(
                    pick(chars.len())
                        .into_iter()
                        .map(|i| chars[i])
                        .collect::<String>(),
                ))
            }
            Val::List(l) => {
                let l = l.borrow();
                Ok(new_list(
                    pick(l.len()).into_iter().map(|i| l[i].clone()).collect(),
                ))
            }
            Val::Tuple(t) => Ok(Val::Tuple(Rc::new(
                pick(t.len()).into_iter().map(|i| t[i].clone()).collect(),
            ))),
            other => Err(self.type_error(format!(
                "'{}' object is not subscriptable",
                type_name(other)
            ))),
        }
    }

    pub fn contains(&mut self, container: &Val, item: &Val) -> R<bool> {
        match container {
            Val::Str(s) => match item {
                Val::Str(i) => Ok(s.contains(&**i)),
                other => Err(self.type_error(format!(
                    "'in <string>' requires string as left operand, not {}",
                    type_name(other)
                ))),
            },
            Val::List(l) => {
                let l = l.borrow();
                Ok(l.iter().any(|x| py_eq(x, item)))
            }
            Val::Tuple(t) => Ok(t.iter().any(|x| py_eq(x, item))),
            Val::Dict(d) | Val::Set(d) => d.borrow().contains(item).map_err(|e| self.hkey_err(e)),
            Val::Event => Ok(match item {
                Val::Str(k) => native::event_get(self, k).is_some(),
                _ => false,
            }),
            Val::Net(..) => native::net_contains(self, container, item),
            Val::Mock(_) => Ok(false),
            other => Err(self.type_error(format!(
                "argument of type '{}' is not iterable",
                type_name(other)
            ))),
        }
    }

    pub fn compare(&mut self, op: CmpOp, a: &Val, b: &Val) -> R<bool> {
        use std::cmp::Ordering::*;
        Ok(match op {
            CmpOp::Eq => self.equal(a, b),
            CmpOp::Ne => !self.equal(a, b),
            CmpOp::In => self.contains(b, a)?,
            CmpOp::NotIn => !self.contains(b, a)?,
            CmpOp::Is => is_same(a, b),
            CmpOp::IsNot => !is_same(a, b),
            CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
                if let (Val::Set(x), Val::Set(y)) = (a, b) {
                    let subset = |p: &Dict, q: &Dict| {
                        p.keys.iter().all(|k| matches!(q.contains(k), Ok(true)))
                    };
                    let (x, y) = (x.borrow(), y.borrow());
                    return Ok(match op {
                        CmpOp::Le => subset(&x, &y),
                        CmpOp::Lt => subset(&x, &y) && x.len() < y.len(),
                        CmpOp::Ge => subset(&y, &x),
                        _ => subset(&y, &x) && x.len() > y.len(),
                    });
                }
                let o = py_cmp(a, b).map_err(|m| {
                    self.type_error(m.replace(
                        "'<'",
                        match op {
                            CmpOp::Lt => "'<'",
                            CmpOp::Le => "'<='",
                            CmpOp::Gt => "'>'",
                            _ => "'>='",
                        },
                    ))
                })?;
                // NaN compares false every way, as in Python.
                let nan = matches!(a, Val::Float(f) if f.is_nan())
                    || matches!(b, Val::Float(f) if f.is_nan());
                if nan {
                    return Ok(false);
                }
                match op {
                    CmpOp::Lt => o == Less,
                    CmpOp::Le => o != Greater,
                    CmpOp::Gt => o == Greater,
                    _ => o != Less,
                }
            }
        })
    }

    pub fn equal(&self, a: &Val, b: &Val) -> bool {
        match (a, b) {
            (Val::Event, Val::Event) => true,
            (Val::Event, Val::Dict(_)) => py_eq(&from_json(self.event.root()), b),
            (Val::Dict(_), Val::Event) => py_eq(a, &from_json(self.event.root())),
            _ => py_eq(a, b),
        }
    }

    pub fn binop(&mut self, op: BinOp, a: &Val, b: &Val) -> R<Val> {
        let overflow = || self.fatal("unsupported: integer overflow");
        let ints = match (a, b) {
            (Val::Int(_) | Val::Bool(_), Val::Int(_) | Val::Bool(_)) => {
                let x = match a {
                    Val::Int(i) => *i,
                    Val::Bool(v) => *v as i64,
                    _ => 0,
                };
                let y = match b {
                    Val::Int(i) => *i,
                    Val::Bool(v) => *v as i64,
                    _ => 0,
                };
                Some((x, y))
            }
            _ => None,
        };
        if let Some((x, y)) = ints {
            let zero = || self.exc("ZeroDivisionError", "division by zero");
            return Ok(match op {
                BinOp::Add => Val::Int(x.checked_add(y).ok_or_else(overflow)?),
                BinOp::Sub => Val::Int(x.checked_sub(y).ok_or_else(overflow)?),
                BinOp::Mul => Val::Int(x.checked_mul(y).ok_or_else(overflow)?),
                BinOp::Div => {
                    if y == 0 {
                        return Err(zero());
                    }
                    Val::Float(x as f64 / y as f64)
                }
                BinOp::FloorDiv => {
                    if y == 0 {
                        return Err(zero());
                    }
                    Val::Int(
                        x.checked_div_euclid(y)
                            .map(|q| {
                                if y < 0 && x.rem_euclid(y) != 0 {
                                    q - 1
                                } else {
                                    q
                                }
                            })
                            .ok_or_else(overflow)?,
                    )
                }
                BinOp::Mod => {
                    if y == 0 {
                        return Err(zero());
                    }
                    let r = x.checked_rem(y).ok_or_else(overflow)?;
                    Val::Int(if r != 0 && ((r < 0) != (y < 0)) {
                        r + y
                    } else {
                        r
                    })
                }
                BinOp::Pow => {
                    if y < 0 {
                        Val::Float((x as f64).powf(y as f64))
                    } else {
                        Val::Int(
                            x.checked_pow(u32::try_from(y).map_err(|_| overflow())?)
                                .ok_or_else(overflow)?,
                        )
                    }
                }
                BinOp::BitOr => Val::Int(x | y),
                BinOp::BitAnd => Val::Int(x & y),
                BinOp::BitXor => Val::Int(x ^ y),
                BinOp::LShift => {
                    if !(0..63).contains(&y) {
                        return Err(overflow());
                    }
                    Val::Int(x.checked_mul(1i64 << y).ok_or_else(overflow)?)
                }
                BinOp::RShift => {
                    if y < 0 {
                        return Err(self.exc("ValueError", "negative shift count"));
                    }
                    Val::Int(x >> y.min(63))
                }
            });
        }
        let nums = match (a, b) {
            (
                Val::Int(_) | Val::Bool(_) | Val::Float(_),
                Val::Int(_) | Val::Bool(_) | Val::Float(_),
            ) => {
                let f = |v: &Val| match v {
                    Val::Int(i) => *i as f64,
                    Val::Bool(v) => *v as i64 as f64,
                    Val::Float(f) => *f,
                    _ => 0.0,
                };
                Some((f(a), f(b)))
            }
            _ => None,
        };
        if let Some((x, y)) = nums {
            let zero = || self.exc("ZeroDivisionError", "float division by zero");
            return Ok(Val::Float(match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => {
                    if y == 0.0 {
                        return Err(zero());
                    }
                    x / y
                }
                BinOp::FloorDiv => {
                    if y == 0.0 {
                        return Err(zero());
                    }
                    (x / y).floor()
                }
                BinOp::Mod => {
                    if y == 0.0 {
                        return Err(zero());
                    }
                    let r = x % y;
                    if r != 0.0 && ((r < 0.0) != (y < 0.0)) {
                        r + y
                    } else {
                        r
                    }
                }
                BinOp::Pow => x.powf(y),
                _ => {
                    return Err(self.type_error(
                        "unsupported operand type(s) for a bitwise operation on float",
                    ));
                }
            }));
        }
        // Building a sequence costs in proportion to its size.
        let built = match (op, a, b) {
            (BinOp::Add, Val::Str(x), Val::Str(y)) => x.len() + y.len(),
            (BinOp::Add, Val::List(x), Val::List(y)) => x.borrow().len() + y.borrow().len(),
            (BinOp::Mul, Val::Str(s), Val::Int(n)) | (BinOp::Mul, Val::Int(n), Val::Str(s)) => {
                s.len().saturating_mul((*n).max(0) as usize)
            }
            (BinOp::Mul, Val::List(l), Val::Int(n)) | (BinOp::Mul, Val::Int(n), Val::List(l)) => {
                l.borrow().len().saturating_mul((*n).max(0) as usize)
            }
            _ => 0,
        };
        match a {
            Val::Str(_) => self.check_str(built)?,
            _ => self.check_items(built)?,
        }
        self.charge(built)?;
        match (op, a, b) {
            (BinOp::Add, Val::Str(x), Val::Str(y)) => {
                self.check_str(x.len() + y.len())?;
                Ok(new_str(format!("{x}{y}")))
            }
            (BinOp::Add, Val::List(x), Val::List(y)) => {
                let mut v = x.borrow().clone();
                v.extend(y.borrow().iter().cloned());
                self.mk_list(v)
            }
            (BinOp::Add, Val::Tuple(x), Val::Tuple(y)) => {
                let mut v = (**x).clone();
                v.extend(y.iter().cloned());
                self.check_items(v.len())?;
                Ok(Val::Tuple(Rc::new(v)))
            }
            (BinOp::Mul, Val::Str(s), Val::Int(n)) | (BinOp::Mul, Val::Int(n), Val::Str(s)) => {
                let n = (*n).max(0) as usize;
                self.check_str(s.len().saturating_mul(n))?;
                Ok(new_str(s.repeat(n)))
            }
            (BinOp::Mul, Val::List(l), Val::Int(n)) | (BinOp::Mul, Val::Int(n), Val::List(l)) => {
                let n = (*n).max(0) as usize;
                let l = l.borrow();
                self.check_items(l.len().saturating_mul(n))?;
                let mut v = Vec::with_capacity(l.len() * n);
                for _ in 0..n {
                    v.extend(l.iter().cloned());
                }
                Ok(new_list(v))
            }
            (BinOp::Mod, Val::Str(f), args) => {
                let s = native::percent_format(self, f, args)?;
                self.mk_str(s)
            }
            (
                BinOp::BitOr | BinOp::BitAnd | BinOp::Sub | BinOp::BitXor,
                Val::Set(x),
                Val::Set(y),
            ) => {
                let (x, y) = (x.borrow(), y.borrow());
                let mut d = Dict::default();
                let has = |s: &Dict, k: &Val| matches!(s.contains(k), Ok(true));
                match op {
                    BinOp::BitOr => {
                        for k in x.keys.iter().chain(y.keys.iter()) {
                            d.insert(k.clone(), Val::None)
                                .map_err(|e| self.hkey_err(e))?;
                        }
                    }
                    BinOp::BitAnd => {
                        for k in x.keys.iter().filter(|k| has(&y, k)) {
                            d.insert(k.clone(), Val::None)
                                .map_err(|e| self.hkey_err(e))?;
                        }
                    }
                    BinOp::Sub => {
                        for k in x.keys.iter().filter(|k| !has(&y, k)) {
                            d.insert(k.clone(), Val::None)
                                .map_err(|e| self.hkey_err(e))?;
                        }
                    }
                    _ => {
                        for k in x
                            .keys
                            .iter()
                            .filter(|k| !has(&y, k))
                            .chain(y.keys.iter().filter(|k| !has(&x, k)))
                        {
                            d.insert(k.clone(), Val::None)
                                .map_err(|e| self.hkey_err(e))?;
                        }
                    }
                }
                Ok(new_set(d))
            }
            (BinOp::BitOr, Val::Dict(x), Val::Dict(y)) => {
                let mut d = x.borrow().clone();
                d.case_insensitive = false;
                let y = y.borrow();
                for (k, v) in y.keys.iter().zip(&y.vals) {
                    d.insert(k.clone(), v.clone())
                        .map_err(|e| self.hkey_err(e))?;
                }
                Ok(new_dict(d))
            }
            (BinOp::Add, Val::DateTime(t, o), Val::Delta(d))
            | (BinOp::Add, Val::Delta(d), Val::DateTime(t, o)) => {
                Ok(Val::DateTime(t.checked_add(*d).ok_or_else(overflow)?, *o))
            }
            (BinOp::Sub, Val::DateTime(t, o), Val::Delta(d)) => {
                Ok(Val::DateTime(t.checked_sub(*d).ok_or_else(overflow)?, *o))
            }
            (BinOp::Sub, Val::DateTime(t, o), Val::DateTime(u, p)) => {
                if o.is_some() != p.is_some() {
                    return Err(
                        self.type_error("can't subtract offset-naive and offset-aware datetimes")
                    );
                }
                Ok(Val::Delta(t.checked_sub(*u).ok_or_else(overflow)?))
            }
            (BinOp::Add, Val::Delta(x), Val::Delta(y)) => {
                Ok(Val::Delta(x.checked_add(*y).ok_or_else(overflow)?))
            }
            (BinOp::Sub, Val::Delta(x), Val::Delta(y)) => {
                Ok(Val::Delta(x.checked_sub(*y).ok_or_else(overflow)?))
            }
            (BinOp::Mul, Val::Delta(x), Val::Int(n)) | (BinOp::Mul, Val::Int(n), Val::Delta(x)) => {
                Ok(Val::Delta(x.checked_mul(*n).ok_or_else(overflow)?))
            }
            (BinOp::Div, Val::Delta(x), Val::Delta(y)) => {
                if *y == 0 {
                    return Err(self.exc("ZeroDivisionError", "division by zero"));
                }
                Ok(Val::Float(*x as f64 / *y as f64))
            }
            _ => Err(self.type_error(format!(
                "unsupported operand type(s) for {}: '{}' and '{}'",
                binop_symbol(op),
                type_name(a),
                type_name(b)
            ))),
        }
    }
}

fn binop_symbol(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::FloorDiv => "//",
        BinOp::Mod => "%",
        BinOp::Pow => "**",
        BinOp::BitOr => "|",
        BinOp::BitAnd => "&",
        BinOp::BitXor => "^",
        BinOp::LShift => "<<",
        BinOp::RShift => ">>",
    }
}

/// Python `is`: identity for containers, value identity for the singletons and the immutable
/// scalars CPython shares.
fn is_same(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::None, Val::None) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::List(x), Val::List(y)) => Rc::ptr_eq(x, y),
        (Val::Dict(x), Val::Dict(y)) | (Val::Set(x), Val::Set(y)) => Rc::ptr_eq(x, y),
        (Val::Tuple(x), Val::Tuple(y)) => Rc::ptr_eq(x, y),
        (Val::Event, Val::Event) => true,
        (Val::Native(x), Val::Native(y)) => x == y,
        (Val::Module(x), Val::Module(y)) => x == y,
        (Val::Func(x), Val::Func(y)) => Rc::ptr_eq(x, y),
        (Val::Mock(x), Val::Mock(y)) => Rc::ptr_eq(x, y),
        _ => false,
    }
}

/// Whether an exception of class `kind` is caught by `except <handler>:`.
pub fn exc_matches(kind: &str, handler: &str) -> bool {
    let handler = handler.rsplit('.').next().unwrap_or(handler);
    if handler == kind || handler == "Exception" || handler == "BaseException" {
        return true;
    }
    match handler {
        "LookupError" => matches!(kind, "KeyError" | "IndexError"),
        "ArithmeticError" => matches!(kind, "ZeroDivisionError" | "OverflowError"),
        "ValueError" => matches!(
            kind,
            "JSONDecodeError" | "AddressValueError" | "NetmaskValueError" | "UnicodeDecodeError"
        ),
        "AddressValueError" => false,
        _ => false,
    }
}

/// JSON to a value without the case-insensitive lookup of event objects (mock values).
fn from_json_plain(v: &Json) -> Val {
    match from_json(v) {
        Val::Dict(d) => {
            d.borrow_mut().case_insensitive = false;
            Val::Dict(d)
        }
        other => other,
    }
}
