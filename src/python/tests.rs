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

fn eval(expr: &str) -> Value {
    ok(&format!("def rule(event):\n    return {expr}\n"), json!({}))
}

#[test]
fn expressions_follow_python_semantics() {
    let cases: &[(&str, Value)] = &[
        ("1 + 2 * 3", json!(7)),
        ("7 // 2, -7 // 2, 7 % 3, -7 % 3", json!([3, -4, 1, 2])),
        ("7 / 2", json!(3.5)),
        ("2 ** 10", json!(1024)),
        ("'a' + 'b' * 2", json!("abb")),
        ("1 < 2 < 3, 1 < 3 < 2", json!([true, false])),
        ("None or 'x', 0 and 1, [] or {}", json!(["x", 0, {}])),
        ("not [], not 'a'", json!([true, false])),
        (
            "'b' in 'abc', 2 in [1, 2], 'k' in {'k': 1}, 3 not in {1, 2}",
            json!([true, true, true, true]),
        ),
        ("None is None, 1 is not None", json!([true, true])),
        ("'x' if 0 else 'y'", json!("y")),
        ("[x * 2 for x in range(4) if x != 1]", json!([0, 4, 6])),
        (
            "{k: v for k, v in [('a', 1), ('b', 2)]}",
            json!({"a": 1, "b": 2}),
        ),
        ("sorted({3, 1, 2})", json!([1, 2, 3])),
        (
            "any(x > 2 for x in [1, 3]), all(x > 2 for x in [1, 3])",
            json!([true, false]),
        ),
        ("len('héllo'), len([1, 2]), len({'a': 1})", json!([5, 2, 1])),
        (
            "str(1.0), str(True), str(None), repr('a')",
            json!(["1.0", "True", "None", "'a'"]),
        ),
        ("int('42'), float('1.5'), bool('')", json!([42, 1.5, false])),
        (
            "'abcdef'[1:4], 'abcdef'[::-1], [1, 2, 3][-1]",
            json!(["bcd", "fedcba", 3]),
        ),
        (
            "max([3, 7, 5]), min(4, 2), sum([1, 2, 3])",
            json!([7, 2, 6]),
        ),
        (
            "list(enumerate('ab')), list(zip([1, 2], 'xy'))",
            json!([[[0, "a"], [1, "b"]], [[1, "x"], [2, "y"]]]),
        ),
        (
            "isinstance('a', str), isinstance(1, (str, int)), isinstance([], dict)",
            json!([true, true, false]),
        ),
        (
            "1 == 1.0, 'a' == 'A', [1, 2] == [1, 2], (1,) == [1]",
            json!([true, false, true, false]),
        ),
        (
            "{1, 2} | {3}, {1, 2} & {2}, {1, 2} - {1}",
            json!([[1, 2, 3], [2], [2]]),
        ),
    ];
    for (expr, want) in cases {
        assert_eq!(&eval(expr), want, "{expr}");
    }
}

#[test]
fn string_methods() {
    let cases: &[(&str, Value)] = &[
        ("'AbC'.lower(), 'abc'.upper()", json!(["abc", "ABC"])),
        (
            "'arn:aws:iam'.startswith('arn:'), 'x.yml'.endswith(('.yml', '.yaml'))",
            json!([true, true]),
        ),
        (
            "'a,b,,c'.split(','), ' a  b '.split(), 'a:b:c'.split(':', 1)",
            json!([["a", "b", "", "c"], ["a", "b"], ["a", "b:c"]]),
        ),
        ("'a/b/c'.rsplit('/', 1)", json!(["a/b", "c"])),
        (
            "'  x '.strip(), 'xxay'.lstrip('x'), 'a..'.rstrip('.')",
            json!(["x", "ay", "a"]),
        ),
        (
            "'aaa'.replace('a', 'b', 2), '-'.join(['a', 'b'])",
            json!(["bba", "a-b"]),
        ),
        (
            "'{} is {}'.format('x', 1), '{a}!'.format(a='hi'), '{0}{0}'.format('z')",
            json!(["x is 1", "hi!", "zz"]),
        ),
        (
            "'hello'.find('l'), 'hello'.rfind('l'), 'hello'.find('z'), 'hello'.count('l')",
            json!([2, 3, -1, 2]),
        ),
        (
            "'abc'.removeprefix('a'), 'a=b=c'.partition('=')",
            json!(["bc", ["a", "=", "b=c"]]),
        ),
        ("'%s-%d' % ('a', 3)", json!("a-3")),
    ];
    for (expr, want) in cases {
        assert_eq!(&eval(expr), want, "{expr}");
    }
}

