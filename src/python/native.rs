//! Built-in functions, methods of the built-in types, attribute access, string formatting and
//! the import table: which modules and names rule code may import.

use std::rc::Rc;

use serde_json::Value as Json;

use super::PyDiag;
use super::ast::*;
use super::helpers;
use super::interp::{Interp, R};
use super::value::*;
use crate::event::Event;

// ---- the import table ----

/// Modules `import x` may name, and the value bound.
pub fn import_module(module: &str) -> Result<Val, String> {
    let m: &'static str = match module {
        "json" => "json",
        "re" => "re",
        "ipaddress" => "ipaddress",
        "fnmatch" => "fnmatch",
        "datetime" => "datetime",
        "panther_event_type_helpers" => "panther_event_type_helpers",
        "panther_base_helpers" => "panther_base_helpers",
        "panther_aws_helpers" => "panther_aws_helpers",
        "collections" => "collections",
        "typing" => "typing",
        // Log calls have no effect on the result; vigil rules write nothing anywhere.
        "logging" => "logging",
        _ => return Err(unsupported_module(module)),
    };
    Ok(Val::Module(m))
}

fn unsupported_module(module: &str) -> String {
    let why = match module {
        "policyuniverse" | "policyuniverse.policy" => " (IAM policy evaluation is not implemented)",
        "pycountry" => " (country database is not bundled)",
        "panther_misp_helpers" => " (MISP warning lists are outside data)",
        "panther_lookuptable_helpers" => " (lookup tables are outside data)",
        "panther_iocs" => " (IOC lists are not bundled)",
        "boto3" | "requests" | "os" | "subprocess" | "socket" => " (no I/O)",
        _ => "",
    };
    format!("unsupported: import of module {module}{why}")
}

/// Names `from module import name` may bind.
pub fn import_name(module: &str, name: &str) -> Result<Val, String> {
    if module == "typing" {
        return Ok(Val::Native("typing"));
    }
    if module == "panther_event_type_helpers" {
        return helpers::event_type_constant(name)
            .map(new_str)
            .ok_or_else(|| format!("unsupported: {module}.{name}"));
    }
    let v = match (module, name) {
        ("json", "loads") => Val::Native("json.loads"),
        ("json", "dumps") => Val::Native("json.dumps"),
        ("json", "JSONDecodeError") => Val::Native("JSONDecodeError"),
        ("fnmatch", "fnmatch") => Val::Native("fnmatch.fnmatch"),
        ("fnmatch", "fnmatchcase") => Val::Native("fnmatch.fnmatchcase"),
        ("ipaddress", n) => {
            let q = ipaddress_attr(n).ok_or_else(|| format!("unsupported: ipaddress.{n}"))?;
            Val::Native(q)
        }
        ("datetime", "datetime") => Val::Native("datetime.datetime"),
        ("datetime", "timedelta") => Val::Native("datetime.timedelta"),
        ("datetime", "timezone") => Val::Native("datetime.timezone"),
        ("re", n) => return module_attr("re", n).ok_or_else(|| format!("unsupported: re.{n}")),
        ("collections.abc", "Mapping") | ("collections", "Mapping") => Val::Native("Mapping"),
        ("collections.abc", "Sequence") => Val::Native("Sequence"),
        ("collections.abc", "Iterable") => Val::Native("Iterable"),
        ("unittest.mock", "MagicMock") => Val::Native("MagicMock"),
        ("panther_core", "PantherEvent") => Val::Native("PantherEvent"),
        ("panther_detection_helpers.caching", n) => Val::Native(
            helpers::caching_name(n).ok_or_else(|| format!("unsupported: {module}.{n}"))?,
        ),
        ("panther_base_helpers" | "panther_aws_helpers" | "panther_ipinfo_helpers", n) => {
            Val::Native(
                helpers::helper_name(module, n)
                    .map_err(|why| format!("unsupported: {module}.{n}{why}"))?,
            )
        }
        _ => {
            return Err(
                if import_module(module).is_ok() || module.starts_with("panther_") {
                    format!("unsupported: {module}.{name}")
                } else {
                    unsupported_module(module)
                },
            );
        }
    };
    Ok(v)
}

fn ipaddress_attr(n: &str) -> Option<&'static str> {
    Some(match n {
        "ip_address" => "ipaddress.ip_address",
        "ip_network" => "ipaddress.ip_network",
        "IPv4Address" => "ipaddress.IPv4Address",
        "IPv6Address" => "ipaddress.IPv6Address",
        "IPv4Network" => "ipaddress.IPv4Network",
        "IPv6Network" => "ipaddress.IPv6Network",
        "AddressValueError" => "AddressValueError",
        "NetmaskValueError" => "NetmaskValueError",
        _ => return None,
    })
}

/// Attributes of the supported modules.
pub fn module_attr(module: &str, name: &str) -> Option<Val> {
    Some(match (module, name) {
        ("json", "loads") => Val::Native("json.loads"),
        ("json", "dumps") => Val::Native("json.dumps"),
        ("json", "JSONDecodeError") => Val::Native("JSONDecodeError"),
        ("re", "search") => Val::Native("re.search"),
        ("re", "match") => Val::Native("re.match"),
        ("re", "fullmatch") => Val::Native("re.fullmatch"),
        ("re", "findall") => Val::Native("re.findall"),
        ("re", "compile") => Val::Native("re.compile"),
        ("re", "sub") => Val::Native("re.sub"),
        ("re", "split") => Val::Native("re.split"),
        ("re", "escape") => Val::Native("re.escape"),
        ("re", "IGNORECASE" | "I") => Val::Int(2),
        ("re", "MULTILINE" | "M") => Val::Int(8),
        ("re", "DOTALL" | "S") => Val::Int(16),
        ("ipaddress", n) => Val::Native(ipaddress_attr(n)?),
        ("fnmatch", "fnmatch") => Val::Native("fnmatch.fnmatch"),
        ("fnmatch", "fnmatchcase") => Val::Native("fnmatch.fnmatchcase"),
        ("datetime", "datetime") => Val::Native("datetime.datetime"),
        ("datetime", "timedelta") => Val::Native("datetime.timedelta"),
        ("datetime", "timezone") => Val::Native("datetime.timezone"),
        ("datetime.timezone", "utc") => Val::Native("datetime.timezone.utc"),
        ("collections", "abc") => Val::Module("collections.abc"),
        ("collections.abc", "Mapping") => Val::Native("Mapping"),
        ("collections.abc", "Sequence") => Val::Native("Sequence"),
        ("panther_event_type_helpers", n) => new_str(helpers::event_type_constant(n)?),
        ("panther_base_helpers", n) => {
            Val::Native(helpers::helper_name("panther_base_helpers", n).ok()?)
        }
        ("panther_aws_helpers", n) => {
            Val::Native(helpers::helper_name("panther_aws_helpers", n).ok()?)
        }
        ("typing", _) => Val::Native("typing"),
        ("logging", "debug" | "info" | "warning" | "error" | "exception" | "critical") => {
            Val::Native("logging.log")
        }
        _ => return None,
    })
}

/// Checks every import in the module (and in its functions) against the import table, and
/// compiles every constant regex pattern, so that a rule outside the subset fails at load.
pub fn check_module(body: &[Stmt]) -> Result<(), PyDiag> {
    for s in body {
        check_stmt(s)?;
    }
    Ok(())
}

fn check_stmt(s: &Stmt) -> Result<(), PyDiag> {
    let diag = |message: String| PyDiag {
        line: s.line,
        message,
    };
    match &s.kind {
        StmtKind::Import(items) => {
            for (m, _) in items {
                import_module(m).map_err(diag)?;
            }
        }
        StmtKind::ImportFrom(m, items) => {
            for (n, _) in items {
                import_name(m, n).map_err(diag)?;
            }
        }
        StmtKind::Def(def) => {
            for (_, d) in def.params.positional.iter().chain(&def.params.kwonly) {
                if let Some(d) = d {
                    check_expr(d, s.line)?;
                }
            }
            check_module(&def.body)?;
        }
        StmtKind::If(c, a, b) | StmtKind::While(c, a, b) => {
            check_expr(c, s.line)?;
            check_module(a)?;
            check_module(b)?;
        }
        StmtKind::For(t, i, a, b) => {
            check_expr(t, s.line)?;
            check_expr(i, s.line)?;
            check_module(a)?;
            check_module(b)?;
        }
        StmtKind::Try {
            body,
            handlers,
            orelse,
            finally,
        } => {
            check_module(body)?;
            for h in handlers {
                check_module(&h.body)?;
            }
            check_module(orelse)?;
            check_module(finally)?;
        }
        StmtKind::Expr(e) | StmtKind::Return(Some(e)) | StmtKind::Raise(Some(e)) => {
            check_expr(e, s.line)?
        }
        StmtKind::Assign(ts, v) => {
            for t in ts {
                check_expr(t, s.line)?;
            }
            check_expr(v, s.line)?;
        }
        StmtKind::AugAssign(t, _, v) => {
            check_expr(t, s.line)?;
            check_expr(v, s.line)?;
        }
        _ => {}
    }
    Ok(())
}

/// Finds `re.<f>("<constant>", ...)` and `<f>("<constant>")` calls with a constant pattern and
/// checks that the Rust regex crate accepts the pattern with Python's meaning.
fn check_expr(e: &Expr, line: u32) -> Result<(), PyDiag> {
    let mut result = Ok(());
    visit_expr(e, &mut |x| {
        if result.is_err() {
            return;
        }
        if let Expr::Call(f, args) = x {
            let is_re = matches!(&**f, Expr::Attr(m, n) if matches!(&**m, Expr::Name(mn) if mn == "re")
                && matches!(n.as_str(), "search" | "match" | "fullmatch" | "findall" | "compile" | "sub" | "split"));
            if is_re
                && let Some(Arg::Pos(Expr::Const(Const::Str(p)))) = args.first()
                && let Err(m) = helpers::translate_regex(p)
            {
                result = Err(PyDiag { line, message: m });
            }
        }
    });
    result
}

