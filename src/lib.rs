//! unimed-edge: offline Uni-Med inference on ONNX Runtime.
//!
//! A model bundle (docs/BUNDLE.md) holds three ONNX graphs (vision encoder, connector-MoE, LLaMA
//! decoder), the token embedding table and the tokenizer. [`Engine::load`] opens one; [`Engine::run`]
//! answers a [`Request`] with an [`Output`], streaming text as it is generated.
//!
//! ```no_run
//! use unimed_edge::{Engine, EngineOptions, Request, Task};
//! let mut engine = Engine::load("models/tiny", &EngineOptions::default())?;
//! let request = Request::new(Task::Vqa).with_image_path("scan.png").with_text("Is the lung healthy?");
//! let out = engine.run(&request, |piece| print!("{piece}"))?;
//! println!("\n{:?} after {} tokens", out.stop_reason, out.tokens.len());
//! # Ok::<(), unimed_edge::Error>(())
//! ```

// Tests may unwrap: a panic there is a test failure with a message, which is what we want.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod bundle;
pub mod dump;
pub mod engine;
pub mod error;
pub mod generate;
pub mod graphs;
pub mod input;
pub mod output;
pub mod postprocess;
pub mod request;
pub mod text;
pub mod timings;
pub mod warmup;

pub use bundle::{verify, Bundle, Integrity, IntegrityReport, VerifyReport};
pub use engine::{Engine, EngineOptions, Output, RunOptions};
pub use error::{Error, Result};
pub use generate::decode_loop::StopReason;
pub use generate::sampler::{Sampling, SamplingParams};
pub use graphs::session::{ExecutionProvider, OptLevel, SessionOptions};
pub use input::{load_image, InputError, InputOptions, LoadedImage};
pub use request::{GenerationParams, ImageSource, Labels, Request, Task};
pub use timings::Timings;
