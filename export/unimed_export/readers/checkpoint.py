"""Reader for the Uni-Med training checkpoint `checkpoint_{epoch}.pth` (spec §7.3).

Top level `{"model", "optimizer", "config", "scaler", "epoch"}`; only "model" and "config" are used.
"model" holds the trainable parameters (frozen ones are dropped by the runner) plus buffers:
- `task_tokens.{task}` [1,1,F]
- experts `moe_layers.{e}.{0,2}.{weight,bias}`, the same tensors again as `llm_proj.{e}.*` (one ModuleDict
  registered twice); either copy is accepted, and when both are present they must agree
- `router.fc1.{weight,bias}` [R, 2F] (task token first, then the image token), `router.fc2.*` [E, R]
- peft LoRA `llm_model.base_model.model.model.layers.{i}.{self_attn,mlp}.{proj}.lora_{A,B}.default.weight`
- buffers such as `…rotary_emb.inv_freq`, which are recomputed from the LLaMA config and ignored here.

"config" is either the model section of the training yaml or the runner's whole config dict with a "model"
section (LAVIS `Config.to_dict()`); both are accepted.

LoRA rank comes from the tensors (A is [r, in], B is [out, r]); `lora_r` in the config, when present, must
agree. The scale is `lora_alpha / r` with `lora_alpha` from the config, else the spec's default 16 (Uni-Med's
yaml: r=8, alpha=16, scale 2.0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import (ConfigValueError, LoraRankError, MissingKeyError, ShapeMismatchError, WrongFileKindError,
                     check_shape, shape_str)
from .llama import ATTN_PROJ, MLP_PROJ
from .torchfile import load_torch_file

# Spec §4/§7: Uni-Med's training yaml sets lora_r 8, lora_alpha 16; used only when the config lacks alpha.
DEFAULT_LORA_ALPHA = 16
LORA_PREFIX = "llm_model.base_model.model.model.layers."
_LORA_KEY = re.compile(r"^llm_model\.base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)"
                       r"\.lora_([AB])\.default\.weight$")
_EXPERT_KEY = re.compile(r"^(moe_layers|llm_proj)\.(\d+)\.(0|2)\.(weight|bias)$")
_FLOAT_DTYPES = (torch.float16, torch.float32, torch.bfloat16)
LORA_MODULES = tuple(f"self_attn.{p}" for p in ATTN_PROJ) + tuple(f"mlp.{p}" for p in MLP_PROJ)


@dataclass
class UniMedCheckpoint:
    path: Path
    config: dict  # the model section
    task_names: list  # connector tasks, in the order of the file
    feature_dim: int  # F: the connector's input width (ViT width × resample rate)
    expert_hidden: int
    out_dim: int  # connector output width (= LLaMA hidden)
    num_experts: int
    router_hidden: int
    lora_r: int
    lora_alpha: float
    lora: dict  # (layer, module) -> (A key, B key)
    num_lora_layers: int
    tensors: dict  # key -> tensor (memory-mapped)
    ignored_keys: list = field(default_factory=list)

    @property
    def lora_scale(self) -> float:
        return self.lora_alpha / self.lora_r

    def get(self, key: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.tensors[key].to(dtype)

    def task_token(self, task: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[F] vector of one connector task."""
        return self.get(f"task_tokens.{task}", dtype).reshape(-1)

    def expert(self, e: int, dtype: torch.dtype = torch.float32) -> dict:
        return {f"{i}.{p}": self.get(f"experts.{e}.{i}.{p}", dtype) for i in (0, 2) for p in ("weight", "bias")}

    def lora_pair(self, layer: int, module: str, dtype: torch.dtype = torch.float32):
        """(A [r, in], B [out, r]) for one LLaMA linear, or None when that linear has no adapter."""
        keys = self.lora.get((layer, module))
        if keys is None:
            return None
        return self.get(keys[0], dtype), self.get(keys[1], dtype)

    def cfg(self, key: str, default=None):
        return self.config.get(key, default)


def _tensor(path, model: dict, key: str, what: str) -> torch.Tensor:
    if key not in model:
        raise MissingKeyError(path, f"model.{key}", what)
    t = model[key]
    if not isinstance(t, torch.Tensor) or t.dtype not in _FLOAT_DTYPES:
        raise WrongFileKindError(path, f"model.{key}", "a float16/float32/bfloat16 tensor",
                                 str(getattr(t, "dtype", type(t).__name__)))
    return t


