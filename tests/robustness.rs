//! "Nothing lost, nothing crashed", checked against hostile input rather than examples:
//! seeded garbage lines through the real processor, and damaged rule files through the loader.

use vigil::correlate::Limits;
use vigil::eval::{Engine, EngineConfig};
use vigil::protocol::{Processor, ProtocolConfig};
use vigil::rules::{LoadOptions, Loader, default_pack, load_default_pack};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn default_processor(config: ProtocolConfig) -> Processor {
    let loaded = load_default_pack(LoadOptions::default());
    assert_eq!(loaded.n_errors(), 0);
    let (engine, _) = Engine::new(loaded.set, EngineConfig::new(Limits::default()));
    Processor::new(engine, config)
}

/// One hostile line: a real sample event cut, spliced, byte-flipped, nested or replaced.
fn hostile_line(rng: &mut Rng, samples: &[&[u8]]) -> Vec<u8> {
    let sample = samples[rng.below(samples.len())];
    match rng.below(8) {
        0 => sample[..rng.below(sample.len() + 1)].to_vec(),
        1 => {
            let mut line = sample.to_vec();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(line.len());
                line[at] = rng.next() as u8;
            }
            line
        }
        2 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
        3 => {
            let depth = rng.below(2000);
            let mut line = "[".repeat(depth).into_bytes();
            line.extend("]".repeat(depth).into_bytes());
            line
        }
        4 => {
            let depth = 1 + rng.below(300);
            let mut line = r#"{"a":"#.repeat(depth).into_bytes();
            line.extend(b"\"x\"");
            line.extend("}".repeat(depth).into_bytes());
            line
        }
        5 => {
            let other = samples[rng.below(samples.len())];
            let cut = rng.below(sample.len());
            let mut line = sample[..cut].to_vec();
            line.extend_from_slice(&other[rng.below(other.len())..]);
            line
        }
        6 => b"{\"eventName\":\"\\ud800\",\"x\":1e999999}".to_vec(),
        _ => sample.to_vec(),
    }
    .into_iter()
    .filter(|&b| b != b'\n')
    .collect()
}

#[test]
fn every_hostile_line_gives_one_valid_json_object() {
    let sample = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/cloudtrail.ndjson"
    ))
    .unwrap();
    let samples: Vec<&[u8]> = sample
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut processor = default_processor(ProtocolConfig {
        max_line_bytes: 4096,
        ..ProtocolConfig::default()
    });
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut out = Vec::new();
    for idx in 0..20_000 {
        let line = hostile_line(&mut rng, &samples);
        out.clear();
        // Arrival clock 2030-01-01: after the sample's event times, so correlations run too.
        processor.process_line(&line, 1_893_456_000_000, &mut out);
        let text = std::str::from_utf8(&out).unwrap_or_else(|_| panic!("line {idx}: not UTF-8"));
        assert_eq!(
            text.matches('\n').count(),
            1,
            "line {idx}: {:?}",
            String::from_utf8_lossy(&line)
        );
        let value: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|err| {
            panic!("line {idx}: output is not JSON ({err}): {text}");
        });
        assert!(value.is_object(), "line {idx}: {text}");
        // An unchanged line is byte-identical; any other is an event with our key.
        if out[..out.len() - 1] != line[..] {
            assert!(
                value.get("vigil").is_some(),
                "line {idx}: changed without a marker"
            );
        }
    }
    let counters = processor.counters();
    assert_eq!(counters.lines_in, 20_000);
    assert_eq!(counters.lines_out, 20_000);
}

/// The lazy event view takes serde_json's verdict on every hostile line (valid or not, object
/// or not, the same error message) and reads every top-level field as serde_json does.
#[test]
fn the_event_view_agrees_with_serde_json() {
    use vigil::event::{Event, ParseError};
    let sample = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/cloudtrail.ndjson"
    ))
    .unwrap();
    let samples: Vec<&[u8]> = sample
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut n_objects = 0;
    for idx in 0..5_000 {
        let line = hostile_line(&mut rng, &samples);
        let Ok(text) = std::str::from_utf8(&line) else {
            continue;
        };
        let strict = serde_json::from_str::<serde_json::Value>(text);
        let lazy = Event::parse(text);
        match (strict, lazy) {
            (Ok(serde_json::Value::Object(map)), Ok(event)) => {
                n_objects += 1;
                for (key, want) in &map {
                    assert_eq!(event.get(key), Some(want), "line {idx}: {key}");
                }
            }
            (Ok(value), Err(ParseError::NotObject(kind))) => {
                assert!(!value.is_object(), "line {idx}");
                assert_eq!(kind, vigil::event::json_type(&value), "line {idx}");
            }
            (Err(want), Err(ParseError::InvalidJson(got))) => {
                assert_eq!(want.to_string(), got, "line {idx}")
            }
            (Err(err), Ok(event)) => {
                // The one known difference: a number beyond f64, found when it is read.
                assert!(
                    err.to_string().contains("number out of range"),
                    "line {idx}: {err}"
                );
                event.root();
                assert!(event.is_broken(), "line {idx}");
            }
            (strict, lazy) => panic!("line {idx}: serde_json {strict:?}, lazy {lazy:?}"),
        }
    }
    assert!(n_objects > 500, "only {n_objects} objects");
}

#[test]
fn damaged_rule_files_give_diagnostics_not_panics() {
    let mut rng = Rng(0xdead_beef_0bad_f00d);
    let mut n_diagnostics = 0;
    for (name, text) in default_pack::FILES {
        let bytes = text.as_bytes();
        for _ in 0..200 {
            let mut damaged = bytes.to_vec();
            match rng.below(3) {
                0 => damaged.truncate(rng.below(bytes.len())),
                1 => {
                    let at = rng.below(damaged.len());
                    const NOISE: &[u8] = b"|:-[]{}'\"* \n\t%";
                    damaged[at] = NOISE[rng.below(NOISE.len())];
                }
                _ => {
                    let at = rng.below(damaged.len());
                    let len = rng.below(40).min(damaged.len() - at);
                    damaged.drain(at..at + len);
                }
            }
            let text = String::from_utf8_lossy(&damaged);
            let mut loader = Loader::new(LoadOptions::default());
            loader.add_source(name, &text);
            let loaded = loader.finish();
            for diag in &loaded.diagnostics {
                assert!(diag.source.path == *name, "{diag}");
                assert!(!diag.message.is_empty());
            }
            n_diagnostics += loaded.diagnostics.len();
            // Whatever survived still builds an engine.
            let _ = Engine::new(loaded.set, EngineConfig::new(Limits::default()));
        }
    }
    assert!(n_diagnostics > 0, "damage never produced a diagnostic");
}
