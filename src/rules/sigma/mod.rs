//! Sigma front end: detection rules, filters and correlation rules lowered into the IR.
//!
//! A source is one YAML text holding one or more documents. Each document is classified by its
//! top-level keys: `correlation:` goes to [`correlation::lower`], `filter:` is a Sigma filter
//! (collected, then applied by [`apply_filters`] once every file is loaded), anything else is a
//! detection rule. A document that cannot be lowered becomes one diagnostic (file, line, rule
//! id, reason) and the other documents of the file still load.
//!
//! Layout: `detection` lowers identifiers and the condition, `condition` parses the condition
//! language, `modifiers` knows the modifier names and legal combinations, `strings` handles
//! wildcards, escapes and value encodings. The semantics follow the Sigma specification v2.1
//! and, where it is silent, pySigma (see `shared/notes/sigma-semantics.md`).

pub mod condition;
pub mod correlation;
pub mod detection;
pub mod modifiers;
pub mod strings;

use crate::attack::{self, AttackId};
use crate::diag::{Code, Diagnostic};
use crate::ir::{
    Attack, Expr, Format, LogSource, Meta, MetaDoc, Rule, RuleExtra, Severity, SourceLoc,
};
use crate::rules::yaml::{self, Node, Value};

use super::{LoadOptions, Loaded};
use detection::{Context, LowerError};

/// A Sigma filter document, lowered: applied to its target rules by [`apply_filters`].
#[derive(Clone, Debug)]
pub struct Filter {
    pub id: String,
    pub title: String,
    pub source: SourceLoc,
    pub logsource: LogSource,
    pub targets: FilterTargets,
    /// The filter's own condition over its own identifiers; ANDed into each target.
    pub expr: Expr,
}

/// The rules a filter applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterTargets {
    /// `rules: any` (or an empty list): every rule whose log source the filter covers.
    Any,
    /// Rule ids, names or titles.
    Rules(Vec<String>),
}

/// Loads every document of one Sigma YAML source into `out`.
pub fn load(path: &str, text: &str, options: &LoadOptions, out: &mut Loaded) {
    let docs = match yaml::parse_documents(text) {
        Ok(docs) => docs,
        Err(err) => {
            out.diagnostics.push(Diagnostic::error(
                Code::Syntax,
                loc(path, err.line),
                format!("invalid yaml: {}", err.message),
            ));
            return;
        }
    };
    let ctx = Context {
        placeholders: &options.placeholders,
    };
    for doc in &docs {
        if doc.value == Value::Null {
            // An empty document (a trailing `---`) holds nothing to load.
            continue;
        }
        if doc.as_map().is_none() {
            out.diagnostics.push(Diagnostic::error(
                Code::Schema,
                loc(path, doc.line),
                "a sigma document must be a mapping",
            ));
            continue;
        }
        if doc.get("correlation").is_some() {
            match correlation::lower(path, doc) {
                Ok(corr) => out.set.correlations.push(corr),
                Err(diag) => out.diagnostics.push(diag),
            }
        } else if doc.get("filter").is_some() {
            match lower_filter(path, doc, &ctx) {
                Ok(filter) => out.sigma_filters.push(filter),
                Err(diag) => out.diagnostics.push(diag),
            }
        } else {
            match lower_rule(path, doc, &ctx) {
                Ok(rule) => {
                    if doc.get("logsource").is_none() {
                        out.diagnostics.push(
                            Diagnostic::warning(
                                Code::Schema,
                                loc(path, doc.line),
                                "no 'logsource': the rule runs on events of every source",
                            )
                            .with_rule(rule.meta.id.clone()),
                        );
                    }
                    out.set.rules.push(rule)
                }
                Err(diag) => out.diagnostics.push(diag),
            }
        }
    }
}

