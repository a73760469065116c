//! What the fuzz targets share: the invariants of the line processor, and running freshly
//! loaded rules over sample events so that every target exercises lowering into the IR,
//! building the engine (index included) and evaluating, not only parsing.
//!
//! A target panics when an invariant breaks; libFuzzer reports the panic as a crash and saves
//! the input. Everything else (diagnostics, refused rules, error records) is a normal outcome.

use std::sync::OnceLock;

use vigil::correlate::Limits;
use vigil::eval::{Engine, EngineConfig};
use vigil::ir::RuleSet;
use vigil::protocol::{Processor, ProtocolConfig};
use vigil::rules::{LoadOptions, Loaded, Loader, load_default_pack};

/// The bundled CloudTrail sample: real events for freshly loaded rules to run over.
const SAMPLE: &str = include_str!("../../examples/cloudtrail.ndjson");

/// An arrival clock after the sample's event times, so correlations and windows run too.
const ARRIVAL_MS: i64 = 1_893_456_000_000;

/// A processor over `set` with the default protocol settings.
pub fn processor(set: RuleSet) -> Processor {
    let (engine, _) = Engine::new(set, EngineConfig::new(Limits::default()));
    Processor::new(engine, ProtocolConfig::default())
}

/// The default pack, loaded once per process: loading it is the slow part of a run.
fn default_pack() -> &'static Loaded {
    static PACK: OnceLock<Loaded> = OnceLock::new();
    PACK.get_or_init(|| {
        let loaded = load_default_pack(LoadOptions::default());
        assert_eq!(loaded.n_errors(), 0, "the default pack must load");
        loaded
    })
}

/// A processor over the default pack (a fresh one, so no correlation state leaks between runs
/// and a crash reproduces from its input alone).
pub fn default_processor() -> Processor {
    processor(default_pack().set.clone())
}

/// Feeds every line of `input` (split on `\n`) through `processor` and checks the protocol's
/// invariants: each input line gives exactly one output line, each output line is a JSON
/// object, and an output line that differs from its input carries the enrichment key (an
/// unmatched, valid line is byte-identical).
pub fn check_lines(processor: &mut Processor, input: &[u8]) {
    let mut out = Vec::new();
    let field = processor.config().field.clone();
    for line in input.split(|&b| b == b'\n') {
        out.clear();
        processor.process_line(line, ARRIVAL_MS, &mut out);
        assert_eq!(
            out.iter().filter(|&&b| b == b'\n').count(),
            1,
            "one input line must give exactly one output line"
        );
        assert_eq!(
            out.last(),
            Some(&b'\n'),
            "an output line ends with a newline"
        );
        let body = &out[..out.len() - 1];
        let unchanged = body == line
            || body == line.strip_suffix(b"\r").unwrap_or(line)
            || body.strip_prefix(b"\xef\xbb\xbf".as_slice()) == Some(line);
        let value: serde_json::Value = match serde_json::from_slice(&out) {
            Ok(value) => value,
            // A number beyond the range of f64 is valid JSON that serde_json cannot hold; a
            // line with one in a field no rule reads passes unchanged, as `vigil::event`
            // documents (found by this target).
            Err(err) if unchanged && err.to_string().contains("number out of range") => continue,
            Err(err) => panic!("output line is not JSON ({err}): {out:?}"),
        };
        assert!(value.is_object(), "output line is not a JSON object");
        if !unchanged {
            assert!(
                value.get(&field).is_some(),
                "a changed line must carry the `{field}` key"
            );
        }
    }
}

/// Loads one rule source and, whatever survived, runs it over the sample events with the
/// protocol invariants checked.
pub fn load_and_run(path: &str, text: &str, source_dir: Option<&std::path::Path>) {
    let mut loader = Loader::new(LoadOptions::default());
    if let Some(dir) = source_dir {
        loader.set_source_dir(dir);
    }
    loader.add_source(path, text);
    let loaded = loader.finish();
    for diag in &loaded.diagnostics {
        assert!(!diag.message.is_empty(), "a diagnostic without a reason");
        assert_eq!(diag.source.path, path, "a diagnostic names another file");
    }
    if loaded.set.rules.is_empty() && loaded.set.correlations.is_empty() {
        return;
    }
    let mut processor = processor(loaded.set);
    check_lines(&mut processor, SAMPLE.as_bytes());
}

/// Walks a lowered expression (its debug print visits every node) and matches it against
/// each sample event, so lowering bugs that only show when the IR is used surface too.
pub fn match_samples(expr: &vigil::ir::Expr) {
    let _ = format!("{expr:?}");
    for line in SAMPLE.lines() {
        if let Ok(event) = vigil::event::Event::parse(line) {
            let _ = vigil::eval::matcher::matches(expr, &event);
        }
    }
}

/// Parses `text` as a Panther module and, when it is in the subset, derives its lowering and
/// necessary condition and calls each rule function on every sample event.
pub fn run_python(text: &str) {
    let Ok(module) = vigil::python::Module::parse(text, "fuzz.py") else {
        return;
    };
    let mocks = vigil::python::Mocks::none();
    let mut state = vigil::python::MemoryKv::new(64);
    for name in ["rule", "title", "severity", "alert_context", "dedup"] {
        if !module.has_function(name) {
            continue;
        }
        if let Ok(expr) = module.lower(name) {
            match_samples(&expr);
        }
        match_samples(&module.necessary(name));
        for line in SAMPLE.lines() {
            let Ok(event) = vigil::event::Event::parse(line) else {
                continue;
            };
            let mut ctx = vigil::python::CallCtx {
                step_budget: 100_000,
                state: &mut state,
                now_ms: ARRIVAL_MS,
                mocks: &mocks,
            };
            let _ = module.call(name, &event, &mut ctx);
        }
    }
}
