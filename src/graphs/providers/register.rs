//! Creating a session on the requested provider, or failing with the reason.
//!
//! The order of checks gives the most useful message first: is the provider compiled into this binary
//! (cargo feature), is it in the loaded ONNX Runtime library (`GetAvailableProviders`), does it register
//! (this loads `libonnxruntime_providers_*.so` and its CUDA / cuDNN / TensorRT libraries), does the session
//! build, and did the provider actually take the graph (node assignments). Registration always uses
//! `error_on_failure`: ort's default is to log and carry on with the CPU.
//!
//! With `fallback` set, a failed step moves on to the next provider (TensorRT → CUDA → CPU) and the
//! placement is accepted as it is; both are reported on stderr and in the placement record.

use std::path::Path;

use ort::session::builder::SessionBuilder;
use ort::session::Session;

use super::placement::{self, Placement, RECORD_ASSIGNMENT_KEY};
use super::{CpuNodes, ProviderConfig};
use crate::error::{Error, Result};
use crate::graphs::session::{ExecutionProvider, SessionOptions};

/// Execution providers compiled into the loaded ONNX Runtime library (`GetAvailableProviders`). This is
/// what the library can offer; whether a provider works also depends on drivers at session creation.
pub fn available_providers() -> Result<Vec<String>> {
    use std::ffi::{c_char, c_int, CStr};
    let api = ort::api();
    let mut list: *mut *mut c_char = std::ptr::null_mut();
    let mut count: c_int = 0;
    // SAFETY: the C API fills `list` with `count` NUL-terminated strings that stay valid until
    // ReleaseAvailableProviders; a non-null status means failure and is released after reading it.
    unsafe {
        super::c_status((api.GetAvailableProviders)(&mut list, &mut count))
            .map_err(|message| Error::ort("GetAvailableProviders", message))?;
        let mut names = Vec::new();
        if !list.is_null() {
            for i in 0..usize::try_from(count).unwrap_or(0) {
                let p = *list.add(i);
                if !p.is_null() {
                    names.push(CStr::from_ptr(p).to_string_lossy().into_owned());
                }
            }
            let release = (api.ReleaseAvailableProviders)(list, count);
            if !release.0.is_null() {
                (api.ReleaseStatus)(release.0);
            }
        }
        Ok(names)
    }
}

/// Providers to try for `requested`, in order.
fn chain(requested: ExecutionProvider, fallback: bool) -> Vec<ExecutionProvider> {
    use ExecutionProvider::*;
    match (requested, fallback) {
        (_, false) => vec![requested],
        (TensorRt, true) => vec![TensorRt, Cuda, Cpu],
        (Cuda, true) => vec![Cuda, Cpu],
        (Cpu, true) => vec![Cpu],
    }
}

/// Creates the session of `graph` from `model`. `fresh` makes a configured builder (threads,
/// optimisation level, prepacking) without any provider; it is called once per attempt because a
/// builder that failed is not reused.
pub(crate) fn create(
    graph: &str,
    model: &Path,
    library: &Path,
    opts: &SessionOptions,
    mut fresh: impl FnMut() -> Result<SessionBuilder>,
) -> Result<Session> {
    let cfg = &opts.providers;
    let requested = cfg.ep.provider_for(graph, opts.provider);
    let stage = format!("{graph} ({})", model.display());
    let mut reasons: Vec<String> = Vec::new();
    for ep in chain(requested, cfg.fallback) {
        if ep == ExecutionProvider::Cpu {
            let session = fresh()?
                .commit_from_file(model)
                .map_err(|e| Error::ort(&stage, e))?;
            let fallback = (!reasons.is_empty()).then(|| reasons.join("; "));
            if let Some(why) = &fallback {
                warn(
                    graph,
                    &format!("running on the CPU because fallback is allowed: {why}"),
                );
            }
            placement::record(Placement {
                graph: graph.to_string(),
                requested,
                provider: ep,
                nodes: None,
                cpu_ops: Default::default(),
                fallback,
            });
            return Ok(session);
        }
        match attempt(graph, model, library, ep, cfg, fresh()?) {
            Ok((session, mut placed)) => {
                placed.requested = requested;
                if let Err(why) = check_placement(&placed, ep, cfg) {
                    if !cfg.fallback {
                        return Err(refusal(graph, model, ep, &why));
                    }
                    warn(
                        graph,
                        &format!("accepted because fallback is allowed: {why}"),
                    );
                    reasons.push(why);
                }
                placed.fallback = (!reasons.is_empty()).then(|| reasons.join("; "));
                placement::record(placed);
                return Ok(session);
            }
            Err(why) if cfg.fallback => reasons.push(format!("{}: {why}", ep.name())),
            Err(why) => return Err(refusal(graph, model, ep, &why)),
        }
    }
    Err(Error::ort(
        stage,
        format!(
            "no execution provider could run the graph: {}",
            reasons.join("; ")
        ),
    ))
}