pub fn visit_expr(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(e);
    let each = |xs: &[&Expr], f: &mut dyn FnMut(&Expr)| {
        for x in xs {
            visit_expr(x, f);
        }
    };
    match e {
        Expr::Attr(o, _) => each(&[o], f),
        Expr::Subscript(a, b) | Expr::Bin(_, a, b) => each(&[a, b], f),
        Expr::Call(func, args) => {
            visit_expr(func, f);
            for a in args {
                match a {
                    Arg::Pos(x) | Arg::Star(x) | Arg::Kw(_, x) | Arg::StarStar(x) => {
                        visit_expr(x, f)
                    }
                }
            }
        }
        Expr::Unary(_, a) | Expr::Starred(a) | Expr::Walrus(_, a) | Expr::Lambda(_, a) => {
            each(&[a], f)
        }
        Expr::And(xs) | Expr::Or(xs) | Expr::List(xs) | Expr::Tuple(xs) | Expr::Set(xs) => {
            for x in xs {
                visit_expr(x, f);
            }
        }
        Expr::Compare(a, rest) => {
            visit_expr(a, f);
            for (_, x) in rest {
                visit_expr(x, f);
            }
        }
        Expr::IfExp(a, b, c) => each(&[a, b, c], f),
        Expr::Dict(items) => {
            for (k, v) in items {
                if let Some(k) = k {
                    visit_expr(k, f);
                }
                visit_expr(v, f);
            }
        }
        Expr::ListComp(a, comps) | Expr::SetComp(a, comps) | Expr::GenExp(a, comps) => {
            visit_expr(a, f);
            for c in comps {
                visit_expr(&c.iter, f);
                for x in &c.conds {
                    visit_expr(x, f);
                }
            }
        }
        Expr::DictComp(a, b, comps) => {
            visit_expr(a, f);
            visit_expr(b, f);
            for c in comps {
                visit_expr(&c.iter, f);
                for x in &c.conds {
                    visit_expr(x, f);
                }
            }
        }
        Expr::FString(parts) => {
            for p in parts {
                if let FPart::Expr { expr, .. } = p {
                    visit_expr(expr, f);
                }
            }
        }
        _ => {}
    }
}

// ---- which modules may keep their globals between calls ----

const MUTATING_METHODS: &[&str] = &[
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "sort",
    "reverse",
    "add",
    "update",
    "discard",
    "setdefault",
    "popitem",
    "difference_update",
    "intersection_update",
    "symmetric_difference_update",
];

/// Whether evaluating the module's top level once and reusing the result for every call is
/// indistinguishable from evaluating it afresh: the top level only imports, defines functions
/// and binds constant expressions, and nothing anywhere can change a module-level value (no
/// `global`, no augmented or item assignment, no `del`, no mutating method, no helper that
/// mutates its argument).
pub fn globals_reusable(body: &[Stmt]) -> bool {
    let top_ok = body.iter().all(|s| match &s.kind {
        StmtKind::Import(_) | StmtKind::ImportFrom(..) | StmtKind::Def(_) | StmtKind::Pass => true,
        StmtKind::Expr(Expr::Const(_)) => true,
        StmtKind::Assign(targets, value) => {
            targets.iter().all(|t| matches!(t, Expr::Name(_))) && const_expr(value)
        }
        _ => false,
    });
    top_ok && body.iter().all(stmt_never_mutates)
}

/// Literals, containers of them, names, and calls of pure constructors (`set`, `frozenset`,
/// `re.compile`) over them.
fn const_expr(e: &Expr) -> bool {
    match e {
        Expr::Const(_) | Expr::Name(_) => true,
        Expr::List(items) | Expr::Tuple(items) | Expr::Set(items) => items.iter().all(const_expr),
        Expr::Dict(items) => items
            .iter()
            .all(|(k, v)| k.as_ref().is_some_and(const_expr) && const_expr(v)),
        Expr::Unary(_, a) => const_expr(a),
        Expr::Bin(_, a, b) => const_expr(a) && const_expr(b),
        Expr::Call(f, args) => {
            let pure = match &**f {
                Expr::Name(n) => {
                    matches!(n.as_str(), "set" | "frozenset" | "list" | "tuple" | "dict")
                }
                Expr::Attr(m, n) => matches!(&**m, Expr::Name(mn) if mn == "re") && n == "compile",
                _ => false,
            };
            pure && args
                .iter()
                .all(|a| matches!(a, Arg::Pos(x) if const_expr(x)))
        }
        _ => false,
    }
}

fn stmt_never_mutates(s: &Stmt) -> bool {
    let exprs_ok = |es: &[&Expr]| es.iter().all(|e| expr_never_mutates(e));
    match &s.kind {
        StmtKind::Global(_) | StmtKind::AugAssign(..) | StmtKind::Del(_) => false,
        StmtKind::Assign(targets, value) => {
            targets
                .iter()
                .all(|t| !matches!(t, Expr::Subscript(..) | Expr::Attr(..)))
                && expr_never_mutates(value)
        }
        StmtKind::Expr(e) | StmtKind::Return(Some(e)) | StmtKind::Raise(Some(e)) => {
            expr_never_mutates(e)
        }
        StmtKind::Assert(a, b) => {
            expr_never_mutates(a) && b.as_ref().is_none_or(expr_never_mutates)
        }
        StmtKind::If(c, a, b) | StmtKind::While(c, a, b) => {
            expr_never_mutates(c)
                && a.iter().all(stmt_never_mutates)
                && b.iter().all(stmt_never_mutates)
        }
        StmtKind::For(t, i, a, b) => {
            exprs_ok(&[t, i])
                && a.iter().all(stmt_never_mutates)
                && b.iter().all(stmt_never_mutates)
        }
        StmtKind::Try {
            body,
            handlers,
            orelse,
            finally,
        } => {
            body.iter().all(stmt_never_mutates)
                && handlers
                    .iter()
                    .all(|h| h.body.iter().all(stmt_never_mutates))
                && orelse.iter().all(stmt_never_mutates)
                && finally.iter().all(stmt_never_mutates)
        }
        StmtKind::Def(def) => {
            def.params
                .positional
                .iter()
                .chain(&def.params.kwonly)
                .all(|(_, d)| d.as_ref().is_none_or(expr_never_mutates))
                && def.body.iter().all(stmt_never_mutates)
        }
        _ => true,
    }
}

fn expr_never_mutates(e: &Expr) -> bool {
    let mut ok = true;
    visit_expr(e, &mut |x| match x {
        Expr::Call(f, _) => match &**f {
            Expr::Attr(_, n) if MUTATING_METHODS.contains(&n.as_str()) => ok = false,
            Expr::Name(n) if n == "add_parse_delay" => ok = false,
            _ => {}
        },
        Expr::Walrus(..) => ok = false,
        _ => {}
    });
    ok
}

// ---- builtins ----

const BUILTINS: &[&str] = &[
    "len",
    "str",
    "int",
    "float",
    "bool",
    "list",
    "dict",
    "tuple",
    "set",
    "frozenset",
    "any",
    "all",
    "isinstance",
    "sorted",
    "reversed",
    "min",
    "max",
    "sum",
    "abs",
    "round",
    "enumerate",
    "zip",
    "range",
    "print",
    "repr",
    "next",
    "iter",
    "hasattr",
    "getattr",
    "map",
    "filter",
    "type",
    "callable",
    "divmod",
    "ord",
    "chr",
    "hex",
    "format",
    "Exception",
    "BaseException",
    "ValueError",
    "KeyError",
    "TypeError",
    "AttributeError",
    "IndexError",
    "LookupError",
    "ZeroDivisionError",
    "ArithmeticError",
    "RuntimeError",
    "NameError",
    "StopIteration",
    "AssertionError",
    "NotImplementedError",
    "OverflowError",
    "UnicodeDecodeError",
];

pub fn builtin(name: &str) -> Option<Val> {
    BUILTINS
        .iter()
        .find(|b| **b == name)
        .map(|b| Val::Native(b))
}

/// Python's other built-in names: using one is unsupported (never a NameError that rule code
/// could catch).
pub fn is_python_builtin(name: &str) -> bool {
    const OTHERS: &[&str] = &[
        "ascii",
        "bin",
        "breakpoint",
        "bytearray",
        "bytes",
        "classmethod",
        "compile",
        "complex",
        "delattr",
        "dir",
        "eval",
        "exec",
        "globals",
        "hash",
        "help",
        "id",
        "input",
        "issubclass",
        "locals",
        "memoryview",
        "object",
        "oct",
        "open",
        "pow",
        "property",
        "setattr",
        "slice",
        "staticmethod",
        "super",
        "vars",
        "__import__",
        "aiter",
        "anext",
        "Ellipsis",
        "NotImplemented",
        "__name__",
        "__file__",
        "__builtins__",
    ];
    OTHERS.contains(&name)
        || (name.ends_with("Error") || name.ends_with("Warning") || name.ends_with("Exception"))
}

pub fn is_exception_class(name: &str) -> bool {
    name.ends_with("Error")
        || name.ends_with("Exception")
        || name == "StopIteration"
        || name == "BaseException"
}

/// The top-level value of `key` in the event, as Python's `event.get(key)` sees it: the key as
/// written, else (Panther's events are case-insensitive mappings) the first key equal to it
/// ignoring ASCII case.
pub fn event_get(it: &Interp, key: &str) -> Option<Val> {
    let found = event_lookup(it.event, key)?;
    // Converting a large sub-object costs in proportion to its size: charge it, so a loop over
    // `event.get` of a big field cannot run unbounded work within a few steps. A budget
    // overrun shows at the next step.
    let _ = it.charge(json_nodes(found, 0));
    Some(from_json(found))
}

/// The JSON value `event.get(key)` reads, not yet converted: the top-level key `key` (a dotted
/// key is one flat key too), else the first key equal to it ignoring case, in the order of the
/// parsed object (Panther's case-insensitive event).
pub fn event_lookup<'e>(event: &'e Event<'_>, key: &str) -> Option<&'e Json> {
    event
        .get(key)
        .or_else(|| event.find_key(|k| same_lower(k, key)))
}

