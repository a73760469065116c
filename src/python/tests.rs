//! Golden tests: a small module and an event in, the expected JSON result out.

use serde_json::{Value, json};

use super::*;
use crate::event::Event;

fn run_with(
    src: &str,
    func: &str,
    event: Value,
    mocks: &Mocks,
    kv: &mut MemoryKv,
) -> Result<Value, PyError> {
    let module = Module::parse(src, "test.py").map_err(|d| PyError::Runtime {
        line: d.line,
        message: format!("load: {}", d.message),
    })?;
    let ev = Event::new(&event);
    let mut ctx = CallCtx {
        step_budget: 100_000,
        state: kv,
        now_ms: 1_700_000_000_000,
        mocks,
    };
    module.call(func, &ev, &mut ctx)
}

fn run(src: &str, event: Value) -> Result<Value, PyError> {
    run_with(src, "rule", event, &Mocks::none(), &mut MemoryKv::new(16))
}

fn ok(src: &str, event: Value) -> Value {
    match run(src, event) {
        Ok(v) => v,
        Err(e) => panic!("{src}\nfailed: {e}"),
    }
}

fn load_err(src: &str) -> PyDiag {
    match Module::parse(src, "t.py") {
        Ok(_) => panic!("{src}\nloaded"),
        Err(d) => d,
    }
}

#[test]
fn single_return_over_event_get() {
    let src = "def rule(event):\n    return event.get('eventName') == 'ConsoleLogin'\n";
    assert_eq!(ok(src, json!({"eventName": "ConsoleLogin"})), json!(true));
    assert_eq!(ok(src, json!({"eventName": "consolelogin"})), json!(false));
    assert_eq!(ok(src, json!({})), json!(false));
}

#[test]
fn has_function_lists_top_level_defs() {
    let m = Module::parse(
        "X = 1\ndef rule(e):\n    return True\ndef title(e):\n    return 'x'\n",
        "t.py",
    )
    .unwrap();
    assert!(m.has_function("rule"));
    assert!(m.has_function("title"));
    assert!(!m.has_function("dedup"));
    assert!(!m.has_function("X"));
}

#[test]
fn truthy_matches_python() {
    assert!(!truthy(&json!(null)));
    assert!(!truthy(&json!(0)));
    assert!(!truthy(&json!("")));
    assert!(!truthy(&json!([])));
    assert!(!truthy(&json!({})));
    assert!(truthy(&json!("a")));
    assert!(truthy(&json!(0.5)));
}
