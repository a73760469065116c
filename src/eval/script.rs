//! The engine's hook for rules with more than an IR expression: native code (Panther Python,
//! through `crate::panther_rt`) and alert thresholds.
//!
//! [`ScriptHook::confirm`] runs after a rule's `expr` held. For a plain rule it returns at
//! once. Otherwise it runs the native predicate (with the step budget and the key-value state),
//! then the threshold, and records a [`MatchOutput`] with what the enrichment adds to the
//! match (dynamic title and severity, context, dedup string, threshold count). Budget overruns
//! and runtime errors are counted per rule and are non-matches.

use serde_json::Value;

use super::time;
use crate::correlate::threshold::{ThresholdImport, ThresholdSnapshot, ThresholdState};
use crate::event::Event;
use crate::ir::{FieldPath, Rule, Severity};
use crate::panther_rt::kv::{KvImport, KvLimits, KvSnapshot, KvStats, LruKv};
use crate::panther_rt::{CallCtx, KvState, Mocks, PantherScript, RuleError, ScriptOutput};

/// Limits of the hook, from flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptConfig {
    /// Evaluation steps one call of a rule function may take (`--step-budget`).
    pub step_budget: u64,
    pub kv: KvLimits,
    /// Live `(rule, dedup)` threshold counters (`--max-threshold-keys`).
    pub max_threshold_keys: usize,
}

impl Default for ScriptConfig {
    fn default() -> ScriptConfig {
        ScriptConfig {
            step_budget: 100_000,
            kv: KvLimits::default(),
            max_threshold_keys: 100_000,
        }
    }
}

/// What one match adds beyond the rule's static metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MatchOutput {
    /// Index into the engine's rules.
    pub rule: usize,
    pub title: Option<String>,
    pub severity: Option<Severity>,
    pub context: Option<Value>,
    pub dedup: Option<String>,
    /// `Some(false)` while a threshold is not reached.
    pub alert: Option<bool>,
    /// Matches counted towards the threshold in the current period, this one included.
    pub threshold_count: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptStats {
    /// Per rule (indexed like the engine's rules): calls that ran out of steps.
    pub budget_overruns: Vec<u64>,
    /// Per rule: `rule()` errors (non-matches) and errors in the output functions.
    pub runtime_errors: Vec<u64>,
    pub kv: KvStats,
    pub threshold_keys: u64,
    pub threshold_evictions: u64,
}

pub struct ScriptHook {
    config: ScriptConfig,
    kv: LruKv,
    thresholds: ThresholdState,
    budget_overruns: Vec<u64>,
    runtime_errors: Vec<u64>,
    mocks: Mocks,
}

impl ScriptHook {
    pub fn new(n_rules: usize, config: ScriptConfig) -> ScriptHook {
        ScriptHook {
            config,
            kv: LruKv::new(config.kv),
            thresholds: ThresholdState::new(config.max_threshold_keys),
            budget_overruns: vec![0; n_rules],
            runtime_errors: vec![0; n_rules],
            mocks: Mocks::none(),
        }
    }