/// What the case-insensitive dict a JSON object converts to (`Dict::get`) reads at `key`: the
/// key as written, else the first key equal to it ignoring case.
pub fn object_lookup<'v>(map: &'v serde_json::Map<String, Json>, key: &str) -> Option<&'v Json> {
    map.get(key)
        .or_else(|| map.iter().find(|(k, _)| same_lower(k, key)).map(|(_, v)| v))
}

pub(super) fn json_nodes(v: &Json, depth: usize) -> usize {
    match v {
        Json::Array(items) if depth < 64 => {
            1 + items
                .iter()
                .map(|x| json_nodes(x, depth + 1))
                .sum::<usize>()
        }
        Json::Object(map) if depth < 64 => {
            1 + map
                .values()
                .map(|x| json_nodes(x, depth + 1))
                .sum::<usize>()
        }
        _ => 1,
    }
}

fn arg_count(it: &Interp, name: &str, args: &[Val], min: usize, max: usize) -> R<()> {
    if args.len() < min || args.len() > max {
        return Err(it.type_error(format!(
            "{name}() takes {min} to {max} arguments ({} given)",
            args.len()
        )));
    }
    Ok(())
}

fn no_kwargs(it: &Interp, name: &str, kwargs: &[(String, Val)]) -> R<()> {
    if let Some((k, _)) = kwargs.first() {
        return Err(it.type_error(format!("{name}() got an unexpected keyword argument '{k}'")));
    }
    Ok(())
}

pub fn take_kw(kwargs: &mut Vec<(String, Val)>, name: &str) -> Option<Val> {
    let at = kwargs.iter().position(|(k, _)| k == name)?;
    Some(kwargs.remove(at).1)
}

fn want_str<'v>(it: &Interp, v: &'v Val, what: &str) -> R<&'v Rc<str>> {
    match v {
        Val::Str(s) => Ok(s),
        other => Err(it.type_error(format!("{what} must be str, not {}", type_name(other)))),
    }
}

fn want_int(it: &Interp, v: &Val, what: &str) -> R<i64> {
    match v {
        Val::Int(i) => Ok(*i),
        Val::Bool(b) => Ok(*b as i64),
        other => Err(it.type_error(format!("{what} must be int, not {}", type_name(other)))),
    }
}

fn isinstance_of(it: &Interp, v: &Val, t: &Val) -> R<bool> {
    Ok(match t {
        Val::Tuple(ts) => {
            for t in ts.iter() {
                if isinstance_of(it, v, t)? {
                    return Ok(true);
                }
            }
            false
        }
        Val::Native(n) => match *n {
            "str" => matches!(v, Val::Str(_)),
            "int" => matches!(v, Val::Int(_) | Val::Bool(_)),
            "float" => matches!(v, Val::Float(_)),
            "bool" => matches!(v, Val::Bool(_)),
            "list" => matches!(v, Val::List(_)),
            "tuple" => matches!(v, Val::Tuple(_)),
            // Objects from the event are Panther's ImmutableCaseInsensitiveDict: a Mapping, not
            // a dict.
            "dict" => matches!(v, Val::Dict(d) if !d.borrow().case_insensitive),
            "set" => matches!(v, Val::Set(_)),
            "Mapping" => matches!(v, Val::Dict(_) | Val::Event),
            "Sequence" => matches!(v, Val::List(_) | Val::Tuple(_) | Val::Str(_)),
            "Iterable" => matches!(
                v,
                Val::List(_)
                    | Val::Tuple(_)
                    | Val::Str(_)
                    | Val::Dict(_)
                    | Val::Set(_)
                    | Val::Event
            ),
            "MagicMock" => matches!(v, Val::Mock(_)),
            "PantherEvent" => matches!(v, Val::Event),
            "datetime.datetime" => matches!(v, Val::DateTime(..)),
            "datetime.timedelta" => matches!(v, Val::Delta(_)),
            "ipaddress.IPv4Address" => matches!(v, Val::Ip(std::net::IpAddr::V4(_))),
            "ipaddress.IPv6Address" => matches!(v, Val::Ip(std::net::IpAddr::V6(_))),
            n if is_exception_class(n) => {
                matches!(v, Val::Exc(k, _) if super::interp::exc_matches(k, n))
            }
            other => return Err(it.fatal(format!("unsupported: isinstance with {other}"))),
        },
        other => {
            return Err(it.type_error(format!(
                "isinstance() arg 2 must be a type, not {}",
                type_name(other)
            )));
        }
    })
}

fn to_int(it: &Interp, v: &Val, base: Option<i64>) -> R<Val> {
    match v {
        Val::Int(i) => Ok(Val::Int(*i)),
        Val::Bool(b) => Ok(Val::Int(*b as i64)),
        Val::Float(f) => {
            if !f.is_finite() {
                return Err(it.exc("ValueError", "cannot convert float to integer"));
            }
            Ok(Val::Int(f.trunc() as i64))
        }
        Val::Str(s) => {
            let t = s.trim().replace('_', "");
            let parsed = match base {
                Some(b) if (2..=36).contains(&b) => {
                    let t = t.to_ascii_lowercase();
                    let t = match b {
                        16 => t.trim_start_matches("0x").to_string(),
                        8 => t.trim_start_matches("0o").to_string(),
                        2 => t.trim_start_matches("0b").to_string(),
                        _ => t,
                    };
                    i64::from_str_radix(&t, b as u32).ok()
                }
                _ => t.parse::<i64>().ok(),
            };
            parsed.map(Val::Int).ok_or_else(|| {
                it.exc(
                    "ValueError",
                    format!(
                        "invalid literal for int() with base {}: {}",
                        base.unwrap_or(10),
                        str_repr(s)
                    ),
                )
            })
        }
        other => Err(it.type_error(format!(
            "int() argument must be a string or a number, not '{}'",
            type_name(other)
        ))),
    }
}

fn to_float(it: &Interp, v: &Val) -> R<Val> {
    match v {
        Val::Int(i) => Ok(Val::Float(*i as f64)),
        Val::Bool(b) => Ok(Val::Float(*b as i64 as f64)),
        Val::Float(f) => Ok(Val::Float(*f)),
        Val::Str(s) => {
            let t = s.trim().to_ascii_lowercase();
            let f = match t.as_str() {
                "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
                "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
                "nan" | "+nan" | "-nan" => Some(f64::NAN),
                _ if t
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-' | '_')) =>
                {
                    t.replace('_', "").parse::<f64>().ok()
                }
                _ => None,
            };
            f.map(Val::Float).ok_or_else(|| {
                it.exc(
                    "ValueError",
                    format!("could not convert string to float: {}", str_repr(s)),
                )
            })
        }
        other => Err(it.type_error(format!(
            "float() argument must be a string or a number, not '{}'",
            type_name(other)
        ))),
    }
}

fn sort_values(it: &mut Interp, items: &mut [Val], key: Option<Val>, reverse: bool) -> R<()> {
    let mut keyed: Vec<(Val, Val)> = Vec::with_capacity(items.len());
    for v in items.iter() {
        let k = match &key {
            Some(f) if !matches!(f, Val::None) => {
                it.call_value(f.clone(), vec![v.clone()], Vec::new())?
            }
            _ => v.clone(),
        };
        keyed.push((k, v.clone()));
    }
    it.charge(items.len() * 4)?;
    let mut error = None;
    keyed.sort_by(|a, b| match py_cmp(&a.0, &b.0) {
        Ok(o) => {
            if reverse {
                o.reverse()
            } else {
                o
            }
        }
        Err(e) => {
            error.get_or_insert(e);
            std::cmp::Ordering::Equal
        }
    });
    if let Some(e) = error {
        return Err(it.type_error(e));
    }
    for (slot, (_, v)) in items.iter_mut().zip(keyed) {
        *slot = v;
    }
    Ok(())
}

fn min_max(it: &mut Interp, name: &str, args: Vec<Val>, mut kwargs: Vec<(String, Val)>) -> R<Val> {
    let key = take_kw(&mut kwargs, "key");
    let default = take_kw(&mut kwargs, "default");
    no_kwargs(it, name, &kwargs)?;
    let items = if args.len() == 1 {
        it.iterate(&args[0])?
    } else {
        args
    };
    if items.is_empty() {
        return default
            .ok_or_else(|| it.exc("ValueError", format!("{name}() arg is an empty sequence")));
    }
    let mut best: Option<(Val, Val)> = None;
    for v in items {
        let k = match &key {
            Some(f) if !matches!(f, Val::None) => {
                it.call_value(f.clone(), vec![v.clone()], Vec::new())?
            }
            _ => v.clone(),
        };
        let better = match &best {
            None => true,
            Some((bk, _)) => {
                let o = py_cmp(&k, bk).map_err(|e| it.type_error(e))?;
                if name == "min" {
                    o == std::cmp::Ordering::Less
                } else {
                    o == std::cmp::Ordering::Greater
                }
            }
        };
        if better {
            best = Some((k, v));
        }
    }
    Ok(best.map(|(_, v)| v).unwrap_or(Val::None))
}

