//! `unimed`: command-line entry. Argument handling and output formatting live in `cli/`, one file per
//! subcommand; everything else is the library.

mod cli;

/// Bounds allocations while untrusted DICOM headers are parsed (src/input/alloc_guard.rs).
#[global_allocator]
static ALLOCATOR: unimed_edge::input::GuardedAllocator = unimed_edge::input::GuardedAllocator;

fn main() -> std::process::ExitCode {
    cli::output::default_sigpipe();
    match cli::main() {
        Ok(code) => code,
        Err(err) => {
            let style = cli::output::Style::stderr();
            eprintln!("unimed: {} {err:#}", style.error("error:"));
            cli::exit_codes::classify(&err).into()
        }
    }
}
