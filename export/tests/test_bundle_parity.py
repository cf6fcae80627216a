"""Parity of a tiny fp32 bundle in ONNX Runtime (Python) against the PyTorch reference.

Tolerances (max abs diff / max abs of the reference): vision and connector 1e-4, decoder logits 1e-3; greedy
tokens identical for all six tasks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bundle_fixtures import build_tiny_bundle, rel_diff, six_requests

IMAGE_TOL = 1e-4
LOGITS_TOL = 1e-3


@pytest.fixture(scope="module")
def tiny_bundle(tiny_synth, tmp_path_factory):
    return build_tiny_bundle(tiny_synth, tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(scope="module")
def runner(tiny_bundle):
    from unimed_export.bundle.runner import BundleRunner

    return BundleRunner(tiny_bundle)


@pytest.fixture(scope="module")
def pixel_values(test_images, tiny_model):
    from unimed_export.model.image import load_pixel_values

    return load_pixel_values(test_images["rgb"], tiny_model.image_size)[0]


@pytest.mark.parametrize("task", ["vqa", "refer", "identify", "caption", "cls"])
def test_vision_and_connector_match_reference(runner, tiny_model, pixel_values, task):
    features, embeds, weights = runner.encode_image(pixel_values.numpy(), task)
    ref_features, ref_embeds, ref_weights = tiny_model.encode_image(pixel_values, task)
    assert rel_diff(features, ref_features) < IMAGE_TOL
    assert rel_diff(embeds, ref_embeds) < IMAGE_TOL
    assert rel_diff(weights, ref_weights) < IMAGE_TOL
    # Routing must actually depend on the task, or the folded bias table would go untested.
    _, _, vqa_weights = tiny_model.encode_image(pixel_values, "vqa")
    if task != "vqa":
        assert float((ref_weights - vqa_weights).abs().max()) > 1e-3


def _reference_prompt(tiny_model, pixel_values, task="vqa"):
    from unimed_export.prompt import TASKS, build_instruction, encode_prompt

    _, image_embeds, _ = tiny_model.encode_image(pixel_values, TASKS[task]["connector_task"])
    prompt = encode_prompt(tiny_model.tokenizer, task, build_instruction(task, "Is the heart enlarged?"))
    return prompt, image_embeds


def test_decoder_prefill_and_step_logits_match_reference(runner, tiny_model, pixel_values):
    prompt, image_embeds = _reference_prompt(tiny_model, pixel_values)
    ref_embeds = tiny_model.inputs_embeds(prompt, image_embeds)
    embeds = runner.inputs_embeds(prompt, image_embeds.numpy())
    # The bundle's f16 token table holds exactly the reference's (fp16-stored) embedding rows.
    assert rel_diff(embeds, ref_embeds) < IMAGE_TOL

    runner.decoder.reset()
    logits = runner.decoder.run(embeds)  # all positions
    with torch.inference_mode():
        ref_logits = tiny_model.llm(inputs_embeds=ref_embeds).logits[0]
    assert logits.shape == tuple(ref_logits.shape)
    assert rel_diff(logits, ref_logits) < LOGITS_TOL

    # Three decode steps through the shared KV buffer against the reference on the grown sequence.
    tokens = [int(np.argmax(logits[-1]))]
    for _ in range(3):
        step = runner.decoder.run(runner.embed_ids(tokens[-1:]))[-1]
        full = torch.cat([ref_embeds, tiny_model.embed_ids(tokens)], dim=1)
        with torch.inference_mode():
            ref_step = tiny_model.llm(inputs_embeds=full).logits[0, -1]
        assert rel_diff(step, ref_step) < LOGITS_TOL
        tokens.append(int(np.argmax(step)))


def test_shared_kv_buffer_equals_fresh_present_tensors(tiny_bundle, runner, tiny_model, pixel_values):
    """past_present_share_buffer: binding one buffer as past and present gives what fresh tensors give."""
    from unimed_export.bundle.runner import BundleRunner

    assert runner.manifest["graphs"]["decoder"]["past_present_share_buffer"] is True
    naive = BundleRunner(tiny_bundle, share_buffer=False)
    prompt, image_embeds = _reference_prompt(tiny_model, pixel_values, "vqa")
    embeds = runner.inputs_embeds(prompt, image_embeds.numpy())
    shared_gen = runner.generate(embeds, max_new_tokens=12)
    naive_gen = naive.generate(embeds, max_new_tokens=12)
    assert shared_gen.ids == naive_gen.ids
    np.testing.assert_allclose(shared_gen.logits_first, naive_gen.logits_first, rtol=0, atol=1e-5)


def test_greedy_tokens_identical_for_all_six_tasks(runner, tiny_model, test_images, tmp_path):
    from unimed_export import reference

    for req in six_requests(test_images):
        req = dict(req, _where=f"test request {req['id']}")
        expected = reference.run_request(tiny_model, dict(req), 100, None)
        got, arrays = runner.run_request(req)
        assert got["generated_ids"] == expected["generated_ids"], req["id"]
        assert got["stop_reason"] == expected["stop_reason"], req["id"]
        assert got["text"] == expected["text"], req["id"]
        assert got["prompt_before"] == expected["prompt_before"] and got["prompt_after"] == expected["prompt_after"]
        for key in ("box", "label"):  # task post-processing of the same text gives the same answer
            if key in expected:
                assert got[key] == expected[key], (req["id"], key)
        assert len(got["generated_ids"]) > 0, "an empty generation would make this comparison vacuous"