/// The error for a provider that was asked for and cannot run the graph.
fn refusal(graph: &str, model: &Path, ep: ExecutionProvider, why: &str) -> Error {
    Error::Ort {
        stage: format!("{graph} ({})", model.display()),
        message: format!(
            "execution provider {} ({}) cannot run graph {graph}: {why}. Nothing was run on another provider; \
             pass --fallback (or \"fallback\": true in --ep-config) to allow TensorRT → CUDA → CPU fallback",
            ep.name(),
            ep.ort_name()
        ),
    }
}

fn warn(graph: &str, message: &str) {
    // The library has no logger; stderr is where the CLI's progress goes too.
    eprintln!("unimed: warning: {graph}: {message}");
}

/// One try of one GPU provider: the session and where its nodes went, or why not.
fn attempt(
    graph: &str,
    model: &Path,
    library: &Path,
    ep: ExecutionProvider,
    cfg: &ProviderConfig,
    builder: SessionBuilder,
) -> std::result::Result<(Session, Placement), String> {
    if !ep.compiled_in() {
        let feature = ep.cargo_feature().unwrap_or_default();
        return Err(format!(
            "this unimed binary was built without the `{feature}` cargo feature (rebuild with \
             `cargo build --release --features {feature}`)"
        ));
    }
    let offered = available_providers().map_err(|e| e.to_string())?;
    if !offered.iter().any(|p| p == ep.ort_name()) {
        return Err(format!(
            "the ONNX Runtime library {} does not include {} (it offers: {}); use a GPU build of ONNX Runtime \
             (onnxruntime-gpu on x86_64, the JetPack build on Jetson; docs/JETSON.md) through ORT_DYLIB_PATH",
            library.display(),
            ep.ort_name(),
            offered.join(", ")
        ));
    }
    if graph == "decoder" && cfg.cuda.cuda_graph {
        // Replaying a captured decode step needs a static attention mask of the cache's capacity, device-
        // resident inputs_embeds/mask/logits buffers at fixed addresses and the prefill run outside the
        // capture (`gpu_graph_id` -1); the decode loop does not do that yet (issue #14, docs/JETSON.md).
        return Err("CUDA graphs need inputs whose shapes and device addresses stay the same from run to run, \
                    and the decoder's attention_mask and inputs_embeds change shape every step; set cuda_graph \
                    only for the vision and connector graphs' configuration"
            .into());
    }
    let mut builder = builder
        .with_config_entry(RECORD_ASSIGNMENT_KEY, "1")
        .map_err(|e| format!("setting {RECORD_ASSIGNMENT_KEY}: {e}"))?;
    if cfg.cpu_nodes == CpuNodes::None && !cfg.fallback {
        builder = builder
            .with_disable_cpu_fallback()
            .map_err(|e| format!("disabling CPU fallback: {e}"))?;
    }
    let (mut builder, notices) = dispatch::register(builder, graph, library, ep, cfg)?;
    // Only now that the provider registered is a long build actually coming.
    for notice in notices {
        eprintln!("unimed: {notice}");
    }
    let session = builder
        .commit_from_file(model)
        .map_err(|e| format!("creating the session failed: {}", e.to_string().trim_end()))?;
    let assigned = placement::assignments(&session)
        .map_err(|e| format!("reading the node assignments failed: {e}"))?;
    let (nodes, cpu_ops) = placement::tally(&assigned);
    let placed = Placement {
        graph: graph.to_string(),
        requested: ep,
        provider: ep,
        nodes: Some(nodes),
        cpu_ops,
        fallback: None,
    };
    Ok((session, placed))
}

