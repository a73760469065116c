//! Correlator tests. Rules are built directly (`Expr::Const(true)`); correlations go through
//! the Sigma lowering, which keeps them short and checks the two agree.

use serde_json::{Value, json};

use super::*;
use crate::ir::{Attack, Expr, Format, LogSource, Meta, Rule, Severity, SourceLoc};
use crate::rules::sigma::correlation::lower;
use crate::rules::yaml::parse_documents;

const S: i64 = 1_000;

fn meta(id: &str, name: Option<&str>) -> Meta {
    Meta {
        id: id.to_string(),
        name: name.map(str::to_string),
        title: id.to_string(),
        format: Format::Sigma,
        severity: Severity::Medium,
        tags: Vec::new(),
        attack: Attack::default(),
        description: None,
        references: Vec::new(),
        fields: Vec::new(),
        doc: Default::default(),
        source: SourceLoc {
            path: "test.yml".to_string(),
            line: None,
        },
    }
}

fn rule(id: &str, name: Option<&str>) -> Rule {
    Rule {
        meta: meta(id, name),
        logsource: LogSource::default(),
        expr: Expr::Const(true),
        extra: crate::ir::RuleExtra::default(),
    }
}

/// Lowers every document of `yaml` as a correlation.
fn correlations(yaml: &str) -> Vec<Correlation> {
    parse_documents(yaml)
        .unwrap()
        .iter()
        .map(|doc| lower("test.yml", doc).unwrap())
        .collect()
}

fn set(rules: Vec<Rule>, yaml: &str) -> RuleSet {
    RuleSet {
        rules,
        correlations: correlations(yaml),
    }
}

fn correlator(rules: Vec<Rule>, yaml: &str) -> Correlator {
    correlator_with(rules, yaml, Limits::default())
}

fn correlator_with(rules: Vec<Rule>, yaml: &str, limits: Limits) -> Correlator {
    let (correlator, diagnostics) = Correlator::new(&set(rules, yaml), limits);
    let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    correlator
}

fn observe(
    c: &mut Correlator,
    event: &Value,
    time_ms: i64,
    rules: &[usize],
) -> Vec<CorrelationHit> {
    let mut out = Vec::new();
    c.observe(&Event::new(event), time_ms, rules, &mut out);
    out
}

fn group(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A deterministic permutation (xorshift Fisher-Yates) so shuffles are reproducible.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

const EVENT_COUNT: &str = "
id: brute
correlation:
  type: event_count
  rules: [failed]
  group-by: [user]
  timespan: 10s
  condition:
    gte: 3
";

#[test]
fn event_count_fires_once_then_resets() {
    let mut c = correlator(vec![rule("failed", None)], EVENT_COUNT);
    let alice = json!({"user": "alice"});
    assert!(observe(&mut c, &alice, S, &[0]).is_empty());
    assert!(observe(&mut c, &alice, 2 * S, &[0]).is_empty());
    let hits = observe(&mut c, &alice, 3 * S, &[0]);
    assert_eq!(
        hits,
        vec![CorrelationHit {
            correlation: 0,
            group: group(&[("user", "alice")]),
            value: 3.0,
            first_seen_ms: S,
        }]
    );
    // Reset: the next alert needs three new events.
    assert!(observe(&mut c, &alice, 4 * S, &[0]).is_empty());
    assert!(observe(&mut c, &alice, 5 * S, &[0]).is_empty());
    let hits = observe(&mut c, &alice, 6 * S, &[0]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].first_seen_ms, 4 * S);
    // Unmatched events and unrelated rules do nothing.
    assert!(observe(&mut c, &alice, 7 * S, &[]).is_empty());
    assert!(observe(&mut c, &alice, 7 * S, &[5]).is_empty());
}

#[test]
fn groups_are_separate_and_missing_field_is_its_own_group() {
    let mut c = correlator(vec![rule("failed", None)], EVENT_COUNT);
    let alice = json!({"user": "alice"});
    let bob = json!({"user": "bob"});
    let anonymous = json!({"other": 1});
    let null = json!({"user": null});
    let empty = json!({"user": ""});
    for t in 1..=2 {
        for event in [&alice, &bob, &anonymous, &empty] {
            assert!(observe(&mut c, event, t * S, &[0]).is_empty());
        }
    }
    // A JSON null is missing too: it completes the anonymous group, not the empty one.
    let hits = observe(&mut c, &null, 3 * S, &[0]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].group, group(&[("user", "")]));
    assert_eq!(c.stats().live_groups, 3);
    assert_eq!(observe(&mut c, &empty, 3 * S, &[0]).len(), 1);
    assert_eq!(
        observe(&mut c, &bob, 3 * S, &[0])[0].group,
        group(&[("user", "bob")])
    );
}

