//! Necessary conditions of a module function (`rule()`), as IR expressions the rule index can
//! use.
//!
//! [`necessary_condition`] returns an expression N such that, for every event, `rule(event)`
//! returning a truthy value without raising implies that N matches under the IR matcher.
//! N need not be sufficient: the engine still calls the native code (or the exact lowering of
//! `lower.rs`) on every event where N holds. Where nothing can be proven the answer is
//! `Const(true)`, never a guess.
//!
//! The analysis walks the function's statements with two functions per expression: `t(e)`, a
//! condition necessary for `e` to be truthy, and `f(e)`, one necessary for `e` to be falsy
//! (both assuming `e` did not raise: a raise is a non-match, so it needs no condition). A guard
//! `if C: return False` contributes `f(C)` to what follows; `if C: return True ... return False`
//! gives `t(C)`; `not` swaps the two. A loop or `try` gives the disjunction of `t(v)` over every
//! `return v` inside it and of what follows it, with the names it binds forgotten (so a guard
//! loop that only returns False costs nothing); `global` is skipped. Anything the analysis does
//! not understand (a call of a local function, a comprehension) gives `Const(true)` for that
//! part.
//!
//! Atoms are only produced where the IR's semantics cover Python's:
//! - `event.get("k") == "s"`: Python's `==` with a `str` literal is true only for an equal
//!   `str`, and the IR's cased exact match accepts that `str` (it is more permissive elsewhere:
//!   numbers compare by their text, arrays by any element; a necessary condition may be).
//! - `event.get("k") in CONST` where `CONST` is a literal list, tuple or set of strings, or a
//!   module-level name bound once to one, never rebound, never used other than as the right
//!   operand of `in`, and not replaced by a test's mock.
//! - `event["k"]` reads as `event.get("k")` (it raises where that gives None).
//! - `event.udm("event_type") == event_type.X` (the helper module imported once, not mocked):
//!   the `eventName` the CloudTrail data model (`udm.rs`) gives that type for, or false for a
//!   type it never gives.
//! - `event.get("k").startswith(p)`: a value that is not a `str` raises, so a truthy result
//!   means a `str` with the prefix.
//! - `not event.get("k")`: no value whose text proves it truthy ([`TRUTHY_TEXT`]).
//! - `event.deep_get("a", "b", ..., default=d)` in each of the positions above that read
//!   `event.get` (equality, membership, `startswith`, truthiness; not falsiness, see
//!   [`deep_path`]).
//! - `P.search(x)` (also `P.match`, `P.fullmatch`) where `P` is a module-level name bound once,
//!   by `re.compile("literal pattern")` with no flags, `re` imported once as itself, neither
//!   mocked, and `x` an `event.get` or `event.deep_get`: a match contains the pattern's leading
//!   literal characters ([`required_literal`]), stated as a case-sensitive substring test.
//! - `all([...])` / `any([...])` over a literal list, as `and` / `or` (the builtins, when the
//!   module neither rebinds nor mocks them).
//! - `aws_cloudtrail_success(event)` (imported from `panther_aws_helpers`, not rebound, not
//!   mocked): `errorCode` and `errorMessage` are both falsy, stated as "no value whose text
//!   proves it truthy" (see [`TRUTHY_TEXT`]).
//!
//! Field paths: Panther's `event.get(k)` reads the top-level key `k`, and when it is absent,
//! the first key equal to `k` ignoring case (`native::event_get`). IR paths are case-sensitive,
//! so every path made here carries a [`FieldPath::derive`] hook ([`panther_key`]) that performs
//! that same case-insensitive lookup when the literal key is absent. Keys with a dot are not
//! used: the IR would walk `a.b` as a nested path where Python reads only a flat key.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

use super::ast::*;
use super::value::same_lower;
use crate::event::{DeriveFn, Event};
use crate::ir::{self, Expr as Ir, FieldPath, Predicate, StrKind, StrMatch};

/// A regex that matches the text of a value only when the value is truthy in Python. The
/// matcher applies it to the text of every scalar of an array (an array with such an element is
/// non-empty, so truthy) and to the compact JSON of an object (`{}`, the one falsy object, has
/// only excluded characters). A number's text is made of digits, `.`, `e`, `E`, `+` and `-`,
/// so no number matches (zero is falsy); `false` is spelled with excluded letters while `true`
/// is not; any `str` with another character is non-empty; `null` has no text.
pub const TRUTHY_TEXT: &str = r"[^0-9.eE+\-fals{}\[\]]";

/// How many statements the walk may visit. An `if` whose body falls through is followed by the
/// rest of the function on both branches, so a long chain of them could blow up; past the
/// budget the answer is "no information" for what is left.
const FUEL: u32 = 5_000;

/// A necessary condition of `name(event)` returning a truthy value (see the module doc).
/// `mocked` names the module-level objects that a test may replace: none of them is trusted.
pub fn necessary_condition(body: &[Stmt], name: &str, mocked: &[&str]) -> ir::Expr {
    let mut scan = Scan::default();
    scan.stmts(body);
    let is_mocked = |n: &str| mocked.contains(&n);
    // Module-level constants: bound exactly once, by a module-level assignment of string
    // literals, and only ever read as the right operand of `in` (so never mutated, passed to a
    // function or rebound through `global`). A test mock may replace any module-level name.
    let mut consts: HashMap<String, Vec<String>> = HashMap::new();
    let mut success_imported = false;
    let mut event_type_aliases = HashSet::new();
    let mut re_imported = false;
    let mut compiled: Vec<(String, String)> = Vec::new();
    let mut def = None;
    for stmt in body {
        match &stmt.kind {
            StmtKind::Import(names) => {
                for (module, bound) in names {
                    re_imported |= module == "re" && bound == "re";
                    if module == "panther_event_type_helpers"
                        && scan.binds.get(bound) == Some(&1)
                        && !is_mocked(bound)
                    {
                        event_type_aliases.insert(bound.clone());
                    }
                }
            }
            StmtKind::Assign(targets, value) => {
                // A `str` constant is left out: `x in "abc"` is a substring test.
                if let [Expr::Name(n)] = targets.as_slice()
                    && matches!(value, Expr::List(_) | Expr::Tuple(_) | Expr::Set(_))
                    && let Some(strs) = str_collection(value)
                    && scan.binds.get(n) == Some(&1)
                    && !scan.loose.contains(n)
                    && !is_mocked(n)
                {
                    consts.insert(n.clone(), strs);
                }
                // `NAME = re.compile("pattern")`: checked once the imports are known.
                if let [Expr::Name(n)] = targets.as_slice()
                    && let Expr::Call(f, args) = value
                    && let Expr::Attr(module, method) = &**f
                    && matches!(&**module, Expr::Name(m) if m == "re")
                    && method == "compile"
                    && let [Arg::Pos(Expr::Const(Const::Str(pattern)))] = args.as_slice()
                    && scan.binds.get(n) == Some(&1)
                    && !is_mocked(n)
                    && let Some(literal) = required_literal(pattern)
                {
                    compiled.push((n.clone(), literal));
                }
            }
            StmtKind::ImportFrom(module, names) if module == "panther_aws_helpers" => {
                success_imported |= names.iter().any(|(n, bound)| {
                    n == "aws_cloudtrail_success" && bound == "aws_cloudtrail_success"
                });
            }
            StmtKind::Def(d) if d.name == name => def = Some(d.clone()),
            _ => {}
        }
    }
    let re_ok = re_imported && scan.binds.get("re") == Some(&1) && !is_mocked("re");
    let patterns: HashMap<String, String> = if re_ok {
        compiled.into_iter().collect()
    } else {
        HashMap::new()
    };
    let success_ok = success_imported
        && scan.binds.get("aws_cloudtrail_success") == Some(&1)
        && !is_mocked("aws_cloudtrail_success");
    let Some(def) = def else {
        return Ir::Const(true);
    };
    if scan.binds.get(name) != Some(&1) || is_mocked(name) {
        return Ir::Const(true);
    }
    let p = &def.params;
    if p.positional.len() != 1 || p.star.is_some() || p.starstar.is_some() || !p.kwonly.is_empty() {
        return Ir::Const(true);
    }
    let param = p.positional[0].0.clone();
    // Inside the function: a walrus could rebind a local the walk tracks, and rebinding the
    // parameter changes what `event.get` means; give up on both.
    let mut local = Scan::default();
    local.stmts(&def.body);
    if local.walrus || local.binds.contains_key(&param) {
        return Ir::Const(true);
    }
    // A module constant assigned inside the function is local there (and counted twice above).
    let builtins_ok = ["all", "any"]
        .into_iter()
        .filter(|n| !scan.binds.contains_key(*n) && !is_mocked(n))
        .collect();
    let ctx = Ctx {
        consts,
        builtins_ok,
        success_ok,
        event_type_aliases,
        patterns,
        param,
        fuel: Cell::new(FUEL),
    };
    ctx.block(&[&def.body], &Env::new())
}

