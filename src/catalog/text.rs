//! `vigil explain` in a terminal (plain text) and as Markdown: one rule's page.

use super::Entry;

/// A rule's page as plain text, sections separated by blank lines.
pub fn text(entry: &Entry) -> String {
    let mut out = String::new();
    let push = |out: &mut String, line: String| {
        out.push_str(&line);
        out.push('\n');
    };
    push(&mut out, one_line(&entry.title));
    for (key, value) in header(entry) {
        push(&mut out, format!("  {key}: {value}"));
    }
    if let Some(description) = &entry.description {
        push(&mut out, String::new());
        push(&mut out, "Description".into());
        for line in description.lines() {
            push(&mut out, format!("  {line}"));
        }
    }
    if let Some(runbook) = &entry.runbook {
        push(&mut out, String::new());
        push(&mut out, "Runbook".into());
        for line in runbook.lines() {
            push(&mut out, format!("  {line}"));
        }
    }
    push(&mut out, String::new());
    push(&mut out, "ATT&CK coverage".into());
    if entry.attack.is_empty() {
        push(&mut out, "  none named".into());
    }
    for row in &entry.attack {
        push(&mut out, format!("  {} {}", or_dash(&row.id), row.name));
        for (id, name) in &row.techniques {
            push(&mut out, format!("    {id} {name}"));
        }
    }
    push(&mut out, String::new());
    push(
        &mut out,
        format!(
            "Detection logic ({}: {})",
            entry.logic.mode, entry.logic.note
        ),
    );
    for line in &entry.logic.conjuncts {
        push(&mut out, format!("  {line}"));
    }
    if let Some(corr) = &entry.correlation {
        push(&mut out, String::new());
        push(&mut out, "Correlation".into());
        for (reference, id, title) in &corr.rules {
            let target = match id {
                Some(id) if id == reference => format!("{id} ({})", one_line(title)),
                Some(id) => format!("{reference} = {id} ({})", one_line(title)),
                None => format!("{reference} (not loaded)"),
            };
            push(&mut out, format!("  base rule: {target}"));
        }
        push(
            &mut out,
            format!("  group by: {}", list_or_none(&corr.group_by)),
        );
        push(&mut out, format!("  window: {}", corr.window));
        push(&mut out, format!("  condition: {}", corr.condition));
        push(&mut out, format!("  generate: {}", corr.generate));
    }
    push(&mut out, String::new());
    push(&mut out, "Exclusions".into());
    if entry.exclusions.is_empty() {
        push(&mut out, "  none".into());
    }
    for row in &entry.exclusions {
        push(
            &mut out,
            format!("  {}\t{}\t{}", row.field, row.kind, row.values.join(", ")),
        );
    }
    push(&mut out, String::new());
    push(
        &mut out,
        "Indicators (other loaded rules with the same field, operator and value)".into(),
    );
    if entry.indicators.is_empty() {
        push(&mut out, "  none".into());
    }
    for indicator in &entry.indicators {
        push(
            &mut out,
            format!("  {}\t{}", indicator.indicator, indicator.others),
        );
    }
    push(&mut out, String::new());
    push(&mut out, "Rules detecting the same action".into());
    if entry.same_action.is_empty() {
        push(&mut out, "  none".into());
    }
    for same in &entry.same_action {
        push(
            &mut out,
            format!(
                "  {}\t{}\t{}\t{}\t{}",
                same.action,
                same.id,
                same.format,
                same.severity,
                one_line(&same.title)
            ),
        );
    }
    push(&mut out, String::new());
    push(
        &mut out,
        format!("Output fields: {}", list_or_none(&entry.output_fields)),
    );
    push(
        &mut out,
        format!("Fields read: {}", list_or_none(&entry.fields_read)),
    );
    push(&mut out, String::new());
    push(&mut out, format!("Tests ({})", tests_summary(entry)));
    for test in &entry.tests {
        push(
            &mut out,
            format!(
                "  [{}] {} (expected {}, got {}){}",
                if test.passed { "PASS" } else { "FAIL" },
                one_line(&test.name),
                test.expected,
                test.actual.map_or("error".to_string(), |a| a.to_string()),
                test.error
                    .as_ref()
                    .map_or(String::new(), |e| format!(": {}", one_line(e)))
            ),
        );
    }
    without_controls(&out)
}

