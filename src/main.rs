//! The `pgdrill` command: everything lives in the library.

fn main() -> std::process::ExitCode {
    pgdrill::main_entry()
}
