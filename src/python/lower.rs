//! Lowering of pure predicate functions (`rule()` of the single-return and guard-chain kinds)
//! into the IR, so the engine's index can use them.
//!
//! Python's result is "truthy and no exception". Every lowered sub-expression is a pair: `t`,
//! when the value is truthy (assuming nothing raised), and `err`, when evaluating it raises;
//! the function lowers to `not err and t`. Control flow composes them: an `if` whose body
//! returns contributes `(c and body) or (not c and rest)`, and a raise only counts on the
//! path that reaches it.
//!
//! Precondition (the IR cannot state it, so the caller must know it holds): every field the
//! function reads is absent, JSON `null` or a string, every intermediate of a `deep_get` path
//! is absent, `null` or an object, keys are spelled in the event as in the rule, and no
//! top-level key contains a dot. Under it, `Field` predicates (which fan out over arrays, read
//! dotted keys literally, and compare numbers by their text) agree with Python exactly. CloudTrail
//! events satisfy it for the fields the lowerable corpus rules read (`eventName`,
//! `eventSource`, `errorCode`, `userIdentity.type`, ...). Needles that look like numbers,
//! booleans or JSON are refused, since the IR would compare a number's text with them.

use std::collections::HashMap;

use super::ast::*;
use super::necessary::panther_key;
use crate::ir::{self, Expr as Ir, Predicate, StrKind, StrMatch};

/// A value the lowered code can reason about.
#[derive(Clone, Debug)]
enum Sym {
    /// `event.get(key, default)`: a string when present and not null; None when null; the
    /// default when absent.
    Get {
        key: String,
        default: Const,
    },
    /// `event.deep_get(*path, default=d)`: the string when the whole path leads to one; the
    /// default otherwise.
    DeepGet {
        path: Vec<String>,
        default: Const,
    },
    /// `.lower()` of a string-or-default value.
    Lower(Box<Sym>),
    Const(Const),
    /// A literal or module-constant collection of strings.
    Strs(Vec<String>),
    /// A boolean already lowered (a local holding a comparison result).
    Bool(Box<Low>),
}

#[derive(Clone, Debug)]
struct Low {
    t: Ir,
    err: Ir,
}

impl Low {
    fn pure(t: Ir) -> Low {
        Low {
            t,
            err: Ir::Const(false),
        }
    }
}

type Env = HashMap<String, Sym>;

struct Ctx<'m> {
    consts: HashMap<String, Sym>,
    funcs: HashMap<String, &'m FuncDef>,
    param: String,
}

fn no(why: impl Into<String>) -> String {
    why.into()
}

fn field(path: &str, pred: Predicate) -> Ir {
    Ir::field(path, pred)
}

fn str_pred(kind: StrKind, needle: &str, cased: bool) -> Predicate {
    Predicate::Str(StrMatch::new(kind, needle, cased))
}

/// Refuses needles whose comparison the IR would also apply to numbers, booleans or objects.
fn check_needle(s: &str) -> Result<(), String> {
    let t = s.trim();
    if t.parse::<f64>().is_ok()
        || matches!(t, "true" | "false" | "null")
        || t.starts_with('{')
        || t.starts_with('[')
    {
        return Err(no(format!(
            "needle {s:?} would also match a number, boolean or JSON text"
        )));
    }
    Ok(())
}

pub fn lower_function(body: &[Stmt], name: &str) -> Result<ir::Expr, String> {
    let mut ctx = Ctx {
        consts: HashMap::new(),
        funcs: HashMap::new(),
        param: String::new(),
    };
    let mut assigned: HashMap<String, usize> = HashMap::new();
    let mut globals_declared = Vec::new();
    collect_globals(body, &mut globals_declared);
    for s in body {
        match &s.kind {
            StmtKind::Assign(targets, value) => {
                for t in targets {
                    if let Expr::Name(n) = t {
                        *assigned.entry(n.clone()).or_default() += 1;
                        if let Some(sym) = const_sym(value) {
                            ctx.consts.insert(n.clone(), sym);
                        }
                    }
                }
            }
            StmtKind::Def(def) => {
                ctx.funcs.insert(def.name.clone(), def);
            }
            _ => {}
        }
    }
    // A constant reassigned or declared global somewhere may change: not a constant.
    ctx.consts
        .retain(|n, _| assigned.get(n) == Some(&1) && !globals_declared.contains(n));
    let Some(def) = ctx.funcs.get(name).copied() else {
        return Err(no(format!("no function {name}()")));
    };
    let p = &def.params;
    if p.positional.len() != 1 || p.star.is_some() || p.starstar.is_some() || !p.kwonly.is_empty() {
        return Err(no("the function does not take exactly the event"));
    }
    ctx.param = p.positional[0].0.clone();
    let low = block(&ctx, &def.body, &Env::new())?;
    Ok(Ir::and(vec![Ir::not(low.err), low.t]))
}