#[test]
fn fstrings_with_format_specs() {
    let cases: &[(&str, Value)] = &[
        ("f\"{'x'}-{1 + 1}\"", json!("x-2")),
        (
            "f'{3.14159:.2f}|{5:03d}|{42:>5}|{\"ab\":<4}|'",
            json!("3.14|005|   42|ab  |"),
        ),
        (
            "f'{1234567:,}|{0.25:.0%}|{255:x}'",
            json!("1,234,567|25%|ff"),
        ),
        ("f'{[1, \"a\"]!r} {None}'", json!("[1, 'a'] None")),
        ("f'{{literal}}'", json!("{literal}")),
    ];
    for (expr, want) in cases {
        assert_eq!(&eval(expr), want, "{expr}");
    }
}

#[test]
fn statements_loops_and_functions() {
    let src = r#"
ALLOWED = {"a", "b"}
COUNT = 0

def helper(x, scale=2, *, extra=0):
    return x * scale + extra

def rule(event):
    global COUNT
    total = 0
    for i, name in enumerate(event.get("names", [])):
        if name in ALLOWED:
            continue
        if name == "stop":
            break
        total += helper(i, extra=1)
    else:
        total = -1
    a, (b, c) = 1, (2, 3)
    items = []
    items += [a, b]
    items.append(c)
    COUNT += len(items)
    while total > 100:
        total -= 100
    return {"total": total, "items": items, "count": COUNT, "lam": (lambda y: y + 1)(1)}
"#;
    assert_eq!(
        ok(src, json!({"names": ["a", "x", "y", "stop", "z"]})),
        json!({"total": 8, "items": [1, 2, 3], "count": 3, "lam": 2})
    );
    assert_eq!(ok(src, json!({"names": ["a"]}))["total"], json!(-1));
}

#[test]
fn try_except_catches_runtime_errors() {
    let src = r#"
def rule(event):
    out = []
    try:
        {}["missing"]
    except KeyError:
        out.append("key")
    try:
        [][1]
    except LookupError as err:
        out.append("lookup")
    try:
        int("x")
    except (TypeError, ValueError):
        out.append("value")
    try:
        None.lower()
    except AttributeError:
        out.append("attr")
    try:
        1 + "a"
    except Exception:
        out.append("type")
    else:
        out.append("no")
    finally:
        out.append("finally")
    return out
"#;
    assert_eq!(
        ok(src, json!({})),
        json!(["key", "lookup", "value", "attr", "type", "finally"])
    );
    let uncaught = "def rule(event):\n    x = 1\n    return {}['k']\n";
    assert_eq!(
        run(uncaught, json!({})),
        Err(PyError::Runtime {
            line: 3,
            message: "KeyError: 'k'".into()
        })
    );
}

#[test]
fn event_accessors() {
    let ev = json!({
        "eventName": "PutBucketPolicy",
        "userIdentity": {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"userName": "admin"}}},
        "requestParameters": {"items": [{"id": "a"}, {"id": "b"}, {"other": 1}]},
        "errorCode": null
    });
    let cases: &[(&str, Value)] = &[
        (
            "event.get('eventName'), event.get('nope', 'd'), event.get('errorCode', 'd')",
            json!(["PutBucketPolicy", "d", null]),
        ),
        (
            "event['eventName'], 'eventName' in event, 'x' in event",
            json!(["PutBucketPolicy", true, false]),
        ),
        (
            "event.deep_get('userIdentity', 'type'), event.deep_get('a', 'b', default='z')",
            json!(["AssumedRole", "z"]),
        ),
        (
            "event.deep_get('userIdentity', 'type', 'x', default='z')",
            json!("z"),
        ),
        (
            "event.deep_walk('requestParameters', 'items', 'id')",
            json!(["a", "b"]),
        ),
        (
            "event.deep_walk('requestParameters', 'items', 'id', return_val='last')",
            json!("b"),
        ),
        (
            "event.get('userIdentity').get('type'), event.get('eventname')",
            json!(["AssumedRole", "PutBucketPolicy"]),
        ),
        (
            "event.udm('actor_user'), event.udm('user_agent'), event.udm('eventName')",
            json!(["admin", null, "PutBucketPolicy"]),
        ),
    ];
    for (expr, want) in cases {
        let src = format!("def rule(event):\n    return {expr}\n");
        assert_eq!(&ok(&src, ev.clone()), want, "{expr}");
    }
}

