"""Running a model file: one ``Runner`` per loaded file, whatever interpreter runs it.

Backends, in the order ``backend="auto"`` tries them:

- ``.tflite``: ``ai-edge-litert`` (TFLite's successor, wheels for x86-64 and aarch64), then
  ``tflite-runtime`` (the older Pi wheel; 2.14, its last release, is built against numpy 1 and
  fails with numpy 2: detected and reported, never a crash).
- ``.onnx``: ``onnxruntime``.

Every runner returns (n, n_labels) float32 probabilities. What it takes depends on the file:

- a spectrogram-in file (the ordinary export): NORMALISED features, shape (n, H, W, 1) float32
  as ``edge.frontend.features`` gives them;
- a waveform-in file (``edge-genre export --mediapipe``; its card says ``extra["input"] ==
  "waveform"``): raw mono windows, shape (n, window_samples) float32 at the card's sample rate;
  the log-mel front-end is inside the graph. ``Runner.waveform`` says which.

int8 inputs and outputs are quantised / dequantised here with the tensor's own scale and zero
point, so callers never see them. A file whose graph has a fixed batch of 1 (the waveform-in
files) runs one window per invoke, its input never resized. A file without the edge-genre card,
or whose input shape disagrees with its card, is refused with a ``ModelError`` before anything
runs. Nothing here imports TensorFlow.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

from edge_genre.edge.config import ModelCard
from edge_genre.edge.modelfile import card_from_onnx_props, read_card
from edge_genre.errors import BackendError, ModelError

LITERT = "ai-edge-litert"
TFLITE_RUNTIME = "tflite-runtime"
ONNXRUNTIME = "onnxruntime"

#: Backends per file suffix, in the order ``auto`` tries them.
FORMAT_BACKENDS = {".tflite": (LITERT, TFLITE_RUNTIME), ".onnx": (ONNXRUNTIME,)}
#: Importable module of each backend (checked without importing it).
_MODULES = {LITERT: "ai_edge_litert", TFLITE_RUNTIME: "tflite_runtime", ONNXRUNTIME: "onnxruntime"}
#: What to install when a format has no backend here.
_INSTALL_HINT = {".tflite": "pip install ai-edge-litert (or: pip install 'edge-genre[edge]')",
                 ".onnx": "pip install onnxruntime (or: pip install 'edge-genre[onnx]')"}
_ALL = (LITERT, TFLITE_RUNTIME, ONNXRUNTIME)
#: Card ``extra`` key saying what a file takes, and the value of a waveform-in file
#: (written by ``export.mediapipe_metadata.waveform_card``; a card without the key takes features).
INPUT_KEY = "input"
WAVEFORM = "waveform"


# ----------------------------------------------------------------------------- discovery


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(_MODULES[name]) is not None
    except (ImportError, ValueError):
        return False


def _tflite_runtime_numpy_problem() -> str | None:
    """Why tflite-runtime cannot run with this numpy, or None when it can.

    tflite-runtime wheels up to 2.14 (the last release) are compiled against the numpy 1 C API;
    with numpy 2 the import fails deep inside (``_ARRAY_API not found``) or crashes later.
    """
    version = _version(TFLITE_RUNTIME) or "?"
    numpy_major = int(np.__version__.split(".")[0])
    try:
        major, minor = (int(v) for v in version.split(".")[:2])
    except ValueError:
        major, minor = 2, 14
    if numpy_major >= 2 and (major, minor) <= (2, 14):
        return (f"tflite-runtime {version} is built for numpy 1 and this Python has numpy "
                f"{np.__version__}; use ai-edge-litert instead (pip install ai-edge-litert) "
                "or install numpy<2 for tflite-runtime")
    return None


def available_backends() -> dict[str, str]:
    """Backends that can run here, name -> version. Cheap: nothing is imported.

    tflite-runtime is left out when the installed numpy cannot run it (see ``load_model``'s error).
    """
    out = {}
    for name in _ALL:
        if not _installed(name):
            continue
        if name == TFLITE_RUNTIME and _tflite_runtime_numpy_problem():
            continue
        out[name] = _version(name) or "unknown"
    return out


def model_format(path: Path) -> str:
    """'.tflite' or '.onnx', from the file's suffix (or its TFLite identifier)."""
    suffix = path.suffix.lower()
    if suffix in FORMAT_BACKENDS:
        return suffix
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        head = b""
    if head[4:8] == b"TFL3":
        return ".tflite"
    raise ModelError(f"{path}: unknown model format (expected a .tflite or .onnx file)")


# ----------------------------------------------------------------------------- runners


class Runner:
    """One loaded model file.

    Attributes
    ----------
    path : the model file.
    card : its ModelCard (labels, front-end, windowing), read from the file itself.
    backend : "ai-edge-litert", "tflite-runtime" or "onnxruntime".
    input_shape : one window's input, as the card says and the file agrees: (H, W, 1) features,
        or (window_samples,) audio for a waveform-in file.
    waveform : whether the file takes raw audio windows (its front-end is in its graph).
    threads : interpreter threads asked for (None: the backend's default).
    """

    backend = ""

    def __init__(self, path: Path, card: ModelCard, threads: int | None):
        self.path, self.card, self.threads = Path(path), card, threads
        self.input_shape = expected_input_shape(card)
        self.waveform = is_waveform(card)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.card.labels

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x: (n, *input_shape) float32 -> (n, n_labels) float32 probabilities: normalised
        features (n, H, W, 1), or for a waveform-in file mono windows (n, window_samples)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == len(self.input_shape):
            x = x[None]
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"model input must be (n, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")
        if len(x) == 0:
            return np.zeros((0, len(self.card.labels)), dtype=np.float32)
        out = self._run(np.ascontiguousarray(x))
        return out.reshape(len(x), -1).astype(np.float32, copy=False)

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.path.name!r}, backend={self.backend!r}, "
                f"quantization={self.card.quantization!r}, input_shape={self.input_shape})")