/// The lookup hook of every path made here: Panther's case-insensitive fallback, run when the
/// event has no literal top-level key `key` (see `native::event_get`, which this mirrors:
/// the first key of the parsed object, in its order, equal to `key` ignoring case).
pub fn panther_key(key: &str, event: &Event<'_>) -> Option<Json> {
    // The event's top-level keys were indexed when it was decoded: comparing them costs far
    // less than a search of the text, and only the value found is built.
    event.find_key(|k| same_lower(k, key)).cloned()
}

/// The path `event.get(key)` reads, or `None` for a key the IR would read differently.
fn key_path(key: &str) -> Option<FieldPath> {
    if key.is_empty() || key.contains('.') {
        return None;
    }
    // An event caches derived values by the path's text alone, whatever derives them: a key
    // that is also an ECS field the Elastic view derives (`@timestamp`) could be served the
    // ECS value in a run that loads both formats (or poison it with ours). Such keys are not
    // used.
    if crate::ecs::is_derivable(key) {
        return None;
    }
    Some(FieldPath {
        derive: Some(panther_key as DeriveFn),
        ..FieldPath::new(key)
    })
}

/// The symbol of `event.deep_get(...)` called with `args`: two string keys or more, and at most
/// a constant `default=` keyword.
fn deep_get_sym(args: &[Arg]) -> Option<Sym> {
    let mut keys = Vec::new();
    let mut default = Const::None;
    for arg in args {
        match arg {
            Arg::Pos(Expr::Const(Const::Str(k))) => keys.push(k.clone()),
            Arg::Kw(k, Expr::Const(c)) if k == "default" => default = c.clone(),
            _ => return None,
        }
    }
    (keys.len() >= 2).then_some(Sym::DeepGet { keys, default })
}

/// The lookup hook of the paths [`deep_path`] makes: Panther's `deep_get` walk, run when the
/// IR found nothing at the nested path as written. Each key as written, else the first key
/// equal to it ignoring case (as `helpers::deep_get` reads the event); anything but an object
/// on the way leads nowhere.
pub fn panther_deep_key(path: &str, event: &Event<'_>) -> Option<Json> {
    let mut keys = path.split('.');
    let mut cur = super::native::event_lookup(event, keys.next()?)?;
    for key in keys {
        let Json::Object(map) = cur else {
            return None;
        };
        cur = super::native::object_lookup(map, key)?;
    }
    Some(cur.clone())
}

/// The hook of a [`deep_path`] guard: nothing to derive (the guard reads one literal key).
fn no_value(_: &str, _: &Event<'_>) -> Option<Json> {
    None
}

/// The IR paths of `event.deep_get(*keys)`: the nested path, whose hook ([`panther_deep_key`])
/// finds what Python finds where the keys are spelt in another case, and a guard, the flat key
/// `a.b` written as one top-level key, which the IR reads in place of the nested path (so a
/// condition must also hold where the guard exists). `None` for keys the IR would split
/// differently or an ECS field name.
///
/// Where the IR finds a value at the nested path as written, `deep_get` finds the same one (each
/// key as written is tried first, the last of duplicated keys in both); where an array is on
/// the way the IR fans out over its elements while `deep_get` gives the default. A positive
/// test on the IR's values is therefore necessary for the same test on Python's; a negated
/// one is not.
fn deep_path(keys: &[String]) -> Option<(FieldPath, FieldPath)> {
    if keys.iter().any(|k| k.is_empty() || k.contains('.')) {
        return None;
    }
    let joined = keys.join(".");
    if crate::ecs::is_derivable(&joined) {
        return None;
    }
    let nested = FieldPath {
        derive: Some(panther_deep_key as DeriveFn),
        ..FieldPath::new(&joined)
    };
    let guard = FieldPath {
        hash: FieldPath::text_hash(&joined),
        raw: joined.clone(),
        segments: vec![joined],
        // Set so that the guard never equals (nor is deduplicated with) a nested path of the
        // same text read by another rule.
        derive: Some(no_value as DeriveFn),
    };
    Some((nested, guard))
}

/// Where an `event.get` or `event.deep_get` value is read in the IR.
struct Read {
    path: FieldPath,
    /// A flat key that the IR would read instead of `path` ([`deep_path`]).
    guard: Option<FieldPath>,
    default: Const,
}

impl Read {
    fn of(sym: &Sym) -> Option<Read> {
        match sym {
            Sym::Get { key, default } => Some(Read {
                path: key_path(key)?,
                guard: None,
                default: default.clone(),
            }),
            Sym::DeepGet { keys, default } => {
                let (path, guard) = deep_path(keys)?;
                Some(Read {
                    path,
                    guard: Some(guard),
                    default: default.clone(),
                })
            }
            _ => None,
        }
    }

    /// Some predicate holds on a value read, or `default_hit` (the default may pass the test).
    fn any(self, preds: Vec<Predicate>, default_hit: bool) -> Ir {
        let mut alts: Vec<Ir> = preds
            .into_iter()
            .map(|pred| field_at(self.path.clone(), pred))
            .collect();
        if let Some(guard) = self.guard {
            alts.push(field_at(guard, Predicate::Exists(true)));
        }
        alts.push(Ir::Const(default_hit));
        Ir::or(alts)
    }
}

/// A substring of every text that Python's `re` pattern `pattern` (compiled without flags)
/// finds: its leading literal characters (after a `^`), up to the first character that is
/// special or optional. `None` when there is none, or the pattern has an alternation or a
/// `(?` group (inline flags such as `(?i)` change how the literal matches).
fn required_literal(pattern: &str) -> Option<String> {
    if pattern.contains('|') || pattern.contains("(?") {
        return None;
    }
    let mut chars = pattern
        .strip_prefix('^')
        .unwrap_or(pattern)
        .chars()
        .peekable();
    let mut out = String::new();
    while let Some(c) = chars.next() {
        let literal = match c {
            // An escaped punctuation character is itself; `\d`, `\b` and the like are classes
            // or assertions.
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => e,
                _ => break,
            },
            '.' | '^' | '$' | '*' | '+' | '?' | '{' | '}' | '[' | ']' | '(' | ')' => break,
            c => c,
        };
        // A character that may repeat zero times is not required.
        if matches!(chars.peek(), Some('*' | '?' | '{')) {
            break;
        }
        out.push(literal);
    }
    (!out.is_empty()).then_some(out)
}

