//! What a caller asks for: the task, the image, the text, a box or labels, and generation settings.

use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::generate::sampler::SamplingParams;
use crate::input::LoadedImage;

/// The tasks of the model. Each name is a key of the manifest's `tasks` table, which says how to
/// prompt it; the enum exists because post-processing differs per task (REC answers are boxes,
/// classification answers are labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Text-only medical question answering.
    Qa,
    /// Visual question answering.
    Vqa,
    /// Report generation (the reference's `caption`).
    Report,
    /// Referring expression comprehension: object name → box.
    Rec,
    /// Referring expression generation: box → object name.
    Reg,
    /// Classification into a label set.
    Cls,
}

impl Task {
    pub const ALL: [Task; 6] = [
        Task::Qa,
        Task::Vqa,
        Task::Report,
        Task::Rec,
        Task::Reg,
        Task::Cls,
    ];

    /// The manifest key of the task.
    pub fn name(self) -> &'static str {
        match self {
            Task::Qa => "qa",
            Task::Vqa => "vqa",
            Task::Report => "report",
            Task::Rec => "rec",
            Task::Reg => "reg",
            Task::Cls => "cls",
        }
    }
}

impl FromStr for Task {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                Error::Request(format!(
                    "unknown task \"{s}\" (expected one of {})",
                    Task::ALL.map(Task::name).join(", ")
                ))
            })
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// A PNG/JPEG/TIFF/BMP or DICOM file.
    Path(PathBuf),
    /// An image the caller already decoded.
    Loaded(LoadedImage),
}

/// Labels for classification.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    /// A label set of the manifest (e.g. `dermamnist`): its question and labels.
    Set(String),
    /// A custom list, asked with the manifest's `custom_label_question`.
    Custom(Vec<String>),
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    pub task: Task,
    pub image: Option<ImageSource>,
    /// User text (question, object name, ...). `None`: the task's default text.
    pub text: Option<String>,
    /// Pixel box `[x1, y1, x2, y2]` in the original image (REG input).
    pub bbox: Option<[f64; 4]>,
    pub labels: Option<Labels>,
    pub generation: GenerationParams,
}

impl Request {
    /// A request with default generation settings.
    pub fn new(task: Task) -> Self {
        Request {
            task,
            image: None,
            text: None,
            bbox: None,
            labels: None,
            generation: GenerationParams::default(),
        }
    }

    pub fn with_image_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.image = Some(ImageSource::Path(path.into()));
        self
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    pub fn with_box(mut self, bbox: [f64; 4]) -> Self {
        self.bbox = Some(bbox);
        self
    }

    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.labels = Some(labels);
        self
    }
}

/// Generation settings of one request; `None` fields take the manifest's defaults.
#[derive(Debug, Clone, Default)]
pub struct GenerationParams {
    pub max_new_tokens: Option<usize>,
    /// Sampling; the default is greedy (the reference's evaluation setting).
    pub sampling: SamplingParams,
}
