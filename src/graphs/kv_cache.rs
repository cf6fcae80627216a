//! The decoder's KV cache: one type, two storage strategies chosen by the manifest's
//! `past_present_share_buffer`. Neither copies the cache in Rust, ever.
//!
//! * `Shared` (GroupQueryAttention graphs): per layer one key and one value buffer
//!   `[1, kv_heads, capacity, head_dim]`, allocated once, in the memory the decoder's session reads its
//!   past inputs from (the CPU allocator, or the session's CUDA allocator for a decoder on CUDA or
//!   TensorRT: the cache then stays on the device for the whole generation), and reused across steps
//!   and requests. The decoder binds the same buffer as `past` input and `present` output (IoBinding),
//!   so the attention op writes the new positions in place; the graph learns the current length from
//!   `attention_mask`'s length. Positions at or beyond `len` hold stale data that the mask hides, so
//!   `reset` only rewinds the length; for the same reason device buffers are not zeroed (ONNX Runtime
//!   does not zero what it allocates and `ort` zeroes only host memory): the attention op never reads a
//!   position the mask does not cover.
//! * `Moved` (plain attention graphs): `present` tensors of `past + S` positions, allocated by ONNX
//!   Runtime each step, are moved (the `OrtValue` handle, not the data) into the next step's `past`.
//!
//! The element type (`IoDtype`, the manifest's `io_dtype`) is a runtime value rather than a type
//! parameter: both strategies hold type-erased ONNX Runtime values, so one cache type and one code path
//! serve float32 and float16 decoders; only allocation and the debugging read-out look at the type.
//! Nothing here reads the cache's contents except `keys` (tests and debugging), which copies device
//! buffers to the host explicitly.

use half::f16;
use ort::memory::{AllocationDevice, Allocator};
use ort::value::{DynTensor, DynTensorValueType, DynValue, Tensor};

use super::providers::{memory_label, HOST_LABEL};
use crate::error::{Error, Result};

/// Element type of the decoder's `inputs_embeds`, KV cache and `logits` (manifest `graphs.decoder.io_dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDtype {
    Float32,
    Float16,
}

impl IoDtype {
    /// The manifest spelling, e.g. `"float16"`; `None` for any other value.
    pub fn from_manifest(name: &str) -> Option<Self> {
        match name {
            "float32" => Some(IoDtype::Float32),
            "float16" => Some(IoDtype::Float16),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            IoDtype::Float32 => "float32",
            IoDtype::Float16 => "float16",
        }
    }
}

/// Shape facts of the cache.
#[derive(Debug, Clone, Copy)]
pub struct KvShape {
    pub num_layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub dtype: IoDtype,
}

pub(crate) enum KvStorage {
    /// `layers[i] = (key, value)`, each `[1, kv_heads, capacity, head_dim]`.
    Shared {
        layers: Vec<(DynTensor, DynTensor)>,
        capacity: usize,
        /// The allocator the buffers came from. `ort` tensors already keep their allocator alive (a
        /// reference-counted handle, released after the last tensor); holding it here too makes that
        /// ownership visible, and it drops after `layers` (declaration order). The session whose
        /// device arena serves it should outlive the cache: `Engine` drops its cache first.
        _allocator: Allocator,
    },
    /// `layers[i] = (key, value)`, each `[1, kv_heads, len, head_dim]`, owned by ONNX Runtime.
    Moved { layers: Vec<(DynValue, DynValue)> },
}

/// Past keys/values of one sequence.
pub struct KvCache {
    pub(crate) storage: KvStorage,
    shape: KvShape,
    /// Positions currently held.
    len: usize,
}

const STAGE: &str = "kv cache";

