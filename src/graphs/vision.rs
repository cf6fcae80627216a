//! `vision.onnx`: `pixel_values f32[1,3,S,S] -> image_features f32[1,N,F]` (ViT, parameter-free LN,
//! CLS dropped, 4-token concat). Names and dims from the manifest.

use std::path::Path;

use ort::session::Session;
use ort::value::TensorRef;

use super::session::{create_session, SessionOptions};
use super::{check_outlet, dim, extract_f32, Side};
use crate::bundle::Manifest;
use crate::error::{Error, Result};

const GRAPH: &str = "vision";
/// RGB.
const CHANNELS: usize = 3;

/// The vision encoder session.
pub struct VisionGraph {
    session: Session,
    input: String,
    output: String,
    image_size: usize,
    num_tokens: usize,
    feature_dim: usize,
}

impl VisionGraph {
    pub fn load(model: &Path, manifest: &Manifest, opts: &SessionOptions) -> Result<Self> {
        let spec = &manifest.graphs.vision;
        let m = &manifest.model;
        let session = create_session(GRAPH, model, opts)?;
        check_outlet(
            GRAPH,
            &session,
            Side::Input,
            &spec.inputs.pixel_values,
            "graphs.vision.inputs.pixel_values",
            &[
                None,
                Some((CHANNELS as i64, "RGB channels")),
                dim(m.image_size, "model.image_size"),
                dim(m.image_size, "model.image_size"),
            ],
        )?;
        check_outlet(
            GRAPH,
            &session,
            Side::Output,
            &spec.outputs.image_features,
            "graphs.vision.outputs.image_features",
            &[
                None,
                dim(m.num_image_tokens, "model.num_image_tokens"),
                dim(m.image_feature_dim, "model.image_feature_dim"),
            ],
        )?;
        Ok(VisionGraph {
            session,
            input: spec.inputs.pixel_values.clone(),
            output: spec.outputs.image_features.clone(),
            image_size: m.image_size,
            num_tokens: m.num_image_tokens,
            feature_dim: m.image_feature_dim,
        })
    }

    /// Runs the encoder on one CHW image (`3*S*S` floats); returns `N*F` floats (row-major `[N,F]`).
    pub fn run(&mut self, pixel_values: &[f32]) -> Result<Vec<f32>> {
        let s = self.image_size;
        let want = CHANNELS * s * s;
        if pixel_values.len() != want {
            return Err(Error::Tensor {
                stage: GRAPH.into(),
                tensor: self.input.clone(),
                expected: format!("{want} floats ([1,{CHANNELS},{s},{s}])"),
                actual: format!("{} floats", pixel_values.len()),
            });
        }
        let input = TensorRef::from_array_view(([1usize, CHANNELS, s, s], pixel_values))
            .map_err(|e| Error::ort(GRAPH, e))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => input])
            .map_err(|e| Error::ort(GRAPH, e))?;
        let value = outputs
            .get(&self.output)
            .ok_or_else(|| Error::ort(GRAPH, format!("no output `{}`", self.output)))?;
        let (_, data) = extract_f32(
            GRAPH,
            &self.output,
            value,
            &[Some(1), Some(self.num_tokens), Some(self.feature_dim)],
        )?;
        Ok(data)
    }
}
