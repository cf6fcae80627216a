//! `--ep`, `--ep-config`, `--fallback` and the GPU provider flags, shared by every subcommand that runs
//! a model (run, batch, bench, info). The library does the work (graphs/providers/); this file only
//! turns flags into `SessionOptions` and placements into JSON.
//!
//! Precedence: flags over the `--ep-config` file over the defaults (CPU for every graph, no fallback).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};
use unimed_edge::graphs::providers::{self, parse_size, EpSpec, ProviderConfig};
use unimed_edge::SessionOptions;

use super::exit_codes::{fail, Exit};

#[derive(Debug, Clone, Default, Args)]
pub struct EpFlags {
    /// Execution provider: cpu, cuda or tensorrt, for every graph or per graph, e.g.
    /// `tensorrt,decoder=cuda` (graphs: vision, connector, decoder). Default: cpu.
    #[arg(
        long = "ep",
        visible_alias = "provider",
        value_name = "SPEC",
        env = "UNIMED_EP"
    )]
    ep: Option<String>,
    /// JSON file of provider options: {"ep", "fallback", "cpu_nodes", "cuda": {...}, "tensorrt": {...}}
    /// (docs/JETSON.md).
    #[arg(long, value_name = "FILE")]
    ep_config: Option<PathBuf>,
    /// Allow falling back TensorRT → CUDA → CPU when a provider is unavailable or leaves nodes to the
    /// CPU (reported on stderr and in --json). Without it such a run fails.
    #[arg(long)]
    fallback: bool,
    /// CUDA device ordinal (CUDA and TensorRT).
    #[arg(long, value_name = "N")]
    cuda_device: Option<i32>,
    /// Cap of the CUDA memory arena, e.g. 6G (bytes, or K/M/G).
    #[arg(long, value_name = "SIZE")]
    gpu_mem_limit: Option<String>,
    /// TensorRT engine cache folder (one sub-folder per graph; the timing cache goes to DIR/timing).
    #[arg(long, value_name = "DIR")]
    trt_cache: Option<PathBuf>,
    /// TensorRT: use this DLA core of a Jetson Orin (0 or 1).
    #[arg(long, value_name = "N")]
    dla_core: Option<u32>,
}

impl EpFlags {
    /// The provider configuration these flags describe.
    pub fn config(&self) -> Result<ProviderConfig> {
        let mut cfg = match &self.ep_config {
            Some(path) => {
                ProviderConfig::from_file(path).map_err(|e| fail(Exit::Usage, e.to_string()))?
            }
            None => ProviderConfig::default(),
        };
        if let Some(spec) = &self.ep {
            cfg.ep = spec
                .parse::<EpSpec>()
                .map_err(|e| fail(Exit::Usage, format!("--ep: {e}")))?;
        }
        cfg.fallback |= self.fallback;
        if let Some(id) = self.cuda_device {
            cfg.cuda.device_id = id;
        }
        if let Some(s) = &self.gpu_mem_limit {
            cfg.cuda.mem_limit = Some(
                parse_size(s).map_err(|e| fail(Exit::Usage, format!("--gpu-mem-limit: {e}")))?,
            );
        }
        if let Some(dir) = &self.trt_cache {
            cfg.tensorrt.engine_cache_dir = Some(dir.clone());
            cfg.tensorrt.timing_cache_dir = Some(dir.join("timing"));
        }
        if let Some(core) = self.dla_core {
            cfg.tensorrt.dla_core = Some(core);
        }
        Ok(cfg)
    }

    /// Puts the provider choice into `session`.
    pub fn apply(&self, session: &mut SessionOptions) -> Result<()> {
        // Each error names its flag (--ep, --ep-config …): no extra context line.
        let cfg = self.config()?;
        if let Some(default) = cfg.ep.default {
            session.provider = default;
        }
        session.providers = cfg;
        Ok(())
    }
}

/// Where each graph ran, for `--json` outputs: `{"vision": {"provider": "cuda", ...}, ...}`.
pub fn placements_json() -> Value {
    let mut map = serde_json::Map::new();
    for p in providers::placements() {
        map.insert(p.graph.clone(), json!(p));
    }
    Value::Object(map)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use unimed_edge::ExecutionProvider;

    #[test]
    fn flags_override_the_file_and_set_the_default() {
        let dir = std::env::temp_dir().join(format!("unimed-ep-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ep.json");
        std::fs::write(
            &file,
            r#"{"ep": "cuda", "cuda": {"device_id": 1, "mem_limit": 1000}}"#,
        )
        .unwrap();
        let flags = EpFlags {
            ep: Some("tensorrt,decoder=cuda".into()),
            ep_config: Some(file),
            gpu_mem_limit: Some("2G".into()),
            trt_cache: Some(dir.join("trt")),
            ..EpFlags::default()
        };
        let mut session = SessionOptions::default();
        flags.apply(&mut session).unwrap();
        assert_eq!(session.provider, ExecutionProvider::TensorRt);
        assert_eq!(
            session
                .providers
                .ep
                .provider_for("decoder", session.provider),
            ExecutionProvider::Cuda
        );
        assert_eq!(
            session.providers.cuda.device_id, 1,
            "the file's value stays when no flag overrides it"
        );
        assert_eq!(session.providers.cuda.mem_limit, Some(2 << 30));
        assert_eq!(
            session.providers.tensorrt.timing_cache_dir,
            Some(dir.join("trt").join("timing"))
        );
        assert!(!session.providers.fallback);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_flags_leave_the_cpu_default_untouched() {
        let mut session = SessionOptions::default();
        EpFlags::default().apply(&mut session).unwrap();
        assert_eq!(session.provider, ExecutionProvider::Cpu);
        assert_eq!(session.providers, ProviderConfig::default());
    }
}