#[test]
fn aws_and_base_helpers() {
    let src = r#"
from panther_aws_helpers import aws_cloudtrail_success, aws_rule_context
from panther_base_helpers import deep_get, pattern_match, pattern_match_list, is_ip_in_network

def rule(event):
    ctx = aws_rule_context(event)
    return [
        aws_cloudtrail_success(event),
        ctx["eventName"], ctx["awsRegion"],
        deep_get(event, "a", "b", default=0),
        pattern_match("arn:aws:iam::1:role/Admin", "*:role/Adm?n"),
        pattern_match_list("x.txt", ["*.yml", "[wx].t*"]),
        is_ip_in_network("10.1.2.3", ["192.168.0.0/16", "10.0.0.0/8"]),
    ]
"#;
    assert_eq!(
        ok(src, json!({"eventName": "X", "errorMessage": "denied"})),
        json!([false, "X", "<MISSING_AWS_REGION>", 0, true, true, true])
    );
    assert_eq!(
        ok(src, json!({"eventName": "X", "errorCode": ""}))[0],
        json!(true)
    );
}

#[test]
fn stdlib_modules() {
    let src = r#"
import json
import re
import ipaddress
from fnmatch import fnmatch
from datetime import datetime, timedelta

def rule(event):
    doc = json.loads('{"a": [1, 2.5, null, true]}')
    ip = ipaddress.ip_address("10.0.0.1")
    when = datetime.strptime("2024-01-02 03:04:05", "%Y-%m-%d %H:%M:%S") + timedelta(hours=1)
    return [
        doc["a"], json.dumps({"k": [1, "é"], "n": None}),
        bool(re.search(r"i-[0-9a-f]+$", "role/i-0abc")), re.findall(r"(\d+)-(\w)", "1-a 22-b"),
        re.match("b", "ab") is None, bool(re.fullmatch("a|ab", "ab")),
        ip.is_private, ipaddress.ip_address("8.8.8.8").is_global, ip in ipaddress.ip_network("10.0.0.0/8"),
        fnmatch("file.py", "*.py"), when.isoformat(), when.strftime("%Y/%m/%d %H"),
    ]
"#;
    assert_eq!(
        ok(src, json!({})),
        json!([
            [1, 2.5, null, true],
            "{\"k\": [1, \"\\u00e9\"], \"n\": null}",
            true,
            [["1", "a"], ["22", "b"]],
            true,
            true,
            true,
            true,
            true,
            true,
            "2024-01-02T04:04:05",
            "2024/01/02 04"
        ])
    );
}

#[test]
fn caching_helpers_use_the_kv_state() {
    let src = r#"
from panther_detection_helpers.caching import get_string_set, put_string_set, increment_counter, check_account_age

def rule(event):
    seen = get_string_set("k")
    put_string_set("k", ["a", event.get("v")])
    return [sorted(seen), increment_counter("c"), check_account_age("k"), check_account_age("")]
"#;
    let mut kv = MemoryKv::new(8);
    let first = run_with(src, "rule", json!({"v": "b"}), &Mocks::none(), &mut kv);
    assert_eq!(first, Ok(json!([[], 1, true, false])));
    let second = run_with(src, "rule", json!({"v": "c"}), &Mocks::none(), &mut kv);
    assert_eq!(second, Ok(json!([["a", "b"], 2, true, false])));
}

#[test]
fn mocks_patch_functions_and_constants() {
    let src = r#"
from unittest.mock import MagicMock
from panther_detection_helpers.caching import check_account_age
ALLOW = []

def rule(event):
    allow = ALLOW
    if isinstance(ALLOW, MagicMock):
        allow = ALLOW()
    return [check_account_age("x"), allow]
"#;
    let mut mocks = Mocks::none();
    mocks.insert("check_account_age", json!("True"));
    mocks.insert("ALLOW", json!("[1]"));
    let got = run_with(src, "rule", json!({}), &mocks, &mut MemoryKv::new(4));
    assert_eq!(got, Ok(json!(["True", "[1]"])));
}