fn collect_globals(body: &[Stmt], out: &mut Vec<String>) {
    for s in body {
        match &s.kind {
            StmtKind::Global(names) => out.extend(names.iter().cloned()),
            StmtKind::Def(def) => collect_globals(&def.body, out),
            _ => s
                .blocks()
                .into_iter()
                .for_each(|block| collect_globals(block, out)),
        }
    }
}

fn const_sym(e: &Expr) -> Option<Sym> {
    match e {
        Expr::Const(c) => Some(Sym::Const(c.clone())),
        Expr::List(items) | Expr::Tuple(items) | Expr::Set(items) => {
            let mut out = Vec::new();
            for i in items {
                match i {
                    Expr::Const(Const::Str(s)) => out.push(s.clone()),
                    _ => return None,
                }
            }
            Some(Sym::Strs(out))
        }
        _ => None,
    }
}

/// Whether every path through `stmts` ends in a `return`.
fn always_returns(stmts: &[Stmt]) -> bool {
    match stmts.last().map(|s| &s.kind) {
        Some(StmtKind::Return(_)) => true,
        Some(StmtKind::If(_, a, b)) => always_returns(a) && always_returns(b),
        _ => stmts.iter().any(|s| matches!(s.kind, StmtKind::Return(_))),
    }
}

/// The truthiness of what a statement list returns (falling off the end returns None).
fn block(ctx: &Ctx, stmts: &[Stmt], env: &Env) -> Result<Low, String> {
    let Some((first, rest)) = stmts.split_first() else {
        return Ok(Low::pure(Ir::Const(false)));
    };
    let line = first.line;
    let at = |m: String| format!("line {line}: {m}");
    match &first.kind {
        StmtKind::Return(None) => Ok(Low::pure(Ir::Const(false))),
        StmtKind::Return(Some(e)) => truth(ctx, e, env).map_err(at),
        StmtKind::Pass | StmtKind::Expr(Expr::Const(_)) => block(ctx, rest, env),
        StmtKind::Assign(targets, value) => {
            let [Expr::Name(n)] = targets.as_slice() else {
                return Err(at(no("assignment to something other than one name")));
            };
            let (sym, err) = match value_sym(ctx, value, env) {
                Ok(s) => (s, Ir::Const(false)),
                Err(_) => {
                    let l = truth(ctx, value, env).map_err(at)?;
                    let err = l.err.clone();
                    (Sym::Bool(Box::new(Low::pure(l.t))), err)
                }
            };
            let mut env = env.clone();
            env.insert(n.clone(), sym);
            let r = block(ctx, rest, &env)?;
            Ok(Low {
                t: r.t,
                err: Ir::or(vec![err, r.err]),
            })
        }
        StmtKind::If(cond, body, orelse) => {
            let c = truth(ctx, cond, env).map_err(at)?;
            let mut then_path: Vec<Stmt> = body.clone();
            let mut else_path: Vec<Stmt> = orelse.clone();
            if !always_returns(body) {
                then_path.extend(rest.iter().cloned());
            }
            if !always_returns(orelse) {
                else_path.extend(rest.iter().cloned());
            }
            if body.iter().any(|s| matches!(s.kind, StmtKind::Return(_))) && !always_returns(body) {
                return Err(at(no("a branch that returns on some paths only")));
            }
            let a = block(ctx, &then_path, env)?;
            let b = block(ctx, &else_path, env)?;
            Ok(Low {
                t: Ir::or(vec![
                    Ir::and(vec![c.t.clone(), a.t]),
                    Ir::and(vec![Ir::not(c.t.clone()), b.t]),
                ]),
                err: Ir::or(vec![
                    c.err,
                    Ir::and(vec![c.t.clone(), a.err]),
                    Ir::and(vec![Ir::not(c.t), b.err]),
                ]),
            })
        }
        other => Err(at(no(format!("statement {}", stmt_name(other))))),
    }
}

