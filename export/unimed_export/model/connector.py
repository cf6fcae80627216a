"""The connector mixture of experts, CMoE (spec §3): image_features, task -> image_embeds, routing_weights.

- Router input is [task token ‖ image token] (task token FIRST), Mlp: fc1 -> exact GELU -> fc2.
- Routing weights are sigmoid(logits) normalised by their sum over experts (NOT softmax), per token.
- All experts run densely: y = Σ_e w_e · L2_e(GELU(L1_e(x))).
- Folded form for export: fc1([t ‖ x]) = W[:, :F] t + W[:, F:] x + b, so the task half becomes a per-task
  bias c_task = W[:, :F] t + b and the router only needs W[:, F:] (exact algebra, equal up to rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def normalise_routing(logits: torch.Tensor) -> torch.Tensor:
    """sigmoid, then divide by the sum over the expert axis (Uni-Med's soft router)."""
    w = torch.sigmoid(logits)
    return w / w.sum(dim=-1, keepdim=True)


class Expert(nn.Module):
    def __init__(self, feature_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(feature_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Connector(nn.Module):
    """forward(image_features [B,N,F], task_id: int) -> (image_embeds [B,N,H], routing_weights [B,N,E])."""

    def __init__(self, task_names: list, feature_dim: int, expert_hidden: int, out_dim: int, num_experts: int,
                 router_hidden: int):
        super().__init__()
        self.task_names = list(task_names)
        self.feature_dim = feature_dim
        self.task_tokens = nn.Parameter(torch.zeros(len(task_names), feature_dim))  # [T, F]
        self.experts = nn.ModuleList(Expert(feature_dim, expert_hidden, out_dim) for _ in range(num_experts))
        self.router_fc1 = nn.Linear(2 * feature_dim, router_hidden)
        self.router_fc2 = nn.Linear(router_hidden, num_experts)

    def task_index(self, task: str | int) -> int:
        if isinstance(task, int):
            if not 0 <= task < len(self.task_names):
                raise ValueError(f"connector task id {task} out of range 0..{len(self.task_names) - 1}")
            return task
        if task not in self.task_names:
            raise ValueError(f"connector task {task!r} not among the checkpoint's task tokens {self.task_names}")
        return self.task_names.index(task)

    # -- router, concat form (what Uni-Med computes) --
    def router_logits(self, x: torch.Tensor, task: str | int) -> torch.Tensor:
        t = self.task_tokens[self.task_index(task)]
        tt = t.expand(*x.shape[:-1], -1)
        mix = torch.cat((tt, x), dim=-1)  # task token first
        return self.router_fc2(F.gelu(self.router_fc1(mix)))

    # -- router, folded form (what the ONNX connector computes) --
    def folded_task_bias(self, task: str | int) -> torch.Tensor:
        """c_task = W1[:, :F] @ t + b1, shape [router_hidden]."""
        t = self.task_tokens[self.task_index(task)]
        return self.router_fc1.weight[:, : self.feature_dim] @ t + self.router_fc1.bias

    def folded_bias_table(self) -> torch.Tensor:
        """[T, router_hidden]: c_task for every task, in task_names order (the connector's task_id order)."""
        return torch.stack([self.folded_task_bias(i) for i in range(len(self.task_names))])

    def image_half_weight(self) -> torch.Tensor:
        """W1[:, F:], shape [router_hidden, F]: the only router fc1 weight the folded form needs."""
        return self.router_fc1.weight[:, self.feature_dim:]

    def router_logits_folded(self, x: torch.Tensor, task: str | int) -> torch.Tensor:
        h = F.linear(x, self.image_half_weight(), self.folded_task_bias(task))
        return self.router_fc2(F.gelu(h))

    def mix_experts(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = None
        for e, expert in enumerate(self.experts):
            y = weights[..., e : e + 1] * expert(x)
            out = y if out is None else out + y
        return out

    def forward(self, x: torch.Tensor, task: str | int) -> tuple[torch.Tensor, torch.Tensor]:
        weights = normalise_routing(self.router_logits(x, task))
        return self.mix_experts(x, weights), weights

    @classmethod
    def from_checkpoint(cls, ckpt, dtype: torch.dtype = torch.float32) -> "Connector":
        """Build from readers.checkpoint.UniMedCheckpoint (tensors converted one by one to `dtype`)."""
        with torch.device("meta"):
            model = cls(ckpt.task_names, ckpt.feature_dim, ckpt.expert_hidden, ckpt.out_dim, ckpt.num_experts,
                        ckpt.router_hidden)
        state = {"task_tokens": torch.stack([ckpt.task_token(t, dtype) for t in ckpt.task_names])}
        for e in range(ckpt.num_experts):
            ex = ckpt.expert(e, dtype)
            state[f"experts.{e}.fc1.weight"] = ex["0.weight"]
            state[f"experts.{e}.fc1.bias"] = ex["0.bias"]
            state[f"experts.{e}.fc2.weight"] = ex["2.weight"]
            state[f"experts.{e}.fc2.bias"] = ex["2.bias"]
        for layer in ("fc1", "fc2"):
            for p in ("weight", "bias"):
                state[f"router_{layer}.{p}"] = ckpt.get(f"router.{layer}.{p}", dtype)
        model.load_state_dict(state, strict=True, assign=True)
        return model.eval().requires_grad_(False)
