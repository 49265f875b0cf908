// mimalloc instead of glibc's malloc: the ingest path allocates for every JSON value it
// parses and builds, and glibc's allocator showed as about a sixth of the bridge's CPU
// in the ingest profile (BENCHMARKS.md, "Profiles").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in mimalloc's `mi_option_e`.
#[cfg(target_os = "linux")]
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// On an overcommitting Linux mimalloc commits its arenas up front, and with
/// transparent huge pages a touched byte then holds 2 MiB: an import of 200,000
/// LeadSquared rows peaked at 120 MiB RSS with it and 81 MiB without, at the same
/// speed. The option must be set before the first allocation reserves an arena, so
/// this runs as a constructor, before `main` and the Rust runtime's own allocations.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static COMMIT_ON_DEMAND: extern "C" fn() = {
    extern "C" fn commit_on_demand() {
        // SAFETY: sets one process-wide option; nothing else runs yet.
        unsafe { libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0) };
    }
    commit_on_demand
};

fn main() -> std::process::ExitCode {
    webengage_bridge::cli::run()
}
