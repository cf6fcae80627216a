//! Serde mirror of `unimed.json`, field for field as docs/BUNDLE.md (format version 1) writes it.
//! Unknown fields are refused everywhere (`deny_unknown_fields`): a manifest from a newer exporter must
//! fail loudly rather than be half-understood. Meaning and validation of the fields live in `validate.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole manifest.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `"unimed-bundle"`.
    pub format: String,
    /// Integer version of this schema; the reader refuses versions it does not know.
    pub format_version: u32,
    /// Execution provider the graphs were exported for: `cpu`, `cuda` or `tensorrt` (see target.rs);
    /// absent in bundles exported before targets existed, which were all built for the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub model: ModelDims,
    pub tokens: TokenIds,
    pub preprocess: Preprocess,
    pub prompt: PromptSpec,
    /// Task name (what the user asks for, e.g. `vqa`) → how to prompt it.
    pub tasks: BTreeMap<String, TaskSpec>,
    /// Named label sets for the classification task (question + labels).
    pub label_sets: BTreeMap<String, LabelSet>,
    /// Question used for a user-given label list; `{labels}` is replaced by the joined labels.
    pub custom_label_question: String,
    pub generation: GenerationDefaults,
    pub graphs: Graphs,
    pub embed_tokens: EmbedTokensSpec,
    pub tokenizer: TokenizerSpec,
    /// Every file of the bundle except `unimed.json`: byte size and sha256.
    pub files: BTreeMap<String, FileEntry>,
    pub provenance: Provenance,
}

/// Model dimensions; cross-checked against the graphs' own shapes at load.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDims {
    /// Side of the square input image in pixels.
    pub image_size: usize,
    /// Image tokens spliced into the prompt (N of `image_embeds [1,N,H]`).
    pub num_image_tokens: usize,
    /// Width of one vision feature token (F of `image_features [1,N,F]`).
    pub image_feature_dim: usize,
    /// LLM hidden size (H).
    pub hidden_size: usize,
    pub vocab_size: usize,
    pub num_layers: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    /// Maximum total sequence length (prompt + generated) the decoder supports.
    pub context_length: usize,
    /// Connector experts (E of `routing_weights [1,N,E]`).
    pub num_experts: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenIds {
    pub bos: u32,
    pub eos: u32,
    pub unk: u32,
    pub pad: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    pub image_size: usize,
    /// Resampling filter; only `bicubic` (PIL's) is defined.
    pub resample: String,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    /// Ids put before everything (the reference's double BOS).
    pub bos_ids: Vec<u32>,
    /// Text segment before the image embeddings.
    pub image_before: String,
    /// Text segment after the image embeddings; contains `{instruction}`.
    pub image_after: String,
    /// The whole prompt of a text-only task; contains `{instruction}`.
    pub text_only: String,
    /// User text is truncated to this many words.
    pub max_words: usize,
    /// printf-style box text, four `%d`.
    pub box_format: String,
    /// Box coordinates are in units of 1/box_scale of the image size.
    pub box_scale: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Whether the task takes an image.
    pub image: bool,
    /// Connector task (an entry of `graphs.connector.tasks`), null for text-only tasks.
    pub connector_task: Option<String>,
    /// Instruction template with `{text}` and/or `{box}`.
    pub instruction: String,
    /// Used verbatim when the user gives no text.
    pub default_text: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSet {
    pub question: String,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationDefaults {
    pub max_new_tokens: usize,
    pub greedy: bool,
    /// EOS may be chosen on the first generated step (the reference's behaviour).
    pub eos_on_first_step: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Graphs {
    pub vision: VisionGraphSpec,
    pub connector: ConnectorGraphSpec,
    pub decoder: DecoderGraphSpec,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VisionGraphSpec {
    pub file: String,
    pub precision: String,
    pub inputs: VisionInputs,
    pub outputs: VisionOutputs,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VisionInputs {
    pub pixel_values: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VisionOutputs {
    pub image_features: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorGraphSpec {
    pub file: String,
    pub precision: String,
    /// `task_id` is the index of the connector task in this list.
    pub tasks: Vec<String>,
    pub inputs: ConnectorInputs,
    pub outputs: ConnectorOutputs,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorInputs {
    pub image_features: String,
    pub task_id: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorOutputs {
    pub image_embeds: String,
    pub routing_weights: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderGraphSpec {
    pub file: String,
    /// `fp32`, `fp16`, `int8`, `int4`: informational (the graph carries its own ops).
    pub precision: String,
    /// Element type of `inputs_embeds`, the KV cache and `logits`.
    pub io_dtype: String,
    pub inputs: DecoderInputs,
    pub outputs: DecoderOutputs,
    /// Only `batch_heads_seq_dim` (`[1, kv_heads, seq, head_dim]`) is defined.
    pub kv_layout: String,
    /// True: one buffer per layer bound as both past and present, updated in place by the graph.
    pub past_present_share_buffer: bool,
    /// `all` or `last`.
    pub logits_positions: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderInputs {
    pub inputs_embeds: String,
    pub attention_mask: String,
    /// Template over layers, `%d` = layer index.
    pub past_key: String,
    pub past_value: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderOutputs {
    pub logits: String,
    pub present_key: String,
    pub present_value: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedTokensSpec {
    pub file: String,
    pub dtype: String,
    /// `[vocab, hidden]`.
    pub shape: [usize; 2],
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerSpec {
    pub file: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub size: u64,
    pub sha256: String,
}

/// Where the bundle came from. The runtime reports it but never acts on it, so its nested source
/// and version entries stay free-form JSON.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    pub exporter_version: String,
    pub created: String,
    pub sources: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub synthetic: Option<serde_json::Value>,
    pub versions: BTreeMap<String, serde_json::Value>,
}
