//! The engine: routes an event to the rules of its log source, evaluates them, and feeds the
//! matches to the correlator. It owns no I/O: the caller hands in a parsed event and the arrival
//! time, and gets [`Detections`] back (the protocol layer turns them into output bytes).

pub mod index;
pub mod java_date;
pub mod matcher;
pub mod script;
pub mod state;
pub mod time;
pub mod value;

use std::sync::Arc;

use self::index::{IndexScratch, RuleIndex};
use crate::correlate::{CorrelationHit, CorrelationStats, Correlator, Limits};
use crate::diag::Diagnostic;
use crate::event::Event;
use crate::ir::{Correlation, FieldPath, LogSource, Rule, RuleSet};

/// How the engine is set up; built by the CLI from flags.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// `--logsource`: the source of events that are not recognised by shape.
    pub stream_logsource: Option<LogSource>,
    /// Fields tried in order for event time (`--time-field`, or [`time::DEFAULT_TIME_FIELDS`]).
    pub time_fields: Vec<FieldPath>,
    pub limits: Limits,
    /// Native rule code and thresholds (`script::ScriptHook`).
    pub script: script::ScriptConfig,
    /// Evaluate only the candidates of the rule index ([`index`]); off (`--no-index`) every
    /// rule of the event's source is evaluated. The answers are the same either way.
    pub use_index: bool,
}

impl EngineConfig {
    pub fn new(limits: Limits) -> EngineConfig {
        EngineConfig {
            stream_logsource: None,
            time_fields: time::DEFAULT_TIME_FIELDS
                .iter()
                .map(|field| FieldPath::new(field))
                .collect(),
            limits,
            script: script::ScriptConfig::default(),
            use_index: true,
        }
    }
}

/// What one event produced. Reused between events to avoid allocation.
#[derive(Clone, Debug, Default)]
pub struct Detections {
    /// Indexes into [`Engine::rules`] of every rule that matched, alerting or not.
    pub matches: Vec<usize>,
    pub correlations: Vec<CorrelationHit>,
    /// Per-match fields of rules with native code or a threshold (title, context, ...).
    pub outputs: Vec<script::MatchOutput>,
    /// Input: answers of the matches' scripts found ahead on a matching thread
    /// ([`Engine::pre_confirmer`]), in `matches` order; [`Engine::observe`] consumes them.
    pub pre: Vec<script::PreVerdict>,
}

impl Detections {
    pub fn clear(&mut self) {
        self.matches.clear();
        self.correlations.clear();
        self.outputs.clear();
        self.pre.clear();
    }

    /// The output of rule `idx`'s match on this event, when it has one.
    pub fn output(&self, idx: usize) -> Option<&script::MatchOutput> {
        self.outputs.iter().find(|output| output.rule == idx)
    }

    pub fn is_empty(&self) -> bool {
        self.matches.is_empty() && self.correlations.is_empty()
    }
}

#[derive(Clone, Debug, Default)]
pub struct EngineStats {
    pub events: u64,
    /// Events whose time came from the arrival clock because no time field parsed.
    pub time_fallbacks: u64,
    /// Events whose time was more than [`time::MAX_AHEAD_MS`] ahead of the arrival clock; they
    /// are matched by detection rules but not fed to correlations.
    pub future_times: u64,
    /// Matches per rule, indexed like [`Engine::rules`].
    pub rule_hits: Vec<u64>,
    /// Hits per correlation, indexed like [`Engine::correlations`].
    pub correlation_hits: Vec<u64>,
    pub correlation: CorrelationStats,
}

/// The engine: the stateless [`Matcher`] (shared with matching threads) and the ordered,
/// stateful rest (correlations, counters).
pub struct Engine {
    matcher: Arc<Matcher>,
    /// `alert[i]` is false for a rule that only feeds correlations (`generate: false`).
    alert: Vec<bool>,
    correlator: Correlator,
    config: EngineConfig,
    scratch: MatchScratch,
    stats: EngineStats,
    /// Native rule code (Panther `rule()` and its outputs), key-value helper state and
    /// thresholds: stateful, so run in arrival order by [`Engine::observe`].
    script: script::ScriptHook,
    /// Id and definition fingerprint of every rule and correlation ([`state`]).
    identities: state::Identities,
}

/// The stateless half of the engine: which rules an event matches. It is `Sync` and used
/// through `&self` only, so several threads share one (see [`Engine::matcher`]).
pub struct Matcher {
    rules: Vec<Rule>,
    /// Rules that admit `aws/cloudtrail`, for events recognised as CloudTrail by shape.
    cloudtrail_rules: Vec<usize>,
    /// Rules that admit the declared `--logsource` (all rules when none is declared:
    /// an event of unknown source fails open).
    stream_rules: Vec<usize>,
    /// Indexes of `cloudtrail_rules` and `stream_rules` (`None` with `use_index` off).
    cloudtrail_index: Option<RuleIndex>,
    stream_index: Option<RuleIndex>,
}

