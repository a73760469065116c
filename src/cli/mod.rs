//! Command line: flags, subcommands, exit codes.

use std::process::ExitCode;

pub fn main() -> ExitCode {
    unimplemented!()
}
