//! Writes the Elastic rule report: every rule and hunting query of the corpus, whether it
//! loaded (or why not), and how many corpus CloudTrail events it fires on.
//!
//! Usage: `cargo run --release --example elastic_report -- <corpus dir> > docs/elastic-report.md`
//! (`scripts/elastic-report` does exactly this with `$VIGIL_CORPUS`).
//!
//! Events are raw CloudTrail, evaluated as vigil sees them in a stream: the rules' ECS names
//! are derived field by field by the event view (`crate::ecs::derive`). Panther test records
//! are unwrapped from their `log` field. Every file is one stream, in file order, with its own
//! engine (correlation state does not leak between files); the arrival clock is 2030-01-01.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use vigil::correlate::Limits;
use vigil::diag::Diagnostic;
use vigil::eval::{Detections, Engine, EngineConfig};
use vigil::rules::{LoadOptions, Loader};

const ARRIVAL_MS: i64 = 1_893_456_000_000;

fn main() {
    let Some(corpus) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: elastic_report <corpus dir>");
        std::process::exit(2);
    };
    let mut files = Vec::new();
    for dir in [
        "elastic/rules/integrations/aws",
        "elastic/rules_building_block",
        "elastic/rules/cross-platform",
        "elastic/hunting/aws/queries",
    ] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(corpus.join(dir))
            .map(|it| it.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        found.retain(|path| path.extension().is_some_and(|ext| ext == "toml"));
        found.sort();
        files.extend(found);
    }

    // Load every file on its own, to attribute diagnostics and rules to files.
    let mut rows = Vec::new();
    let mut loader = Loader::new(LoadOptions::default());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let mut single = Loader::new(LoadOptions::default());
        let display = relative(&corpus, file);
        single.add_source(&display, &text);
        let loaded = single.finish();
        let kind = rule_kind(&text);
        let errors: Vec<&Diagnostic> = loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
        let ids: Vec<String> = loaded
            .set
            .correlations
            .iter()
            .map(|c| c.meta.id.clone())
            .chain(
                loaded
                    .set
                    .rules
                    .iter()
                    .filter(|r| {
                        !loaded
                            .set
                            .correlations
                            .iter()
                            .any(|c| c.rules.contains(&r.meta.id))
                    })
                    .map(|r| r.meta.id.clone()),
            )
            .collect();
        rows.push(Row {
            file: display.clone(),
            kind,
            status: match errors.first() {
                Some(diag) => format!(
                    "{}: {}",
                    diag.code.as_str(),
                    diag.message.replace('|', "\\|")
                ),
                None => "loaded".to_string(),
            },
            ids,
            hits: 0,
        });
        loader.add_source(&display, &text);
    }
    let loaded = loader.finish();

    // Run every event file through one engine per file.
    let mut hits: BTreeMap<String, u64> = BTreeMap::new();
    let mut n_events = 0;
    let mut event_files: Vec<PathBuf> = std::fs::read_dir(corpus.join("events"))
        .map(|it| it.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    event_files.retain(|path| path.extension().is_some_and(|ext| ext == "ndjson"));
    event_files.sort();
    for path in &event_files {
        let (mut engine, _) = Engine::new(loaded.set.clone(), EngineConfig::new(Limits::default()));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut out = Detections::default();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let Ok(mut value) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(log) = value.get("log").filter(|log| log.is_object()) {
                value = log.clone();
            }
            n_events += 1;
            // The raw record: the event view derives the ECS fields the rules read.
            engine.evaluate(&vigil::event::Event::new(&value), ARRIVAL_MS, &mut out);
            for &idx in &out.matches {
                *hits.entry(engine.rules()[idx].meta.id.clone()).or_default() += 1;
            }
            for hit in &out.correlations {
                *hits
                    .entry(engine.correlations()[hit.correlation].meta.id.clone())
                    .or_default() += 1;
            }
        }
    }
    for row in &mut rows {
        row.hits = row
            .ids
            .iter()
            .map(|id| hits.get(id).copied().unwrap_or(0))
            .sum();
    }

    print!("{}", render(&rows, n_events, event_files.len()));
}

struct Row {
    file: String,
    kind: String,
    status: String,
    ids: Vec<String>,
    hits: u64,
}

fn relative(corpus: &Path, file: &Path) -> String {
    file.strip_prefix(corpus.join("elastic"))
        .unwrap_or(file)
        .display()
        .to_string()
}

/// `type/language` of a rule, or `hunt` for a hunting query.
fn rule_kind(text: &str) -> String {
    let Ok(table) = text.parse::<toml::Table>() else {
        return "?".into();
    };
    if table.contains_key("hunt") {
        return "hunt esql".into();
    }
    let rule = table.get("rule").and_then(|r| r.as_table());
    let get = |key: &str| {
        rule.and_then(|r| r.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or("-")
            .to_string()
    };
    let bb = if rule.is_some_and(|r| r.contains_key("building_block_type")) {
        " (building block)"
    } else {
        ""
    };
    format!("{} {}{bb}", get("type"), get("language"))
}

fn render(rows: &[Row], n_events: usize, n_files: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Elastic rules in vigil: load status and corpus hits\n"
    );
    let _ = writeln!(
        out,
        "Generated by `scripts/elastic-report` (`cargo run --release --example elastic_report -- \
         $VIGIL_CORPUS`). Do not edit by hand.\n"
    );
    let _ = writeln!(
        out,
        "Hits: matches (or correlation firings, for stateful rules) over {n_events} CloudTrail \
         records in {n_files} files of `events/`, each file a separate stream, raw records \
         read through the ECS view (`vigil::ecs::derive`).\n"
    );
    let mut summary: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for row in rows {
        let group = if row.file.starts_with("hunting") {
            "hunting queries".to_string()
        } else if row.file.starts_with("rules/integrations/aws") {
            format!("aws rules: {}", row.kind)
        } else {
            format!("other rules: {}", row.kind)
        };
        let entry = summary.entry(group).or_default();
        entry.1 += 1;
        if row.status == "loaded" {
            entry.0 += 1;
        }
    }
    let aws: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            r.file.starts_with("rules/integrations/aws") && !r.kind.starts_with("machine_learning")
        })
        .collect();
    let aws_loaded = aws.iter().filter(|r| r.status == "loaded").count();
    let hunts: Vec<&Row> = rows
        .iter()
        .filter(|r| r.file.starts_with("hunting"))
        .collect();
    let hunts_loaded = hunts.iter().filter(|r| r.status == "loaded").count();
    let _ = writeln!(
        out,
        "**Non-ML AWS rules loaded: {aws_loaded} of {}. Hunting queries loaded: {hunts_loaded} of {}.**\n",
        aws.len(),
        hunts.len()
    );
    let _ = writeln!(out, "| group | loaded | total |\n|---|---|---|");
    for (group, (loaded, total)) in &summary {
        let _ = writeln!(out, "| {group} | {loaded} | {total} |");
    }
    let _ = writeln!(out, "\n| file | type | status | hits |\n|---|---|---|---|");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.file, row.kind, row.status, row.hits
        );
    }
    out
}
