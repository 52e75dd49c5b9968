"""Headline ratios of a bench record."""
from __future__ import annotations


def test_the_headline_ratio_takes_the_lightest_int8_model():
    """With several int8 TFLite models under test (student, scratch), the ratio takes the
    cheapest."""
    from edge_genre.benchmarks.bench import TESTED_ROLE, _pick

    def model(name, macs, quantization="int8", fmt="tflite"):
        return {"name": name, "role": TESTED_ROLE, "quantization": quantization, "format": fmt,
                "macs": macs, "latency": [{"threads": 1, "backend": "ai-edge-litert"}]}

    models = [model("student-int8.tflite", 99_500_000), model("scratch-int8.tflite", 23_600_000),
              model("scratch-int8.onnx", 1, fmt="onnx"), model("t-int8w.tflite", 1, "int8-weights")]
    assert _pick(models, "tested", "int8")["name"] == "scratch-int8.tflite"
    assert _pick(models, "paper", "int8") is None
