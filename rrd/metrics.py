"""Image quality metrics and Bjontegaard deltas, as the evaluation harness reports them.

Image metrics
-------------
:func:`mse`, :func:`psnr` and :func:`psnr_yuv` compare two images of shape ``(H, W, C)`` (numpy arrays
or torch tensors, any floating dtype, values in [0, 1]) over the pixels where an optional ``(H, W)``
bool mask is True. They compute in float64 on the CPU and return Python floats. Identical images
(MSE exactly 0) have PSNR ``+inf``.

:func:`psnr_yuv` follows MPEG's rendering-based mesh metric (mpeg-pcc-mmetric, REFERENCE.md §4):
full-range BT.709 Y'CbCr (:func:`rrd.color.rgb_to_ycbcr`), peak 1.0 for every plane (255 in 8 bits;
Cb and Cr span [-0.5, 0.5], a range of 1), and a combined YUV PSNR computed from the weighted MSE
``(6 MSE_Y + MSE_U + MSE_V) / 8``. (JVET's CTC instead weights the three PSNRs; we weight the MSEs.)

Several views are summarised by :func:`mean_psnr`, the arithmetic mean of the per-view PSNRs in dB,
as MPEG averages over its cameras; the caller computes one PSNR per view and averages them.

Bjontegaard deltas
------------------
:func:`bd_rate` and :func:`bd_psnr` fit each rate-distortion curve and average the gap between
the two fits over the range where both curves have data:

* ``"pchip"``: piecewise cubic Hermite interpolation through the points (scipy's
  ``PchipInterpolator``, integrated exactly piece by piece), as JVET/MPEG practice and the
  ``bjontegaard`` package (1.3.0) do.
* ``"cubic"``: VCEG-M33, a least-squares third-order polynomial through the points, integrated
  analytically.

BD-rate interpolates ``log10(rate)`` as a function of PSNR over the overlapping PSNR range and returns
``100 * (10 ** mean_gap - 1)`` percent; BD-PSNR interpolates PSNR as a function of ``log10(rate)``
over the overlapping log-rate range and returns the mean gap in dB. Points may come in any order.
Curves that cannot give a meaningful number raise :class:`BDRateUndefined` with the reason.

Reference value (JCTVC-E137 data, REFERENCE.md §2): BD-rate of B against A is -0.465215420752807 %
with pchip and -0.464415 % with cubic.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Union

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator

from rrd.color import rgb_to_ycbcr
from rrd.errors import InputError

__all__ = [
    "BD_METHODS",
    "BDRateUndefined",
    "bd_psnr",
    "bd_rate",
    "mean_psnr",
    "mse",
    "psnr",
    "psnr_from_mse",
    "psnr_yuv",
    "yuv_mse",
]

ImageLike = Union[np.ndarray, torch.Tensor]

# Interpolation method -> fewest points per curve it needs (a cubic polynomial has 4 coefficients).
BD_METHODS: dict[str, int] = {"pchip": 2, "cubic": 4}

# Below this fraction of a curve's range covered by the other curve, the delta mostly reflects
# where the curves were sampled rather than how they differ (the bjontegaard package's default).
_MIN_OVERLAP = 0.75
# A sweep whose PSNR barely moves gives a near-vertical log-rate(PSNR) curve: any BD-rate is noise.
_MIN_PSNR_SPAN_DB = 0.1


class BDRateUndefined(ValueError):
    """The rate-distortion curves admit no Bjontegaard delta; ``reason`` (also ``str(err)``) says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Image metrics
# --------------------------------------------------------------------------------------------

def _to_float64(image: ImageLike, name: str) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        floating = image.is_floating_point()
    elif isinstance(image, np.ndarray):
        floating = np.issubdtype(image.dtype, np.floating)
    else:
        raise InputError(f"{name}: expected a numpy array or torch tensor, got {type(image).__name__}")
    if not floating:
        raise InputError(f"{name}: dtype {image.dtype} is not floating point; pass values in [0, 1] "
                         f"(divide 8-bit images by 255)")
    if isinstance(image, torch.Tensor):
        return image.detach().to(device="cpu", dtype=torch.float64)
    # A copy: decoded images are often read-only arrays, which torch.from_numpy warns about.
    return torch.from_numpy(np.array(image, dtype=np.float64))


