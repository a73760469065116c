//! Arbitrary bytes through the NDJSON line processor with the default pack: one JSON object
//! out per line, unmatched lines byte-identical (see `vigil_fuzz::check_lines`).
//!
//! Building the engine costs far more than a run, so one processor serves many runs and is
//! rebuilt every `RUNS_PER_PROCESSOR`; correlation state therefore carries over between runs
//! (as it does between lines of a real stream), and a crash may need the runs before it: when
//! its input alone does not reproduce it, rerun with `-runs` over the corpus.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use vigil::protocol::Processor;

const RUNS_PER_PROCESSOR: u32 = 1_000;

thread_local! {
    static PROCESSOR: RefCell<Option<(Processor, u32)>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    PROCESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let (processor, runs) = match &mut *slot {
            Some((processor, runs)) if *runs < RUNS_PER_PROCESSOR => (processor, runs),
            _ => {
                let (processor, runs) = slot.insert((vigil_fuzz::default_processor(), 0));
                (processor, runs)
            }
        };
        *runs += 1;
        vigil_fuzz::check_lines(processor, data);
    });
});
