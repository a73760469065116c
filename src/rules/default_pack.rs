//! The embedded default rule pack: Sigma rules written for vigil, in `rules/default/`.

/// (file name, contents) of every file of the pack.
pub const FILES: &[(&str, &str)] = &[];
