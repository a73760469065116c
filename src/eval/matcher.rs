//! Evaluates an IR expression against one event.

use super::event::Event;
use crate::ir::Expr;

/// True when `expr` holds for `event`.
pub fn matches(expr: &Expr, event: &Event<'_>) -> bool {
    let _ = (expr, event);
    unimplemented!("matcher: owned by the sigma/matcher work")
}
