//! The Panther rule runtime: what runs a Panther rule's module on a matched event and turns its
//! functions' results into match fields (title, severity, context, dedup).
//!
//! The loader (`crate::rules::panther`) parses a rule's `.py` with `crate::python` and wraps it
//! in a [`PantherScript`], carried in the IR as an opaque `ir::Native`. The engine
//! (`crate::eval::script`) downcasts it back and calls [`PantherScript::run`]; `vigil test`
//! calls the same function with the test's mocks. Both see the same answers.
//!
//! Function by function, as Panther does:
//! - `rule(event)`: the rule matches when the result is truthy.
//! - `title(event)`: the match title when it returns a non-empty value; else the simple
//!   detection's `AlertTitle` (`{field}` placeholders filled from the event); else
//!   `DisplayName`.
//! - `severity(event)`: one of the five levels in any case (`INFO`, `high`...); `DEFAULT`, an
//!   empty or unknown value keeps the YAML `Severity`.
//! - `alert_context(event)` (or a simple detection's `AlertContext`): the match's `context`.
//! - `dedup(event)`: the dedup string when non-empty; else the title.
//!
//! A budget overrun or a Python error in `rule()` makes the event a non-match and is reported
//! to the caller (the engine counts it per rule). An error in another function keeps the match
//! with that function's default and is reported as well (a test then fails, as in Panther's
//! own tool).

pub mod kv;

use serde_json::{Map, Value};

use crate::event::{Event, text_of};
use crate::ir::{Expr, FieldPath, NativeBody, Severity};
pub use crate::python::{CallCtx, KvState, Mocks, Module, PyError};

/// Parses a rule module; a failure is `(line, reason)`.
pub fn parse_module(source: &str, path: &str) -> Result<Module, (u32, String)> {
    Module::parse(source, path).map_err(|diag| (diag.line, diag.message))
}

/// A Panther rule's runtime part: its Python module and/or its simple-detection
/// `AlertTitle` / `AlertContext`, plus the YAML values the functions default to.
pub struct PantherScript {
    module: Option<Module>,
    /// `rule()` lowered into the IR (`Module::lower`), exact on events that meet its
    /// precondition ([`PantherScript::lowered_rule`]); the engine evaluates it instead of
    /// calling `rule()` on those.
    lowered_rule: Option<crate::python::Lowered>,
    alert_title: Option<String>,
    alert_context: Vec<(String, FieldPath)>,
    yaml_severity: Severity,
    display_name: String,
}

impl NativeBody for PantherScript {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// What a matched event gets from the script.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScriptOutput {
    /// `None` keeps the rule's title.
    pub title: Option<String>,
    /// `None` keeps the rule's severity.
    pub severity: Option<Severity>,
    pub context: Option<Value>,
    /// Always set: the dedup string, else the title.
    pub dedup: String,
    /// Errors raised by title/severity/alert_context/dedup (the match stands).
    pub errors: Vec<String>,
}

/// Why `rule()` gave no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleError {
    Budget,
    Runtime(String),
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleError::Budget => f.write_str("rule(): step budget exceeded"),
            RuleError::Runtime(message) => write!(f, "rule(): {message}"),
        }
    }
}

impl PantherScript {
    pub fn new(
        module: Option<Module>,
        alert_title: Option<String>,
        alert_context: Vec<(String, FieldPath)>,
        yaml_severity: Severity,
        display_name: String,
    ) -> PantherScript {
        let lowered_rule = module
            .as_ref()
            .and_then(|m| m.lower("rule").ok())
            .map(crate::python::Lowered::new);
        PantherScript {
            module,
            lowered_rule,
            alert_title,
            alert_context,
            yaml_severity,
            display_name,
        }
    }