def is_waveform(card: ModelCard) -> bool:
    """Whether the card is a waveform-in file's (``extra["input"] == "waveform"``); ModelError
    for an input kind this runtime does not know."""
    kind = card.extra.get(INPUT_KEY) if isinstance(card.extra, dict) else None
    if kind is None:
        return False
    if kind != WAVEFORM:
        raise ModelError(f"model card says input {kind!r}; this edge-genre runs spectrogram-in "
                         f"files and {WAVEFORM!r} files (upgrade edge-genre?)")
    return True


def expected_input_shape(card: ModelCard) -> tuple[int, ...]:
    """One window's model input: (H, W, 1) that the card's front-end gives, or for a waveform-in
    card (window_samples,); ModelError if the card's ``input_shape`` disagrees."""
    n = card.window.window_samples(card.frontend)
    if is_waveform(card):
        shape, what = (n,), "its window"
    else:
        shape, what = tuple(card.frontend.feature_shape(n)), "its front-end"
    if card.input_shape and tuple(card.input_shape) != shape:
        raise ModelError(f"model card says input {tuple(card.input_shape)} but {what} gives "
                         f"{shape} per window")
    return shape


def _check_file_shape(path: Path, file_shape, expected: tuple[int, ...]) -> bool:
    """Compare a file's input shape (batch first, dims may be None/-1/str) with the card's.

    Returns whether the batch dimension is dynamic.
    """
    dims = list(file_shape)
    ok = len(dims) == len(expected) + 1
    if ok:
        for got, want in zip(dims[1:], expected):
            if isinstance(got, int) and got >= 0 and got != want:
                ok = False
    if not ok:
        shown = tuple(d if isinstance(d, int) and d >= 0 else "?" for d in dims)
        what = "window" if len(expected) == 1 else "front-end"
        raise ModelError(f"{path}: the model's input {shown} does not match its card's "
                         f"{what} ({', '.join(map(str, ('n',) + expected))})")
    batch = dims[0]
    return not (isinstance(batch, int) and batch > 0)


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if not scale:
        raise ModelError("int8 input tensor has no quantisation scale")
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if y.dtype == np.float32:
        return y
    scale, zero = detail["quantization"]
    if not scale:
        return y.astype(np.float32)
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


