//! Writes deterministic variants of Sigma rules, to benchmark vigil with a rule set several
//! times larger than any real one we have (`scripts/bench`, mode `x10`).
//!
//! ```sh
//! cargo run --release --example gen_rule_variants -- --copies 9 --out /tmp/variants RULES_DIR...
//! ```
//!
//! Every `.yml`/`.yaml` file under the given paths is read; for each `k` in `1..=copies` a copy
//! of it is written to `OUT/v{k}/{input index}/{path relative to that input}`, so the originals
//! plus 9 copies make the set ten times larger. In copy `k` of a rule document:
//!
//! - `id` becomes a new UUID derived from the seed, `k` and the old id; `title` gets
//!   ` (variant k)`; `name` gets `_variant_k`. References to ids or names of the set in
//!   `correlation.rules` and `filter.rules` are rewritten to the copies, so a copied correlation
//!   counts the copied rules;
//! - every literal string value under `detection` (and a filter's selections) is perturbed:
//!   one ASCII letter or digit, at a position drawn from the seed, is replaced by another of the
//!   same class and case (so it differs even case-insensitively). Wildcards `*` `?`, the
//!   character after a `\` escape, and in `|re` values anything inside `[...]`, `{...}` or a
//!   `(?...)` group head are never chosen, so a pattern keeps its meaning and its length;
//! - left as they are, so that a copy costs what the original costs to evaluate:
//!   the values of `eventSource` and `eventName` (the fields a rule index keys on, so a copy is a
//!   candidate for the same events as its original), numbers, booleans and nulls, and the values
//!   of `expand` (placeholder names), `cidr`, `fieldref` (field names), `exists`, the numeric
//!   comparisons and the date-part modifiers; conditions, field names and modifiers are unchanged.
//!
//! A copy therefore has the same structure, the same number and length of comparisons, and the
//! same candidate events as its original, but does not fire on the same events, except a rule
//! whose only strings are `eventSource`/`eventName` values: its copies fire exactly where it does
//! (the summary counts them). Comments and key quoting are not kept (the files are re-emitted by
//! saphyr). The output is generated into a scratch directory, never committed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use saphyr::{LoadableYamlNode, Scalar, Yaml, YamlEmitter};

#[derive(Parser)]
#[command(about = "Write deterministic, perturbed copies of Sigma rules")]
struct Args {
    /// Copies of each rule to write (9 makes the set ten times larger with its originals).
    #[arg(long, default_value_t = 9)]
    copies: u32,
    /// Seed of the new ids and of the perturbed positions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Re-emit with new ids and titles only, no perturbed value: each copy then fires exactly
    /// where its original does, which checks that re-emitting a rule keeps its meaning.
    #[arg(long)]
    keep_values: bool,
    /// Directory to write into (created; existing files with the same names are overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Rule files or directories (searched recursively for .yml/.yaml).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// The fields whose values decide which events a rule is a candidate for; see the module doc.
const KEPT_FIELDS: &[&str] = &["eventName"];

/// Modifiers whose values are not free text (or whose text must not change meaning).
const KEPT_MODIFIERS: &[&str] = &[
    "expand", "cidr", "fieldref", "exists", "lt", "lte", "gt", "gte", "minute", "hour", "day",
    "week", "month", "year",
];

#[derive(Default)]
struct Summary {
    files: usize,
    rule_documents: usize,
    perturbed_values: usize,
    /// Rule documents with a detection but no string value that could be perturbed.
    unchanged_logic: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut files = Vec::new();
    for (input_idx, path) in args.paths.iter().enumerate() {
        collect_yaml(path, path, input_idx, &mut files)?;
    }
    files.sort();
    let mut summary = Summary::default();
    let mut sources = Vec::new();
    for (input_idx, relative, path) in &files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        sources.push((*input_idx, relative.clone(), path.clone(), text));
    }
    for copy in 1..=args.copies {
        // Ids and names are mapped across the whole set first, so a correlation in one file can
        // refer to a rule in another, as Sigma allows.
        let mut renames: HashMap<String, String> = HashMap::new();
        let mut parsed = Vec::new();
        for (input_idx, relative, path, text) in &sources {
            let docs = Yaml::load_from_str(text)
                .with_context(|| format!("{}: not YAML", path.display()))?;
            for doc in &docs {
                for (key, suffix) in [("id", None), ("name", Some(format!("_variant_{copy}")))] {
                    if let Some(old) = doc.as_mapping_get(key).and_then(Yaml::as_str) {
                        let new = match &suffix {
                            Some(suffix) => format!("{old}{suffix}"),
                            None => variant_uuid(args.seed, copy, old),
                        };
                        renames.insert(old.to_owned(), new);
                    }
                }
            }
            parsed.push((*input_idx, relative, path, docs));
        }
        for (input_idx, relative, path, mut docs) in parsed {
            let mut emitted = String::new();
            for doc in &mut docs {
                let salt = format!("{}:{copy}:{}", args.seed, relative.display());
                vary_document(doc, copy, &renames, &salt, args.keep_values, &mut summary);
                let mut emitter = YamlEmitter::new(&mut emitted);
                emitter
                    .dump(doc)
                    .with_context(|| format!("{}: cannot re-emit", path.display()))?;
                emitted.push('\n');
            }
            let target = args
                .out
                .join(format!("v{copy}"))
                .join(input_idx.to_string())
                .join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(&target, emitted)
                .with_context(|| format!("writing {}", target.display()))?;
            summary.files += 1;
        }
    }
    summary.unchanged_logic.sort();
    summary.unchanged_logic.dedup();
    eprintln!(
        "gen_rule_variants: {} copies x {} files: {} files, {} rule documents, {} string values perturbed",
        args.copies,
        sources.len(),
        summary.files,
        summary.rule_documents,
        summary.perturbed_values,
    );
    if !summary.unchanged_logic.is_empty() {
        eprintln!(
            "gen_rule_variants: {} rules have no string value to perturb, so their copies fire where they do: {}",
            summary.unchanged_logic.len(),
            summary.unchanged_logic.join(", ")
        );
    }
    Ok(())
}

