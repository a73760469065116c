use std::process::ExitCode;

// mimalloc instead of the system allocator: events are decoded on the matching threads and
// dropped on the ordered one, and glibc's per-thread arenas make such cross-thread frees slow.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    vigil::cli::main()
}
