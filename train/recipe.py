"""A preset's recipe types: ``TrainConfig`` (how it trains) and ``Preset`` (front-end, window,
network builder and training under one name). Their own module so that the modules that define
presets (``presets``, ``transfer``) both import them and neither imports the other back."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from edge_genre.edge.config import FrontendConfig, WindowConfig
from edge_genre.errors import ModelError
from edge_genre.train.augment import NO_AUGMENTATION, AugmentConfig


@dataclass(frozen=True)
class TrainConfig:
    """How a preset is trained.

    Parameters
    ----------
    epochs : passes over the training windows.
    batch_size : windows per step.
    learning_rate : peak learning rate.
    optimizer : "adam" or "adamw".
    weight_decay : AdamW's decoupled weight decay (ignored by "adam").
    lr_schedule : "constant" or "cosine" (cosine decay to ``min_lr_fraction`` after warm-up).
    warmup_epochs : linear warm-up length for "cosine".
    min_lr_fraction : final learning rate as a fraction of the peak for "cosine".
    label_smoothing : for the categorical cross-entropy.
    patience : stop after this many epochs without a better checkpoint (None: never).
    selection : what picks the best checkpoint: "val_track_accuracy" (ties broken by window
        accuracy, then loss) or "val_accuracy" (window accuracy, as the paper).
    augment : on-the-fly augmentation of the training windows.
    seed : seeds numpy, Python and Keras.
    """

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-4
    optimizer: str = "adam"
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    min_lr_fraction: float = 0.02
    label_smoothing: float = 0.0
    patience: int | None = None
    selection: str = "val_track_accuracy"
    augment: AugmentConfig = field(default_factory=lambda: NO_AUGMENTATION)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw"):
            raise ModelError(f"optimizer {self.optimizer!r} is not 'adam' or 'adamw'")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ModelError(f"lr_schedule {self.lr_schedule!r} is not 'constant' or 'cosine'")
        if self.selection not in ("val_track_accuracy", "val_accuracy"):
            raise ModelError(f"selection {self.selection!r} is not supported")
        if self.epochs < 1 or self.batch_size < 1:
            raise ModelError("epochs and batch_size must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Preset:
    """A named recipe: front-end, windowing, network builder and training settings.

    ``builder(n_labels, input_shape) -> keras.Model``; ``build(n_labels)`` supplies the input
    shape from the front-end. ``fit``, when set, replaces the generic training loop in
    ``fit.fit_model`` (what ``fit.train_run`` and ``evaluate.cross_validate`` call): it is called
    as ``fit(preset, train, valid, epochs=..., progress=..., n_labels=..., cache_dir=...)`` with
    UNNORMALISED ``features.LabelledWindows`` and returns ``(model, history)``; the model must take
    features normalised with ``normalization_stats(train.x)`` (what the card records) and
    ``history`` is a list of per-epoch metric dicts, the model being its best epoch as
    ``fit.best_epoch`` picks it (by ``train.selection``, as the generic loop keeps it).
    """

    name: str
    frontend: FrontendConfig
    window: WindowConfig
    train: TrainConfig
    builder: Callable[[int, tuple], Any]
    description: str = ""
    fit: Callable | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.frontend.feature_shape(self.window.window_samples(self.frontend))

    def build(self, n_labels: int):
        """A fresh, uncompiled Keras model for ``n_labels`` classes."""
        return self.builder(int(n_labels), self.input_shape)

    def with_train(self, **changes) -> "Preset":
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes))
