//! `fleetwire-server`: see the library's docs (`src/lib.rs`) for the layers, and
//! `docs/OPERATING.md` for the commands.

fn main() -> std::process::ExitCode {
    fleetwire_server::cli::main()
}