/// A literal string, or a literal list, tuple or set of strings.
fn str_collection(e: &Expr) -> Option<Vec<String>> {
    match e {
        Expr::Const(Const::Str(s)) => Some(vec![s.clone()]),
        Expr::List(items) | Expr::Tuple(items) | Expr::Set(items) => items
            .iter()
            .map(|i| match i {
                Expr::Const(Const::Str(s)) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Where names are bound, and where they are read other than as the right operand of `in`.
#[derive(Default)]
struct Scan {
    /// How many times each name is bound (assignment, `for`, `def`, import, `global`, `del`,
    /// `except ... as`, walrus, comprehension and lambda variables, parameters).
    binds: HashMap<String, usize>,
    /// Names read anywhere else than as the right operand of `in` / `not in`.
    loose: HashSet<String>,
    walrus: bool,
}

impl Scan {
    fn bind(&mut self, name: &str) {
        *self.binds.entry(name.to_string()).or_default() += 1;
    }

    fn target(&mut self, t: &Expr) {
        match t {
            Expr::Name(n) => self.bind(n),
            Expr::Tuple(items) | Expr::List(items) => items.iter().for_each(|i| self.target(i)),
            Expr::Starred(inner) => self.target(inner),
            // `x.a = ...` and `x[k] = ...` mutate `x`: a read that is not an `in`.
            other => self.expr(other),
        }
    }

    fn params(&mut self, p: &Params) {
        for (n, default) in p.positional.iter().chain(&p.kwonly) {
            self.bind(n);
            if let Some(d) = default {
                self.expr(d);
            }
        }
        for n in p.star.iter().chain(&p.starstar) {
            self.bind(n);
        }
    }

    fn stmts(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            match &s.kind {
                StmtKind::Expr(e) | StmtKind::Return(Some(e)) | StmtKind::Raise(Some(e)) => {
                    self.expr(e)
                }
                StmtKind::Return(None) | StmtKind::Raise(None) => {}
                StmtKind::Assign(targets, value) => {
                    targets.iter().for_each(|t| self.target(t));
                    self.expr(value);
                }
                StmtKind::AugAssign(t, _, value) => {
                    self.target(t);
                    self.expr(t);
                    self.expr(value);
                }
                StmtKind::If(c, a, b) | StmtKind::While(c, a, b) => {
                    self.expr(c);
                    self.stmts(a);
                    self.stmts(b);
                }
                StmtKind::For(t, iter, a, b) => {
                    self.target(t);
                    self.expr(iter);
                    self.stmts(a);
                    self.stmts(b);
                }
                StmtKind::Break | StmtKind::Continue | StmtKind::Pass => {}
                StmtKind::Try {
                    body,
                    handlers,
                    orelse,
                    finally,
                } => {
                    self.stmts(body);
                    for h in handlers {
                        if let Some(n) = &h.name {
                            self.bind(n);
                        }
                        self.stmts(&h.body);
                    }
                    self.stmts(orelse);
                    self.stmts(finally);
                }
                StmtKind::Def(def) => {
                    self.bind(&def.name);
                    self.params(&def.params);
                    self.stmts(&def.body);
                }
                StmtKind::Import(names) | StmtKind::ImportFrom(_, names) => {
                    names.iter().for_each(|(_, bound)| self.bind(bound));
                }
                StmtKind::Global(names) => {
                    // `global` lets a function rebind the name: never a constant.
                    for n in names {
                        self.bind(n);
                        self.bind(n);
                    }
                }
                StmtKind::Assert(a, b) => {
                    self.expr(a);
                    if let Some(b) = b {
                        self.expr(b);
                    }
                }
                StmtKind::Del(targets) => targets.iter().for_each(|t| self.target(t)),
            }
        }
    }

    fn comps(&mut self, comps: &[Comprehension]) {
        for c in comps {
            self.target(&c.target);
            self.expr(&c.iter);
            c.conds.iter().for_each(|e| self.expr(e));
        }
    }

    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::Const(_) => {}
            Expr::Name(n) => {
                self.loose.insert(n.clone());
            }
            Expr::Attr(x, _) | Expr::Unary(_, x) | Expr::Starred(x) => self.expr(x),
            Expr::Subscript(a, b) | Expr::Bin(_, a, b) => {
                self.expr(a);
                self.expr(b);
            }
            Expr::Slice(a, b, c) => {
                for x in [a, b, c].into_iter().flatten() {
                    self.expr(x);
                }
            }
            Expr::Call(f, args) => {
                self.expr(f);
                for a in args {
                    match a {
                        Arg::Pos(x) | Arg::Star(x) | Arg::Kw(_, x) | Arg::StarStar(x) => {
                            self.expr(x)
                        }
                    }
                }
            }
            Expr::And(items)
            | Expr::Or(items)
            | Expr::List(items)
            | Expr::Tuple(items)
            | Expr::Set(items) => items.iter().for_each(|i| self.expr(i)),
            Expr::Compare(left, rest) => {
                self.expr(left);
                for (op, right) in rest {
                    match (op, right) {
                        // The one read a constant may have: membership does not mutate it.
                        (CmpOp::In | CmpOp::NotIn, Expr::Name(_)) => {}
                        _ => self.expr(right),
                    }
                }
            }
            Expr::IfExp(a, b, c) => {
                self.expr(a);
                self.expr(b);
                self.expr(c);
            }
            Expr::Dict(items) => {
                for (k, v) in items {
                    if let Some(k) = k {
                        self.expr(k);
                    }
                    self.expr(v);
                }
            }
            Expr::ListComp(x, comps) | Expr::SetComp(x, comps) | Expr::GenExp(x, comps) => {
                self.comps(comps);
                self.expr(x);
            }
            Expr::DictComp(k, v, comps) => {
                self.comps(comps);
                self.expr(k);
                self.expr(v);
            }
            Expr::FString(parts) => self.fparts(parts),
            Expr::Lambda(params, body) => {
                self.params(params);
                self.expr(body);
            }
            Expr::Walrus(n, value) => {
                self.walrus = true;
                self.bind(n);
                self.expr(value);
            }
        }
    }

    fn fparts(&mut self, parts: &[FPart]) {
        for part in parts {
            if let FPart::Expr { expr, spec, .. } = part {
                self.expr(expr);
                self.fparts(spec);
            }
        }
    }
}

/// A value the walk can reason about.
#[derive(Clone, Debug)]
enum Sym {
    /// `event.get(key, default)`.
    Get {
        key: String,
        default: Const,
    },
    /// `event.deep_get(*keys, default=default)`, two keys or more.
    DeepGet {
        keys: Vec<String>,
        default: Const,
    },
    Const(Const),
    Strs(Vec<String>),
    /// `event.udm("event_type")`: a `str` from the CloudTrail data model (`udm.rs`), or None.
    EventType,
}

type Env = HashMap<String, Sym>;

struct Ctx {
    consts: HashMap<String, Vec<String>>,
    /// The builtins `all` and `any` where the module neither binds nor mocks them.
    builtins_ok: HashSet<&'static str>,
    success_ok: bool,
    /// Names bound once, by `import panther_event_type_helpers as NAME`, and never mocked.
    event_type_aliases: HashSet<String>,
    /// Module-level compiled patterns (see the module doc), by name: the literal text every
    /// match contains.
    patterns: HashMap<String, String>,
    param: String,
    fuel: Cell<u32>,
}

fn truthy_const(c: &Const) -> bool {
    match c {
        Const::None => false,
        Const::Bool(b) => *b,
        Const::Int(i) => *i != 0,
        Const::Float(f) => *f != 0.0,
        Const::Str(s) => !s.is_empty(),
    }
}

impl Ctx {
    /// A condition necessary for the statements (a stack of slices run in order) to return a
    /// truthy value; falling off the end returns `None`.
    fn block(&self, conts: &[&[Stmt]], env: &Env) -> Ir {
        let Some((idx, first)) = conts.iter().enumerate().find(|(_, s)| !s.is_empty()) else {
            return Ir::Const(false);
        };
        let fuel = self.fuel.get();
        if fuel == 0 {
            return Ir::Const(true);
        }
        self.fuel.set(fuel - 1);
        let stmt = &first[0];
        let mut rest: Vec<&[Stmt]> = Vec::with_capacity(conts.len() - idx);
        rest.push(&first[1..]);
        rest.extend_from_slice(&conts[idx + 1..]);
        match &stmt.kind {
            StmtKind::Return(None) | StmtKind::Raise(_) => Ir::Const(false),
            StmtKind::Return(Some(e)) => self.t(e, env),
            StmtKind::Pass | StmtKind::Expr(Expr::Const(_)) => self.block(&rest, env),
            StmtKind::Assert(c, _) => Ir::and(vec![self.t(c, env), self.block(&rest, env)]),
            StmtKind::Assign(targets, value) => {
                let [Expr::Name(n)] = targets.as_slice() else {
                    return Ir::Const(true);
                };
                let mut env = env.clone();
                // A local collection could be mutated in place (`names.append(...)` inside a
                // later expression) before `in` reads it: only immutable values are tracked.
                match self.sym(value, &env) {
                    Some(sym @ (Sym::Get { .. } | Sym::DeepGet { .. } | Sym::Const(_))) => {
                        env.insert(n.clone(), sym)
                    }
                    _ => env.remove(n),
                };
                self.block(&rest, &env)
            }
            StmtKind::If(c, body, orelse) => {
                let mut then_path: Vec<&[Stmt]> = vec![body];
                then_path.extend_from_slice(&rest);
                let mut else_path: Vec<&[Stmt]> = vec![orelse];
                else_path.extend_from_slice(&rest);
                Ir::or(vec![
                    Ir::and(vec![self.t(c, env), self.block(&then_path, env)]),
                    Ir::and(vec![self.f(c, env), self.block(&else_path, env)]),
                ])
            }
            // `global` only says where later assignments go; the walk tracks names either way.
            StmtKind::Global(_) => self.block(&rest, env),
            // A loop or `try` returns a truthy value either from a `return` inside it, whatever
            // guards lead there, or later, from what follows it. Names it binds are forgotten
            // on both paths, since how often it ran is unknown.
            StmtKind::For(..) | StmtKind::While(..) | StmtKind::Try { .. } => {
                let mut inner = Scan::default();
                inner.stmts(std::slice::from_ref(stmt));
                if inner.walrus {
                    return Ir::Const(true);
                }
                let mut env = env.clone();
                env.retain(|name, _| !inner.binds.contains_key(name));
                let mut returns = Vec::new();
                returns_in(std::slice::from_ref(stmt), &mut returns);
                let mut alts: Vec<Ir> = returns
                    .into_iter()
                    .map(|value| match value {
                        Some(e) => self.t(e, &env),
                        None => Ir::Const(false),
                    })
                    .collect();
                alts.push(self.block(&rest, &env));
                Ir::or(alts)
            }
            // Calls for their effect, nested definitions, `del`: no information about what
            // follows.
            _ => Ir::Const(true),
        }
    }

    fn is_event(&self, e: &Expr) -> bool {
        matches!(e, Expr::Name(n) if *n == self.param)
    }

    fn sym(&self, e: &Expr, env: &Env) -> Option<Sym> {
        match e {
            Expr::Const(c) => Some(Sym::Const(c.clone())),
            Expr::Name(n) if *n == self.param => None,
            Expr::Name(n) => match env.get(n) {
                Some(sym) => Some(sym.clone()),
                None => self.consts.get(n).map(|s| Sym::Strs(s.clone())),
            },
            Expr::List(_) | Expr::Tuple(_) | Expr::Set(_) => str_collection(e).map(Sym::Strs),
            // `event[k]` is `event.get(k)`, or a KeyError (no match) where that is None.
            Expr::Subscript(recv, key) if self.is_event(recv) => match &**key {
                Expr::Const(Const::Str(k)) => Some(Sym::Get {
                    key: k.clone(),
                    default: Const::None,
                }),
                _ => None,
            },
            // `event_type.FAILED_LOGIN`: a constant of the helper module.
            Expr::Attr(module, name) => match &**module {
                Expr::Name(m) if self.event_type_aliases.contains(m) => {
                    crate::python::helpers::event_type_constant(name)
                        .map(|c| Sym::Const(Const::Str(c.to_string())))
                }
                _ => None,
            },
            Expr::Call(f, args) => {
                let Expr::Attr(recv, method) = &**f else {
                    return None;
                };
                if method == "udm" && self.is_event(recv) {
                    return match args.as_slice() {
                        [Arg::Pos(Expr::Const(Const::Str(k)))] if k == "event_type" => {
                            Some(Sym::EventType)
                        }
                        _ => None,
                    };
                }
                if method == "deep_get" && self.is_event(recv) {
                    return deep_get_sym(args);
                }
                if method != "get" || !self.is_event(recv) {
                    return None;
                }
                match args.as_slice() {
                    [Arg::Pos(Expr::Const(Const::Str(k)))] => Some(Sym::Get {
                        key: k.clone(),
                        default: Const::None,
                    }),
                    [
                        Arg::Pos(Expr::Const(Const::Str(k))),
                        Arg::Pos(Expr::Const(default)),
                    ] => Some(Sym::Get {
                        key: k.clone(),
                        default: default.clone(),
                    }),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Necessary for `e` to be truthy (given it did not raise).
    fn t(&self, e: &Expr, env: &Env) -> Ir {
        match e {
            Expr::Const(c) => Ir::Const(truthy_const(c)),
            Expr::Unary(UnaryOp::Not, inner) => self.f(inner, env),
            Expr::And(items) => Ir::and(items.iter().map(|i| self.t(i, env)).collect()),
            // `a or b` is truthy when the operand it returns is.
            Expr::Or(items) => Ir::or(items.iter().map(|i| self.t(i, env)).collect()),
            Expr::IfExp(c, a, b) => Ir::or(vec![
                Ir::and(vec![self.t(c, env), self.t(a, env)]),
                Ir::and(vec![self.f(c, env), self.t(b, env)]),
            ]),
            Expr::Compare(left, rest) if rest.len() == 1 => {
                let (op, right) = &rest[0];
                match op {
                    CmpOp::Eq | CmpOp::In => self.member(*op, left, right, env),
                    _ => Ir::Const(true),
                }
            }
            Expr::Call(f, args) => match self.sym(e, env) {
                Some(sym) => get_truthy(sym),
                None => self.call_t(f, args, env),
            },
            Expr::Name(_) => match self.sym(e, env) {
                Some(sym) => get_truthy(sym),
                None => Ir::Const(true),
            },
            _ => Ir::Const(true),
        }
    }

    /// Necessary for `e` to be falsy (given it did not raise).
    fn f(&self, e: &Expr, env: &Env) -> Ir {
        match e {
            Expr::Const(c) => Ir::Const(!truthy_const(c)),
            Expr::Unary(UnaryOp::Not, inner) => self.t(inner, env),
            // `a and b` is falsy when the operand it returns is: some operand is falsy.
            Expr::And(items) => Ir::or(items.iter().map(|i| self.f(i, env)).collect()),
            Expr::Or(items) => Ir::and(items.iter().map(|i| self.f(i, env)).collect()),
            Expr::IfExp(c, a, b) => Ir::or(vec![
                Ir::and(vec![self.t(c, env), self.f(a, env)]),
                Ir::and(vec![self.f(c, env), self.f(b, env)]),
            ]),
            Expr::Compare(left, rest) if rest.len() == 1 => {
                let (op, right) = &rest[0];
                match op {
                    // `x != "s"` is falsy only when `x == "s"` holds (both are plain `str`
                    // comparisons here: `member` refuses anything else).
                    CmpOp::Ne => self.member(CmpOp::Eq, left, right, env),
                    CmpOp::NotIn => self.member(CmpOp::In, left, right, env),
                    _ => Ir::Const(true),
                }
            }
            Expr::Call(f, args) => match self.sym(e, env) {
                Some(sym) => get_falsy(sym),
                None => self.call_f(f, args, env),
            },
            Expr::Name(_) => match self.sym(e, env) {
                Some(sym) => get_falsy(sym),
                None => Ir::Const(true),
            },
            _ => Ir::Const(true),
        }
    }

    /// `all([...])` and `any([...])` over a list literal, when the builtin is not rebound:
    /// every element is evaluated (any may raise), then combined like `and` / `or`.
    fn all_any<'e>(&self, f: &Expr, args: &'e [Arg]) -> Option<(bool, &'e [Expr])> {
        let Expr::Name(n) = f else {
            return None;
        };
        if !self.builtins_ok.contains(n.as_str()) {
            return None;
        }
        let [Arg::Pos(Expr::List(items) | Expr::Tuple(items))] = args else {
            return None;
        };
        match n.as_str() {
            "all" => Some((true, items)),
            "any" => Some((false, items)),
            _ => None,
        }
    }

    fn call_f(&self, f: &Expr, args: &[Arg], env: &Env) -> Ir {
        match self.all_any(f, args) {
            Some((true, items)) => Ir::or(items.iter().map(|i| self.f(i, env)).collect()),
            Some((false, items)) => Ir::and(items.iter().map(|i| self.f(i, env)).collect()),
            None => Ir::Const(true),
        }
    }

    /// Necessary for `left == right` (`op` is `Eq`) or `left in right` (`op` is `In`) to be
    /// true, where `left` (or either side of `==`) is an `event.get` and the other side a string
    /// (`==`) or a collection of strings (`in`). Anything else gives no information: `==` with a
    /// list is list equality (an empty list equals an empty array), and `in` with a string is a
    /// substring test.
    fn member(&self, op: CmpOp, left: &Expr, right: &Expr, env: &Env) -> Ir {
        let (Some(a), Some(b)) = (self.sym(left, env), self.sym(right, env)) else {
            return Ir::Const(true);
        };
        match (op, &a, &b) {
            (CmpOp::Eq, Sym::EventType, Sym::Const(Const::Str(s)))
            | (CmpOp::Eq, Sym::Const(Const::Str(s)), Sym::EventType) => {
                return event_type_is(std::slice::from_ref(s));
            }
            (CmpOp::In, Sym::EventType, Sym::Strs(items)) if !matches!(right, Expr::Const(_)) => {
                return event_type_is(items);
            }
            _ => {}
        }
        let (get, needles) = match (op, a, b) {
            (CmpOp::Eq, get, Sym::Const(Const::Str(s)))
            | (CmpOp::Eq, Sym::Const(Const::Str(s)), get) => (get, vec![s]),
            (CmpOp::In, get, Sym::Strs(items)) if !matches!(right, Expr::Const(_)) => (get, items),
            _ => return Ir::Const(true),
        };
        let Some(read) = Read::of(&get) else {
            return Ir::Const(true);
        };
        // The default is what an absent key gives: when it equals a needle, absence suffices.
        let default_hit = matches!(&read.default, Const::Str(d) if needles.contains(d));
        read.any(
            needles
                .iter()
                .map(|n| Predicate::Str(StrMatch::new(StrKind::Exact, n, true)))
                .collect(),
            default_hit,
        )
    }

    fn call_t(&self, f: &Expr, args: &[Arg], env: &Env) -> Ir {
        match self.all_any(f, args) {
            Some((true, items)) => return Ir::and(items.iter().map(|i| self.t(i, env)).collect()),
            Some((false, items)) => return Ir::or(items.iter().map(|i| self.t(i, env)).collect()),
            None => {}
        }
        match f {
            Expr::Name(n) if n == "aws_cloudtrail_success" && self.success_ok => {
                if !matches!(args, [Arg::Pos(x)] if self.is_event(x)) {
                    return Ir::Const(true);
                }
                // The helper returns False when `errorCode` is truthy, else whether
                // `errorMessage` is falsy (both read as `event.get(k, "")`).
                let falsy = |key: &str| match (key_path(key), truthy_text()) {
                    (Some(path), Some(pred)) => Ir::not(field_at(path, pred)),
                    _ => Ir::Const(true),
                };
                Ir::and(vec![falsy("errorCode"), falsy("errorMessage")])
            }
            Expr::Attr(recv, method) if method == "startswith" => {
                let Some(read) = self.sym(recv, env).as_ref().and_then(Read::of) else {
                    return Ir::Const(true);
                };
                let needles = match args {
                    [Arg::Pos(x)] => match self.sym(x, env) {
                        Some(Sym::Const(Const::Str(s))) => vec![s],
                        // `startswith` takes a tuple of prefixes (a list raises).
                        Some(Sym::Strs(items)) if matches!(x, Expr::Tuple(_)) => items,
                        _ => return Ir::Const(true),
                    },
                    _ => return Ir::Const(true),
                };
                // An absent key gives the default: a `str` default may have the prefix; any
                // other default raises (`None.startswith`), which is no match.
                let default_hit = match &read.default {
                    Const::Str(d) => needles.iter().any(|n| d.starts_with(n.as_str())),
                    _ => false,
                };
                read.any(
                    needles
                        .iter()
                        .map(|n| Predicate::Str(StrMatch::new(StrKind::Prefix, n, true)))
                        .collect(),
                    default_hit,
                )
            }
            // A compiled module pattern: a match is found in a `str` (anything else raises),
            // and contains the pattern's leading literal.
            Expr::Attr(recv, method)
                if matches!(method.as_str(), "search" | "match" | "fullmatch") =>
            {
                let Expr::Name(name) = &**recv else {
                    return Ir::Const(true);
                };
                let Some(literal) = self.patterns.get(name) else {
                    return Ir::Const(true);
                };
                let [Arg::Pos(x)] = args else {
                    return Ir::Const(true);
                };
                let Some(read) = self.sym(x, env).as_ref().and_then(Read::of) else {
                    return Ir::Const(true);
                };
                let default_hit =
                    matches!(&read.default, Const::Str(d) if d.contains(literal.as_str()));
                read.any(
                    vec![Predicate::Str(StrMatch::new(
                        StrKind::Contains,
                        literal,
                        true,
                    ))],
                    default_hit,
                )
            }
            _ => Ir::Const(true),
        }
    }
}

/// The values of every `return` in `stmts` (nested blocks included, nested definitions not:
/// their returns are another function's).
fn returns_in<'s>(stmts: &'s [Stmt], out: &mut Vec<Option<&'s Expr>>) {
    for s in stmts {
        match &s.kind {
            StmtKind::Return(value) => out.push(value.as_ref()),
            _ => s
                .blocks()
                .into_iter()
                .for_each(|block| returns_in(block, out)),
        }
    }
}

/// Necessary for an `event.get` value to be falsy: no value whose text proves it truthy (an
/// absent key gives the default, and no value was found then either).
fn get_falsy(sym: Sym) -> Ir {
    match sym {
        Sym::Get { key, .. } => match (key_path(&key), truthy_text()) {
            (Some(path), Some(pred)) => Ir::not(field_at(path, pred)),
            _ => Ir::Const(true),
        },
        Sym::Const(c) => Ir::Const(!truthy_const(&c)),
        // A nested path fans out over arrays in the IR where `deep_get` gives the default: a
        // negated test there would not be sound.
        Sym::DeepGet { .. } | Sym::Strs(_) | Sym::EventType => Ir::Const(true),
    }
}

/// The predicate "the value's text proves it truthy"; `None` (no information) if the constant
/// pattern did not compile, which would only lose the condition.
fn truthy_text() -> Option<Predicate> {
    ir::Regex::new(TRUTHY_TEXT).ok().map(Predicate::Regex)
}

/// Necessary for an `event.get` value to be truthy: a value was found (a case-insensitive match
/// included), or the default is truthy.
fn get_truthy(sym: Sym) -> Ir {
    match sym {
        Sym::Get { key, default } => match key_path(&key) {
            Some(path) => Ir::or(vec![
                field_at(path, Predicate::Exists(true)),
                Ir::Const(truthy_const(&default)),
            ]),
            None => Ir::Const(true),
        },
        Sym::DeepGet { .. } => match Read::of(&sym) {
            Some(read) => {
                let default_hit = truthy_const(&read.default);
                read.any(vec![Predicate::Exists(true)], default_hit)
            }
            None => Ir::Const(true),
        },
        Sym::Const(c) => Ir::Const(truthy_const(&c)),
        // Every value the data model gives is a non-empty `str`, or None.
        Sym::EventType => event_type_is(&[
            "failed_login".to_string(),
            "successful_login".to_string(),
            "user_account_created".to_string(),
            "account_created".to_string(),
        ]),
        Sym::Strs(_) => Ir::Const(true),
    }
}

/// Necessary for `event.udm("event_type")` to be one of `values`: the `eventName` each comes
/// from in the CloudTrail data model (`udm::get_event_type`, which reads it with `event.get`);
/// a value the model never gives cannot be met.
fn event_type_is(values: &[String]) -> Ir {
    let Some(path) = key_path("eventName") else {
        return Ir::Const(true);
    };
    let mut names: Vec<&str> = values
        .iter()
        .filter_map(|v| match v.as_str() {
            "failed_login" | "successful_login" => Some("ConsoleLogin"),
            "user_account_created" => Some("CreateUser"),
            "account_created" => Some("CreateAccountResult"),
            _ => None,
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    Ir::or(
        names
            .into_iter()
            .map(|n| {
                field_at(
                    path.clone(),
                    Predicate::Str(StrMatch::new(StrKind::Exact, n, true)),
                )
            })
            .collect(),
    )
}

fn field_at(path: FieldPath, pred: Predicate) -> Ir {
    Ir::Field { path, pred }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::{CallCtx, MemoryKv, Mocks, Module, truthy};
    use crate::event::Event;
    use crate::ir::Expr as Ir;

    const IMPORT: &str = "from panther_aws_helpers import aws_cloudtrail_success\n";

    fn module(src: &str) -> Module {
        match Module::parse(src, "test.py") {
            Ok(m) => m,
            Err(d) => panic!("{src}\nload: {}", d.message),
        }
    }

    /// Whether `rule(event)` is truthy without raising, with `mocks`.
    fn rule_holds(m: &Module, event: &Value, mocks: &Mocks) -> bool {
        let mut kv = MemoryKv::new(16);
        let mut ctx = CallCtx {
            step_budget: 100_000,
            state: &mut kv,
            now_ms: 1_700_000_000_000,
            mocks,
        };
        matches!(m.call("rule", &Event::new(event), &mut ctx), Ok(v) if truthy(&v))
    }

    fn n_matches(n: &Ir, event: &Value) -> bool {
        crate::eval::matcher::matches(n, &Event::new(event))
    }

    /// Checks soundness on every event (rule truthy => N matches) and returns, per event,
    /// whether N matched, so tests can also check that N filters.
    fn check(src: &str, events: &[Value]) -> (Ir, Vec<bool>) {
        let m = module(src);
        let n = m.necessary("rule");
        let mut out = Vec::new();
        for event in events {
            let holds = rule_holds(&m, event, &Mocks::none());
            let matched = n_matches(&n, event);
            assert!(!holds || matched, "{src}\nN = {n}\nviolated on {event}");
            out.push(matched);
        }
        (n, out)
    }

    #[test]
    fn equality_and_success() {
        let src = format!(
            "{IMPORT}def rule(event):\n    return aws_cloudtrail_success(event) and event.get(\"eventName\") == \"CreateUser\"\n"
        );
        let (n, got) = check(
            &src,
            &[
                json!({"eventName": "CreateUser"}),
                json!({"eventName": "DeleteUser"}),
                json!({"eventName": "CreateUser", "errorCode": "AccessDenied"}),
                json!({"eventName": "CreateUser", "errorMessage": "denied"}),
                json!({"eventName": "CreateUser", "errorCode": ""}),
                json!({"eventName": "CreateUser", "errorCode": null}),
                json!({"eventName": "CreateUser", "errorCode": 0}),
                json!({"eventName": "CreateUser", "errorCode": 0.0}),
                json!({"eventName": "CreateUser", "errorCode": false}),
                json!({"eventName": "CreateUser", "errorCode": {}}),
                json!({"eventName": "CreateUser", "errorCode": []}),
                json!({"eventName": "CreateUser", "errorCode": [""]}),
                json!({"eventName": "CreateUser", "errorCode": "0"}),
                json!({"eventName": "CreateUser", "errorCode": true}),
            ],
        );
        assert!(n.to_string().contains("eventName"), "{n}");
        assert_eq!(
            got,
            [
                // `[""]` (a non-empty list) and "0" (a non-empty str) are truthy, but their
                // texts cannot prove it: N holds there (it is not sufficient).
                true, false, false, false, true, true, true, true, true, true, true, true, true,
                false
            ]
        );
    }

    /// Trap: Panther finds a key in another letter case; the IR path must too (derive hook).
    #[test]
    fn case_variant_key_is_found() {
        let src = "def rule(event):\n    return event.get(\"eventName\") == \"CreateUser\"\n";
        let (_, got) = check(
            src,
            &[
                json!({"EventName": "CreateUser"}),
                json!({"EVENTNAME": "CreateUser", "x": "\u{212a}"}),
                json!({"EventName": "Other"}),
            ],
        );
        assert_eq!(got, [true, true, false]);
        // The same through `aws_cloudtrail_success`, whose keys are looked up the same way.
        let src = format!("{IMPORT}def rule(event):\n    return aws_cloudtrail_success(event)\n");
        let (_, got) = check(&src, &[json!({"ErrorCode": "Denied"}), json!({"a": 1})]);
        assert_eq!(got, [false, true]);
    }

    /// Trap: a flat dotted key is read literally by the IR; such keys are not used.
    #[test]
    fn dotted_keys_give_no_condition() {
        let src = "def rule(event):\n    return event.get(\"a.b\") == \"x\"\n";
        let (n, _) = check(src, &[json!({"a.b": "x"}), json!({"a": {"b": "x"}})]);
        assert!(matches!(n, Ir::Const(true)), "{n}");
    }

    /// Trap: values that are not `str` never equal a `str` in Python; N may still match them.
    #[test]
    fn non_string_values_stay_sound() {
        let src = "def rule(event):\n    return event.get(\"k\") != \"5\" or event.get(\"j\").startswith(\"ab\")\n";
        check(
            src,
            &[
                json!({"k": 5, "j": "abc"}),
                json!({"k": "5", "j": ["abc"]}),
                json!({"k": "5", "j": "abc"}),
                json!({"k": ["5"], "j": "x"}),
                json!({"k": "5"}),
            ],
        );
        let src = "def rule(event):\n    if event.get(\"k\") != \"5\":\n        return False\n    return True\n";
        let (_, got) = check(
            src,
            &[
                json!({"k": 5}),
                json!({"k": "5"}),
                json!({"k": ["5"]}),
                json!({}),
            ],
        );
        // A number compares by its text in the IR: more permissive, still sound.
        assert_eq!(got, [true, true, true, false]);
    }

    #[test]
    fn membership_in_constants() {
        let src = "EVENTS = {\"A\", \"B\"}\ndef rule(event):\n    return event.get(\"eventName\") in EVENTS\n";
        let (_, got) = check(
            src,
            &[
                json!({"eventName": "A"}),
                json!({"eventName": "B"}),
                json!({"eventName": "C"}),
            ],
        );
        assert_eq!(got, [true, true, false]);
        // A constant the module mutates, rebinds or declares global is not trusted.
        for body in [
            "EVENTS = [\"A\"]\ndef f(x):\n    EVENTS.append(x)\n",
            "EVENTS = [\"A\"]\nEVENTS = [\"B\"]\n",
            "EVENTS = [\"A\"]\ndef f(x):\n    global EVENTS\n    EVENTS = [x]\n",
            "EVENTS = \"AB\"\n",
        ] {
            let src =
                format!("{body}def rule(event):\n    return event.get(\"eventName\") in EVENTS\n");
            let n = module(&src).necessary("rule");
            assert!(matches!(n, Ir::Const(true)), "{src}\n{n}");
        }
    }

    /// Trap: a test mock may replace a module constant; a mocked name gives no condition.
    #[test]
    fn mocked_constant_is_not_trusted() {
        let src = "ALLOW_LIST = [\"A\"]\ndef rule(event):\n    return event.get(\"eventName\") in ALLOW_LIST\n";
        let m = module(src);
        assert!(!matches!(m.necessary("rule"), Ir::Const(true)));
        let n = m.necessary_with_mocks("rule", &["ALLOW_LIST"]);
        assert!(matches!(n, Ir::Const(true)), "{n}");
        // A mocked helper is not trusted either.
        let src = format!("{IMPORT}def rule(event):\n    return aws_cloudtrail_success(event)\n");
        let n = module(&src).necessary_with_mocks("rule", &["aws_cloudtrail_success"]);
        assert!(matches!(n, Ir::Const(true)), "{n}");
    }

    #[test]
    fn guard_chains() {
        let src = format!(
            "{IMPORT}def rule(event):\n    if event.get(\"eventSource\") != \"s3.amazonaws.com\":\n        return False\n    if not aws_cloudtrail_success(event):\n        return False\n    name = event.get(\"eventName\")\n    return name.startswith((\"Put\", \"Delete\")) and helper(event)\n\ndef helper(event):\n    return True\n"
        );
        let (_, got) = check(
            &src,
            &[
                json!({"eventSource": "s3.amazonaws.com", "eventName": "PutObject"}),
                json!({"eventSource": "s3.amazonaws.com", "eventName": "GetObject"}),
                json!({"eventSource": "ec2.amazonaws.com", "eventName": "PutObject"}),
                json!({"eventSource": "s3.amazonaws.com", "eventName": "DeleteObject", "errorCode": "X"}),
            ],
        );
        assert_eq!(got, [true, false, false, false]);
    }

    #[test]
    fn truthy_returns_are_a_disjunction() {
        let src = "def rule(event):\n    if event.get(\"eventName\") == \"A\":\n        return True\n    if event.get(\"eventName\") == \"B\" and event.get(\"x\", \"\") == \"\":\n        return \"yes\"\n    return False\n";
        let (_, got) = check(
            src,
            &[
                json!({"eventName": "A"}),
                json!({"eventName": "B"}),
                json!({"eventName": "B", "x": "1"}),
                json!({"eventName": "C"}),
            ],
        );
        assert_eq!(got, [true, true, true, false]);
    }

    #[test]
    fn unknown_constructs_give_no_information() {
        for src in [
            "def rule(event):\n    return helper(event)\ndef helper(event):\n    return event.get(\"a\") == \"b\"\n",
            "def rule(event):\n    for x in event.get(\"a\", []):\n        return True\n    return False\n",
            "def rule(event):\n    try:\n        return event.get(\"a\") == \"b\"\n    except Exception:\n        return True\n",
            "def rule(event):\n    if (x := event.get(\"a\")) == \"b\":\n        return True\n    return x == \"c\"\n",
            "def rule(event):\n    return event.get(\"a\") == [] or event.get(\"a\") in \"abc\"\n",
        ] {
            let n = module(src).necessary("rule");
            assert!(matches!(n, Ir::Const(true)), "{src}\n{n}");
        }
        let src = "def rule(event):\n    return event.get(\"a\") == []\n";
        let (_, got) = check(src, &[json!({"a": []})]);
        assert_eq!(got, [true]);
    }

    #[test]
    fn defaults_count() {
        let src = "def rule(event):\n    return event.get(\"a\", \"x\") == \"x\"\n";
        let (n, _) = check(src, &[json!({}), json!({"a": "x"})]);
        assert!(matches!(n, Ir::Const(true)), "{n}");
        let src = "def rule(event):\n    return event.get(\"a\", \"xy\").startswith(\"x\")\n";
        let (n, _) = check(src, &[json!({}), json!({"a": "xz"})]);
        assert!(matches!(n, Ir::Const(true)), "{n}");
        let src = "def rule(event):\n    return event.get(\"a\")\n";
        let (_, got) = check(src, &[json!({}), json!({"A": "x"}), json!({"b": 1})]);
        assert_eq!(got, [false, true, false]);
    }

    /// Trap: a key the ECS view also derives shares the event's derived-value cache.
    #[test]
    fn ecs_derivable_keys_give_no_condition() {
        let src = "def rule(event):\n    return event.get(\"@timestamp\") == \"x\"\n";
        let n = module(src).necessary("rule");
        assert!(matches!(n, Ir::Const(true)), "{n}");
    }

    /// Trap: a local list may be mutated inside an expression before `in` reads it.
    #[test]
    fn local_collections_are_not_trusted() {
        let src = "def rule(event):\n    names = [\"a\"]\n    return names.append(\"b\") or event.get(\"k\") in names\n";
        let (n, _) = check(src, &[json!({"k": "b"})]);
        assert!(matches!(n, Ir::Const(true)), "{n}");
    }

    #[test]
    fn all_any_and_falsy_gets() {
        let src = "def rule(event):\n    return all([not event.get(\"errorCode\"), event.get(\"eventName\") == \"StopInstances\"])\n";
        let (_, got) = check(
            src,
            &[
                json!({"eventName": "StopInstances"}),
                json!({"eventName": "StopInstances", "errorCode": "X"}),
                json!({"eventName": "StopInstances", "errorCode": false}),
                json!({"eventName": "Other"}),
            ],
        );
        assert_eq!(got, [true, false, true, false]);
        let src = "def rule(event):\n    if event.get(\"errorCode\") or any([event.get(\"a\") == \"1\", event.get(\"a\") == \"2\"]):\n        return False\n    return True\n";
        let (_, got) = check(
            src,
            &[
                json!({}),
                json!({"errorCode": "X"}),
                json!({"a": "2"}),
                json!({"a": "3"}),
            ],
        );
        assert_eq!(got, [true, false, true, true]);
        // A module that defines its own `all` gets no condition from it.
        let src = "def all(x):\n    return True\ndef rule(event):\n    return all([event.get(\"a\") == \"1\"])\n";
        let n = module(src).necessary("rule");
        assert!(matches!(n, Ir::Const(true)), "{n}");
    }

    /// A loop or `try` contributes the truthy returns inside it; a guard loop that only
    /// returns False leaves the condition of what follows, with the names it binds forgotten.
    #[test]
    fn loops_try_and_global() {
        let src = "ALLOW = [{\"n\": \"a\"}]\nEVENTS = {\"X\", \"Y\"}\ndef rule(event):\n    global ALLOW\n    name = event.get(\"eventName\")\n    for entry in ALLOW:\n        if entry[\"n\"] == event.get(\"user\"):\n            return False\n    if name == \"Z\":\n        return True\n    return name in EVENTS\n";
        let (n, got) = check(
            src,
            &[
                json!({"eventName": "X"}),
                json!({"eventName": "Z"}),
                json!({"eventName": "X", "user": "a"}),
                json!({"eventName": "W"}),
            ],
        );
        assert!(n.to_string().contains("eventName"), "{n}");
        assert_eq!(got, [true, true, true, false]);
        // A name the loop rebinds is no longer what it was before the loop.
        let src = "def rule(event):\n    name = event.get(\"a\")\n    for name in event.get(\"list\", []):\n        pass\n    return name == \"x\"\n";
        let (n, got) = check(src, &[json!({"a": "y", "list": ["x"]}), json!({"a": "x"})]);
        assert!(matches!(n, Ir::Const(true)), "{n}");
        assert_eq!(got, [true, true]);
        // Returns inside a loop or `try` count, whatever guards them.
        let src = "def rule(event):\n    for x in event.get(\"l\", []):\n        if x:\n            return event.get(\"k\") == \"v\"\n    try:\n        return event[\"j\"] == \"w\"\n    except KeyError:\n        return False\n";
        let (_, got) = check(
            src,
            &[
                json!({"l": [1], "k": "v"}),
                json!({"j": "w"}),
                json!({"l": [1], "k": "u", "j": "u"}),
            ],
        );
        assert_eq!(got, [true, true, false]);
    }

    /// `event["k"]` reads like `event.get("k")`, and raises where that is None.
    #[test]
    fn subscripts_read_like_get() {
        let src = "def rule(event):\n    return event[\"eventName\"] == \"A\" and event.get(\"b\") == \"c\"\n";
        let (_, got) = check(
            src,
            &[
                json!({"eventName": "A", "b": "c"}),
                json!({"EVENTNAME": "A", "b": "c"}),
                json!({"eventName": "B", "b": "c"}),
                json!({"b": "c"}),
            ],
        );
        assert_eq!(got, [true, true, false, false]);
    }

    /// `event.udm("event_type")` through the CloudTrail data model: each type needs the
    /// `eventName` it comes from; a type the model never gives cannot match.
    #[test]
    fn udm_event_types() {
        let helpers = "import panther_event_type_helpers as event_type\n";
        let events = [
            json!({"eventName": "ConsoleLogin", "userIdentity": {"type": "IAMUser"}, "responseElements": {"ConsoleLogin": "Failure"}}),
            json!({"eventName": "ConsoleLogin", "userIdentity": {"type": "Root"}, "responseElements": {"ConsoleLogin": "Failure"}}),
            json!({"eventName": "CreateUser"}),
            json!({"eventname": "CreateUser"}),
            json!({"eventName": "CreateAccountResult"}),
            json!({"eventName": "DeleteUser"}),
        ];
        let cases: [(&str, [bool; 6]); 5] = [
            (
                "    return event.udm(\"event_type\") == event_type.FAILED_LOGIN\n",
                [true, true, false, false, false, false],
            ),
            (
                "    if event.udm(\"event_type\") != event_type.USER_ACCOUNT_CREATED:\n        return False\n    return True\n",
                [false, false, true, true, false, false],
            ),
            (
                "    return event.udm(\"event_type\") in [\"account_created\", \"successful_login\"]\n",
                [true, true, false, false, true, false],
            ),
            (
                "    return event.udm(\"event_type\") == event_type.MFA_DISABLED\n",
                [false, false, false, false, false, false],
            ),
            (
                "    return event.udm(\"event_type\")\n",
                [true, true, true, true, true, false],
            ),
        ];
        for (body, want) in cases {
            let src = format!("{helpers}def rule(event):\n{body}");
            let (n, got) = check(&src, &events);
            assert_eq!(got, want, "{src}\nN = {n}");
        }
        // A mocked or rebound helper module gives no condition.
        let src = format!(
            "{helpers}def rule(event):\n    return event.udm(\"event_type\") == event_type.FAILED_LOGIN\n"
        );
        let n = module(&src).necessary_with_mocks("rule", &["event_type"]);
        assert!(matches!(n, Ir::Const(true)), "{n}");
        let src = format!(
            "{helpers}event_type = None\ndef rule(event):\n    return event.udm(\"event_type\") == event_type.FAILED_LOGIN\n"
        );
        assert!(matches!(module(&src).necessary("rule"), Ir::Const(true)));
    }

    /// `deep_get` in equality, membership, `startswith` and truthiness, with the traps: a key
    /// in another case (found by the hook), an array on the way (the IR fans out where Python
    /// gives the default), a flat dotted key (the IR reads it instead: the guard), a null
    /// value and a default that passes the test.
    #[test]
    fn deep_get_conditions() {
        let events = [
            json!({"userIdentity": {"type": "Root", "accessKeyId": "AKIA1"}}),
            json!({"userIdentity": {"type": "IAMUser", "accessKeyId": "ASIA1"}}),
            json!({"UserIdentity": {"TYPE": "Root", "AccessKeyId": "AKIA2"}}),
            json!({"userIdentity": [{"type": "Root", "accessKeyId": "AKIA3"}]}),
            json!({"userIdentity.type": "IAMUser", "userIdentity": {"type": "Root"}}),
            json!({"userIdentity": {"type": null, "accessKeyId": null}}),
            json!({"userIdentity": "Root"}),
            json!({}),
        ];
        let cases: [(&str, [bool; 8]); 6] = [
            (
                "    return event.deep_get(\"userIdentity\", \"type\") == \"Root\"\n",
                [true, false, true, true, true, false, false, false],
            ),
            (
                "    return event.deep_get(\"userIdentity\", \"type\") in ROOTS\n",
                [true, false, true, true, true, false, false, false],
            ),
            (
                "    return event.deep_get(\"userIdentity\", \"type\", default=\"Root\") == \"Root\"\n",
                [true; 8],
            ),
            (
                "    return event.deep_get(\"userIdentity\", \"accessKeyId\", default=\"\").startswith(\"AKIA\")\n",
                [true, false, true, true, false, false, false, false],
            ),
            (
                "    key = event.deep_get(\"userIdentity\", \"accessKeyId\")\n    if not key:\n        return False\n    return True\n",
                // A null value exists for the IR.
                [true, true, true, true, false, true, false, false],
            ),
            // Falsiness of a nested value gives no condition (arrays fan out in the IR).
            (
                "    if event.deep_get(\"userIdentity\", \"type\"):\n        return False\n    return True\n",
                [true; 8],
            ),
        ];
        for (body, want) in cases {
            let src = format!("ROOTS = {{\"Root\"}}\ndef rule(event):\n{body}");
            let (n, got) = check(&src, &events);
            assert_eq!(got, want, "{src}\nN = {n}");
        }
        // Keys the IR would split, an ECS field name, one key or a computed key: no condition.
        for call in [
            "event.deep_get(\"a.b\", \"c\")",
            "event.deep_get(\"event\", \"action\")",
            "event.deep_get(\"eventName\")",
            "event.deep_get(\"a\", KEY)",
        ] {
            let src = format!("KEY = \"b\"\ndef rule(event):\n    return {call} == \"x\"\n");
            let n = module(&src).necessary("rule");
            assert!(matches!(n, Ir::Const(true)), "{src}\n{n}");
        }
    }

    /// Compiled patterns: the leading literal of the pattern, on an `event.get` or `deep_get`
    /// value; nothing where the pattern, `re` or the name could mean something else.
    #[test]
    fn compiled_pattern_searches() {
        let events = [
            json!({"userIdentity": {"arn": "arn:aws:sts::1:assumed-role/R/i-0abc"}, "k": "x-i-1"}),
            json!({"userIdentity": {"arn": "arn:aws:sts::1:assumed-role/R/alice"}, "k": "i-1"}),
            json!({"userIdentity": {"arn": "arn:aws:iam::1:user/alice"}}),
            json!({"useridentity": {"ARN": "arn:aws:sts::1:assumed-role/R/i-0abc"}}),
            json!({"userIdentity": [{"arn": "arn:aws:sts::1:assumed-role/R/i-0abc"}]}),
            json!({"userIdentity": {"arn": ["arn:aws:sts::1:assumed-role/R/i-0abc"]}}),
            json!({}),
        ];
        let pattern = "import re\nP = re.compile(r\":assumed-role/.+/i-[0-9a-f]+$\")\n";
        let (n, got) = check(
            &format!(
                "{pattern}def rule(event):\n    arn = event.deep_get(\"userIdentity\", \"arn\", default=\"\")\n    if not P.search(arn):\n        return False\n    return True\n"
            ),
            &events,
        );
        assert!(n.to_string().contains(":assumed-role/"), "{n}");
        assert_eq!(got, [true, true, false, true, true, true, false]);
        let (_, got) = check(
            "import re\nP = re.compile(\"^i\\\\-\\\\d\")\ndef rule(event):\n    return P.match(event.get(\"k\", \"\"))\n",
            &events,
        );
        assert_eq!(got, [true, true, false, false, false, false, false]);
        // A default holding the literal passes.
        let (_, got) = check(
            &format!(
                "{pattern}def rule(event):\n    return P.search(event.get(\"k\", \":assumed-role/R/i-1\"))\n"
            ),
            &events,
        );
        assert_eq!(got, [true; 7]);
        for src in [
            // Flags, an alternation, an inline flag, no leading literal.
            "import re\nP = re.compile(\"abc\", re.I)\ndef rule(event):\n    return P.search(event.get(\"k\"))\n",
            "import re\nP = re.compile(\"abc|xyz\")\ndef rule(event):\n    return P.search(event.get(\"k\"))\n",
            "import re\nP = re.compile(\"(?i)abc\")\ndef rule(event):\n    return P.search(event.get(\"k\"))\n",
            "import re\nP = re.compile(\"a*bc\")\ndef rule(event):\n    return P.search(event.get(\"k\"))\n",
            // `re` or the pattern rebound, `re` imported under another name.
            "import re\nP = re.compile(\"abc\")\nP = re.compile(\"x\")\ndef rule(event):\n    return P.search(event.get(\"k\"))\n",
            "import re\nre = None\nP = re.compile(\"abc\")\ndef rule(event):\n    return P.search(event.get(\"k\"))\n",
            "import re as r\nP = r.compile(\"abc\")\ndef rule(event):\n    return P.search(event.get(\"k\"))\n",
            "import re\nP = re.compile(\"abc\")\ndef rule(event):\n    return P.search(event.get(\"k\"), 2)\n",
        ] {
            let n = module(src).necessary("rule");
            assert!(matches!(n, Ir::Const(true)), "{src}\n{n}");
        }
        let src = "import re\nP = re.compile(\"abc\")\ndef rule(event):\n    return P.search(event.get(\"k\"))\n";
        let n = module(src).necessary_with_mocks("rule", &["P"]);
        assert!(matches!(n, Ir::Const(true)), "{n}");
    }

    #[test]
    fn required_literals() {
        use super::required_literal as lit;
        assert_eq!(
            lit(":assumed-role/.+/i-").as_deref(),
            Some(":assumed-role/")
        );
        assert_eq!(lit("^abc\\.d").as_deref(), Some("abc.d"));
        assert_eq!(lit("abc?").as_deref(), Some("ab"));
        assert_eq!(lit("ab+c").as_deref(), Some("ab"));
        assert_eq!(lit("ab{2}").as_deref(), Some("a"));
        assert_eq!(lit("a\\d"), Some("a".to_string()));
        for none in [
            "", ".abc", "a*", "[a]bc", "(ab)", "ab|cd", "(?i)ab", "\\dab",
        ] {
            assert_eq!(lit(none), None, "{none}");
        }
    }
}
