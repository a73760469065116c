//! Arbitrary text as a Sigma condition, parsed and resolved against a few identifiers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::ir::{Expr, FieldPath, Predicate};
use vigil::rules::sigma::condition;

fuzz_target!(|text: &str| {
    if let Ok(cond) = condition::parse(text) {
        let idents: Vec<(String, Expr)> = ["selection", "selection_b", "filter", "keywords"]
            .iter()
            .map(|name| {
                let expr = Expr::Field {
                    path: FieldPath::new(name),
                    pred: Predicate::Exists(true),
                };
                (name.to_string(), expr)
            })
            .collect();
        if let Ok(expr) = condition::resolve(&cond, &idents) {
            vigil_fuzz::match_samples(&expr);
        }
    }
});
