//! Which provider each graph actually runs on.
//!
//! ONNX Runtime (1.24+) records, when `session.record_ep_graph_assignment_info` is set, which provider
//! every node was given (`Session_GetEpGraphAssignmentInfo`). We read that after each GPU session is
//! created: it is the only ground truth (a registered provider may still take none of the graph), and
//! it tells shape bookkeeping on the CPU apart from real compute falling back to it.
//!
//! The last placement of each graph name is kept in a process-wide table, so the CLI can report it
//! (`unimed info`, `--json`) without the engine having to carry it around.

use std::collections::BTreeMap;
use std::ffi::{c_char, CStr};
use std::sync::Mutex;

use ort::session::Session;
use ort::AsPointer;
use serde::Serialize;

use super::{c_status, GRAPHS};
use crate::graphs::session::ExecutionProvider;

/// Session configuration key that makes ONNX Runtime record node assignments.
pub(super) const RECORD_ASSIGNMENT_KEY: &str = "session.record_ep_graph_assignment_info";

/// Integer bookkeeping ops that ONNX Runtime itself moves to the CPU for the CUDA provider (its
/// "CPU-preferred nodes": shape computations whose inputs are already on the host). A node of another
/// type on the CPU is real compute falling back.
pub(super) const SHAPE_OPS: &[&str] = &[
    "Shape",
    "Size",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Slice",
    "Cast",
    "Reshape",
    "Range",
    "ConstantOfShape",
    "Equal",
    "Less",
    "Greater",
    "Where",
    "Expand",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "Max",
    "Min",
    "ReduceSum",
    "ReduceProd",
    "ReduceMax",
    "Not",
    "And",
    "Or",
    "Identity",
    "Tile",
    "Trilu",
];

/// Where one graph runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub graph: String,
    /// The provider asked for.
    pub requested: ExecutionProvider,
    /// The provider the graph was given to (differs from `requested` only after an allowed fallback).
    pub provider: ExecutionProvider,
    /// Nodes per ONNX Runtime provider name (`None`: not recorded, as for CPU-only sessions, where every
    /// node is on the CPU by construction).
    pub nodes: Option<BTreeMap<String, usize>>,
    /// Operator types (with counts) of the nodes left to the CPU in a GPU session.
    pub cpu_ops: BTreeMap<String, usize>,
    /// Why the graph is not (entirely) where it was asked to be, when fallback allowed that.
    pub fallback: Option<String>,
}

impl Placement {
    /// One line for people: `decoder: cuda (CUDAExecutionProvider 412 nodes, CPUExecutionProvider 9)`.
    pub fn summary(&self) -> String {
        let mut s = format!("{}: {}", self.graph, self.provider.name());
        if let Some(nodes) = &self.nodes {
            let list: Vec<String> = nodes.iter().map(|(ep, n)| format!("{ep} {n}")).collect();
            s.push_str(&format!(" (nodes: {})", list.join(", ")));
        }
        if let Some(why) = &self.fallback {
            s.push_str(&format!(
                " [fallback from {}: {why}]",
                self.requested.name()
            ));
        }
        s
    }

