"""unimed_export: reads a user's Uni-Med checkpoints, runs the PyTorch reference model, writes synthetic
checkpoints and exports ONNX model bundles for the `unimed` runtime.

The model is specified in shared/reference/unimed-model.md; the bundle contract in docs/BUNDLE.md.
"""

__version__ = "0.1.0"