/// ANDs each filter into the rules it targets (pySigma semantics: the filter condition is
/// ANDed, so authors write exclusions as `condition: not selection`). A filter applies to a
/// rule when it names it (by id, name or title) or says `rules: any`, and when every part of
/// its log source that it names equals the rule's. Filters never apply to correlations.
pub fn apply_filters(filters: &[Filter], loaded: &mut Loaded) {
    for filter in filters {
        let references: &[String] = match &filter.targets {
            FilterTargets::Any => &[],
            FilterTargets::Rules(references) => references,
        };
        let mut found = vec![false; references.len()];
        for rule in &mut loaded.set.rules {
            let mut named = false;
            for (idx, reference) in references.iter().enumerate() {
                if names_rule(reference, &rule.meta) {
                    found[idx] = true;
                    named = true;
                }
            }
            let targeted = filter.targets == FilterTargets::Any || named;
            if !targeted {
                continue;
            }
            if !covers(&filter.logsource, &rule.logsource) {
                if named {
                    loaded.diagnostics.push(
                        Diagnostic::warning(
                            Code::Filter,
                            filter.source.clone(),
                            format!(
                                "filter log source ({}) does not cover rule '{}' ({}); not applied",
                                filter.logsource, rule.meta.id, rule.logsource
                            ),
                        )
                        .with_rule(filter.id.clone()),
                    );
                }
                continue;
            }
            let expr = std::mem::replace(&mut rule.expr, Expr::Const(false));
            rule.expr = Expr::and(vec![expr, filter.expr.clone()]);
        }
        for (reference, found) in references.iter().zip(found) {
            if found {
                continue;
            }
            let is_correlation = loaded
                .set
                .correlations
                .iter()
                .any(|corr| names_rule(reference, &corr.meta));
            let message = if is_correlation {
                format!(
                    "filter targets correlation '{reference}'; filters never apply to correlations"
                )
            } else {
                format!("filter targets rule '{reference}', which is not loaded")
            };
            loaded.diagnostics.push(
                Diagnostic::warning(Code::Filter, filter.source.clone(), message)
                    .with_rule(filter.id.clone()),
            );
        }
    }
}

fn names_rule(reference: &str, meta: &Meta) -> bool {
    meta.id == reference || meta.title == reference || meta.name.as_deref() == Some(reference)
}

/// pySigma `SigmaLogSource.__contains__`: each part the filter names must equal the rule's.
fn covers(filter: &LogSource, rule: &LogSource) -> bool {
    let part = |filter: &Option<String>, rule: &Option<String>| filter.is_none() || filter == rule;
    part(&filter.product, &rule.product)
        && part(&filter.service, &rule.service)
        && part(&filter.category, &rule.category)
}

pub(super) fn loc(path: &str, line: u32) -> SourceLoc {
    SourceLoc {
        path: path.to_string(),
        line: Some(line),
    }
}

/// The handle diagnostics name a document by: its id, else its title.
fn handle(doc: &Node) -> Option<String> {
    doc.get("id")
        .and_then(Node::scalar_text)
        .or_else(|| doc.get("title").and_then(Node::scalar_text))
}

pub(super) fn fail(path: &str, doc: &Node, err: LowerError) -> Diagnostic {
    let diag = Diagnostic::error(err.code, loc(path, err.line), err.message);
    match handle(doc) {
        Some(id) => diag.with_rule(id),
        None => diag,
    }
}

fn schema(line: u32, message: impl Into<String>) -> LowerError {
    LowerError::new(Code::Schema, line, message)
}

fn lower_rule(path: &str, doc: &Node, ctx: &Context<'_>) -> Result<Rule, Diagnostic> {
    let meta = lower_meta(path, doc).map_err(|err| fail(path, doc, err))?;
    let logsource = lower_logsource(doc).map_err(|err| fail(path, doc, err))?;
    if let Some(timeframe) = doc.get("timeframe") {
        return Err(fail(
            path,
            doc,
            LowerError::new(
                Code::Unsupported,
                timeframe.line,
                "timeframe on a detection rule (legacy aggregation window) is not supported; \
                 use a correlation rule",
            ),
        ));
    }
    let Some(detection) = doc.get("detection") else {
        return Err(fail(path, doc, schema(doc.line, "missing 'detection'")));
    };
    let expr = detection::lower(detection, &[], ctx).map_err(|err| fail(path, doc, err))?;
    // vigil's own `tests:` key (see `crate::rules::rule_tests`).
    let tests = crate::rules::rule_tests::lower_sigma(doc)
        .map_err(|(line, message)| fail(path, doc, schema(line, message)))?;
    Ok(Rule {
        meta,
        logsource,
        expr,
        extra: RuleExtra {
            tests,
            ..RuleExtra::default()
        },
    })
}