    /// Compute nodes (not shape bookkeeping) that ended up on the CPU.
    pub fn cpu_compute_ops(&self) -> BTreeMap<String, usize> {
        self.cpu_ops
            .iter()
            .filter(|(op, _)| !SHAPE_OPS.contains(&op.as_str()))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

static TABLE: Mutex<BTreeMap<String, Placement>> = Mutex::new(BTreeMap::new());

pub(super) fn record(p: Placement) {
    if let Ok(mut t) = TABLE.lock() {
        t.insert(p.graph.clone(), p);
    }
}

/// The last recorded placement of every graph, in data-flow order (other names after).
pub fn placements() -> Vec<Placement> {
    let Ok(t) = TABLE.lock() else {
        return Vec::new();
    };
    let mut out: Vec<Placement> = GRAPHS.iter().filter_map(|g| t.get(*g).cloned()).collect();
    out.extend(
        t.values()
            .filter(|p| !GRAPHS.contains(&p.graph.as_str()))
            .cloned(),
    );
    out
}

/// The last recorded placement of `graph`.
pub fn placement(graph: &str) -> Option<Placement> {
    TABLE.lock().ok()?.get(graph).cloned()
}

/// `(provider name, operator type)` of every node of `session`. Needs the session to have been created
/// with [`RECORD_ASSIGNMENT_KEY`] set.
pub(super) fn assignments(session: &Session) -> Result<Vec<(String, String)>, String> {
    let api = ort::api();
    let mut subgraphs: *const *const ort::sys::OrtEpAssignedSubgraph = std::ptr::null();
    let mut count = 0usize;
    let mut out = Vec::new();
    // SAFETY: the session is alive for the whole call; the subgraph and node arrays and their strings
    // are owned by the session (valid while it lives) and only read here; every status is checked and
    // released.
    unsafe {
        c_status((api.Session_GetEpGraphAssignmentInfo)(
            session.ptr(),
            &mut subgraphs,
            &mut count,
        ))?;
        for i in 0..count {
            let sg = *subgraphs.add(i);
            let mut name: *const c_char = std::ptr::null();
            c_status((api.EpAssignedSubgraph_GetEpName)(sg, &mut name))?;
            let ep = string(name);
            let mut nodes: *const *const ort::sys::OrtEpAssignedNode = std::ptr::null();
            let mut n = 0usize;
            c_status((api.EpAssignedSubgraph_GetNodes)(sg, &mut nodes, &mut n))?;
            for j in 0..n {
                let mut op: *const c_char = std::ptr::null();
                c_status((api.EpAssignedNode_GetOperatorType)(*nodes.add(j), &mut op))?;
                out.push((ep.clone(), string(op)));
            }
        }
    }
    Ok(out)
}

/// Counts nodes per provider, and the CPU's nodes per operator type.
pub(super) fn tally(
    assigned: &[(String, String)],
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut nodes = BTreeMap::new();
    let mut cpu_ops = BTreeMap::new();
    for (ep, op) in assigned {
        *nodes.entry(ep.clone()).or_insert(0) += 1;
        if ep == ExecutionProvider::Cpu.ort_name() {
            *cpu_ops.entry(op.clone()).or_insert(0) += 1;
        }
    }
    (nodes, cpu_ops)
}

unsafe fn string(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C API path, on the CPU provider (the only one this test machine has): every node of the
    /// tiny connector is reported, all of them on the CPU, including its MatMuls.
    #[test]
    fn assignments_are_read_from_onnx_runtime() {
        let model =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny/connector.onnx");
        let (env, _) = crate::graphs::session::environment(None).unwrap();
        let mut builder = Session::builder(&env)
            .unwrap()
            .with_config_entry(RECORD_ASSIGNMENT_KEY, "1")
            .unwrap();
        let session = builder.commit_from_file(&model).unwrap();
        let assigned = assignments(&session).unwrap();
        let (nodes, cpu_ops) = tally(&assigned);
        assert_eq!(
            nodes.keys().collect::<Vec<_>>(),
            vec!["CPUExecutionProvider"],
            "{nodes:?}"
        );
        assert!(nodes["CPUExecutionProvider"] > 5, "{nodes:?}");
        assert!(
            cpu_ops
                .keys()
                .any(|op| op.contains("MatMul") || op == "Gemm"),
            "{cpu_ops:?}"
        );
    }

    #[test]
    fn shape_nodes_on_the_cpu_are_not_compute() {
        let assigned: Vec<(String, String)> = [
            ("CUDAExecutionProvider", "MatMulNBits"),
            ("CUDAExecutionProvider", "GroupQueryAttention"),
            ("CPUExecutionProvider", "Shape"),
            ("CPUExecutionProvider", "Gather"),
            ("CPUExecutionProvider", "Gather"),
            ("CPUExecutionProvider", "MatMul"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let (nodes, cpu_ops) = tally(&assigned);
        assert_eq!(nodes["CUDAExecutionProvider"], 2);
        assert_eq!(nodes["CPUExecutionProvider"], 4);
        assert_eq!(cpu_ops["Gather"], 2);
        let p = Placement {
            graph: "decoder".into(),
            requested: ExecutionProvider::Cuda,
            provider: ExecutionProvider::Cuda,
            nodes: Some(nodes),
            cpu_ops,
            fallback: None,
        };
        let compute = p.cpu_compute_ops();
        assert_eq!(compute.len(), 1);
        assert_eq!(compute["MatMul"], 1);
        assert!(
            p.summary().contains("CUDAExecutionProvider 2"),
            "{}",
            p.summary()
        );
    }
}