    /// Decides whether rule `idx`, whose `expr` held, matches; pushes its [`MatchOutput`] when
    /// it has one. `arrival_ms` is the clock of the key-value helpers; thresholds count in
    /// event time (`time_fields`, else arrival). `pre` is the script's answer when a
    /// [`PreConfirmer`] found it.
    pub fn confirm(
        &mut self,
        idx: usize,
        rule: &Rule,
        event: &Event<'_>,
        (arrival_ms, time_fields): (i64, &[FieldPath]),
        outputs: &mut Vec<MatchOutput>,
        pre: Option<PreVerdict>,
    ) -> bool {
        let script = script_of(rule);
        if script.is_none() && rule.extra.threshold.is_none() {
            return true;
        }
        let mut output = MatchOutput {
            rule: idx,
            ..MatchOutput::default()
        };
        if let Some(script) = script {
            let result = match pre {
                // Found on a matching thread, exactly as here (see `PreConfirmer`).
                Some(pre) if pre.rule == idx => pre.result,
                _ => {
                    // Where `rule()` lowers and the event meets the lowering's precondition,
                    // the IR answers for it and the interpreter only runs the output functions
                    // of a match.
                    let lowered = lowered_answer(script, event);
                    if lowered == Some(false) {
                        return false;
                    }
                    let mut ctx = CallCtx {
                        step_budget: self.config.step_budget,
                        state: &mut self.kv,
                        now_ms: arrival_ms,
                        mocks: &self.mocks,
                    };
                    script.run_with(event, &mut ctx, lowered == Some(true))
                }
            };
            match result {
                Ok(Some(result)) => {
                    self.runtime_errors[idx] += result.errors.len() as u64;
                    output.title = result.title;
                    output.severity = result.severity;
                    output.context = result.context;
                    output.dedup = Some(result.dedup);
                }
                Ok(None) => return false,
                Err(RuleError::Budget) => {
                    self.budget_overruns[idx] += 1;
                    return false;
                }
                Err(RuleError::Runtime(_)) => {
                    self.runtime_errors[idx] += 1;
                    return false;
                }
            }
        }
        if let Some(threshold) = rule.extra.threshold {
            let dedup = output
                .dedup
                .get_or_insert_with(|| rule.meta.title.clone())
                .clone();
            let time_ms = time::event_time_ms(event, time_fields).unwrap_or(arrival_ms);
            let counted = self.thresholds.count(idx, &dedup, time_ms, threshold);
            output.threshold_count = Some(counted.count);
            if !counted.reached {
                output.alert = Some(false);
            }
        }
        outputs.push(output);
        true
    }

    /// The step budget, when scripts may be run ahead on matching threads (no mocks: see
    /// [`PreConfirmer`]).
    pub(super) fn pre_confirm_budget(&self) -> Option<u64> {
        self.mocks.is_empty().then_some(self.config.step_budget)
    }

    /// The threshold counters and the key-value cache, as values (`crate::eval::state`).
    pub fn export_state(&self) -> (ThresholdSnapshot, KvSnapshot) {
        (self.thresholds.export(), self.kv.export())
    }

    /// Restores both, replacing the live state; `rule_mapping` maps the snapshot's rule
    /// indexes to current ones (`None`: gone or changed, its counters are dropped).
    pub fn import_state(
        &mut self,
        thresholds: ThresholdSnapshot,
        kv: KvSnapshot,
        rule_mapping: &[Option<usize>],
    ) -> (ThresholdImport, KvImport) {
        (
            self.thresholds.import(thresholds, rule_mapping),
            self.kv.import(kv),
        )
    }

    pub fn stats(&self) -> ScriptStats {
        ScriptStats {
            budget_overruns: self.budget_overruns.clone(),
            runtime_errors: self.runtime_errors.clone(),
            kv: self.kv.stats(),
            threshold_keys: self.thresholds.len() as u64,
            threshold_evictions: self.thresholds.evicted,
        }
    }
}

fn script_of(rule: &Rule) -> Option<&PantherScript> {
    rule.extra
        .native
        .as_ref()
        .and_then(|native| native.body.as_any().downcast_ref::<PantherScript>())
}

/// A rule script's answer on one event, found ahead of [`ScriptHook::confirm`] by a
/// [`PreConfirmer`] (on a matching thread).
#[derive(Clone, Debug)]
pub struct PreVerdict {
    rule: usize,
    /// As `PantherScript::run_with` gave it (never a budget overrun); `Ok(None)` also when
    /// the lowered `rule()` said no.
    result: Result<Option<ScriptOutput>, RuleError>,
}

/// Runs the scripts of an event's matched rules where that needs no cross-event state, so
/// that a matching thread can do it and [`ScriptHook::confirm`] only takes the answer.
///
/// Exact by construction: a script sees a key-value store that records any use and answers
/// nothing; a run that used it, or ran out of steps (the step count of a first call on a
/// thread includes building the module's globals), is thrown away and `confirm` runs the
/// script itself. Every other input of a run is the same on any thread: the event, the
/// arrival clock, the step budget, no mocks (a hook with mocks has no pre-confirmer).
#[derive(Clone)]
pub struct PreConfirmer {
    pub(super) matcher: std::sync::Arc<super::Matcher>,
    pub(super) step_budget: u64,
}