/// The metadata shared by detection rules and correlation rules.
pub(super) fn lower_meta(path: &str, doc: &Node) -> Result<Meta, LowerError> {
    let text = |key: &str| -> Result<Option<String>, LowerError> {
        match doc.get(key) {
            None => Ok(None),
            Some(node) => match node.scalar_text() {
                Some(text) => Ok(Some(text)),
                None if node.value == Value::Null => Ok(None),
                None => Err(schema(node.line, format!("'{key}' must be a string"))),
            },
        }
    };
    let list = |key: &str| -> Result<Vec<String>, LowerError> {
        match doc.get(key) {
            None => Ok(Vec::new()),
            Some(node) if node.value == Value::Null => Ok(Vec::new()),
            Some(node) => node
                .string_list()
                .ok_or_else(|| schema(node.line, format!("'{key}' must be a list of strings"))),
        }
    };
    let name = text("name")?;
    // `title` is required by the spec, but its own correlation examples leave it out of base
    // rules that only have a `name`; such a rule is titled by its name, else its id.
    let Some(title) = text("title")?.or_else(|| name.clone()).or(text("id")?) else {
        return Err(schema(doc.line, "missing 'title' (and no 'name' or 'id')"));
    };
    // `id` is optional in the spec but every rule pack sets it; without one the rule is known
    // by its name, else its title (duplicates are still caught by the loader).
    let id = match text("id")? {
        Some(id) => id,
        None => name.clone().unwrap_or_else(|| title.clone()),
    };
    // `level` is optional in the spec. An absent level is taken as medium, the middle of the
    // scale and pySigma's usual default in backends; an unknown word is an error.
    let severity = match doc.get("level") {
        None => Severity::Medium,
        Some(node) => match node.as_str().and_then(Severity::parse) {
            Some(severity) => severity,
            None => {
                return Err(schema(
                    node.line,
                    format!(
                        "unknown level '{}' (expected informational, low, medium, high or critical)",
                        node.scalar_text().unwrap_or_default()
                    ),
                ));
            }
        },
    };
    let tags = list("tags")?;
    let mut attack = Attack::default();
    for tag in &tags {
        match attack::from_sigma_tag(tag) {
            Some(AttackId::Tactic(id)) => attack.tactics.push(id),
            Some(AttackId::Technique(id)) => attack.techniques.push(id),
            None => {}
        }
    }
    attack.normalize();
    Ok(Meta {
        id,
        name,
        title,
        format: Format::Sigma,
        severity,
        tags,
        attack,
        description: text("description")?,
        references: list("references")?,
        fields: list("fields")?,
        source: loc(path, doc.line),
        doc: MetaDoc::default(),
    })
}

/// An absent `logsource` is the empty one, which admits every stream (the caller warns).
fn lower_logsource(doc: &Node) -> Result<LogSource, LowerError> {
    let Some(node) = doc.get("logsource") else {
        return Ok(LogSource::default());
    };
    if node.as_map().is_none() {
        return Err(schema(node.line, "'logsource' must be a mapping"));
    }
    let part = |key: &str| node.get(key).and_then(Node::scalar_text);
    let (product, service, category) = (part("product"), part("service"), part("category"));
    Ok(LogSource::new(
        product.as_deref(),
        service.as_deref(),
        category.as_deref(),
    ))
}