    /// What decides this script's matches and dedup strings, as text, for fingerprinting the
    /// rule's definition (`--state`, hot reload): the module's code and the simple-detection
    /// title and context.
    pub fn definition_text(&self) -> String {
        let context: Vec<(&str, &str)> = self
            .alert_context
            .iter()
            .map(|(name, field)| (name.as_str(), field.raw.as_str()))
            .collect();
        format!(
            "module={}\ntitle={:?}\ncontext={context:?}",
            self.module
                .as_ref()
                .map(Module::definition_text)
                .unwrap_or_default(),
            self.alert_title,
        )
    }

    pub fn has_module(&self) -> bool {
        self.module.is_some()
    }

    /// `rule()` as an IR expression, when it lowers: equal to `rule()` being truthy on every
    /// event for which `crate::python::lowering_precondition_holds` is true, and only there.
    /// Mocks are not applied to it.
    pub fn lowered_rule(&self) -> Option<&Expr> {
        self.lowered_rule.as_ref().map(crate::python::Lowered::expr)
    }

    /// [`PantherScript::lowered_rule`] with its precondition's paths collected.
    pub fn lowered(&self) -> Option<&crate::python::Lowered> {
        self.lowered_rule.as_ref()
    }

    /// Runs `rule()` (a rule without a module matches: its YAML detection already held) and,
    /// on a match, the output functions. `Ok(None)` is a non-match.
    pub fn run(
        &self,
        event: &Event<'_>,
        ctx: &mut CallCtx<'_>,
    ) -> Result<Option<ScriptOutput>, RuleError> {
        self.run_with(event, ctx, false)
    }

    /// Like [`PantherScript::run`]; with `rule_known_true`, the caller has already established
    /// that `rule()` holds (through [`PantherScript::lowered_rule`]) and only the output
    /// functions run.
    pub fn run_with(
        &self,
        event: &Event<'_>,
        ctx: &mut CallCtx<'_>,
        rule_known_true: bool,
    ) -> Result<Option<ScriptOutput>, RuleError> {
        if !rule_known_true
            && let Some(module) = &self.module
            && module.has_function("rule")
        {
            match module.call("rule", event, ctx) {
                Ok(value) if crate::python::truthy(&value) => {}
                Ok(_) => return Ok(None),
                Err(PyError::Budget) => return Err(RuleError::Budget),
                Err(PyError::Runtime { line, message }) => {
                    return Err(RuleError::Runtime(format!("line {line}: {message}")));
                }
            }
        }
        Ok(Some(self.outputs(event, ctx)))
    }

    fn outputs(&self, event: &Event<'_>, ctx: &mut CallCtx<'_>) -> ScriptOutput {
        let mut errors = Vec::new();
        let mut call = |name: &str, ctx: &mut CallCtx<'_>| -> Option<Value> {
            let module = self.module.as_ref()?;
            if !module.has_function(name) {
                return None;
            }
            match module.call(name, event, ctx) {
                Ok(value) => Some(value),
                Err(err) => {
                    errors.push(format!("{name}(): {err}"));
                    None
                }
            }
        };
        let title = match call("title", ctx) {
            Some(value) => non_empty_text(&value),
            None => self
                .alert_title
                .as_ref()
                .map(|template| fill_template(template, event)),
        };
        let severity = call("severity", ctx)
            .and_then(|value| non_empty_text(&value))
            .and_then(|text| match text.to_ascii_uppercase().as_str() {
                "DEFAULT" => None,
                other => Severity::parse(other),
            })
            .filter(|severity| *severity != self.yaml_severity);
        let context = match call("alert_context", ctx) {
            Some(value) => Some(value),
            None if !self.alert_context.is_empty() => {
                let mut map = Map::new();
                for (name, path) in &self.alert_context {
                    map.insert(
                        name.clone(),
                        event.first(path).cloned().unwrap_or(Value::Null),
                    );
                }
                Some(Value::Object(map))
            }
            None => None,
        };
        let mut dedup = call("dedup", ctx)
            .and_then(|value| non_empty_text(&value))
            .or_else(|| title.clone())
            .unwrap_or_else(|| self.display_name.clone());
        truncate_chars(&mut dedup, MAX_DEDUP_CHARS);
        ScriptOutput {
            title,
            severity,
            context,
            dedup,
            errors,
        }
    }
}

