//! The ONNX Runtime environment and session options, from one place.
//!
//! Library discovery (ort is built with `load-dynamic`): `ORT_DYLIB_PATH`, else a `libonnxruntime.so*`
//! next to the executable, else the `onnxruntime` Python wheel in a `.venv` found in the current
//! directory or an ancestor of the executable (`.venv/lib/python3*/site-packages/onnxruntime/capi/`).
//! We always call `ort::init_from` with a found path ourselves: left alone, ort dlopens a default name
//! and panics when it is missing.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use ort::AsPointer;

use super::providers::ProviderConfig;
use crate::error::{Error, Result};

/// Environment variable naming the library explicitly.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";
/// ONNX Runtime major.minor this build of `ort` (api-31) is made for.
const ORT_REQUIRED_MINOR: u32 = 31;
const ORT_LIB_STEM: &str = "libonnxruntime.so";

/// Which hardware runs a graph. The GPU providers need the `cuda` / `tensorrt` cargo features and a GPU
/// build of ONNX Runtime; providers/ registers them and refuses silent fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutionProvider {
    #[default]
    Cpu,
    Cuda,
    TensorRt,
}

impl std::str::FromStr for ExecutionProvider {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            "tensorrt" | "trt" => Ok(Self::TensorRt),
            other => Err(Error::Request(format!(
                "unknown execution provider \"{other}\" (expected cpu, cuda, tensorrt)"
            ))),
        }
    }
}

/// Graph optimisation level (ONNX Runtime's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OptLevel {
    Disable,
    Basic,
    Extended,
    #[default]
    All,
}

/// Options for every session of an engine.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Intra-op threads; `None` lets ONNX Runtime choose (one per physical core).
    pub intra_threads: Option<usize>,
    pub opt_level: OptLevel,
    /// Weight prepacking: faster MatMuls, but an anonymous-memory copy of the weights instead of using
    /// the memory-mapped external data in place (see toolchain-notes §3).
    pub prepacking: bool,
    /// ONNX Runtime's CPU memory arena for intermediate tensors. Off by default: the arena keeps the
    /// largest working set any run needed and grows in powers of two, which cost the `bench` int4
    /// bundle 108 MiB of peak memory (docs/PERFORMANCE.md §3.5); without it ORT frees each run's
    /// tensors to the system allocator.
    pub cpu_arena: bool,
    /// Default provider of every graph (`providers.ep` may choose per graph).
    pub provider: ExecutionProvider,
    /// Per-graph provider choice, GPU provider options and the fallback policy (providers/).
    pub providers: ProviderConfig,
    /// Explicit library path; overrides discovery.
    pub ort_library: Option<PathBuf>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            intra_threads: None,
            opt_level: OptLevel::All,
            prepacking: true,
            cpu_arena: false,
            provider: ExecutionProvider::Cpu,
            providers: ProviderConfig::default(),
            ort_library: None,
        }
    }
}

/// Finds the ONNX Runtime shared library (see module docs for the order).
pub fn find_ort_library(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return existing(p)
            .ok_or_else(|| Error::OrtLibrary(format!("{} does not exist", p.display())));
    }
    if let Some(v) = std::env::var_os(ORT_DYLIB_ENV).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(v);
        return existing(&p).ok_or_else(|| {
            Error::OrtLibrary(format!("{ORT_DYLIB_ENV}={} does not exist", p.display()))
        });
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    let mut searched = Vec::new();
    if let Some(dir) = &exe_dir {
        if let Some(p) = lib_in_dir(dir) {
            return Ok(p);
        }
        searched.push(dir.clone());
    }
    // Ancestors of the current directory first (the usual `cargo run` / `cargo test` case), then of
    // the executable (an installed binary inside a checkout).
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Some(dir) = &exe_dir {
        roots.extend(dir.ancestors().map(Path::to_path_buf));
    }
    for root in roots {
        let lib = root.join(".venv").join("lib");
        if let Some(p) = lib_in_venv(&lib) {
            return Ok(p);
        }
        searched.push(lib);
    }
    Err(Error::OrtLibrary(format!(
        "no {ORT_LIB_STEM}* found. Set {ORT_DYLIB_PATH}=/path/to/{ORT_LIB_STEM}.1.{ORT_REQUIRED_MINOR}.x, put the library \
         next to the binary, or create <repo>/.venv with `pip install onnxruntime==1.{ORT_REQUIRED_MINOR}.*` (scripts/setup). \
         Searched: {}",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        ORT_DYLIB_PATH = ORT_DYLIB_ENV
    )))
}

fn existing(p: &Path) -> Option<PathBuf> {
    p.is_file().then(|| p.to_path_buf())
}

/// `libonnxruntime.so*` in `dir`, preferring the fully versioned name (the real file, not a link).
fn lib_in_dir(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(ORT_LIB_STEM))
                && p.is_file()
        })
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.into_iter().next()
}

/// `<venv>/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`.
fn lib_in_venv(venv_lib: &Path) -> Option<PathBuf> {
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(venv_lib)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("python3"))
        })
        .collect();
    pythons.sort();
    pythons
        .into_iter()
        .find_map(|py| lib_in_dir(&py.join("site-packages").join("onnxruntime").join("capi")))
}

/// The version in a library file name such as `libonnxruntime.so.1.31.1`, if it has one.
fn version_from_name(path: &Path) -> Option<(u32, u32)> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix(ORT_LIB_STEM)?.strip_prefix('.')?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

struct OrtState {
    env: Environment,
    library: PathBuf,
}

/// ONNX Runtime allows one environment per process (ort enforces it, forever), so every engine in the
/// process shares this one.
static ORT: OnceLock<Mutex<Option<OrtState>>> = OnceLock::new();

