//! Terminal conventions shared by the subcommands: results go to stdout (so they pipe), everything for the
//! human (progress, timings, warnings) goes to stderr, and colour is used only on a terminal and never when
//! `NO_COLOR` is set (<https://no-color.org>: any non-empty value disables it).

use std::io::IsTerminal;

/// Environment variable that turns colour off.
const NO_COLOR_ENV: &str = "NO_COLOR";

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Whether `NO_COLOR` asks for plain output.
pub fn no_color() -> bool {
    std::env::var_os(NO_COLOR_ENV).is_some_and(|v| !v.is_empty())
}

/// Whether stderr gets colour.
pub fn stderr_color() -> bool {
    !no_color() && std::io::stderr().is_terminal()
}

/// Whether stdout gets colour.
pub fn stdout_color() -> bool {
    !no_color() && std::io::stdout().is_terminal()
}

/// Styling for one stream, decided once.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

impl Style {
    pub fn stderr() -> Self {
        Style {
            color: stderr_color(),
        }
    }

    pub fn stdout() -> Self {
        Style {
            color: stdout_color(),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    pub fn error(self, text: &str) -> String {
        self.paint(RED, text)
    }

    pub fn ok(self, text: &str) -> String {
        self.paint(GREEN, text)
    }

    pub fn warn(self, text: &str) -> String {
        self.paint(YELLOW, text)
    }

    pub fn bold(self, text: &str) -> String {
        self.paint(BOLD, text)
    }
}

/// Restores the default SIGPIPE action, which Rust programs ignore: `unimed info | head -3` then ends
/// quietly when `head` closes the pipe, as `cat` or `grep` would, instead of panicking in `println!`.
/// Results already appended by `batch` are durable line by line, so dying on SIGPIPE loses nothing.
pub fn default_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A warning for the human on stderr.
pub fn warn(message: &str) {
    let s = Style::stderr();
    eprintln!("unimed: {} {message}", s.warn("warning:"));
}

/// Says that a request's text was cut to the prompt rule's word limit (the answer is to the shorter
/// question). Names the batch id, never the text (it may carry patient details).
pub fn warn_truncated(id: Option<&str>, t: &unimed_edge::text::prompt::Truncation) {
    let whose = id.map_or(String::new(), |id| format!("request {id}: "));
    warn(&format!(
        "{whose}the text has {} words; the prompt rule keeps the first {}, so the model answered the shortened \
         text (the record's \"instruction\" shows it)",
        t.words_given, t.words_kept
    ));
}

/// Byte counts the way people read them (1000-based, as `ls -lh --si` and disk vendors).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_style_adds_nothing() {
        let s = Style { color: false };
        assert_eq!(s.error("x"), "x");
        let c = Style { color: true };
        assert_eq!(c.ok("x"), "\x1b[32mx\x1b[0m");
    }

    #[test]
    fn bytes_are_readable() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500), "1.5 kB");
        assert_eq!(human_bytes(2_000_000_000), "2.0 GB");
    }
}
