//! `decoder.onnx`: LLaMA with LoRA merged, driven one step at a time.
//! `inputs_embeds [1,S,H], attention_mask i64[1,T], past.{i}.key/value [1,kvH,P,D] -> logits [1,S|1,V],
//! present.{i}.key/value`. Names (with `%d` layer templates) and the KV strategy come from the manifest;
//! the KV strategies are described in `kv_cache.rs`.
//!
//! In-place mode uses an `IoBinding`: the cache buffers are bound once (as past inputs and present
//! outputs, the same `OrtValue`) and only `inputs_embeds` and `attention_mask` are rebound per step.
//! Every step also checks that the presents ONNX Runtime hands back live at the cache's addresses, so a
//! graph that silently allocates new presents (i.e. copies the cache) is an error, not a slowdown. The
//! check compares data addresses only, never contents, so it holds for a cache in device memory too.
//!
//! Where the cache lives follows the session: the memory ONNX Runtime reads the past inputs from
//! (`providers::kv_memory`). For a decoder on CUDA (or TensorRT) that is CUDA device memory, and the
//! cache is allocated there with the session's allocator: it stays on the device for the whole
//! generation. Per step only `inputs_embeds` and `attention_mask` (host tensors, a few KB; ONNX Runtime
//! copies them in) go to the device, and only the logits, bound to CPU memory, come back.
//!
//! The I/O element type (`io_dtype`) is float32 or float16 (the fp16 decoder). Callers always pass f32
//! embeddings and get f32 logits back: for float16 the embeddings are narrowed here (token rows come
//! from the f16 table, so for them f16 -> f32 -> f16 is exact; only the connector's image rows round) and
//! the last logits row is widened; the KV cache stays float16 throughout.

use std::path::Path;

use half::f16;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};
use ort::value::{DynTensor, DynTensorValueType, DynValue, Tensor, TensorElementType, ValueType};

use super::kv_cache::{IoDtype, KvCache, KvShape, KvStorage};
use super::providers::{input_memory, InputMemory, HOST_LABEL};
use super::session::{create_session, SessionOptions};
use super::{check_outlet, dim, Side};
use crate::bundle::{Manifest, PH_LAYER};
use crate::error::{Error, Result};

const GRAPH: &str = "decoder";

/// Resolved tensor names.
#[derive(Debug, Clone)]
struct Names {
    inputs_embeds: String,
    attention_mask: String,
    logits: String,
    past_keys: Vec<String>,
    past_values: Vec<String>,
    present_keys: Vec<String>,
    present_values: Vec<String>,
}

fn per_layer(template: &str, layers: usize) -> Vec<String> {
    (0..layers)
        .map(|i| template.replacen(PH_LAYER, &i.to_string(), 1))
        .collect()
}

/// The decoder session and its step function.
pub struct DecoderGraph {
    session: Session,
    names: Names,
    kv: KvShape,
    dtype: IoDtype,
    hidden: usize,
    vocab: usize,
    context_length: usize,
    share_buffer: bool,
    /// Device memory the session reads the past inputs from (`None`: host memory).
    kv_memory: Option<InputMemory>,
    /// In-place mode: the binding and the cache buffer addresses it is bound to.
    binding: Option<(IoBinding, Vec<usize>)>,
}