pub fn call_native(
    it: &mut Interp,
    name: &'static str,
    args: Vec<Val>,
    mut kwargs: Vec<(String, Val)>,
) -> R<Val> {
    it.step()?;
    match name {
        "len" => {
            arg_count(it, name, &args, 1, 1)?;
            no_kwargs(it, name, &kwargs)?;
            let n = match &args[0] {
                Val::Str(s) => s.chars().count(),
                Val::List(l) => l.borrow().len(),
                Val::Tuple(t) => t.len(),
                Val::Dict(d) | Val::Set(d) => d.borrow().len(),
                Val::Event => it.event.root().as_object().map_or(0, |o| o.len()),
                other => {
                    return Err(it.type_error(format!(
                        "object of type '{}' has no len()",
                        type_name(other)
                    )));
                }
            };
            Ok(Val::Int(n as i64))
        }
        "str" => {
            arg_count(it, name, &args, 0, 1)?;
            Ok(match args.first() {
                None => new_str(""),
                Some(v) => new_str(it.to_str(v)),
            })
        }
        "repr" => {
            arg_count(it, name, &args, 1, 1)?;
            Ok(new_str(it.repr(&args[0])))
        }
        "int" => {
            arg_count(it, name, &args, 0, 2)?;
            let base = match args
                .get(1)
                .or(kwargs.iter().find(|(k, _)| k == "base").map(|(_, v)| v))
            {
                Some(b) => Some(want_int(it, b, "base")?),
                None => None,
            };
            match args.first() {
                None => Ok(Val::Int(0)),
                Some(v) => to_int(it, v, base),
            }
        }
        "float" => {
            arg_count(it, name, &args, 0, 1)?;
            match args.first() {
                None => Ok(Val::Float(0.0)),
                Some(v) => to_float(it, v),
            }
        }
        "bool" => {
            arg_count(it, name, &args, 0, 1)?;
            Ok(Val::Bool(match args.first() {
                None => false,
                Some(v) => it.truth(v)?,
            }))
        }
        "list" | "tuple" | "set" | "frozenset" => {
            arg_count(it, name, &args, 0, 1)?;
            let items = match args.first() {
                None => Vec::new(),
                Some(v) => it.iterate(v)?,
            };
            it.check_items(items.len())?;
            Ok(match name {
                "list" => new_list(items),
                "tuple" => Val::Tuple(Rc::new(items)),
                _ => {
                    let mut d = Dict::default();
                    for v in items {
                        d.insert(v, Val::None).map_err(|e| it.hkey_err(e))?;
                    }
                    new_set(d)
                }
            })
        }
        "dict" => {
            arg_count(it, name, &args, 0, 1)?;
            let mut d = Dict::default();
            if let Some(v) = args.first() {
                match v {
                    Val::Dict(_) | Val::Event => {
                        for (k, v) in it.mapping_items(v)? {
                            d.insert(k, v).map_err(|e| it.hkey_err(e))?;
                        }
                    }
                    other => {
                        for pair in it.iterate(other)? {
                            let kv = it.iterate(&pair)?;
                            if kv.len() != 2 {
                                return Err(it.exc(
                                    "ValueError",
                                    "dictionary update sequence element has the wrong length",
                                ));
                            }
                            let mut kv = kv.into_iter();
                            let (k, v) = (
                                kv.next().unwrap_or(Val::None),
                                kv.next().unwrap_or(Val::None),
                            );
                            d.insert(k, v).map_err(|e| it.hkey_err(e))?;
                        }
                    }
                }
            }
            for (k, v) in kwargs {
                d.insert(new_str(k), v).map_err(|e| it.hkey_err(e))?;
            }
            it.check_items(d.len())?;
            Ok(new_dict(d))
        }
        "any" | "all" => {
            arg_count(it, name, &args, 1, 1)?;
            let items = it.iterate(&args[0])?;
            let want = name == "any";
            for v in &items {
                if it.truth(v)? == want {
                    return Ok(Val::Bool(want));
                }
            }
            Ok(Val::Bool(!want))
        }
        "isinstance" => {
            arg_count(it, name, &args, 2, 2)?;
            Ok(Val::Bool(isinstance_of(it, &args[0], &args[1])?))
        }
        "sorted" => {
            arg_count(it, name, &args, 1, 1)?;
            let key = take_kw(&mut kwargs, "key");
            let reverse = match take_kw(&mut kwargs, "reverse") {
                Some(v) => it.truth(&v)?,
                None => false,
            };
            no_kwargs(it, name, &kwargs)?;
            let mut items = it.iterate(&args[0])?;
            sort_values(it, &mut items, key, reverse)?;
            Ok(new_list(items))
        }
        "reversed" => {
            arg_count(it, name, &args, 1, 1)?;
            let mut items = it.iterate(&args[0])?;
            items.reverse();
            Ok(new_list(items))
        }
        "min" | "max" => min_max(it, name, args, kwargs),
        "sum" => {
            arg_count(it, name, &args, 1, 2)?;
            let mut total = args.get(1).cloned().unwrap_or(Val::Int(0));
            for v in it.iterate(&args[0])? {
                total = it.binop(BinOp::Add, &total, &v)?;
            }
            Ok(total)
        }
        "abs" => {
            arg_count(it, name, &args, 1, 1)?;
            match &args[0] {
                Val::Int(i) => i
                    .checked_abs()
                    .map(Val::Int)
                    .ok_or_else(|| it.fatal("unsupported: integer overflow")),
                Val::Bool(b) => Ok(Val::Int(*b as i64)),
                Val::Float(f) => Ok(Val::Float(f.abs())),
                Val::Delta(d) => Ok(Val::Delta(d.abs())),
                other => Err(it.type_error(format!(
                    "bad operand type for abs(): '{}'",
                    type_name(other)
                ))),
            }
        }
        "round" => {
            arg_count(it, name, &args, 1, 2)?;
            let f = match &args[0] {
                Val::Int(i) if args.len() == 1 => return Ok(Val::Int(*i)),
                Val::Int(i) => *i as f64,
                Val::Float(f) => *f,
                other => {
                    return Err(it.type_error(format!(
                        "type {} doesn't define __round__",
                        type_name(other)
                    )));
                }
            };
            match args.get(1) {
                None | Some(Val::None) => {
                    // Python rounds half to even.
                    let r = f.round();
                    let r = if (f - f.trunc()).abs() == 0.5 {
                        2.0 * (f / 2.0).round()
                    } else {
                        r
                    };
                    Ok(Val::Int(r as i64))
                }
                Some(n) => {
                    let n = want_int(it, n, "ndigits")?;
                    let text = format!("{:.*}", n.clamp(0, 17) as usize, f);
                    Ok(Val::Float(text.parse().unwrap_or(f)))
                }
            }
        }
        "enumerate" => {
            arg_count(it, name, &args, 1, 2)?;
            let start = match args
                .get(1)
                .or(kwargs.iter().find(|(k, _)| k == "start").map(|(_, v)| v))
            {
                Some(v) => want_int(it, v, "start")?,
                None => 0,
            };
            let items = it.iterate(&args[0])?;
            Ok(new_list(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| Val::Tuple(Rc::new(vec![Val::Int(start + i as i64), v])))
                    .collect(),
            ))
        }
        "zip" => {
            let mut lists = Vec::new();
            for a in &args {
                lists.push(it.iterate(a)?);
            }
            let n = lists.iter().map(Vec::len).min().unwrap_or(0);
            Ok(new_list(
                (0..n)
                    .map(|i| Val::Tuple(Rc::new(lists.iter().map(|l| l[i].clone()).collect())))
                    .collect(),
            ))
        }
        "range" => {
            arg_count(it, name, &args, 1, 3)?;
            let ints: Vec<i64> = args
                .iter()
                .map(|a| want_int(it, a, "range argument"))
                .collect::<R<_>>()?;
            let (start, stop, step) = match ints.as_slice() {
                [stop] => (0, *stop, 1),
                [start, stop] => (*start, *stop, 1),
                [start, stop, step] => (*start, *stop, *step),
                _ => (0, 0, 1),
            };
            if step == 0 {
                return Err(it.exc("ValueError", "range() arg 3 must not be zero"));
            }
            let count = if step > 0 {
                (stop - start + step - 1).max(0) / step
            } else {
                (start - stop - step - 1).max(0) / -step
            };
            it.check_items(count as usize)?;
            it.charge(count as usize)?;
            Ok(new_list(
                (0..count).map(|i| Val::Int(start + i * step)).collect(),
            ))
        }
        "print" => Ok(Val::None),
        "next" => {
            arg_count(it, name, &args, 1, 2)?;
            let items = it.iterate(&args[0])?;
            match items.into_iter().next() {
                Some(v) => Ok(v),
                None => args
                    .get(1)
                    .cloned()
                    .ok_or_else(|| it.exc("StopIteration", "")),
            }
        }
        "iter" => {
            arg_count(it, name, &args, 1, 1)?;
            Ok(new_list(it.iterate(&args[0])?))
        }
        "map" => {
            arg_count(it, name, &args, 2, 2)?;
            let items = it.iterate(&args[1])?;
            let mut out = Vec::with_capacity(items.len());
            for v in items {
                out.push(it.call_value(args[0].clone(), vec![v], Vec::new())?);
            }
            Ok(new_list(out))
        }
        "filter" => {
            arg_count(it, name, &args, 2, 2)?;
            let items = it.iterate(&args[1])?;
            let mut out = Vec::new();
            for v in items {
                let keep = match &args[0] {
                    Val::None => it.truth(&v)?,
                    f => {
                        let r = it.call_value(f.clone(), vec![v.clone()], Vec::new())?;
                        it.truth(&r)?
                    }
                };
                if keep {
                    out.push(v);
                }
            }
            Ok(new_list(out))
        }
        "hasattr" => {
            arg_count(it, name, &args, 2, 2)?;
            let n = want_str(it, &args[1], "attribute name")?.clone();
            match get_attr(it, &args[0], &n) {
                Ok(_) => Ok(Val::Bool(true)),
                Err(super::interp::Ctl::Exc { .. }) => Ok(Val::Bool(false)),
                Err(other) => Err(other),
            }
        }
        "getattr" => {
            arg_count(it, name, &args, 2, 3)?;
            let n = want_str(it, &args[1], "attribute name")?.clone();
            match get_attr(it, &args[0], &n) {
                Ok(v) => Ok(v),
                Err(e @ super::interp::Ctl::Exc { .. }) => args.get(2).cloned().ok_or(e),
                Err(other) => Err(other),
            }
        }
        "callable" => {
            arg_count(it, name, &args, 1, 1)?;
            Ok(Val::Bool(matches!(
                args[0],
                Val::Func(_) | Val::Native(_) | Val::Method(..) | Val::Mock(_)
            )))
        }
        "type" => Err(it.fatal("unsupported: type()")),
        "divmod" => {
            arg_count(it, name, &args, 2, 2)?;
            let q = it.binop(BinOp::FloorDiv, &args[0], &args[1])?;
            let r = it.binop(BinOp::Mod, &args[0], &args[1])?;
            Ok(Val::Tuple(Rc::new(vec![q, r])))
        }
        "ord" => {
            arg_count(it, name, &args, 1, 1)?;
            let s = want_str(it, &args[0], "ord() argument")?;
            let mut cs = s.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => Ok(Val::Int(c as i64)),
                _ => Err(it.type_error("ord() expected a character")),
            }
        }
        "chr" => {
            arg_count(it, name, &args, 1, 1)?;
            let n = want_int(it, &args[0], "chr() argument")?;
            u32::try_from(n)
                .ok()
                .and_then(char::from_u32)
                .map(|c| new_str(c.to_string()))
                .ok_or_else(|| it.exc("ValueError", "chr() arg not in range"))
        }
        "hex" => {
            arg_count(it, name, &args, 1, 1)?;
            let n = want_int(it, &args[0], "hex() argument")?;
            Ok(new_str(if n < 0 {
                format!("-0x{:x}", -(n as i128))
            } else {
                format!("0x{n:x}")
            }))
        }
        "format" => {
            arg_count(it, name, &args, 1, 2)?;
            let spec = match args.get(1) {
                Some(s) => want_str(it, s, "format spec")?.to_string(),
                None => String::new(),
            };
            Ok(new_str(format_value(it, &args[0], &spec)?))
        }
        n if is_exception_class(n) => {
            let msg = match args.as_slice() {
                [] => String::new(),
                [one] => it.to_str(one),
                many => py_repr(&Val::Tuple(Rc::new(many.to_vec()))),
            };
            Ok(Val::Exc(Rc::from(n), Rc::from(msg.as_str())))
        }
        _ => helpers::call(it, name, args, kwargs),
    }
}

