"""``edge-genre tag --engine ray``: the same per-track function as a Ray Data pipeline.

The tracks left after the resume filter become ``ray.data.from_items`` (one item per track:
its index and path), ``map_batches`` runs ``RayClassifier`` (a callable class: each actor
loads the model once, one interpreter thread, one CPU) over them with ``concurrency`` =
workers, and the driver takes the classified tracks back as they finish and writes them to
the output with the same writer and the same resume rule as the local engine.

Where: an existing cluster (``address``: ``ray://HOST:10001`` for Ray Client, ``HOST:6379`` or
``auto`` when the driver runs on a node), or a local instance (``ray.init(num_cpus=workers,
include_dashboard=False)``) when no address is given. On a cluster every node needs
edge-genre with its ``edge`` extra installed and the library at the same path (a shared
folder); the model file is sent to the actors with the task, so ``--model`` may name a file
that only the driver has (a local instance reads it from its path).

The path list is in the driver's memory (Ray Data needs the items); the rows are not. Ray is
imported inside these functions: ``edge_genre.edge`` stays light, and Ray comes with the
``scale`` extra, never with ``edge``.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from edge_genre.errors import EdgeGenreError


def require() -> None:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise EdgeGenreError("--engine ray needs Ray Data: pip install 'ray[data]' "
                             "(or: pip install 'edge-genre[scale]')") from None


class RayClassifier:
    """Ray Data callable class: one loaded model per actor; a batch of paths in, one JSON text
    of ``track.track_fields`` per path out (JSON keeps the floats exact and the None cells
    out of Ray's column typing)."""

    def __init__(self, model_path: str, model_bytes: bytes | None, backend: str, threads: int):
        from edge_genre.edge.classifier import Classifier

        if model_bytes is not None:  # a cluster: the driver's file, written where this actor runs
            import tempfile

            self._dir = tempfile.TemporaryDirectory(prefix="edge-genre-model-")
            path = Path(self._dir.name) / Path(model_path).name
            path.write_bytes(model_bytes)
            model_path = str(path)
        self.clf = Classifier(model_path, backend=backend, threads=threads)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        from edge_genre.edge.track import track_fields

        fields = [json.dumps(track_fields(self.clf, str(p)), allow_nan=False)
                  for p in batch["path"]]
        return {"i": np.asarray(batch["i"]), "fields": np.asarray(fields, dtype=object)}


def _quiet_ray(show_progress: bool) -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = show_progress
    ctx.enable_operator_progress_bars = show_progress
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    for name in ("ray", "ray.data", "ray._private"):
        logging.getLogger(name).setLevel(logging.ERROR)


def classify(tracks: Iterable, info, workers: int | None = None, address: str | None = None,
             threads: int = 1, show_progress: bool = False) -> Iterator[tuple]:
    """(track, fields) for each track (``tag_rows.Track``), as Ray finishes them.

    ``info``: ``tag_rows.ModelInfo`` (the model file is read here and sent to the actors).
    ``workers``: actors (default: the local instance's cores, or the cluster's CPUs)."""
    require()
    import ray
    import ray.data

    from edge_genre.edge.track import usable_cores

    tracks = list(tracks)
    if not tracks:
        return
    started = False
    if not ray.is_initialized():
        env = {"env_vars": {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                              "MKL_NUM_THREADS")}}
        common = dict(include_dashboard=False, logging_level=logging.ERROR,
                      log_to_driver=show_progress, runtime_env=env)
        try:
            if address:
                ray.init(address=address, **common)
            else:
                ray.init(num_cpus=workers or usable_cores(), **common)
        except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ...
            where = address or "a local instance"
            raise EdgeGenreError(f"cannot start Ray on {where}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                                 ) from None
        started = True
    try:
        _quiet_ray(show_progress)
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        workers = max(1, min(int(workers), len(tracks)))
        # A local instance shares this machine's files; a cluster gets the model file's bytes.
        model_bytes = Path(info.path).read_bytes() if address else None
        ds = ray.data.from_items([{"i": i, "path": t.path} for i, t in enumerate(tracks)])
        mapped = ds.map_batches(
            RayClassifier,
            fn_constructor_kwargs={"model_path": info.path,
                                   "model_bytes": model_bytes, "backend": info.backend,
                                   "threads": int(threads)},
            batch_size=1, batch_format="numpy", concurrency=workers, num_cpus=1)
        batches = iter(mapped.iter_batches(batch_size=None, batch_format="numpy"))
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - RayTaskError, ActorDiedError, ...
                text = str(exc).strip().splitlines()
                raise EdgeGenreError(
                    "the Ray pipeline stopped: "
                    f"{text[0] if text else type(exc).__name__}; the rows written so far are "
                    "kept: run the same command again to resume") from None
            for i, fields in zip(batch["i"], batch["fields"]):
                yield tracks[int(i)], json.loads(fields)
    finally:
        if started:
            ray.shutdown()

