"""Export a trained Keras model to TFLite and ONNX (fp32 and int8), self-describing and checked.

``export_model(run_dir, out_dir, int8=True, formats=("tflite", "onnx"), name=None, ...)`` is the
API (``pipeline.export_model``); ``edge-genre export`` is the command. Importing this package stays
light (no TensorFlow) so the CLI can register the command cheaply.
"""
from __future__ import annotations

__all__ = ["export_model", "ExportConfig"]


def __getattr__(name):
    if name == "export_model":
        from edge_genre.export.pipeline import export_model
        return export_model
    if name == "ExportConfig":
        from edge_genre.export.config import ExportConfig
        return ExportConfig
    raise AttributeError(name)
