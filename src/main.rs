// mimalloc instead of glibc's malloc: the ingest path allocates for every JSON value it
// parses and builds, and glibc's allocator showed as about a sixth of the bridge's CPU
// in the ingest profile (BENCHMARKS.md, "Profiles").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    webengage_bridge::cli::run()
}
