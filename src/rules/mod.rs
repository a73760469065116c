//! Rule loading: find rule files, detect their format, and lower them into the IR.
//!
//! Loading never fails as a whole. Every loader returns the rules it could lower plus
//! [`Diagnostic`]s for the ones it could not (file, line, rule id, reason); one bad rule is
//! skipped, never guessed at. Format-specific types stay inside this module tree.

pub mod default_pack;
pub mod elastic;
pub mod panther;
pub mod rule_tests;
pub mod sigma;
pub mod yaml;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::diag::{Code, Diagnostic};
use crate::ir::{Meta, RuleSet, SourceLoc};

/// The largest rule file (or Python module) a loader reads. The largest rule of the corpus is
/// under 40 KB; the bound keeps a hostile file from costing more than a few times its size in
/// parse trees before any other limit applies.
pub const MAX_RULE_FILE_BYTES: usize = 1 << 20;

/// Options shared by the loaders.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Values for Sigma `|expand` placeholders (`--placeholders FILE`): name → values.
    pub placeholders: HashMap<String, Vec<String>>,
}

/// The result of loading: rules plus everything the loaders had to say.
#[derive(Debug, Default)]
pub struct Loaded {
    pub set: RuleSet,
    pub diagnostics: Vec<Diagnostic>,
    /// Rule files read (for `vigil check`'s summary).
    pub files: usize,
    /// Sigma filters collected while loading; applied by [`Loader::finish`].
    pub(crate) sigma_filters: Vec<sigma::Filter>,
    /// Rules that could not be loaded but carry tests: `vigil test` reports each of those
    /// tests as failed with the reason.
    pub failed_tests: Vec<FailedRule>,
    /// Correlations that carry tests, disabled ones included (their tests still run).
    pub correlation_tests: Vec<CorrelationTests>,
}

/// A correlation with its tests.
#[derive(Clone, Debug)]
pub struct CorrelationTests {
    pub correlation: crate::ir::Correlation,
    pub tests: Vec<crate::ir::CorrelationTest>,
}

/// A rule the loader could not take, with the tests it carries.
#[derive(Clone, Debug)]
pub struct FailedRule {
    pub rule_id: String,
    /// The diagnostic, rendered (`path:line: error[code] rule id: reason`).
    pub reason: String,
    /// `error[unsupported]` rather than a broken spec.
    pub unsupported: bool,
    pub tests: Vec<crate::ir::RuleTest>,
}

impl Loaded {
    pub fn n_errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

/// Accumulates rules from several sources, then links what spans files (filters, duplicates).
pub struct Loader {
    options: LoadOptions,
    loaded: Loaded,
    /// Where files a source refers to (a Panther spec's `Filename:` module) are read from
    /// when the source's own path does not say (see [`Loader::set_source_dir`]).
    source_dir: Option<PathBuf>,
}

impl Loader {
    pub fn new(options: LoadOptions) -> Loader {
        Loader {
            options,
            loaded: Loaded::default(),
            source_dir: None,
        }
    }

    /// Loads one in-memory source; `path` is only used in diagnostics and to pick the format.
    pub fn add_source(&mut self, path: &str, text: &str) {
        self.loaded.files += 1;
        if text.len() > MAX_RULE_FILE_BYTES {
            self.loaded.diagnostics.push(Diagnostic::error(
                Code::Unsupported,
                SourceLoc {
                    path: path.to_string(),
                    line: None,
                },
                format!("rule file larger than {MAX_RULE_FILE_BYTES} bytes"),
            ));
            return;
        }
        match extension(path) {
            // A Panther spec has a top-level `AnalysisType:`; any other YAML is Sigma.
            Some("yml" | "yaml") if panther::is_panther(text) => {
                panther::load(path, text, self.source_dir.as_deref(), &mut self.loaded)
            }
            Some("yml" | "yaml") => sigma::load(path, text, &self.options, &mut self.loaded),
            Some("toml") => elastic::load(path, text, &mut self.loaded),
            _ => self.loaded.diagnostics.push(Diagnostic::error(
                Code::Unsupported,
                SourceLoc {
                    path: path.to_string(),
                    line: None,
                },
                "unknown rule file type (expected .yml, .yaml or .toml)",
            )),
        }
    }

