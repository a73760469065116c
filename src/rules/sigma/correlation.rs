//! Sigma correlation documents (`correlation:`) lowered into [`crate::ir::Correlation`].

use crate::diag::Diagnostic;
use crate::ir::Correlation;
use crate::rules::yaml::Node;

/// Lowers one correlation document. `path` is used in diagnostics.
pub fn lower(path: &str, doc: &Node) -> Result<Correlation, Diagnostic> {
    let _ = (path, doc);
    unimplemented!()
}