/// Did `ep` take the graph? (Node placement policy, see [`CpuNodes`].)
fn check_placement(
    p: &Placement,
    ep: ExecutionProvider,
    cfg: &ProviderConfig,
) -> std::result::Result<(), String> {
    let nodes = p.nodes.clone().unwrap_or_default();
    let total: usize = nodes.values().sum();
    let taken = nodes.get(ep.ort_name()).copied().unwrap_or(0);
    if taken == 0 {
        let list: Vec<String> = nodes.iter().map(|(e, n)| format!("{e} {n}")).collect();
        return Err(format!(
            "it took none of the graph's {total} nodes (placement: {})",
            list.join(", ")
        ));
    }
    if cfg.cpu_nodes == CpuNodes::ShapeOnly {
        let compute = p.cpu_compute_ops();
        if !compute.is_empty() {
            let list: Vec<String> = compute.iter().map(|(op, n)| format!("{op} x{n}")).collect();
            return Err(format!(
                "{} compute node(s) of the graph were left to the CPU ({}); the provider has no kernel for them",
                compute.values().sum::<usize>(),
                list.join(", ")
            ));
        }
    }
    Ok(())
}

/// Provider registration proper; compiled only with the matching cargo features.
mod dispatch {
    #[allow(unused_imports)]
    use super::super::tensorrt;
    use super::*;

    #[allow(unused_variables, unused_mut)]
    pub(super) fn register(
        builder: SessionBuilder,
        graph: &str,
        library: &Path,
        ep: ExecutionProvider,
        cfg: &ProviderConfig,
    ) -> std::result::Result<(SessionBuilder, Vec<String>), String> {
        let mut list: Vec<ort::ep::ExecutionProviderDispatch> = Vec::new();
        let mut notices = Vec::new();
        match ep {
            ExecutionProvider::Cpu => {}
            ExecutionProvider::TensorRt => {
                #[cfg(feature = "tensorrt")]
                {
                    let (dispatch, notice) = tensorrt_ep(graph, library, cfg)?;
                    list.push(dispatch);
                    notices.extend(notice);
                }
                #[cfg(feature = "cuda")]
                if cfg.tensorrt.with_cuda {
                    list.push(cuda_ep(cfg));
                }
            }
            ExecutionProvider::Cuda => {
                #[cfg(feature = "cuda")]
                list.push(cuda_ep(cfg));
            }
        }
        let builder = builder
            .with_execution_providers(list)
            .map_err(|e| format!("registering it failed: {}", e.to_string().trim_end()))?;
        Ok((builder, notices))
    }

    #[cfg(feature = "cuda")]
    fn cuda_ep(cfg: &ProviderConfig) -> ort::ep::ExecutionProviderDispatch {
        let o = &cfg.cuda;
        let mut ep = ort::ep::CUDA::default().with_device_id(o.device_id);
        if let Some(limit) = o.mem_limit {
            // With a cap, grow the arena by what is asked, not by powers of two that overshoot it.
            ep = ep
                .with_memory_limit(usize::try_from(limit).unwrap_or(usize::MAX))
                .with_arena_extend_strategy(ort::ep::ArenaExtendStrategy::SameAsRequested);
        }
        if o.cuda_graph {
            ep = ep.with_cuda_graph(true);
        }
        let search = match o.conv_algo_search {
            super::super::ConvSearch::Exhaustive => ort::ep::cuda::ConvAlgorithmSearch::Exhaustive,
            super::super::ConvSearch::Heuristic => ort::ep::cuda::ConvAlgorithmSearch::Heuristic,
            super::super::ConvSearch::Default => ort::ep::cuda::ConvAlgorithmSearch::Default,
        };
        ep.with_conv_algorithm_search(search)
            .build()
            .error_on_failure()
    }

