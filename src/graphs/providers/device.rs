//! Where tensors that live across runs should be allocated for a graph's provider.
//!
//! The decoder's KV cache is bound as both past input and present output on every step. In CPU memory
//! with the decoder on CUDA, ONNX Runtime would copy the whole cache to the device and back on every
//! step (on a Jetson too: unified DRAM, but still a full memcpy each way). Allocated with the session's
//! CUDA allocator it stays on the device for the whole generation, and only the logits come back.
//!
//! `kv_memory` asks the session itself where it reads an input from (`SessionGetMemoryInfoForInputs`,
//! ONNX Runtime ≥ 1.23) rather than deriving it from the requested provider: after an allowed fallback
//! the decoder may run on the CPU although CUDA was asked for, and a TensorRT graph reads CUDA memory
//! too. The session's answer is the memory its kernels read, whichever provider got the graph.

use std::ffi::{c_char, c_int, CStr};

use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::sys::{OrtMemoryInfo, OrtMemoryInfoDeviceType};
use ort::AsPointer;

use super::c_status;
use crate::error::{Error, Result};

/// Where a graph input lives: ONNX Runtime's device name (`Cpu`, `Cuda`, …) and device id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputMemory {
    pub device: String,
    pub device_id: i32,
    /// Host memory (the CPU allocator serves it; its data can be read directly).
    pub host: bool,
}

/// Report name of host memory.
pub const HOST_LABEL: &str = "cpu";

/// `cpu` for host memory, else ONNX Runtime's device name and id, e.g. `cuda:0` (for reports).
pub fn memory_label(host: bool, device: &str, device_id: i32) -> String {
    if host {
        HOST_LABEL.into()
    } else {
        format!("{}:{device_id}", device.to_ascii_lowercase())
    }
}

impl InputMemory {
    /// `cpu` or e.g. `cuda:0`, for reports.
    pub fn label(&self) -> String {
        memory_label(self.host, &self.device, self.device_id)
    }

    /// The memory info to ask the session for an allocator of (device memory, default kind).
    pub fn memory_info(&self) -> Result<MemoryInfo<'static>> {
        MemoryInfo::new(
            AllocationDevice::new(&self.device),
            self.device_id,
            AllocatorType::Device,
            MemoryType::Default,
        )
        .map_err(|e| Error::ort(format!("{} memory info", self.label()), e))
    }
}

/// Where `session` reads each of `inputs` from, in the order given. `graph` names the graph in errors.
pub fn input_memory(session: &Session, graph: &str, inputs: &[&str]) -> Result<Vec<InputMemory>> {
    let stage = format!("{graph}: asking where the session reads its inputs");
    let names: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
    let mut infos: Vec<*const OrtMemoryInfo> = vec![std::ptr::null(); names.len()];
    let api = ort::api();
    // SAFETY: `infos` has one slot per session input, as the call requires; the memory infos written
    // into it belong to the session, which outlives this function, and are only read here.
    unsafe {
        c_status((api.SessionGetMemoryInfoForInputs)(
            session.ptr(),
            infos.as_mut_ptr(),
            infos.len(),
        ))
        .map_err(|e| Error::ort(&stage, e))?;
    }
    inputs
        .iter()
        .map(|input| {
            let index = names.iter().position(|n| n == input).ok_or_else(|| {
                Error::ort(
                    &stage,
                    format!("no input `{input}` (inputs: {})", names.join(", ")),
                )
            })?;
            let info = infos[index];
            if info.is_null() {
                return Err(Error::ort(
                    &stage,
                    format!("ONNX Runtime gave no memory info for input `{input}`"),
                ));
            }
            // SAFETY: a non-null memory info owned by the live session (see above).
            unsafe { describe(api, info) }
                .map_err(|e| Error::ort(&stage, format!("input `{input}`: {e}")))
        })
        .collect()
}

/// Device memory for the long-lived tensors bound to `input` (the decoder's KV cache): `None` when the
/// session reads it from host memory (the default CPU allocator serves it).
pub fn kv_memory(session: &Session, graph: &str, input: &str) -> Result<Option<InputMemory>> {
    let mut found = input_memory(session, graph, &[input])?;
    Ok(found.pop().filter(|m| !m.host))
}

unsafe fn describe(
    api: &ort::sys::OrtApi,
    info: *const OrtMemoryInfo,
) -> std::result::Result<InputMemory, String> {
    let mut name: *const c_char = std::ptr::null();
    c_status((api.MemoryInfoGetName)(info, &mut name))?;
    if name.is_null() {
        return Err("memory info without a device name".into());
    }
    let device = CStr::from_ptr(name).to_string_lossy().into_owned();
    let mut device_id: c_int = 0;
    c_status((api.MemoryInfoGetId)(info, &mut device_id))?;
    let mut kind = OrtMemoryInfoDeviceType::OrtMemoryInfoDeviceType_CPU;
    (api.MemoryInfoGetDeviceType)(info, &mut kind);
    Ok(InputMemory {
        device,
        device_id,
        host: kind == OrtMemoryInfoDeviceType::OrtMemoryInfoDeviceType_CPU,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_decoder() -> Session {
        let model =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny/decoder.onnx");
        let (env, _) = crate::graphs::session::environment(None).unwrap();
        Session::builder(&env)
            .unwrap()
            .commit_from_file(&model)
            .unwrap()
    }

    /// On the CPU provider the session reads the KV cache from host memory, so the decoder keeps the
    /// default CPU allocator (the device branch needs a GPU and is covered by scripts/gpu-check).
    #[test]
    fn a_cpu_session_reads_its_kv_cache_from_host_memory() {
        let session = tiny_decoder();
        let past = session
            .inputs()
            .iter()
            .map(|o| o.name().to_string())
            .find(|n| n.starts_with("past"))
            .expect("a past input");
        let found = input_memory(&session, "decoder", &[&past]).unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].host, "{found:?}");
        assert_eq!(found[0].device, "Cpu");
        assert_eq!(found[0].label(), "cpu");
        assert!(kv_memory(&session, "decoder", &past).unwrap().is_none());
        let err = input_memory(&session, "decoder", &["nope"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no input `nope`") && err.contains(&past),
            "{err}"
        );
    }

    #[test]
    fn device_memory_is_labelled_with_its_id() {
        let gpu = InputMemory {
            device: "Cuda".into(),
            device_id: 1,
            host: false,
        };
        assert_eq!(gpu.label(), "cuda:1");
        crate::graphs::session::environment(None).unwrap();
        let info = gpu.memory_info().unwrap();
        assert_eq!(info.device_id(), 1);
        assert_eq!(info.allocation_device(), AllocationDevice::CUDA);
    }
}
