//! `vigil explain RULE_ID [--rules PATH]... [--format text|md|json]`: one loaded rule's page of
//! the rule catalog (`crate::catalog`): header, ATT&CK coverage, detection logic in the
//! normalized notation, exclusions, indicators, rules detecting the same action, output
//! fields, tests and their results, and a correlation's base rules, group-by, window and
//! condition.
//!
//! Exit 0 with the page on stdout; 2 when the rule is not loaded (or on a fatal error). Load
//! diagnostics are not shown: `vigil check` is for them.

use std::io::Write;

use super::{EXIT_FATAL, EXIT_OK, ExplainArgs, ExplainFormat};

pub(super) fn explain(args: ExplainArgs) -> u8 {
    let catalog = match super::catalog::load(&args.source) {
        Ok(catalog) => catalog,
        Err(err) => {
            eprintln!("vigil: error: {err:#}");
            return EXIT_FATAL;
        }
    };
    let Some(entry) = catalog.entry(&args.rule_id) else {
        eprintln!(
            "vigil: error: no loaded rule or correlation has the id {:?} (`vigil rules` lists them)",
            args.rule_id
        );
        return EXIT_FATAL;
    };
    let text = match args.format {
        ExplainFormat::Text => crate::catalog::text::text(entry),
        ExplainFormat::Md => crate::catalog::text::markdown(entry),
        ExplainFormat::Json => {
            let mut text = crate::catalog::json::entry(entry).to_string();
            text.push('\n');
            text
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    EXIT_OK
}