fn collect_yaml(
    root: &Path,
    path: &Path,
    input_idx: usize,
    files: &mut Vec<(usize, PathBuf, PathBuf)>,
) -> anyhow::Result<()> {
    if path.is_dir() {
        let entries =
            std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", path.display()))?;
            collect_yaml(root, &entry.path(), input_idx, files)?;
        }
    } else if path
        .extension()
        .is_some_and(|ext| ext == "yml" || ext == "yaml")
    {
        let relative = match path.strip_prefix(root) {
            Ok(relative) if !relative.as_os_str().is_empty() => relative.to_path_buf(),
            _ => PathBuf::from(path.file_name().unwrap_or(path.as_os_str())),
        };
        files.push((input_idx, relative, path.to_path_buf()));
    }
    Ok(())
}

fn vary_document(
    doc: &mut Yaml,
    copy: u32,
    renames: &HashMap<String, String>,
    salt: &str,
    keep_values: bool,
    summary: &mut Summary,
) {
    let Some(mapping) = doc.as_mapping_mut() else {
        return;
    };
    let original_id = mapping_str(mapping, "id").unwrap_or_default();
    let salt = format!("{salt}:{original_id}");
    let mut is_rule = false;
    let mut has_detection = false;
    let mut perturbed = 0;
    for (key, value) in mapping.iter_mut() {
        match key.as_str() {
            Some("id" | "name") => {
                if let Some(new) = value.as_str().and_then(|old| renames.get(old)) {
                    *value = string(new.clone());
                }
            }
            Some("title") => {
                if let Some(title) = value.as_str() {
                    *value = string(format!("{title} (variant {copy})"));
                }
            }
            Some("detection") => {
                is_rule = true;
                has_detection = true;
                if !keep_values {
                    perturbed += vary_selections(value, &salt);
                }
            }
            Some("correlation") => {
                is_rule = true;
                rename_references(value, renames);
            }
            Some("filter") => {
                is_rule = true;
                rename_references(value, renames);
                if !keep_values {
                    perturbed += vary_selections(value, &salt);
                }
            }
            _ => {}
        }
    }
    if is_rule {
        summary.rule_documents += 1;
        summary.perturbed_values += perturbed;
        if has_detection && perturbed == 0 && copy == 1 && !keep_values {
            summary.unchanged_logic.push(original_id);
        }
    }
}

/// Perturbs the values of every selection of a `detection` (or `filter`) mapping; returns how
/// many string values were changed.
fn vary_selections(detection: &mut Yaml, salt: &str) -> usize {
    let Some(mapping) = detection.as_mapping_mut() else {
        return 0;
    };
    let mut perturbed = 0;
    for (key, selection) in mapping.iter_mut() {
        let name = key.as_str().unwrap_or_default();
        if matches!(name, "condition" | "timeframe" | "rules") {
            continue;
        }
        perturbed += vary_selection(selection, &format!("{salt}:{name}"));
    }
    perturbed
}

