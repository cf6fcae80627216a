"""Benchmarks of the peers the `unimed` runtime is compared with (scripts/compare, docs/PERFORMANCE.md):

- genai_runner: onnxruntime-genai on the bundle's own decoder graph (plus a token-embedding Gather, since genai's
  decoder-only pipeline only accepts input_ids),
- torch_eager: the PyTorch reference model (export/unimed_export/model) end to end per task,
- roofline: decoder bytes read per generated token ÷ measured memory bandwidth.

Every runner prints one JSON object (the last stdout line) so that scripts/compare can pair them; the
decoder workload (prompt ids, new tokens, threads) is shared through `workload`.
"""
