//! The `rosterd` binary: all the work lives in the library; this only hands over to the CLI.

fn main() -> std::process::ExitCode {
    rosterd::cli::main()
}
