//! The `billing` binary: `serve` (default), `migrate`, `keys`, `audit verify`, `bench append`.

/// mimalloc instead of the system allocator: glibc's malloc and free were ~18 % of the server's
/// CPU under the HTTP charge load; with mimalloc charges/s rose 8–10 % and a full replay ran
/// 10–15 % faster (docs/BENCHMARKS.md, 2026-12-01).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    api::cli::main()
}
