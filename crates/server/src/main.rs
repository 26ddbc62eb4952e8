//! The `ferrocast` binary: the command line is `ferrocast::cli`.

fn main() -> std::process::ExitCode {
    ferrocast::cli::main()
}
