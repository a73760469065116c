//! Arbitrary text as one line through the event decoder (`vigil::event`), judged by
//! serde_json: the decoder accepts exactly the objects serde_json accepts (save a number
//! beyond `f64`, found when read), every top-level value and the whole object read back as
//! serde_json's, and every path into nested objects reads what a walk over serde_json's value
//! finds (the raw nested reader and the materialized walk must agree).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vigil::event::Event;
use vigil::ir::FieldPath;

fuzz_target!(|text: &str| {
    let strict = serde_json::from_str::<Value>(text);
    match (Event::parse(text), strict) {
        (Ok(event), Ok(Value::Object(map))) => {
            for (key, want) in &map {
                assert_eq!(event.get(key), Some(want), "{text:?}: {key}");
            }
            let mut paths = Vec::new();
            for (key, value) in &map {
                if !key.contains('.') && !key.is_empty() {
                    nested_paths(key, value, 0, &mut paths);
                }
            }
            for path in paths {
                if map.contains_key(&path) {
                    continue; // a flat key of that name is read first
                }
                let mut want = Vec::new();
                let (head, rest) = path.split_once('.').unwrap_or((&path, ""));
                let segments: Vec<&str> = rest.split('.').collect();
                walk(&map[head], &segments, &mut want);
                let mut got = Vec::new();
                event.any_value(&FieldPath::new(&path), &mut |value| {
                    got.push(value.clone());
                    false
                });
                assert_eq!(got, want, "{text:?}: {path}");
            }
            assert_eq!(event.root(), &Value::Object(map), "{text:?}");
        }
        (Ok(event), Err(err)) => {
            // Valid JSON that serde_json cannot hold: a number beyond f64, found when read.
            assert!(err.to_string().contains("number out of range"), "{text:?}: {err}");
            let _ = event.root();
            assert!(event.is_broken(), "{text:?}");
        }
        (Ok(_), Ok(other)) => panic!("{text:?}: an event from a non-object {other}"),
        (Err(_), Ok(Value::Object(_))) => panic!("{text:?}: serde_json accepts it"),
        (Err(_), _) => {}
    }
});

/// Dotted paths below `key` through objects (and arrays, which fan out), keys without dots.
fn nested_paths(prefix: &str, value: &Value, depth: usize, out: &mut Vec<String>) {
    if depth > 4 || out.len() > 64 {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key.contains('.') || key.is_empty() {
                    continue;
                }
                let path = format!("{prefix}.{key}");
                out.push(path.clone());
                nested_paths(&path, inner, depth + 1, out);
            }
            out.push(format!("{prefix}.absent"));
        }
        Value::Array(items) => {
            for item in items.iter().take(4) {
                nested_paths(prefix, item, depth + 1, out);
            }
        }
        _ => {}
    }
}

fn walk(value: &Value, segments: &[&str], out: &mut Vec<Value>) {
    let Some((head, rest)) = segments.split_first() else {
        out.push(value.clone());
        return;
    };
    match value {
        Value::Object(map) => {
            if let Some(next) = map.get(*head) {
                walk(next, rest, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| walk(item, segments, out)),
        _ => {}
    }
}