def _per_channel_mse(a: ImageLike, b: ImageLike, mask: ImageLike | None, yuv: bool = False) -> torch.Tensor:
    """(C,) float64 MSE of each channel over the masked pixels; of Y, Cb, Cr (BT.709) if ``yuv``."""
    ta, tb = _to_float64(a, "a"), _to_float64(b, "b")
    if ta.shape != tb.shape:
        raise InputError(f"image shapes differ: a is {tuple(ta.shape)}, b is {tuple(tb.shape)}")
    if ta.ndim != 3:
        raise InputError(f"images must be (H, W, C), got shape {tuple(ta.shape)}")
    if yuv:
        if ta.shape[-1] != 3:
            raise InputError(f"YUV PSNR needs (H, W, 3) RGB images, got shape {tuple(ta.shape)}")
        ta, tb = rgb_to_ycbcr(ta, "bt709"), rgb_to_ycbcr(tb, "bt709")
    sq = (ta - tb).square()
    if mask is None:
        return sq.mean(dim=(0, 1))
    tm = mask.detach().cpu() if isinstance(mask, torch.Tensor) else torch.from_numpy(np.array(mask))
    if tm.dtype != torch.bool:
        raise InputError(f"mask: dtype {tm.dtype} is not bool")
    if tuple(tm.shape) != tuple(ta.shape[:2]):
        raise InputError(f"mask shape {tuple(tm.shape)} does not match image shape {tuple(ta.shape)}")
    if not bool(tm.any()):
        raise InputError("mask selects no pixel: the metric is undefined on an empty region")
    return sq[tm].mean(dim=0)


def psnr_from_mse(mse_value: float, peak: float = 1.0) -> float:
    """PSNR in dB of a mean squared error, ``10 log10(peak^2 / mse)``; ``+inf`` for an MSE of exactly 0.

    >>> psnr_from_mse(1e-4)
    40.0
    """
    if mse_value == 0.0:
        return float("inf")
    return float(10.0 * np.log10(peak * peak / mse_value))


def mse(a: ImageLike, b: ImageLike, mask: ImageLike | None = None) -> float:
    """Mean squared error over the masked pixels and all channels.

    Args:
        a, b: (H, W, C) floating images in [0, 1], numpy or torch (any device; gradients are not
            tracked). Computed in float64.
        mask: optional (H, W) bool, True where pixels count; None counts every pixel.
    Returns:
        MSE in squared [0, 1] units.
    Raises:
        InputError: shapes differ (both are named), not (H, W, C), non-float dtype, a mask that is
            not bool, does not match (H, W) or selects no pixel.
    """
    return float(_per_channel_mse(a, b, mask).mean())


def psnr(a: ImageLike, b: ImageLike, mask: ImageLike | None = None, peak: float = 1.0) -> float:
    """PSNR in dB, ``10 log10(peak^2 / mse(a, b, mask))``; ``+inf`` when the images are identical.

    Args and errors as :func:`mse`; ``peak`` is the signal peak (1.0 for images in [0, 1]).
    """
    if not peak > 0:
        raise InputError(f"peak {peak} must be positive")
    return psnr_from_mse(mse(a, b, mask), peak)


def yuv_mse(mse_y: float, mse_u: float, mse_v: float) -> float:
    """MPEG's combined YUV error of per-plane MSEs: ``(6 MSE_Y + MSE_U + MSE_V) / 8``."""
    return (6.0 * mse_y + mse_u + mse_v) / 8.0


def psnr_yuv(a: ImageLike, b: ImageLike, mask: ImageLike | None = None) -> dict[str, float]:
    """Y, U, V and combined YUV PSNR in dB on full-range BT.709 Y'CbCr, MPEG style.

    Args:
        a, b: (H, W, 3) RGB images in [0, 1], numpy or torch; converted with
            ``rrd.color.rgb_to_ycbcr(., "bt709")`` in float64.
        mask: optional (H, W) bool, True where pixels count.
    Returns:
        ``{"y", "u", "v", "yuv"}`` in dB, peak 1.0 (255 in 8 bits). ``"yuv"`` is the PSNR of the
        weighted MSE ``(6 MSE_Y + MSE_U + MSE_V) / 8``. Each value is ``+inf`` when its MSE is 0.
    Raises:
        InputError: as :func:`mse`, or images without exactly 3 channels.
    """
    mse_y, mse_u, mse_v = _per_channel_mse(a, b, mask, yuv=True).tolist()
    mse_yuv = yuv_mse(mse_y, mse_u, mse_v)
    return {"y": psnr_from_mse(mse_y, 1.0), "u": psnr_from_mse(mse_u, 1.0), "v": psnr_from_mse(mse_v, 1.0),
            "yuv": psnr_from_mse(mse_yuv, 1.0)}


