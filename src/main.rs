//! The `pgdrill` command: everything lives in the library, the command line in `pgdrill::cmd`.

fn main() -> std::process::ExitCode {
    pgdrill::cmd::main()
}