/// A rule's page as Markdown.
pub fn markdown(entry: &Entry) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!("# {}", md_text(&entry.title)));
    line(String::new());
    line("| | |".into());
    line("|---|---|".into());
    for (key, value) in header(entry) {
        line(format!("| {key} | {} |", md_cell(&value)));
    }
    if let Some(description) = &entry.description {
        line(String::new());
        line("## Description".into());
        line(String::new());
        line(md_text(description.trim()));
    }
    if let Some(runbook) = &entry.runbook {
        line(String::new());
        line("## Runbook".into());
        line(String::new());
        line(md_text(runbook.trim()));
    }
    line(String::new());
    line("## ATT&CK coverage".into());
    line(String::new());
    if entry.attack.is_empty() {
        line("None named.".into());
    } else {
        line("| tactic | techniques |".into());
        line("|---|---|".into());
        for row in &entry.attack {
            let techniques: Vec<String> = row
                .techniques
                .iter()
                .map(|(id, name)| format!("{id} {name}"))
                .collect();
            line(format!(
                "| {} {} | {} |",
                or_dash(&row.id),
                md_cell(&row.name),
                md_cell(&techniques.join("; "))
            ));
        }
    }
    line(String::new());
    line("## Detection logic".into());
    line(String::new());
    line(format!(
        "{}: {}",
        entry.logic.mode,
        md_text(&entry.logic.note)
    ));
    line(String::new());
    line("```text".into());
    for conjunct in &entry.logic.conjuncts {
        line(conjunct.replace("```", "` ` `"));
    }
    line("```".into());
    if let Some(corr) = &entry.correlation {
        line(String::new());
        line("## Correlation".into());
        line(String::new());
        line("| | |".into());
        line("|---|---|".into());
        for (reference, id, title) in &corr.rules {
            let target = match id {
                Some(id) => format!("{id} ({})", title),
                None => format!("{reference} (not loaded)"),
            };
            line(format!("| base rule | {} |", md_cell(&target)));
        }
        line(format!(
            "| group by | {} |",
            md_cell(&list_or_none(&corr.group_by))
        ));
        line(format!("| window | {} |", md_cell(&corr.window)));
        line(format!("| condition | {} |", md_cell(&corr.condition)));
        line(format!("| generate | {} |", corr.generate));
    }
    line(String::new());
    line("## Exclusions".into());
    line(String::new());
    if entry.exclusions.is_empty() {
        line("None.".into());
    } else {
        line("| field | kind | excluded values |".into());
        line("|---|---|---|".into());
        for row in &entry.exclusions {
            line(format!(
                "| {} | {} | {} |",
                md_cell(&row.field),
                md_cell(&row.kind),
                md_cell(&row.values.join(", "))
            ));
        }
    }
    line(String::new());
    line("## Indicators".into());
    line(String::new());
    if entry.indicators.is_empty() {
        line("None.".into());
    } else {
        line("| field | operator | value | other rules |".into());
        line("|---|---|---|---|".into());
        for indicator in &entry.indicators {
            line(format!(
                "| {} | {} | {} | {} |",
                md_cell(&indicator.indicator.field),
                indicator.indicator.op,
                md_cell(&indicator.indicator.value),
                indicator.others
            ));
        }
    }
    line(String::new());
    line("## Rules detecting the same action".into());
    line(String::new());
    if entry.same_action.is_empty() {
        line("None.".into());
    } else {
        line("| action | rule | format | severity | title |".into());
        line("|---|---|---|---|---|".into());
        for same in &entry.same_action {
            line(format!(
                "| {} | {} | {} | {} | {} |",
                md_cell(&same.action),
                md_cell(&same.id),
                same.format,
                same.severity,
                md_cell(&same.title)
            ));
        }
    }
    line(String::new());
    line("## Output fields".into());
    line(String::new());
    line(md_text(&list_or_none(&entry.output_fields)));
    line(String::new());
    line(format!(
        "Fields read: {}",
        md_text(&list_or_none(&entry.fields_read))
    ));
    line(String::new());
    line("## Tests".into());
    line(String::new());
    line(format!("{}.", tests_summary(entry)));
    if !entry.tests.is_empty() {
        line(String::new());
        line("| test | expected | actual | result |".into());
        line("|---|---|---|---|".into());
        for test in &entry.tests {
            let actual = test.actual.map_or("error".to_string(), |a| a.to_string());
            let result = match (&test.error, test.passed) {
                (_, true) => "pass".to_string(),
                (Some(error), false) => format!("fail: {error}"),
                (None, false) => "fail".to_string(),
            };
            line(format!(
                "| {} | {} | {} | {} |",
                md_cell(&test.name),
                test.expected,
                actual,
                md_cell(&result)
            ));
        }
    }
    without_controls(&out)
}

/// The header rows shared by every renderer: (label, value).
pub fn header(entry: &Entry) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("id", entry.id.clone()),
        ("format", entry.format.to_string()),
        ("type", entry.kind.to_string()),
        ("file", entry.source.clone()),
        ("severity", entry.severity.to_string()),
        ("log types", list_or_none(&entry.log_types)),
        ("compliance", list_or_none(&entry.compliance)),
        ("references", list_or_none(&entry.references)),
    ];
    if let Some(name) = &entry.name {
        rows.insert(1, ("name", name.clone()));
    }
    if !entry.tags.is_empty() {
        rows.push(("tags", entry.tags.join(", ")));
    }
    for status in &entry.status {
        rows.push(("status", status.clone()));
    }
    if !entry.used_by.is_empty() {
        rows.push(("used by", entry.used_by.join(", ")));
    }
    rows
}

pub fn tests_summary(entry: &Entry) -> String {
    if entry.tests.is_empty() {
        return "the rule carries no tests".to_string();
    }
    let passed = entry.tests.iter().filter(|t| t.passed).count();
    format!("{passed} of {} passed", entry.tests.len())
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// Rule text is untrusted: control characters other than newline and tab (an escape sequence
/// that would drive the terminal) are shown as U+FFFD.
fn without_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r', '\t'], " ")
}

/// Rule text in Markdown prose: HTML-significant characters escaped, so a renderer that
/// allows inline HTML shows the rule's text instead of running it.
fn md_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Rule text in a Markdown table cell: on one line, pipes escaped.
fn md_cell(text: &str) -> String {
    md_text(&one_line(text)).replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_escapes_are_neutralized() {
        assert_eq!(
            super::without_controls("a\u{1b}[31mred\tb\nc"),
            "a\u{fffd}[31mred\tb\nc"
        );
    }
}