    #[cfg(feature = "tensorrt")]
    fn tensorrt_ep(
        graph: &str,
        library: &Path,
        cfg: &ProviderConfig,
    ) -> std::result::Result<(ort::ep::ExecutionProviderDispatch, Option<String>), String> {
        let o = &cfg.tensorrt;
        if o.dla_core.is_some() && !o.fp16 {
            return Err("a DLA core runs fp16 or int8 only; enable fp16 to use dla_core".into());
        }
        let bundle = cfg.bundle.as_ref();
        let key = tensorrt::CacheKey::new(
            bundle.map(|b| b.manifest_sha256.as_str()),
            cfg.cuda.device_id,
            library,
        );
        let engines = tensorrt::engine_dir(o, graph, &key)
            .map_err(|e| format!("cannot create the engine cache folder: {e}"))?;
        let timing = tensorrt::timing_dir(o, &key)
            .map_err(|e| format!("cannot create the timing cache folder: {e}"))?;
        let mut ep = ort::ep::TensorRT::default()
            .with_device_id(cfg.cuda.device_id)
            .with_fp16(o.fp16)
            .with_engine_cache(true)
            .with_engine_cache_path(engines.display())
            .with_timing_cache(true)
            .with_timing_cache_path(timing.display());
        // Without a bundle context (sessions made outside `for_bundle`) the provider uses the graph's
        // declared shapes, which is enough for the fixed-shape vision and connector graphs.
        if let Some(p) = bundle.and_then(|b| b.trt_profiles.get(graph)).cloned() {
            ep = ep
                .with_profile_min_shapes(p.min)
                .with_profile_opt_shapes(p.opt)
                .with_profile_max_shapes(p.max);
        }
        if let Some(core) = o.dla_core {
            ep = ep.with_dla(true).with_dla_core(core);
        }
        if let Some(bytes) = o.workspace {
            ep = ep.with_max_workspace_size(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        let notice = (!tensorrt::has_engine(&engines)).then(|| {
            format!(
                "TensorRT is building the engine of graph {graph} (first run on this device and TensorRT version; \
                 this can take several minutes). It is cached in {} and later runs load it in seconds.",
                engines.display()
            )
        });
        Ok((ep.build().error_on_failure(), notice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_chains_go_down_to_the_cpu_only_when_allowed() {
        use ExecutionProvider::*;
        assert_eq!(chain(TensorRt, false), vec![TensorRt]);
        assert_eq!(chain(Cuda, false), vec![Cuda]);
        assert_eq!(chain(TensorRt, true), vec![TensorRt, Cuda, Cpu]);
        assert_eq!(chain(Cuda, true), vec![Cuda, Cpu]);
    }

    fn placed(nodes: &[(&str, usize)], cpu_ops: &[(&str, usize)]) -> Placement {
        Placement {
            graph: "decoder".into(),
            requested: ExecutionProvider::Cuda,
            provider: ExecutionProvider::Cuda,
            nodes: Some(nodes.iter().map(|(k, v)| (k.to_string(), *v)).collect()),
            cpu_ops: cpu_ops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            fallback: None,
        }
    }

    #[test]
    fn placement_policy() {
        let cfg = ProviderConfig::default();
        let cuda = ExecutionProvider::Cuda;
        // Shape bookkeeping on the CPU is fine.
        let ok = placed(
            &[("CUDAExecutionProvider", 40), ("CPUExecutionProvider", 3)],
            &[("Shape", 1), ("Gather", 2)],
        );
        assert!(check_placement(&ok, cuda, &cfg).is_ok());
        // A MatMul on the CPU is not.
        let bad = placed(
            &[("CUDAExecutionProvider", 40), ("CPUExecutionProvider", 2)],
            &[("Shape", 1), ("MatMulNBits", 1)],
        );
        let why = check_placement(&bad, cuda, &cfg).unwrap_err();
        assert!(why.contains("MatMulNBits x1"), "{why}");
        // ...unless any placement is accepted.
        let any = ProviderConfig {
            cpu_nodes: CpuNodes::Any,
            ..ProviderConfig::default()
        };
        assert!(check_placement(&bad, cuda, &any).is_ok());
        // A provider that took nothing never passes.
        let none = placed(&[("CPUExecutionProvider", 12)], &[("MatMul", 12)]);
        let why = check_placement(&none, cuda, &any).unwrap_err();
        assert!(why.contains("none of the graph's 12 nodes"), "{why}");
    }
}