// ---- attributes and methods ----

const STR_METHODS: &[&str] = &[
    "lower",
    "upper",
    "startswith",
    "endswith",
    "split",
    "rsplit",
    "strip",
    "lstrip",
    "rstrip",
    "replace",
    "join",
    "format",
    "find",
    "rfind",
    "index",
    "rindex",
    "count",
    "isdigit",
    "isalpha",
    "isalnum",
    "isnumeric",
    "isdecimal",
    "isupper",
    "islower",
    "isspace",
    "title",
    "capitalize",
    "casefold",
    "removeprefix",
    "removesuffix",
    "partition",
    "rpartition",
    "splitlines",
    "zfill",
    "center",
    "ljust",
    "rjust",
    "swapcase",
    "encode",
    "isascii",
];
const LIST_METHODS: &[&str] = &[
    "append", "extend", "insert", "pop", "remove", "index", "count", "sort", "reverse", "copy",
    "clear",
];
const DICT_METHODS: &[&str] = &[
    "get",
    "keys",
    "values",
    "items",
    "pop",
    "setdefault",
    "update",
    "copy",
    "clear",
];
const SET_METHODS: &[&str] = &[
    "add",
    "update",
    "remove",
    "discard",
    "pop",
    "union",
    "intersection",
    "difference",
    "issubset",
    "issuperset",
    "copy",
    "clear",
    "isdisjoint",
    "symmetric_difference",
];
const EVENT_METHODS: &[&str] = &[
    "get",
    "deep_get",
    "deep_walk",
    "udm",
    "keys",
    "values",
    "items",
    "copy",
    "to_dict",
];

fn method(recv: &Val, name: &str) -> Val {
    Val::Method(Box::new(recv.clone()), Rc::from(name))
}

/// Whether `obj.name` is a method of a built-in container or of the event: then
/// `get_attr` gives the bound method, and calling it is `call_method(obj, name, ...)`.
pub fn is_builtin_method(obj: &Val, name: &str) -> bool {
    let has = |list: &[&str]| list.contains(&name);
    match obj {
        Val::Str(_) => has(STR_METHODS),
        Val::List(_) => has(LIST_METHODS),
        Val::Tuple(_) => name == "index" || name == "count",
        Val::Dict(_) => has(DICT_METHODS),
        Val::Set(_) => has(SET_METHODS),
        Val::Event => has(EVENT_METHODS) || name == "udm_path",
        _ => false,
    }
}

pub fn get_attr(it: &mut Interp, obj: &Val, name: &str) -> R<Val> {
    let found = match obj {
        _ if is_builtin_method(obj, name) => Some(method(obj, name)),
        Val::Module(m) => module_attr(m, name),
        Val::Native("datetime.datetime")
            if matches!(
                name,
                "now"
                    | "utcnow"
                    | "strptime"
                    | "fromisoformat"
                    | "fromtimestamp"
                    | "utcfromtimestamp"
            ) =>
        {
            Some(method(obj, name))
        }
        Val::Native("datetime.timezone") if name == "utc" => {
            Some(Val::Native("datetime.timezone.utc"))
        }
        Val::Native("str") if name == "lower" || name == "upper" => {
            Some(Val::Native(if name == "lower" {
                "str.lower"
            } else {
                "str.upper"
            }))
        }
        Val::Regex(..)
            if matches!(
                name,
                "search" | "match" | "fullmatch" | "findall" | "sub" | "split"
            ) =>
        {
            Some(method(obj, name))
        }
        Val::Regex(p, _) if name == "pattern" => Some(new_str(p.clone())),
        Val::Lut(..) => Some(method(obj, name)),
        Val::Match(_) if matches!(name, "group" | "groups" | "start" | "end") => {
            Some(method(obj, name))
        }
        Val::Ip(_) | Val::Net(..) | Val::DateTime(..) | Val::Delta(_) => {
            helpers::value_attr(it, obj, name)?
        }
        Val::Exc(_, m) if name == "args" => Some(Val::Tuple(Rc::new(vec![new_str(m.clone())]))),
        Val::Mock(_) => return Err(it.fatal(format!("unsupported: attribute {name} of a mock"))),
        _ => None,
    };
    if let Some(v) = found {
        return Ok(v);
    }
    // None and numbers have (almost) no attributes, so Python's AttributeError is the answer.
    // Other types have many this runtime does not implement: a missing one is unsupported, not
    // an AttributeError that rule code could catch and carry on from with a wrong answer.
    match obj {
        Val::None | Val::Bool(_) | Val::Int(_) | Val::Float(_) => Err(it.exc(
            "AttributeError",
            format!("'{}' object has no attribute '{name}'", type_name(obj)),
        )),
        _ => Err(it.fatal(format!(
            "unsupported: attribute {name} of {}",
            type_name(obj)
        ))),
    }
}

pub fn call_method(
    it: &mut Interp,
    recv: &Val,
    name: &str,
    args: Vec<Val>,
    kwargs: Vec<(String, Val)>,
) -> R<Val> {
    it.step()?;
    match recv {
        Val::Str(s) => str_method(it, s, name, args, kwargs),
        Val::List(_) | Val::Tuple(_) => list_method(it, recv, name, args, kwargs),
        Val::Dict(_) => dict_method(it, recv, name, args, kwargs),
        Val::Set(_) => set_method(it, recv, name, args, kwargs),
        Val::Event => helpers::event_method(it, name, args, kwargs),
        _ => helpers::value_method(it, recv, name, args, kwargs),
    }
}

fn str_arg<'v>(it: &Interp, args: &'v [Val], i: usize, name: &str) -> R<Option<&'v Rc<str>>> {
    match args.get(i) {
        None | Some(Val::None) => Ok(None),
        Some(Val::Str(s)) => Ok(Some(s)),
        Some(other) => Err(it.type_error(format!(
            "{name}() argument must be str, not {}",
            type_name(other)
        ))),
    }
}

fn py_split_whitespace(s: &str, max: i64) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        if max >= 0 && out.len() as i64 == max {
            out.push(rest.to_string());
            return out;
        }
        match rest.find(char::is_whitespace) {
            Some(i) => {
                out.push(rest[..i].to_string());
                rest = rest[i..].trim_start();
            }
            None => {
                out.push(rest.to_string());
                break;
            }
        }
    }
    out
}