impl DecoderGraph {
    pub fn load(model: &Path, manifest: &Manifest, opts: &SessionOptions) -> Result<Self> {
        let spec = &manifest.graphs.decoder;
        let m = &manifest.model;
        let dtype = IoDtype::from_manifest(&spec.io_dtype).ok_or_else(|| Error::Bundle {
            path: model.to_path_buf(),
            field: "graphs.decoder.io_dtype".into(),
            message: format!(
                "expected \"float32\" or \"float16\", got \"{}\"",
                spec.io_dtype
            ),
        })?;
        let session = create_session(GRAPH, model, opts)?;
        let names = Names {
            inputs_embeds: spec.inputs.inputs_embeds.clone(),
            attention_mask: spec.inputs.attention_mask.clone(),
            logits: spec.outputs.logits.clone(),
            past_keys: per_layer(&spec.inputs.past_key, m.num_layers),
            past_values: per_layer(&spec.inputs.past_value, m.num_layers),
            present_keys: per_layer(&spec.outputs.present_key, m.num_layers),
            present_values: per_layer(&spec.outputs.present_value, m.num_layers),
        };
        check_outlet(
            GRAPH,
            &session,
            Side::Input,
            &names.inputs_embeds,
            "graphs.decoder.inputs.inputs_embeds",
            &[None, None, dim(m.hidden_size, "model.hidden_size")],
        )?;
        check_outlet(
            GRAPH,
            &session,
            Side::Input,
            &names.attention_mask,
            "graphs.decoder.inputs.attention_mask",
            &[None, None],
        )?;
        check_outlet(
            GRAPH,
            &session,
            Side::Output,
            &names.logits,
            "graphs.decoder.outputs.logits",
            &[None, None, dim(m.vocab_size, "model.vocab_size")],
        )?;
        let kv_dims = [
            None,
            dim(m.num_kv_heads, "model.num_kv_heads"),
            None,
            dim(m.head_dim, "model.head_dim"),
        ];
        for (list, side, field) in [
            (
                &names.past_keys,
                Side::Input,
                "graphs.decoder.inputs.past_key",
            ),
            (
                &names.past_values,
                Side::Input,
                "graphs.decoder.inputs.past_value",
            ),
            (
                &names.present_keys,
                Side::Output,
                "graphs.decoder.outputs.present_key",
            ),
            (
                &names.present_values,
                Side::Output,
                "graphs.decoder.outputs.present_value",
            ),
        ] {
            for name in list.iter() {
                check_outlet(GRAPH, &session, side, name, field, &kv_dims)?;
            }
        }
        // A float16 graph fed float32 (or the reverse) fails only at the first run, with ONNX Runtime's
        // terse type error: check the element types against the manifest up front.
        for (side, name) in [
            (Side::Input, &names.inputs_embeds),
            (Side::Output, &names.logits),
            (Side::Input, &names.past_keys[0]),
            (Side::Output, &names.present_keys[0]),
        ] {
            check_element_type(&session, side, name, dtype, model)?;
        }
        // A graph with more layers than the manifest says would silently run with unbound inputs.
        let n_inputs = session.inputs().len();
        let expected_inputs = 2 + 2 * m.num_layers;
        if n_inputs != expected_inputs {
            return Err(Error::Bundle {
                path: model.to_path_buf(),
                field: "model.num_layers".into(),
                message: format!(
                    "the graph has {n_inputs} inputs; inputs_embeds + attention_mask + 2 x {} layers = {expected_inputs} expected",
                    m.num_layers
                ),
            });
        }
        let kv_memory = kv_memory_of(&session, &names)?;
        Ok(DecoderGraph {
            session,
            names,
            kv: KvShape {
                num_layers: m.num_layers,
                kv_heads: m.num_kv_heads,
                head_dim: m.head_dim,
                dtype,
            },
            dtype,
            hidden: m.hidden_size,
            vocab: m.vocab_size,
            context_length: m.context_length,
            share_buffer: spec.past_present_share_buffer,
            kv_memory,
            binding: None,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Element type of the graph's `inputs_embeds`, KV cache and `logits`.
    pub fn io_dtype(&self) -> IoDtype {
        self.dtype
    }

    /// Where the session reads the KV cache from: `cpu`, or e.g. `cuda:0` when the in-place cache is
    /// resident on the device (for reports; `KvCache::memory` says where a given cache is).
    pub fn kv_memory(&self) -> String {
        self.kv_memory
            .as_ref()
            .map_or_else(|| HOST_LABEL.to_string(), InputMemory::label)
    }

    /// A new cache of the manifest's strategy, with room for `capacity` positions (in-place mode; the
    /// moved mode grows as needed). `capacity` is capped at the context length. In-place buffers are
    /// allocated where the session reads its past inputs: the default CPU allocator for host memory,
    /// else the session's own allocator of that device memory (its arena, under `--gpu-mem-limit`).
    pub fn new_cache(&self, capacity: usize) -> Result<KvCache> {
        if self.share_buffer {
            let alloc = match &self.kv_memory {
                None => Allocator::default(),
                Some(memory) => {
                    Allocator::new(&self.session, memory.memory_info()?).map_err(|e| {
                        Error::ort(
                            format!("{GRAPH}: KV cache allocator for {} memory", memory.label()),
                            e,
                        )
                    })?
                }
            };
            KvCache::new_shared(self.kv, capacity.min(self.context_length), alloc)
        } else {
            KvCache::new_moved(self.kv)
        }
    }

    /// Whether `cache` can be reused for a request needing `total` positions.
    pub fn cache_fits(&self, cache: &KvCache, total: usize) -> bool {
        cache.is_shared() == self.share_buffer && cache.capacity().is_none_or(|c| c >= total)
    }

    /// Runs `seq_len` positions (`embeds` is row-major `[seq_len, H]`) on top of `cache`, appends them
    /// to the cache and returns the logits of the last position (`V` floats).
    pub fn step(
        &mut self,
        cache: &mut KvCache,
        embeds: Vec<f32>,
        seq_len: usize,
    ) -> Result<Vec<f32>> {
        if seq_len == 0 || embeds.len() != seq_len * self.hidden {
            return Err(Error::Tensor {
                stage: GRAPH.into(),
                tensor: self.names.inputs_embeds.clone(),
                expected: format!("[1,{seq_len},{}] with seq_len > 0", self.hidden),
                actual: format!("{} floats", embeds.len()),
            });
        }
        let total = cache.len() + seq_len;
        let limit = cache
            .capacity()
            .unwrap_or(self.context_length)
            .min(self.context_length);
        if total > limit {
            return Err(Error::Request(format!(
                "sequence of {total} positions exceeds the decoder's limit of {limit} (context_length {})",
                self.context_length
            )));
        }
        let position = cache.len();
        let stage = || format!("{GRAPH} step at position {position}");
        let dims = [1usize, seq_len, self.hidden];
        let embeds: DynTensor = match self.dtype {
            IoDtype::Float32 => Tensor::from_array((dims, embeds)).map(Tensor::upcast),
            IoDtype::Float16 => {
                let narrowed: Vec<f16> = embeds.iter().map(|v| f16::from_f32(*v)).collect();
                Tensor::from_array((dims, narrowed)).map(Tensor::upcast)
            }
        }
        .map_err(|e| Error::ort(stage(), e))?;
        // Its length tells the graph the total sequence length (past + new).
        let mask = Tensor::from_array(([1usize, total], vec![1i64; total]))
            .map_err(|e| Error::ort(stage(), e))?;
        let dtype = self.dtype;
        // In-place mode: the buffer addresses the binding must point at (unused in moved mode).
        let ptrs = if cache.is_shared() {
            cache.buffer_ptrs()
        } else {
            Vec::new()
        };
        let logits = match &mut cache.storage {
            KvStorage::Shared { layers, .. } => {
                let rebind = self
                    .binding
                    .as_ref()
                    .is_none_or(|(_, bound)| *bound != ptrs);
                if rebind {
                    self.binding = Some((
                        bind_cache(&self.session, &self.names, layers)?,
                        ptrs.clone(),
                    ));
                }
                let Some((binding, _)) = self.binding.as_mut() else {
                    return Err(Error::ort(stage(), "IoBinding missing after binding"));
                };
                binding
                    .bind_input(&self.names.inputs_embeds, &embeds)
                    .map_err(|e| Error::ort(stage(), e))?;
                binding
                    .bind_input(&self.names.attention_mask, &mask)
                    .map_err(|e| Error::ort(stage(), e))?;
                // Rebound every step: once run, a device-bound output keeps the previous run's tensor,
                // whose shape ([1,S,V] after the prefill) would be imposed on the next run.
                bind_logits(binding, &self.names.logits).map_err(|e| Error::ort(stage(), e))?;
                let outputs = self
                    .session
                    .run_binding(binding)
                    .map_err(|e| Error::ort(stage(), e))?;
                check_in_place(&self.names, &outputs, &ptrs, &stage())?;
                let value = outputs.get(&self.names.logits).ok_or_else(|| {
                    Error::ort(stage(), format!("no output `{}`", self.names.logits))
                })?;
                last_row(value, dtype, self.vocab, &self.names.logits, &stage())?
            }
            KvStorage::Moved { layers } => {
                let mut inputs: Vec<(
                    std::borrow::Cow<'_, str>,
                    ort::session::SessionInputValue<'_>,
                )> = Vec::with_capacity(2 + 2 * layers.len());
                inputs.push((self.names.inputs_embeds.as_str().into(), (&embeds).into()));
                inputs.push((self.names.attention_mask.as_str().into(), (&mask).into()));
                for (i, (k, v)) in layers.iter().enumerate() {
                    inputs.push((self.names.past_keys[i].as_str().into(), k.into()));
                    inputs.push((self.names.past_values[i].as_str().into(), v.into()));
                }
                let mut outputs = self
                    .session
                    .run(inputs)
                    .map_err(|e| Error::ort(stage(), e))?;
                let value = outputs.get(&self.names.logits).ok_or_else(|| {
                    Error::ort(stage(), format!("no output `{}`", self.names.logits))
                })?;
                let logits = last_row(value, dtype, self.vocab, &self.names.logits, &stage())?;
                let mut next = Vec::with_capacity(layers.len());
                for i in 0..layers.len() {
                    let mut take = |name: &str| -> Result<DynValue> {
                        let v = outputs
                            .remove(name)
                            .ok_or_else(|| Error::ort(stage(), format!("no output `{name}`")))?;
                        check_present_len(&v, total, name, &stage())?;
                        Ok(v)
                    };
                    next.push((
                        take(&self.names.present_keys[i])?,
                        take(&self.names.present_values[i])?,
                    ));
                }
                drop(outputs);
                *layers = next;
                logits
            }
        };
        cache.advance(seq_len);
        Ok(logits)
    }
}

/// Binds every layer's buffer as both its past input and its present output.
fn bind_cache(
    session: &Session,
    names: &Names,
    layers: &mut [(DynTensor, DynTensor)],
) -> Result<IoBinding> {
    let stage = "decoder: binding the KV cache";
    let mut binding = session.create_binding().map_err(|e| Error::ort(stage, e))?;
    for (i, (k, v)) in layers.iter_mut().enumerate() {
        binding
            .bind_input(&names.past_keys[i], &*k)
            .map_err(|e| Error::ort(stage, e))?;
        binding
            .bind_input(&names.past_values[i], &*v)
            .map_err(|e| Error::ort(stage, e))?;
        binding
            .bind_output(&names.present_keys[i], &mut *k)
            .map_err(|e| Error::ort(stage, e))?;
        binding
            .bind_output(&names.present_values[i], &mut *v)
            .map_err(|e| Error::ort(stage, e))?;
    }
    Ok(binding)
}

/// Where the session reads the past inputs of every layer from: `None` for host memory. All of them must
/// be in one memory: one cache, one allocator. A decoder split between providers (only possible with
/// `--fallback` or `cpu_nodes: any`) would have ONNX Runtime copy part of the cache every step.
fn kv_memory_of(session: &Session, names: &Names) -> Result<Option<InputMemory>> {
    let pasts: Vec<&str> = names
        .past_keys
        .iter()
        .chain(&names.past_values)
        .map(String::as_str)
        .collect();
    let found = input_memory(session, GRAPH, &pasts)?;
    let Some(first) = found.first() else {
        return Ok(None);
    };
    if let Some((name, other)) = pasts.iter().zip(&found).find(|(_, m)| *m != first) {
        return Err(Error::Tensor {
            stage: format!("{GRAPH}: placing the KV cache"),
            tensor: (*name).to_string(),
            expected: format!(
                "the same memory as `{}` ({}): one KV cache in one memory",
                pasts[0],
                first.label()
            ),
            actual: format!(
                "{} (the decoder is split between execution providers; run it on one provider)",
                other.label()
            ),
        });
    }
    Ok((!first.host).then(|| first.clone()))
}

/// Lets ONNX Runtime allocate `logits` in CPU memory for the coming run. This is the one output that
/// comes back to the host every step (the sampler needs it); the presents are bound to the cache
/// buffers themselves, in whatever memory those live.
fn bind_logits(binding: &mut IoBinding, name: &str) -> std::result::Result<(), ort::Error> {
    let cpu = MemoryInfo::new(
        AllocationDevice::CPU,
        0,
        AllocatorType::Device,
        MemoryType::CPUOutput,
    )?;
    binding.bind_output_to_device(name, &cpu)
}

/// The presents ONNX Runtime returns must be the cache buffers themselves. Addresses only (`data_ptr`,
/// which is valid for device memory too; reading the data would need a device-to-host copy): cheap
/// enough to run every step.
fn check_in_place(
    names: &Names,
    outputs: &ort::session::SessionOutputs<'_>,
    ptrs: &[usize],
    stage: &str,
) -> Result<()> {
    check_addresses(
        names,
        |name| {
            outputs.get(name).and_then(|val| {
                val.view()
                    .downcast::<DynTensorValueType>()
                    .ok()
                    .map(|t| t.data_ptr() as usize)
            })
        },
        ptrs,
        stage,
    )
}

/// `present(name)` is the data address of present output `name` (`None`: missing or not a tensor);
/// `ptrs` are the cache's buffer addresses in `KvCache::buffer_ptrs` order (key, value per layer).
fn check_addresses(
    names: &Names,
    present: impl Fn(&str) -> Option<usize>,
    ptrs: &[usize],
    stage: &str,
) -> Result<()> {
    for (i, (k, v)) in names
        .present_keys
        .iter()
        .zip(&names.present_values)
        .enumerate()
    {
        for (j, name) in [k, v].into_iter().enumerate() {
            let got = present(name);
            if got.is_none() || got != ptrs.get(2 * i + j).copied() {
                return Err(Error::Tensor {
                    stage: stage.to_string(),
                    tensor: name.clone(),
                    expected: "the present written in place into the shared KV buffer".into(),
                    actual: "a separately allocated present (the graph does not share past/present buffers; \
                             set past_present_share_buffer false for this decoder)"
                        .into(),
                });
            }
        }
    }
    Ok(())
}

fn check_present_len(value: &DynValue, total: usize, name: &str, stage: &str) -> Result<()> {
    let shape = match value.dtype() {
        ValueType::Tensor { shape, .. } => shape.to_vec(),
        _ => Vec::new(),
    };
    if shape.len() != 4 || shape[2] as usize != total {
        return Err(Error::Tensor {
            stage: stage.to_string(),
            tensor: name.to_string(),
            expected: format!("[1, kv_heads, {total}, head_dim]"),
            actual: format!("{shape:?}"),
        });
    }
    Ok(())
}

/// The last position's `V` logits of a `[1, S, V]` tensor, as f32 (float16 logits are widened, which
/// is exact, so argmax and sampling see the graph's values).
fn last_row(
    value: &DynValue,
    dtype: IoDtype,
    vocab: usize,
    name: &str,
    stage: &str,
) -> Result<Vec<f32>> {
    let type_error = |e: ort::Error| Error::Tensor {
        stage: stage.to_string(),
        tensor: name.to_string(),
        expected: dtype.name().into(),
        actual: e.to_string(),
    };
    let shape_error = |shape: &[i64]| Error::Tensor {
        stage: stage.to_string(),
        tensor: name.to_string(),
        expected: format!("[1, S, {vocab}]"),
        actual: format!("{shape:?}"),
    };
    let shape_ok =
        |shape: &[i64], len: usize| shape.len() == 3 && shape[2] as usize == vocab && len >= vocab;
    match dtype {
        IoDtype::Float32 => {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(type_error)?;
            if !shape_ok(shape, data.len()) {
                return Err(shape_error(shape));
            }
            Ok(data[data.len() - vocab..].to_vec())
        }
        IoDtype::Float16 => {
            let (shape, data) = value.try_extract_tensor::<f16>().map_err(type_error)?;
            if !shape_ok(shape, data.len()) {
                return Err(shape_error(shape));
            }
            Ok(data[data.len() - vocab..]
                .iter()
                .map(|v| v.to_f32())
                .collect())
        }
    }
}

/// The graph's declared element type of `name` must be the manifest's `io_dtype`.
fn check_element_type(
    session: &Session,
    side: Side,
    name: &str,
    dtype: IoDtype,
    model: &Path,
) -> Result<()> {
    let outlets = match side {
        Side::Input => session.inputs(),
        Side::Output => session.outputs(),
    };
    let want = match dtype {
        IoDtype::Float32 => TensorElementType::Float32,
        IoDtype::Float16 => TensorElementType::Float16,
    };
    let got = outlets.iter().find(|o| o.name() == name).map(|o| o.dtype());
    match got {
        Some(ValueType::Tensor { ty, .. }) if *ty == want => Ok(()),
        other => Err(Error::Bundle {
            path: model.to_path_buf(),
            field: "graphs.decoder.io_dtype".into(),
            message: format!(
                "manifest says \"{}\", but the graph's tensor `{name}` is {other:?}",
                dtype.name()
            ),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::Bundle;

    fn tiny() -> (Bundle, DecoderGraph) {
        let bundle = Bundle::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny"))
            .expect("models/tiny (scripts/setup exports it)");
        let m = bundle.manifest();
        let decoder = DecoderGraph::load(
            &bundle.path(&m.graphs.decoder.file),
            m,
            &SessionOptions::default(),
        )
        .unwrap();
        (bundle, decoder)
    }

    #[test]
    fn address_check_names_a_present_that_is_not_the_cache_buffer() {
        let names = Names {
            inputs_embeds: "inputs_embeds".into(),
            attention_mask: "attention_mask".into(),
            logits: "logits".into(),
            past_keys: per_layer("past.%d.key", 2),
            past_values: per_layer("past.%d.value", 2),
            present_keys: per_layer("present.%d.key", 2),
            present_values: per_layer("present.%d.value", 2),
        };
        let ptrs = [10, 11, 20, 21];
        let at = |moved: &'static str, to: Option<usize>| {
            move |name: &str| {
                if name == moved {
                    return to;
                }
                let layer: usize = name[8..9].parse().unwrap();
                Some(10 * (layer + 1) + usize::from(name.ends_with("value")))
            }
        };
        assert!(check_addresses(&names, at("", None), &ptrs, "t").is_ok());
        for (moved, to) in [("present.1.value", Some(99)), ("present.0.key", None)] {
            let err = check_addresses(&names, at(moved, to), &ptrs, "t")
                .unwrap_err()
                .to_string();
            assert!(err.contains(moved), "{err}");
            assert!(err.contains("in place"), "{err}");
        }
    }

    /// The mutation check with ONNX Runtime: a present output bound to another buffer than its past
    /// (the graph then copies the cache) fails the per-step in-place check, naming that present.
    #[test]
    fn a_present_bound_to_another_buffer_fails_the_in_place_check() {
        let (_bundle, mut decoder) = tiny();
        assert_eq!(decoder.kv_memory(), "cpu");
        let capacity = 8;
        let mut cache = decoder.new_cache(capacity).unwrap();
        assert_eq!(cache.memory(), "cpu");
        let hidden = decoder.hidden_size();
        let embeds = |n: usize| vec![0.01f32; n * hidden];
        // The honest binding passes (step runs check_in_place).
        let first = embeds(1);
        decoder.step(&mut cache, first, 1).unwrap();

        let ptrs = cache.buffer_ptrs();
        let KvStorage::Shared { layers, .. } = &mut cache.storage else {
            panic!("the tiny decoder shares past/present buffers");
        };
        let mut binding = bind_cache(&decoder.session, &decoder.names, layers).unwrap();
        let dims = [1, decoder.kv.kv_heads, capacity, decoder.kv.head_dim];
        let mut stranger = Tensor::<f32>::new(&Allocator::default(), dims)
            .unwrap()
            .upcast();
        let moved = decoder.names.present_keys[0].clone();
        binding.bind_output(&moved, &mut stranger).unwrap();
        let x = Tensor::from_array(([1usize, 1, hidden], embeds(1))).unwrap();
        let mask = Tensor::from_array(([1usize, 2], vec![1i64; 2])).unwrap();
        binding
            .bind_input(&decoder.names.inputs_embeds, &x)
            .unwrap();
        binding
            .bind_input(&decoder.names.attention_mask, &mask)
            .unwrap();
        bind_logits(&mut binding, &decoder.names.logits).unwrap();
        let outputs = decoder.session.run_binding(&binding).unwrap();
        let err = check_in_place(&decoder.names, &outputs, &ptrs, "test step")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&moved), "{err}");
        assert!(err.contains("separately allocated present"), "{err}");
    }
}
