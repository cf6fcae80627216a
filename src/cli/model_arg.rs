//! `--model DIR`, shared by every subcommand that opens a bundle. Default: `$UNIMED_MODEL`, then the bundle
//! that `scripts/setup` builds (`models/tiny`), looked for in the current directory and its parents, then
//! beside the executable and its parents (so `target/release/unimed` finds the checkout's bundle). Using that
//! fallback is said on stderr every time.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use super::exit_codes::{fail, Exit};
use super::output::warn;

/// Environment variable naming the default bundle.
pub const MODEL_ENV: &str = "UNIMED_MODEL";
/// Where `scripts/setup` writes the default bundle, relative to the repository root.
pub const SETUP_BUNDLE: &str = "models/tiny";
/// A bundle directory is recognised by its manifest.
const MANIFEST: &str = unimed_edge::bundle::MANIFEST_FILE;

#[derive(Debug, Clone, Args)]
pub struct ModelArg {
    /// Model bundle directory (holds unimed.json) [default: $UNIMED_MODEL, else models/tiny from scripts/setup]
    #[arg(long, short = 'm', value_name = "DIR", env = MODEL_ENV, global = false)]
    pub model: Option<PathBuf>,
}

impl ModelArg {
    /// The bundle directory to open.
    pub fn dir(&self) -> Result<PathBuf> {
        if let Some(dir) = self.model.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            return Ok(dir.clone());
        }
        let cwd = std::env::current_dir().ok();
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf));
        let roots = cwd.iter().chain(exe_dir.iter()).flat_map(|d| d.ancestors());
        for root in roots {
            let candidate = root.join(SETUP_BUNDLE);
            if candidate.join(MANIFEST).is_file() {
                // Stated, never silent: the answer comes from whatever bundle this finds.
                warn(&format!(
                    "no --model and no {MODEL_ENV}: using {} (the default bundle scripts/setup builds)",
                    candidate.display()
                ));
                return Ok(candidate);
            }
        }
        Err(fail(
            Exit::Model,
            format!(
                "no model bundle given: pass --model DIR or set {MODEL_ENV}; the default {SETUP_BUNDLE} (built by \
                 scripts/setup) was not found in the current directory, beside the executable, or above either"
            ),
        ))
    }
}
