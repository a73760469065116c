//! Arbitrary text as an Elastic rule (TOML): metadata, the query in its language, the
//! stateful types (threshold, new_terms, EQL sequence, ES|QL STATS), lowering and the sample.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    vigil_fuzz::load_and_run("fuzz.toml", text, None);
});
