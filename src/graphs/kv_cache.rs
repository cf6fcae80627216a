//! The decoder's KV cache: one type, two storage strategies chosen by the manifest's
//! `past_present_share_buffer`. Neither copies the cache in Rust, ever.
//!
//! * `Shared` (GroupQueryAttention graphs): per layer one key and one value buffer
//!   `[1, kv_heads, capacity, head_dim]`, allocated by ONNX Runtime's CPU allocator once and reused
//!   across steps and requests. The decoder binds the same buffer as `past` input and `present` output
//!   (IoBinding), so the attention op writes the new positions in place; the graph learns the current
//!   length from `attention_mask`'s length. Positions at or beyond `len` hold stale data that the mask
//!   hides, so `reset` only rewinds the length.
//! * `Moved` (plain attention graphs): `present` tensors of `past + S` positions, allocated by ONNX
//!   Runtime each step, are moved (the `OrtValue` handle, not the data) into the next step's `past`.

use ort::memory::Allocator;
use ort::value::{DynValue, Tensor};

use crate::error::{Error, Result};

/// Shape facts of the cache.
#[derive(Debug, Clone, Copy)]
pub struct KvShape {
    pub num_layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

pub(crate) enum KvStorage {
    /// `layers[i] = (key, value)`, each `[1, kv_heads, capacity, head_dim]`.
    Shared { layers: Vec<(Tensor<f32>, Tensor<f32>)>, capacity: usize },
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
    /// A shared (in-place) cache with room for `capacity` positions.
    pub fn new_shared(shape: KvShape, capacity: usize) -> Result<Self> {
        let alloc = Allocator::default();
        let dims = [1, shape.kv_heads as i64, capacity as i64, shape.head_dim as i64];
        let mut layers = Vec::with_capacity(shape.num_layers);
        for layer in 0..shape.num_layers {
            let make = || {
                Tensor::<f32>::new(&alloc, dims).map_err(|e| {
                    Error::ort(STAGE, format!("allocating layer {layer} buffer {dims:?} ({} positions): {e}", capacity))
                })
            };
            layers.push((make()?, make()?));
        }
        Ok(KvCache { storage: KvStorage::Shared { layers, capacity }, shape, len: 0 })
    }

    /// A moved-presents cache, starting empty (`past` of 0 positions).
    pub fn new_moved(shape: KvShape) -> Result<Self> {
        let mut cache = KvCache { storage: KvStorage::Moved { layers: Vec::new() }, shape, len: 0 };
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
                let empty = |d: Vec<usize>| {
                    Tensor::from_array((d, Vec::<f32>::new()))
                        .map(|t| t.into_dyn())
                        .map_err(|e| Error::ort(STAGE, format!("creating an empty past: {e}")))
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
            KvStorage::Shared { layers, .. } => {
                layers.iter().flat_map(|(k, v)| [k.data_ptr() as usize, v.data_ptr() as usize]).collect()
            }
            KvStorage::Moved { layers } => layers
                .iter()
                .flat_map(|(k, v)| [dyn_ptr(k), dyn_ptr(v)])
                .collect(),
        }
    }

    /// Copies out one layer's keys `[kv_heads, len, head_dim]` (tests and debugging only).
    pub fn keys(&self, layer: usize) -> Result<Vec<f32>> {
        let (kv_heads, head_dim) = (self.shape.kv_heads, self.shape.head_dim);
        match &self.storage {
            KvStorage::Shared { layers, capacity } => {
                let (_, data) = layers
                    .get(layer)
                    .ok_or_else(|| Error::Request(format!("layer {layer} out of range")))?
                    .0
                    .extract_tensor();
                let mut out = Vec::with_capacity(kv_heads * self.len * head_dim);
                for h in 0..kv_heads {
                    let base = h * capacity * head_dim;
                    out.extend_from_slice(&data[base..base + self.len * head_dim]);
                }
                Ok(out)
            }
            KvStorage::Moved { layers } => {
                let (_, data) = layers
                    .get(layer)
                    .ok_or_else(|| Error::Request(format!("layer {layer} out of range")))?
                    .0
                    .try_extract_tensor::<f32>()
                    .map_err(|e| Error::ort(STAGE, e))?;
                Ok(data.to_vec())
            }
        }
    }
}

fn dyn_ptr(v: &DynValue) -> usize {
    v.try_extract_tensor::<f32>().map(|(_, d)| d.as_ptr() as usize).unwrap_or(0)
}
