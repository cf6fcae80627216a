"""The PyTorch reference model of Uni-Med (spec: shared/reference/unimed-model.md).

Stable class names (the ONNX exporter imports them): EvaViT/VitConfig (vit.py), VisionEncoder (vision.py),
Connector (connector.py), build_llm/merge_lora/iter_merged_state (llama.py), UniMed (unimed.py),
greedy_generate (generate.py), load_pixel_values (image.py).
"""
