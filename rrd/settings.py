"""Every tuned default of the R-RD optimiser, in one place, each with the committed result that chose it.

:class:`OptimizeSettings` holds the settings of one optimisation (iterations, lambda scale, prior, the
starting padding, the step rule) and, per codec, a :class:`CodecTuning` (lambda factors, the rate's
curvature, the rate model's survival threshold and error price). The commands, pipeline stages, the
evaluation's ``rrd`` methods and the Meshroom node all take their defaults from :data:`DEFAULT_SETTINGS`;
the rate models take their thresholds from :data:`CODEC_TUNING`.

Results files are under ``benchmarks/results/``; ``benchmarks/results/README.md`` tells the history of each
value, the alternatives measured and the commands that reproduce them.

>>> DEFAULT_SETTINGS.iterations, DEFAULT_SETTINGS.lambda_scale, DEFAULT_SETTINGS.tuning("jpeg").lambda_factor
(50, 2.0, 0.25)
>>> OptimizeSettings(iterations=0)
Traceback (most recent call last):
...
rrd.errors.InputError: iterations 0 is out of range; valid: an integer >= 1
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from rrd.errors import InputError

__all__ = ["CodecTuning", "CODEC_TUNING", "OptimizeSettings", "DEFAULT_SETTINGS"]


@dataclass(frozen=True)
class CodecTuning:
    """What the optimiser tunes per codec (its rate model's family).

    Attributes:
        lambda_factor: factor on the operating-point lambda (:func:`rrd.optimize.lambda_for`, HEVC's
            mode-decision rule inverted), before the user's ``lambda_scale``.
        coded_lambda_factor: a further factor where the real codec is in the optimiser's loop.
        curvature: the rate's typical second derivative per texel, bits per (texel value / Qstep)^2 in 8-bit
            units: the preconditioner's floor, which sets how far texels no view sees (gutters) move per step.
        threshold: where the rate model's soft "survives quantisation" indicator is 1/2, in quantisation
            steps (:func:`rrd.rate.base.soft_nonzero`).
        error_bits: price of the expected quantisation error in the optimiser's rate cost, bits per squared
            step (0: the cost is the bits alone; :meth:`rrd.rate.base.RateModel.cost`).
    """

    lambda_factor: float
    coded_lambda_factor: float
    curvature: float
    threshold: float
    error_bits: float


CODEC_TUNING: Mapping[str, CodecTuning] = MappingProxyType({
    # lambda_factor 0.25: full Sceaux, asset reference, against HBF, effective scale 2 / 1 / 0.5 / 0.25 gave
    #   -7.8 / -9.7 / -10.7 / -10.9 % (the demo hardly moves); the result: sceaux_rrd_jpeg.md (-10.54 %).
    # curvature 40 and threshold 0.25 (a quarter step, not JPEG's rounding point: a cost that falls steeply at
    #   the rounding point makes the optimiser nudge coefficients under it, which the encoder then drops whole):
    #   demo, photo reference -13.5 % -> -26.0 % (demo_jpeg_photos_rrd.md).
    # coded_lambda_factor 1: with the codec in the loop JPEG keeps its lambda (demo_jpeg_photos_rrd_coded.md).
    "jpeg": CodecTuning(lambda_factor=0.25, coded_lambda_factor=1.0, curvature=40.0, threshold=0.25, error_bits=0.0),
    # threshold 0.25: demo, asset reference, against SPP, threshold 0.7 / 0.5 / 0.35 / 0.25: +6.4 / -0.1 / -5.8 /
    #   -8.2 %; curvature 10 (40 lost 2.5 points on the demo); coded_lambda_factor 0.125: demo with x265 in the
    #   loop -16.39 % against HBF (demo_hevc_photos_rrd_coded.md); pricing the error did not pay on HEVC.
    "hevc": CodecTuning(lambda_factor=1.0, coded_lambda_factor=0.125, curvature=10.0, threshold=0.25, error_bits=0.0),
    # threshold 0.6 (the encoders' dead zone) with the coding error priced at 8 bits per squared step: demo
    #   -5.8 % -> -10.4 %, Sceaux +1.82 % -> -1.20 % against HBF (demo_vvc_photos_rrd.md, sceaux_rrd_vvc.md);
    #   coded_lambda_factor 0.125 as HEVC (demo_vvc_photos_rrd_coded.md).
    "vvc": CodecTuning(lambda_factor=1.0, coded_lambda_factor=0.125, curvature=10.0, threshold=0.6, error_bits=8.0),
})
"""The tuning of each codec family's rate model, by codec name."""


@dataclass(frozen=True)
class OptimizeSettings:
    """Settings of one R-RD optimisation (:func:`rrd.preprocess.preprocess`); defaults are the tuned values.

    Attributes:
        iterations: gradient steps per operating point, >= 1. 50: on the demo 100 did worse (the extra steps
            trade PSNR for bits beyond what coding gives back); on Sceaux JPEG 100 gain 0.9 points at twice the
            cost (sceaux_rrd_it100_jpeg.md -11.43 % against sceaux_rrd_jpeg.md -10.54 %).
        lambda_scale: multiplier of the operating-point lambda, > 0. 2: chosen on the demo scene (photo
            reference); with it lambda is 4-7 times the codec's own slope -dR/dD on the padded Sceaux atlas,
            so the optimiser takes only trades that beat the codec's own (sceaux_rrd_<codec>.md).
        prior: pull of the texels the mesh uses but no view samples towards the original, >= 0
            (:func:`rrd.distortion.build_distortion`); 0.05 in every committed result.
        init: padding method that fills the starting gutters (a key of ``rrd.padding.PADDING_METHODS``,
            "none" starts from black). "spp" in every committed result: the descent starts at a smooth fill.
        step: initial step relative to the preconditioned (Newton-like) step, in (0, 1].
        step_growth: factor on the step after an accepted iteration (capped at ``step``), >= 1.
        step_backoff: factor on the step after a rejected one, in (0, 1).
        momentum: heavy-ball momentum in [0, 1). 0.7 with 1.2 / 0.5 growth and backoff: the rule every
            committed result ran with; per-texel adaptive optimisers (Adam) make lambda nearly ineffective.
        straight_through: with the codec in the loop, the weight in [0, 1] of the decoded atlas's distortion
            gradient in the step direction. 0.3: the full 1.0 gained on the demo's HEVC but stalled on Sceaux,
            where its first step doubled the coded distortion (sceaux_rrd_coded_jpeg.md at 0.3).
        codecs: the per-codec tuning, :data:`CODEC_TUNING`.
    """

    iterations: int = 50
    lambda_scale: float = 2.0
    prior: float = 0.05
    init: str = "spp"
    step: float = 1.0
    step_growth: float = 1.2
    step_backoff: float = 0.5
    momentum: float = 0.7
    straight_through: float = 0.3
    codecs: Mapping[str, CodecTuning] = field(default_factory=lambda: CODEC_TUNING, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 1:
            raise InputError(f"iterations {self.iterations!r} is out of range; valid: an integer >= 1")
        _check_range("lambda_scale", self.lambda_scale, "a number > 0", lambda v: v > 0)
        _check_range("prior", self.prior, "a number >= 0", lambda v: v >= 0)
        _check_range("step", self.step, "0 < step <= 1", lambda v: 0 < v <= 1)
        _check_range("step_growth", self.step_growth, "a number >= 1", lambda v: v >= 1)
        _check_range("step_backoff", self.step_backoff, "0 < step_backoff < 1", lambda v: 0 < v < 1)
        _check_range("momentum", self.momentum, "0 <= momentum < 1", lambda v: 0 <= v < 1)
        _check_range("straight_through", self.straight_through, "0 <= straight_through <= 1",
                     lambda v: 0 <= v <= 1)
        from rrd.padding import PADDING_METHODS

        PADDING_METHODS.lookup(self.init)

    def tuning(self, codec: str) -> CodecTuning:
        """The :class:`CodecTuning` of ``codec`` (InputError naming the codecs that have one)."""
        if codec not in self.codecs:
            raise InputError(f"no optimiser tuning for codec {codec!r}; choose one of: {', '.join(self.codecs)}")
        return self.codecs[codec]

    def replace(self, **changes: object) -> OptimizeSettings:
        """A copy with ``changes`` (validated); ``None`` values are ignored, so optional overrides pass through."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def summary(self) -> dict[str, object]:
        """The user-facing settings (no step rule, no codec table), as recorded in reports."""
        return {"iterations": self.iterations, "lambda_scale": self.lambda_scale, "prior": self.prior,
                "init": self.init}


def _check_range(name: str, value: object, valid: str, ok) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise InputError(f"{name} {value!r} is out of range; valid: {valid}")


DEFAULT_SETTINGS = OptimizeSettings()
"""The tuned defaults."""