class TFLiteRunner(Runner):
    """A .tflite file in ai-edge-litert's or tflite-runtime's Interpreter (same API)."""

    def __init__(self, path: Path, card: ModelCard, threads: int | None, interpreter_class,
                 backend: str):
        super().__init__(path, card, threads)
        self.backend = backend
        kwargs = {"model_path": str(path)}
        if threads:
            kwargs["num_threads"] = int(threads)
        try:
            self._interp = interpreter_class(**kwargs)
            with quiet_native_stderr():
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: {backend} cannot load it ({_first_line(exc)})") from None
        inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{path}: expected one input and one output tensor, found "
                             f"{len(inputs)} and {len(outputs)}")
        detail = inputs[0]
        signature = list(detail.get("shape_signature", detail["shape"]))
        self._dynamic_batch = _check_file_shape(path, [int(d) for d in signature], self.input_shape)
        if detail["dtype"] not in (np.float32, np.int8, np.uint8):
            raise ModelError(f"{path}: input type {np.dtype(detail['dtype']).name} is not supported "
                             "(float32, int8 and uint8 are)")
        self._batch = int(detail["shape"][0])
        self._refresh()

    def _refresh(self) -> None:
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]

    @property
    def io_dtypes(self) -> tuple[str, str]:
        """(input, output) tensor types, e.g. ('int8', 'int8') for a fully int8 file."""
        return np.dtype(self._in["dtype"]).name, np.dtype(self._out["dtype"]).name

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        it = self._interp
        if len(x) != self._batch:  # a dynamic batch only: a batch-1 file is given one window
            it.resize_tensor_input(self._in["index"], [len(x), *self.input_shape])
            with quiet_native_stderr():
                it.allocate_tensors()
            self._batch = len(x)
            self._refresh()
        inp = x if self._in["dtype"] == np.float32 else _quantize(x, self._in)
        it.set_tensor(self._in["index"], inp)
        it.invoke()
        return _dequantize(it.get_tensor(self._out["index"]), self._out)

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._dynamic_batch:
            return self._invoke(x)
        # A batch-1 file (the waveform-in files are): one window per invoke, as the graph was
        # built; its input is never resized.
        return np.concatenate([self._invoke(x[i:i + 1]) for i in range(len(x))])


