"""The classic baseline: MFCC statistics + SVM (Tzanetakis & Cook 2002 style), on the same
artist-grouped folds as the networks, so "beats the baseline" means something.

A track is summarised by the mean and standard deviation of 20 MFCCs over its frames (librosa at
22050 Hz, n_fft 2048, hop 512); an RBF SVM on standardised features classifies it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from edge_genre.errors import AudioError
from edge_genre.train.data import Dataset, Track
from edge_genre.train.features import FeatureCache, track_audio
from edge_genre.train.splits import cv_folds

log = logging.getLogger("edge_genre")


@dataclass(frozen=True)
class BaselineConfig:
    sample_rate: int = 22050
    n_mfcc: int = 20
    n_fft: int = 2048
    hop_length: int = 512
    svm_c: float = 10.0


def track_mfcc_stats(track: Track, cfg: BaselineConfig, cache: FeatureCache | None = None
                     ) -> np.ndarray:
    import librosa

    key = f"mfcc{cfg.n_mfcc}-{cfg.sample_rate}-{cfg.n_fft}-{cfg.hop_length}"
    cached = cache.get("mfcc", track.path, key) if cache else None
    if cached is not None:
        return cached
    y = track_audio(track, cfg.sample_rate, cache)
    m = librosa.feature.mfcc(y=y, sr=cfg.sample_rate, n_mfcc=cfg.n_mfcc, n_fft=cfg.n_fft,
                             hop_length=cfg.hop_length)
    stats = np.concatenate([m.mean(axis=1), m.std(axis=1)]).astype(np.float32)
    if cache:
        cache.put("mfcc", track.path, key, stats)
    return stats


def make_classifier(cfg: BaselineConfig):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), SVC(C=cfg.svm_c, kernel="rbf", gamma="scale"))


def cross_validate(ds: Dataset, k: int = 5, seed: int = 0, cfg: BaselineConfig = BaselineConfig(),
                   cache_dir=None) -> dict:
    """Track accuracy of MFCC+SVM on ``cv_folds(ds, k, seed)`` (train+valid tracks fit the SVM)."""
    cache = FeatureCache(cache_dir)
    feats: dict[str, np.ndarray] = {}
    for t in ds.tracks:
        try:
            feats[t.track_id] = track_mfcc_stats(t, cfg, cache)
        except AudioError as exc:
            log.warning("skipping %s", exc)
    per_fold, folds_out = [], []
    for fold in cv_folds(ds, k, seed):
        fit = [t for t in fold.train + fold.valid if t.track_id in feats]
        test = [t for t in fold.test if t.track_id in feats]
        clf = make_classifier(cfg)
        clf.fit(np.stack([feats[t.track_id] for t in fit]), [t.label for t in fit])
        pred = clf.predict(np.stack([feats[t.track_id] for t in test]))
        per_fold.append(float(np.mean(pred == np.array([t.label for t in test]))))
        folds_out.append({"fold": fold.index + 1, "test_ids": [t.track_id for t in test],
                          "track_accuracy": per_fold[-1]})
    return {"method": "MFCC(20) mean+std + RBF SVM", "k": k, "seed": seed,
            "track_accuracy_per_fold": per_fold, "per_fold": folds_out,
            "track_accuracy_mean": float(np.mean(per_fold)),
            "track_accuracy_std": float(np.std(per_fold))}
