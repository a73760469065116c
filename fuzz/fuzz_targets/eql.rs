//! Arbitrary text as an EQL query, lowered into the IR and matched against the sample.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::rules::elastic::eql::{Lowered, lower};

fuzz_target!(|text: &str| {
    match lower(text, "event.category") {
        Ok(Lowered::Event(expr)) => vigil_fuzz::match_samples(&expr),
        Ok(Lowered::Sequence(sequence)) => {
            let _ = format!("{sequence:?}");
        }
        Err(_) => {}
    }
});
