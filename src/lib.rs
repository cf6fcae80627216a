//! unimed-edge: offline Uni-Med inference on ONNX Runtime.