def mean_psnr(psnr_db_values: Sequence[float]) -> float:
    """Average PSNR over views: the arithmetic mean of the per-view PSNRs in dB (MPEG's convention).

    This is not the PSNR of the mean MSE: a badly rendered view lowers it by its own dB, not by its
    share of the squared error. One identical view (``+inf``) makes the mean ``+inf``.

    Raises:
        InputError: no values, or a NaN value.
    """
    values = np.asarray(psnr_db_values, dtype=np.float64).ravel()
    if values.size == 0:
        raise InputError("mean_psnr: no per-view PSNR values to average")
    if np.isnan(values).any():
        raise InputError(f"mean_psnr: per-view PSNR values contain NaN: {values.tolist()}")
    return float(values.mean())


# --------------------------------------------------------------------------------------------
# Bjontegaard deltas
# --------------------------------------------------------------------------------------------

def _rd_curve(rate: Sequence[float], psnr_db: Sequence[float], name: str, method: str,
              what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate one curve; return (log10 rate, PSNR dB), both (N,) float64, sorted by rate."""
    r = np.asarray(rate, dtype=np.float64)
    p = np.asarray(psnr_db, dtype=np.float64)
    if r.ndim != 1 or p.ndim != 1 or r.shape != p.shape:
        raise InputError(f"{name} curve: rates {r.shape} and PSNRs {p.shape} must be 1-D of equal length")
    if r.size < BD_METHODS[method]:
        raise BDRateUndefined(f"{name} curve has {r.size} point(s); {method} needs at least "
                              f"{BD_METHODS[method]}")
    if not np.isfinite(p).all():
        raise BDRateUndefined(f"{name} curve: PSNR values {p.tolist()} are not all finite "
                              f"(a lossless point has infinite PSNR)")
    if not (np.isfinite(r).all() and (r > 0).all()):
        raise BDRateUndefined(f"{name} curve: rates {r.tolist()} are not all finite and positive")
    order = np.argsort(r, kind="stable")
    r, p = r[order], p[order]
    # A flat sweep (photos that the mesh does not match) is reported as such before any other shape check.
    span_db = p.max() - p.min()
    if span_db < _MIN_PSNR_SPAN_DB:
        raise BDRateUndefined(f"{name} curve: PSNR varies by less than {_MIN_PSNR_SPAN_DB} dB over the "
                              f"sweep ({span_db:.4f} dB): {what} undefined")
    for i in range(r.size - 1):
        if r[i + 1] == r[i]:
            raise BDRateUndefined(f"{name} curve: two points share the rate {r[i]:g}")
        if p[i + 1] <= p[i]:
            raise BDRateUndefined(
                f"{name} curve: PSNR is not monotonic in rate after sorting by rate "
                f"(rate {r[i]:g} -> {p[i]:.4f} dB, rate {r[i + 1]:g} -> {p[i + 1]:.4f} dB)")
    return np.log10(r), p


def _mean_of_fit(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """Mean over [lo, hi] of the ``method`` fit of y(x); x is strictly increasing."""
    if method == "pchip":
        return float(PchipInterpolator(x, y).integrate(lo, hi)) / (hi - lo)
    # Centring x before the polynomial fit keeps the normal equations well conditioned
    # (PSNRs near 40 dB raised to the 3rd and 4th power otherwise dominate the rounding).
    centre = 0.5 * (lo + hi)
    antiderivative = np.polyint(np.polyfit(x - centre, y, 3))
    integral = np.polyval(antiderivative, hi - centre) - np.polyval(antiderivative, lo - centre)
    return float(integral) / (hi - lo)


def _bjontegaard_gap(x_anchor: np.ndarray, y_anchor: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                     method: str, axis: str, what: str) -> float:
    """Mean of (test fit - anchor fit) of y over the overlap of the two curves' x ranges."""
    lo = float(max(x_anchor[0], x_test[0]))
    hi = float(min(x_anchor[-1], x_test[-1]))
    if not hi > lo:
        raise BDRateUndefined(
            f"the {axis} ranges do not overlap (anchor {x_anchor[0]:.4f} to {x_anchor[-1]:.4f}, "
            f"test {x_test[0]:.4f} to {x_test[-1]:.4f})")
    for name, x in (("anchor", x_anchor), ("test", x_test)):
        covered = (hi - lo) / (x[-1] - x[0])
        if covered < _MIN_OVERLAP:
            warnings.warn(
                f"{what}: the curves overlap on only {covered:.0%} of the {name} curve's {axis} range "
                f"({lo:.4f} to {hi:.4f} of {x[0]:.4f} to {x[-1]:.4f}), under {_MIN_OVERLAP:.0%}; "
                f"the value describes the overlap only", stacklevel=3)
    return _mean_of_fit(x_test, y_test, lo, hi, method) - _mean_of_fit(x_anchor, y_anchor, lo, hi, method)


def _check_method(method: str) -> None:
    if method not in BD_METHODS:
        raise InputError(f"unknown BD interpolation method {method!r}; choose one of {sorted(BD_METHODS)}")


def bd_rate(rate_anchor: Sequence[float], psnr_anchor: Sequence[float], rate_test: Sequence[float],
            psnr_test: Sequence[float], method: str = "pchip") -> float:
    """Bjontegaard delta rate of the test curve against the anchor, in percent.

    ``log10(rate)`` is interpolated as a function of PSNR (see the module docstring for the
    methods) and the mean gap over the overlapping PSNR range is ``g``; the result is
    ``100 * (10 ** g - 1)``: negative means the test needs fewer bits for the same PSNR
    (-50 means half the rate).

    Args:
        rate_anchor, rate_test: (N,) rates in any one positive unit (bits, bytes, bpp), same unit for
            both curves; points in any order.
        psnr_anchor, psnr_test: (N,) PSNR in dB of the same points.
        method: "pchip" (default, at least 2 points per curve) or "cubic" (VCEG-M33, at least 4).
    Returns:
        BD-rate in percent.
    Warns:
        UserWarning when the overlap of the PSNR ranges covers under 75 % of either curve's PSNR
        range (the message names the curve). The ``bjontegaard`` package measures the overlap
        against the union of both ranges instead, so it warns at least as often.
    Raises:
        BDRateUndefined: too few points, a rate not positive or not finite, a PSNR not finite
            (e.g. a lossless point), two points with the same rate, PSNR not increasing with rate,
            a curve whose PSNR spans under 0.1 dB, or PSNR ranges that do not overlap.
        InputError: unknown method, or rates and PSNRs of different lengths.
    """
    _check_method(method)
    log_rate_a, psnr_a = _rd_curve(rate_anchor, psnr_anchor, "anchor", method, "BD-rate")
    log_rate_t, psnr_t = _rd_curve(rate_test, psnr_test, "test", method, "BD-rate")
    gap = _bjontegaard_gap(psnr_a, log_rate_a, psnr_t, log_rate_t, method, "PSNR (dB)", "BD-rate")
    return float(100.0 * (10.0 ** gap - 1.0))


def bd_psnr(rate_anchor: Sequence[float], psnr_anchor: Sequence[float], rate_test: Sequence[float],
            psnr_test: Sequence[float], method: str = "pchip") -> float:
    """Bjontegaard delta PSNR of the test curve against the anchor, in dB (positive = better).

    PSNR is interpolated as a function of ``log10(rate)`` and averaged over the overlapping
    log-rate range. Arguments, the overlap warning (on the log10-rate range) and the errors are
    those of :func:`bd_rate`; the same curve checks apply, so the 0.1 dB span rule holds here too.
    """
    _check_method(method)
    log_rate_a, psnr_a = _rd_curve(rate_anchor, psnr_anchor, "anchor", method, "BD-PSNR")
    log_rate_t, psnr_t = _rd_curve(rate_test, psnr_test, "test", method, "BD-PSNR")
    return _bjontegaard_gap(log_rate_a, psnr_a, log_rate_t, psnr_t, method, "log10-rate", "BD-PSNR")
