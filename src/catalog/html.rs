//! The catalog as a static HTML site: no JavaScript, one plain CSS file, relative links, so it
//! reads the same from a file system, any web server, or with scripts turned off.
//!
//! Pages: `index.html` (every rule, with format, severity, log type and tactics columns),
//! `rules/<id>.html` (one per rule, the sections of `vigil explain`), `overlaps.html` (shared
//! indicators, exact and near duplicates), `attack.html` (the coverage matrix: tactics as
//! columns, techniques as cells shaded by how many alerting rules cover each), `style.css`.
//!
//! Rule files are untrusted: every piece of rule text goes through [`escape`].

use std::collections::HashMap;
use std::fmt::Write;

use super::text::{header, tests_summary};
use super::{Catalog, Entry, page_name};

/// The site: (path relative to the output directory, content).
pub fn site(catalog: &Catalog) -> Vec<(String, String)> {
    let titles: HashMap<&str, &Entry> = catalog
        .entries
        .iter()
        .map(|entry| (entry.id.as_str(), entry))
        .collect();
    let mut files = vec![
        ("style.css".to_string(), STYLE.to_string()),
        ("index.html".to_string(), index(catalog)),
        ("overlaps.html".to_string(), overlaps(catalog, &titles)),
        ("attack.html".to_string(), matrix(catalog)),
    ];
    for entry in &catalog.entries {
        files.push((
            format!("rules/{}", page_name(&entry.id)),
            rule_page(entry, &titles),
        ));
    }
    files
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a page file name for an `href` (the name is already made of safe
/// characters, see [`page_name`]; this keeps it so whatever that function becomes).
fn href(name: &str) -> String {
    let mut out = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'/') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn page(title: &str, root: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<link rel=\"stylesheet\" href=\"{root}style.css\">\n</head>\n<body>\n<nav><a href=\"{root}index.html\">Rules</a> <a href=\"{root}overlaps.html\">Overlaps</a> <a href=\"{root}attack.html\">ATT&amp;CK coverage</a></nav>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape(title)
    )
}

fn rule_link(id: &str, titles: &HashMap<&str, &Entry>, root: &str) -> String {
    match titles.get(id) {
        Some(entry) => format!(
            "<a href=\"{root}rules/{}\" title=\"{}\">{}</a>",
            href(&page_name(id)),
            escape(&entry.title),
            escape(id)
        ),
        None => escape(id),
    }
}

fn index(catalog: &Catalog) -> String {
    let mut body = String::new();
    let _ = writeln!(body, "<h1>Rule catalog</h1>");
    let mut formats: Vec<(&str, usize)> = Vec::new();
    for entry in &catalog.entries {
        match formats.iter_mut().find(|(f, _)| *f == entry.format) {
            Some((_, n)) => *n += 1,
            None => formats.push((entry.format, 1)),
        }
    }
    let summary: Vec<String> = formats.iter().map(|(f, n)| format!("{n} {f}")).collect();
    let _ = writeln!(
        body,
        "<p>{} rules and correlations loaded ({}).</p>",
        catalog.entries.len(),
        summary.join(", ")
    );
    let _ = writeln!(
        body,
        "<table class=\"index\">\n<thead><tr><th>title</th><th>id</th><th>format</th><th>type</th><th>severity</th><th>log type</th><th>tactics</th><th>logic</th><th>tests</th></tr></thead>\n<tbody>"
    );
    for entry in &catalog.entries {
        let tactics: Vec<String> = entry
            .attack
            .iter()
            .filter(|row| !row.id.is_empty())
            .map(|row| format!("{} {}", row.id, row.name))
            .collect();
        let _ = writeln!(
            body,
            "<tr><td><a href=\"rules/{}\">{}</a></td><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"sev-{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            href(&page_name(&entry.id)),
            escape(&entry.title),
            escape(&entry.id),
            entry.format,
            entry.kind,
            entry.severity,
            entry.severity,
            escape(&entry.log_types.join(", ")),
            escape(&tactics.join(", ")),
            escape(&entry.logic.mode),
            escape(&tests_summary(entry)),
        );
    }
    let _ = writeln!(body, "</tbody>\n</table>");
    page("Rule catalog", "", &body)
}

fn rule_page(entry: &Entry, titles: &HashMap<&str, &Entry>) -> String {
    let root = "../";
    let mut body = String::new();
    let _ = writeln!(body, "<h1>{}</h1>", escape(&entry.title));
    let _ = writeln!(body, "<table class=\"header\">");
    for (key, value) in header(entry) {
        let value = if key == "references" {
            entry
                .references
                .iter()
                .map(|r| link_if_url(r))
                .collect::<Vec<_>>()
                .join("<br>")
        } else if key == "used by" {
            entry
                .used_by
                .iter()
                .map(|id| rule_link(id, titles, root))
                .collect::<Vec<_>>()
                .join("<br>")
        } else {
            escape(&value)
        };
        let value = if value.is_empty() {
            "none".to_string()
        } else {
            value
        };
        let _ = writeln!(body, "<tr><th>{key}</th><td>{value}</td></tr>");
    }
    let _ = writeln!(body, "</table>");
    if let Some(description) = &entry.description {
        let _ = writeln!(
            body,
            "<h2>Description</h2>\n<p class=\"prose\">{}</p>",
            escape(description.trim())
        );
    }
    if let Some(runbook) = &entry.runbook {
        let _ = writeln!(
            body,
            "<h2>Runbook</h2>\n<details open><summary>runbook</summary><pre class=\"prose\">{}</pre></details>",
            escape(runbook.trim())
        );
    }
    let _ = writeln!(body, "<h2>ATT&amp;CK coverage</h2>");
    table(
        &mut body,
        &["tactic", "techniques"],
        &entry.attack,
        Some("None named."),
        |row| {
            let techniques: Vec<String> = row
                .techniques
                .iter()
                .map(|(id, name)| format!("{} {}", escape(id), escape(name)))
                .collect();
            format!(
                "<tr><td>{} {}</td><td>{}</td></tr>",
                escape(&row.id),
                escape(&row.name),
                techniques.join("<br>")
            )
        },
    );
    let _ = writeln!(
        body,
        "<h2>Detection logic</h2>\n<p><strong>{}</strong>: {}</p>\n<pre class=\"logic\">{}</pre>",
        escape(&entry.logic.mode),
        escape(&entry.logic.note),
        escape(&entry.logic.conjuncts.join("\n"))
    );
    if let Some(corr) = &entry.correlation {
        let _ = writeln!(body, "<h2>Correlation</h2>\n<table>");
        for (reference, id, _) in &corr.rules {
            let target = match id {
                Some(id) => rule_link(id, titles, root),
                None => format!("{} (not loaded)", escape(reference)),
            };
            let _ = writeln!(body, "<tr><th>base rule</th><td>{target}</td></tr>");
        }
        let _ = writeln!(
            body,
            "<tr><th>group by</th><td>{}</td></tr>\n<tr><th>window</th><td>{}</td></tr>\n<tr><th>condition</th><td>{}</td></tr>\n<tr><th>generate</th><td>{}</td></tr>\n</table>",
            escape(&corr.group_by.join(", ")),
            escape(&corr.window),
            escape(&corr.condition),
            corr.generate
        );
    }
    let _ = writeln!(body, "<h2>Exclusions</h2>");
    table(
        &mut body,
        &["field", "kind", "excluded values"],
        &entry.exclusions,
        Some("None."),
        |row| {
            format!(
                "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td></tr>",
                escape(&row.field),
                escape(&row.kind),
                escape(&row.values.join(", "))
            )
        },
    );
    let _ = writeln!(
        body,
        "<h2>Indicators</h2>\n<p>Field, operator and value combinations the rule matches on, and how many other loaded rules look for the same one.</p>"
    );
    table(
        &mut body,
        &["field", "operator", "value", "other rules"],
        &entry.indicators,
        Some("None."),
        |indicator| {
            format!(
                "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                escape(&indicator.indicator.field),
                escape(&indicator.indicator.op),
                escape(&indicator.indicator.value),
                indicator.others
            )
        },
    );
    let _ = writeln!(body, "<h2>Rules detecting the same action</h2>");
    table(
        &mut body,
        &["action", "rule", "title", "format", "severity"],
        &entry.same_action,
        Some("None."),
        |same| {
            format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class=\"sev-{}\">{}</td></tr>",
                escape(&same.action),
                rule_link(&same.id, titles, root),
                escape(&same.title),
                same.format,
                same.severity,
                same.severity
            )
        },
    );
    let list = |items: &[String]| -> String {
        if items.is_empty() {
            "none".to_string()
        } else {
            items
                .iter()
                .map(|i| format!("<code>{}</code>", escape(i)))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let _ = writeln!(
        body,
        "<h2>Output fields</h2>\n<p>{}</p>\n<p>Fields read: {}</p>",
        list(&entry.output_fields),
        list(&entry.fields_read)
    );
    let _ = writeln!(
        body,
        "<h2>Tests</h2>\n<p>{}.</p>",
        escape(&tests_summary(entry))
    );
    // A rule without tests has the summary line only.
    table(
        &mut body,
        &["test", "expected", "actual", "result"],
        &entry.tests,
        None,
        |test| {
            let actual = test.actual.map_or("error".to_string(), |a| a.to_string());
            let result = match (&test.error, test.passed) {
                (_, true) => "pass".to_string(),
                (Some(error), false) => format!("fail: {error}"),
                (None, false) => "fail".to_string(),
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                escape(&test.name),
                test.expected,
                actual,
                if test.passed { "pass" } else { "fail" },
                escape(&result)
            )
        },
    );
    page(&entry.title, root, &body)
}

/// Writes a table with `headers` and one row per item (`row` renders one whole `<tr>`), or,
/// when there are no items, the paragraph `empty` (nothing when `None`).
fn table<T>(
    body: &mut String,
    headers: &[&str],
    items: &[T],
    empty: Option<&str>,
    row: impl Fn(&T) -> String,
) {
    if items.is_empty() {
        if let Some(empty) = empty {
            let _ = writeln!(body, "<p>{empty}</p>");
        }
        return;
    }
    let head: String = headers.iter().map(|h| format!("<th>{h}</th>")).collect();
    let _ = writeln!(body, "<table>\n<thead><tr>{head}</tr></thead>\n<tbody>");
    for item in items {
        let _ = writeln!(body, "{}", row(item));
    }
    let _ = writeln!(body, "</tbody>\n</table>");
}

/// A reference as a link when it is an http(s) URL, else as text.
fn link_if_url(text: &str) -> String {
    let trimmed = text.trim();
    if (trimmed.starts_with("https://") || trimmed.starts_with("http://"))
        && !trimmed.contains(char::is_whitespace)
    {
        format!(
            "<a href=\"{}\" rel=\"noreferrer\">{}</a>",
            escape(trimmed),
            escape(trimmed)
        )
    } else {
        escape(text)
    }
}

fn overlaps(catalog: &Catalog, titles: &HashMap<&str, &Entry>) -> String {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<h1>Overlaps</h1>\n<h2>Duplicates</h2>\n<p><strong>Exact</strong>: the same normalized logic, once ECS fields are named by the CloudTrail field they copy (<code>event.action</code> is <code>eventName</code>). <strong>Near</strong>: not exact, but the same set of positive conjuncts, compared without regard to case and ignoring <code>eventSource</code> conjuncts and exclusions, with at least one on <code>eventName</code>. Only rules whose logic is shown exactly take part (a rule shown by a necessary condition does not).</p>"
    );
    table(
        &mut body,
        &["kind", "across formats", "shared logic", "rules"],
        &catalog.duplicates,
        Some("None."),
        |group| {
            let rules: Vec<String> = group
                .rules
                .iter()
                .map(|id| rule_with_format(id, titles))
                .collect();
            format!(
                "<tr><td>{}</td><td>{}</td><td><pre class=\"logic\">{}</pre></td><td>{}</td></tr>",
                group.kind,
                if group.cross_format { "yes" } else { "no" },
                escape(&group.shared),
                rules.join("<br>")
            )
        },
    );
    let _ = writeln!(
        body,
        "<h2>Shared indicators</h2>\n<p>Field, operator and value combinations that several rules match on (values compared without regard to case).</p>"
    );
    table(
        &mut body,
        &["field", "operator", "value", "rules"],
        &catalog.shared_indicators,
        Some("None."),
        |shared| {
            let rules: Vec<String> = shared
                .rules
                .iter()
                .map(|id| rule_with_format(id, titles))
                .collect();
            format!(
                "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{} rules: {}</td></tr>",
                escape(&shared.indicator.field),
                escape(&shared.indicator.op),
                escape(&shared.indicator.value),
                shared.rules.len(),
                rules.join(", ")
            )
        },
    );
    page("Overlaps", "", &body)
}

fn rule_with_format(id: &str, titles: &HashMap<&str, &Entry>) -> String {
    match titles.get(id) {
        Some(entry) => format!("{} ({})", rule_link(id, titles, ""), entry.format),
        None => escape(id),
    }
}

fn matrix(catalog: &Catalog) -> String {
    let mut body = String::new();
    let covered: usize = catalog
        .coverage
        .iter()
        .flat_map(|c| &c.cells)
        .filter(|cell| !cell.rules.is_empty())
        .map(|cell| cell.id.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let _ = writeln!(
        body,
        "<h1>ATT&amp;CK coverage</h1>\n<p>ATT&amp;CK v18.1 Enterprise. Each cell is a technique under its tactic; its shade is the number of alerting rules and correlations (not disabled, not silent, not only feeding a correlation) naming it or one of its sub-techniques. {covered} techniques are covered.</p>\n<p class=\"legend\"><span class=\"c0\">0</span> <span class=\"c1\">1</span> <span class=\"c2\">2-3</span> <span class=\"c3\">4-7</span> <span class=\"c4\">8 or more</span></p>"
    );
    let _ = writeln!(body, "<table class=\"matrix\">\n<thead><tr>");
    for column in &catalog.coverage {
        let _ = writeln!(
            body,
            "<th>{} {}<br><small>{} rules name the tactic alone</small></th>",
            escape(&column.id),
            escape(&column.name),
            column.tactic_only.len()
        );
    }
    let _ = writeln!(body, "</tr></thead>\n<tbody>");
    let rows = catalog
        .coverage
        .iter()
        .map(|c| c.cells.len())
        .max()
        .unwrap_or(0);
    for row in 0..rows {
        let _ = write!(body, "<tr>");
        for column in &catalog.coverage {
            match column.cells.get(row) {
                Some(cell) => {
                    let n = cell.rules.len();
                    let shade = match n {
                        0 => 0,
                        1 => 1,
                        2..=3 => 2,
                        4..=7 => 3,
                        _ => 4,
                    };
                    let subs: Vec<String> = cell
                        .subs
                        .iter()
                        .map(|(id, count)| format!("{} ({count})", escape(id)))
                        .collect();
                    let subs = if subs.is_empty() {
                        String::new()
                    } else {
                        format!("<br><small>{}</small>", subs.join(", "))
                    };
                    let _ = write!(
                        body,
                        "<td class=\"c{shade}\" title=\"{n} rules\">{} {}<br><strong>{n}</strong>{subs}</td>",
                        escape(&cell.id),
                        escape(&cell.name)
                    );
                }
                None => {
                    let _ = write!(body, "<td class=\"empty\"></td>");
                }
            }
        }
        let _ = writeln!(body, "</tr>");
    }
    let _ = writeln!(body, "</tbody>\n</table>");
    page("ATT&CK coverage", "", &body)
}

const STYLE: &str = "body { font-family: system-ui, sans-serif; margin: 0; color: #1d1d1f; }
nav { background: #233; padding: 0.6em 1em; }
nav a { color: #fff; margin-right: 1.5em; text-decoration: none; }
main { padding: 1em 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccd; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
thead th { background: #eef; }
table.header th { background: #f5f5fa; width: 10em; }
pre.logic { background: #f6f8fa; padding: 0.6em; white-space: pre-wrap; }
pre.prose, p.prose { white-space: pre-wrap; }
td.sev-critical { color: #a00; font-weight: bold; }
td.sev-high { color: #c40; }
td.fail { color: #a00; }
td.pass { color: #070; }
table.matrix td { font-size: 0.75em; width: 7em; }
.c0 { background: #fff; }
.c1 { background: #dbeafe; }
.c2 { background: #93c5fd; }
.c3 { background: #3b82f6; color: #fff; }
.c4 { background: #1e3a8a; color: #fff; }
.legend span { border: 1px solid #ccd; padding: 0.1em 0.6em; }
";
