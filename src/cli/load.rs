//! Opening a bundle for `run` and `batch`: the engine, plus what the user must be told about that bundle
//! on every run, on stderr (not only in `--json`), because it changes how far its answers can be trusted.

use std::path::Path;

use anyhow::{Context, Result};
use unimed_edge::{Engine, EngineOptions, Integrity};

use super::output::warn;

/// Loads the engine and states, when they apply, that the weights are synthetic and that integrity
/// checks were skipped.
pub fn engine(dir: &Path, options: &EngineOptions) -> Result<Engine> {
    if options.integrity == Integrity::Off {
        warn(&format!(
            "--no-verify: the manifest seal and the sha256 of {}'s files are not checked; a changed prompt, \
             label set, preprocessing or weight would go unnoticed",
            dir.display()
        ));
    }
    let engine =
        Engine::load(dir, options).with_context(|| format!("loading {}", dir.display()))?;
    if engine.bundle().manifest().provenance.synthetic.is_some() {
        warn(&format!(
            "{} has synthetic (random) weights (manifest provenance.synthetic): its answers are random \
             tokens, not a trained model's",
            dir.display()
        ));
    }
    Ok(engine)
}
