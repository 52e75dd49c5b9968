"""Self-distil a pretrained body toward room robustness: a trainable copy hears room copies, regresses the clean teacher.

Three bodies (``RobustConfig.body``): musicnn (below); YAMNet, the shipped default's body; and
the student's (YAMNet's first 6 layers on frames every 20 ms). For YAMNet the target is its own
1024-d embedding (mean-pooled last map) and 521 AudioSet logits of the clean crop; for the
student, YAMNet's mean-pooled layer-6 map (256) of the clean crop at 20 ms. YAMNet has no batch
norm (folded into its biases), and at 287.5 M MACs a window its 500 steps fit on a 2-core CPU in
about half an hour (the student's in 15 minutes, mostly making the room copies), where musicnn's
(1.9 G MACs, batch norm) take an accelerator.

A body can also learn from another network (``RobustConfig.teacher``): with ``--teacher
musicnn`` the student's (or YAMNet's) body hears room copies and regresses what the room-robust
musicnn says of the clean crop (its penultimate layer and tag logits, standardised), through a
trainable linear projection of its pooled output that starts as the least-squares one and is
dropped afterwards. musicnn learnt genre-like tags from a million songs; the body learns to hear
that in its own, cheaper way. musicnn's 1.9 G MACs a crop are too slow to run every step on a
CPU, so its targets are computed once, for crops starting on a grid (0.96 s: a whole number of
both front-ends' hops) of every track, and training crops are drawn from that grid.
``mixes`` adds two-track mixes of tracks of different genres as further tracks, each with its
own room copies and the teacher's view of the mix: inputs no single excerpt gives.

The musicnn job:

A copy of musicnn's MSD network (every weight training, its batch norms in inference mode so
their statistics stay frozen) hears a far-field room copy of a random 4 s crop (251 frames) and
regresses what the frozen original says about the CLEAN crop: its 200-d penultimate layer and 50
tag logits, each dimension standardised by the teacher's own mean and spread over clean crops
(MSE, Adam). The clean crop itself is one of the versions the copy hears, so it keeps what the
teacher knows where there is no room. Measured outside this repository on a lent H200, 450-550
steps of 128 crops (about 3 minutes in bf16) made musicnn hold up through a room microphone;
on a 2-core CPU the same steps take about 30 hours, hence a job that waits ready for an
accelerator (``benchmarks/accelerator/``).

Data (``robust_data.py``): each track's whole 30 s is decoded once (16 kHz), ``copies`` room
copies of it are made once (``roomsim.augmenter``: far-field rooms from a cached
impulse-response bank, so no pyroomacoustics is needed where the job runs), and the front-end
(``edge.frontend``, numpy) turns the clean track and each copy into musicnn's log-mel, all in
worker processes before Keras is imported. A step then only cuts crops (the same frames from the
clean version for the target) and runs the networks.

Output (``RobustConfig.out``): ``musicnn-robust.npz``, the copy's weights in the layout of
``edge_genre/models/musicnn-msd.npz`` (``musicnn.read_weights`` reads it; the ``music`` body
takes it through ``EDGE_GENRE_MUSICNN_WEIGHTS``; a YAMNet body writes ``yamnet-robust.npz`` or,
taught by musicnn, ``yamnet-musicnn.npz``, the student ``student-...``), and
``robust-log.json`` (config, backend, device, losses, seconds). Both are written every
``checkpoint_every`` steps and when ``max_seconds`` runs out, so a run cut short still returns
weights.

Nothing here imports TensorFlow or librosa: it runs on Keras 3 over JAX or PyTorch
(``KERAS_BACKEND``; JAX when unset).
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_genre.errors import DataError
from edge_genre.train.robust_data import (BODIES, ROOM_METHOD, STUDENT_DEPTH, Crops, GridCrops,
                                          get_body, grid_starts, prepare)

LOG_OUT = "robust-log.json"


@dataclass(frozen=True)
class RobustConfig:
    """The self-distillation job; the defaults are the H200 experiment's."""

    data: str  # a pack (``train/pack.py``) or a dataset folder
    out: str  # output folder
    body: str = "musicnn"  # which body learns (``BODIES``)
    steps: int = 500
    batch: int = 128
    # Crops per forward pass; the step's gradient is accumulated over batch / micro_batch passes
    # (same update). XLA on a CPU wants 34 GB for one pass of 128; default: the whole batch.
    micro_batch: int | None = None
    lr: float = 1e-4
    copies: int = 8  # room copies per track (the clean track is heard too)
    checkpoint_every: int = 50
    max_seconds: float | None = None  # whole-job budget (data included); stops cleanly
    precision: str = "bf16"  # "bf16" (mixed bfloat16) or "fp32"
    room_cache: str | None = None  # impulse-response bank for roomsim.augmenter
    weights: str | None = None  # the teacher's weights (default: musicnn's shipped MSD
    # weights, YAMNet's TFLite file)
    stats_crops: int = 1024  # clean crops the target's mean and spread are taken over
    eval_crops: int = 256  # fixed room (and clean) crops scored at each checkpoint
    limit: int | None = None  # the first N tracks of each genre (short runs)
    workers: int | None = None  # data-preparation processes (default: all cores)
    seed: int = 0
    # Cross-distillation: "musicnn" makes a YAMNet or student body learn the (room-robust)
    # musicnn's view of the clean crop, where genre knowledge from music lives; None: the body's
    # own (self-distillation). ``weights`` is then musicnn's, ``start`` the body's first weights.
    teacher: str | None = None
    start: str | None = None  # default: YAMNet's TFLite file
    grid: float = 0.96  # crops start on this grid (s, a multiple of 80 ms): the teacher's
    # targets of every track's grid are computed once, before training
    mixes: int = 0  # two-track mixes added as further tracks, each with its own room copies


