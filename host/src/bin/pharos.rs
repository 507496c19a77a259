//! `pharos`: the pharos command-line tool (talks to `pharosd` over its control socket).

fn main() -> std::process::ExitCode {
    pharos_host::cli::main()
}