fn vary_selection(selection: &mut Yaml, salt: &str) -> usize {
    match selection {
        Yaml::Mapping(fields) => {
            let mut perturbed = 0;
            for (key, value) in fields.iter_mut() {
                let key = key.as_str().unwrap_or_default();
                let mut parts = key.split('|');
                let field = parts.next().unwrap_or_default();
                let modifiers: Vec<&str> = parts.collect();
                if KEPT_FIELDS.contains(&field)
                    || modifiers
                        .iter()
                        .any(|modifier| KEPT_MODIFIERS.contains(modifier))
                {
                    continue;
                }
                let regex = modifiers.contains(&"re");
                perturbed += vary_values(value, &format!("{salt}:{key}"), regex);
            }
            perturbed
        }
        Yaml::Sequence(items) => items
            .iter_mut()
            .enumerate()
            .map(|(idx, item)| match item {
                // A list of maps is an OR of selections; a list of strings is keywords.
                Yaml::Mapping(_) => vary_selection(item, &format!("{salt}[{idx}]")),
                _ => vary_values(item, &format!("{salt}[{idx}]"), false),
            })
            .sum(),
        _ => vary_values(selection, salt, false),
    }
}

fn vary_values(value: &mut Yaml, salt: &str, regex: bool) -> usize {
    match value {
        Yaml::Sequence(items) => items
            .iter_mut()
            .enumerate()
            .map(|(idx, item)| vary_values(item, &format!("{salt}[{idx}]"), regex))
            .sum(),
        Yaml::Value(Scalar::String(text)) => match perturb(text, hash(salt), regex) {
            Some(new) => {
                *value = string(new);
                1
            }
            None => 0,
        },
        _ => 0,
    }
}

/// Replaces one eligible character of `text` (see the module doc); `None` if there is none.
fn perturb(text: &str, hash: u64, regex: bool) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut eligible = Vec::new();
    let mut escaped = false;
    let mut in_class = false;
    let mut brace_depth = 0u32;
    let mut in_group_head = false;
    for (idx, &c) in chars.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '[' if regex => in_class = true,
            ']' if regex => in_class = false,
            '{' if regex => brace_depth += 1,
            '}' if regex => brace_depth = brace_depth.saturating_sub(1),
            '(' if regex && chars.get(idx + 1) == Some(&'?') => in_group_head = true,
            ':' | ')' | '>' if in_group_head => in_group_head = false,
            c if c.is_ascii_alphanumeric()
                && !(regex && (in_class || brace_depth > 0 || in_group_head)) =>
            {
                eligible.push(idx);
            }
            _ => {}
        }
    }
    if eligible.is_empty() {
        return None;
    }
    let position = eligible[(hash % eligible.len() as u64) as usize];
    let shift = (hash >> 32) as u8;
    let old = chars[position] as u8;
    let new = match old {
        b'a'..=b'z' => b'a' + (old - b'a' + 1 + shift % 25) % 26,
        b'A'..=b'Z' => b'A' + (old - b'A' + 1 + shift % 25) % 26,
        _ => b'0' + (old - b'0' + 1 + shift % 9) % 10,
    };
    let mut chars = chars;
    chars[position] = char::from(new);
    Some(chars.into_iter().collect())
}

/// Rewrites the `rules:` list (or single reference) of a correlation or filter to the copies.
fn rename_references(section: &mut Yaml, renames: &HashMap<String, String>) {
    let Some(mapping) = section.as_mapping_mut() else {
        return;
    };
    for (key, value) in mapping.iter_mut() {
        if key.as_str() != Some("rules") {
            continue;
        }
        match value {
            Yaml::Sequence(items) => {
                for item in items.iter_mut() {
                    if let Some(new) = item.as_str().and_then(|old| renames.get(old)) {
                        *item = string(new.clone());
                    }
                }
            }
            other => {
                if let Some(new) = other.as_str().and_then(|old| renames.get(old)) {
                    *other = string(new.clone());
                }
            }
        }
    }
}

fn mapping_str(mapping: &saphyr::Mapping, key: &str) -> Option<String> {
    mapping
        .iter()
        .find(|(name, _)| name.as_str() == Some(key))
        .and_then(|(_, value)| value.as_str())
        .map(str::to_owned)
}

fn string(text: String) -> Yaml<'static> {
    Yaml::Value(Scalar::String(Cow::Owned(text)))
}

/// A UUID-shaped id (version 4 and variant bits set) derived from the seed, the copy and the
/// original id, so reruns give the same ids.
fn variant_uuid(seed: u64, copy: u32, old: &str) -> String {
    let high = hash(&format!("{seed}:{copy}:{old}:high"));
    let low = hash(&format!("{seed}:{copy}:{old}:low"));
    let high = (high & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let low = (low & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

/// FNV-1a followed by the SplitMix64 finaliser: stable across runs and platforms, unlike std's
/// randomly keyed hasher.
fn hash(text: &str) -> u64 {
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        state ^= u64::from(byte);
        state = state.wrapping_mul(0x0100_0000_01b3);
    }
    state = (state ^ (state >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    state = (state ^ (state >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    state ^ (state >> 31)
}