#[test]
fn no_group_by_is_one_global_group_and_numbers_group_as_text() {
    let yaml = "
id: any
correlation:
  type: event_count
  rules: [r]
  timespan: 1m
  condition: {gte: 2}
---
id: by-port
correlation:
  type: event_count
  rules: [r]
  group-by: port
  timespan: 1m
  condition: {gte: 2}
";
    let mut c = correlator(vec![rule("r", None)], yaml);
    assert!(observe(&mut c, &json!({"port": 22}), S, &[0]).is_empty());
    let hits = observe(&mut c, &json!({"port": 22}), 2 * S, &[0]);
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].group, group(&[]));
    assert_eq!(hits[1].group, group(&[("port", "22")]));
}

#[test]
fn event_matched_by_two_referenced_rules_counts_twice() {
    let yaml = "
id: c
correlation:
  type: event_count
  rules: [a, b]
  group-by: [user]
  timespan: 1m
  condition: {gte: 2}
";
    let mut c = correlator(vec![rule("a", None), rule("b", None)], yaml);
    let hits = observe(&mut c, &json!({"user": "u"}), S, &[0, 1]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].value, 2.0);
    // The same rule listed twice by the caller still counts once.
    assert!(observe(&mut c, &json!({"user": "v"}), S, &[0, 0]).is_empty());
}

#[test]
fn window_expiry_and_late_events() {
    let mut c = correlator(vec![rule("failed", None)], EVENT_COUNT);
    let alice = json!({"user": "alice"});
    // 1s, 6s, 11.5s: no 10 s window holds all three.
    assert!(observe(&mut c, &alice, S, &[0]).is_empty());
    assert!(observe(&mut c, &alice, 6 * S, &[0]).is_empty());
    assert!(observe(&mut c, &alice, 11_500, &[0]).is_empty());
    // The window is (t - 10s, t]: an event exactly 10 s older is out.
    assert!(observe(&mut c, &alice, 16 * S, &[0]).is_empty());
    assert_eq!(c.stats().late_events, 0);
    // Behind the horizon (16s - 10s): too late, counted, ignored.
    assert!(observe(&mut c, &alice, 5 * S, &[0]).is_empty());
    assert_eq!(c.stats().late_events, 1);
    // Not too late: its own window (-3s, 7s] holds 1s and 6s, as it would have in order.
    let hits = observe(&mut c, &alice, 7 * S, &[0]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].first_seen_ms, S);
}

#[test]
fn value_count_counts_distinct_values_and_skips_missing() {
    let yaml = "
id: spray
correlation:
  type: value_count
  rules: [failed]
  group-by: [ip]
  timespan: 1h
  condition:
    field: user
    gte: 3
";
    let mut c = correlator(vec![rule("failed", None)], yaml);
    let ev = |user: Value| json!({"ip": "10.0.0.1", "user": user});
    assert!(observe(&mut c, &ev(json!("a")), S, &[0]).is_empty());
    assert!(observe(&mut c, &ev(json!("a")), 2 * S, &[0]).is_empty());
    assert!(observe(&mut c, &json!({"ip": "10.0.0.1"}), 3 * S, &[0]).is_empty());
    assert!(observe(&mut c, &ev(json!("b")), 4 * S, &[0]).is_empty());
    let hits = observe(&mut c, &ev(json!(7)), 5 * S, &[0]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].value, 3.0);
    assert_eq!(hits[0].group, group(&[("ip", "10.0.0.1")]));
}

#[test]
fn value_sum_avg_percentile_and_ranges() {
    let yaml = "
id: sum
correlation:
  type: value_sum
  rules: [r]
  group-by: [user]
  timespan: 1h
  condition: {field: bytes, gt: 1000}
---
id: avg
correlation:
  type: value_avg
  rules: [r]
  group-by: [user]
  timespan: 1h
  condition: {field: bytes, gt: 300, lte: 400}
---
id: p90
correlation:
  type: value_percentile
  rules: [r]
  group-by: [user]
  timespan: 1h
  condition: {field: bytes, percentile: 90, gte: 900}
";
    let mut c = correlator(vec![rule("r", None)], yaml);
    let ev = |bytes: Value| json!({"user": "u", "bytes": bytes});
    // Non-numeric values are ignored by every value type.
    assert!(observe(&mut c, &ev(json!("lots")), S, &[0]).is_empty());
    // avg 100: nothing.
    assert!(observe(&mut c, &ev(json!(100)), 2 * S, &[0]).is_empty());
    // values 100, 500 (as a string): sum 600, avg 300 (not > 300), p90 460.
    assert!(observe(&mut c, &ev(json!("500")), 3 * S, &[0]).is_empty());
    // values 100, 500, 450: sum 1050 fires; avg 350 in (300, 400] fires; p90 490.
    let hits = observe(&mut c, &ev(json!(450)), 4 * S, &[0]);
    let fired: Vec<(usize, f64)> = hits.iter().map(|h| (h.correlation, h.value)).collect();
    assert_eq!(fired, vec![(0, 1050.0), (1, 350.0)]);
    // p90 group still holds 100, 500, 450; add 1000 → p90 = 850; then 2000 → 1600.
    let hits = observe(&mut c, &ev(json!(1000)), 5 * S, &[0]);
    assert!(hits.iter().all(|h| h.correlation != 2), "{hits:?}");
    // sum group restarted with 1000 (not > 1000); avg group restarted with 1000 (> 400).
    assert!(hits.is_empty(), "{hits:?}");
    let hits = observe(&mut c, &ev(json!(2000)), 6 * S, &[0]);
    let fired: Vec<(usize, f64)> = hits.iter().map(|h| (h.correlation, h.value)).collect();
    assert_eq!(fired, vec![(0, 3000.0), (2, 1600.0)]);
}

