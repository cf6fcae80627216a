//! The bundle's export target against the requested providers, checked before any session is built.
//!
//! A cpu-target bundle's decoder has float32 I/O, and ONNX Runtime's CUDA provider has no float32
//! GroupQueryAttention kernel: on `--ep cuda` its attention would be left to the CPU, which the placement
//! check refuses only after minutes of session creation on a large model, with advice (`--fallback`) that
//! does not fix it. The fix is another bundle, so the refusal says which target this one was built for and
//! the export command that makes the right one. GPU-target bundles run on every provider: their float16-I/O
//! graphs run on the CPU provider too (slower), which is what keeps them testable without a GPU.
//!
//! With `fallback` set the mismatch is reported on stderr and the run goes on: the user accepted nodes
//! left to the CPU.

use super::GRAPHS;
use crate::bundle::{Bundle, Target, TARGET_FIELD};
use crate::error::{Error, Result};
use crate::graphs::session::{ExecutionProvider, SessionOptions};

/// Decoder precision suggested for a GPU export when the bundle's own (fp32) cannot be built for one:
/// the smallest weights, and the precision the GPU check measures first.
const GPU_PRECISION_FOR_FP32: &str = "int4";

/// Whether a graph exported for `target` may be given to `ep`.
pub fn accepts(target: Target, ep: ExecutionProvider) -> bool {
    target.is_gpu() || ep == ExecutionProvider::Cpu
}

/// Refuses (or, with fallback, warns about) providers the bundle was not exported for.
pub fn check_target(bundle: &Bundle, opts: &SessionOptions) -> Result<()> {
    let target = bundle.target();
    let refused: Vec<(&str, ExecutionProvider)> = GRAPHS
        .iter()
        .map(|g| (*g, opts.providers.ep.provider_for(g, opts.provider)))
        .filter(|(_, ep)| !accepts(target, *ep))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let wanted = if refused
        .iter()
        .any(|(_, ep)| *ep == ExecutionProvider::TensorRt)
    {
        Target::TensorRt
    } else {
        Target::Cuda
    };
    let asked: Vec<String> = refused
        .iter()
        .map(|(g, ep)| format!("{} for {g}", ep.name()))
        .collect();
    let m = bundle.manifest();
    let dec = &m.graphs.decoder;
    let why = if dec.io_dtype == "float32" {
        format!(
            "decoder {} with float32 I/O for ONNX Runtime's CPU provider, whose GroupQueryAttention the CUDA \
             provider has no float32 kernel for",
            dec.precision
        )
    } else {
        format!(
            "decoder {} with {} I/O, vision and connector {}, not exported nor checked for a GPU provider",
            dec.precision, dec.io_dtype, m.graphs.vision.precision
        )
    };
    let problem = format!(
        "the bundle {} was exported for target {target} ({why}), but the requested execution providers are {}",
        bundle.dir().display(),
        asked.join(", ")
    );
    if opts.providers.fallback {
        eprintln!(
            "unimed: warning: {problem}; running it anyway because fallback is allowed (nodes the provider \
             cannot take run on the CPU). For the GPU: {}",
            export_command(bundle, wanted)
        );
        return Ok(());
    }
    Err(Error::Bundle {
        path: bundle.manifest_path(),
        field: TARGET_FIELD.into(),
        message: format!(
            "{problem}. Export a bundle for that target: {}; or run this one with --ep cpu",
            export_command(bundle, wanted)
        ),
    })
}

/// The exporter command that makes a `target` bundle from the sources recorded in the manifest (by file
/// name and sha256: the manifest keeps no folders), or from the synthetic checkpoint it was made from.
pub fn export_command(bundle: &Bundle, target: Target) -> String {
    let m = bundle.manifest();
    let source = |name: &str, placeholder: &str| {
        let file = m
            .provenance
            .sources
            .get(name)
            .and_then(|s| s.get("path"))
            .and_then(|p| p.as_str())
            .unwrap_or(placeholder);
        format!(".../{file}")
    };
    let synthetic = m.provenance.synthetic.as_ref().and_then(|s| {
        Some((
            s.get("size")?.as_str()?.to_string(),
            s.get("seed")?.as_i64()?,
        ))
    });
    let inputs = match &synthetic {
        Some(_) => "--from SYNTH_DIR".to_string(),
        None => format!(
            "--eva {} --llama {} --checkpoint {}",
            source("eva", "eva_vit_g.pth"),
            source("llama", "llama"),
            source("checkpoint", "checkpoint.pth")
        ),
    };
    let fp32 = m.graphs.decoder.precision == "fp32";
    let precision = if fp32 {
        GPU_PRECISION_FOR_FP32
    } else {
        m.graphs.decoder.precision.as_str()
    };
    let out = format!(
        "{}-{}",
        bundle.dir().display().to_string().trim_end_matches('/'),
        target.name()
    );
    let mut notes = Vec::new();
    if let Some((size, seed)) = synthetic {
        notes.push(format!(
            "SYNTH_DIR from `python -m unimed_export synth --size {size} --seed {seed} --out SYNTH_DIR`"
        ));
    }
    if fp32 {
        notes.push("an fp32 decoder cannot be exported for a GPU; fp16, int8 or int4".to_string());
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    format!(
        "`python -m unimed_export export {inputs} --target {} --decoder-precision {precision} --out {out}`{notes}",
        target.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cpu_bundles_are_tied_to_the_cpu() {
        use ExecutionProvider::*;
        for ep in [Cpu, Cuda, TensorRt] {
            assert_eq!(accepts(Target::Cpu, ep), ep == Cpu, "{ep:?}");
            assert!(accepts(Target::Cuda, ep), "{ep:?}");
            assert!(accepts(Target::TensorRt, ep), "{ep:?}");
        }
    }
}