impl KvCache {
    /// A shared (in-place) cache with room for `capacity` positions, allocated by `alloc`: ONNX
    /// Runtime's default CPU allocator, or the decoder session's allocator of the device memory its
    /// past inputs live in (`DecoderGraph::new_cache` chooses).
    pub fn new_shared(shape: KvShape, capacity: usize, alloc: Allocator) -> Result<Self> {
        let dims = [
            1,
            shape.kv_heads as i64,
            capacity as i64,
            shape.head_dim as i64,
        ];
        let mut layers = Vec::with_capacity(shape.num_layers);
        for layer in 0..shape.num_layers {
            let make = || {
                let tensor = match shape.dtype {
                    IoDtype::Float32 => Tensor::<f32>::new(&alloc, dims).map(Tensor::upcast),
                    IoDtype::Float16 => Tensor::<f16>::new(&alloc, dims).map(Tensor::upcast),
                };
                tensor.map_err(|e| {
                    Error::ort(
                        STAGE,
                        format!(
                            "allocating layer {layer} {} buffer {dims:?} ({capacity} positions) in {} memory: {e}",
                            shape.dtype.name(),
                            memory_label(
                                alloc.memory_info().is_cpu_accessible(),
                                alloc.memory_info().allocation_device().as_str(),
                                alloc.memory_info().device_id()
                            )
                        ),
                    )
                })
            };
            layers.push((make()?, make()?));
        }
        Ok(KvCache {
            storage: KvStorage::Shared {
                layers,
                capacity,
                _allocator: alloc,
            },
            shape,
            len: 0,
        })
    }

    /// A moved-presents cache, starting empty (`past` of 0 positions).
    pub fn new_moved(shape: KvShape) -> Result<Self> {
        let mut cache = KvCache {
            storage: KvStorage::Moved { layers: Vec::new() },
            shape,
            len: 0,
        };
        cache.reset()?;
        Ok(cache)
    }

    /// Positions currently held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum positions (`None`: grows with each step, bounded by the model's context length).
    pub fn capacity(&self) -> Option<usize> {
        match &self.storage {
            KvStorage::Shared { capacity, .. } => Some(*capacity),
            KvStorage::Moved { .. } => None,
        }
    }

    pub fn shape(&self) -> KvShape {
        self.shape
    }

    /// True for the in-place (share-buffer) strategy.
    pub fn is_shared(&self) -> bool {
        matches!(self.storage, KvStorage::Shared { .. })
    }

    /// Forgets every position. Shared buffers are kept (their stale content is masked out).
    pub fn reset(&mut self) -> Result<()> {
        self.len = 0;
        if let KvStorage::Moved { layers } = &mut self.storage {
            let dims = vec![1usize, self.shape.kv_heads, 0, self.shape.head_dim];
            layers.clear();
            for _ in 0..self.shape.num_layers {
                let dtype = self.shape.dtype;
                let empty = |d: Vec<usize>| {
                    let value = match dtype {
                        IoDtype::Float32 => {
                            Tensor::from_array((d, Vec::<f32>::new())).map(|t| t.into_dyn())
                        }
                        IoDtype::Float16 => {
                            Tensor::from_array((d, Vec::<f16>::new())).map(|t| t.into_dyn())
                        }
                    };
                    value.map_err(|e| {
                        Error::ort(
                            STAGE,
                            format!("creating an empty {} past: {e}", dtype.name()),
                        )
                    })
                };
                layers.push((empty(dims.clone())?, empty(dims.clone())?));
            }
        }
        Ok(())
    }

    /// Records that a step appended `n` positions.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }

    /// Addresses of the key and value buffers of every layer, in layer order (key, value, key, ...).
    /// For the shared strategy these never change during the cache's life: tests use this to prove
    /// that no step reallocates or copies the cache.
    pub fn buffer_ptrs(&self) -> Vec<usize> {
        match &self.storage {
            KvStorage::Shared { layers, .. } => layers
                .iter()
                .flat_map(|(k, v)| [k.data_ptr() as usize, v.data_ptr() as usize])
                .collect(),
            KvStorage::Moved { layers } => layers
                .iter()
                .flat_map(|(k, v)| [dyn_ptr(k), dyn_ptr(v)])
                .collect(),
        }
    }

