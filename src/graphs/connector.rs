//! `connector.onnx`: `image_features f32[1,N,F], task_id i64[1] -> image_embeds f32[1,N,H],
//! routing_weights f32[1,N,E]`. `task_id` is the index of the connector task in the manifest's
//! `graphs.connector.tasks` (the router's task half is folded into a per-task bias in the graph).

use std::path::Path;

use ort::session::Session;
use ort::value::TensorRef;

use super::session::{create_session, SessionOptions};
use super::{check_outlet, dim, extract_f32, Side};
use crate::bundle::Manifest;
use crate::error::{Error, Result};

const GRAPH: &str = "connector";

/// What the connector returns for one image.
#[derive(Debug, Clone)]
pub struct ConnectorOutput {
    /// Row-major `[N, H]`.
    pub image_embeds: Vec<f32>,
    /// Row-major `[N, E]`.
    pub routing_weights: Vec<f32>,
}

/// The connector-MoE session.
pub struct ConnectorGraph {
    session: Session,
    in_features: String,
    in_task: String,
    out_embeds: String,
    out_routing: String,
    tasks: Vec<String>,
    num_tokens: usize,
    feature_dim: usize,
    hidden: usize,
    experts: usize,
}

impl ConnectorGraph {
    pub fn load(model: &Path, manifest: &Manifest, opts: &SessionOptions) -> Result<Self> {
        let spec = &manifest.graphs.connector;
        let m = &manifest.model;
        let session = create_session(GRAPH, model, opts)?;
        let n = dim(m.num_image_tokens, "model.num_image_tokens");
        check_outlet(
            GRAPH,
            &session,
            Side::Input,
            &spec.inputs.image_features,
            "graphs.connector.inputs.image_features",
            &[None, n, dim(m.image_feature_dim, "model.image_feature_dim")],
        )?;
        check_outlet(
            GRAPH,
            &session,
            Side::Input,
            &spec.inputs.task_id,
            "graphs.connector.inputs.task_id",
            &[None],
        )?;
        check_outlet(
            GRAPH,
            &session,
            Side::Output,
            &spec.outputs.image_embeds,
            "graphs.connector.outputs.image_embeds",
            &[None, n, dim(m.hidden_size, "model.hidden_size")],
        )?;
        check_outlet(
            GRAPH,
            &session,
            Side::Output,
            &spec.outputs.routing_weights,
            "graphs.connector.outputs.routing_weights",
            &[None, n, dim(m.num_experts, "model.num_experts")],
        )?;
        Ok(ConnectorGraph {
            session,
            in_features: spec.inputs.image_features.clone(),
            in_task: spec.inputs.task_id.clone(),
            out_embeds: spec.outputs.image_embeds.clone(),
            out_routing: spec.outputs.routing_weights.clone(),
            tasks: spec.tasks.clone(),
            num_tokens: m.num_image_tokens,
            feature_dim: m.image_feature_dim,
            hidden: m.hidden_size,
            experts: m.num_experts,
        })
    }

    /// Index of a connector task (e.g. `"vqa"`) in the graph's task table.
    pub fn task_id(&self, connector_task: &str) -> Result<i64> {
        self.tasks
            .iter()
            .position(|t| t == connector_task)
            .map(|i| i as i64)
            .ok_or_else(|| {
                Error::Request(format!(
                    "connector task \"{connector_task}\" is not in graphs.connector.tasks {:?}",
                    self.tasks
                ))
            })
    }

    /// Runs the connector on `[N,F]` features for one connector task.
    pub fn run(&mut self, image_features: &[f32], connector_task: &str) -> Result<ConnectorOutput> {
        let want = self.num_tokens * self.feature_dim;
        if image_features.len() != want {
            return Err(Error::Tensor {
                stage: GRAPH.into(),
                tensor: self.in_features.clone(),
                expected: format!(
                    "{want} floats ([1,{},{}])",
                    self.num_tokens, self.feature_dim
                ),
                actual: format!("{} floats", image_features.len()),
            });
        }
        let task_id = [self.task_id(connector_task)?];
        let features = TensorRef::from_array_view((
            [1usize, self.num_tokens, self.feature_dim],
            image_features,
        ))
        .map_err(|e| Error::ort(GRAPH, e))?;
        let task = TensorRef::from_array_view(([1usize], &task_id[..]))
            .map_err(|e| Error::ort(GRAPH, e))?;
        let outputs = self
            .session
            .run(ort::inputs![self.in_features.as_str() => features, self.in_task.as_str() => task])
            .map_err(|e| Error::ort(GRAPH, e))?;
        let get = |name: &str| {
            outputs
                .get(name)
                .ok_or_else(|| Error::ort(GRAPH, format!("no output `{name}`")))
        };
        let (_, image_embeds) = extract_f32(
            GRAPH,
            &self.out_embeds,
            get(&self.out_embeds)?,
            &[Some(1), Some(self.num_tokens), Some(self.hidden)],
        )?;
        let (_, routing_weights) = extract_f32(
            GRAPH,
            &self.out_routing,
            get(&self.out_routing)?,
            &[Some(1), Some(self.num_tokens), Some(self.experts)],
        )?;
        Ok(ConnectorOutput {
            image_embeds,
            routing_weights,
        })
    }
}