#[test]
fn limits_stop_runaway_code() {
    let spin = "def rule(event):\n    while True:\n        pass\n";
    assert_eq!(run(spin, json!({})), Err(PyError::Budget));
    let deep = "def f(n):\n    return f(n + 1)\n\ndef rule(event):\n    return f(0)\n";
    assert!(
        matches!(run(deep, json!({})), Err(PyError::Runtime { message, .. }) if message.contains("recursion"))
    );
    let big = "def rule(event):\n    return len('x' * 2000000)\n";
    assert!(
        matches!(run(big, json!({})), Err(PyError::Runtime { message, .. }) if message.contains("limit"))
    );
}

#[test]
fn constructs_outside_the_subset_are_load_errors() {
    let cases: &[(&str, u32, &str)] = &[
        ("import os\n", 1, "unsupported: import of module os"),
        (
            "x = 1\nclass A:\n    pass\n",
            2,
            "unsupported: class definition",
        ),
        (
            "def rule(e):\n    with open('f') as f:\n        pass\n",
            2,
            "unsupported: with statement",
        ),
        ("def rule(e):\n    yield 1\n", 2, "unsupported: yield"),
        (
            "from panther_misp_helpers import get_misp_warning_lists\n",
            1,
            "unsupported",
        ),
        ("import re\nP = re.compile(r'(?<=a)b')\n", 2, "look-around"),
        ("def rule(e):\n    return 1 +\n", 2, "syntax error"),
    ];
    for (src, line, needle) in cases {
        let d = load_err(src);
        assert_eq!(d.line, *line, "{src}: {d}");
        assert!(d.message.contains(needle), "{src}: {d}");
    }
}

#[test]
fn event_objects_are_case_insensitive_mappings() {
    let src = "from collections.abc import Mapping\ndef rule(event):\n    ui = event.get('userIdentity')\n    return [ui.get('TYPE'), 'Type' in ui, isinstance(ui, dict), isinstance(ui, Mapping), isinstance(dict(ui), dict)]\n";
    assert_eq!(
        ok(src, json!({"userIdentity": {"type": "Root"}})),
        json!(["Root", true, false, true, true])
    );
}

fn lowered_agrees(src: &str, events: &[Value]) -> usize {
    let module = Module::parse(src, "t.py").unwrap();
    let expr = match module.lower("rule") {
        Ok(e) => e,
        Err(why) => panic!("{src}\nnot lowered: {why}"),
    };
    let mut checked = 0;
    for ev in events {
        let event = Event::new(ev);
        if !lowering_precondition_holds(&expr, &event) {
            continue;
        }
        let by_ir = crate::eval::matcher::matches(&expr, &event);
        let by_python = matches!(run(src, ev.clone()), Ok(v) if truthy(&v));
        assert_eq!(by_ir, by_python, "{src}\non {ev}");
        checked += 1;
    }
    checked
}

#[test]
fn lowering_matches_the_evaluator() {
    let events = [
        json!({}),
        json!({"eventName": "DeleteTrail"}),
        json!({"eventName": "DeleteTrail", "errorCode": "AccessDenied"}),
        json!({"eventName": "DeleteTrail", "errorCode": ""}),
        json!({"eventName": "StopLogging", "errorMessage": null}),
        json!({"eventName": null}),
        json!({"eventName": "deletetrail", "userIdentity": {"type": "Root", "arn": "arn:aws:iam::1:root"}}),
        json!({"eventName": "UpdateTrail", "userIdentity": {"type": "IAMUser"}, "eventSource": "cloudtrail.amazonaws.com"}),
        json!({"userIdentity": {"type": null}, "eventSource": "s3.amazonaws.com"}),
        json!({"userIdentity": null}),
    ];
    let sources = [
        "from panther_aws_helpers import aws_cloudtrail_success\nNAMES = {'DeleteTrail', 'StopLogging'}\ndef rule(event):\n    return event.get('eventName') in NAMES and aws_cloudtrail_success(event)\n",
        "def rule(event):\n    if event.get('eventName') != 'UpdateTrail':\n        return False\n    kind = event.deep_get('userIdentity', 'type', default='none')\n    if kind == 'Root':\n        return True\n    return event.get('eventSource', '').endswith('.amazonaws.com')\n",
        "def rule(event):\n    return event.get('eventName').lower() == 'deletetrail'\n",
        "def rule(event):\n    return event.deep_get('userIdentity', 'arn', default='').startswith(('arn:aws:iam', 'x'))\n",
        "def rule(event):\n    return event.get('eventName') is not None and not event.get('errorCode')\n",
        "def rule(event):\n    return all([event.get('eventName') == 'DeleteTrail', event.deep_get('userIdentity', 'type') == 'Root'])\n",
    ];
    for src in sources {
        assert!(lowered_agrees(src, &events) >= 8, "{src}");
    }
}