fn str_method(
    it: &mut Interp,
    s: &Rc<str>,
    name: &str,
    args: Vec<Val>,
    mut kwargs: Vec<(String, Val)>,
) -> R<Val> {
    it.charge(s.len())?;
    let strs = |v: Vec<String>| new_list(v.into_iter().map(new_str).collect());
    if name != "format" && name != "split" && name != "rsplit" {
        no_kwargs(it, name, &kwargs)?;
    }
    match name {
        "lower" => Ok(new_str(s.to_lowercase())),
        "upper" => Ok(new_str(s.to_uppercase())),
        "casefold" => Ok(new_str(s.to_lowercase())),
        "swapcase" => Ok(new_str(
            s.chars()
                .flat_map(|c| {
                    if c.is_uppercase() {
                        c.to_lowercase().collect::<Vec<_>>()
                    } else {
                        c.to_uppercase().collect()
                    }
                })
                .collect::<String>(),
        )),
        "startswith" | "endswith" => {
            arg_count(it, name, &args, 1, 1)?;
            let test = |p: &str| {
                if name == "startswith" {
                    s.starts_with(p)
                } else {
                    s.ends_with(p)
                }
            };
            match &args[0] {
                Val::Str(p) => Ok(Val::Bool(test(p))),
                Val::Tuple(ps) => {
                    for p in ps.iter() {
                        let p = want_str(it, p, name)?;
                        if test(p) {
                            return Ok(Val::Bool(true));
                        }
                    }
                    Ok(Val::Bool(false))
                }
                other => Err(it.type_error(format!(
                    "{name} first arg must be str or a tuple of str, not {}",
                    type_name(other)
                ))),
            }
        }
        "split" | "rsplit" => {
            let sep = args
                .first()
                .cloned()
                .or_else(|| take_kw(&mut kwargs, "sep"));
            let max = match args
                .get(1)
                .cloned()
                .or_else(|| take_kw(&mut kwargs, "maxsplit"))
            {
                Some(v) => want_int(it, &v, "maxsplit")?,
                None => -1,
            };
            no_kwargs(it, name, &kwargs)?;
            match sep {
                None | Some(Val::None) => {
                    if name == "rsplit" && max >= 0 {
                        let rev: String = s.chars().rev().collect();
                        let mut parts: Vec<String> = py_split_whitespace(&rev, max)
                            .into_iter()
                            .map(|p| p.chars().rev().collect())
                            .collect();
                        parts.reverse();
                        return Ok(strs(parts));
                    }
                    Ok(strs(py_split_whitespace(s, max)))
                }
                Some(Val::Str(sep)) => {
                    if sep.is_empty() {
                        return Err(it.exc("ValueError", "empty separator"));
                    }
                    let parts: Vec<String> = if max < 0 {
                        s.split(&*sep).map(str::to_string).collect()
                    } else if name == "split" {
                        s.splitn(max as usize + 1, &*sep)
                            .map(str::to_string)
                            .collect()
                    } else {
                        let mut p: Vec<String> = s
                            .rsplitn(max as usize + 1, &*sep)
                            .map(str::to_string)
                            .collect();
                        p.reverse();
                        p
                    };
                    it.check_items(parts.len())?;
                    Ok(strs(parts))
                }
                Some(other) => {
                    Err(it.type_error(format!("must be str or None, not {}", type_name(&other))))
                }
            }
        }
        "strip" | "lstrip" | "rstrip" => {
            arg_count(it, name, &args, 0, 1)?;
            let chars: Option<Vec<char>> =
                str_arg(it, &args, 0, name)?.map(|c| c.chars().collect());
            let pred = |c: char| match &chars {
                Some(cs) => cs.contains(&c),
                None => c.is_whitespace(),
            };
            Ok(new_str(match name {
                "strip" => s.trim_matches(pred),
                "lstrip" => s.trim_start_matches(pred),
                _ => s.trim_end_matches(pred),
            }))
        }
        "replace" => {
            arg_count(it, name, &args, 2, 3)?;
            let old = want_str(it, &args[0], "replace() argument 1")?;
            let new = want_str(it, &args[1], "replace() argument 2")?;
            let count = match args.get(2) {
                Some(c) => want_int(it, c, "count")?,
                None => -1,
            };
            let out = if count < 0 {
                if old.is_empty() {
                    let mut o = String::from(&**new);
                    for c in s.chars() {
                        o.push(c);
                        o.push_str(new);
                    }
                    o
                } else {
                    s.replace(&**old, new)
                }
            } else {
                s.replacen(&**old, new, count as usize)
            };
            it.mk_str(out)
        }
        "join" => {
            arg_count(it, name, &args, 1, 1)?;
            let items = it.iterate(&args[0])?;
            let mut out = String::new();
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(s);
                }
                match v {
                    Val::Str(x) => out.push_str(x),
                    other => {
                        return Err(it.type_error(format!(
                            "sequence item {i}: expected str instance, {} found",
                            type_name(other)
                        )));
                    }
                }
                it.check_str(out.len())?;
            }
            Ok(new_str(out))
        }
        "format" => {
            let out = str_format(it, s, &args, &kwargs)?;
            it.mk_str(out)
        }
        "find" | "rfind" | "index" | "rindex" | "count" => {
            arg_count(it, name, &args, 1, 3)?;
            let sub = want_str(it, &args[0], name)?;
            let chars: Vec<char> = s.chars().collect();
            let n = chars.len() as i64;
            let norm = |v: i64| if v < 0 { (v + n).max(0) } else { v.min(n) };
            let start = match args.get(1) {
                Some(Val::None) | None => 0,
                Some(v) => norm(want_int(it, v, "start")?),
            } as usize;
            let end = match args.get(2) {
                Some(Val::None) | None => n,
                Some(v) => norm(want_int(it, v, "end")?),
            } as usize;
            let hay: String = if start <= end {
                chars[start..end].iter().collect()
            } else {
                String::new()
            };
            if name == "count" {
                if sub.is_empty() {
                    return Ok(Val::Int(hay.chars().count() as i64 + 1));
                }
                return Ok(Val::Int(hay.matches(&**sub).count() as i64));
            }
            let pos = if name.starts_with('r') {
                hay.rfind(&**sub)
            } else {
                hay.find(&**sub)
            };
            match pos {
                Some(b) => Ok(Val::Int((start + hay[..b].chars().count()) as i64)),
                None if name.contains("index") => Err(it.exc("ValueError", "substring not found")),
                None => Ok(Val::Int(-1)),
            }
        }
        "isdigit" | "isnumeric" | "isdecimal" => Ok(Val::Bool(
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_digit() || (name != "isdecimal" && c.is_numeric())),
        )),
        "isalpha" => Ok(Val::Bool(
            !s.is_empty() && s.chars().all(char::is_alphabetic),
        )),
        "isalnum" => Ok(Val::Bool(
            !s.is_empty() && s.chars().all(char::is_alphanumeric),
        )),
        "isspace" => Ok(Val::Bool(
            !s.is_empty() && s.chars().all(char::is_whitespace),
        )),
        "isascii" => Ok(Val::Bool(s.is_ascii())),
        "isupper" => Ok(Val::Bool(
            s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase),
        )),
        "islower" => Ok(Val::Bool(
            s.chars().any(char::is_lowercase) && !s.chars().any(char::is_uppercase),
        )),
        "title" => {
            let mut out = String::new();
            let mut prev_cased = false;
            for c in s.chars() {
                if prev_cased {
                    out.extend(c.to_lowercase());
                } else {
                    out.extend(c.to_uppercase());
                }
                prev_cased = c.is_alphabetic();
            }
            Ok(new_str(out))
        }
        "capitalize" => {
            let mut cs = s.chars();
            Ok(new_str(match cs.next() {
                Some(c) => c
                    .to_uppercase()
                    .chain(cs.flat_map(char::to_lowercase))
                    .collect::<String>(),
                None => String::new(),
            }))
        }
        "removeprefix" => {
            arg_count(it, name, &args, 1, 1)?;
            let p = want_str(it, &args[0], name)?;
            Ok(new_str(s.strip_prefix(&**p).unwrap_or(s)))
        }
        "removesuffix" => {
            arg_count(it, name, &args, 1, 1)?;
            let p = want_str(it, &args[0], name)?;
            Ok(new_str(s.strip_suffix(&**p).unwrap_or(s)))
        }
        "partition" | "rpartition" => {
            arg_count(it, name, &args, 1, 1)?;
            let sep = want_str(it, &args[0], name)?;
            let found = if name == "partition" {
                s.find(&**sep)
            } else {
                s.rfind(&**sep)
            };
            let parts = match found {
                Some(i) => vec![
                    s[..i].to_string(),
                    sep.to_string(),
                    s[i + sep.len()..].to_string(),
                ],
                None if name == "partition" => vec![s.to_string(), String::new(), String::new()],
                None => vec![String::new(), String::new(), s.to_string()],
            };
            Ok(Val::Tuple(Rc::new(
                parts.into_iter().map(new_str).collect(),
            )))
        }
        "splitlines" => Ok(strs(s.lines().map(str::to_string).collect())),
        "zfill" | "center" | "ljust" | "rjust" => {
            arg_count(it, name, &args, 1, 2)?;
            let width = want_int(it, &args[0], "width")?.max(0) as usize;
            it.check_str(width)?;
            let fill = match str_arg(it, &args, 1, name)? {
                Some(f) => f.chars().next().unwrap_or(' '),
                None => {
                    if name == "zfill" {
                        '0'
                    } else {
                        ' '
                    }
                }
            };
            let len = s.chars().count();
            if len >= width {
                return Ok(new_str(s.clone()));
            }
            let pad = width - len;
            let rep = |n: usize| std::iter::repeat_n(fill, n).collect::<String>();
            Ok(new_str(match name {
                "zfill" => {
                    let (sign, rest) = match s.chars().next() {
                        Some(c @ ('+' | '-')) => (c.to_string(), &s[1..]),
                        _ => (String::new(), &s[..]),
                    };
                    format!("{sign}{}{rest}", rep(pad))
                }
                "ljust" => format!("{s}{}", rep(pad)),
                "rjust" => format!("{}{s}", rep(pad)),
                _ => {
                    let left = pad / 2 + (pad & len & 1);
                    format!("{}{s}{}", rep(left), rep(pad - left))
                }
            }))
        }
        "encode" => Err(it.fatal("unsupported: bytes (str.encode)")),
        _ => Err(it.exc(
            "AttributeError",
            format!("'str' object has no attribute '{name}'"),
        )),
    }
}

