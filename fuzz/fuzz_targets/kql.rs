//! Arbitrary text as a KQL query, lowered into the IR and matched against the sample.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(expr) = vigil::rules::elastic::kql::lower(text) {
        vigil_fuzz::match_samples(&expr);
    }
});
