//! Value expressions: a computed value over one event, for query languages that compute
//! columns (ES|QL `EVAL`, `DISSECT`, `GROK`) and test or group by them later.
//!
//! A [`ValueExpr`] evaluates to a value or to null (`crate::eval::value`), with the
//! null propagation of SQL-like languages: a function of null is null, a comparison with null
//! is null, `AND`/`OR`/`NOT` are three-valued. [`crate::ir::Expr::Value`] turns one into a
//! condition that holds only when the value is the boolean `true` (ES|QL `WHERE` keeps only
//! rows whose condition is true). The layer is format-independent: a loader lowers its
//! language's functions into [`Func`] and keeps format quirks on its side.

use std::fmt;
use std::sync::Arc;

use super::{Cidr, CmpOp, FieldPath, Regex, StrMatch};

/// A value computed from one event.
#[derive(Clone, Debug)]
pub enum ValueExpr {
    /// The event's value at a field (null when absent; several values when an array).
    Field(FieldPath),
    Lit(Literal),
    Call(Func, Vec<ValueExpr>),
    /// `CASE(c1, v1, c2, v2, ..., [else])`: the value of the first condition that is true
    /// (null counts as not true), else `otherwise`, else null.
    Case {
        arms: Vec<(ValueExpr, ValueExpr)>,
        otherwise: Option<Box<ValueExpr>>,
    },
    /// Three-valued comparison: null when either side is null or several values.
    Cmp(CmpOp, Box<ValueExpr>, Box<ValueExpr>),
    And(Vec<ValueExpr>),
    Or(Vec<ValueExpr>),
    Not(Box<ValueExpr>),
    /// `IS NULL` (never null itself).
    IsNull(Box<ValueExpr>),
    /// Whole-value wildcard match, case-sensitive; true when any pattern matches.
    Like(Box<ValueExpr>, Vec<StrMatch>),
    /// Whole-value regex match (the regex is anchored by the loader).
    Rlike(Box<ValueExpr>, Regex),
    /// `v IN (a, b, ...)`: true when equal to one, else null when anything was null, else
    /// false.
    In(Box<ValueExpr>, Vec<ValueExpr>),
    Arith(ArithOp, Box<ValueExpr>, Box<ValueExpr>),
    Neg(Box<ValueExpr>),
    /// Capture `key` of a dissect pattern applied to `source` (null when it does not match).
    Dissect {
        source: Box<ValueExpr>,
        pattern: Arc<DissectPattern>,
        key: usize,
    },
    /// Named group `group` of a grok regex searched in `source` (null when it does not
    /// match or the group did not take part).
    Grok {
        source: Box<ValueExpr>,
        regex: Arc<Regex>,
        group: String,
    },
    /// Membership of an IP value in any of the networks.
    CidrMatch(Box<ValueExpr>, Vec<Cidr>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(String),
}

/// Scalar functions. Each returns null when a required argument is null.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Func {
    ToLower,
    ToUpper,
    /// Null when any argument is null.
    Concat,
    /// `SUBSTRING(s, start[, length])`, 1-based; a negative start counts from the end.
    Substring,
    /// Length in Unicode code points.
    Length,
    /// The first non-null argument.
    Coalesce,
    ToString,
    ToInteger,
    ToDouble,
    StartsWith,
    EndsWith,
    /// Decodes standard base64 into text (null when it is not valid base64).
    FromBase64,
    /// Rounds an epoch-millisecond date down to a multiple of `span_ms` since the epoch (a
    /// fixed interval, in UTC).
    DateTrunc {
        span_ms: i64,
    },
    /// `DATE_FORMAT(pattern, date)`: the date in UTC formatted by a Java date pattern (the
    /// first argument, a string literal the loader checked with
    /// [`crate::eval::java_date::JavaDatePattern::parse`]).
    DateFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// A parsed dissect pattern: text before the first key, then each key with the delimiter
/// that follows it (empty for a last key that takes the rest of the input).
#[derive(Clone, Debug, PartialEq)]
pub struct DissectPattern {
    pub text: String,
    pub leading: String,
    pub keys: Vec<DissectKey>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DissectKey {
    /// Column name; `None` for a skipped key (`%{}` or `%{?name}`).
    pub name: Option<String>,
    pub delimiter: String,
}

impl fmt::Display for ValueExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueExpr::Field(path) => write!(f, "{path}"),
            ValueExpr::Lit(Literal::Null) => f.write_str("null"),
            ValueExpr::Lit(Literal::Bool(value)) => write!(f, "{value}"),
            ValueExpr::Lit(Literal::Int(value)) => write!(f, "{value}"),
            ValueExpr::Lit(Literal::Num(value)) => write!(f, "{value}"),
            ValueExpr::Lit(Literal::Str(value)) => write!(f, "{value:?}"),
            ValueExpr::Call(func, args) => {
                write!(f, "{func:?}(")?;
                write_list(f, args)?;
                f.write_str(")")
            }
            ValueExpr::Case { arms, otherwise } => {
                f.write_str("case(")?;
                for (idx, (cond, value)) in arms.iter().enumerate() {
                    if idx > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{cond}, {value}")?;
                }
                if let Some(otherwise) = otherwise {
                    write!(f, ", {otherwise}")?;
                }
                f.write_str(")")
            }
            ValueExpr::Cmp(op, left, right) => write!(f, "({left} {} {right})", op.as_str()),
            ValueExpr::And(items) | ValueExpr::Or(items) => {
                let sep = if matches!(self, ValueExpr::And(_)) {
                    " and "
                } else {
                    " or "
                };
                f.write_str("(")?;
                for (idx, item) in items.iter().enumerate() {
                    if idx > 0 {
                        f.write_str(sep)?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str(")")
            }
            ValueExpr::Not(inner) => write!(f, "not {inner}"),
            ValueExpr::IsNull(inner) => write!(f, "({inner} is null)"),
            ValueExpr::Like(inner, patterns) => {
                write!(f, "({inner} like")?;
                for pattern in patterns {
                    write!(f, " {pattern}")?;
                }
                f.write_str(")")
            }
            ValueExpr::Rlike(inner, regex) => write!(f, "({inner} rlike /{regex}/)"),
            ValueExpr::In(inner, items) => {
                write!(f, "({inner} in (")?;
                write_list(f, items)?;
                f.write_str("))")
            }
            ValueExpr::Arith(op, left, right) => write!(f, "({left} {op:?} {right})"),
            ValueExpr::Neg(inner) => write!(f, "-{inner}"),
            ValueExpr::Dissect {
                source,
                pattern,
                key,
            } => write!(f, "dissect({source}, {:?})#{key}", pattern.text),
            ValueExpr::Grok {
                source,
                regex,
                group,
            } => write!(f, "grok({source}, /{regex}/).{group}"),
            ValueExpr::CidrMatch(inner, nets) => {
                write!(f, "cidr_match({inner}")?;
                for net in nets {
                    write!(f, ", {net:?}")?;
                }
                f.write_str(")")
            }
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[ValueExpr]) -> fmt::Result {
    for (idx, item) in items.iter().enumerate() {
        if idx > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}