fn list_method(
    it: &mut Interp,
    recv: &Val,
    name: &str,
    args: Vec<Val>,
    mut kwargs: Vec<(String, Val)>,
) -> R<Val> {
    if let Val::Tuple(t) = recv {
        return match name {
            "count" => {
                arg_count(it, name, &args, 1, 1)?;
                Ok(Val::Int(
                    t.iter().filter(|x| py_eq(x, &args[0])).count() as i64
                ))
            }
            "index" => {
                arg_count(it, name, &args, 1, 1)?;
                t.iter()
                    .position(|x| py_eq(x, &args[0]))
                    .map(|i| Val::Int(i as i64))
                    .ok_or_else(|| it.exc("ValueError", "tuple.index(x): x not in tuple"))
            }
            _ => Err(it.exc(
                "AttributeError",
                format!("'tuple' object has no attribute '{name}'"),
            )),
        };
    }
    let Val::List(l) = recv else {
        return Err(it.fatal("list method on a non-list"));
    };
    if name != "sort" {
        no_kwargs(it, name, &kwargs)?;
    }
    match name {
        "append" => {
            arg_count(it, name, &args, 1, 1)?;
            let len = l.borrow().len();
            it.check_items(len + 1)?;
            l.borrow_mut().push(args[0].clone());
            Ok(Val::None)
        }
        "extend" => {
            arg_count(it, name, &args, 1, 1)?;
            let items = it.iterate(&args[0])?;
            let len = l.borrow().len();
            it.check_items(len + items.len())?;
            l.borrow_mut().extend(items);
            Ok(Val::None)
        }
        "insert" => {
            arg_count(it, name, &args, 2, 2)?;
            let len = l.borrow().len() as i64;
            let i = want_int(it, &args[0], "index")?;
            let i = if i < 0 { (i + len).max(0) } else { i.min(len) } as usize;
            it.check_items(len as usize + 1)?;
            l.borrow_mut().insert(i, args[1].clone());
            Ok(Val::None)
        }
        "pop" => {
            arg_count(it, name, &args, 0, 1)?;
            let len = l.borrow().len();
            if len == 0 {
                return Err(it.exc("IndexError", "pop from empty list"));
            }
            let i = match args.first() {
                Some(v) => it.index_of(v, len)?,
                None => len - 1,
            };
            Ok(l.borrow_mut().remove(i))
        }
        "remove" => {
            arg_count(it, name, &args, 1, 1)?;
            let pos = l.borrow().iter().position(|x| py_eq(x, &args[0]));
            match pos {
                Some(i) => {
                    l.borrow_mut().remove(i);
                    Ok(Val::None)
                }
                None => Err(it.exc("ValueError", "list.remove(x): x not in list")),
            }
        }
        "index" => {
            arg_count(it, name, &args, 1, 1)?;
            let pos = l.borrow().iter().position(|x| py_eq(x, &args[0]));
            pos.map(|i| Val::Int(i as i64)).ok_or_else(|| {
                it.exc(
                    "ValueError",
                    format!("{} is not in list", py_repr(&args[0])),
                )
            })
        }
        "count" => {
            arg_count(it, name, &args, 1, 1)?;
            Ok(Val::Int(
                l.borrow().iter().filter(|x| py_eq(x, &args[0])).count() as i64,
            ))
        }
        "sort" => {
            let key = take_kw(&mut kwargs, "key");
            let reverse = match take_kw(&mut kwargs, "reverse") {
                Some(v) => it.truth(&v)?,
                None => false,
            };
            no_kwargs(it, name, &kwargs)?;
            let mut items = l.borrow().clone();
            sort_values(it, &mut items, key, reverse)?;
            *l.borrow_mut() = items;
            Ok(Val::None)
        }
        "reverse" => {
            l.borrow_mut().reverse();
            Ok(Val::None)
        }
        "copy" => Ok(new_list(l.borrow().clone())),
        "clear" => {
            l.borrow_mut().clear();
            Ok(Val::None)
        }
        _ => Err(it.exc(
            "AttributeError",
            format!("'list' object has no attribute '{name}'"),
        )),
    }
}

fn dict_method(
    it: &mut Interp,
    recv: &Val,
    name: &str,
    args: Vec<Val>,
    kwargs: Vec<(String, Val)>,
) -> R<Val> {
    let Val::Dict(d) = recv else {
        return Err(it.fatal("dict method on a non-dict"));
    };
    if name != "update" {
        no_kwargs(it, name, &kwargs)?;
    }
    match name {
        "get" => {
            arg_count(it, name, &args, 1, 2)?;
            let found = d
                .borrow()
                .get(&args[0])
                .map_err(|e| it.hkey_err(e))?
                .cloned();
            Ok(found.unwrap_or_else(|| args.get(1).cloned().unwrap_or(Val::None)))
        }
        "keys" => Ok(new_list(d.borrow().keys.clone())),
        "values" => Ok(new_list(d.borrow().vals.clone())),
        "items" => {
            let d = d.borrow();
            Ok(new_list(
                d.keys
                    .iter()
                    .zip(&d.vals)
                    .map(|(k, v)| Val::Tuple(Rc::new(vec![k.clone(), v.clone()])))
                    .collect(),
            ))
        }
        "pop" => {
            arg_count(it, name, &args, 1, 2)?;
            let removed = d
                .borrow_mut()
                .remove(&args[0])
                .map_err(|e| it.hkey_err(e))?;
            match removed {
                Some(v) => Ok(v),
                None => args
                    .get(1)
                    .cloned()
                    .ok_or_else(|| it.exc("KeyError", py_repr(&args[0]))),
            }
        }
        "setdefault" => {
            arg_count(it, name, &args, 1, 2)?;
            let found = d
                .borrow()
                .get(&args[0])
                .map_err(|e| it.hkey_err(e))?
                .cloned();
            match found {
                Some(v) => Ok(v),
                None => {
                    let v = args.get(1).cloned().unwrap_or(Val::None);
                    let len = d.borrow().len();
                    it.check_items(len + 1)?;
                    d.borrow_mut()
                        .insert(args[0].clone(), v.clone())
                        .map_err(|e| it.hkey_err(e))?;
                    Ok(v)
                }
            }
        }
        "update" => {
            arg_count(it, name, &args, 0, 1)?;
            let mut pairs = Vec::new();
            if let Some(other) = args.first() {
                match other {
                    Val::Dict(_) | Val::Event => pairs = it.mapping_items(other)?,
                    v => {
                        for pair in it.iterate(v)? {
                            let kv = it.iterate(&pair)?;
                            if kv.len() != 2 {
                                return Err(it.exc(
                                    "ValueError",
                                    "dictionary update sequence element has the wrong length",
                                ));
                            }
                            pairs.push((kv[0].clone(), kv[1].clone()));
                        }
                    }
                }
            }
            for (k, v) in kwargs {
                pairs.push((new_str(k), v));
            }
            let mut dm = d.borrow_mut();
            for (k, v) in pairs {
                dm.insert(k, v).map_err(|e| it.hkey_err(e))?;
            }
            let len = dm.len();
            drop(dm);
            it.check_items(len)?;
            Ok(Val::None)
        }
        "copy" => {
            let mut c = d.borrow().clone();
            c.case_insensitive = false;
            Ok(new_dict(c))
        }
        "clear" => {
            d.borrow_mut().clear();
            Ok(Val::None)
        }
        _ => Err(it.exc(
            "AttributeError",
            format!("'dict' object has no attribute '{name}'"),
        )),
    }
}

fn set_method(
    it: &mut Interp,
    recv: &Val,
    name: &str,
    args: Vec<Val>,
    kwargs: Vec<(String, Val)>,
) -> R<Val> {
    let Val::Set(s) = recv else {
        return Err(it.fatal("set method on a non-set"));
    };
    no_kwargs(it, name, &kwargs)?;
    let other_keys = |it: &mut Interp, args: &[Val]| -> R<Vec<Val>> {
        let mut all = Vec::new();
        for a in args {
            all.extend(it.iterate(a)?);
        }
        Ok(all)
    };
    match name {
        "add" => {
            arg_count(it, name, &args, 1, 1)?;
            let len = s.borrow().len();
            it.check_items(len + 1)?;
            s.borrow_mut()
                .insert(args[0].clone(), Val::None)
                .map_err(|e| it.hkey_err(e))?;
            Ok(Val::None)
        }
        "update" => {
            for k in other_keys(it, &args)? {
                s.borrow_mut()
                    .insert(k, Val::None)
                    .map_err(|e| it.hkey_err(e))?;
            }
            let len = s.borrow().len();
            it.check_items(len)?;
            Ok(Val::None)
        }
        "remove" | "discard" => {
            arg_count(it, name, &args, 1, 1)?;
            let removed = s
                .borrow_mut()
                .remove(&args[0])
                .map_err(|e| it.hkey_err(e))?;
            if removed.is_none() && name == "remove" {
                return Err(it.exc("KeyError", py_repr(&args[0])));
            }
            Ok(Val::None)
        }
        "pop" => {
            let first = s.borrow().keys.first().cloned();
            match first {
                Some(k) => {
                    s.borrow_mut().remove(&k).map_err(|e| it.hkey_err(e))?;
                    Ok(k)
                }
                None => Err(it.exc("KeyError", "pop from an empty set")),
            }
        }
        "union" | "intersection" | "difference" | "symmetric_difference" => {
            let mut result = Val::Set(Rc::new(std::cell::RefCell::new(s.borrow().clone())));
            let op = match name {
                "union" => BinOp::BitOr,
                "intersection" => BinOp::BitAnd,
                "difference" => BinOp::Sub,
                _ => BinOp::BitXor,
            };
            for a in &args {
                let mut d = Dict::default();
                for k in it.iterate(a)? {
                    d.insert(k, Val::None).map_err(|e| it.hkey_err(e))?;
                }
                result = it.binop(op, &result, &new_set(d))?;
            }
            Ok(result)
        }
        "issubset" | "issuperset" | "isdisjoint" => {
            arg_count(it, name, &args, 1, 1)?;
            let other = other_keys(it, &args)?;
            let sb = s.borrow();
            Ok(Val::Bool(match name {
                "issubset" => sb.keys.iter().all(|k| other.iter().any(|o| py_eq(k, o))),
                "issuperset" => other.iter().all(|o| matches!(sb.contains(o), Ok(true))),
                _ => !other.iter().any(|o| matches!(sb.contains(o), Ok(true))),
            }))
        }
        "copy" => Ok(new_set(s.borrow().clone())),
        "clear" => {
            s.borrow_mut().clear();
            Ok(Val::None)
        }
        _ => Err(it.exc(
            "AttributeError",
            format!("'set' object has no attribute '{name}'"),
        )),
    }
}

// ---- formatting ----

