"""A Raspberry Pi 4 / 5 latency ESTIMATE from a model's MACs and published per-core throughput.

This is arithmetic, not a measurement: ``MACs per window / (MACs per second of one Pi core)``.
The per-core rate is derived from published single-thread MobileNet v1 timings (sources below),
so it carries that network's op mix and the fp32 XNNPACK kernels; small models with many cheap
layers run below that rate (fixed per-op overhead), int8 kernels on NEON usually above it. Run
``edge-genre bench`` on the Pi for real figures.
"""
from __future__ import annotations

from dataclasses import dataclass

#: MobileNet v1 1.0 / 224: 569 million multiply-adds (Howard et al. 2017, "MobileNets", Table 8).
MOBILENET_V1_MACS = 569e6


@dataclass(frozen=True)
class CoreRate:
    device: str
    macs_per_second: float  # one core, fp32
    derivation: str
    sources: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"device": self.device, "macs_per_second_per_core": self.macs_per_second,
                "derivation": self.derivation, "sources": list(self.sources)}


#: Raspberry Pi 4 (Cortex-A72 at 1.5 GHz): XNNPACK end2end-bench FP32MobileNetV1, 1 thread,
#: 312 ms (64-bit Ubuntu), reported in google/XNNPACK issue #814; XNNPACK's README gives 75 ms
#: with 4 threads on the same board (4.2x, i.e. near-linear scaling).
PI4_MOBILENET_V1_1T_S = 0.312
PI4 = CoreRate(
    "Raspberry Pi 4 (Cortex-A72, 1.5 GHz), one core",
    MOBILENET_V1_MACS / PI4_MOBILENET_V1_1T_S,
    "569e6 MACs (MobileNet v1 1.0/224) / 0.312 s (XNNPACK fp32, 1 thread, Pi 4B)",
    ("https://github.com/google/XNNPACK/issues/814",
     "https://github.com/google/XNNPACK#raspberry-pi",
     "Howard et al. 2017, MobileNets, arXiv:1704.04861, Table 8"))

#: Raspberry Pi 5 (Cortex-A76 at 2.4 GHz): the Pi 4 rate scaled by the Pi 4 / Pi 5 TFLite time
#: ratio of the same MobileNet v1 (SSD, 0.75 depth, 300x300) benchmark: 82.7 ms vs 16.9 ms.
PI5_OVER_PI4 = 82.7 / 16.9
PI5 = CoreRate(
    "Raspberry Pi 5 (Cortex-A76, 2.4 GHz), one core",
    PI4.macs_per_second * PI5_OVER_PI4,
    "Pi 4 rate x 4.89 (TFLite MobileNet v1 SSD: Pi 4 82.7 ms / Pi 5 16.9 ms)",
    ("https://github.com/aallan/benchmarking-ml-on-the-edge",
     "https://www.hackster.io/news/benchmarking-tensorflow-and-tensorflow-lite-on-raspberry-pi-5-b9156d58a6a2"))

RATES = {"raspberry_pi_4": PI4, "raspberry_pi_5": PI5}


def estimate_ms(macs: float, rate: CoreRate) -> float:
    """Estimated one-core milliseconds for ``macs`` multiply-accumulates."""
    return float(macs) / rate.macs_per_second * 1e3


def estimates(macs: float) -> dict[str, float]:
    return {name: round(estimate_ms(macs, rate), 3) for name, rate in RATES.items()}


def sources() -> dict:
    return {name: rate.to_dict() for name, rate in RATES.items()}