impl PreVerdict {
    pub fn rule(&self) -> usize {
        self.rule
    }
}

impl PreConfirmer {
    /// The answers of the scripts of `matches` (rule indexes, in order) on `event`, in order.
    pub fn run(
        &self,
        event: &Event<'_>,
        arrival_ms: i64,
        matches: &[usize],
        out: &mut Vec<PreVerdict>,
    ) {
        out.clear();
        let rules = &self.matcher.rules;
        if !matches.iter().any(|&idx| script_of(&rules[idx]).is_some()) {
            return;
        }
        // As `Engine::observe` does before any script runs: a broken event runs none.
        event.check_whole();
        if event.is_broken() {
            return;
        }
        let mocks = Mocks::none();
        for &idx in matches {
            let Some(script) = script_of(&rules[idx]) else {
                continue;
            };
            let lowered = lowered_answer(script, event);
            if lowered == Some(false) {
                out.push(PreVerdict {
                    rule: idx,
                    result: Ok(None),
                });
                continue;
            }
            let mut state = NoState::default();
            let mut ctx = CallCtx {
                step_budget: self.step_budget,
                state: &mut state,
                now_ms: arrival_ms,
                mocks: &mocks,
            };
            let result = script.run_with(event, &mut ctx, lowered == Some(true));
            if state.used || result == Err(RuleError::Budget) {
                continue;
            }
            out.push(PreVerdict { rule: idx, result });
        }
    }
}

/// The key-value store of a [`PreConfirmer`] run: records that it was used.
#[derive(Default)]
struct NoState {
    used: bool,
}

impl KvState for NoState {
    fn get_string_set(&mut self, _: &str, _: i64) -> Vec<String> {
        self.used = true;
        Vec::new()
    }
    fn put_string_set(&mut self, _: &str, _: Vec<String>, _: Option<i64>, _: i64) {
        self.used = true;
    }
    fn add_to_string_set(&mut self, _: &str, _: Vec<String>, _: i64) -> Vec<String> {
        self.used = true;
        Vec::new()
    }
    fn remove_from_string_set(&mut self, _: &str, _: Vec<String>, _: i64) -> Vec<String> {
        self.used = true;
        Vec::new()
    }
    fn reset_string_set(&mut self, _: &str) {
        self.used = true;
    }
    fn get_counter(&mut self, _: &str, _: i64) -> i64 {
        self.used = true;
        0
    }
    fn increment_counter(&mut self, _: &str, _: i64, _: i64) -> i64 {
        self.used = true;
        0
    }
    fn reset_counter(&mut self, _: &str) {
        self.used = true;
    }
    fn set_key_expiration(&mut self, _: &str, _: i64) {
        self.used = true;
    }
}

/// The lowered `rule()`'s answer for `event`, when it has one there.
fn lowered_answer(script: &PantherScript, event: &Event<'_>) -> Option<bool> {
    let lowered = script.lowered()?;
    lowered
        .precondition_holds(event)
        .then(|| super::matcher::matches(lowered.expr(), event))
}

/// What one embedded rule test gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestOutcome {
    /// Whether the rule matched; `None` when it could not say (budget, runtime error).
    pub actual: Option<bool>,
    /// The first error raised by the rule's functions, if any.
    pub error: Option<String>,
}

impl TestOutcome {
    pub fn passed(&self, expected: bool) -> bool {
        self.error.is_none() && self.actual == Some(expected)
    }
}