const TEMPORAL: &str = "
id: recon
correlation:
  type: temporal
  rules: [a, b, c]
  group-by: [host]
  timespan: 5m
---
id: recon-ordered
correlation:
  type: temporal_ordered
  rules: [a, b, c]
  group-by: [host]
  timespan: 5m
";

fn abc() -> Vec<Rule> {
    vec![rule("a", None), rule("b", None), rule("c", None)]
}

#[test]
fn temporal_needs_every_rule_in_any_order() {
    let mut c = correlator(abc(), TEMPORAL);
    let host = json!({"host": "h1"});
    assert!(observe(&mut c, &host, S, &[2]).is_empty());
    assert!(observe(&mut c, &host, 2 * S, &[2]).is_empty());
    assert!(observe(&mut c, &host, 3 * S, &[0]).is_empty());
    let hits = observe(&mut c, &host, 4 * S, &[1]);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].correlation, 0);
    assert_eq!(hits[0].value, 3.0);
    assert_eq!(hits[0].first_seen_ms, S);
}

#[test]
fn temporal_ordered_orders_by_event_time_not_arrival() {
    let mut c = correlator(abc(), TEMPORAL);
    let host = json!({"host": "h1"});
    // Arrival c, b, a; event times a=1s < b=2s < c=3s.
    assert!(observe(&mut c, &host, 3 * S, &[2]).is_empty());
    assert!(observe(&mut c, &host, 2 * S, &[1]).is_empty());
    let hits = observe(&mut c, &host, S, &[0]);
    let fired: Vec<usize> = hits.iter().map(|h| h.correlation).collect();
    assert_eq!(fired, vec![0, 1]);
    assert_eq!(hits[1].value, 3.0);
    assert_eq!(hits[1].first_seen_ms, S);

    // Arrival in list order but event times out of order: b happened before a.
    let other = json!({"host": "h2"});
    assert!(observe(&mut c, &other, 20 * S, &[0]).is_empty());
    assert!(observe(&mut c, &other, 10 * S, &[1]).is_empty());
    let hits = observe(&mut c, &other, 30 * S, &[2]);
    let fired: Vec<usize> = hits.iter().map(|h| h.correlation).collect();
    assert_eq!(fired, vec![0], "temporal fires, temporal_ordered does not");
    // A later b completes a -> b -> c? No: c must come after b. A later b then c does.
    assert!(observe(&mut c, &other, 40 * S, &[1]).is_empty());
    let hits = observe(&mut c, &other, 50 * S, &[2]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].correlation, 1);
    assert_eq!(hits[0].first_seen_ms, 10 * S);
}

#[test]
fn temporal_ordered_outside_timespan_does_not_fire() {
    let mut c = correlator(abc(), TEMPORAL);
    let host = json!({"host": "h"});
    assert!(observe(&mut c, &host, 0, &[0]).is_empty());
    assert!(observe(&mut c, &host, 200 * S, &[1]).is_empty());
    assert!(observe(&mut c, &host, 301 * S, &[2]).is_empty());
}

/// The hits as a sorted list of (correlation, group, value, first_seen): what must not
/// depend on arrival order.
type HitSummary = (usize, Vec<(String, String)>, i64, i64);

