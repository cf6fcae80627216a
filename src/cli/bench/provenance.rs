//! What produced a benchmark number, carried by every output format of `unimed bench` (JSON, CSV, Markdown):
//! the build (version, profile, features, git commit), the ONNX Runtime library, the machine (CPU model,
//! GPU) and the bundle's identity (the manifest sha256 that `run` records carry too). A number without
//! these cannot be compared with another one later.
//!
//! Every field is best effort: a machine that does not say what its CPU is still gets its benchmark.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use unimed_edge::graphs::session::environment;
use unimed_edge::{Bundle, ExecutionProvider, SessionOptions};

use super::super::info::library_version;
use super::super::record::model_identity;

/// How long `nvidia-smi` may take to name the GPU before the report goes without the name.
const GPU_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the GPU query is polled while waiting for it.
const GPU_QUERY_POLL: Duration = Duration::from_millis(20);
/// Where Linux names the CPU model (x86: `model name`; some ARM kernels: `Hardware`).
const CPUINFO: &str = "/proc/cpuinfo";
/// Where an ARM board (a Jetson) names itself when /proc/cpuinfo does not.
const DEVICE_TREE_MODEL: &str = "/proc/device-tree/model";

/// The build of this binary (build.rs).
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub version: &'static str,
    /// "release" or "debug".
    pub profile: Option<&'static str>,
    /// Cargo features compiled in (e.g. "cuda", "tensorrt"); empty for the default CPU build.
    pub features: Vec<&'static str>,
    /// Full git commit the binary was built from; `None` when built outside a git checkout.
    pub commit: Option<&'static str>,
    pub target: Option<&'static str>,
}

/// The ONNX Runtime library this process loaded.
#[derive(Debug, Clone, Serialize)]
pub struct OrtLibrary {
    /// From the library's file name (`libonnxruntime.so.1.22.0`); `None` when the name carries none.
    pub version: Option<String>,
    pub library: Option<PathBuf>,
}

/// The machine.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub cpu: Option<String>,
    pub cpus: usize,
    /// The GPU a CUDA or TensorRT graph ran on (`nvidia-smi`, else the board's name on a Jetson); `None`
    /// when every graph ran on the CPU.
    pub gpu: Option<String>,
}

/// Everything above plus the bundle identity, flattened into each report's JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub build: Build,
    pub onnxruntime: OrtLibrary,
    pub host: Host,
    /// `record::model_identity`: manifest_sha256, sealed, format_version, decoder_precision, ...
    pub model: Value,
}

impl Provenance {
    /// Collects the provenance of a run on `bundle` with `session` (whose providers decide whether a GPU
    /// is named). Call after the engine loaded, so that ONNX Runtime is initialised.
    pub fn collect(bundle: &Bundle, session: &SessionOptions) -> Provenance {
        let library = environment(None).ok().map(|(_, lib)| lib);
        let uses_gpu = session.provider != ExecutionProvider::Cpu
            || !session.providers.ep.per_graph.is_empty();
        Provenance {
            build: build(),
            onnxruntime: OrtLibrary {
                version: library.as_deref().and_then(library_version),
                library,
            },
            host: Host {
                cpu: cpu_model(),
                cpus: std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
                gpu: uses_gpu
                    .then(|| gpu_name(session.providers.cuda.device_id))
                    .flatten(),
            },
            model: model_identity(bundle),
        }
    }

    /// The bundle's manifest sha256 (its identity).
    pub fn manifest_sha256(&self) -> &str {
        self.model["manifest_sha256"].as_str().unwrap_or("")
    }

    /// A short commit for tables (12 hex digits, as git shows it), or "unknown".
    pub fn short_commit(&self) -> &str {
        const SHORT_COMMIT: usize = 12;
        self.build
            .commit
            .map(|c| c.get(..SHORT_COMMIT).unwrap_or(c))
            .unwrap_or("unknown")
    }

