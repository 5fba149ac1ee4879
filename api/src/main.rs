//! The `billing` binary: `serve` (default), `migrate`, `keys`, `audit verify`, `bench append`.

fn main() -> std::process::ExitCode {
    api::cli::main()
}