fn summary(hits: &[CorrelationHit]) -> Vec<HitSummary> {
    let mut out: Vec<_> = hits
        .iter()
        .map(|h| {
            (
                h.correlation,
                h.group.clone(),
                (h.value * 1000.0) as i64,
                h.first_seen_ms,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn shuffled_arrival_within_the_window_gives_the_same_hits() {
    let yaml = "
id: count
correlation:
  type: event_count
  rules: [x]
  group-by: [user]
  timespan: 10m
  condition: {gte: 5}
---
id: distinct
correlation:
  type: value_count
  rules: [x]
  group-by: [user]
  timespan: 10m
  condition: {field: ip, gte: 5}
---
id: total
correlation:
  type: value_sum
  rules: [x]
  group-by: [user]
  timespan: 10m
  condition: {field: n, gte: 15}
---
id: ordered
correlation:
  type: temporal_ordered
  rules: [a, b, c]
  group-by: [user]
  timespan: 10m
";
    // Per user: five `x` (ips 0..4, n 1..5) at 0..4 min, and a, b, c at 1, 5 and 6 min,
    // arriving in any order. Each condition needs all of its events, so it is met exactly
    // once per user whatever the order, by the last of them to arrive.
    let mut events: Vec<(Value, i64, usize)> = Vec::new();
    for user in ["alice", "bob", "carol"] {
        for i in 0..5_i64 {
            let event = json!({"user": user, "ip": format!("10.0.0.{i}"), "n": i + 1});
            events.push((event, i * 60 * S, 3));
        }
        events.push((json!({"user": user}), 60 * S, 0));
        events.push((json!({"user": user}), 5 * 60 * S, 1));
        events.push((json!({"user": user}), 6 * 60 * S, 2));
    }
    let run = |events: &[(Value, i64, usize)]| {
        let mut rules = abc();
        rules.push(rule("x", None));
        let mut c = correlator(rules, yaml);
        let mut hits = Vec::new();
        for (event, time, rule) in events {
            hits.extend(observe(&mut c, event, *time, &[*rule]));
        }
        summary(&hits)
    };
    let in_order = run(&events);
    assert_eq!(in_order.len(), 12, "{in_order:?}");
    for (corr, _, value, first_seen) in &in_order {
        let expected = match corr {
            0 => (5_000, 0),
            1 => (5_000, 0),
            2 => (15_000, 0),
            _ => (3_000, 60 * S),
        };
        assert_eq!((*value, *first_seen), expected, "correlation {corr}");
    }
    for seed in 1..=50 {
        let mut shuffled = events.clone();
        shuffle(&mut shuffled, seed);
        assert_eq!(run(&shuffled), in_order, "seed {seed}");
    }
}

#[test]
fn aliases_read_a_different_field_per_rule() {
    let text = "
name: internal_error
---
name: new_network_connection
---
title: Aliases example (spec)
correlation:
  type: temporal
  rules: [internal_error, new_network_connection]
  group-by: [internal_ip, remote_ip]
  timespan: 10s
  aliases:
    internal_ip:
      internal_error: destination.ip
      new_network_connection: source.ip
    remote_ip:
      internal_error: source.ip
      new_network_connection: destination.ip
";
    let docs = parse_documents(text).unwrap();
    let set = RuleSet {
        rules: vec![
            rule("r-err", Some("internal_error")),
            rule("r-conn", Some("new_network_connection")),
        ],
        correlations: vec![lower("spec.yml", &docs[2]).unwrap()],
    };
    let (mut c, diagnostics) = Correlator::new(&set, Limits::default());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert_eq!(c.referenced_ids(0), ["r-err", "r-conn"]);
    let error = json!({"source": {"ip": "203.0.113.9"}, "destination": {"ip": "10.0.0.5"}});
    let other = json!({"source": {"ip": "10.0.0.6"}, "destination": {"ip": "203.0.113.9"}});
    let reply = json!({"source": {"ip": "10.0.0.5"}, "destination": {"ip": "203.0.113.9"}});
    assert!(observe(&mut c, &error, S, &[0]).is_empty());
    assert!(observe(&mut c, &other, 2 * S, &[1]).is_empty());
    let hits = observe(&mut c, &reply, 3 * S, &[1]);
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].group,
        group(&[("internal_ip", "10.0.0.5"), ("remote_ip", "203.0.113.9")])
    );
}

#[test]
fn alias_without_mapping_for_a_rule_warns_and_reads_the_alias_name() {
    let yaml = "
id: c
correlation:
  type: temporal
  rules: [a, b]
  group-by: [ip]
  timespan: 10s
  aliases:
    ip:
      a: src
";
    let (mut c, diagnostics) = Correlator::new(
        &set(vec![rule("a", None), rule("b", None)], yaml),
        Limits::default(),
    );
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert!(!diagnostics[0].is_error());
    assert!(observe(&mut c, &json!({"src": "x"}), S, &[0]).is_empty());
    assert_eq!(observe(&mut c, &json!({"ip": "x"}), S, &[1]).len(), 1);
}

/// The spec's chained example: ten failed logins (a correlation), then a success.
const CHAIN: &str = "
title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
correlation:
  type: temporal_ordered
  rules:
    - multiple_failed_login
    - successful_login
  group-by:
    - User
  timespan: 10m
level: high
---
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
name: multiple_failed_login
correlation:
  type: event_count
  rules:
    - failed_login
  group-by:
    - User
  timespan: 10m
  condition:
    gte: 10
";

fn login_rules() -> Vec<Rule> {
    vec![
        rule("53ba33fd", Some("failed_login")),
        rule("4d0a2c83", Some("successful_login")),
    ]
}

#[test]
fn chains_feed_correlation_hits_forward_on_the_same_event() {
    let mut c = correlator(login_rules(), CHAIN);
    assert_eq!(
        c.referenced_ids(0),
        ["a8418a5a-5fc4-46b5-b23b-6c73beb19d41", "4d0a2c83"]
    );
    assert_eq!(c.referenced_ids(1), ["53ba33fd"]);
    assert_eq!(c.referenced_ids(9), [] as [String; 0]);
    let user = json!({"User": "admin"});
    // A success before the failures does not count (order by event time).
    assert!(observe(&mut c, &user, 0, &[1]).is_empty());
    for i in 1..10 {
        assert!(observe(&mut c, &user, i * S, &[0]).is_empty());
    }
    let hits = observe(&mut c, &user, 10 * S, &[0]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].correlation, 1);
    assert_eq!(hits[0].first_seen_ms, S);
    let hits = observe(&mut c, &user, 20 * S, &[1]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].correlation, 0);
    assert_eq!(hits[0].value, 2.0);
    // The oldest event in the window that fired is the early success, still within 10 min.
    assert_eq!(hits[0].first_seen_ms, 0);
    assert_eq!(hits[0].group, group(&[("User", "admin")]));
}