/// Per-thread scratch of [`Engine::match_rules`], reused between events.
#[derive(Debug, Default)]
pub struct MatchScratch {
    index: IndexScratch,
    /// The candidate rules of the current event.
    candidates: Vec<usize>,
}

impl Engine {
    /// Links correlations to their rules. Unresolvable references come back as diagnostics and
    /// the correlation that has them is left out.
    pub fn new(set: RuleSet, config: EngineConfig) -> (Engine, Vec<Diagnostic>) {
        let (correlator, diagnostics) = Correlator::new(&set, config.limits);
        let mut alert = vec![true; set.rules.len()];
        for idx in correlator.silenced_rules() {
            alert[idx] = false;
        }
        for (idx, rule) in set.rules.iter().enumerate() {
            alert[idx] &= !rule.extra.silent;
        }
        let cloudtrail = LogSource::new(Some("aws"), Some("cloudtrail"), None);
        let stream = config.stream_logsource.clone().unwrap_or_default();
        let admitted = |admits: &dyn Fn(&LogSource) -> bool| -> Vec<usize> {
            set.rules
                .iter()
                .enumerate()
                .filter(|(_, rule)| !rule.extra.disabled && admits(&rule.logsource))
                .map(|(idx, _)| idx)
                .collect()
        };
        let cloudtrail_rules = admitted(&|rule| rule.admits_known(&cloudtrail));
        let stream_rules = admitted(&|rule| rule.admits(&stream));
        let stats = EngineStats {
            rule_hits: vec![0; set.rules.len()],
            correlation_hits: vec![0; set.correlations.len()],
            ..EngineStats::default()
        };
        let script = script::ScriptHook::new(set.rules.len(), config.script);
        let (cloudtrail_index, stream_index) = if config.use_index {
            (
                Some(RuleIndex::new(&set.rules, &cloudtrail_rules)),
                Some(RuleIndex::new(&set.rules, &stream_rules)),
            )
        } else {
            (None, None)
        };
        let references: Vec<&[String]> = (0..correlator.correlations().len())
            .map(|idx| correlator.referenced_ids(idx))
            .collect();
        let identities = state::Identities::new(&set.rules, correlator.correlations(), &references);
        let engine = Engine {
            identities,
            matcher: Arc::new(Matcher {
                rules: set.rules,
                cloudtrail_rules,
                stream_rules,
                cloudtrail_index,
                stream_index,
            }),
            alert,
            correlator,
            config,
            scratch: MatchScratch::default(),
            stats,
            script,
        };
        (engine, diagnostics)
    }

    pub fn rules(&self) -> &[Rule] {
        &self.matcher.rules
    }

    /// The stateless half, for matching threads.
    pub fn matcher(&self) -> Arc<Matcher> {
        Arc::clone(&self.matcher)
    }

    /// What runs the matches' scripts ahead on a matching thread, for
    /// [`Detections::pre`]; `None` when this engine's scripts have mocks.
    pub fn pre_confirmer(&self) -> Option<script::PreConfirmer> {
        Some(script::PreConfirmer {
            matcher: Arc::clone(&self.matcher),
            step_budget: self.script.pre_confirm_budget()?,
        })
    }

    pub fn correlations(&self) -> &[Correlation] {
        self.correlator.correlations()
    }

    /// Whether a match of rule `idx` alerts on its own.
    pub fn alerts(&self, idx: usize) -> bool {
        self.alert[idx]
    }

    /// Whether correlation `idx` alerts on its own (false when it only feeds correlations
    /// with `generate: false`).
    pub fn correlation_alerts(&self, idx: usize) -> bool {
        self.correlator.correlation_alerts(idx)
    }

    /// Ids of the rules (or correlations) correlation `idx` is built on, as resolved.
    pub fn correlation_sources(&self, idx: usize) -> &[String] {
        self.correlator.referenced_ids(idx)
    }

    /// Evaluates one event. `arrival_ms` is the wall-clock time the caller read it at, used
    /// when the event carries no parseable time. The same as [`Engine::match_rules`] then
    /// [`Engine::observe`].
    ///
    /// A value the event turns out not to represent (see [`Event::is_broken`]) stops the
    /// evaluation with no detections and nothing fed to correlations: the caller then treats
    /// the line as invalid JSON.
    pub fn evaluate(&mut self, event: &Event<'_>, arrival_ms: i64, out: &mut Detections) {
        out.clear();
        let mut scratch = std::mem::take(&mut self.scratch);
        self.match_rules(event, &mut scratch, &mut out.matches);
        self.scratch = scratch;
        self.observe(event, arrival_ms, out);
    }

    /// The stateless half of [`Engine::evaluate`] ([`Matcher::match_rules`]).
    pub fn match_rules(
        &self,
        event: &Event<'_>,
        scratch: &mut MatchScratch,
        matches: &mut Vec<usize>,
    ) {
        self.matcher.match_rules(event, scratch, matches);
    }

