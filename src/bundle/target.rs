//! The bundle's export target (`target` in unimed.json): the execution provider its graphs were built
//! for. The exporter decides the decoder's I/O dtype and the image graphs' precision from it
//! (export/unimed_export/bundle/target.py); the runtime compares it with the requested providers before
//! any session exists (graphs/providers/target.rs).

use std::path::Path;

use super::{Bundle, Manifest};
use crate::error::{Error, Result};

/// Manifest field holding the target.
pub const TARGET_FIELD: &str = "target";

/// What a bundle was exported for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The CPU provider: float32-I/O decoder (fp16: the GPU graph), fp32 image graphs by default. A
    /// manifest without the field (exported before targets existed) means this.
    #[default]
    Cpu,
    /// The CUDA provider: float16-I/O decoder (fp16, int8 or int4 MatMulNBits), fp16 image graphs by default.
    Cuda,
    /// TensorRT for the fixed-shape image graphs, CUDA for the decoder; the graphs of `Cuda`.
    #[serde(rename = "tensorrt")]
    TensorRt,
}

impl Target {
    /// Every target, in the order messages list them.
    pub const ALL: [Target; 3] = [Target::Cpu, Target::Cuda, Target::TensorRt];

    /// The name used in the manifest and on the exporter's command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Cpu => "cpu",
            Target::Cuda => "cuda",
            Target::TensorRt => "tensorrt",
        }
    }

    /// Whether the graphs were built for a GPU provider.
    pub fn is_gpu(self) -> bool {
        self != Target::Cpu
    }

    /// The target recorded in `m` (absent: cpu), or an error naming the field and the allowed values.
    pub fn of(m: &Manifest, manifest_path: &Path) -> Result<Target> {
        let Some(name) = m.target.as_deref() else {
            return Ok(Target::Cpu);
        };
        Target::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| Error::Bundle {
                path: manifest_path.to_path_buf(),
                field: TARGET_FIELD.into(),
                message: format!(
                    "unknown target \"{name}\": expected one of {} (a manifest without the field was exported \
                     for cpu)",
                    Target::ALL.map(Target::name).join(", ")
                ),
            })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Bundle {
    /// The execution provider the bundle was exported for. The manifest was validated when the bundle was
    /// loaded (`Target::of` is part of that), so the fallback to cpu below is never taken.
    pub fn target(&self) -> Target {
        Target::of(&self.manifest, &self.manifest_path()).unwrap_or_default()
    }
}
