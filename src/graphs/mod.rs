//! The three ONNX graphs of a bundle, one file each, plus the ONNX Runtime session set-up and the KV
//! cache. Tensor names always come from the manifest; dims in the manifest are checked against the
//! graphs' own declared shapes at load (symbolic dims are skipped, fixed ones must match).

pub mod connector;
pub mod decoder;
pub mod kv_cache;
pub mod providers;
pub mod session;
pub mod vision;

use ort::session::Session;
use ort::value::ValueType;

use crate::error::{Error, Result};

/// Which side of a graph a tensor is on.
#[derive(Clone, Copy)]
pub(crate) enum Side {
    Input,
    Output,
}

impl Side {
    fn word(self) -> &'static str {
        match self {
            Side::Input => "input",
            Side::Output => "output",
        }
    }
}

/// One expected dim: its value and the manifest field it comes from (`None` = not constrained).
pub(crate) type Dim<'a> = Option<(i64, &'a str)>;

/// Checks that `session` has a tensor `name` on `side` and that its fixed dims match `expected`.
/// `field` is the manifest field that gave the name (for the error message).
pub(crate) fn check_outlet(
    graph: &str,
    session: &Session,
    side: Side,
    name: &str,
    field: &str,
    expected: &[Dim],
) -> Result<()> {
    let outlets = match side {
        Side::Input => session.inputs(),
        Side::Output => session.outputs(),
    };
    let Some(outlet) = outlets.iter().find(|o| o.name() == name) else {
        return Err(Error::GraphName {
            graph: graph.to_string(),
            kind: side.word(),
            name: name.to_string(),
            field: field.to_string(),
            available: outlets
                .iter()
                .map(|o| o.name().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let ValueType::Tensor { shape, .. } = outlet.dtype() else {
        return Err(Error::Tensor {
            stage: graph.to_string(),
            tensor: name.to_string(),
            expected: "a tensor".into(),
            actual: format!("{:?}", outlet.dtype()),
        });
    };
    if shape.len() != expected.len() {
        return Err(Error::Tensor {
            stage: graph.to_string(),
            tensor: name.to_string(),
            expected: format!("rank {}", expected.len()),
            actual: format!("rank {} (shape {:?})", shape.len(), &shape[..]),
        });
    }
    for (dim, (actual, want)) in shape.iter().zip(expected).enumerate() {
        if let Some((value, from)) = want {
            // Symbolic/unknown dims come back as -1 (or 0 for some exporters): nothing to check.
            if *actual > 0 && actual != value {
                return Err(Error::GraphShape {
                    graph: graph.to_string(),
                    tensor: name.to_string(),
                    dim,
                    expected: *value,
                    actual: *actual,
                    field: from.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Converts a manifest dim (usize) to the i64 ONNX uses.
pub(crate) fn dim(v: usize, field: &str) -> Dim<'_> {
    Some((v as i64, field))
}

/// Copies a float tensor out of a run's outputs, checking its shape against `expected` (`None` in a
/// position accepts any extent).
pub(crate) fn extract_f32(
    stage: &str,
    tensor: &str,
    value: &ort::value::DynValue,
    expected: &[Option<usize>],
) -> Result<(Vec<usize>, Vec<f32>)> {
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| Error::Tensor {
            stage: stage.to_string(),
            tensor: tensor.to_string(),
            expected: "float32".into(),
            actual: e.to_string(),
        })?;
    let dims: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
    let ok = dims.len() == expected.len()
        && dims
            .iter()
            .zip(expected)
            .all(|(a, e)| e.is_none_or(|e| e == *a));
    if !ok {
        return Err(Error::Tensor {
            stage: stage.to_string(),
            tensor: tensor.to_string(),
            expected: format!("shape {expected:?}"),
            actual: format!("shape {dims:?}"),
        });
    }
    Ok((dims, data.to_vec()))
}