def teacher_targets(teach, inputs: list[np.ndarray], t_step: int, crop: int, starts: int,
                    batch: int) -> np.ndarray:
    """The teacher's vectors of every track's grid crops, (tracks, starts, dims)."""
    idx = (np.arange(starts) * t_step)[:, None] + np.arange(crop)[None, :]
    # Several tracks a call (a track's few starts alone would be padded to a whole batch).
    per_batch = max(1, 8 * batch // starts)
    rows = [_batches(teach, np.concatenate([x[idx] for x in inputs[i:i + per_batch]])[..., None],
                     batch) for i in range(0, len(inputs), per_batch)]
    return np.concatenate(rows).reshape(len(inputs), starts, -1).astype(np.float32)


# ----------------------------------------------------------------------------- networks


def backend_device(keras) -> str:
    """The device the backend computes on, in words."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            d = jax.devices()[0]
            if d.platform != "cpu":
                return f"{d.platform}: {getattr(d, 'device_kind', d)}"
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return f"cuda: {torch.cuda.get_device_name(0)}"
    except Exception as exc:  # noqa: BLE001 - a report line, never a failure
        return f"unknown ({type(exc).__name__})"
    return f"cpu: {cpu_name()}"


def cpu_name() -> str:
    """The CPU's model name (Linux), else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def read_teacher_weights(body: str, path: str | None, cross: bool = False):
    """The teacher's weights: ``path``, else ``default_teacher_path(body, cross)``."""
    path = path or default_teacher_path(body, cross)
    if body in ("yamnet", "student"):
        from edge_genre.train import yamnet as Y

        return Y.read_weights(path)
    from edge_genre.train import musicnn as M

    return M.read_weights(path)


def default_teacher_path(body: str, cross: bool = False) -> Path:
    """musicnn's shipped MSD weights (teaching another body: its shipped room-robust copy), or
    YAMNet's TFLite file (for YAMNet and the student)."""
    if body in ("yamnet", "student"):
        from edge_genre.train.backbones import default_yamnet_path

        return default_yamnet_path()
    from edge_genre.train import musicnn as M

    return M.robust_weights_path() if cross else M.weights_path()


TARGETS = {"musicnn": "teacher's [penultimate (200), tag logits (50)] of the clean crop, "
                      "standardised per dimension",
           "yamnet": "teacher's [embedding (1024), AudioSet logits (521)] of the clean crop, "
                     "standardised per dimension",
           "student": "teacher's mean-pooled layer-6 map (256) of the clean crop, at 20 ms, "
                      "standardised per dimension"}


def build_network(body: str, weights, name: str):
    """The body on one crop, whose outputs end with the target's parts: musicnn
    (x, penultimate 200, tag logits 50); YAMNet (embedding 1024, AudioSet logits 521); the
    student (YAMNet's first 6 layers, mean-pooled: 256)."""
    if body in ("yamnet", "student"):
        import keras
        from keras import layers as L

        from edge_genre.train import yamnet as Y

        conv = Y.build_backbone(weights, BODIES[body].crop_frames, name=f"{name}_body",
                                until=STUDENT_DEPTH if body == "student" else None)
        pooled = L.GlobalAveragePooling2D(name="embedding")(conv.output)
        if body == "student":
            return keras.Model(conv.input, [pooled], name=name)
        dense = L.Dense(Y.N_CLASSES, name="logits")
        logits = dense(pooled)
        dense.set_weights([weights.logits_kernel, weights.logits_bias])
        return keras.Model(conv.input, [pooled, logits], name=name)
    from edge_genre.train import musicnn as M

    return M.build_backbone(weights, BODIES[body].crop_frames, name=name)


def target_parts(body: str, outputs) -> list:
    """The target's parts among ``build_network``'s outputs."""
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]  # a one-output network
    return list(outputs)[1:] if body == "musicnn" else list(outputs)