def _model_section(path, cfg) -> dict:
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise WrongFileKindError(path, "config", "a dict (the training config)", type(cfg).__name__)
    if isinstance(cfg.get("model"), dict):
        return cfg["model"]
    return cfg


def _cfg_int(path, cfg: dict, key: str):
    value = cfg.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigValueError(path, f"config.{key}", "an integer", repr(value))
    return value


def read_checkpoint(path: str | Path, task_order: list | None = None) -> UniMedCheckpoint:
    """Read and validate a Uni-Med checkpoint; tensors stay memory-mapped until used.

    `task_order` (e.g. prompt.CONNECTOR_TASKS) fixes the order of `task_names`; every listed task must have a
    token in the file. Without it the file's order is kept.
    """
    path = Path(path)
    top = load_torch_file(path, "Uni-Med training checkpoint checkpoint_*.pth")
    if not isinstance(top, dict) or not isinstance(top.get("model"), dict):
        got = "a dict without a 'model' dict" if isinstance(top, dict) else type(top).__name__
        if isinstance(top, dict) and "cls_token" in top:
            got = "an EVA ViT state dict"
        raise WrongFileKindError(path, "model", "a Uni-Med training checkpoint {'model': {...}, 'config': ...}", got)
    model = top["model"]
    cfg = _model_section(path, top.get("config"))

    # Task tokens.
    names = [k[len("task_tokens."):] for k in model if k.startswith("task_tokens.")]
    if not names:
        raise MissingKeyError(path, "model.task_tokens.vqa", "task tokens task_tokens.{task}")
    if task_order is not None:
        for t in task_order:
            if t not in names:
                raise MissingKeyError(path, f"model.task_tokens.{t}", f"a task token for every task {list(task_order)}")
        names = list(task_order)
    first = _tensor(path, model, f"task_tokens.{names[0]}", "a task token")
    if first.dim() != 3 or first.shape[0] != 1 or first.shape[1] != 1:
        raise ShapeMismatchError(path, f"model.task_tokens.{names[0]}", "shape [1, 1, F] (num_task_tokens 1)",
                                 shape_str(first.shape))
    feat = int(first.shape[2])
    tensors = {}
    for t in names:
        key = f"task_tokens.{t}"
        tensors[key] = _tensor(path, model, key, "a task token")
        check_shape(path, f"model.{key}", tensors[key], (1, 1, feat), "like every task token")

    # Experts: prefer moe_layers, fall back to llm_proj (same ModuleDict saved under two names).
    found = {}
    for key in model:
        m = _EXPERT_KEY.match(key)
        if m:
            found.setdefault(m.group(1), set()).add(int(m.group(2)))
    if not found:
        raise MissingKeyError(path, "model.moe_layers.0.0.weight", "connector experts moe_layers.{e}.* or llm_proj.{e}.*")
    prefix = "moe_layers" if "moe_layers" in found else "llm_proj"
    num_experts = max(found[prefix]) + 1
    if found[prefix] != set(range(num_experts)):
        missing = min(set(range(num_experts)) - found[prefix])
        raise MissingKeyError(path, f"model.{prefix}.{missing}.0.weight", f"experts 0..{num_experts - 1}")
    w0 = _tensor(path, model, f"{prefix}.0.0.weight", "the first expert layer")
    if w0.dim() != 2 or w0.shape[1] != feat:
        raise ShapeMismatchError(path, f"model.{prefix}.0.0.weight", f"shape [hidden, {feat}] (F from task tokens)",
                                 shape_str(w0.shape))
    hx = int(w0.shape[0])
    w2 = _tensor(path, model, f"{prefix}.0.2.weight", "the second expert layer")
    if w2.dim() != 2 or w2.shape[1] != hx:
        raise ShapeMismatchError(path, f"model.{prefix}.0.2.weight", f"shape [out, {hx}]", shape_str(w2.shape))
    out_dim = int(w2.shape[0])
    expected = {"0.weight": (hx, feat), "0.bias": (hx,), "2.weight": (out_dim, hx), "2.bias": (out_dim,)}
    for e in range(num_experts):
        for p, shp in expected.items():
            key = f"{prefix}.{e}.{p}"
            t = _tensor(path, model, key, "an expert parameter")
            check_shape(path, f"model.{key}", t, shp)
            tensors[f"experts.{e}.{p}"] = t
            other = ("llm_proj" if prefix == "moe_layers" else "moe_layers") + f".{e}.{p}"
            if other in model and model[other] is not t:
                o = model[other]
                if tuple(o.shape) != shp or not torch.equal(o, t):
                    raise ConfigValueError(path, f"model.{other}", f"the same tensor as model.{key} "
                                           "(llm_proj and moe_layers are one module)", "different values")

    # Router: input is [task token ‖ image token] = 2F.
    fc1 = _tensor(path, model, "router.fc1.weight", "the router's first layer")
    if fc1.dim() != 2 or fc1.shape[1] != 2 * feat:
        raise ShapeMismatchError(path, "model.router.fc1.weight", f"shape [hidden, {2 * feat}] (task token ‖ image token)",
                                 shape_str(fc1.shape))
    rh = int(fc1.shape[0])
    for key, shp in {"router.fc1.weight": (rh, 2 * feat), "router.fc1.bias": (rh,),
                     "router.fc2.weight": (num_experts, rh), "router.fc2.bias": (num_experts,)}.items():
        tensors[key] = _tensor(path, model, key, "a router parameter")
        check_shape(path, f"model.{key}", tensors[key], shp, f"{num_experts} experts")
    cfg_experts = _cfg_int(path, cfg, "num_experts")
    if cfg_experts is not None and cfg_experts != num_experts:
        raise ConfigValueError(path, "config.num_experts", f"{num_experts} (experts in the model dict)", str(cfg_experts))

    # LoRA.
    pairs: dict = {}
    for key in model:
        m = _LORA_KEY.match(key)
        if m:
            pairs.setdefault((int(m.group(1)), f"{m.group(2)}.{m.group(3)}"), {})[m.group(4)] = key
    if not pairs:
        raise MissingKeyError(path, f"model.{LORA_PREFIX}0.self_attn.q_proj.lora_A.default.weight",
                              "peft LoRA adapters (sft_type lora)")
    cfg_r = _cfg_int(path, cfg, "lora_r")
    rank = None
    lora = {}
    for (layer, module), ab in sorted(pairs.items()):
        for side in ("A", "B"):
            if side not in ab:
                key = f"{LORA_PREFIX}{layer}.{module}.lora_{side}.default.weight"
                raise MissingKeyError(path, f"model.{key}", f"the lora_{side} matching the other half")
        a = _tensor(path, model, ab["A"], "a LoRA A")
        b = _tensor(path, model, ab["B"], "a LoRA B")
        if a.dim() != 2 or b.dim() != 2:
            raise ShapeMismatchError(path, f"model.{ab['A']}", "2-D LoRA A [r, in] and B [out, r]",
                                     f"{shape_str(a.shape)} and {shape_str(b.shape)}")
        r = int(a.shape[0])
        if int(b.shape[1]) != r:
            raise LoraRankError(path, f"model.{ab['B']}", f"rank {r} (columns of B = rows of A)", str(int(b.shape[1])))
        if cfg_r is not None and r != cfg_r:
            raise LoraRankError(path, f"model.{ab['A']}", f"rank {cfg_r} (config.lora_r)", str(r))
        if rank is not None and r != rank:
            raise LoraRankError(path, f"model.{ab['A']}", f"rank {rank} like the other adapters", str(r))
        rank = r
        lora[(layer, module)] = (ab["A"], ab["B"])
        tensors[ab["A"]], tensors[ab["B"]] = a, b
    num_layers = max(layer for layer, _ in lora) + 1
    targets = cfg.get("lora_target_modules", ["all"])
    if targets in (None, "all") or (isinstance(targets, (list, tuple)) and "all" in targets):
        # find_all_linear_names: every nn.Linear except lm_head is adapted, in every layer.
        for layer in range(num_layers):
            for module in LORA_MODULES:
                if (layer, module) not in lora:
                    raise MissingKeyError(path, f"model.{LORA_PREFIX}{layer}.{module}.lora_A.default.weight",
                                          "an adapter on every linear (lora_target_modules ['all'])")
    alpha = cfg.get("lora_alpha", DEFAULT_LORA_ALPHA)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha <= 0:
        raise ConfigValueError(path, "config.lora_alpha", "a positive number", repr(alpha))

    ignored = sorted(k for k in model if k not in tensors and not k.startswith(("moe_layers.", "llm_proj.")))
    return UniMedCheckpoint(
        path=path, config=cfg, task_names=names, feature_dim=feat, expert_hidden=hx, out_dim=out_dim,
        num_experts=num_experts, router_hidden=rh, lora_r=rank, lora_alpha=float(alpha), lora=lora,
        num_lora_layers=num_layers, tensors=tensors, ignored_keys=ignored,
    )