    /// Makes [`Loader::add_source`] read the files a source refers to (a Panther module) from
    /// `dir`, for sources whose path is only a display name.
    pub fn set_source_dir(&mut self, dir: &Path) {
        self.source_dir = Some(dir.to_path_buf());
    }

    /// Loads a file, or every rule file under a directory (recursively, in name order).
    pub fn add_path(&mut self, path: &Path) {
        let mut files = Vec::new();
        if path.is_dir() {
            collect_rule_files(path, &mut files, &mut self.loaded.diagnostics);
        } else {
            files.push(path.to_path_buf());
        }
        for file in files {
            let display = file.display().to_string();
            match std::fs::read(&file) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => self.add_source(&display, &text),
                    Err(_) => self.loaded.diagnostics.push(Diagnostic::error(
                        Code::Io,
                        SourceLoc {
                            path: display,
                            line: None,
                        },
                        "rule file is not valid UTF-8",
                    )),
                },
                Err(err) => self.loaded.diagnostics.push(Diagnostic::error(
                    Code::Io,
                    SourceLoc {
                        path: display,
                        line: None,
                    },
                    format!("cannot read rule file: {err}"),
                )),
            }
        }
    }

    /// Applies filters and drops duplicate ids (the first one loaded wins).
    pub fn finish(mut self) -> Loaded {
        let filters = std::mem::take(&mut self.loaded.sigma_filters);
        sigma::apply_filters(&filters, &mut self.loaded);
        // Rules and correlations share one id space: correlations reference both.
        let mut seen = HashSet::new();
        let loaded = &mut self.loaded;
        drop_duplicate_ids(
            &mut loaded.set.rules,
            |rule| &rule.meta,
            &mut seen,
            &mut loaded.diagnostics,
        );
        drop_duplicate_ids(
            &mut loaded.set.correlations,
            |corr| &corr.meta,
            &mut seen,
            &mut loaded.diagnostics,
        );
        self.loaded
    }
}

/// Keeps the first item of each id and reports the others.
fn drop_duplicate_ids<T>(
    items: &mut Vec<T>,
    meta: impl Fn(&T) -> &Meta,
    seen: &mut HashSet<String>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    items.retain(|item| {
        let meta = meta(item);
        let fresh = seen.insert(meta.id.clone());
        if !fresh {
            diagnostics.push(
                Diagnostic::error(
                    Code::DuplicateId,
                    meta.source.clone(),
                    "another rule with this id was loaded first; this one is skipped",
                )
                .with_rule(meta.id.clone()),
            );
        }
        fresh
    });
}

/// Loads the embedded default pack.
pub fn load_default_pack(options: LoadOptions) -> Loaded {
    let mut loader = Loader::new(options);
    for (name, text) in default_pack::FILES {
        loader.add_source(&format!("<default>/{name}"), text);
    }
    loader.finish()
}

fn extension(path: &str) -> Option<&str> {
    Path::new(path).extension().and_then(|ext| ext.to_str())
}