def build_student(keras, body, mean: np.ndarray, std: np.ndarray, body_name: str = "musicnn",
                  projection: int | None = None):
    """The trainable copy: ``body`` always in inference mode (musicnn: frozen batch-norm
    statistics, its gamma and beta still train), output the target's parts standardised as the
    targets. ``projection``: the parts go through a trainable Dense of that width, which says
    the standardised target itself (a teacher of another kind; the Dense is not kept)."""
    ops = keras.ops

    class Student(keras.Model):
        def __init__(self):
            super().__init__(name=f"robust_{body_name}")
            self.body = body
            self.projection = (keras.layers.Dense(projection, name="projection")
                               if projection else None)

        def call(self, x, training=None):
            parts = target_parts(body_name, self.body(x, training=False))
            y = ops.cast(ops.concatenate(parts, axis=-1), "float32")
            if self.projection is not None:
                return self.projection(y)
            return (y - ops.convert_to_tensor(mean)) / ops.convert_to_tensor(std)

    return Student()


def fit_projection(student, features: np.ndarray, target: np.ndarray, ridge: float = 1e-2) -> None:
    """Set the student's projection to the ridge regression of ``target`` on ``features``
    (ridge relative to the features' mean variance)."""
    mu = features.mean(0)
    x = features - mu
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += ridge * float(np.trace(gram)) / len(gram)
    w = np.linalg.solve(gram, x.T @ target)
    if not student.projection.built:
        student.projection.build((None, features.shape[1]))
    student.projection.set_weights([w.astype(np.float32), (target.mean(0) - mu @ w)
                                    .astype(np.float32)])


def save_body(body, body_name: str, path: Path, base=None) -> None:
    """The trained copy's weights, in the layout its reader takes (``musicnn.read_weights``,
    ``yamnet.read_weights``), float32. ``base``: the teacher's weights, for what a partial body
    (the student's 6 layers) does not hold."""
    if body_name in ("yamnet", "student"):
        from edge_genre.train import yamnet as Y

        # The body's layers are the network's own (it is built on the body's output).
        Y.save_weights(Y.weights_from_model(body, base), path)
    else:
        from edge_genre.train import musicnn as M

        M.save_weights(body_weights(body), path)


def body_weights(body):
    """The body's weights as ``musicnn.MusicnnWeights`` (float32, the shipped file's layout)."""
    from edge_genre.train import musicnn as M

    arrays = {}
    for port, _ in M.TF1_NAMES:
        params = M.BN_PARAMS if M._is_bn(port) else M.DENSE_PARAMS
        for p, w in zip(params, body.get_layer(port).get_weights()):
            arrays[f"{port}/{p}"] = np.asarray(w, np.float32)
    return M._checked(arrays, "the trained copy")


# ----------------------------------------------------------------------------- the job


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


def _batches(fn, x: np.ndarray, batch: int) -> np.ndarray:
    """``fn`` over ``x`` in batches of exactly ``batch`` (the last one padded), so a jitted
    backend compiles one shape only."""
    out = []
    for i in range(0, len(x), batch):
        part = x[i:i + batch]
        n = len(part)
        if n < batch:
            part = np.concatenate([part, np.repeat(part[-1:], batch - n, axis=0)])
        out.append(np.asarray(fn(part), np.float32)[:n])
    return np.concatenate(out)


def _teacher_fn(teacher, body: str = "musicnn"):
    def vectors(x):
        parts = target_parts(body, teacher.predict_on_batch(x))
        return np.concatenate([np.asarray(p, np.float32) for p in parts], -1)
    return vectors


