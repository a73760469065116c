//! The keys a function such as `alert_context()` returns, read from its syntax without running
//! it, for the rule catalog's "output fields".
//!
//! It follows one function body in order: a dict literal's constant keys, a local dict grown by
//! `ctx["key"] = ...` and `ctx.update({...})`, a call of a function of the module (followed
//! once), and the Panther helpers whose keys are fixed (`aws_rule_context`, `aws_rds_context`).
//! Anything else returned (a computed key, a call of another helper, a spread of an unknown
//! mapping) makes the answer partial, and the caller says so.

use std::collections::HashMap;

use super::ast::{Arg, Const, Expr, Stmt, StmtKind};

/// The keys of `aws_rule_context(event)` (see `helpers.rs`).
const AWS_RULE_CONTEXT: &[&str] = &[
    "eventName",
    "eventSource",
    "awsRegion",
    "recipientAccountId",
    "sourceIPAddress",
    "userAgent",
    "userIdentity",
    "PantherFlow Investigation",
];

/// The keys `name` may return, and whether that list is complete; `None` when the module
/// has no such function.
pub fn returned_keys(body: &[Stmt], name: &str) -> Option<(Vec<String>, bool)> {
    let mut helpers: HashMap<String, String> = HashMap::new();
    for stmt in body {
        if let StmtKind::ImportFrom(module, names) = &stmt.kind {
            for (imported, bound) in names {
                helpers.insert(bound.clone(), format!("{module}.{imported}"));
            }
        }
    }
    let ctx = Ctx { body, helpers };
    ctx.function(name, 0)
}

struct Ctx<'m> {
    body: &'m [Stmt],
    /// Bound name → `module.function` of `from module import function`.
    helpers: HashMap<String, String>,
}

struct Walk {
    keys: Vec<String>,
    complete: bool,
    /// Local name → keys of the dict it holds.
    locals: HashMap<String, Vec<String>>,
}

