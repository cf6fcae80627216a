//! One request end to end: input → vision → connector → prompt → decode loop → post-processing.
//!
//! `Engine::load` opens a bundle once (three ONNX Runtime sessions, the tokenizer, the memory-mapped
//! embedding table); `Engine::run` serves any number of requests. Vision features depend only on the
//! image, so they are cached by a hash of the decoded pixels (a small LRU): several questions about one
//! study run the vision graph once. The connector depends on the task and always runs.
//!
//! Threads: `Engine` is `Send` (move it to a worker thread) but `run` takes `&mut self`, because ONNX
//! Runtime sessions must not run concurrently (ort's `Session::run` is `&mut self`) and the KV cache is
//! reused between requests. To serve requests in parallel, load one engine per thread, or put one
//! behind a `Mutex`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::bundle::{check_integrity, Bundle, Integrity, IntegrityReport};
use crate::dump::write_npy;
use crate::error::{Error, Result};
use crate::generate::decode_loop::{generate, DecodeLimits, StopReason};
use crate::generate::sampler::Sampler;
use crate::graphs::connector::ConnectorGraph;
use crate::graphs::decoder::DecoderGraph;
use crate::graphs::kv_cache::KvCache;
use crate::graphs::session::SessionOptions;
use crate::graphs::vision::VisionGraph;
use crate::input::{self, InputOptions, LoadedImage};
use crate::postprocess;
use crate::request::{ImageSource, Request, Task};
use crate::text::embed::EmbedTable;
use crate::text::prompt::{self, Prompt, PromptInput, Truncation};
use crate::text::tokenizer::{StreamDecoder, TextTokenizer};
use crate::timings::Timings;

/// Images whose vision features are kept by default.
const DEFAULT_VISION_CACHE: usize = 8;

/// Options of an engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub session: SessionOptions,
    /// Image / DICOM decoding options.
    pub input: InputOptions,
    /// Number of images whose vision features are cached (0 disables the cache).
    pub vision_cache_size: usize,
    /// When `load` hashes the bundle's files against the manifest (bundle/integrity.rs).
    pub integrity: Integrity,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            session: SessionOptions::default(),
            input: InputOptions::default(),
            vision_cache_size: DEFAULT_VISION_CACHE,
            integrity: Integrity::default(),
        }
    }
}

/// The result of one request.
#[derive(Debug, Clone)]
pub struct Output {
    pub task: Task,
    /// The cleaned answer (the reference's `clean_output`).
    pub text: String,
    /// The decoded generated ids, uncleaned.
    pub raw_text: String,
    /// Generated ids, without the EOS that stopped generation.
    pub tokens: Vec<u32>,
    pub stop_reason: StopReason,
    /// REC: the answer's box in original-image pixels (`None` when it does not parse).
    pub bbox: Option<[f64; 4]>,
    /// Classification: the matched label.
    pub label: Option<String>,
    /// The instruction inserted into the prompt.
    pub instruction: String,
    /// Prompt ids around the image.
    pub prompt: Prompt,
    /// Original image size `(width, height)` for image tasks.
    pub image_size: Option<(u32, u32)>,
    /// The request's text was longer than the prompt rule allows and was cut (`instruction` shows what
    /// the model was asked).
    pub truncated: Option<Truncation>,
    pub timings: Timings,
}

/// Extra per-request behaviour that is not part of the question itself.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Write the intermediate tensors (`.npy`) of this request into this directory.
    pub dump_tensors: Option<PathBuf>,
}

/// A loaded bundle, ready to run requests. See the module docs for threading.
pub struct Engine {
    // Declared (so dropped) before `decoder`: on a GPU the cache lives in the decoder session's device
    // arena, and freeing it before the session goes keeps that order obvious.
    cache: Option<KvCache>,
    bundle: Bundle,
    vision: VisionGraph,
    connector: ConnectorGraph,
    decoder: DecoderGraph,
    tokenizer: TextTokenizer,
    embed: EmbedTable,
    vision_cache: VecDeque<([u8; 32], Arc<Vec<f32>>)>,
    options: EngineOptions,
    load_time: Duration,
    integrity: IntegrityReport,
}