/// Panther keeps the first 1000 characters of a dedup string.
pub const MAX_DEDUP_CHARS: usize = 1000;

fn truncate_chars(text: &mut String, max: usize) {
    if let Some((cut, _)) = text.char_indices().nth(max) {
        text.truncate(cut);
    }
}

/// The text of a function's result, `None` when it is empty or `None`.
fn non_empty_text(value: &Value) -> Option<String> {
    text_of(value)
        .map(|text| text.into_owned())
        .filter(|text| !text.is_empty())
}

/// Fills `{field}` placeholders (dotted paths allowed) from the event; a missing field is
/// written as `<UNKNOWN>`, a `{` without a closing `}` as is.
fn fill_template(template: &str, event: &Event<'_>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let path = FieldPath::new(after[..close].trim());
                match event.first(&path).and_then(text_of) {
                    Some(text) => out.push_str(&text),
                    None => out.push_str("<UNKNOWN>"),
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn script(source: &str) -> PantherScript {
        let module = parse_module(source, "t.py").unwrap_or_else(|err| panic!("{err:?}"));
        PantherScript::new(
            Some(module),
            None,
            Vec::new(),
            Severity::Low,
            "Display".into(),
        )
    }

    fn run(script: &PantherScript, event: Value) -> Result<Option<ScriptOutput>, RuleError> {
        let mut kv = kv::LruKv::new(kv::KvLimits::default());
        let mocks = Mocks::none();
        let mut ctx = CallCtx {
            step_budget: 10_000,
            state: &mut kv,
            now_ms: 0,
            mocks: &mocks,
        };
        script.run(&Event::new(&event), &mut ctx)
    }

    #[test]
    fn functions_fill_the_output() {
        let script = script(
            "def rule(event):\n    return event.get('a') == 1\n\ndef title(event):\n    return f\"A is {event.get('a')}\"\n\ndef severity(event):\n    return 'HIGH'\n\ndef alert_context(event):\n    return {'user': event.get('u')}\n",
        );
        assert_eq!(run(&script, json!({"a": 2})), Ok(None));
        let output = run(&script, json!({"a": 1, "u": "bob"})).unwrap().unwrap();
        assert_eq!(output.title.as_deref(), Some("A is 1"));
        assert_eq!(output.severity, Some(Severity::High));
        assert_eq!(output.context, Some(json!({"user": "bob"})));
        assert_eq!(output.dedup, "A is 1");
        assert!(output.errors.is_empty());
    }

    #[test]
    fn default_severity_budget_and_errors() {
        let script = script(
            "def rule(event):\n    return True\n\ndef severity(event):\n    return 'DEFAULT'\n\ndef dedup(event):\n    return event['missing']\n",
        );
        let output = run(&script, json!({})).unwrap().unwrap();
        assert_eq!(output.severity, None);
        assert_eq!(output.dedup, "Display");
        assert_eq!(output.errors.len(), 1, "{:?}", output.errors);
        let looping = script_loop();
        assert_eq!(run(&looping, json!({})), Err(RuleError::Budget));
    }

    fn script_loop() -> PantherScript {
        script(
            "def rule(event):\n    n = 0\n    while True:\n        n = n + 1\n    return n > 0\n",
        )
    }

    #[test]
    fn dedup_is_cut_at_1000_characters() {
        let script = script(
            "def rule(event):\n    return True\n\ndef dedup(event):\n    return 'é' * 1500\n",
        );
        let output = run(&script, json!({})).unwrap().unwrap();
        assert_eq!(output.dedup.chars().count(), MAX_DEDUP_CHARS);
    }

    #[test]
    fn alert_title_template() {
        let event = json!({"repo": "org/x", "a": {"b": 1}});
        let event = Event::new(&event);
        assert_eq!(
            fill_template("Repository [{repo}] {a.b} {nope} {open", &event),
            "Repository [org/x] 1 <UNKNOWN> {open"
        );
    }
}
