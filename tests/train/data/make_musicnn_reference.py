"""Make ``musicnn_reference.npz``: the ORIGINAL musicnn MSD network's outputs on real GTZAN audio.

Not part of the test suite (pytest collects ``test_*.py`` only); run once, by hand, in a throwaway
environment (not the project's venv: it needs ``tf_keras`` for ``tf.compat.v1.layers``)::

    python3 -m venv /tmp/musicnn-ref
    /tmp/musicnn-ref/bin/pip install "tensorflow-cpu==2.21.0" "librosa==0.11.0"
    /tmp/musicnn-ref/bin/pip install --no-deps "tf-keras==2.21.0"
    /tmp/musicnn-ref/bin/python tests/train/data/make_musicnn_reference.py \\
        --musicnn /tmp/musicnn/pkg --gtzan ../shared/data/gtzan-mini/genres

(TensorFlow 2.21 was the only 2.x on the registry; ``TF_USE_LEGACY_KERAS=1`` and tf_keras give
its ``tf.compat.v1.layers`` back.) ``--musicnn`` is the unpacked PyPI wheel musicnn 0.1.0
(``unzip musicnn-0.1.0-py3-none-any.whl``); the musicnn package is imported from there, never
installed (it pins numpy<1.17).

What it does, as musicnn's ``extractor.extractor``: builds ``models.define_model`` for
'MSD_musicnn' in a TF1 graph (eager off, placeholder [None, n_frames, 96], ``is_training`` False),
restores the checkpoint with ``Saver.restore(sess, '<pkg>/musicnn/MSD_musicnn/')``, and computes
the input as ``extractor.batch_data`` does (librosa.load at 16 kHz, melspectrogram, float16 cast,
log10(10000 x + 1), patches without overlap) with ONE deliberate change: the log is taken in
float32 on the float16-rounded mel. ``batch_data`` takes it in float16 (numpy keeps
``10000 * float16_array`` in float16, under numpy 1.x's value-based casting as under numpy 2), so
every mel value above 65504 / 10000 = 6.55 becomes ``inf``: 0.01-0.3 % of the bins of these
loud-ish GTZAN excerpts, and the original's outputs on such a patch are a constant, meaningless
taggram (rock, electronic, pop, ...). ``overflowN`` records how many bins of each patch
``batch_data`` itself turns into ``inf``. For three excerpts it keeps two 187-frame patches
(musicnn's 3 s) and one 251-frame patch (our 4 s window; a second graph with that n_frames), and
saves, per length N in (187, 251):

- ``xN`` (patches, N, 96) float32: the network's input, musicnn's units;
- ``logitsN``, ``taggramN`` (50), ``penultimateN`` (200), ``max_poolN``, ``mean_poolN`` (753):
  the original's outputs, float32;
- ``filesN`` (track ids) and ``offsetsN`` (first frame of each patch in the whole-file
  spectrogram, frames of 256 samples at 16 kHz), ``overflowN`` (see above);

plus ``versions`` (tensorflow, librosa, numpy used).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

#: (track id, patch indices of the 187-frame batch, patch index of the 251-frame batch)
EXCERPTS = (("jazz.00002", (2, 4), 2), ("metal.00002", (2, 4), 2),
            ("classical.00000", (2, 4), 2))
HERE = Path(__file__).resolve().parent


def batch_data_float32_log(audio_file: str, n_frames: int, overlap: int, config) -> np.ndarray:
    """musicnn's ``extractor.batch_data``, but with the log10 in float32 (see the docstring)."""
    import librosa

    audio, sr = librosa.load(audio_file, sr=config.SR)
    audio_rep = librosa.feature.melspectrogram(y=audio, sr=sr, hop_length=config.FFT_HOP,
                                               n_fft=config.FFT_SIZE, n_mels=config.N_MELS).T
    audio_rep = audio_rep.astype(np.float16).astype(np.float32)
    audio_rep = np.log10(10000 * audio_rep + 1)
    last_frame = audio_rep.shape[0] - n_frames + 1
    return np.stack([audio_rep[t:t + n_frames] for t in range(0, last_frame, overlap)])


def run(musicnn_pkg: Path, gtzan: Path, out: Path) -> None:
    sys.path.insert(0, str(musicnn_pkg))
    import librosa
    import tensorflow as tf
    from musicnn import extractor, models  # extractor disables eager execution
    from musicnn import configuration as config

    tf.compat.v1.disable_eager_execution()
    result: dict[str, np.ndarray] = {}
    for n_frames in (187, 251):
        tf.compat.v1.reset_default_graph()
        with tf.name_scope("model"):
            x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
            is_training = tf.compat.v1.placeholder(tf.bool)
            (y, timbral, temporal, cnn1, cnn2, cnn3, mean_pool, max_pool,
             penultimate) = models.define_model(x, is_training, "MSD_musicnn",
                                                len(config.MSD_LABELS))
            normalized_y = tf.nn.sigmoid(y)
        session_cfg = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=2,
                                               inter_op_parallelism_threads=1)
        with tf.compat.v1.Session(config=session_cfg) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().restore(
                sess, str(musicnn_pkg / "musicnn" / "MSD_musicnn") + "/")
            patches, files, offsets, overflow = [], [], [], []
            for track, idx187, idx251 in EXCERPTS:
                path = str(gtzan / track.split(".")[0] / f"{track}.wav")
                original, _ = extractor.batch_data(path, n_frames, n_frames)  # float16 log
                batch = batch_data_float32_log(path, n_frames, n_frames, config)
                finite = np.isfinite(original)
                # Elsewhere the two agree to float16 rounding (1 ulp = 0.004 at 4).
                assert np.abs(original[finite] - batch[finite]).max() < 5e-3
                for i in (idx187 if n_frames == 187 else (idx251,)):
                    patches.append(batch[i])
                    files.append(track)
                    offsets.append(i * n_frames)
                    overflow.append(int((~finite[i]).sum()))
            xs = np.stack(patches)
            outs = sess.run([y, normalized_y, penultimate, max_pool, mean_pool],
                            feed_dict={x: xs, is_training: False})
        n = str(n_frames)
        result["x" + n] = xs
        result["overflow" + n] = np.array(overflow, dtype=np.int64)
        for key, value in zip(("logits", "taggram", "penultimate", "max_pool", "mean_pool"),
                              outs):
            result[key + n] = np.asarray(value, dtype=np.float32)
        result["files" + n] = np.array(files)
        result["offsets" + n] = np.array(offsets, dtype=np.int64)
        for f, o, v, t in zip(files, offsets, overflow, outs[1]):
            top = [config.MSD_LABELS[j] for j in np.argsort(-t)[:3]]
            print(f"{n_frames} frames, {f} @ {o}: {top} ({v} bins inf in batch_data)")
    result["versions"] = np.array([f"tensorflow {tf.__version__}",
                                   f"librosa {librosa.__version__}",
                                   f"numpy {np.__version__}"])
    with open(out, "wb") as f:
        np.savez_compressed(f, **result)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--musicnn", type=Path, default=Path("/tmp/musicnn/pkg"),
                        help="the unpacked musicnn 0.1.0 wheel")
    parser.add_argument("--gtzan", type=Path,
                        default=HERE.parents[2].parent / "shared" / "data" / "gtzan-mini"
                        / "genres")
    parser.add_argument("--out", type=Path, default=HERE / "musicnn_reference.npz")
    args = parser.parse_args()
    run(args.musicnn, args.gtzan, args.out)


if __name__ == "__main__":
    main()