/// Vision features and what produced them.
struct ImageStage {
    size: (u32, u32),
    pixel_values: Option<Vec<f32>>,
    features: Arc<Vec<f32>>,
}

impl Engine {
    /// Loads and validates a bundle, creates the sessions and checks the graphs against the manifest.
    pub fn load(bundle_dir: impl AsRef<Path>, options: &EngineOptions) -> Result<Self> {
        let start = Instant::now();
        let bundle = Bundle::load(bundle_dir)?;
        // The export target against the requested providers, before anything is hashed or built; and
        // what the providers take from the bundle (cache keys, TensorRT profiles).
        let session = crate::graphs::providers::for_bundle(&bundle, &options.session)?;
        // Before any graph or table is opened: nothing of the bundle is used unverified.
        let integrity = check_integrity(&bundle, options.integrity)?;
        let m = bundle.manifest();
        let g = &m.graphs;
        let vision = VisionGraph::load(&bundle.path(&g.vision.file), m, &session)?;
        let connector = ConnectorGraph::load(&bundle.path(&g.connector.file), m, &session)?;
        let decoder = DecoderGraph::load(&bundle.path(&g.decoder.file), m, &session)?;
        let tokenizer = TextTokenizer::open(&bundle.path(&m.tokenizer.file))?;
        let embed = EmbedTable::open(
            &bundle.path(&m.embed_tokens.file),
            m.embed_tokens.shape[0],
            m.embed_tokens.shape[1],
        )?;
        if tokenizer.vocab_size() > m.model.vocab_size {
            return Err(Error::Bundle {
                path: bundle.path(&m.tokenizer.file),
                field: "model.vocab_size".into(),
                message: format!(
                    "the tokenizer has {} tokens, more than vocab_size {}",
                    tokenizer.vocab_size(),
                    m.model.vocab_size
                ),
            });
        }
        Ok(Engine {
            bundle,
            vision,
            connector,
            decoder,
            tokenizer,
            embed,
            cache: None,
            vision_cache: VecDeque::new(),
            options: options.clone(),
            load_time: start.elapsed(),
            integrity,
        })
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The KV cache kept between requests (tests inspect its buffers).
    pub fn kv_cache(&self) -> Option<&KvCache> {
        self.cache.as_ref()
    }

    /// What the load-time integrity check hashed, and what it cost.
    pub fn integrity(&self) -> &IntegrityReport {
        &self.integrity
    }

    /// Time `load` took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Runs one request; `on_token` receives the answer's text as it is decoded (valid UTF-8 pieces).
    pub fn run(&mut self, request: &Request, on_token: impl FnMut(&str)) -> Result<Output> {
        self.run_with(request, &RunOptions::default(), on_token)
    }

    /// `run` with per-request options (tensor dumps).
    pub fn run_with(
        &mut self,
        request: &Request,
        opts: &RunOptions,
        mut on_token: impl FnMut(&str),
    ) -> Result<Output> {
        let start = Instant::now();
        let mut timings = Timings {
            load: self.load_time,
            ..Default::default()
        };
        let task = request.task;
        // Before any graph runs: a nonsensical sampling setting is the caller's error, not a NaN later.
        request
            .generation
            .sampling
            .validate()
            .map_err(Error::Request)?;
        let spec = self
            .bundle
            .manifest()
            .tasks
            .get(task.name())
            .cloned()
            .ok_or_else(|| Error::Request(format!("the bundle has no task \"{task}\"")))?;

        // Image stages.
        let mut image_embeds = None;
        let mut image_stage = None;
        match (&spec.connector_task, spec.image, &request.image) {
            (Some(connector_task), true, Some(source)) => {
                let stage =
                    self.image_features(source, opts.dump_tensors.is_some(), &mut timings)?;
                let t = Instant::now();
                let out = self.connector.run(&stage.features, connector_task)?;
                timings.connector = Some(t.elapsed());
                if let Some(dir) = &opts.dump_tensors {
                    self.dump_image(dir, &stage, &out.image_embeds, &out.routing_weights)?;
                }
                image_embeds = Some(out.image_embeds);
                image_stage = Some(stage);
            }
            (_, true, None) => {
                return Err(Error::Request(format!("task \"{task}\" needs an image")))
            }
            (_, false, Some(_)) => {
                return Err(Error::Request(format!(
                    "task \"{task}\" is text-only; it takes no image"
                )))
            }
            _ => {}
        }
        let image_size = image_stage.as_ref().map(|s| s.size);

        // Prompt and its embeddings.
        let t = Instant::now();
        let manifest = self.bundle.manifest();
        let input = PromptInput {
            task,
            text: request.text.as_deref(),
            bbox: match (request.bbox, image_size) {
                (Some(b), Some(size)) => Some((b, size)),
                (Some(_), None) if task == Task::Reg => {
                    return Err(Error::Request("a box needs the image it refers to".into()))
                }
                (Some(b), None) => Some((b, (0, 0))),
                (None, _) => None,
            },
            labels: request.labels.as_ref(),
        };
        let prompt = prompt::build(manifest, &self.tokenizer, &input)?;
        let truncated = request
            .text
            .as_deref()
            .and_then(|t| prompt::truncation(t, manifest.prompt.max_words));
        let num_image_tokens = manifest.model.num_image_tokens;
        let prompt_len = prompt.len(num_image_tokens);
        let mut embeds = Vec::with_capacity(prompt_len * self.embed.hidden());
        self.embed.append_rows(&prompt.before, &mut embeds)?;
        if let Some(img) = &image_embeds {
            embeds.extend_from_slice(img);
        }
        self.embed.append_rows(&prompt.after, &mut embeds)?;
        timings.prompt = t.elapsed();

        // Decode.
        let max_new_tokens = request
            .generation
            .max_new_tokens
            .unwrap_or(manifest.generation.max_new_tokens);
        if max_new_tokens == 0 {
            return Err(Error::Request("max_new_tokens must be at least 1".into()));
        }
        let limits = DecodeLimits {
            max_new_tokens,
            eos: manifest.tokens.eos,
            eos_on_first_step: manifest.generation.eos_on_first_step,
        };
        // Saturating: a huge max_new_tokens means "until the context is full", not an overflow.
        let needed = prompt_len.saturating_add(max_new_tokens);
        let mut cache = match self.cache.take() {
            Some(c) if self.decoder.cache_fits(&c, needed) => c,
            _ => self.decoder.new_cache(needed)?,
        };
        cache.reset()?;
        let mut sampler = Sampler::new(request.generation.sampling.clone());
        let mut stream = StreamDecoder::new();
        let mut detok = Duration::ZERO;
        let tokenizer = &self.tokenizer;
        let mut callback = |id: u32| -> Result<()> {
            let t = Instant::now();
            let piece = stream.push(tokenizer, id)?;
            detok += t.elapsed();
            if let Some(p) = piece {
                on_token(&p);
            }
            Ok(())
        };
        let result = generate(
            &mut self.decoder,
            &mut cache,
            &self.embed,
            embeds,
            prompt_len,
            &mut sampler,
            &limits,
            &mut callback,
        );
        self.cache = Some(cache);
        let generated = result?;
        let t = Instant::now();
        let (raw_text, rest) = stream.finish(tokenizer)?;
        detok += t.elapsed();
        if let Some(r) = rest {
            on_token(&r);
        }
        timings.prefill = generated.prefill;
        timings.decode_steps = generated.steps.clone();
        timings.detokenize = detok;
        if let Some(dir) = &opts.dump_tensors {
            write_npy(
                dir,
                "logits_first",
                &[generated.first_logits.len()],
                &generated.first_logits,
            )?;
        }

        // Post-processing.
        let text = postprocess::clean_answer(&raw_text);
        let box_scale = manifest.prompt.box_scale;
        let bbox = match (task, image_size) {
            (Task::Rec, Some(size)) => postprocess::parse_box(&text, size, box_scale),
            _ => None,
        };
        let label = if task == Task::Cls {
            prompt::label_candidates(manifest, request.text.as_deref(), request.labels.as_ref())?
                .and_then(|labels| postprocess::match_label(&text, &labels))
        } else {
            None
        };
        timings.total = start.elapsed();
        Ok(Output {
            task,
            text,
            raw_text,
            tokens: generated.ids,
            stop_reason: generated.stop_reason,
            bbox,
            label,
            instruction: prompt.instruction.clone(),
            prompt,
            image_size,
            truncated,
            timings,
        })
    }

    /// Decodes the image and returns its vision features, from the cache when possible. With
    /// `need_pixels` (tensor dumps) the cache is bypassed so every stage runs and can be written out.
    fn image_features(
        &mut self,
        source: &ImageSource,
        need_pixels: bool,
        timings: &mut Timings,
    ) -> Result<ImageStage> {
        let t = Instant::now();
        let loaded;
        let image: &LoadedImage = match source {
            ImageSource::Path(p) => {
                loaded = input::load_image(p, &self.options.input)?;
                timings.input_decode = Some(t.elapsed());
                &loaded
            }
            ImageSource::Loaded(img) => img,
        };
        let size = image.rgb.dimensions();
        let key = pixel_hash(image);
        if !need_pixels {
            if let Some(pos) = self.vision_cache.iter().position(|(k, _)| *k == key) {
                if let Some(entry) = self.vision_cache.remove(pos) {
                    let features = Arc::clone(&entry.1);
                    self.vision_cache.push_front(entry);
                    timings.vision_cached = true;
                    return Ok(ImageStage {
                        size,
                        pixel_values: None,
                        features,
                    });
                }
            }
        }
        let p = &self.bundle.manifest().preprocess;
        let t = Instant::now();
        let image_size = u32::try_from(p.image_size).map_err(|_| {
            Error::Request(format!(
                "preprocess.image_size {} is too large",
                p.image_size
            ))
        })?;
        let pixel_values = input::preprocess::pixel_values(&image.rgb, image_size, p.mean, p.std);
        timings.preprocess = Some(t.elapsed());
        let t = Instant::now();
        let features = Arc::new(self.vision.run(&pixel_values)?);
        timings.vision = Some(t.elapsed());
        if self.options.vision_cache_size > 0 {
            self.vision_cache.push_front((key, Arc::clone(&features)));
            self.vision_cache.truncate(self.options.vision_cache_size);
        }
        Ok(ImageStage {
            size,
            pixel_values: need_pixels.then_some(pixel_values),
            features,
        })
    }

    fn dump_image(
        &self,
        dir: &Path,
        stage: &ImageStage,
        embeds: &[f32],
        routing: &[f32],
    ) -> Result<()> {
        let m = &self.bundle.manifest().model;
        let n = m.num_image_tokens;
        if let Some(pv) = &stage.pixel_values {
            write_npy(dir, "pixel_values", &[1, 3, m.image_size, m.image_size], pv)?;
        }
        write_npy(
            dir,
            "image_features",
            &[1, n, m.image_feature_dim],
            &stage.features,
        )?;
        write_npy(dir, "image_embeds", &[1, n, m.hidden_size], embeds)?;
        write_npy(dir, "routing_weights", &[1, n, m.num_experts], routing)
    }
}

/// Content hash of the decoded image (size + RGB bytes): the same picture from another file or
/// another path hits the same cache entry.
fn pixel_hash(image: &LoadedImage) -> [u8; 32] {
    let (w, h) = image.rgb.dimensions();
    let mut hasher = Sha256::new();
    hasher.update(w.to_le_bytes());
    hasher.update(h.to_le_bytes());
    hasher.update(image.rgb.as_raw());
    hasher.finalize().into()
}