    /// Where the buffers live: `cpu`, or e.g. `cuda:0` for a cache resident on the device.
    pub fn memory(&self) -> String {
        let first = match &self.storage {
            KvStorage::Shared { layers, .. } => layers.first().map(|(k, _)| tensor_memory(k)),
            KvStorage::Moved { layers } => layers.first().and_then(|(k, _)| {
                k.view()
                    .downcast::<DynTensorValueType>()
                    .ok()
                    .map(|t| tensor_memory(&t))
            }),
        };
        first.unwrap_or_else(|| HOST_LABEL.to_string())
    }

    /// Copies out one layer's keys `[kv_heads, len, head_dim]` as f32 (tests and debugging only). A
    /// cache on the device is copied to the host first, the whole layer buffer (an explicit, slow
    /// copy; nothing on the generation path calls this).
    pub fn keys(&self, layer: usize) -> Result<Vec<f32>> {
        let (kv_heads, head_dim) = (self.shape.kv_heads, self.shape.head_dim);
        let layers_n = self.shape.num_layers;
        let out_of_range = || {
            Error::Request(format!(
                "KV cache: layer {layer} out of range (the cache has {layers_n} layers)"
            ))
        };
        match &self.storage {
            KvStorage::Shared {
                layers, capacity, ..
            } => {
                let data = to_f32(
                    &layers.get(layer).ok_or_else(out_of_range)?.0,
                    self.shape.dtype,
                )?;
                let mut out = Vec::with_capacity(kv_heads * self.len * head_dim);
                for h in 0..kv_heads {
                    let base = h * capacity * head_dim;
                    out.extend_from_slice(&data[base..base + self.len * head_dim]);
                }
                Ok(out)
            }
            KvStorage::Moved { layers } => {
                let key = &layers.get(layer).ok_or_else(out_of_range)?.0;
                let tensor = key.view().downcast::<DynTensorValueType>().map_err(|e| {
                    Error::ort(STAGE, format!("layer {layer} key is not a tensor: {e}"))
                })?;
                to_f32(&tensor, self.shape.dtype)
            }
        }
    }
}

fn tensor_memory(t: &DynTensor) -> String {
    let info = t.memory_info();
    memory_label(
        info.is_cpu_accessible(),
        info.allocation_device().as_str(),
        info.device_id(),
    )
}

/// All of a float tensor's elements as f32 (a copy; debugging read-out only). Device memory cannot be
/// read by the CPU (`try_extract_tensor` refuses it): it is first copied to the host with ONNX Runtime
/// (`ort`'s copy needs the provider of the source device compiled in, e.g. the `cuda` feature, and
/// says so otherwise).
fn to_f32(v: &DynTensor, dtype: IoDtype) -> Result<Vec<f32>> {
    if !v.memory_info().is_cpu_accessible() {
        let host = v.to(AllocationDevice::CPU, 0).map_err(|e| {
            Error::ort(
                STAGE,
                format!(
                    "copying a {} KV buffer from {} memory to the host: {e}",
                    dtype.name(),
                    tensor_memory(v)
                ),
            )
        })?;
        return to_f32(&host, dtype);
    }
    let err =
        |e: ort::Error| Error::ort(STAGE, format!("reading a {} KV buffer: {e}", dtype.name()));
    match dtype {
        IoDtype::Float32 => v
            .try_extract_tensor::<f32>()
            .map(|(_, d)| d.to_vec())
            .map_err(err),
        IoDtype::Float16 => v
            .try_extract_tensor::<f16>()
            .map(|(_, d)| d.iter().map(|x| x.to_f32()).collect())
            .map_err(err),
    }
}

/// Address of a value's data, whatever its element type (0 when it is not a tensor).
fn dyn_ptr(v: &DynValue) -> usize {
    v.view()
        .downcast::<DynTensorValueType>()
        .map(|t| t.data_ptr() as usize)
        .unwrap_or(0)
}