/// Loads the library (once per process) and returns the shared environment and the library's path.
pub fn environment(explicit: Option<&Path>) -> Result<(Environment, PathBuf)> {
    let cell = ORT.get_or_init(|| Mutex::new(None));
    let mut guard = cell
        .lock()
        .map_err(|_| Error::OrtLibrary("environment lock poisoned".into()))?;
    if let Some(state) = guard.as_ref() {
        return Ok((state.env.clone(), state.library.clone()));
    }
    let library = find_ort_library(explicit)?;
    disable_ort_telemetry();
    if let Some((major, minor)) = version_from_name(&library) {
        if (major, minor) != (1, ORT_REQUIRED_MINOR) {
            return Err(Error::OrtLibrary(format!(
                "{} is ONNX Runtime {major}.{minor}; this build needs 1.{ORT_REQUIRED_MINOR}.x",
                library.display()
            )));
        }
    }
    let builder = ort::init_from(&library)
        .map_err(|e| Error::OrtLibrary(format!("{}: {e}", library.display())))?;
    let env = builder
        .with_name("unimed-edge")
        .with_telemetry(false)
        .build()
        .map_err(|e| {
            Error::OrtLibrary(format!(
                "{}: creating the environment: {e}",
                library.display()
            ))
        })?;
    *guard = Some(OrtState {
        env: env.clone(),
        library: library.clone(),
    });
    Ok((env, library))
}

/// Environment variable that turns ONNX Runtime's own telemetry off completely (>= 1.29 on Linux: a
/// 1DS uploader to mobile.events.data.microsoft.com, a device-id file and an event database under
/// `$XDG_CACHE_HOME/Microsoft/DeveloperTools`). `with_telemetry(false)` alone does not stop the
/// process-start event; only this variable, read when the library initialises, does.
const ORT_TELEMETRY_ENV: &str = "ORT_DISABLE_TELEMETRY";

/// Sets `ORT_DISABLE_TELEMETRY=1` unless the user set it: a tool next to a scanner must make no
/// network connection and leave no identifier behind. Called under the environment lock before the
/// library is loaded, so no ONNX Runtime thread exists yet to read the environment concurrently.
fn disable_ort_telemetry() {
    if std::env::var_os(ORT_TELEMETRY_ENV).is_none() {
        std::env::set_var(ORT_TELEMETRY_ENV, "1");
    }
}

/// Builds a session for `model` with `opts`. `graph` names the graph in errors and selects its
/// provider (`opts.providers`); providers/register.rs registers it, or fails saying why.
pub fn create_session(graph: &str, model: &Path, opts: &SessionOptions) -> Result<Session> {
    let (env, library) = environment(opts.ort_library.as_deref())?;
    let stage = format!("{graph} ({})", model.display());
    let fresh = || -> Result<SessionBuilder> {
        let builder = Session::builder(&env).map_err(|e| Error::ort(&stage, e))?;
        configure(builder, opts).map_err(|e| Error::ort(&stage, e))
    };
    super::providers::create(graph, model, &library, opts, fresh)
}

fn configure(
    builder: SessionBuilder,
    opts: &SessionOptions,
) -> std::result::Result<SessionBuilder, ort::Error> {
    let level = match opts.opt_level {
        OptLevel::Disable => GraphOptimizationLevel::Disable,
        OptLevel::Basic => GraphOptimizationLevel::Level1,
        OptLevel::Extended => GraphOptimizationLevel::Level2,
        OptLevel::All => GraphOptimizationLevel::All,
    };
    let mut b = builder
        .with_optimization_level(level)?
        .with_prepacking(opts.prepacking)?;
    if let Some(n) = opts.intra_threads {
        b = b.with_intra_threads(n)?;
    }
    if !opts.cpu_arena {
        disable_cpu_arena(&mut b)?;
    }
    Ok(b)
}

/// `DisableCpuMemArena` (Python's `enable_cpu_mem_arena = False`); ort 2.0.0-rc.15 has no safe
/// wrapper for it.
fn disable_cpu_arena(b: &mut SessionBuilder) -> std::result::Result<(), ort::Error> {
    // SAFETY: the pointer is the builder's live OrtSessionOptions, and the call only sets a flag on
    // it; the returned status comes straight from the C API, as `result_from_status` requires.
    unsafe { ort::Error::result_from_status((ort::api().DisableCpuMemArena)(b.ptr_mut())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_read_from_the_file_name() {
        assert_eq!(
            version_from_name(Path::new("/x/libonnxruntime.so.1.31.1")),
            Some((1, 31))
        );
        assert_eq!(
            version_from_name(Path::new("/x/libonnxruntime.so.1.20.0")),
            Some((1, 20))
        );
        assert_eq!(version_from_name(Path::new("/x/libonnxruntime.so")), None);
    }

    #[test]
    fn missing_explicit_library_is_a_clear_error() {
        let err =
            find_ort_library(Some(Path::new("/nonexistent/libonnxruntime.so.1.31.1"))).unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/libonnxruntime.so.1.31.1"),
            "{err}"
        );
    }

    #[test]
    fn library_in_a_venv_layout_is_found() {
        let root = std::env::temp_dir().join(format!("unimed-ort-find-{}", std::process::id()));
        let capi = root.join(".venv/lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        std::fs::write(capi.join("libonnxruntime.so.1.31.1"), b"").unwrap();
        std::fs::write(capi.join("libonnxruntime_providers_shared.so"), b"").unwrap();
        let found = lib_in_venv(&root.join(".venv/lib")).unwrap();
        assert_eq!(found.file_name().unwrap(), "libonnxruntime.so.1.31.1");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