#[test]
fn chain_completing_on_one_event_fires_both_in_dependency_order() {
    // The outer correlation is listed first in the file; the inner must still run first.
    let yaml = "
id: outer
correlation:
  type: event_count
  rules: [inner]
  timespan: 1m
  condition: {gte: 1}
---
id: inner
correlation:
  type: event_count
  rules: [r]
  timespan: 1m
  condition: {gte: 2}
";
    let mut c = correlator(vec![rule("r", None)], yaml);
    assert!(observe(&mut c, &json!({}), S, &[0]).is_empty());
    let hits = observe(&mut c, &json!({}), 2 * S, &[0]);
    let fired: Vec<usize> = hits.iter().map(|h| h.correlation).collect();
    assert_eq!(fired, vec![1, 0]);
}

#[test]
fn generate_decides_which_rules_are_silenced() {
    let mut rules = login_rules();
    rules.push(rule("other", None));
    rules.push(rule("shared", None));
    let yaml = format!(
        "{CHAIN}
---
id: loud
correlation:
  type: event_count
  rules: [shared]
  timespan: 1m
  condition: {{gte: 2}}
  generate: true
---
id: quiet
correlation:
  type: event_count
  rules: [shared]
  timespan: 1m
  condition: {{gte: 2}}
"
    );
    let c = correlator(rules, &yaml);
    // failed_login and successful_login only feed generate:false correlations; `shared` is
    // also referenced by a generate:true one; `other` is not referenced at all.
    assert_eq!(c.silenced_rules(), vec![0, 1]);
    // The inner event_count is only referenced by the generate:false temporal_ordered.
    assert_eq!(c.silenced_correlations(), vec![1]);
    assert!(!c.correlation_alerts(1));
    assert!(c.correlation_alerts(0));
}

#[test]
fn unknown_references_and_cycles_drop_correlations() {
    let yaml = "
id: good
correlation:
  type: event_count
  rules: [r]
  timespan: 1m
  condition: {gte: 2}
---
id: unknown
correlation:
  type: event_count
  rules: [r, nowhere]
  timespan: 1m
  condition: {gte: 2}
---
id: on-unknown
correlation:
  type: event_count
  rules: [unknown]
  timespan: 1m
  condition: {gte: 2}
---
id: ping
correlation:
  type: temporal
  rules: [pong, r]
  timespan: 1m
---
id: pong
correlation:
  type: temporal
  rules: [ping]
  timespan: 1m
---
id: self
correlation:
  type: temporal
  rules: [self]
  timespan: 1m
";
    let (mut c, diagnostics) =
        Correlator::new(&set(vec![rule("r", None)], yaml), Limits::default());
    let mut reported: Vec<(String, Code)> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| (d.rule.clone().unwrap_or_default(), d.code))
        .collect();
    reported.sort_by(|a, b| a.0.cmp(&b.0));
    let expected: Vec<(String, Code)> = ["on-unknown", "ping", "pong", "self", "unknown"]
        .iter()
        .map(|id| (id.to_string(), Code::UnknownReference))
        .collect();
    assert_eq!(reported, expected);
    assert!(diagnostics.iter().any(|d| d.message.contains("'nowhere'")));
    assert_eq!(c.correlations().len(), 1);
    assert_eq!(c.correlations()[0].meta.id, "good");
    assert!(!c.is_empty());
    assert!(observe(&mut c, &json!({}), S, &[0]).is_empty());
    assert_eq!(observe(&mut c, &json!({}), S, &[0]).len(), 1);
}

