//! `vigil rules`: list the loaded rules and correlations, one per line, tab-separated:
//! `id  format  severity  type  title  attack`, where `type` is `rule` or the correlation type
//! and `attack` is the ATT&CK tactics then techniques, comma-separated (`-` when none).
//! With `--ir`, each rule is followed by its logic in the IR notation, indented by 4 spaces
//! (a native predicate, e.g. Panther Python, is shown as `<python rule() in FILE>`).
//!
//! Load diagnostics go to stderr as plain text; they are not fatal here.

use std::io::Write;

use super::{EXIT_FATAL, EXIT_OK, RulesArgs};
use crate::correlate::Limits;
use crate::eval::{Engine, EngineConfig};
use crate::ir::{Attack, Meta};

pub(super) fn rules(args: RulesArgs) -> u8 {
    let loaded = match super::load_rules(&args.source.rules, args.source.placeholders.as_deref()) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("vigil: error: {err:#}");
            return EXIT_FATAL;
        }
    };
    let (engine, link_diagnostics) = Engine::new(loaded.set, EngineConfig::new(Limits::default()));
    for diagnostic in loaded.diagnostics.iter().chain(&link_diagnostics) {
        eprintln!("{diagnostic}");
    }
    let mut text = String::new();
    for rule in engine.rules() {
        text.push_str(&line(&rule.meta, "rule"));
        if args.ir {
            // A native predicate runs after the expression holds: both must.
            match &rule.extra.native {
                Some(native) => {
                    text.push_str(&format!("    {} and <{}>\n", rule.expr, native.description));
                    let lowered = native
                        .body
                        .as_any()
                        .downcast_ref::<crate::panther_rt::PantherScript>()
                        .and_then(|script| script.lowered_rule());
                    if let Some(lowered) = lowered {
                        text.push_str(&format!("    lowered: {lowered}\n"));
                    }
                }
                None => text.push_str(&format!("    {}\n", rule.expr)),
            }
        }
    }
    for corr in engine.correlations() {
        text.push_str(&line(&corr.meta, corr.kind.as_str()));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    EXIT_OK
}

fn line(meta: &Meta, kind: &str) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\n",
        meta.id,
        meta.format.as_str(),
        meta.severity.as_str(),
        kind,
        one_line(&meta.title),
        attack(&meta.attack),
    )
}

fn attack(attack: &Attack) -> String {
    let ids: Vec<&str> = attack
        .tactics
        .iter()
        .chain(&attack.techniques)
        .map(String::as_str)
        .collect();
    if ids.is_empty() {
        "-".to_string()
    } else {
        ids.join(",")
    }
}

/// Keeps a title on its line and in its column.
fn one_line(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}