#[test]
fn lowering_refuses_what_it_cannot_state_exactly() {
    let cases: &[(&str, &str)] = &[
        (
            "def rule(event):\n    for x in event.get('a', []):\n        return True\n",
            "for",
        ),
        (
            "def rule(event):\n    return event.get('n') == '1'\n",
            "number",
        ),
        (
            "import re\ndef rule(event):\n    return re.search('a', event.get('x', ''))\n",
            "method search",
        ),
        (
            "def rule(event):\n    return len(event.get('x', '')) > 2\n",
            "ordering comparison",
        ),
        (
            "def rule(event):\n    return bool(len(event.get('x', '')))\n",
            "call of bool()",
        ),
    ];
    for (src, needle) in cases {
        let module = Module::parse(src, "t.py").unwrap();
        match module.lower("rule") {
            Ok(e) => panic!("{src}\nlowered to {e:?}"),
            Err(why) => assert!(why.contains(needle), "{src}: {why}"),
        }
    }
}

#[test]
fn hostile_sources_and_structures_fail_cleanly() {
    let deep = format!(
        "def rule(event):\n    return {}1{}\n",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    assert!(load_err(&deep).message.contains("nesting deeper"));
    let cyclic = "def rule(event):\n    a = []\n    a.append(a)\n    return str(a) == str(a)\n";
    assert!(
        matches!(run(cyclic, json!({})), Err(PyError::Runtime { message, .. }) if message.contains("nested too deeply"))
    );
    let grid = "def rule(event):\n    return len([[0] * 100000 for i in range(100000)])\n";
    assert_eq!(run(grid, json!({})), Err(PyError::Budget));
}

#[test]
fn unimplemented_attributes_are_unsupported_not_catchable() {
    let src = "def rule(event):\n    try:\n        return 'a b'.translate({})\n    except Exception:\n        return 'caught'\n";
    assert!(
        matches!(run(src, json!({})), Err(PyError::Runtime { message, .. }) if message.contains("unsupported: attribute translate"))
    );
    let none_attr = "def rule(event):\n    try:\n        return event.get('x').lower()\n    except AttributeError:\n        return 'caught'\n";
    assert_eq!(ok(none_attr, json!({})), json!("caught"));
}

#[test]
fn json_loads_keeps_key_order() {
    let src = "import json\ndef rule(event):\n    d = json.loads('{\"z\": 1, \"a\": {\"y\": 2, \"b\": 3}, \"z\": 4}')\n    return [list(d.keys()), json.dumps(d), isinstance(d, dict)]\n";
    assert_eq!(
        ok(src, json!({})),
        json!([["z", "a"], "{\"z\": 4, \"a\": {\"y\": 2, \"b\": 3}}", true])
    );
}

#[test]
fn modules_are_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Module>();
    let module = std::sync::Arc::new(
        Module::parse("def rule(event):\n    return event.get('a') == 1\n", "t.py").unwrap(),
    );
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let m = module.clone();
            std::thread::spawn(move || {
                let ev = json!({"a": i});
                let mut kv = MemoryKv::new(1);
                let mocks = Mocks::none();
                let mut ctx = CallCtx {
                    step_budget: 1000,
                    state: &mut kv,
                    now_ms: 0,
                    mocks: &mocks,
                };
                m.call("rule", &Event::new(&ev), &mut ctx)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results, vec![Ok(json!(false)), Ok(json!(true))]);
}

#[test]
fn module_globals_are_reused_only_when_nothing_can_change_them() {
    assert!(native::globals_reusable(&parser::parse_module("import re\nNAMES = {'a', 'b'}\nP = re.compile('x')\ndef rule(e):\n    return e.get('n') in NAMES\n").unwrap()));
    for src in [
        "SEEN = []\ndef rule(e):\n    SEEN.append(1)\n    return len(SEEN)\n",
        "N = 0\ndef rule(e):\n    global N\n    N = N + 1\n    return N\n",
        "D = {}\ndef rule(e):\n    D['k'] = 1\n    return D\n",
        "import datetime\nNOW = datetime.datetime.utcnow()\ndef rule(e):\n    return NOW\n",
    ] {
        assert!(
            !native::globals_reusable(&parser::parse_module(src).unwrap()),
            "{src}"
        );
    }
    // A module that mutates its globals is evaluated afresh each call, so calls do not leak.
    let src = "SEEN = []\ndef rule(e):\n    SEEN.append(1)\n    return len(SEEN)\n";
    let module = Module::parse(src, "t.py").unwrap();
    let mut kv = MemoryKv::new(1);
    let mocks = Mocks::none();
    let ev = json!({});
    for _ in 0..3 {
        let mut ctx = CallCtx {
            step_budget: 1000,
            state: &mut kv,
            now_ms: 0,
            mocks: &mocks,
        };
        assert_eq!(
            module.call("rule", &Event::new(&ev), &mut ctx),
            Ok(json!(1))
        );
    }
    // A reusable module answers the same with and without its cached globals, and mocks still
    // apply.
    let src = "NAMES = {'a'}\ndef rule(e):\n    return e.get('n') in NAMES\n";
    let module = Module::parse(src, "t.py").unwrap();
    let mut mocked = Mocks::none();
    mocked.insert("NAMES", json!(["b"]));
    let ev = json!({"n": "a"});
    for (mocks, want) in [
        (&mocks, true),
        (&mocks, true),
        (&mocked, false),
        (&mocks, true),
    ] {
        let mut ctx = CallCtx {
            step_budget: 1000,
            state: &mut kv,
            now_ms: 0,
            mocks,
        };
        assert_eq!(
            module.call("rule", &Event::new(&ev), &mut ctx),
            Ok(json!(want))
        );
    }
}

/// A `%` format width is checked against the string limit before the pad is built, and a
/// format-spec width too large for `usize` saturates instead of overflowing: both are a
/// runtime error, never a huge allocation or a panic.
#[test]
fn format_widths_are_bounded() {
    let src = "def rule(event):\n    return '%50000000s' % 'x'\n";
    assert!(matches!(run(src, json!({})), Err(PyError::Runtime { .. })));
    let src = "def rule(event):\n    return f\"{'x':99999999999999999999999}\"\n";
    assert!(matches!(run(src, json!({})), Err(PyError::Runtime { .. })));
    assert_eq!(
        ok("def rule(event):\n    return '%5s' % 'x'\n", json!({})),
        json!("    x")
    );
}

/// Trap: `event.get` and `deep_get` read the raw event without converting what they pass
/// through; their answers must stay those of the converted case-insensitive objects (the key
/// as written, else the first key equal ignoring case in the parsed object's order, a
/// duplicated key at its last occurrence), on the scanner's path and on the serde_json one
/// (a `\u` escape makes the whole line parsed).
#[test]
fn raw_event_lookups_answer_as_the_converted_objects() {
    let src = "def rule(event):\n    return [event.get('ab'), event['AB'], event.get('dup'), event.deep_get('ui', 'accesskeyid'), event.deep_get('UI', 'AccessKeyId', 'x', default='d'), event.deep_get('ui', 'type', default='d'), event.deep_get('nope', 'type', default={'type': 't'}), event.deep_get('ui', 'n', default='d')]\n";
    let module = Module::parse(src, "t.py").unwrap();
    for (text, escaped) in [
        (
            r#"{"aB":2,"Ab":1,"dup":1,"DUP":5,"dup":2,"ui":{"accessKeyId":"j","AccessKeyID":"k","n":null}}"#,
            false,
        ),
        (
            r#"{"aB":2,"Ab":1,"dup":1,"DUP":5,"dup":2,"ui":{"accessKeyId":"j","AccessKeyID":"k","n":null},"e":"\u0041"}"#,
            true,
        ),
    ] {
        let event = Event::parse(text).unwrap();
        assert_eq!(event.has_unicode_escape(), escaped);
        let mut kv = MemoryKv::new(16);
        let mut ctx = CallCtx {
            step_budget: 100_000,
            state: &mut kv,
            now_ms: 1_700_000_000_000,
            mocks: &Mocks::none(),
        };
        let got = module.call("rule", &event, &mut ctx).unwrap();
        assert_eq!(got, json!([1, 1, 2, "k", "d", "d", "t", "d"]), "{text}");
    }
}

/// The precondition of a lowering, read from the lazy event: each case of its definition, on
/// the scanner's path and on the serde_json one (a `\u` escape).
#[test]
fn lowering_precondition_cases() {
    let src = "def rule(event):\n    return event.get('eventName') == 'A' and event.deep_get('userIdentity', 'type') == 'Root'\n";
    let expr = Module::parse(src, "t.py").unwrap().lower("rule").unwrap();
    for (text, want) in [
        (r#"{"eventName":"A","userIdentity":{"type":"Root"}}"#, true),
        (r#"{"EventName":"A"}"#, false),
        (r#"{"eventName":"A","userIdentity":{"Type":"Root"}}"#, false),
        (r#"{"eventName":"A","userIdentity.type":"x"}"#, false),
        (r#"{"eventName":"A","userIdentity":null}"#, true),
        (r#"{"eventName":"A","userIdentity":{"type":1}}"#, false),
        (r#"{"eventName":"A","userIdentity":"str"}"#, false),
        (
            r#"{"eventName":"A","userIdentity":{"type":{"a":1}}}"#,
            false,
        ),
        (r#"{"eventName":["A"]}"#, false),
        (r#"{}"#, true),
        (
            r#"{"eventName":"A","e":"\u0041","userIdentity":{"type":"Root"}}"#,
            true,
        ),
        (r#"{"EVENTNAME":"A","e":"\u0041"}"#, false),
        (
            r#"{"eventName":"A","userIdentity":{"type":"x","type":null}}"#,
            true,
        ),
    ] {
        let event = Event::parse(text).unwrap();
        assert_eq!(lowering_precondition_holds(&expr, &event), want, "{text}");
    }
}

#[test]
fn pantherflow_query_reads_the_p_any_fields_in_key_order() {
    // `aws_rule_context` builds the query from the event's `p_any_*` fields: in the order of
    // a walk over the whole object (sorted keys), a duplicated key at its last value. The
    // event decoded lazily (only those fields built) must give what the whole object gives.
    let src = r#"
from panther_aws_helpers import aws_rule_context

def rule(event):
    return aws_rule_context(event)["PantherFlow Investigation"]
"#;
    let module = Module::parse(src, "t.py").unwrap();
    let call = |event: &Event<'_>| {
        let mut kv = MemoryKv::new(16);
        let mocks = Mocks::none();
        let mut ctx = CallCtx {
            step_budget: 100_000,
            state: &mut kv,
            now_ms: 1_700_000_000_000,
            mocks: &mocks,
        };
        module.call("rule", event, &mut ctx).unwrap()
    };
    let text = r#"{"p_log_type":"AWS.CloudTrail","p_event_time":"2024-01-01 00:00:00","p_any_usernames":["bob"],"p_any_ip_addresses":["1.2.3.4"],"p_any_aws_account_ids":["1"],"p_any_usernames":["alice"],"eventName":"X"}"#;
    let lazy = call(&Event::parse(text).unwrap());
    let whole = call(&Event::new(&serde_json::from_str(text).unwrap()));
    assert_eq!(lazy, whole);
    let window = "time.parse_timestamp('2024-01-01 00:00:00') - time.parse_timespan('30m') .. time.parse_timestamp('2024-01-01 00:00:00') + time.parse_timespan('30m')";
    assert_eq!(
        lazy,
        json!(format!(
            "union panther_signals.public.correlation_signals\n    , panther_logs.public.aws_cloudtrail\n| where p_event_time between {window}\n| where arrays.overlap(p_any_ip_addresses, ['1.2.3.4'])\n     or arrays.overlap(p_any_usernames, ['alice'])\n| sort p_event_time"
        ))
    );
    // A number beyond f64 makes the whole object unrepresentable: no field is listed, as when
    // the object is converted whole.
    let broken = r#"{"p_log_type":"x","p_any_usernames":["bob"],"n":1e400}"#;
    let got = call(&Event::parse(broken).unwrap());
    assert!(
        got.as_str().is_some_and(|q| !q.contains("arrays.overlap")),
        "{got}"
    );
}