#[test]
fn conditions_that_cannot_work_in_a_stream_are_warned_about() {
    let yaml = "
id: low
correlation:
  type: event_count
  rules: [r]
  timespan: 1m
  condition: {lt: 5}
---
id: huge
correlation:
  type: event_count
  rules: [r]
  timespan: 1m
  condition: {gt: 10}
---
id: fine
correlation:
  type: value_avg
  rules: [r]
  timespan: 1m
  condition: {field: x, lt: 5}
";
    let limits = Limits {
        max_groups: 10,
        max_entries_per_group: 10,
        max_entries: 1_000_000,
    };
    let (mut c, diagnostics) = Correlator::new(&set(vec![rule("r", None)], yaml), limits);
    let warned: Vec<&str> = diagnostics
        .iter()
        .map(|d| {
            assert!(!d.is_error());
            d.rule.as_deref().unwrap_or_default()
        })
        .collect();
    assert_eq!(warned, vec!["low", "huge"]);
    // `lt` is evaluated on arrival: the first match fires (the documented restriction).
    let hits = observe(&mut c, &json!({"x": 1}), S, &[0]);
    let fired: Vec<usize> = hits.iter().map(|h| h.correlation).collect();
    assert_eq!(fired, vec![0, 2]);
}

#[test]
fn per_group_cap_drops_oldest_entries() {
    let limits = Limits {
        max_groups: 10,
        max_entries_per_group: 3,
        max_entries: 1_000_000,
    };
    let yaml = "
id: c
correlation:
  type: event_count
  rules: [r]
  timespan: 1h
  condition: {gte: 4}
";
    let (mut c, diagnostics) = Correlator::new(&set(vec![rule("r", None)], yaml), limits);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    for i in 0..10 {
        assert!(observe(&mut c, &json!({}), i * S, &[0]).is_empty());
    }
    assert_eq!(c.stats().dropped_entries, 7);
}

#[test]
fn a_million_distinct_keys_stay_within_the_bound() {
    let limits = Limits {
        max_groups: 1_000,
        max_entries_per_group: 4,
        max_entries: 1_000_000,
    };
    let yaml = "
id: c
correlation:
  type: event_count
  rules: [r]
  group-by: [k]
  timespan: 1h
  condition: {gte: 2}
";
    let mut c = correlator_with(vec![rule("r", None)], yaml, limits);
    let mut event = json!({"k": ""});
    let mut out = Vec::new();
    let n: u64 = 1_000_000;
    for i in 0..n {
        if let Some(Value::String(key)) = event.get_mut("k") {
            use std::fmt::Write;
            key.clear();
            let _ = write!(key, "{i}");
        }
        c.observe(&Event::new(&event), i as i64, &[0], &mut out);
        if i % 4096 == 0 {
            assert!(c.stats().live_groups <= 1_000);
        }
    }
    assert!(out.is_empty());
    let stats = c.stats();
    assert_eq!(stats.live_groups, 1_000);
    assert_eq!(stats.live_entries, 1_000);
    assert_eq!(stats.evicted_groups, n - 1_000);
}

#[test]
fn the_entry_budget_bounds_state_across_groups() {
    // Few groups allowed many entries each: the global entry budget is the binding bound.
    let limits = Limits {
        max_groups: 1_000,
        max_entries_per_group: 1_000,
        max_entries: 2_000,
    };
    let yaml = "
id: c
correlation:
  type: event_count
  rules: [r]
  group-by: [k]
  timespan: 1h
  condition: {gte: 100000}
";
    let (mut c, _) = Correlator::new(&set(vec![rule("r", None)], yaml), limits);
    let mut out = Vec::new();
    for i in 0..100_000_i64 {
        let event = json!({"k": (i % 50).to_string()});
        c.observe(&Event::new(&event), i, &[0], &mut out);
        assert!(c.stats().live_entries <= 2_000);
    }
    let stats = c.stats();
    assert!(stats.live_entries <= 2_000);
    assert!(stats.evicted_groups > 0);
}

#[test]
fn results_survive_eviction_of_unrelated_groups() {
    let limits = Limits {
        max_groups: 3,
        max_entries_per_group: 100,
        max_entries: 1_000_000,
    };
    let yaml = "
id: c
correlation:
  type: event_count
  rules: [r]
  group-by: [k]
  timespan: 1h
  condition: {gte: 5}
";
    let mut c = correlator_with(vec![rule("r", None)], yaml, limits);
    let hot = json!({"k": "hot"});
    let mut fired_at = None;
    for round in 0..5 {
        let t = round * 10 * S;
        // Two fresh keys per round: each evicts the least recently used, never `hot`.
        for j in 0..2 {
            let cold = json!({"k": format!("cold-{round}-{j}")});
            assert!(observe(&mut c, &cold, t + j + 1, &[0]).is_empty());
        }
        let hits = observe(&mut c, &hot, t + 5, &[0]);
        if !hits.is_empty() {
            assert_eq!(hits[0].value, 5.0);
            assert_eq!(hits[0].first_seen_ms, 5);
            fired_at = Some(round);
        }
    }
    assert_eq!(fired_at, Some(4));
    assert!(c.stats().evicted_groups >= 8, "{:?}", c.stats());
    assert!(c.stats().live_groups <= 3);
}