fn stmt_name(s: &StmtKind) -> &'static str {
    match s {
        StmtKind::For(..) => "for",
        StmtKind::While(..) => "while",
        StmtKind::Try { .. } => "try",
        StmtKind::AugAssign(..) => "augmented assignment",
        StmtKind::Def(..) => "def",
        StmtKind::Global(..) => "global",
        StmtKind::Import(..) | StmtKind::ImportFrom(..) => "import",
        StmtKind::Expr(_) => "expression statement",
        _ => "statement",
    }
}

fn const_str(ctx: &Ctx, e: &Expr, env: &Env) -> Option<String> {
    match e {
        Expr::Const(Const::Str(s)) => Some(s.clone()),
        Expr::Name(n) => match env.get(n).or_else(|| ctx.consts.get(n)) {
            Some(Sym::Const(Const::Str(s))) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn is_event(ctx: &Ctx, e: &Expr) -> bool {
    matches!(e, Expr::Name(n) if *n == ctx.param)
}

/// A value expression the lowering understands.
fn value_sym(ctx: &Ctx, e: &Expr, env: &Env) -> Result<Sym, String> {
    match e {
        Expr::Const(c) => Ok(Sym::Const(c.clone())),
        Expr::Name(n) if *n == ctx.param => Err(no("the event as a value")),
        Expr::Name(n) => env
            .get(n)
            .or_else(|| ctx.consts.get(n))
            .cloned()
            .ok_or_else(|| no(format!("name {n}"))),
        Expr::List(_) | Expr::Tuple(_) | Expr::Set(_) => {
            const_sym(e).ok_or_else(|| no("a collection that is not of string literals"))
        }
        Expr::Call(f, args) => {
            let Expr::Attr(recv, method) = &**f else {
                return Err(no("a call"));
            };
            if is_event(ctx, recv) {
                let mut pos = Vec::new();
                let mut default = Const::None;
                for a in args {
                    match a {
                        Arg::Pos(x) => pos.push(
                            const_str(ctx, x, env)
                                .ok_or_else(|| no("a key that is not a string literal"))?,
                        ),
                        Arg::Kw(k, Expr::Const(c)) if k == "default" && method == "deep_get" => {
                            default = c.clone()
                        }
                        _ => return Err(no("an argument form")),
                    }
                }
                let keys = if method == "get" {
                    &pos[..pos.len().min(1)]
                } else {
                    &pos[..]
                };
                if keys.iter().any(|k| k.contains('.') || k.is_empty()) {
                    return Err(no("a key containing a dot"));
                }
                return match method.as_str() {
                    "get" => match pos.as_slice() {
                        [k] => Ok(Sym::Get {
                            key: k.clone(),
                            default,
                        }),
                        [k, _] => {
                            let d = match args.get(1) {
                                Some(Arg::Pos(Expr::Const(c))) => c.clone(),
                                _ => return Err(no("a default that is not a literal")),
                            };
                            Ok(Sym::Get {
                                key: k.clone(),
                                default: d,
                            })
                        }
                        _ => Err(no("event.get arity")),
                    },
                    "deep_get" if !pos.is_empty() => Ok(Sym::DeepGet { path: pos, default }),
                    m => Err(no(format!("event.{m}"))),
                };
            }
            if method == "lower" && args.is_empty() {
                let inner = value_sym(ctx, recv, env)?;
                return match inner {
                    Sym::Get { .. } | Sym::DeepGet { .. } => Ok(Sym::Lower(Box::new(inner))),
                    Sym::Const(Const::Str(s)) => Ok(Sym::Const(Const::Str(s.to_lowercase()))),
                    _ => Err(no("lower() of this value")),
                };
            }
            Err(no(format!("method {method}")))
        }
        _ => Err(no("this expression as a value")),
    }
}

/// The field path and the default of a field-reading value.
fn parts(sym: &Sym) -> Option<(String, bool, &Const, bool)> {
    match sym {
        Sym::Get { key, default } => Some((key.clone(), true, default, false)),
        Sym::DeepGet { path, default } => Some((path.join("."), false, default, false)),
        Sym::Lower(inner) => parts(inner).map(|(p, g, d, _)| (p, g, d, true)),
        _ => None,
    }
}

/// The value is a string from the event (not the default, not None).
fn has_str(path: &str) -> Ir {
    Ir::not(field(path, Predicate::Null))
}

/// For `event.get`: the key is absent (the default applies). For `deep_get`: the path has no
/// string (null or missing anywhere: the default applies).
fn default_case(path: &str, is_get: bool) -> Ir {
    if is_get {
        field(path, Predicate::Exists(false))
    } else {
        field(path, Predicate::Null)
    }
}

/// For `event.get` only: the key is present with null (the value is None).
fn null_case(path: &str, is_get: bool) -> Ir {
    if is_get {
        Ir::and(vec![
            field(path, Predicate::Exists(true)),
            field(path, Predicate::Null),
        ])
    } else {
        Ir::Const(false)
    }
}

fn const_truthy(c: &Const) -> bool {
    match c {
        Const::None => false,
        Const::Bool(b) => *b,
        Const::Int(i) => *i != 0,
        Const::Float(f) => *f != 0.0,
        Const::Str(s) => !s.is_empty(),
    }
}

/// The value's default after `.lower()` (None when the default is not a string, which raises).
fn lowered_default(c: &Const, lower: bool) -> Option<Const> {
    match (c, lower) {
        (_, false) => Some(c.clone()),
        (Const::Str(s), true) => Some(Const::Str(s.to_lowercase())),
        _ => None,
    }
}

/// When evaluating the value raises: `.lower()` of a None.
fn value_err(sym: &Sym) -> Ir {
    match sym {
        Sym::Lower(inner) => {
            let Some((path, is_get, default, _)) = parts(inner) else {
                return Ir::Const(false);
            };
            let default_raises = !matches!(default, Const::Str(_));
            Ir::or(vec![
                null_case(&path, is_get),
                if default_raises {
                    default_case(&path, is_get)
                } else {
                    Ir::Const(false)
                },
            ])
        }
        _ => Ir::Const(false),
    }
}

/// `value == needle` for a string needle, given the value does not raise.
fn eq_str(sym: &Sym, needle: &str) -> Result<Ir, String> {
    if let Sym::Const(c) = sym {
        return Ok(Ir::Const(matches!(c, Const::Str(s) if s == needle)));
    }
    let Some((path, is_get, default, lower)) = parts(sym) else {
        return Err(no("comparison of this value"));
    };
    check_needle(needle)?;
    let from_event = if lower {
        if ir::fold_case(needle) != needle || needle.to_lowercase() != needle {
            Ir::Const(false)
        } else {
            field(&path, str_pred(StrKind::Exact, needle, false))
        }
    } else {
        field(&path, str_pred(StrKind::Exact, needle, true))
    };
    let d = lowered_default(default, lower);
    let default_eq = matches!(d, Some(Const::Str(ref s)) if s == needle);
    Ok(Ir::or(vec![
        Ir::and(vec![has_str(&path), from_event]),
        Ir::and(vec![default_case(&path, is_get), Ir::Const(default_eq)]),
    ]))
}

/// Truthiness of a value, given it does not raise.
fn truthy_sym(sym: &Sym) -> Result<Ir, String> {
    match sym {
        Sym::Const(c) => Ok(Ir::Const(const_truthy(c))),
        Sym::Strs(items) => Ok(Ir::Const(!items.is_empty())),
        Sym::Bool(l) => Ok(l.t.clone()),
        _ => {
            let Some((path, is_get, default, lower)) = parts(sym) else {
                return Err(no("truthiness of this value"));
            };
            let d = lowered_default(default, lower);
            Ok(Ir::or(vec![
                Ir::and(vec![
                    has_str(&path),
                    Ir::not(field(&path, str_pred(StrKind::Exact, "", true))),
                ]),
                Ir::and(vec![
                    default_case(&path, is_get),
                    Ir::Const(d.as_ref().is_some_and(const_truthy)),
                ]),
            ]))
        }
    }
}

fn prefix_suffix(sym: &Sym, kind: StrKind, needles: &[String]) -> Result<Low, String> {
    let Some((path, is_get, default, lower)) = parts(sym) else {
        if let Sym::Const(Const::Str(s)) = sym {
            let hit = needles.iter().any(|n| {
                if kind == StrKind::Prefix {
                    s.starts_with(n.as_str())
                } else {
                    s.ends_with(n.as_str())
                }
            });
            return Ok(Low::pure(Ir::Const(hit)));
        }
        return Err(no("startswith/endswith of this value"));
    };
    // `None.startswith` raises: a null value, or an absent one whose default is not a string.
    let d = lowered_default(default, lower);
    let default_is_str = matches!(d, Some(Const::Str(_)));
    let err = Ir::or(vec![
        null_case(&path, is_get),
        if default_is_str {
            Ir::Const(false)
        } else {
            default_case(&path, is_get)
        },
        value_err(sym),
    ]);
    let mut alts = Vec::new();
    for n in needles {
        check_needle(n)?;
        let from_event = if lower {
            if n.to_lowercase() != *n || ir::fold_case(n) != *n {
                Ir::Const(false)
            } else {
                field(&path, str_pred(kind, n, false))
            }
        } else {
            field(&path, str_pred(kind, n, true))
        };
        let default_hit = match &d {
            Some(Const::Str(s)) => {
                if kind == StrKind::Prefix {
                    s.starts_with(n.as_str())
                } else {
                    s.ends_with(n.as_str())
                }
            }
            _ => false,
        };
        alts.push(Ir::or(vec![
            Ir::and(vec![has_str(&path), from_event]),
            Ir::and(vec![default_case(&path, is_get), Ir::Const(default_hit)]),
        ]));
    }
    Ok(Low {
        t: Ir::or(alts),
        err,
    })
}

fn needle_list(ctx: &Ctx, e: &Expr, env: &Env) -> Result<Vec<String>, String> {
    if let Some(s) = const_str(ctx, e, env) {
        return Ok(vec![s]);
    }
    match value_sym(ctx, e, env)? {
        Sym::Strs(items) => Ok(items),
        _ => Err(no(
            "a needle that is not a string literal or a tuple of them",
        )),
    }
}

/// Truthiness of an expression, with its raise condition.
fn truth(ctx: &Ctx, e: &Expr, env: &Env) -> Result<Low, String> {
    match e {
        Expr::And(items) | Expr::Or(items) => {
            let is_and = matches!(e, Expr::And(_));
            let lows: Vec<Low> = items
                .iter()
                .map(|i| truth(ctx, i, env))
                .collect::<Result<_, _>>()?;
            // Raises when an operand that is reached raises: operand i is reached when every
            // earlier one was truthy (and) or falsy (or).
            let mut errs = Vec::new();
            let mut reached = Vec::new();
            for l in &lows {
                errs.push(Ir::and(
                    reached.iter().cloned().chain([l.err.clone()]).collect(),
                ));
                reached.push(if is_and {
                    l.t.clone()
                } else {
                    Ir::not(l.t.clone())
                });
            }
            let ts: Vec<Ir> = lows.into_iter().map(|l| l.t).collect();
            Ok(Low {
                t: if is_and { Ir::and(ts) } else { Ir::or(ts) },
                err: Ir::or(errs),
            })
        }
        Expr::Unary(UnaryOp::Not, inner) => {
            let l = truth(ctx, inner, env)?;
            Ok(Low {
                t: Ir::not(l.t),
                err: l.err,
            })
        }
        Expr::Compare(left, rest) if rest.len() == 1 => {
            let (op, right) = &rest[0];
            compare(ctx, left, *op, right, env)
        }
        Expr::Call(f, args) => {
            if let Expr::Name(n) = &**f {
                if n == "aws_cloudtrail_success"
                    && matches!(args.as_slice(), [Arg::Pos(x)] if is_event(ctx, x))
                    && !ctx.funcs.contains_key(n)
                {
                    let code = truthy_sym(&Sym::Get {
                        key: "errorCode".into(),
                        default: Const::Str(String::new()),
                    })?;
                    let msg = truthy_sym(&Sym::Get {
                        key: "errorMessage".into(),
                        default: Const::Str(String::new()),
                    })?;
                    return Ok(Low::pure(Ir::and(vec![Ir::not(code), Ir::not(msg)])));
                }
                if (n == "all" || n == "any") && !ctx.funcs.contains_key(n) {
                    let [Arg::Pos(Expr::List(items) | Expr::Tuple(items))] = args.as_slice() else {
                        return Err(no(format!(
                            "{n}() over something other than a literal list"
                        )));
                    };
                    // A list literal evaluates every element first, so any element may raise.
                    let lows: Vec<Low> = items
                        .iter()
                        .map(|i| truth(ctx, i, env))
                        .collect::<Result<_, _>>()?;
                    let err = Ir::or(lows.iter().map(|l| l.err.clone()).collect());
                    let ts: Vec<Ir> = lows.into_iter().map(|l| l.t).collect();
                    return Ok(Low {
                        t: if n == "all" { Ir::and(ts) } else { Ir::or(ts) },
                        err,
                    });
                }
                return Err(no(format!("call of {n}()")));
            }
            if let Expr::Attr(recv, method) = &**f
                && (method == "startswith" || method == "endswith")
            {
                let [Arg::Pos(needle)] = args.as_slice() else {
                    return Err(no(format!("{method} arguments")));
                };
                let sym = value_sym(ctx, recv, env)?;
                let needles = needle_list(ctx, needle, env)?;
                let kind = if method == "startswith" {
                    StrKind::Prefix
                } else {
                    StrKind::Suffix
                };
                return prefix_suffix(&sym, kind, &needles);
            }
            let sym = value_sym(ctx, e, env)?;
            Ok(Low {
                t: truthy_sym(&sym)?,
                err: value_err(&sym),
            })
        }
        _ => {
            let sym = value_sym(ctx, e, env)?;
            Ok(Low {
                t: truthy_sym(&sym)?,
                err: value_err(&sym),
            })
        }
    }
}

fn compare(ctx: &Ctx, left: &Expr, op: CmpOp, right: &Expr, env: &Env) -> Result<Low, String> {
    let negate = matches!(op, CmpOp::Ne | CmpOp::NotIn | CmpOp::IsNot);
    let positive = match op {
        CmpOp::Eq | CmpOp::Ne => {
            // Either side may be the field.
            let (a, b) = match (value_sym(ctx, left, env)?, value_sym(ctx, right, env)?) {
                (s @ Sym::Const(_), f) => (f, s),
                (f, s) => (f, s),
            };
            let err = Ir::or(vec![value_err(&a), value_err(&b)]);
            let t = match &b {
                Sym::Const(Const::Str(needle)) => eq_str(&a, needle)?,
                Sym::Const(Const::None) => return Err(no("== None")),
                Sym::Const(Const::Bool(_) | Const::Int(_) | Const::Float(_))
                    if matches!(a, Sym::Const(_)) =>
                {
                    Ir::Const(false)
                }
                _ => return Err(no("== with something other than a string")),
            };
            Low { t, err }
        }
        CmpOp::In | CmpOp::NotIn => {
            let a = value_sym(ctx, left, env)?;
            let Sym::Strs(items) = value_sym(ctx, right, env)? else {
                return Err(no("`in` with something other than a collection of strings"));
            };
            let mut alts = Vec::new();
            for i in &items {
                alts.push(eq_str(&a, i)?);
            }
            Low {
                t: Ir::or(alts),
                err: value_err(&a),
            }
        }
        CmpOp::Is | CmpOp::IsNot => {
            if !matches!(right, Expr::Const(Const::None)) {
                return Err(no("`is` with something other than None"));
            }
            let a = value_sym(ctx, left, env)?;
            let Some((path, is_get, default, lower)) = parts(&a) else {
                return Err(no("`is None` of this value"));
            };
            if lower {
                return Err(no("`is None` of lower()"));
            }
            let default_none = matches!(default, Const::None);
            Low::pure(Ir::or(vec![
                null_case(&path, is_get),
                Ir::and(vec![default_case(&path, is_get), Ir::Const(default_none)]),
            ]))
        }
        _ => return Err(no("ordering comparison")),
    };
    Ok(if negate {
        Low {
            t: Ir::not(positive.t),
            err: positive.err,
        }
    } else {
        positive
    })
}

/// Whether `event` meets the precondition under which a lowered expression agrees with the
/// evaluator: along every field path the expression reads, each intermediate is absent, null
/// or an object, the final value is absent, null or a string, no key is present only in
/// another letter case (Panther's events would find it), and no top-level key is the dotted
/// path itself. An engine can check this and fall back to the evaluator when it fails.
pub fn precondition_holds(expr: &ir::Expr, event: &crate::event::Event<'_>) -> bool {
    precondition_paths(expr)
        .iter()
        .all(|path| path_ok(event, path))
}

/// A path the precondition checks, with its first key as a path that derives the value of
/// the first top-level key equal to it ignoring case ([`panther_key`]): the event caches
/// that answer, so the many rules that check the same absent key (`errorCode`) on an event
/// search its keys once.
#[derive(Clone, Debug)]
pub struct PrePath {
    path: ir::FieldPath,
    first_any_case: Option<ir::FieldPath>,
}

/// The field paths [`precondition_holds`] checks for `expr`, each once (rules read the same
/// field in several comparisons): collect them at load time and check them with
/// [`paths_precondition_holds`], rather than walk the expression for every event.
pub fn precondition_paths(expr: &ir::Expr) -> Vec<PrePath> {
    let mut paths = Vec::new();
    collect_paths(expr, &mut paths);
    let mut unique: Vec<PrePath> = Vec::with_capacity(paths.len());
    for path in paths {
        if !unique.iter().any(|kept| kept.path.raw == path.raw) {
            let first_any_case = path.segments.first().map(|first| ir::FieldPath {
                derive: Some(panther_key as crate::event::DeriveFn),
                ..ir::FieldPath::new(first)
            });
            unique.push(PrePath {
                path: path.clone(),
                first_any_case,
            });
        }
    }
    unique
}

/// [`precondition_holds`] over paths from [`precondition_paths`].
pub fn paths_precondition_holds(paths: &[PrePath], event: &crate::event::Event<'_>) -> bool {
    paths.iter().all(|path| path_ok(event, path))
}

fn collect_paths<'e>(expr: &'e ir::Expr, out: &mut Vec<&'e ir::FieldPath>) {
    match expr {
        Ir::And(items) | Ir::Or(items) => items.iter().for_each(|i| collect_paths(i, out)),
        Ir::Not(inner) => collect_paths(inner, out),
        Ir::Field { path, .. } => out.push(path),
        Ir::Const(_) | Ir::Keyword(_) | Ir::Value(_) => {}
    }
}

/// The precondition along one path. Only the top-level value the path starts with is built
/// (rules read it anyway); the rest of the event is not.
fn path_ok(event: &crate::event::Event<'_>, pre: &PrePath) -> bool {
    use super::value::same_lower;
    use serde_json::Value as J;
    let path = &pre.path;
    let segments = &path.segments;
    if segments.len() > 1 && event.contains_key(path.raw.as_str()) {
        return false;
    }
    let Some(first) = segments.first() else {
        return true;
    };
    let mut next = match event.get(first) {
        Some(value) => value,
        // Present, but not representable (see `Event::is_broken`): the evaluator decides.
        None if event.contains_key(first) => return false,
        None => {
            // Some key equal to `first` ignoring case: the cached lookup answers, unless it
            // found nothing because a value was not representable (then search the keys).
            if let Some(any_case) = &pre.first_any_case {
                if event.first(any_case).is_some() {
                    return false;
                }
                if !event.is_broken() {
                    return true;
                }
            }
            return !event.any_key(|k| same_lower(k, first));
        }
    };
    for segment in segments.iter().skip(1) {
        match next {
            J::Null => return true,
            J::Object(map) => {
                next = match map.get(segment.as_str()) {
                    Some(value) => value,
                    None => return !map.keys().any(|k| same_lower(k, segment)),
                };
            }
            _ => return false,
        }
    }
    matches!(next, J::Null | J::String(_))
}