    /// Markdown bullet lines (the header of the `md` format).
    pub fn markdown(&self) -> String {
        let b = &self.build;
        let features = if b.features.is_empty() {
            "none".to_string()
        } else {
            b.features.join(", ")
        };
        let or_unknown = |v: Option<&str>| v.unwrap_or("unknown").to_string();
        format!(
            "- build: unimed {} ({}, features: {features}), commit `{}`\n\
             - ONNX Runtime {} (`{}`)\n\
             - host: CPU {} ({} cpus), GPU {}\n\
             - bundle: manifest sha256 `{}`{}\n",
            b.version,
            or_unknown(b.profile),
            self.short_commit(),
            or_unknown(self.onnxruntime.version.as_deref()),
            self.onnxruntime
                .library
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "unknown".into()),
            or_unknown(self.host.cpu.as_deref()),
            self.host.cpus,
            self.host.gpu.as_deref().unwrap_or("none"),
            self.manifest_sha256(),
            if self.model["synthetic"].as_bool() == Some(true) {
                " (synthetic weights)"
            } else {
                ""
            },
        )
    }

    /// Column names of the provenance part of a CSV row.
    pub const CSV_COLUMNS: &'static str =
        "unimed_version,build_profile,build_features,build_commit,ort_version,cpu,cpus,gpu,manifest_sha256";

    /// The provenance cells of a CSV row, in [`Self::CSV_COLUMNS`] order.
    pub fn csv_cells(&self) -> Vec<String> {
        let b = &self.build;
        vec![
            b.version.to_string(),
            b.profile.unwrap_or_default().to_string(),
            // `;` inside the cell: the CSV's own separator is the comma.
            b.features.join(";"),
            b.commit.unwrap_or_default().to_string(),
            self.onnxruntime.version.clone().unwrap_or_default(),
            self.host.cpu.clone().unwrap_or_default(),
            self.host.cpus.to_string(),
            self.host.gpu.clone().unwrap_or_default(),
            self.manifest_sha256().to_string(),
        ]
    }
}

/// The build facts build.rs passed in.
pub fn build() -> Build {
    Build {
        version: env!("CARGO_PKG_VERSION"),
        profile: option_env!("UNIMED_BUILD_PROFILE"),
        features: option_env!("UNIMED_BUILD_FEATURES")
            .unwrap_or_default()
            .split(',')
            .filter(|f| !f.is_empty())
            .collect(),
        commit: option_env!("UNIMED_BUILD_COMMIT"),
        target: option_env!("UNIMED_BUILD_TARGET"),
    }
}

/// The CPU model, e.g. "AMD EPYC 7B13", or the board's name on ARM boards that do not name the CPU.
fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string(CPUINFO).unwrap_or_default();
    let from_cpuinfo = ["model name", "Hardware"].iter().find_map(|key| {
        cpuinfo.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_string())
        })
    });
    from_cpuinfo.or_else(board_model)
}

/// `/proc/device-tree/model` (NUL-terminated), e.g. "NVIDIA Jetson AGX Orin Developer Kit".
fn board_model() -> Option<String> {
    let text = std::fs::read_to_string(Path::new(DEVICE_TREE_MODEL)).ok()?;
    let name = text.trim_end_matches('\0').trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// The name of CUDA device `device` from `nvidia-smi`, else the board's name (a Jetson has no
/// nvidia-smi; its GPU is part of the module the device tree names).
fn gpu_name(device: i32) -> Option<String> {
    nvidia_smi_name(device).or_else(board_model)
}

fn nvidia_smi_name(device: i32) -> Option<String> {
    let mut child = Command::new("nvidia-smi")
        .args([
            "--query-gpu=name",
            "--format=csv,noheader",
            &format!("--id={device}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // A wedged driver can hang nvidia-smi; the benchmark must not hang with it.
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if start.elapsed() < GPU_QUERY_TIMEOUT => std::thread::sleep(GPU_QUERY_POLL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    let name = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_names_its_version_and_profile() {
        let b = build();
        assert_eq!(b.version, env!("CARGO_PKG_VERSION"));
        assert!(
            matches!(b.profile, Some("release" | "debug")),
            "build.rs did not pass the profile: {:?}",
            b.profile
        );
        assert!(b.features.iter().all(|f| !f.is_empty() && !f.contains(',')));
    }
}
