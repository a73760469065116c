//! A stable, format-independent text form of the IR, one notation for every source format.
//! `vigil rules --ir` prints it, and tests compare against it.
//!
//! `eventName eq "CreateUser"`, `not (errorCode exists)`, `any_string contains "x"`.

use std::fmt;

use super::{Expr, Predicate, StrMatch};

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_expr(f, self, false)
    }
}

fn write_expr(f: &mut fmt::Formatter<'_>, expr: &Expr, nested: bool) -> fmt::Result {
    match expr {
        Expr::Const(value) => write!(f, "{value}"),
        Expr::And(items) | Expr::Or(items) => {
            let sep = if matches!(expr, Expr::And(_)) {
                " and "
            } else {
                " or "
            };
            if nested {
                f.write_str("(")?;
            }
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    f.write_str(sep)?;
                }
                write_expr(f, item, true)?;
            }
            if nested {
                f.write_str(")")?;
            }
            Ok(())
        }
        Expr::Not(inner) => {
            f.write_str("not ")?;
            write_expr(f, inner, true)
        }
        Expr::Field { path, pred } => write!(f, "{path} {pred}"),
        Expr::Keyword(matcher) => write!(f, "any_string {matcher}"),
        Expr::Value(value) => write!(f, "value {value} is true"),
    }
}

impl fmt::Display for StrMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cased = if self.cased { "_cased" } else { "" };
        write!(f, "{}{} {:?}", self.kind.as_str(), cased, self.needle)
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Predicate::Null => f.write_str("is_null"),
            Predicate::Exists(true) => f.write_str("exists"),
            Predicate::Exists(false) => f.write_str("not_exists"),
            Predicate::Str(matcher) => write!(f, "{matcher}"),
            Predicate::Regex(regex) => write!(f, "regex {:?}", regex.as_str()),
            Predicate::Num { op, value } => write!(f, "{} {value}", op.as_str()),
            Predicate::Cidr(cidr) => write!(f, "cidr {cidr}"),
            Predicate::FieldRef { other, kind, cased } => {
                let cased = if *cased { "_cased" } else { "" };
                write!(f, "{}{cased} field({other})", kind.as_str())
            }
            Predicate::DatePart { part, op, value } => {
                write!(f, "{}() {} {value}", part.as_str(), op.as_str())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ir::{Expr, Predicate, StrKind, StrMatch};

    #[test]
    fn prints_one_notation() {
        let expr = Expr::and(vec![
            Expr::field(
                "eventName",
                Predicate::Str(StrMatch::new(StrKind::Exact, "CreateUser", false)),
            ),
            Expr::not(Expr::or(vec![
                Expr::field("errorCode", Predicate::Exists(true)),
                Expr::field("errorMessage", Predicate::Exists(true)),
            ])),
        ]);
        assert_eq!(
            expr.to_string(),
            "eventName eq \"createuser\" and not (errorCode exists or errorMessage exists)"
        );
    }
}
