"""Converter dependencies, checked before any work so a missing one costs one clear line."""
from __future__ import annotations

import importlib

from edge_genre.errors import BackendError

INSTALL_HINT = "pip install 'edge-genre[export]'"

#: import name -> what needs it, per format.
NEEDED = {
    "keras": ("tensorflow", "keras"),
    "tflite": ("tensorflow", "ai_edge_litert"),
    "onnx": ("tf2onnx", "onnx", "onnxruntime"),
}


def require(*formats: str) -> None:
    """BackendError naming the first missing module any of ``formats`` needs."""
    for fmt in ("keras", *formats):
        for module in NEEDED.get(fmt, ()):
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise BackendError(f"exporting {fmt if fmt != 'keras' else 'a Keras model'} "
                                   f"needs {module.replace('_', '-')}, which cannot be imported "
                                   f"({exc}); {INSTALL_HINT}") from None


def versions() -> dict[str, str]:
    """Versions of the converters and interpreters in use (for the report)."""
    out = {}
    for dist in ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert"):
        try:
            from importlib.metadata import version
            out[dist] = version(dist if dist != "tensorflow" else _tf_dist())
        except Exception:
            continue
    return out


def _tf_dist() -> str:
    from importlib.metadata import PackageNotFoundError, version
    for name in ("tensorflow", "tensorflow-cpu"):
        try:
            version(name)
            return name
        except PackageNotFoundError:
            continue
    return "tensorflow"
