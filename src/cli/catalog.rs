//! `vigil catalog [--rules PATH]... --out DIR [--format html|json]`: writes the rule catalog
//! (`crate::catalog`) of every loaded rule as a static HTML site into DIR (`index.html`,
//! `overlaps.html`, `attack.html`, `rules/*.html`, `style.css`), or as one JSON document
//! (`DIR/catalog.json`).
//!
//! Exit 0 when written; 2 on a fatal error (unreadable rules path, unwritable DIR).

use std::path::Path;

use anyhow::Context;

use super::{CatalogArgs, CatalogFormat, EXIT_FATAL, EXIT_OK, RuleSourceArgs};
use crate::catalog::Catalog;

pub(super) fn catalog(args: CatalogArgs) -> u8 {
    match write(&args) {
        Ok(summary) => {
            println!("{summary}");
            EXIT_OK
        }
        Err(err) => {
            eprintln!("vigil: error: {err:#}");
            EXIT_FATAL
        }
    }
}

/// Loads the rules and builds their catalog (shared with `vigil explain`).
pub(super) fn load(source: &RuleSourceArgs) -> anyhow::Result<Catalog> {
    let loaded = super::load_rules(&source.rules, source.placeholders.as_deref())?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    Ok(crate::catalog::build(
        &loaded.set.rules,
        &loaded.set.correlations,
        &loaded.correlation_tests,
        now_ms,
    ))
}

fn write(args: &CatalogArgs) -> anyhow::Result<String> {
    let catalog = load(&args.source)?;
    let out = &args.out;
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    let files = match args.format {
        CatalogFormat::Html => crate::catalog::html::site(&catalog),
        CatalogFormat::Json => {
            let mut text = crate::catalog::json::catalog(&catalog).to_string();
            text.push('\n');
            vec![("catalog.json".to_string(), text)]
        }
    };
    for (name, content) in &files {
        write_file(&out.join(name), content)?;
    }
    Ok(format!(
        "{} rules and correlations, {} files written to {}",
        catalog.entries.len(),
        files.len(),
        out.display()
    ))
}

fn write_file(path: &Path, content: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    std::fs::write(path, content).with_context(|| format!("cannot write {}", path.display()))
}
