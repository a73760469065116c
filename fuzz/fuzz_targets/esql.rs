//! Arbitrary text as an ES|QL query, lowered into the IR and its filter matched against the
//! sample.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(lowered) = vigil::rules::elastic::esql::lower(text) {
        vigil_fuzz::match_samples(&lowered.filter);
        let _ = format!("{lowered:?}");
    }
});
