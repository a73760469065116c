//! A Panther rule: the input is a YAML spec, then (after a line `#--- rule.py`) the Python
//! module its `Filename: rule.py` names. Loading, lowering, the runtime and the sample run.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// A directory of this process for the module file the spec refers to.
fn module_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vigil-fuzz-{}", std::process::id()));
        if let Err(err) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {err}", dir.display());
        }
        dir
    })
}

fuzz_target!(|text: &str| {
    let (spec, module) = text.split_once("\n#--- rule.py\n").unwrap_or((text, ""));
    let dir = module_dir();
    if let Err(err) = std::fs::write(dir.join("rule.py"), module) {
        panic!("cannot write the module: {err}");
    }
    vigil_fuzz::load_and_run("fuzz.yml", spec, Some(dir));
});
