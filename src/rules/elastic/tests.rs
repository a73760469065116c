use super::*;
use crate::rules::{LoadOptions, Loader};

fn load(name: &str, text: &str) -> crate::rules::Loaded {
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_source(name, text);
    loader.finish()
}

const HEADER: &str = "[metadata]\ncreation_date = \"2026/11/24\"\n\n[rule]\n";

fn rule(body: &str) -> String {
    format!(
        "{HEADER}rule_id = \"r1\"\nname = \"Rule one\"\ndescription = \"d\"\nseverity = \"high\"\n\
         risk_score = 73\nindex = [\"logs-aws.cloudtrail-*\"]\n{body}"
    )
}

#[test]
fn metadata_and_attack_ids() {
    let text = rule(
        "type = \"query\"\nlanguage = \"kuery\"\nquery = 'event.action: CreateUser'\n\
         references = [\"https://example.com\"]\ntags = [\"Domain: Cloud\"]\n\
         [[rule.threat]]\nframework = \"MITRE ATT&CK\"\n\
         [[rule.threat.technique]]\nid = \"T1136\"\n\
         [[rule.threat.technique.subtechnique]]\nid = \"T1136.003\"\n\
         [rule.threat.tactic]\nid = \"TA0003\"\n\
         [[rule.threat]]\nframework = \"MITRE ATT&CK\"\n[rule.threat.tactic]\nid = \"TA0004\"\n",
    );
    let loaded = load("r.toml", &text);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let meta = &loaded.set.rules[0].meta;
    assert_eq!(meta.id, "r1");
    assert_eq!(meta.title, "Rule one");
    assert_eq!(meta.format, Format::Elastic);
    assert_eq!(meta.severity, Severity::High);
    assert_eq!(meta.attack.tactics, vec!["TA0003", "TA0004"]);
    assert_eq!(meta.attack.techniques, vec!["T1136", "T1136.003"]);
    assert_eq!(meta.references, vec!["https://example.com"]);
    assert!(meta.tags.contains(&"elastic.risk_score.73".to_string()));
    assert_eq!(meta.source.line, Some(5));
    assert_eq!(
        loaded.set.rules[0].logsource,
        LogSource::new(Some("aws"), Some("cloudtrail"), None)
    );
    // Field paths are ECS paths.
    match &loaded.set.rules[0].expr {
        Expr::Field { path, .. } => assert!(path.derive.is_some()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn threshold_lowering() {
    let text = rule(
        "type = \"threshold\"\nlanguage = \"kuery\"\nfrom = \"now-9m\"\nquery = 'event.action: X'\n\
         [rule.threshold]\nfield = [\"user.id\"]\nvalue = 25\n",
    );
    let loaded = load("t.toml", &text);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.set.rules[0].meta.id, "r1:query");
    let corr = &loaded.set.correlations[0];
    assert_eq!(corr.meta.id, "r1");
    assert_eq!(corr.kind, CorrelationKind::EventCount);
    assert_eq!(corr.group_by, vec!["user.id"]);
    assert_eq!(corr.timespan_ms, 9 * 60_000);
    assert_eq!(corr.condition.comparisons, vec![(CmpOp::Gte, 25.0)]);
    assert!(!corr.generate);
    // A count above one together with a cardinality cannot be one window condition.
    let both = rule(
        "type = \"threshold\"\nquery = 'a: b'\n[rule.threshold]\nfield = []\nvalue = 5\n\
         [[rule.threshold.cardinality]]\nfield = \"x\"\nvalue = 3\n",
    );
    let loaded = load("b.toml", &both);
    assert_eq!(loaded.diagnostics[0].code, Code::Unsupported);
    assert!(loaded.diagnostics[0].message.contains("cardinality"));
    assert!(loaded.set.rules.is_empty() && loaded.set.correlations.is_empty());
}

#[test]
fn new_terms_lowering() {
    let text = rule(
        "type = \"new_terms\"\nlanguage = \"kuery\"\nquery = 'event.action: X'\n\
         [rule.new_terms]\nfield = \"new_terms_fields\"\nvalue = [\"cloud.account.id\", \"user.name\"]\n\
         [[rule.new_terms.history_window_start]]\nfield = \"history_window_start\"\nvalue = \"now-10d\"\n",
    );
    let loaded = load("n.toml", &text);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let corr = &loaded.set.correlations[0];
    assert_eq!(corr.kind, CorrelationKind::NewTerms);
    assert_eq!(corr.group_by, vec!["cloud.account.id", "user.name"]);
    assert_eq!(corr.timespan_ms, 10 * 86_400_000);
}

#[test]
fn unsupported_and_broken_rules_say_where_and_why() {
    let ml = rule("type = \"machine_learning\"\nmachine_learning_job_id = [\"j\"]\n");
    let loaded = load("ml.toml", &ml);
    assert_eq!(loaded.diagnostics.len(), 1);
    let rendered = loaded.diagnostics[0].to_string();
    assert!(
        rendered.starts_with("ml.toml:5: error[unsupported] rule r1:"),
        "{rendered}"
    );
    assert!(rendered.contains("machine_learning"));

    let lucene = rule("type = \"query\"\nlanguage = \"lucene\"\nquery = 'a:b'\n");
    assert!(
        load("l.toml", &lucene).diagnostics[0]
            .message
            .contains("lucene")
    );

    // The line of a query error is the line inside the query.
    let bad = rule(
        "type = \"eql\"\nlanguage = \"eql\"\nquery = '''\nany where a == 1\n  and length(b) > 2\n'''\n",
    );
    let loaded = load("e.toml", &bad);
    let rendered = loaded.diagnostics[0].to_string();
    assert!(
        rendered.starts_with("e.toml:15: error[unsupported] rule r1:"),
        "{rendered}"
    );
    assert!(rendered.contains("length"), "{rendered}");

    let syntax = load("s.toml", "[rule\nname = 1");
    assert_eq!(syntax.diagnostics[0].code, Code::Syntax);
    assert_eq!(syntax.diagnostics[0].source.line, Some(1));

    let missing = load("m.toml", "[rule]\nname = \"x\"\n");
    assert_eq!(missing.diagnostics[0].code, Code::Schema);
    assert!(missing.diagnostics[0].message.contains("rule_id"));
}

#[test]
fn hunting_queries() {
    let text = "[hunt]\nuuid = \"h1\"\nname = \"Hunt\"\nlanguage = [\"ES|QL\"]\n\
                mitre = [\"T1098.003\", \"TA0003\"]\nquery = [\n'''\nfrom logs-aws.cloudtrail-*\n\
                | where event.action == \"CreateUser\"\n''',\n'''\nfrom logs-aws.cloudtrail-*\n\
                | stats c = count(*) by user.name\n| where c >= 3\n'''\n]\n";
    let loaded = load("h.toml", text);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let ids: Vec<&str> = loaded
        .set
        .rules
        .iter()
        .map(|r| r.meta.id.as_str())
        .collect();
    assert_eq!(ids, vec!["h1:1", "h1:2:query"]);
    assert_eq!(loaded.set.correlations[0].meta.id, "h1:2");
    assert_eq!(loaded.set.correlations[0].timespan_ms, 6 * 60_000);
    assert_eq!(
        loaded.set.rules[0].meta.attack.techniques,
        vec!["T1098.003"]
    );
    assert_eq!(loaded.set.rules[0].meta.attack.tactics, vec!["TA0003"]);
}

#[test]
fn durations() {
    assert_eq!(parse_now_minus("now-6m").map(|l| l.ms), Some(360_000));
    assert_eq!(parse_now_minus("now-2h").map(|l| l.ms), Some(7_200_000));
    assert_eq!(parse_now_minus("now-5d").map(|l| l.ms), Some(432_000_000));
    assert_eq!(parse_now_minus("6m"), None);
    assert_eq!(parse_now_minus("now-6y"), None);
    assert_eq!(parse_now_minus("now-0h"), None, "a zero window is refused");
    assert_eq!(parse_duration("0s").map(|l| l.ms), None);
    assert_eq!(parse_duration("30s").map(|l| l.ms), Some(30_000));
}

#[test]
fn patterns_pick_the_cheapest_test() {
    let kind = |text: &str| Pattern::wildcard(text).str_match(true).kind;
    assert_eq!(kind("abc"), StrKind::Exact);
    assert_eq!(kind("abc*"), StrKind::Prefix);
    assert_eq!(kind("*abc"), StrKind::Suffix);
    assert_eq!(kind("*abc*"), StrKind::Contains);
    assert_eq!(kind("a*c"), StrKind::Glob);
    assert_eq!(kind("a?c"), StrKind::Glob);
    assert_eq!(kind("a\\*c"), StrKind::Exact);
    let glob = Pattern::wildcard("*a.b*c").str_match(true);
    let regex = glob.glob.unwrap();
    assert!(regex.is_match("xxa.bYYc"));
    assert!(!regex.is_match("xxaXbYYc"));
}

/// No input makes a parser panic: mutations of real queries, with non-ASCII bytes spliced in.
#[test]
fn parsers_never_panic() {
    let seeds = [
        "event.action: (CreateUser or \"Attach*\") and not user.id: *\\:i-* and port >= 22",
        "sequence by k with maxspan=15m [any where a : \"x*\"] [iam where stringContains~(b, c)] until [any where d in (\"1\", 2)]",
        "from logs-aws.cloudtrail-* | where @timestamp > now() - 7 day | where a rlike \"\"\".*x.*\"\"\" and not b is null | stats n = count_distinct(c) by d | where n >= 2",
    ];
    let pieces = [
        "é", "\"", "(", ")", "|", "\\", "*", " ", "[", "]", "~", "?\"", "\"\"\"", ":", "ß", "{",
        "}",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for seed in seeds {
        for _ in 0..400 {
            let mut text: Vec<char> = seed.chars().collect();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % (text.len() + 1);
                match next() % 3 {
                    0 if at < text.len() => {
                        text.remove(at);
                    }
                    1 => text.truncate(at),
                    _ => {
                        let piece = pieces[(next() as usize) % pieces.len()];
                        for (n, c) in piece.chars().enumerate() {
                            text.insert((at + n).min(text.len()), c);
                        }
                    }
                }
            }
            let text: String = text.into_iter().collect();
            let _ = kql::lower(&text);
            let _ = eql::lower(&text, "event.category");
            let _ = esql::lower(&text);
        }
    }
}

#[test]
fn esql_output_columns_are_the_output_fields() {
    assert_eq!(
        esql_output_columns(
            "from logs-aws.cloudtrail-* | where a == \"x\" | keep @timestamp, user.name ,event.action"
        ),
        ["@timestamp", "user.name", "event.action"]
    );
    assert_eq!(
        esql_output_columns("from x | keep a | stats c = count(*) by b | KEEP b, c"),
        ["b", "c"]
    );
    assert_eq!(
        esql_output_columns(
            "from x | stats n = count_distinct(event.action), values(source.ip) by user.name, w = bucket(@timestamp, 1 hour) | where n > 5"
        ),
        ["n", "values(source.ip)", "user.name", "w"]
    );
    assert!(esql_output_columns("from x | where a == 1").is_empty());
}
