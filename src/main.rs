fn main() -> std::process::ExitCode {
    webengage_bridge::cli::run()
}
