//! The `payrun` binary: parses the command line and hands it to the library.

fn main() -> std::process::ExitCode {
    payrun::cli::main()
}