class OnnxRunner(Runner):
    """An .onnx file in onnxruntime (CPU). The card is the ``edge_genre`` metadata_props entry."""

    backend = ONNXRUNTIME

    def __init__(self, path: Path, threads: int | None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no graph-optimiser chatter on stderr
        try:
            session = ort.InferenceSession(str(path), sess_options=options,
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelError(f"{path}: onnxruntime cannot load it ({_first_line(exc)})") from None
        props = dict(session.get_modelmeta().custom_metadata_map or {})
        super().__init__(path, card_from_onnx_props(props, str(path)), threads)
        self._session = session
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{path}: expected one input and one output, found "
                             f"{len(inputs)} and {len(outputs)}")
        if inputs[0].type != "tensor(float)":
            raise ModelError(f"{path}: input type {inputs[0].type} is not supported "
                             "(float input; int8 ONNX files keep float I/O with QDQ nodes)")
        self._name = inputs[0].name
        dims = [d if isinstance(d, int) else None for d in inputs[0].shape]
        self._dynamic_batch = _check_file_shape(path, dims, self.input_shape)

    @property
    def io_dtypes(self) -> tuple[str, str]:
        return "float32", "float32"

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._dynamic_batch:
            return self._session.run(None, {self._name: x})[0]
        return np.concatenate([self._session.run(None, {self._name: x[i:i + 1]})[0]
                               for i in range(len(x))])


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what native code writes to fd 2 (LiteRT's "INFO: Created TensorFlow Lite XNNPACK
    delegate" on every load; ALSA's and PortAudio's lines for every refused device open);
    errors still arrive as Python exceptions. Process-wide, so kept short."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded, pytest capture): skip
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ----------------------------------------------------------------------------- loading


def _tflite_interpreter(name: str):
    """The Interpreter class of a TFLite backend; BackendError if it cannot run here."""
    if name == LITERT:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise BackendError(f"ai-edge-litert is not usable here ({_first_line(exc)}); "
                               f"{_INSTALL_HINT['.tflite']}") from None
        return Interpreter
    problem = _tflite_runtime_numpy_problem()
    if problem:
        raise BackendError(problem)
    try:
        from tflite_runtime.interpreter import Interpreter
    except (ImportError, AttributeError) as exc:
        raise BackendError(f"tflite-runtime is not usable here ({_first_line(exc)})") from None
    return Interpreter


def load_model(path: str | Path, backend: str = "auto", threads: int | None = None) -> Runner:
    """Load a .tflite or .onnx model file with its card.

    Parameters
    ----------
    path : the model file (made by ``edge-genre export``).
    backend : "auto" (the first usable of FORMAT_BACKENDS for the file's format),
        "ai-edge-litert", "tflite-runtime" or "onnxruntime".
    threads : interpreter threads (TFLite ``num_threads``, onnxruntime ``intra_op_num_threads``);
        None leaves the backend's default.

    Raises ModelError for a missing, corrupt or card-less file and BackendError when no backend
    here can run it.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    fmt = model_format(path)
    candidates = FORMAT_BACKENDS[fmt]
    if backend != "auto":
        if backend not in _ALL:
            raise BackendError(f"unknown backend {backend!r} (choose from {', '.join(_ALL)})")
        if backend not in candidates:
            raise BackendError(f"backend {backend} does not run {fmt} files "
                               f"(use {' or '.join(candidates)})")
        if not _installed(backend):
            raise BackendError(f"backend {backend} is not installed (pip install {backend})")
        chosen = backend
    else:
        usable = [b for b in candidates if _installed(b)]
        if not usable:
            raise BackendError(f"no backend for {fmt} files is installed: {_INSTALL_HINT[fmt]}")
        # Prefer a backend that can actually run here (tflite-runtime with numpy 2 cannot).
        runnable = [b for b in usable if not (b == TFLITE_RUNTIME and _tflite_runtime_numpy_problem())]
        chosen = (runnable or usable)[0]

    if fmt == ".onnx":
        return OnnxRunner(path, threads)
    card = read_card(path)  # ModelError when the file has no card: before any interpreter runs
    interpreter = _tflite_interpreter(chosen)
    return TFLiteRunner(path, card, threads, interpreter, chosen)


def as_runner(model=None, backend: str = "auto", threads: int | None = None) -> Runner:
    """A Runner from a Runner, a path, the name of a shipped model (``"music"``), or None (the
    shipped default model)."""
    if isinstance(model, Runner):
        return model
    from edge_genre.defaults import DEFAULT_STEM, MODELS_DIR, shipped_models, shipped_names

    name = DEFAULT_STEM if model is None else _shipped_name(model, shipped_names())
    if name is not None:
        found = shipped_models(name)
        if backend != "auto":
            found = [p for p in found if backend in FORMAT_BACKENDS[p.suffix.lower()]]
        else:
            here = available_backends()
            found = [p for p in found if any(b in here for b in FORMAT_BACKENDS[p.suffix.lower()])]
        if not found:
            what = "default model" if name == DEFAULT_STEM else f"model {name!r}"
            raise ModelError(f"no shipped {what} usable here in {MODELS_DIR}; "
                             "pass --model PATH (a file made by 'edge-genre export')")
        model = found[0]
    return load_model(model, backend=backend, threads=threads)


def _shipped_name(model, names: list[str]) -> str | None:
    """``model`` as the name of a shipped model, or None when it is a path. An existing file
    wins over a name; a bare word that is neither is refused with the names on offer."""
    text = str(model)
    if Path(text).exists() or "/" in text or "\\" in text or Path(text).suffix:
        return None
    if text in names:
        return text
    raise ModelError(f"no model file or shipped model called {text!r} "
                     f"(shipped: {', '.join(names) or 'none'})")
