"""Run a bundle end to end with ONNX Runtime (Python), the way the Rust runtime does.

image -> vision.onnx -> connector.onnx (task_id from graphs.connector.tasks) -> prompt ids
(unimed_export.prompt) -> rows of the memory-mapped embed_tokens.f16 with image_embeds spliced in ->
decoder.onnx prefill -> greedy loop, one token a step. Everything the loop needs (tensor names, KV layout,
io dtype, context length, EOS) is read from the manifest.

KV cache: when the manifest says past_present_share_buffer, one buffer per layer of `capacity` positions
(default: context_length) is bound with IOBinding as both past and present, and the graph writes each new
position in place; attention_mask is ones of the current total length. Otherwise presents come back as new
tensors that are fed as the next step's past. `share_buffer=False` forces the second mode on a graph that
supports both (used by the tests to check that the two agree).

Used by the parity tests (tests/test_bundle_*.py) and by bundle/measure.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..postprocess import clean_output, match_label, parse_rec_box
from ..prompt import TASKS, PromptIds, build_instruction, encode_prompt
from .embed import read_embed_table
from .manifest import load_manifest

_NP_DTYPES = {"float32": np.float32, "float16": np.float16}


def session_options(threads: int | None = None, prepacking: bool = True):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if not prepacking:
        opts.add_session_config_entry("session.disable_prepacking", "1")
    return opts


@dataclass
class Generation:
    ids: list  # generated ids, without the stopping EOS
    stop_reason: str  # "eos" | "max_new_tokens" | "context"
    logits_first: np.ndarray  # [vocab] float32: the prefill's last-position logits (chose the first token)


class DecoderLoop:
    """decoder.onnx with its KV cache: `reset`, then `run(embeds [1,S,H])` -> logits [S or 1, vocab] float32."""

    def __init__(self, session, manifest: dict, capacity: int | None = None, share_buffer: bool | None = None):
        dec, model = manifest["graphs"]["decoder"], manifest["model"]
        self.session = session
        self.names_in, self.names_out = dec["inputs"], dec["outputs"]
        self.dtype = _NP_DTYPES[dec["io_dtype"]]
        self.num_layers, self.kv_heads, self.head_dim = model["num_layers"], model["num_kv_heads"], model["head_dim"]
        self.capacity = capacity or model["context_length"]
        graph_shares = dec["past_present_share_buffer"]
        self.share = graph_shares if share_buffer is None else share_buffer
        if self.share and not graph_shares:
            raise ValueError("share_buffer=True on a decoder whose manifest says past_present_share_buffer false")
        self.length = 0
        self.reset()

    def _kv_shape(self, length: int) -> tuple:
        # kv_layout batch_heads_seq_dim: [1, num_kv_heads, seq, head_dim]
        return (1, self.kv_heads, length, self.head_dim)

    def reset(self) -> None:
        import onnxruntime as ort

        self.length = 0
        if self.share:
            # Keep the numpy arrays alive: the OrtValues alias their memory.
            self._kv_arrays = [(np.zeros(self._kv_shape(self.capacity), self.dtype),
                                np.zeros(self._kv_shape(self.capacity), self.dtype)) for _ in range(self.num_layers)]
            self._kv_values = [(ort.OrtValue.ortvalue_from_numpy(k), ort.OrtValue.ortvalue_from_numpy(v))
                               for k, v in self._kv_arrays]
        else:
            empty = np.zeros(self._kv_shape(0), self.dtype)
            self._past = [(empty, empty) for _ in range(self.num_layers)]

    def run(self, embeds: np.ndarray) -> np.ndarray:
        steps = embeds.shape[1]
        total = self.length + steps
        if total > self.capacity:
            raise ValueError(f"decoder: {total} positions exceed the KV capacity {self.capacity}")
        embeds = np.ascontiguousarray(embeds, dtype=self.dtype)
        mask = np.ones((1, total), dtype=np.int64)
        if self.share:
            logits = self._run_shared(embeds, mask)
        else:
            logits = self._run_naive(embeds, mask)
        self.length = total
        return logits[0].astype(np.float32)

    def _run_shared(self, embeds, mask):
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.names_in["inputs_embeds"], embeds)
        binding.bind_cpu_input(self.names_in["attention_mask"], mask)
        # Outputs come back in binding order: bind logits first.
        binding.bind_output(self.names_out["logits"])
        for layer, (k, v) in enumerate(self._kv_values):
            binding.bind_ortvalue_input(self.names_in["past_key"] % layer, k)
            binding.bind_ortvalue_input(self.names_in["past_value"] % layer, v)
            binding.bind_ortvalue_output(self.names_out["present_key"] % layer, k)
            binding.bind_ortvalue_output(self.names_out["present_value"] % layer, v)
        self.session.run_with_iobinding(binding)
        return binding.get_outputs()[0].numpy()

    def _run_naive(self, embeds, mask):
        feeds = {self.names_in["inputs_embeds"]: embeds, self.names_in["attention_mask"]: mask}
        for layer, (k, v) in enumerate(self._past):
            feeds[self.names_in["past_key"] % layer] = k
            feeds[self.names_in["past_value"] % layer] = v
        wanted = [self.names_out["logits"]]
        for layer in range(self.num_layers):
            wanted += [self.names_out["present_key"] % layer, self.names_out["present_value"] % layer]
        out = self.session.run(wanted, feeds)
        self._past = [(out[1 + 2 * i], out[2 + 2 * i]) for i in range(self.num_layers)]
        return out[0]


class BundleRunner:
    """A loaded bundle: three ORT sessions, the memory-mapped token table and the tokenizer."""

    def __init__(self, bundle: str | Path, threads: int | None = None, prepacking: bool = True,
                 kv_capacity: int | None = None, share_buffer: bool | None = None, verify_hashes: bool = False):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.bundle = Path(bundle)
        self.manifest = m = load_manifest(self.bundle, verify_hashes=verify_hashes)
        opts = session_options(threads, prepacking)
        providers = ["CPUExecutionProvider"]
        graphs = m["graphs"]
        self.vision = ort.InferenceSession(str(self.bundle / graphs["vision"]["file"]), opts, providers=providers)
        self.connector = ort.InferenceSession(str(self.bundle / graphs["connector"]["file"]), opts,
                                              providers=providers)
        decoder = ort.InferenceSession(str(self.bundle / graphs["decoder"]["file"]), opts, providers=providers)
        self.decoder = DecoderLoop(decoder, m, kv_capacity, share_buffer)
        vocab, hidden = m["embed_tokens"]["shape"]
        self.embed_table = read_embed_table(self.bundle / m["embed_tokens"]["file"], vocab, hidden)
        self.tokenizer = Tokenizer.from_file(str(self.bundle / m["tokenizer"]["file"]))

    @property
    def image_size(self) -> int:
        return self.manifest["model"]["image_size"]

    def encode_image(self, pixel_values: np.ndarray, connector_task: str):
        """(image_features [1,N,F], image_embeds [1,N,H], routing_weights [1,N,E]) as float32 arrays."""
        g = self.manifest["graphs"]
        tasks = g["connector"]["tasks"]
        if connector_task not in tasks:
            raise ValueError(f"connector task {connector_task!r}: expected one of graphs.connector.tasks {tasks}")
        features = self.vision.run([g["vision"]["outputs"]["image_features"]],
                                   {g["vision"]["inputs"]["pixel_values"]: np.asarray(pixel_values, np.float32)})[0]
        cin, cout = g["connector"]["inputs"], g["connector"]["outputs"]
        embeds, weights = self.connector.run(
            [cout["image_embeds"], cout["routing_weights"]],
            {cin["image_features"]: features, cin["task_id"]: np.array([tasks.index(connector_task)], np.int64)})
        return features, embeds, weights

    def embed_ids(self, ids: list) -> np.ndarray:
        return np.asarray(self.embed_table[np.asarray(ids, dtype=np.int64)], dtype=np.float32)[None]

    def inputs_embeds(self, prompt: PromptIds, image_embeds: np.ndarray | None) -> np.ndarray:
        if prompt.after is None:
            return self.embed_ids(prompt.before)
        if image_embeds is None:
            raise ValueError("an image task's prompt needs image_embeds")
        return np.concatenate([self.embed_ids(prompt.before), image_embeds.astype(np.float32),
                               self.embed_ids(prompt.after)], axis=1)

    def generate(self, inputs_embeds: np.ndarray, max_new_tokens: int | None = None,
                 forced: list | None = None) -> Generation:
        """Greedy decoding (EOS allowed on the first step; the stopping EOS is not returned).

        `forced`: teacher forcing: feed these ids instead of the argmax (for agreement measurements);
        `ids` then holds the model's own argmax at each position, len(forced) of them.
        """
        m = self.manifest
        max_new = m["generation"]["max_new_tokens"] if max_new_tokens is None else max_new_tokens
        eos = m["tokens"]["eos"]
        context = min(m["model"]["context_length"], self.decoder.capacity)
        prompt_len = inputs_embeds.shape[1]
        if prompt_len >= context:
            raise ValueError(f"prompt of {prompt_len} positions does not fit the context of {context}")
        self.decoder.reset()
        logits = self.decoder.run(inputs_embeds)[-1]
        logits_first = logits.copy()
        ids: list = []
        while True:
            token = int(np.argmax(logits))
            if forced is not None:
                ids.append(token)
                if len(ids) >= len(forced):
                    return Generation(ids, "forced", logits_first)
                token = forced[len(ids) - 1]
            else:
                if token == eos:
                    return Generation(ids, "eos", logits_first)
                ids.append(token)
                if len(ids) >= max_new:
                    return Generation(ids, "max_new_tokens", logits_first)
                if prompt_len + len(ids) >= context:
                    return Generation(ids, "context", logits_first)
            logits = self.decoder.run(self.embed_ids([token]))[-1]

    def run_request(self, req: dict, max_new_tokens: int | None = None) -> tuple[dict, dict]:
        """One request (the reference's .jsonl format) -> (result dict like the reference's, arrays)."""
        from ..model.image import load_pixel_values

        task = req["task"]
        spec = TASKS[task]
        image_size, image_embeds, arrays = None, None, {}
        if spec["image"]:
            pixel_values, image_size = load_pixel_values(req["image"], self.image_size)
            pixel_values = pixel_values.numpy()
            features, image_embeds, weights = self.encode_image(pixel_values, spec["connector_task"])
            arrays.update(pixel_values=pixel_values, image_features=features, image_embeds=image_embeds,
                          routing_weights=weights)
        instruction = build_instruction(task, req.get("text"), box=req.get("box") if task == "reg" else None,
                                        image_size=image_size if task == "reg" else None, labels=req.get("labels"))
        prompt = encode_prompt(self.tokenizer, task, instruction)
        embeds = self.inputs_embeds(prompt, image_embeds)
        gen = self.generate(embeds, max_new_tokens)
        arrays["logits_first"] = gen.logits_first
        arrays["inputs_embeds"] = embeds
        text = clean_output(self.tokenizer.decode(gen.ids, skip_special_tokens=True))
        result = {"id": req.get("id"), "task": task, "connector_task": spec["connector_task"],
                  "instruction": instruction, "prompt_before": prompt.before, "prompt_after": prompt.after,
                  "generated_ids": gen.ids, "stop_reason": gen.stop_reason, "text": text}
        if task == "rec":
            result["box"] = parse_rec_box(text, *image_size)
        if task == "cls":
            from ..reference import label_candidates

            labels = label_candidates(req)
            result["label"] = match_label(text, labels) if labels else None
        return result, arrays
