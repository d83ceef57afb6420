"""The rate-model interface, its registry, the smooth coefficient cost and scale calibration.

A rate model estimates, differentiably, the bits a real codec (:class:`rrd.codec.Codec`) spends on an atlas
at one operating point. Each atlas tile is coded as one picture (one JPEG file, one HEVC/VVC
intra picture), so the estimate of a stack of tiles is the sum over tiles::

    bits(tiles, param) = header_bits * T + scale * raw_bits(tiles, param)

``header_bits`` is the exact fixed overhead of one coded picture (0 where it is part of the fit),
``raw_bits`` the model's estimate of the rest (entropy-coded data), and ``scale`` a calibration factor:
the constants shipped in each model were fitted to the real codec (the module of each model says how),
and :func:`calibrate` refits ``scale`` on the actual atlas. Estimates are neither upper nor lower
bounds: they are least-squares fits in the log domain (relative error).

The smooth stand-in for "quantise, then entropy-code" is :func:`coefficient_bits`: a coefficient
``q`` in units of the quantisation step costs ``s(q) * (nonzero_bits + magnitude_bits * log2(1+|q|))``
where ``s(q) = (q/t)^4 / (1 + (q/t)^4)`` is a smooth "survives rounding" indicator (0 at 0, 1/2 at the
threshold ``t``, 1 far above it). Deterministic: no noise is injected.

Evaluation runs over horizontal bands of each tile (:func:`banded_bits`): on a 2-core CPU a 4096 x
4096 atlas does not fit in cache and page faults on large temporaries dominate, so each band's value
and gradient are computed at once in the forward pass and the backward pass only scales the stored
gradient. Models whose blocks look at the rows above a band (DC prediction, intra prediction) get
those rows as context, and the gradient flowing into the context is accumulated into them.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from rrd.codec import CODEC_SPECS, Codec
from rrd.errors import InputError
from rrd.registry import Registry

__all__ = [
    "RATE_MODELS",
    "CoefficientCost",
    "RateModel",
    "autograd_band_grad",
    "banded_bits",
    "calibrate",
    "check_tiles",
    "coefficient_bits",
    "coefficient_bits_and_slope",
    "get_rate_model",
    "register_rate_model",
    "soft_nonzero",
]

# Pixels per band on the CPU (keeps a band's temporaries in cache) and on other devices.
_CPU_BAND_PIXELS = 1 << 20
_DEVICE_BAND_PIXELS = 1 << 24
# Search interval of log(scale) in calibrate(): a factor e^5 ~ 150 either way.
_LOG_SCALE_BOUND = 5.0


@dataclass(frozen=True)
class CoefficientCost:
    """Bits of one quantised coefficient: ``s(q) * (nonzero_bits + magnitude_bits * log2(1 + |q|))``.

    Attributes:
        nonzero_bits: bits every surviving coefficient costs (its code word, sign, position), >= 0.
        magnitude_bits: bits per octave of its magnitude, >= 0.
    """

    nonzero_bits: float
    magnitude_bits: float


def soft_nonzero(q: torch.Tensor, threshold: float) -> torch.Tensor:
    """Smooth indicator that a coefficient survives rounding: ``r / (1 + r)``, ``r = (q / threshold)^4``.

    0 at ``q = 0`` (with zero slope), 1/2 at ``|q| = threshold``, about 0.94 at twice the threshold,
    infinitely differentiable. Args: ``q`` any shape, in quantisation steps. Returns the same shape.
    """
    u = q * q * (1.0 / (threshold * threshold))
    r = u * u
    return r / (1.0 + r)


def coefficient_bits(q: torch.Tensor, cost: CoefficientCost, threshold: float) -> torch.Tensor:
    """Smooth bit cost of each coefficient (see :class:`CoefficientCost`), elementwise.

    Args:
        q: coefficients divided by their quantisation step (any shape, floating).
        cost: the per-coefficient constants.
        threshold: where :func:`soft_nonzero` is 1/2 (0.5 for plain rounding, more for a dead zone).
    Returns:
        Bits, same shape as ``q``, >= 0; differentiable (smooth everywhere, also at 0).
    """
    magnitude = torch.log1p(q.abs()) * (cost.magnitude_bits / math.log(2.0))
    return soft_nonzero(q, threshold) * (magnitude + cost.nonzero_bits)


def coefficient_bits_and_slope(q: torch.Tensor, cost: CoefficientCost,
                               threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The sum of :func:`coefficient_bits` over ``q`` and its derivative per coefficient, in closed form.

    For models that write their gradient out (see :meth:`RateModel.band_bits_and_grad`): with
    ``u = (q/t)^2``, ``s = u^2 / (1 + u^2)`` and ``m = nonzero_bits + magnitude_bits log2(1 + |q|)``,
    ``d(s m)/dq = 4 q u / (t^2 (1 + u^2)^2) m + s magnitude_bits sign(q) / (ln 2 (1 + |q|))``.

    Args and threshold as :func:`coefficient_bits`. Returns:
        (scalar bits in ``q.dtype``, slope of the same shape as ``q``).
    """
    k = cost.magnitude_bits / math.log(2.0)
    magnitude = q.abs()
    u = q * q
    u.mul_(1.0 / (threshold * threshold))
    inverse = torch.mul(u, u).add_(1.0).reciprocal_()                  # 1 / (1 + u^2)
    survive = 1.0 - inverse
    bits = torch.log1p(magnitude).mul_(k).add_(cost.nonzero_bits)     # m
    total = torch.mul(survive, bits).sum()
    slope = inverse.mul_(inverse).mul_(u).mul_(q).mul_(4.0 / (threshold * threshold)).mul_(bits)
    slope.addcmul_(survive, torch.sign(q).mul_(k).div_(magnitude.add_(1.0)))
    return total, slope


