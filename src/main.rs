//! `unimed`: command-line entry. Argument handling and output formatting live in `cli/`, one file per
//! subcommand; everything else is the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::output::default_sigpipe();
    match cli::main() {
        Ok(code) => code,
        Err(err) => {
            let style = cli::output::Style::stderr();
            eprintln!("unimed: {} {}", style.error("error:"), message(&err));
            cli::exit_codes::classify(&err).into()
        }
    }
}

/// The error and its causes on one line, like `{:#}`, but without repeating a cause that a message above it
/// already quotes (library errors such as `Error::Io` put their OS error in their own text).
fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}