/// Runs one of a rule's embedded tests as Panther's test tool does: the rule's `expr` and
/// native predicate on the test event, with the test's mocks and a fresh key-value state; on a
/// match, the output functions run too and an error in any of them fails the test. Log-source
/// routing and thresholds play no part (a test asks whether the rule matches the event).
pub fn run_test(
    rule: &Rule,
    test: &crate::ir::RuleTest,
    now_ms: i64,
    config: ScriptConfig,
) -> TestOutcome {
    let event = Event::new(&test.event);
    if !super::matcher::matches(&rule.expr, &event) {
        return TestOutcome {
            actual: Some(false),
            error: None,
        };
    }
    let script = rule
        .extra
        .native
        .as_ref()
        .and_then(|native| native.body.as_any().downcast_ref::<PantherScript>());
    let Some(script) = script else {
        return TestOutcome {
            actual: Some(true),
            error: None,
        };
    };
    let mut mocks = Mocks::none();
    for (name, value) in &test.mocks {
        mocks.insert(name, value.clone());
    }
    // Mocks patch the module, not its lowered form: a mocked test always runs the interpreter.
    let lowered = if test.mocks.is_empty() {
        lowered_answer(script, &event)
    } else {
        None
    };
    if lowered == Some(false) {
        return TestOutcome {
            actual: Some(false),
            error: None,
        };
    }
    let mut kv = LruKv::new(config.kv);
    let mut ctx = CallCtx {
        step_budget: config.step_budget,
        state: &mut kv,
        now_ms,
        mocks: &mocks,
    };
    match script.run_with(&event, &mut ctx, lowered == Some(true)) {
        Ok(Some(output)) => TestOutcome {
            actual: Some(true),
            error: output.errors.into_iter().next(),
        },
        Ok(None) => TestOutcome {
            actual: Some(false),
            error: None,
        },
        Err(err) => TestOutcome {
            actual: None,
            error: Some(err.to_string()),
        },
    }
}

/// Runs a correlation's test: each base rule is stood in for by a rule that matches
/// everything, and the test's matches are fed to a fresh correlator in time order (a
/// `p_alert_context.*` value as the match's context, any other as an event field). The
/// correlation "matched" when it fired on any of them.
pub fn run_correlation_test(
    correlation: &crate::ir::Correlation,
    test: &crate::ir::CorrelationTest,
) -> TestOutcome {
    use crate::correlate::{CONTEXT_PREFIX, Correlator, Limits};
    use crate::ir::{Expr, LogSource, Meta, RuleExtra, RuleSet};

    let mut ids: Vec<&str> = correlation.rules.iter().map(String::as_str).collect();
    ids.dedup();
    let rules = ids
        .iter()
        .map(|id| Rule {
            meta: Meta {
                id: id.to_string(),
                name: None,
                title: id.to_string(),
                ..correlation.meta.clone()
            },
            logsource: LogSource::default(),
            expr: Expr::Const(true),
            extra: RuleExtra::default(),
        })
        .collect();
    let mut stand_in = correlation.clone();
    stand_in.generate = true;
    let set = RuleSet {
        rules,
        correlations: vec![stand_in],
    };
    let (mut correlator, diagnostics) = Correlator::new(&set, Limits::default());
    if let Some(error) = diagnostics.iter().find(|d| d.is_error()) {
        return TestOutcome {
            actual: None,
            error: Some(error.message.clone()),
        };
    }
    let mut fired = false;
    let mut hits = Vec::new();
    for synthetic in &test.matches {
        let Some(rule) = ids.iter().position(|id| *id == synthetic.rule) else {
            return TestOutcome {
                actual: None,
                error: Some(format!("rule output of '{}', not a member", synthetic.rule)),
            };
        };
        let (in_context, path) = match synthetic.field.segments.split_first() {
            Some((head, rest)) if head == CONTEXT_PREFIX && !rest.is_empty() => (true, rest),
            _ => (false, synthetic.field.segments.as_slice()),
        };
        let mut nested = synthetic.value.clone();
        for segment in path.iter().rev() {
            let mut object = serde_json::Map::new();
            object.insert(segment.clone(), nested);
            nested = Value::Object(object);
        }
        let empty = Value::Object(serde_json::Map::new());
        let (event, context) = if in_context {
            (&empty, Some(&nested))
        } else {
            (&nested, None)
        };
        hits.clear();
        correlator.observe_with_context(
            &Event::new(event),
            synthetic.time_ms,
            &[rule],
            &|_| context,
            &mut hits,
        );
        fired |= !hits.is_empty();
    }
    TestOutcome {
        actual: Some(fired),
        error: None,
    }
}