    /// The ordered, stateful half of [`Engine::evaluate`]: counts the matches in
    /// `out.matches` (from [`Engine::match_rules`] on the same event) and feeds them to the
    /// correlations, in arrival order.
    ///
    /// Rules with native code or a threshold are confirmed here rather than by the matcher:
    /// their runtime keeps state (key-value helpers, threshold counts), which must see the
    /// events in arrival order whatever the number of matching threads.
    pub fn observe(&mut self, event: &Event<'_>, arrival_ms: i64, out: &mut Detections) {
        out.correlations.clear();
        out.outputs.clear();
        self.stats.events += 1;
        let rules = &self.matcher.rules;
        // State (key-value helpers, thresholds, correlation groups) must only ever see events
        // that are whole: a field no rule has read yet may still hold a value the event view
        // cannot represent (see `Event::is_broken`). So before any state changes, a matched
        // event that feeds state is checked in full, which finds such a value.
        let feeds_state = !self.correlator.is_empty()
            || out.matches.iter().any(|&idx| {
                rules[idx].extra.native.is_some() || rules[idx].extra.threshold.is_some()
            });
        if !out.matches.is_empty() && feeds_state {
            event.check_whole();
        }
        if event.is_broken() {
            out.clear();
            return;
        }
        let script = &mut self.script;
        let time_fields = &self.config.time_fields;
        let outputs = &mut out.outputs;
        let mut pre = out.pre.drain(..).peekable();
        out.matches.retain(|&idx| {
            let pre = pre.next_if(|verdict| verdict.rule() == idx);
            script.confirm(
                idx,
                &rules[idx],
                event,
                (arrival_ms, time_fields),
                outputs,
                pre,
            )
        });
        drop(pre);
        for &idx in &out.matches {
            self.stats.rule_hits[idx] += 1;
        }
        if !self.correlator.is_empty() && !out.matches.is_empty() {
            let time_ms = match time::event_time_ms(event, &self.config.time_fields) {
                Some(time) if time <= arrival_ms.saturating_add(time::MAX_AHEAD_MS) => Some(time),
                // A time ahead of the clock is a broken or forged clock, not a real event time.
                // Fed to a correlation it would become its group's newest time and make every
                // honest event after it "too late"; at arrival time it would do the same to a
                // replay of older logs. So such an event alerts on its own rules only.
                Some(_) => {
                    self.stats.future_times += 1;
                    None
                }
                None => {
                    self.stats.time_fallbacks += 1;
                    Some(arrival_ms)
                }
            };
            if let Some(time_ms) = time_ms {
                let outputs = &out.outputs;
                let context = |rule: usize| {
                    outputs
                        .iter()
                        .find(|output| output.rule == rule)
                        .and_then(|output| output.context.as_ref())
                };
                self.correlator.observe_with_context(
                    event,
                    time_ms,
                    &out.matches,
                    &context,
                    &mut out.correlations,
                );
            }
            for hit in &out.correlations {
                self.stats.correlation_hits[hit.correlation] += 1;
            }
        }
    }

    /// Budget overruns, runtime errors and state of native rules and thresholds.
    pub fn script_stats(&self) -> script::ScriptStats {
        self.script.stats()
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            correlation: self.correlator.stats(),
            ..self.stats.clone()
        }
    }
}

impl Matcher {
    /// The rules `event` matches, in rule order, into `matches` (cleared first). Each thread
    /// brings its own `scratch`.
    pub fn match_rules(
        &self,
        event: &Event<'_>,
        scratch: &mut MatchScratch,
        matches: &mut Vec<usize>,
    ) {
        matches.clear();
        let (routed, index) = if is_cloudtrail(event) {
            (&self.cloudtrail_rules, &self.cloudtrail_index)
        } else {
            (&self.stream_rules, &self.stream_index)
        };
        let candidates = match index {
            Some(index) => {
                index.candidates(event, &mut scratch.index, &mut scratch.candidates);
                &scratch.candidates
            }
            None => routed,
        };
        for &idx in candidates {
            if matcher::matches(&self.rules[idx].expr, event) {
                matches.push(idx);
            }
        }
    }
}

/// CloudTrail records are recognised by shape: `eventSource` and `eventName` strings plus one
/// of the envelope fields every CloudTrail record version carries.
/// Reads only the raw text of the top-level values: a JSON string starts with `"`.
pub fn is_cloudtrail(event: &Event<'_>) -> bool {
    let is_str = |key: &str| event.raw(key).is_some_and(|raw| raw.starts_with('"'));
    is_str("eventSource")
        && is_str("eventName")
        && [
            "eventVersion",
            "awsRegion",
            "userIdentity",
            "recipientAccountId",
        ]
        .iter()
        .any(|key| event.contains_key(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cloudtrail_shape() {
        let shape = |value: serde_json::Value| is_cloudtrail(&Event::new(&value));
        assert!(shape(json!({
            "eventSource": "iam.amazonaws.com", "eventName": "CreateUser", "awsRegion": "us-east-1"
        })));
        assert!(!shape(json!({"eventSource": "x", "eventName": "y"})));
        assert!(!shape(
            json!({"eventSource": 1, "eventName": "y", "awsRegion": "x"})
        ));
        assert!(!shape(json!({"eventType": "user.session.start"})));
    }
}
