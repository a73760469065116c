//! Sigma front end: detection rules, filters and correlation rules lowered into the IR.

pub mod correlation;

use super::{LoadOptions, Loaded};

/// A Sigma filter document, lowered: applied to its target rules by [`apply_filters`].
#[derive(Clone, Debug)]
pub struct Filter {}

/// Loads every document of one Sigma YAML source into `out`.
pub fn load(path: &str, text: &str, options: &LoadOptions, out: &mut Loaded) {
    let _ = (path, text, options, out);
    unimplemented!()
}

/// ANDs each filter into the rules it targets (pySigma semantics).
pub fn apply_filters(filters: &[Filter], loaded: &mut Loaded) {
    let _ = (filters, loaded);
}
