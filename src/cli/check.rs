//! `vigil check PATH...`: load rules and link them exactly as `run` would, print every
//! diagnostic (plain text, one per line) and a summary to stdout.
//!
//! Exit 1 when any diagnostic is an error, else 0; an unreadable PATH or placeholders file
//! is fatal (exit 2), as for `run`.

use std::io::Write;

use super::{CheckArgs, EXIT_CHECK_FAILED, EXIT_FATAL, EXIT_OK};
use crate::correlate::Limits;
use crate::eval::{Engine, EngineConfig};

pub(super) fn check(args: CheckArgs) -> u8 {
    let loaded = match super::load_rules(&args.paths, args.placeholders.as_deref()) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("vigil: error: {err:#}");
            return EXIT_FATAL;
        }
    };
    let files = loaded.files;
    // Linking reports correlations whose references do not resolve.
    let (engine, link_diagnostics) = Engine::new(loaded.set, EngineConfig::new(Limits::default()));
    let mut stdout = std::io::stdout().lock();
    let mut n_errors = 0;
    let mut n_warnings = 0;
    let mut text = String::new();
    for diagnostic in loaded.diagnostics.iter().chain(&link_diagnostics) {
        if diagnostic.is_error() {
            n_errors += 1;
        } else {
            n_warnings += 1;
        }
        text.push_str(&diagnostic.to_string());
        text.push('\n');
    }
    text.push_str(&format!(
        "{files} files, {} rules, {} correlations, {n_errors} errors, {n_warnings} warnings\n",
        engine.rules().len(),
        engine.correlations().len(),
    ));
    // A closed stdout is not worth an error here either.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    if n_errors > 0 {
        EXIT_CHECK_FAILED
    } else {
        EXIT_OK
    }
}