#[test]
fn long_group_values_keep_keys_small_and_groups_apart() {
    let mut c = correlator(
        vec![rule("r", None)],
        "id: c\ncorrelation:\n  type: event_count\n  rules: [r]\n  group-by: [u]\n  timespan: 1h\n  condition: {gte: 2}\n",
    );
    let long_a = format!("{}a", "x".repeat(10_000));
    let long_b = format!("{}b", "x".repeat(10_000));
    // Same 10 kB prefix, different values: two groups, neither at 2 yet.
    assert!(observe(&mut c, &json!({"u": long_a}), S, &[0]).is_empty());
    assert!(observe(&mut c, &json!({"u": long_b}), 2 * S, &[0]).is_empty());
    assert!(c.key.len() < 200, "state key of {} bytes", c.key.len());
    // The second event with the same long value fires, and the hit shows the full value.
    let hits = observe(&mut c, &json!({"u": long_a}), 3 * S, &[0]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].group, group(&[("u", &long_a)]));
}

#[test]
fn value_count_counts_distinct_long_values() {
    let mut c = correlator(
        vec![rule("r", None)],
        "id: c\ncorrelation:\n  type: value_count\n  rules: [r]\n  timespan: 1h\n  condition: {gte: 3, field: v}\n",
    );
    let value = |tail: &str| format!("{}{tail}", "y".repeat(5_000));
    assert!(observe(&mut c, &json!({"v": value("1")}), S, &[0]).is_empty());
    assert!(observe(&mut c, &json!({"v": value("1")}), 2 * S, &[0]).is_empty());
    assert!(observe(&mut c, &json!({"v": value("2")}), 3 * S, &[0]).is_empty());
    let hits = observe(&mut c, &json!({"v": value("3")}), 4 * S, &[0]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].value, 3.0);
}

#[test]
fn a_late_event_sees_the_older_entries_of_its_own_window() {
    let yaml = "
id: pair
correlation:
  type: event_count
  rules: [a]
  group-by: [user]
  timespan: 10s
  condition: {gte: 2}
---
id: then
correlation:
  type: temporal_ordered
  rules: [a, b]
  group-by: [user]
  timespan: 10s
";
    let alice = json!({"user": "alice"});
    // `(time, rule)`: a at 0s and b at 8s share a window; a at 15s shares one with b only.
    let run = |arrivals: &[(i64, usize)]| {
        let mut c = correlator(abc(), yaml);
        let mut hits = Vec::new();
        for &(t, rule) in arrivals {
            hits.extend(
                observe(&mut c, &alice, t, &[rule])
                    .into_iter()
                    .map(|hit| (hit.correlation, t, hit.value, hit.first_seen_ms)),
            );
        }
        hits
    };
    // event_count over a only: a at 0s and 15s are 15 s apart, no hit.
    let in_order = run(&[(0, 0), (8 * S, 1), (15 * S, 0)]);
    assert_eq!(in_order, [(1, 8 * S, 2.0, 0)]);
    // b arrives last, but not too late (8s > 15s - 10s): its window (-2s, 8s] still holds
    // the a at 0s, so a then b is found as in order.
    assert_eq!(run(&[(0, 0), (15 * S, 0), (8 * S, 1)]), in_order);
    // The same with event_count: a at 0s, 15s, then a late a at 8s pairs with the one at 0s
    // (the first window by end time).
    let late = run(&[(0, 0), (15 * S, 0), (8 * S, 0)]);
    assert_eq!(late, [(0, 8 * S, 2.0, 0)]);
}

#[test]
fn an_event_that_fired_a_group_does_not_count_towards_its_next_alert() {
    let mut c = correlator(
        vec![rule("r1", None), rule("r2", None), rule("r3", None)],
        "id: c\ncorrelation:\n  type: event_count\n  rules: [r1, r2, r3]\n  timespan: 1h\n  condition: {gte: 2}\n",
    );
    // One event matched by all three rules: the second match fires and resets the group;
    // the third must not seed the next window.
    assert_eq!(observe(&mut c, &json!({}), S, &[0, 1, 2]).len(), 1);
    assert!(observe(&mut c, &json!({}), 2 * S, &[0]).is_empty());
    assert_eq!(observe(&mut c, &json!({}), 3 * S, &[0]).len(), 1);
}

