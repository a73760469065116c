//! The rule index never changes an answer, checked on real data: every CloudTrail event file
//! of the corpus through every Sigma rule of the corpus (plus the default pack), with the index
//! on and off, must give byte-identical output. Reads `$VIGIL_CORPUS` and is skipped when it is
//! not set.

use std::path::PathBuf;

use vigil::correlate::Limits;
use vigil::eval::{Engine, EngineConfig};
use vigil::protocol::{Processor, ProtocolConfig};
use vigil::rules::{LoadOptions, Loader, load_default_pack};

/// 2030-01-01T00:00:00Z: after every event time of the corpus, so correlations run.
const ARRIVAL_MS: i64 = 1_893_456_000_000;

fn corpus() -> Option<PathBuf> {
    match std::env::var_os("VIGIL_CORPUS") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("skipped: VIGIL_CORPUS is not set");
            None
        }
    }
}

fn processor(corpus: &std::path::Path, use_index: bool) -> (Processor, usize) {
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_path(&corpus.join("sigma/rules"));
    let mut set = loader.finish().set;
    set.rules
        .extend(load_default_pack(LoadOptions::default()).set.rules);
    let n_rules = set.rules.len();
    let mut config = EngineConfig::new(Limits::default());
    config.use_index = use_index;
    let (engine, _) = Engine::new(set, config);
    (Processor::new(engine, ProtocolConfig::default()), n_rules)
}

#[test]
fn corpus_events_through_corpus_rules_with_and_without_index() {
    let Some(corpus) = corpus() else {
        return;
    };
    let (mut indexed, n_rules) = processor(&corpus, true);
    let (mut plain, _) = processor(&corpus, false);
    assert!(n_rules > 200, "only {n_rules} rules loaded");
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus.join("events"))
        .unwrap()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "ndjson"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let mut n_lines = 0;
    for file in &files {
        let text = std::fs::read(file).unwrap();
        for line in text.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
            n_lines += 1;
            with.clear();
            without.clear();
            indexed.process_line(line, ARRIVAL_MS, &mut with);
            plain.process_line(line, ARRIVAL_MS, &mut without);
            assert_eq!(
                String::from_utf8_lossy(&with),
                String::from_utf8_lossy(&without),
                "{}: line {n_lines}",
                file.display()
            );
        }
    }
    assert!(n_lines > 3000, "only {n_lines} events");
    // The comparison means something only if rules fire.
    assert!(indexed.counters().matched > 100, "{:?}", indexed.counters());
    assert_eq!(indexed.counters(), plain.counters());
}
