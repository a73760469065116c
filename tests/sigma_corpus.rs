//! Every Sigma rule of the shared corpus loads without an error diagnostic.
//!
//! The corpus lives outside the repository; `VIGIL_CORPUS` names it (CI sets it to
//! `../shared/corpus`, relative to the repository root, which is cargo's working directory
//! for tests). Without it these tests say so on stderr and pass.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use vigil::diag::Code;
use vigil::rules::{LoadOptions, Loaded, Loader};

/// The Sigma folders checked here.
// TODO(lead): add "correlation" once `sigma::correlation::lower` is merged; until then its
// documents would reach the unimplemented correlation loader.
const FOLDERS: &[&str] = &[
    "rules",
    "rules-placeholder",
    "rules-threat-hunting",
    "rules-emerging-threats",
];

fn corpus() -> Option<PathBuf> {
    match std::env::var_os("VIGIL_CORPUS") {
        Some(dir) => Some(PathBuf::from(dir).join("sigma")),
        None => {
            eprintln!("skipped: VIGIL_CORPUS is not set");
            None
        }
    }
}

fn rule_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            rule_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        ) {
            out.push(path);
        }
    }
}

fn load(path: &Path, text: &str, options: LoadOptions) -> Loaded {
    let mut loader = Loader::new(options);
    loader.add_source(&path.display().to_string(), text);
    loader.finish()
}

/// The `%name%` placeholders a rule text uses.
fn placeholder_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if len > 0 && after[len..].starts_with('%') {
            names.insert(after[..len].to_string());
            rest = &after[len + 1..];
        } else {
            rest = after;
        }
    }
    names
}

#[test]
fn every_corpus_rule_loads() {
    let Some(root) = corpus() else {
        return;
    };
    let mut n_files = 0;
    let mut n_rules = 0;
    let mut n_placeholder_rules = 0;
    let mut failures = Vec::new();
    for folder in FOLDERS {
        let mut files = Vec::new();
        rule_files(&root.join(folder), &mut files);
        for path in files {
            let Ok(text) = std::fs::read_to_string(&path) else {
                failures.push(format!("{}: cannot read", path.display()));
                continue;
            };
            n_files += 1;
            let uses_expand = text.contains("|expand");
            let mut options = LoadOptions::default();
            if uses_expand {
                // Without values the rule must be refused, as the spec requires.
                let loaded = load(&path, &text, options.clone());
                let refused = !loaded.diagnostics.is_empty()
                    && loaded
                        .diagnostics
                        .iter()
                        .all(|d| d.code == Code::Placeholder);
                if !refused || !loaded.set.rules.is_empty() {
                    failures.push(format!(
                        "{}: not rejected with code placeholder: {:?}",
                        path.display(),
                        loaded.diagnostics
                    ));
                }
                options.placeholders = placeholder_names(&text)
                    .into_iter()
                    .map(|name| (name.clone(), vec![format!("{name}-value"), "other".into()]))
                    .collect::<HashMap<_, _>>();
                n_placeholder_rules += 1;
            }
            let loaded = load(&path, &text, options);
            for diag in loaded.diagnostics.iter().filter(|d| d.is_error()) {
                failures.push(diag.to_string());
            }
            if loaded.set.rules.is_empty() {
                failures.push(format!("{}: no rule loaded", path.display()));
            }
            n_rules += loaded.set.rules.len();
        }
    }
    eprintln!(
        "sigma corpus: {n_files} files, {n_rules} rules, {n_placeholder_rules} with placeholders"
    );
    assert!(n_files > 0, "no rule files under {}", root.display());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn placeholder_names_are_found() {
    let names = placeholder_names("a|expand: '%One_1%'\nb: '100%'\nc|expand: '%Two%'");
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["One_1".to_string(), "Two".to_string()]
    );
}