fn lower_filter(path: &str, doc: &Node, ctx: &Context<'_>) -> Result<Filter, Diagnostic> {
    let inner = || -> Result<Filter, LowerError> {
        let title = doc
            .get("title")
            .and_then(Node::scalar_text)
            .ok_or_else(|| schema(doc.line, "missing 'title'"))?;
        let id = doc
            .get("id")
            .and_then(Node::scalar_text)
            .unwrap_or_else(|| title.clone());
        // Mandatory for filters (the spec): it decides which rules the filter may touch.
        if doc.get("logsource").is_none() {
            return Err(schema(doc.line, "missing 'logsource'"));
        }
        let logsource = lower_logsource(doc)?;
        let body = doc
            .get("filter")
            .ok_or_else(|| schema(doc.line, "missing 'filter'"))?;
        if body.as_map().is_none() {
            return Err(schema(body.line, "'filter' must be a mapping"));
        }
        let Some(rules) = body.get("rules") else {
            return Err(schema(
                body.line,
                "filter has no 'rules' (a list of rule ids or titles, or 'any')",
            ));
        };
        let targets = match &rules.value {
            Value::Str(text) if text.eq_ignore_ascii_case("any") => FilterTargets::Any,
            Value::Seq(items) if items.is_empty() => FilterTargets::Any,
            _ => match rules.string_list() {
                Some(list) => FilterTargets::Rules(list),
                None => {
                    return Err(schema(
                        rules.line,
                        "filter 'rules' must be 'any' or a list of rule ids or titles",
                    ));
                }
            },
        };
        let expr = detection::lower(body, &["rules"], ctx)?;
        Ok(Filter {
            id,
            title,
            source: loc(path, doc.line),
            logsource,
            targets,
            expr,
        })
    };
    inner().map_err(|err| fail(path, doc, err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Loader;
    use std::collections::HashMap;

    fn load_text(text: &str) -> Loaded {
        let mut loader = Loader::new(LoadOptions::default());
        loader.add_source("test.yml", text);
        loader.finish()
    }

    const RULE: &str = "title: Test Rule
id: 11111111-0000-0000-0000-000000000001
name: test_rule
level: high
tags:
  - attack.t1078.004
  - attack.initial-access
  - attack.persistence
  - cve.2021-1234
description: a test
references:
  - https://example.com
fields:
  - eventName
logsource:
  product: AWS
  service: cloudtrail
detection:
  selection:
    eventName: CreateUser
  condition: selection
";

    #[test]
    fn lowers_metadata() {
        let loaded = load_text(RULE);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let rule = &loaded.set.rules[0];
        assert_eq!(rule.meta.id, "11111111-0000-0000-0000-000000000001");
        assert_eq!(rule.meta.name.as_deref(), Some("test_rule"));
        assert_eq!(rule.meta.title, "Test Rule");
        assert_eq!(rule.meta.severity, Severity::High);
        assert_eq!(rule.meta.attack.tactics, ["TA0001", "TA0003"]);
        assert_eq!(rule.meta.attack.techniques, ["T1078.004"]);
        assert_eq!(rule.meta.tags.len(), 4);
        assert_eq!(rule.meta.description.as_deref(), Some("a test"));
        assert_eq!(rule.meta.references, ["https://example.com"]);
        assert_eq!(rule.meta.fields, ["eventName"]);
        assert_eq!(rule.meta.source.to_string(), "test.yml:1");
        assert_eq!(rule.logsource.to_string(), "product:aws service:cloudtrail");
        assert_eq!(rule.expr.to_string(), r#"eventName eq "createuser""#);
    }

    #[test]
    fn default_level_is_medium() {
        let loaded = load_text(&RULE.replace("level: high\n", ""));
        assert_eq!(loaded.set.rules[0].meta.severity, Severity::Medium);
        let loaded = load_text(&RULE.replace("level: high", "level: severe"));
        assert_eq!(loaded.diagnostics[0].code, Code::Schema);
        assert_eq!(
            loaded.diagnostics[0].message,
            "unknown level 'severe' (expected informational, low, medium, high or critical)"
        );
    }

    #[test]
    fn one_bad_document_does_not_stop_the_file() {
        let bad = RULE
            .replace("0001", "0002")
            .replace("eventName: CreateUser", "eventName|contain: x");
        let text = format!("{RULE}---\n{bad}---\n{}", RULE.replace("0001", "0003"));
        let loaded = load_text(&text);
        assert_eq!(loaded.set.rules.len(), 2);
        assert_eq!(loaded.diagnostics.len(), 1);
        let diag = &loaded.diagnostics[0];
        assert_eq!(
            diag.to_string(),
            "test.yml:42: error[modifier] rule 11111111-0000-0000-0000-000000000002: \
             unknown modifier 'contain' in 'eventName|contain'"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let loaded = load_text("title: x\ndetection: [a\n");
        assert_eq!(loaded.diagnostics.len(), 1);
        assert_eq!(loaded.diagnostics[0].code, Code::Syntax);
        assert!(loaded.diagnostics[0].source.line.is_some());
    }

    #[test]
    fn missing_sections() {
        let loaded = load_text("title: x\nlogsource: {product: aws}\n");
        assert_eq!(loaded.diagnostics[0].message, "missing 'detection'");
        assert_eq!(loaded.diagnostics[0].rule.as_deref(), Some("x"));
        let loaded = load_text("description: d\ndetection: {s: {a: 1}, condition: s}\n");
        assert_eq!(
            loaded.diagnostics[0].message,
            "missing 'title' (and no 'name' or 'id')"
        );
        // A base rule of the spec's correlation examples: only a name, no title, no logsource.
        let loaded = load_text("name: only_name\ndetection: {s: {a: 1}, condition: s}\n");
        assert_eq!(loaded.set.rules.len(), 1);
        assert_eq!(loaded.set.rules[0].meta.title, "only_name");
        assert_eq!(loaded.diagnostics.len(), 1);
        assert!(!loaded.diagnostics[0].is_error());
        let loaded = load_text("- a\n");
        assert_eq!(
            loaded.diagnostics[0].message,
            "a sigma document must be a mapping"
        );
    }

    #[test]
    fn legacy_timeframe_is_unsupported() {
        let loaded = load_text(&RULE.replace("level: high", "timeframe: 5m"));
        assert_eq!(loaded.diagnostics[0].code, Code::Unsupported);
    }

    const FILTER: &str = "title: Drop admins
id: f0000000-0000-0000-0000-000000000001
logsource:
  product: aws
filter:
  rules:
    - 11111111-0000-0000-0000-000000000001
    - does-not-exist
  admin:
    userName: admin
  condition: not admin
";

    #[test]
    fn filters_are_anded_into_their_targets() {
        let loaded = load_text(&format!("{RULE}---\n{FILTER}"));
        assert_eq!(
            loaded.set.rules[0].expr.to_string(),
            r#"eventName eq "createuser" and not userName eq "admin""#
        );
        assert_eq!(loaded.diagnostics.len(), 1);
        assert_eq!(loaded.diagnostics[0].code, Code::Filter);
        assert!(!loaded.diagnostics[0].is_error());
        assert_eq!(
            loaded.diagnostics[0].message,
            "filter targets rule 'does-not-exist', which is not loaded"
        );
    }

    #[test]
    fn filters_by_title_and_any_respect_logsource() {
        let by_title = FILTER.replace("11111111-0000-0000-0000-000000000001", "Test Rule");
        let loaded = load_text(&format!("{RULE}---\n{by_title}"));
        assert!(
            loaded.set.rules[0]
                .expr
                .to_string()
                .ends_with("not userName eq \"admin\"")
        );
        let any = FILTER.replace(
            "  rules:\n    - 11111111-0000-0000-0000-000000000001\n    - does-not-exist\n",
            "  rules: any\n",
        );
        let loaded = load_text(&format!("{RULE}---\n{any}"));
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert!(matches!(loaded.set.rules[0].expr, Expr::And(_)));
        let other_source = any.replace("product: aws", "product: okta");
        let loaded = load_text(&format!("{RULE}---\n{other_source}"));
        assert_eq!(
            loaded.set.rules[0].expr.to_string(),
            r#"eventName eq "createuser""#
        );
    }

    #[test]
    fn placeholders_come_from_options() {
        let text = RULE.replace("eventName: CreateUser", "eventName|expand: '%names%'");
        let loaded = load_text(&text);
        assert_eq!(loaded.diagnostics[0].code, Code::Placeholder);
        let mut placeholders = HashMap::new();
        placeholders.insert("names".to_string(), vec!["A".to_string(), "B".to_string()]);
        let mut loader = Loader::new(LoadOptions { placeholders });
        loader.add_source("test.yml", &text);
        let loaded = loader.finish();
        assert!(loaded.diagnostics.is_empty());
        assert_eq!(
            loaded.set.rules[0].expr.to_string(),
            r#"eventName eq "a" or eventName eq "b""#
        );
    }
}