fn collect_rule_files(dir: &Path, out: &mut Vec<PathBuf>, diags: &mut Vec<Diagnostic>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            diags.push(Diagnostic::error(
                Code::Io,
                SourceLoc {
                    path: dir.display().to_string(),
                    line: None,
                },
                format!("cannot read directory: {err}"),
            ));
            return;
        }
    };
    // Hidden entries (names starting with a dot) are skipped: a Kubernetes ConfigMap mount
    // holds each file again under `..data` and a hidden timestamped directory (every rule
    // would be loaded three times, as duplicate ids), editors leave lock files such as
    // `.#rule.yml`, and `.github/` holds YAML that is not rules. A hidden file named
    // explicitly as a `--rules` path is still loaded.
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().as_encoded_bytes().starts_with(b"."))
        .map(|e| e.path())
        .collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect_rule_files(&path, out, diags);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml" | "toml")
        ) {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str =
        "title: t\nid: same\nlogsource: {product: aws}\ndetection: {s: {a: 1}, condition: s}\n";

    #[test]
    fn the_first_of_two_ids_wins_across_files_and_kinds() {
        let mut loader = Loader::new(LoadOptions::default());
        loader.add_source("a.yml", RULE);
        loader.add_source("b.yml", &RULE.replace("title: t", "title: second"));
        loader.add_source(
            "c.yml",
            "title: c\nid: same\ncorrelation: {type: event_count, rules: [same], timespan: 1h, condition: {gte: 2}}\n",
        );
        let loaded = loader.finish();
        assert_eq!(loaded.set.rules.len(), 1);
        assert_eq!(loaded.set.rules[0].meta.title, "t");
        assert!(loaded.set.correlations.is_empty());
        let rendered: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(rendered.len(), 2, "{rendered:?}");
        assert!(rendered[0].starts_with("b.yml:1: error[duplicate-id] rule same:"));
        assert!(rendered[1].starts_with("c.yml:1: error[duplicate-id] rule same:"));
    }

    /// A Kubernetes ConfigMap mounted as a directory holds every file three times: in a
    /// hidden timestamped directory, through the hidden `..data` link to it, and as a visible
    /// link through `..data`. Hidden entries are skipped, so each rule loads once; otherwise
    /// every rule is a duplicate-id error, and a reload after the ConfigMap gains a rule is
    /// refused for its "new" errors.
    #[test]
    fn hidden_entries_of_a_directory_are_skipped() {
        let dir = std::env::temp_dir().join(format!("vigil-hidden-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let stamped = dir.join("..2026_01_01_00_00_00.1");
        std::fs::create_dir_all(&stamped).unwrap();
        std::fs::write(stamped.join("rule.yml"), RULE).unwrap();
        std::os::unix::fs::symlink("..2026_01_01_00_00_00.1", dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/rule.yml", dir.join("rule.yml")).unwrap();
        // An editor's lock file (Emacs: a dangling link) and a dot-directory of CI files.
        std::os::unix::fs::symlink("user@host.1234", dir.join(".#rule.yml")).unwrap();
        std::fs::create_dir_all(dir.join(".github")).unwrap();
        std::fs::write(dir.join(".github/ci.yml"), "on: push\n").unwrap();
        let mut loader = Loader::new(LoadOptions::default());
        loader.add_path(&dir);
        let loaded = loader.finish();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(loaded.set.rules.len(), 1);
        assert!(loaded.set.rules[0].meta.source.path.ends_with("/rule.yml"));
        assert!(!loaded.set.rules[0].meta.source.path.contains("/."));
    }

    #[test]
    fn panther_and_sigma_load_side_by_side() {
        let mut loader = Loader::new(LoadOptions::default());
        loader.add_source("sigma.yml", RULE);
        loader.add_source(
            "panther.yml",
            "AnalysisType: rule\nRuleID: P.One\nSeverity: Info\nLogTypes: [AWS.CloudTrail]\nDetection:\n  - Key: eventName\n    Condition: Exists\n",
        );
        let loaded = loader.finish();
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let formats: Vec<crate::ir::Format> = loaded
            .set
            .rules
            .iter()
            .map(|rule| rule.meta.format)
            .collect();
        assert_eq!(
            formats,
            [crate::ir::Format::Sigma, crate::ir::Format::Panther]
        );
    }

    #[test]
    fn unknown_file_types_are_reported() {
        let mut loader = Loader::new(LoadOptions::default());
        loader.add_source("rules.txt", "hello");
        let loaded = loader.finish();
        assert_eq!(loaded.n_errors(), 1);
        assert_eq!(loaded.diagnostics[0].code, Code::Unsupported);
    }
}
