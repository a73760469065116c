use std::process::ExitCode;

// mimalloc instead of the system allocator: events are decoded on the matching threads and
// dropped on the ordered one, and glibc's per-thread arenas make such cross-thread frees slow.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    purge_freed_memory_at_once();
    vigil::cli::main()
}

/// `mi_option_purge_delay` in mimalloc's `include/mimalloc.h` (v2 and v3); libmimalloc-sys
/// 0.1.49 has no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc return freed pages to the OS at once instead of after `purge_delay` (1 s in
/// v3), unless the user chose a delay (`MIMALLOC_PURGE_DELAY`). With the delay, pages freed
/// by a thread that then went quiet (a finished rule-reload thread, the state writer) stayed
/// committed: the soak's RSS crept from 33 to 48 MB over three SIGHUP reloads although the
/// live memory stayed near 27 MB, which is what RSS shows without the delay. The cost in CPU
/// time was within noise (default pack, 50,000 generated lines, `--threads` 1 and 2: 0.193 s
/// against 0.188 s and 0.213 s against 0.218 s, means of six runs).
fn purge_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: mi_option_set only stores a value in mimalloc's option table; it is called
    // before any other thread of this program exists (it is not thread safe).
    unsafe {
        // The option's default identifies it: a mimalloc whose table moved is left alone.
        if matches!(
            libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
            10 | 1000
        ) {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}