# A band function gets (rows, W, 3) texels of one tile (the first ``context`` rows only as context),
# the number of rows the codec would append below by edge replication, and returns the band's bits;
# a band gradient function returns them with their gradient w.r.t. the band's texels (same shape).
BandFn = Callable[[torch.Tensor, int, int], torch.Tensor]
BandGradFn = Callable[[torch.Tensor, int, int], tuple[torch.Tensor, torch.Tensor]]


class _BandedBits(torch.autograd.Function):
    """Sum of ``band_fn`` over bands; the gradient is computed band by band in the forward pass."""

    @staticmethod
    def forward(ctx, tiles: torch.Tensor, band_fn: BandFn, band_grad_fn: BandGradFn,  # type: ignore[override]
                unit_rows: int, context_rows: int, band_rows: int) -> torch.Tensor:
        need_grad = ctx.needs_input_grad[0]
        grad = torch.zeros_like(tiles) if need_grad else None
        total = torch.zeros((), dtype=torch.float64, device=tiles.device)
        height = tiles.shape[1]
        padded_height = -(-height // unit_rows) * unit_rows
        for t in range(tiles.shape[0]):
            for start in range(0, padded_height, band_rows):
                low, high = max(start - context_rows, 0), min(start + band_rows, height)
                pad_rows = min(start + band_rows, padded_height) - high
                piece = tiles[t, low:high]
                if need_grad:
                    bits, piece_grad = band_grad_fn(piece.detach(), start - low, pad_rows)
                    grad[t, low:high] += piece_grad
                else:
                    bits = band_fn(piece, start - low, pad_rows)
                total += bits.detach().to(torch.float64)
        if need_grad:
            ctx.save_for_backward(grad)
        return total.to(tiles.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad_output * grad, None, None, None, None, None


def autograd_band_grad(band_fn: BandFn) -> BandGradFn:
    """A band gradient function that differentiates ``band_fn`` with autograd."""

    def band_grad_fn(band: torch.Tensor, context: int, pad_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            leaf = band.detach().requires_grad_(True)
            bits = band_fn(leaf, context, pad_rows)
            (grad,) = torch.autograd.grad(bits, leaf)
        return bits.detach(), grad

    return band_grad_fn


def banded_bits(tiles: torch.Tensor, band_fn: BandFn, unit_rows: int, context_rows: int,
                band_grad_fn: BandGradFn | None = None) -> torch.Tensor:
    """Sum a band function over horizontal bands of every tile; differentiable w.r.t. ``tiles``.

    Args:
        tiles: (T, H, W, 3) floating tensor.
        band_fn: see ``BandFn``: called with rows ``[start - c, end)`` of one tile, ``c`` (at most
            ``context_rows``, 0 for the first band) and the number of edge-replicated rows to append
            (non-zero only for the last band, so that its height is a multiple of ``unit_rows``).
            Band starts are multiples of ``unit_rows``.
        unit_rows: the height every band (after padding) is a multiple of (the model's block rows).
        context_rows: rows above a band that ``band_fn`` reads.
        band_grad_fn: the band's bits and gradient (see ``BandGradFn``), used when a gradient is
            needed; default: ``band_fn`` differentiated with autograd.
    Returns:
        Scalar tensor of ``tiles.dtype``; its gradient is exact (the sum of the bands' gradients).
    """
    band_pixels = _CPU_BAND_PIXELS if tiles.device.type == "cpu" else _DEVICE_BAND_PIXELS
    band_rows = max(1, band_pixels // (unit_rows * tiles.shape[2])) * unit_rows
    return _BandedBits.apply(tiles, band_fn, band_grad_fn or autograd_band_grad(band_fn), unit_rows,
                             context_rows, band_rows)


@dataclass(frozen=True)
class RateModel(abc.ABC):
    """A differentiable estimate of a real codec's bits at one operating point.

    Attributes:
        scale: calibration factor on :meth:`raw_bits` (> 0); see :func:`calibrate`.
    Class attributes:
        codec: the codec name this model mimics (a key of :data:`rrd.codec.CODEC_SPECS`).
        header_bits: exact fixed bits of one coded picture outside the model (0 if fitted inside).
        unit_rows, context_rows: banding geometry (see :func:`banded_bits`).

    What the optimiser tunes around a model (its lambda factors and curvature) is in
    :data:`rrd.settings.CODEC_TUNING`, with the model's survival threshold.
    """

    scale: float = 1.0

    codec: ClassVar[str]
    header_bits: ClassVar[float]
    unit_rows: ClassVar[int]
    context_rows: ClassVar[int]

    def __post_init__(self) -> None:
        # The scale, and the survival threshold of the models that have one.
        for name in ("scale", "threshold"):
            value = getattr(self, name, 1.0)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"rate model {name} must be a finite number > 0, got {value!r}")

    @abc.abstractmethod
    def band_bits(self, band: torch.Tensor, context: int, pad_rows: int, param: int) -> torch.Tensor:
        """Unscaled bits of one band (the ``BandFn`` of :func:`banded_bits` at ``param``)."""

    def band_bits_and_grad(self, band: torch.Tensor, context: int, pad_rows: int,
                           param: int) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`band_bits` and its gradient w.r.t. ``band`` (same shape), both detached.

        Default: autograd. A model overrides it with the gradient written out where autograd's
        bookkeeping (zero-filled slice gradients, saved temporaries) costs more than the arithmetic.
        """
        return autograd_band_grad(lambda b, c, p: self.band_bits(b, c, p, param))(band, context, pad_rows)

    def raw_bits(self, tiles: torch.Tensor, param: int) -> torch.Tensor:
        """The model's unscaled estimate of the entropy-coded bits (no header, no ``scale``).

        Args and returns as :meth:`bits`.
        """
        tiles = check_tiles(tiles)
        param = self.check_param(param)
        return banded_bits(tiles, lambda band, context, pad_rows: self.band_bits(band, context, pad_rows, param),
                           self.unit_rows, self.context_rows,
                           lambda band, context, pad_rows: self.band_bits_and_grad(band, context, pad_rows, param))

    def bits(self, tiles: torch.Tensor, param: int) -> torch.Tensor:
        """Estimated bits of coding every tile as its own picture at ``param``.

        Args:
            tiles: (T, H, W, 3) (or one (H, W, 3) tile) floating tensor, RGB in [0, 1], any device.
            param: the codec's integer parameter (JPEG quality 1..100, HEVC QP 0..51, VVC QP 0..63).
        Returns:
            Scalar tensor (bits, ``tiles.dtype``), ``header_bits * T + scale * raw_bits``,
            differentiable w.r.t. ``tiles``.
        Raises:
            InputError: bad tile shape/dtype or parameter.
        """
        tiles = check_tiles(tiles)
        return self.header_bits * tiles.shape[0] + self.scale * self.raw_bits(tiles, param)

    def cost(self, tiles: torch.Tensor, param: int) -> torch.Tensor:
        """What the optimiser minimises as the rate term, in bits: :meth:`bits` here. A model that also
        prices the coding error its quantiser implies (``error_bits`` of :class:`rrd.rate.video.VideoRateModel`)
        returns the encoder's rate-distortion cost instead. Arguments and return as :meth:`bits`."""
        return self.bits(tiles, param)

    def check_param(self, param: int) -> int:
        """``param`` as an int, or InputError naming the valid range of the codec."""
        return CODEC_SPECS[self.codec].check_param(param)


RATE_MODELS: Registry[type[RateModel]] = Registry("rate model")


def register_rate_model(cls: type[RateModel]) -> type[RateModel]:
    """Class decorator: add a :class:`RateModel` subclass to :data:`RATE_MODELS` under ``cls.codec``."""
    return RATE_MODELS.add(cls.codec, cls)


def get_rate_model(codec: str, **options: object) -> RateModel:
    """Build the rate model of the codec named ``codec`` ("jpeg", "hevc", "vvc").

    Options are the model's dataclass fields (e.g. ``scale=1.2``; JPEG: ``subsampling="4:4:4"``).

    Raises:
        InputError: unknown codec or option (the message lists the valid choices).
    """
    cls = RATE_MODELS.lookup(codec)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise InputError(f"unknown option(s) {unknown} for the {codec} rate model; valid options: {valid}")
    return cls(**options)


def calibrate(model: RateModel, codec: Codec, images: Iterable[np.ndarray | torch.Tensor],
              params: Sequence[int]) -> RateModel:
    """Fit ``model.scale`` to the real codec's bits (least squares of the log ratio).

    Every image is coded by ``codec`` at every parameter; ``scale`` minimises
    ``sum (log(header_bits + scale * raw_bits) - log(real_bits))^2``. The model sees the image
    exactly as the codec does (rounded to 8 bits).

    Args:
        model: the rate model to calibrate (its current ``scale`` is ignored).
        codec: the real codec (a :class:`rrd.codec.Codec`, e.g. ``rrd_pipeline.codecs.get_codec``) of
            family ``model.codec``.
        images: (H, W, 3) images, uint8 arrays or floating arrays/tensors in [0, 1] (each one tile).
        params: operating points (at least one), e.g. the one the optimiser will use.
    Returns:
        A copy of ``model`` with the fitted ``scale``.
    Raises:
        InputError: codec family mismatch, no images or parameters, or bad images.
    """
    if not isinstance(codec, Codec):
        raise InputError(f"calibrate needs a codec (rrd.codec.Codec), got {type(codec).__name__}")
    if codec.name != model.codec:
        raise InputError(f"cannot calibrate the {model.codec} rate model against the {codec.name} codec; "
                         f"rate models must match the codec that codes the atlas")
    params = [model.check_param(p) for p in params]
    images_u8 = [_to_uint8(image) for image in images]
    if not images_u8 or not params:
        raise InputError("calibrate needs at least one image and one parameter")
    real, raw = [], []
    for image in images_u8:
        tile = torch.from_numpy(image).to(torch.float32) / 255
        for param in params:
            real.append(codec.encode(image, param).bits)
            with torch.no_grad():
                raw.append(float(model.raw_bits(tile, param)))
    real_log = np.log(np.asarray(real, dtype=np.float64))
    raw_arr = np.maximum(np.asarray(raw, dtype=np.float64), 1e-9)

    def loss(log_scale: float) -> float:
        return float(np.sum((np.log(model.header_bits + math.exp(log_scale) * raw_arr) - real_log) ** 2))

    fit = minimize_scalar(loss, bounds=(-_LOG_SCALE_BOUND, _LOG_SCALE_BOUND), method="bounded",
                          options={"xatol": 1e-6})
    return dataclasses.replace(model, scale=float(math.exp(fit.x)))


def _to_uint8(image: np.ndarray | torch.Tensor) -> np.ndarray:
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise InputError(f"calibration image must be (H, W, 3), got shape {array.shape}")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"calibration image must be uint8 or float in [0, 1], got {array.dtype}")
    return np.clip(np.round(array.astype(np.float64) * 255), 0, 255).astype(np.uint8)


def check_tiles(tiles: torch.Tensor) -> torch.Tensor:
    """Rate model input as a contiguous (T, H, W, 3) floating tensor, or InputError saying what it is."""
    if not isinstance(tiles, torch.Tensor) or not tiles.is_floating_point() or tiles.ndim not in (3, 4) \
            or tiles.shape[-1] != 3 or min(tiles.shape[-3:-1]) < 1:
        desc = (f"{tiles.dtype} tensor of shape {tuple(tiles.shape)}" if isinstance(tiles, torch.Tensor)
                else type(tiles).__name__)
        raise InputError(f"rate model input must be a floating (T, H, W, 3) or (H, W, 3) tensor, got {desc}")
    tiles = tiles if tiles.ndim == 4 else tiles[None]
    return tiles if tiles.is_contiguous() else tiles.contiguous()
