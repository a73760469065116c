//! Arbitrary text as a Sigma rule file: loading (YAML, detection, modifiers, condition,
//! correlations, filters), lowering into the IR, building the engine and running the sample.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    vigil_fuzz::load_and_run("fuzz.yml", text, None);
});
