"""connector.onnx: image_features f32[1,N,F], task_id i64[1] -> image_embeds f32[1,N,H], routing_weights f32[1,N,E].

The router's task half is folded (spec §3): fc1([t ‖ x]) = W[:, :F] t + W[:, F:] x + b, so the graph keeps
a [num_tasks, router_hidden] table of c_task = W[:, :F] t + b (from model.connector.Connector, the
reference's own method) and picks a row with a Gather on task_id. That halves the router's fc1 weight and
FLOPs and is exact up to rounding. task_id indexes the manifest's graphs.connector.tasks.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..model.connector import Connector, normalise_routing
from .external_data import relayout

OPSET = 17
INPUT_NAMES = ("image_features", "task_id")
OUTPUT_NAMES = ("image_embeds", "routing_weights")


class FoldedConnector(nn.Module):
    """The exported form of model.connector.Connector: folded task bias, experts and fc2 shared with it."""

    def __init__(self, connector):
        super().__init__()
        with torch.no_grad():
            self.task_bias = nn.Parameter(connector.folded_bias_table().detach().clone())  # [T, R]
            self.router_fc1_x = nn.Parameter(connector.image_half_weight().detach().contiguous().clone())  # [R, F]
        # Only the experts and fc2 are shared; the full fc1 (task half included) is not kept, so the caller
        # can drop the reference Connector and free it before the export runs.
        self.router_fc2 = connector.router_fc2
        self.experts = connector.experts
        self.feature_dim = connector.feature_dim

    def forward(self, image_features: torch.Tensor, task_id: torch.Tensor):
        bias = torch.index_select(self.task_bias, 0, task_id)  # [1, R]: the Gather on task_id
        hidden = F.gelu(F.linear(image_features, self.router_fc1_x) + bias[:, None, :])
        weights = normalise_routing(self.router_fc2(hidden))
        # The reference's own mixing code, run on this module's experts.
        return Connector.mix_experts(self, image_features, weights), weights


def export_connector(folded: FoldedConnector, num_tokens: int, staging: Path, bundle_dir: Path,
                     file_name: str = "connector.onnx") -> list[str]:
    """Trace the folded connector (fp32) into bundle_dir/file_name; return the files written."""
    staging.mkdir(parents=True, exist_ok=True)
    example = (torch.zeros(1, num_tokens, folded.feature_dim, dtype=torch.float32),
               torch.zeros(1, dtype=torch.int64))
    raw = staging / "connector.raw.onnx"
    # The TorchScript exporter is chosen on purpose (see vision_graph); silence its deprecation note.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(folded.eval(), example, str(raw), input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), opset_version=OPSET, do_constant_folding=True,
                          dynamo=False)
    return relayout(raw, bundle_dir / file_name)