/// `p_alert_context.*` is Panther's name for a match's context; a match without one (every
/// Sigma and Elastic rule) reads such a group field from the event like any other.
#[test]
fn context_prefix_reads_the_event_without_a_match_context() {
    let yaml = EVENT_COUNT.replace("group-by: [user]", "group-by: [p_alert_context.user]");
    let mut c = correlator(vec![rule("failed", None)], &yaml);
    let alice = json!({"p_alert_context": {"user": "alice"}});
    let bob = json!({"p_alert_context": {"user": "bob"}});
    assert!(observe(&mut c, &alice, S, &[0]).is_empty());
    assert!(observe(&mut c, &bob, 2 * S, &[0]).is_empty());
    assert!(observe(&mut c, &alice, 3 * S, &[0]).is_empty());
    let hits = observe(&mut c, &alice, 4 * S, &[0]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].group, group(&[("p_alert_context.user", "alice")]));
}

/// Export then import into a fresh correlator over the same definitions (identity mapping).
fn carried_over(
    c: &Correlator,
    rules: Vec<Rule>,
    set_correlations: Vec<Correlation>,
) -> Correlator {
    let set = RuleSet {
        rules,
        correlations: set_correlations,
    };
    let (mut fresh, _) = Correlator::new(&set, Limits::default());
    let mapping: Vec<Option<usize>> = (0..fresh.correlations().len()).map(Some).collect();
    let report = fresh.import(c.export(), &mapping);
    assert_eq!(report.groups_dropped, 0);
    fresh
}

#[test]
fn value_count_and_long_group_values_survive_export_and_import() {
    let yaml = "
id: spray
correlation:
  type: value_count
  rules: [failed]
  group-by: [ip]
  timespan: 1h
  condition:
    field: user
    gte: 3
";
    let long_ip = "x".repeat(500);
    let ev = |user: &str| json!({"ip": long_ip, "user": user});
    let mut c = correlator(vec![rule("failed", None)], yaml);
    assert!(observe(&mut c, &ev("a"), S, &[0]).is_empty());
    assert!(observe(&mut c, &ev("b"), 2 * S, &[0]).is_empty());
    let mut restored = carried_over(&c, vec![rule("failed", None)], correlations(yaml));
    // "a" again is not a new value: the hash key came along with the hashes.
    assert!(observe(&mut restored, &ev("a"), 3 * S, &[0]).is_empty());
    let hits = observe(&mut restored, &ev("c"), 4 * S, &[0]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].value, 3.0);
    // A mapping that drops the correlation drops its groups.
    let mut dropped = correlator(vec![rule("failed", None)], yaml);
    let report = dropped.import(c.export(), &[None]);
    assert_eq!((report.groups_loaded, report.groups_dropped), (0, 1));
    assert!(observe(&mut dropped, &ev("c"), 4 * S, &[0]).is_empty());
}

#[test]
fn new_terms_and_sequence_state_survive_export_and_import() {
    let mut new_terms = correlations(EVENT_COUNT);
    new_terms[0].kind = CorrelationKind::NewTerms;
    new_terms[0].timespan_ms = 100 * S;
    let rules = || vec![rule("failed", None)];
    let (mut c, _) = Correlator::new(
        &RuleSet {
            rules: rules(),
            correlations: new_terms.clone(),
        },
        Limits::default(),
    );
    // Warm-up starts at 0; "alice" seen at 50 s.
    assert!(observe(&mut c, &json!({"user": "bob"}), 0, &[0]).is_empty());
    assert!(observe(&mut c, &json!({"user": "alice"}), 50 * S, &[0]).is_empty());
    let mut restored = carried_over(&c, rules(), new_terms.clone());
    // Warmed up (the start came along); alice was seen within the history, carol never.
    assert!(observe(&mut restored, &json!({"user": "alice"}), 120 * S, &[0]).is_empty());
    assert_eq!(
        observe(&mut restored, &json!({"user": "carol"}), 121 * S, &[0]).len(),
        1
    );

    let mut sequence = correlations(
        "
id: seq
correlation:
  type: temporal_ordered
  rules: [a, b]
  group-by: [user]
  timespan: 10s
",
    );
    sequence[0].kind = CorrelationKind::Sequence { has_until: false };
    let rules = || vec![rule("a", None), rule("b", None)];
    let (mut c, _) = Correlator::new(
        &RuleSet {
            rules: rules(),
            correlations: sequence.clone(),
        },
        Limits::default(),
    );
    assert!(observe(&mut c, &json!({"user": "u"}), S, &[0]).is_empty());
    let mut restored = carried_over(&c, rules(), sequence);
    let hits = observe(&mut restored, &json!({"user": "u"}), 2 * S, &[1]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].first_seen_ms, S);
}