/// `format(value, spec)` with the format-spec mini-language:
/// `[[fill]align][sign][#][0][width][,|_][.precision][type]`.
pub fn format_value(it: &Interp, v: &Val, spec: &str) -> R<String> {
    if spec.is_empty() {
        return Ok(it.to_str(v));
    }
    if let Val::DateTime(us, off) = v {
        return helpers::strftime(it, *us, *off, spec);
    }
    let chars: Vec<char> = spec.chars().collect();
    let mut i = 0;
    let mut fill = ' ';
    let mut align = None;
    if chars.len() >= 2 && matches!(chars[1], '<' | '>' | '^' | '=') {
        fill = chars[0];
        align = Some(chars[1]);
        i = 2;
    } else if matches!(chars.first(), Some('<' | '>' | '^' | '=')) {
        align = Some(chars[0]);
        i = 1;
    }
    let mut sign = '-';
    if let Some(&c @ ('+' | '-' | ' ')) = chars.get(i) {
        sign = c;
        i += 1;
    }
    let mut alt = false;
    if chars.get(i) == Some(&'#') {
        alt = true;
        i += 1;
    }
    if chars.get(i) == Some(&'0') {
        if align.is_none() {
            fill = '0';
            align = Some('=');
        }
        i += 1;
    }
    let mut width = 0usize;
    while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
        width = width.saturating_mul(10).saturating_add(d as usize);
        i += 1;
    }
    let mut grouping = None;
    if let Some(&c @ (',' | '_')) = chars.get(i) {
        grouping = Some(c);
        i += 1;
    }
    let mut precision = None;
    if chars.get(i) == Some(&'.') {
        i += 1;
        let mut p = 0usize;
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            p = p.saturating_mul(10).saturating_add(d as usize);
            i += 1;
        }
        precision = Some(p.min(100));
    }
    let ty = chars.get(i).copied();
    if i + usize::from(ty.is_some()) != chars.len() {
        return Err(it.exc("ValueError", format!("Invalid format specifier '{spec}'")));
    }
    it.check_str(width)?;
    let unsupported = || {
        it.fatal(format!(
            "unsupported: format spec '{spec}' for {}",
            type_name(v)
        ))
    };
    let (body, numeric, negative) = match (v, ty) {
        (Val::Str(s), None | Some('s')) => {
            let s: String = match precision {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            };
            (s, false, false)
        }
        (Val::Int(_) | Val::Bool(_), None | Some('d' | 'n' | 'x' | 'X' | 'o' | 'b')) => {
            let n = match v {
                Val::Int(n) => *n,
                Val::Bool(b) => *b as i64,
                _ => 0,
            };
            if precision.is_some() {
                return Err(it.exc(
                    "ValueError",
                    "Precision not allowed in integer format specifier",
                ));
            }
            let a = n.unsigned_abs();
            let mut s = match ty {
                Some('x') => format!("{a:x}"),
                Some('X') => format!("{a:X}"),
                Some('o') => format!("{a:o}"),
                Some('b') => format!("{a:b}"),
                _ => a.to_string(),
            };
            if let Some(g) = grouping {
                s = group_digits(&s, g);
            }
            if alt {
                s = match ty {
                    Some('x') => format!("0x{s}"),
                    Some('X') => format!("0X{s}"),
                    Some('o') => format!("0o{s}"),
                    Some('b') => format!("0b{s}"),
                    _ => s,
                };
            }
            (s, true, n < 0)
        }
        (
            Val::Int(_) | Val::Bool(_) | Val::Float(_),
            Some('f' | 'F' | '%' | 'e' | 'E' | 'g' | 'G') | None,
        ) => {
            let f = match v {
                Val::Int(n) => *n as f64,
                Val::Bool(b) => *b as i64 as f64,
                Val::Float(f) => *f,
                _ => 0.0,
            };
            let a = f.abs();
            let mut s = match ty {
                Some('f' | 'F') => format!("{a:.*}", precision.unwrap_or(6)),
                Some('%') => format!("{:.*}%", precision.unwrap_or(6), a * 100.0),
                Some('e' | 'E') => {
                    let s = format!("{a:.*e}", precision.unwrap_or(6));
                    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                    let e: i32 = e.parse().unwrap_or(0);
                    let s = format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
                    if ty == Some('E') { s.to_uppercase() } else { s }
                }
                None if precision.is_none() => float_repr(a),
                _ => return Err(unsupported()),
            };
            if let Some(g) = grouping {
                let (int_part, rest) = match s.find(|c: char| !c.is_ascii_digit()) {
                    Some(p) => (s[..p].to_string(), s[p..].to_string()),
                    None => (s.clone(), String::new()),
                };
                s = format!("{}{rest}", group_digits(&int_part, g));
            }
            (
                s,
                true,
                f.is_sign_negative() && f != 0.0
                    || (f == 0.0 && f.is_sign_negative() && ty.is_some()),
            )
        }
        (_, None) if precision.is_none() && sign == '-' && grouping.is_none() => {
            (it.to_str(v), false, false)
        }
        _ => return Err(unsupported()),
    };
    let sign_text = if numeric {
        match (negative, sign) {
            (true, _) => "-",
            (false, '+') => "+",
            (false, ' ') => " ",
            _ => "",
        }
    } else {
        ""
    };
    let len = sign_text.chars().count() + body.chars().count();
    if len >= width {
        return Ok(format!("{sign_text}{body}"));
    }
    let pad = width - len;
    let rep = |n: usize| std::iter::repeat_n(fill, n).collect::<String>();
    let align = align.unwrap_or(if numeric { '>' } else { '<' });
    Ok(match align {
        '<' => format!("{sign_text}{body}{}", rep(pad)),
        '>' => format!("{}{sign_text}{body}", rep(pad)),
        '^' => format!("{}{sign_text}{body}{}", rep(pad / 2), rep(pad - pad / 2)),
        _ => format!("{sign_text}{}{body}", rep(pad)),
    })
}

fn group_digits(s: &str, sep: char) -> String {
    let digits: Vec<char> = s.chars().collect();
    let mut out = String::new();
    for (i, c) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(*c);
    }
    out
}

/// `str.format`: `{}`, `{0}`, `{name}`, with `!r`/`!s` and a format spec.
fn str_format(it: &mut Interp, s: &str, args: &[Val], kwargs: &[(String, Val)]) -> R<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut auto = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' && chars.get(i + 1) == Some(&'{') {
            out.push('{');
            i += 2;
            continue;
        }
        if c == '}' && chars.get(i + 1) == Some(&'}') {
            out.push('}');
            i += 2;
            continue;
        }
        if c != '{' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(close) = chars[i..].iter().position(|&c| c == '}') else {
            return Err(it.exc("ValueError", "Single '{' encountered in format string"));
        };
        let field: String = chars[i + 1..i + close].iter().collect();
        i += close + 1;
        let (field, spec) = match field.split_once(':') {
            Some((f, sp)) => (f.to_string(), sp.to_string()),
            None => (field, String::new()),
        };
        let (field, conv) = match field.split_once('!') {
            Some((f, c)) => (f.to_string(), c.chars().next()),
            None => (field, None),
        };
        if field.contains('.') || field.contains('[') || spec.contains('{') {
            return Err(it.fatal(format!("unsupported: format field '{{{field}}}'")));
        }
        let v = if field.is_empty() {
            auto += 1;
            args.get(auto - 1).cloned()
        } else if let Ok(n) = field.parse::<usize>() {
            args.get(n).cloned()
        } else {
            kwargs
                .iter()
                .find(|(k, _)| *k == field)
                .map(|(_, v)| v.clone())
        };
        let Some(v) = v else {
            return Err(if field.is_empty() || field.parse::<usize>().is_ok() {
                it.exc(
                    "IndexError",
                    "Replacement index out of range for positional args tuple",
                )
            } else {
                it.exc("KeyError", str_repr(&field))
            });
        };
        let v = match conv {
            Some('r') => new_str(it.repr(&v)),
            Some('s') => new_str(it.to_str(&v)),
            _ => v,
        };
        out.push_str(&format_value(it, &v, &spec)?);
        it.check_str(out.len())?;
    }
    Ok(out)
}

/// `"..." % args` with `%s`, `%r`, `%d`, `%i`, `%f` and `%%`.
pub fn percent_format(it: &mut Interp, f: &str, args: &Val) -> R<String> {
    let items: Vec<Val> = match args {
        Val::Tuple(t) => (**t).clone(),
        other => vec![other.clone()],
    };
    let mut next = items.into_iter();
    let mut out = String::new();
    let mut chars = f.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() || d == '.' || d == '-' || d == '+' || d == ' ' {
                spec.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let Some(kind) = chars.next() else {
            return Err(it.exc("ValueError", "incomplete format"));
        };
        if kind == '%' {
            out.push('%');
            continue;
        }
        let Some(v) = next.next() else {
            return Err(it.type_error("not enough arguments for format string"));
        };
        let text = match kind {
            's' => it.to_str(&v),
            'r' => it.repr(&v),
            'd' | 'i' => match to_int(it, &v, None)? {
                Val::Int(n) => n.to_string(),
                _ => String::new(),
            },
            'f' => {
                let fv = to_float(it, &v)?;
                format_value(
                    it,
                    &fv,
                    &format!(
                        "{}f",
                        if spec.contains('.') {
                            spec.clone()
                        } else {
                            ".6".into()
                        }
                    ),
                )?
            }
            other => return Err(it.fatal(format!("unsupported: %{other} formatting"))),
        };
        let width: usize = spec
            .split('.')
            .next()
            .unwrap_or("")
            .trim_start_matches(['-', '+', ' '])
            .parse()
            .unwrap_or(0);
        // The pad is checked against the string limit before it is built.
        it.check_str(width)?;
        if text.chars().count() < width && kind != 'f' {
            let pad = " ".repeat(width - text.chars().count());
            if spec.starts_with('-') {
                out.push_str(&text);
                out.push_str(&pad);
            } else {
                out.push_str(&pad);
                out.push_str(&text);
            }
        } else {
            out.push_str(&text);
        }
        it.check_str(out.len())?;
    }
    if next.next().is_some() {
        return Err(it.type_error("not all arguments converted during string formatting"));
    }
    Ok(out)
}

pub fn net_contains(it: &Interp, net: &Val, item: &Val) -> R<bool> {
    let (Val::Net(base, prefix), Val::Ip(ip)) = (net, item) else {
        return Ok(false);
    };
    Ok(helpers::ip_in_net(*ip, *base, *prefix) || {
        let _ = it;
        false
    })
}