impl Ctx<'_> {
    fn function(&self, name: &str, depth: usize) -> Option<(Vec<String>, bool)> {
        let def = self.body.iter().find_map(|stmt| match &stmt.kind {
            StmtKind::Def(def) if def.name == name => Some(def.clone()),
            _ => None,
        })?;
        if depth > 4 {
            return Some((Vec::new(), false));
        }
        let mut walk = Walk {
            keys: Vec::new(),
            complete: true,
            locals: HashMap::new(),
        };
        self.stmts(&def.body, &mut walk, depth);
        Some((walk.keys, walk.complete))
    }

    fn stmts(&self, stmts: &[Stmt], walk: &mut Walk, depth: usize) {
        for stmt in stmts {
            match &stmt.kind {
                StmtKind::Assign(targets, value) => {
                    let keys = self.dict_keys(value, walk, depth);
                    for target in targets {
                        match target {
                            Expr::Name(local) => match &keys {
                                Some((keys, true)) => {
                                    walk.locals.insert(local.clone(), keys.clone());
                                }
                                _ => {
                                    walk.locals.remove(local);
                                }
                            },
                            Expr::Subscript(base, key) => {
                                if let (Expr::Name(local), Expr::Const(Const::Str(key))) =
                                    (&**base, &**key)
                                    && let Some(keys) = walk.locals.get_mut(local)
                                    && !keys.contains(key)
                                {
                                    keys.push(key.clone());
                                }
                            }
                            _ => {}
                        }
                    }
                }
                StmtKind::Expr(Expr::Call(callee, args)) => {
                    if let Expr::Attr(base, method) = &**callee
                        && method == "update"
                        && let Expr::Name(local) = &**base
                        && walk.locals.contains_key(local)
                    {
                        let added = match args.as_slice() {
                            [Arg::Pos(arg)] => self.dict_keys(arg, walk, depth),
                            _ => None,
                        };
                        match added {
                            Some((added, true)) => {
                                if let Some(keys) = walk.locals.get_mut(local) {
                                    for key in added {
                                        if !keys.contains(&key) {
                                            keys.push(key);
                                        }
                                    }
                                }
                            }
                            _ => {
                                walk.locals.remove(local);
                            }
                        }
                    }
                }
                StmtKind::Return(Some(value)) => match self.dict_keys(value, walk, depth) {
                    Some((keys, complete)) => {
                        for key in keys {
                            if !walk.keys.contains(&key) {
                                walk.keys.push(key);
                            }
                        }
                        walk.complete &= complete;
                    }
                    None => walk.complete = false,
                },
                StmtKind::If(_, then, otherwise) => {
                    self.stmts(then, walk, depth);
                    self.stmts(otherwise, walk, depth);
                }
                StmtKind::For(_, _, body, otherwise) | StmtKind::While(_, body, otherwise) => {
                    self.stmts(body, walk, depth);
                    self.stmts(otherwise, walk, depth);
                }
                StmtKind::Try {
                    body,
                    handlers,
                    orelse,
                    finally,
                } => {
                    self.stmts(body, walk, depth);
                    for handler in handlers {
                        self.stmts(&handler.body, walk, depth);
                    }
                    self.stmts(orelse, walk, depth);
                    self.stmts(finally, walk, depth);
                }
                _ => {}
            }
        }
    }

    /// The keys of a dict-valued expression and whether they are all known.
    fn dict_keys(&self, expr: &Expr, walk: &Walk, depth: usize) -> Option<(Vec<String>, bool)> {
        match expr {
            Expr::Dict(items) => {
                let mut keys = Vec::new();
                let mut complete = true;
                for (key, value) in items {
                    match key {
                        Some(Expr::Const(Const::Str(key))) => keys.push(key.clone()),
                        Some(_) => complete = false,
                        None => match self.dict_keys(value, walk, depth) {
                            Some((more, more_complete)) => {
                                keys.extend(more);
                                complete &= more_complete;
                            }
                            None => complete = false,
                        },
                    }
                }
                Some((keys, complete))
            }
            Expr::Name(local) => walk.locals.get(local).map(|keys| (keys.clone(), true)),
            Expr::Call(callee, _) => {
                let Expr::Name(function) = &**callee else {
                    return None;
                };
                match self.helpers.get(function).map(String::as_str) {
                    Some("panther_aws_helpers.aws_rule_context") => Some((
                        AWS_RULE_CONTEXT.iter().map(|k| k.to_string()).collect(),
                        true,
                    )),
                    Some("panther_aws_helpers.aws_rds_context") => {
                        let mut keys: Vec<String> =
                            AWS_RULE_CONTEXT.iter().map(|k| k.to_string()).collect();
                        keys.push("db_identifier".into());
                        keys.push("db_instance_arn".into());
                        Some((keys, true))
                    }
                    Some(_) => None,
                    None => self.function(function, depth + 1),
                }
            }
            Expr::Const(Const::None) => Some((Vec::new(), true)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Module;

    fn keys(source: &str) -> (Vec<String>, bool) {
        let module = Module::parse(source, "t.py").unwrap();
        module.returned_keys("alert_context").unwrap()
    }

    #[test]
    fn context_keys() {
        let (found, complete) = keys(
            "from panther_aws_helpers import aws_rule_context\n\ndef alert_context(event):\n    context = aws_rule_context(event)\n    context[\"request_username\"] = event.deep_get(\"a\", \"b\")\n    return context\n",
        );
        assert!(complete);
        assert_eq!(found.first().map(String::as_str), Some("eventName"));
        assert_eq!(found.last().map(String::as_str), Some("request_username"));
        let (found, complete) =
            keys("def alert_context(event):\n    return {\"a\": 1, \"b\": event.get(\"x\")}\n");
        assert_eq!(
            (found, complete),
            (vec!["a".to_string(), "b".to_string()], true)
        );
        let (_, complete) = keys("def alert_context(event):\n    return event.to_dict()\n");
        assert!(!complete);
    }
}
