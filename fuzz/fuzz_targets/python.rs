//! Arbitrary text as a Panther Python module: the parser, the subset check, lowering and the
//! necessary condition, then every rule function called on the sample events under the step
//! budget (a budget overrun or a Python exception is an error value, never a crash).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    vigil_fuzz::run_python(text);
});
