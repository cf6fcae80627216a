//! Where tensors that live across runs should be allocated for a graph's provider.
//!
//! The decoder's KV cache is bound as both past input and present output on every step. In CPU memory
//! with the decoder on CUDA, ONNX Runtime would copy the whole cache to the device and back on every
//! step (on a Jetson too: unified DRAM, but still a full memcpy each way). Allocated with the session's
//! CUDA allocator it stays on the device for the whole generation, and only the logits come back.
//! `kv_memory` says which memory that is; the decoder asks the session for an allocator of it.

use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};

use crate::error::{Error, Result};
use crate::graphs::session::{ExecutionProvider, SessionOptions};

/// Device memory for `graph`'s long-lived tensors: `None` for the CPU (the default allocator).
pub fn kv_memory(opts: &SessionOptions, graph: &str) -> Result<Option<MemoryInfo<'static>>> {
    match opts.providers.ep.provider_for(graph, opts.provider) {
        ExecutionProvider::Cpu => Ok(None),
        // TensorRT's engines read and write CUDA device memory, like the CUDA provider.
        ExecutionProvider::Cuda | ExecutionProvider::TensorRt => MemoryInfo::new(
            AllocationDevice::CUDA,
            opts.providers.cuda.device_id,
            AllocatorType::Device,
            MemoryType::Default,
        )
        .map(Some)
        .map_err(|e| Error::ort(format!("{graph}: CUDA device memory info"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_graphs_use_the_default_allocator_and_gpu_graphs_the_device() {
        let mut opts = SessionOptions::default();
        assert!(kv_memory(&opts, "decoder").unwrap().is_none());
        opts.providers.ep = "decoder=cuda".parse().unwrap();
        opts.providers.cuda.device_id = 1;
        // MemoryInfo needs the ONNX Runtime library loaded.
        crate::graphs::session::environment(None).unwrap();
        let info = kv_memory(&opts, "decoder")
            .unwrap()
            .expect("device memory for a CUDA decoder");
        assert_eq!(info.device_id(), 1);
        assert!(kv_memory(&opts, "vision").unwrap().is_none());
    }
}
