"""ONNX model bundles: export (vision, connector, decoder graphs, token table, tokenizer, manifest),
validation of the manifest against docs/BUNDLE.md, and a Python ONNX Runtime runner used for parity tests
and measurements.
"""