def run(cfg: RobustConfig, log=print) -> dict:
    """Run the job; returns the log it wrote. DataError for unusable data."""
    from edge_genre.train.pack import load_dataset

    b = get_body(cfg.body)
    t_start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.steps < 0 or cfg.batch < 1 or cfg.copies < 0 or cfg.checkpoint_every < 1:
        raise DataError("steps >= 0, batch >= 1, copies >= 0 and checkpoint-every >= 1, please")
    if cfg.precision not in ("bf16", "fp32"):
        raise DataError(f"precision is bf16 or fp32, not {cfg.precision!r}")
    micro = min(int(cfg.micro_batch or cfg.batch), cfg.batch)
    if micro < 1 or cfg.batch % micro:
        raise DataError(f"micro-batch {cfg.micro_batch} must divide the batch {cfg.batch}")
    accumulate = cfg.batch // micro
    cross = cfg.teacher is not None and cfg.teacher != b.name
    if cross and (cfg.teacher != "musicnn" or b.name == "musicnn"):
        raise DataError("a teacher of another kind is musicnn, for a yamnet or student body")
    if cfg.mixes < 0:
        raise DataError("mixes >= 0, please")
    ds = load_dataset(cfg.data, cfg.limit)
    teacher_weights = read_teacher_weights(cfg.teacher or b.name, cfg.weights, cross)
    start_weights = read_teacher_weights(b.name, cfg.start) if cross else teacher_weights
    versions, skipped, taught = prepare(ds.tracks, cfg.copies, cfg.seed, cfg.workers,
                                        cfg.room_cache, b.name, cfg.teacher if cross else None,
                                        cfg.mixes)
    if not versions:
        raise DataError(f"no usable track in {cfg.data}")
    if cross:
        tb = get_body(cfg.teacher)
        s_step, t_step, starts = grid_starts(cfg.grid, b, tb, versions[0].shape[1],
                                             taught[0].shape[0])
    data_seconds = time.perf_counter() - t_start
    log(f"robust-teacher ({b.name}): {len(versions)} tracks x {1 + cfg.copies} versions ready in "
        f"{data_seconds:.0f} s ({len(skipped)} skipped)")

    os.environ.setdefault("KERAS_BACKEND", "jax")
    from edge_genre.train.fit import setup_keras

    keras = setup_keras(cfg.seed)
    # The teacher is built before the policy changes: its targets stay float32.
    teacher_name = cfg.teacher if cross else b.name
    teacher = build_network(teacher_name, teacher_weights, "teacher")
    if cfg.precision == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        body = build_network(b.name, start_weights, b.name)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    rng = np.random.default_rng(cfg.seed)
    teach = _teacher_fn(teacher, teacher_name)
    eval_rng = np.random.default_rng(cfg.seed + 1)
    if cross:  # the targets of every grid crop, once: the teacher is the costly network
        t0 = time.perf_counter()
        table = teacher_targets(teach, taught, t_step, tb.crop_frames, starts, micro)
        del taught
        vecs = table.reshape(-1, table.shape[-1])
        log(f"teacher ({cfg.teacher}): {vecs.shape[0]} grid crops in "
            f"{time.perf_counter() - t0:.0f} s")
        crops = GridCrops(versions, table, rng, b.crop_frames, s_step)
        fixed = GridCrops(versions, table, eval_rng, b.crop_frames, s_step)

        def sample(c, n, room_only=False):
            return c.draw(n, room_only)
    else:
        crops = Crops(versions, rng, b.crop_frames)
        fixed = Crops(versions, eval_rng, b.crop_frames)

        def sample(c, n, room_only=False):
            heard, clean = c.draw(n, room_only)
            return heard, _batches(teach, clean, micro)
        _, vecs = sample(crops, max(2, cfg.stats_crops))
    mean = vecs.mean(0).astype(np.float32)
    # A floor relative to the typical spread: a dimension that barely moves over the sampled
    # crops (few crops in a short run) must not dominate the loss.
    std = vecs.std(0)
    std = np.maximum(std, max(1e-3, 0.1 * float(np.median(std)))).astype(np.float32)
    del vecs
    if cross:
        eval_room, eval_target, eval_clean = fixed.draw(max(1, cfg.eval_crops),
                                                        room_only=cfg.copies > 0, clean=True)
    else:
        eval_room, eval_clean = fixed.draw(max(1, cfg.eval_crops), room_only=cfg.copies > 0)
        eval_target = _batches(teach, eval_clean, micro)
    eval_target = (eval_target - mean) / std

    written = f"{b.name}-{cfg.teacher}.npz" if cross else b.weights_out
    student = build_student(keras, body, mean, std, b.name,
                            projection=len(mean) if cross else None)
    if cross:  # the projection starts as the least-squares one (the body's linear probe)
        heard, target = crops.draw(max(2, cfg.stats_crops))
        fit_projection(student, _batches(_teacher_fn(body, b.name), heard, micro),
                       (target - mean) / std)
    # Keras averages the accumulated gradients and counts Adam's steps in whole batches.
    student.compile(optimizer=keras.optimizers.Adam(
        cfg.lr, gradient_accumulation_steps=accumulate if accumulate > 1 else None), loss="mse")

    def evaluate() -> dict:
        res = {}
        for name, x in (("room", eval_room), ("clean", eval_clean)):
            pred = _batches(student.predict_on_batch, x, micro)
            res[f"eval_{name}_mse"] = float(np.mean((pred - eval_target) ** 2))
        return res

    record = {"job": "robust-teacher", "config": asdict(cfg), "backend": keras.backend.backend(),
              "device": backend_device(keras), "keras": keras.__version__,
              "python": platform.python_version(), "cpus": os.cpu_count(),
              "teacher": teacher_name,
              "teacher_weights": str(cfg.weights or default_teacher_path(teacher_name, cross)),
              "start_weights": str(cfg.start or default_teacher_path(b.name)) if cross else None,
              "tracks": len(versions), "skipped": skipped, "rooms": ROOM_METHOD,
              "frames_per_track": int(versions[0].shape[1]),
              "data_seconds": round(data_seconds, 1),
              "target": TARGETS[teacher_name] + (
                  f", on a {cfg.grid} s grid of starts ({starts} a track), through a trainable "
                  f"projection of the body's output" if cross else ""),
              "target_mean_std": [float(mean.mean()), float(std.mean())],
              "eval": f"{len(eval_room)} fixed random crops of the same tracks (none is held "
                      "out): MSE of the copy to the standardised clean target, hearing a room "
                      "copy (eval_room_mse) and the clean crop (eval_clean_mse)",
              "eval_before": evaluate(), "evals": [], "losses": [], "step_seconds": [],
              "steps_done": 0, "stopped_by": None}

    def checkpoint(final: bool = False) -> None:
        save_body(body, b.name, out / (written + ".tmp"), start_weights)
        (out / (written + ".tmp")).replace(out / written)
        secs = record["step_seconds"][1:] or record["step_seconds"]  # without the compile step
        record.update(seconds_per_step=round(float(np.median(secs)), 4) if secs else None,
                      first_step_seconds=record["step_seconds"][0] if secs else None,
                      wall_seconds=round(time.perf_counter() - t_start, 1), final=final)
        _write_json(out / LOG_OUT, record)

    # Reserve for the last checkpoint and evaluation: a few steps' time, at least 10 s.
    stopped = "steps"
    for step in range(1, cfg.steps + 1):
        if cfg.max_seconds is not None:
            last = record["step_seconds"][-1] if record["step_seconds"] else 0.0
            if time.perf_counter() - t_start + 3 * last + 10 > cfg.max_seconds:
                stopped = "max_seconds"
                break
        t0 = time.perf_counter()  # the whole step: crops, the teacher's targets, the update
        heard, target = sample(crops, cfg.batch)
        target = (target - mean) / std
        losses = []
        for i in range(0, cfg.batch, micro):
            res = student.train_on_batch(heard[i:i + micro], target[i:i + micro])
            losses.append(float(res[0] if isinstance(res, (list, tuple)) else res))
        loss = float(np.mean(losses))
        record["step_seconds"].append(round(time.perf_counter() - t0, 4))
        record["losses"].append(round(loss, 5))
        record["steps_done"] = step
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            record["evals"].append({"step": step, **evaluate()})
            checkpoint()
            log(f"step {step}: loss {np.mean(record['losses'][-cfg.checkpoint_every:]):.4f}, "
                f"{record['evals'][-1]}, {time.perf_counter() - t_start:.0f} s")
    record["stopped_by"] = stopped
    record["evals"].append({"step": record["steps_done"], **evaluate()})
    checkpoint(final=True)
    log(f"robust-teacher: {record['steps_done']} steps ({stopped}), before {record['eval_before']}"
        f", after {record['evals'][-1]}; wrote {out / written} and {out / LOG_OUT}")
    return record

