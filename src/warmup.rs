//! A warm-up request at load, for services that answer their first real study at steady speed.
//!
//! A fresh process pays once for what no cache can keep: ONNX Runtime's first run of each graph
//! allocates its arenas, the CUDA provider loads kernels and (with an exhaustive cuDNN search) times the
//! patch-embedding convolution; docs/JETSON.md "GPU check" measures that first request against the steady
//! one. `Engine::warm_up` runs one image request through all three graphs (vision, connector, decoder
//! prefill and decode steps) on a synthetic mid-grey picture, so that cost is paid before the service
//! takes requests. Its answer is discarded; the vision-feature cache keeps one entry for the grey image.

use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::error::Result;
use crate::input::{LoadedImage, RasterFormat, SourceKind};
use crate::request::{ImageSource, Request, Task};

/// Decode steps of the warm-up: the first step after a prefill is the one that differs (a new input
/// shape for the KV-cache-bound decoder), more add nothing.
const WARM_UP_NEW_TOKENS: usize = 2;
/// Side of the synthetic image: any size is resized to the bundle's input size, so one that needs
/// resizing exercises the same preprocessing a real image does.
const WARM_UP_IMAGE_SIDE: u32 = 256;
/// Mid-grey: a neutral picture, nothing that could resemble a finding.
const WARM_UP_GREY: u8 = 128;

impl Engine {
    /// Runs one image request end to end and discards its answer; returns how long it took.
    pub fn warm_up(&mut self) -> Result<Duration> {
        let start = Instant::now();
        let image = LoadedImage {
            rgb: ::image::RgbImage::from_pixel(
                WARM_UP_IMAGE_SIDE,
                WARM_UP_IMAGE_SIDE,
                ::image::Rgb([WARM_UP_GREY; 3]),
            ),
            kind: SourceKind::Raster(RasterFormat::Png),
        };
        let mut request = Request::new(Task::Vqa).with_text("warm-up");
        request.image = Some(ImageSource::Loaded(image));
        request.generation.max_new_tokens = Some(WARM_UP_NEW_TOKENS);
        self.run(&request, |_| {})?;
        Ok(start.elapsed())
    }
}
