"""Differentiable rate models of all-intra HEVC (x265) and VVC (vvenc) as :mod:`rrd_pipeline.codecs.ffmpeg` runs them.

One model family, two sets of fitted constants (:class:`HevcRateModel`, :class:`VvcRateModel`).
What is modelled:

1. The colour path of :mod:`rrd_pipeline.codecs.ffmpeg`: edge replication right and down (here to a multiple of 64,
   so that chroma has whole 32 x 32 blocks), full-range BT.709 Y'CbCr (:func:`rrd.color.rgb_to_ycbcr`),
   chroma = mean of each 2 x 2 block (4:2:0, centre sited), limited-range scaling to 8-bit code
   units (``219 Y``, ``224 Cb``, ``224 Cr``; the constant offsets 16 and 128 are left out: every
   prediction mode below reproduces them exactly). This is :func:`rrd.color.rgb_to_yuv420` followed
   by ``to_limited_range(..., 8)`` without the offsets.
2. Quantisation step ``Qstep = 2^((QP - 4) / 6)`` in 8-bit units (HEVC and VVC share this scale; a
   10-bit encoder applies the same step to 4x larger samples). The orthonormal DCT coefficient of a
   prediction residual divided by ``Qstep`` is the quantity an HEVC/VVC quantiser rounds (with a
   dead zone: the fitted ``threshold`` is where a coefficient is half likely to survive).
3. Intra prediction, reconstruction-free: every n x n block of each plane (luma, Cb, Cr) is predicted
   from the ORIGINAL samples of the row above it (n samples plus the top-right one) and of the
   column to its left (n samples), with four of the codec's modes:

   * DC: the mean of the 2n neighbours;
   * planar (HEVC/VVC mode 0): ``((n-1-x) L[y] + (x+1) T[n] + (n-1-y) T[x] + (y+1) L[n-1]) / 2n``,
     the bottom-left sample ``L[n]`` replaced by ``L[n-1]`` (it is usually not yet coded);
   * horizontal ``L[y]`` and vertical ``T[x]``.

   Blocks on the top row of a tile use the tile's first row as their row above and blocks on the
   left column its first column (the codec substitutes unavailable neighbours in a similar way).
   The residual's n x n DCT (:func:`rrd.rate.transform.block_dct`) is costed per coefficient with
   :func:`rrd.rate.base.coefficient_bits`, plus ``cbf_bits * (1 - P(all coefficients vanish))``
   (a coded-block flag and the last-position coding) and ``block_bits`` per block. The encoder's RD
   mode decision is a soft minimum over the four modes (temperature :data:`MODE_TEMPERATURE_BITS`):
   ``-tau log(mean_m exp(-bits_m / tau))``.
4. Block sizes: a quadtree of 8, 16 and 32 (:data:`BLOCK_SIZES`, :func:`quadtree_bits`): each block
   costs the soft minimum of being coded whole and of being split into four. Without it (8 x 8
   blocks only) a smooth gutter pays ``block_bits`` per 8 x 8 block, more than a gutter of flat 8 x 8
   patches; the optimiser then carved gutters into such patches, which the real encoders, coding
   smooth areas in large blocks, code worse (measured on the demo scene: the real bits fell 4 % where
   the model promised 50 %, and the rendering PSNR after coding fell 1.5 dB at every lambda).

5. The optimiser's cost (:meth:`VideoRateModel.cost`, where ``error_bits`` is set): each mode's bits plus
   its expected quantisation error, ``(1 - s) q^2 + s / 12`` squared steps per coefficient (dropped whole or
   rounded), at ``error_bits`` bits per squared step: the encoder's rate-distortion cost, in the mode and
   block decisions too.

Real encoders also predict from reconstructed samples, with more angular modes and 4 x 4 (and, in
VVC, 64 x 64 and non-square) blocks; the model keeps the four modes and three sizes that decide the
cost of smooth gutters and chart edges.

Fitted constants (:data:`HEVC_LUMA`, ...): least squares of ``log(estimated / real bits)`` over
encodes at QP 22, 27, 32, 37, 42 of 512 x 512 crops of the Sceaux Castle and Meshroom NASA atlases in
six variants (as delivered, push-pull filled, blurred sigma 1 and 2.5, noise sigma 6/255, posterised
to 8 levels): HEVC 8-bit, VVC preset "faster", with 8 x 8 blocks only and the dead-zone threshold at
0.7; ``python benchmarks/bench_rate_models.py --fit hevc --thresholds 0.7`` (or ``vvc``) refits them
for the current model. The model then uses them with the quadtree and the thresholds of
:data:`rrd.settings.CODEC_TUNING`: HEVC's lower than the dead zone (the optimiser needs the right gradient
more than the lowest fit error: a cost that falls steeply at the dead zone invites it to nudge coefficients
just under it, which the encoder then drops whole), VVC's at the dead zone with the coding error priced in
the optimiser's cost (``error_bits``). With the lower threshold the HEVC estimates run high. The default
``scale`` stays 1 because the optimiser's lambda rule and step sizes were tuned with it;
:func:`rrd.rate.calibrate` fits the scale where absolute bits matter. ``header_bits`` is the size of a
flat 16 x 16 picture (parameter sets, slice header).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from rrd.color import rgb_to_ycbcr
from rrd.errors import InputError
from rrd.rate.base import (CoefficientCost, RateModel, banded_bits, check_tiles, register_rate_model,
                            soft_nonzero)
from rrd.rate.transform import block_dct, color_planes, dct_matrix, pad_edge
from rrd.settings import CODEC_TUNING

__all__ = [
    "BLOCK_SIZES",
    "HEVC_CHROMA",
    "HEVC_LUMA",
    "HevcRateModel",
    "MODES",
    "MODE_TEMPERATURE_BITS",
    "VVC_CHROMA",
    "VVC_LUMA",
    "VideoPlaneCost",
    "VideoRateModel",
    "VvcRateModel",
    "block_mode_terms",
    "plane_bits",
    "quadtree_bits",
    "qstep",
]

_BLOCK = 8
BLOCK_SIZES: tuple[int, ...] = (8, 16, 32)
"""Block sizes of the quadtree, in samples of each plane (luma and 4:2:0 chroma alike)."""
# Edge replication to this multiple keeps the 4:2:0 chroma planes in whole blocks of the largest size.
_MULTIPLE = 2 * BLOCK_SIZES[-1]
# Order of the modes along the mode axis of block_mode_terms.
MODES: tuple[str, ...] = ("dc", "planar", "horizontal", "vertical")
# Temperature of the soft minimum over modes, in bits.
MODE_TEMPERATURE_BITS = 1.0
# Limited-range scale of 8-bit luma and chroma code values (ITU-R BT.709 / BT.601 "video" range).
_LUMA_SPAN, _CHROMA_SPAN = 219.0, 224.0


@dataclass(frozen=True)
class VideoPlaneCost:
    """Constants of one kind of plane (luma, or both chroma planes).

    Attributes:
        coefficient: cost of each residual coefficient (see :class:`rrd.rate.base.CoefficientCost`).
        cbf_bits: bits of a block with at least one surviving coefficient, times that probability.
        block_bits: bits every 8 x 8 block costs whatever its content (partitioning, mode).
    """

    coefficient: CoefficientCost
    cbf_bits: float
    block_bits: float


def qstep(qp: int) -> float:
    """HEVC/VVC quantisation step in 8-bit units: ``2^((qp - 4) / 6)`` (QP 4 -> 1, QP 22 -> 8)."""
    return 2.0 ** ((qp - 4) / 6.0)


class _TermSums(torch.autograd.Function):
    """Per-coefficient rate terms summed over some axes, with the derivative written out.

    The terms, stacked last: soft non-zero ``s = r / (1 + r)`` with ``r = (q / t)^4``, ``s * log2(1 + |q|)``,
    ``log(1 + r)`` and, with ``with_error``, the expected squared quantisation error ``(1 - s) q^2 + s / 12`` in
    steps^2 (a dropped coefficient is lost whole, a surviving one is rounded). Autograd would keep and revisit
    every intermediate of these few elementwise formulas; this keeps three tensors and the backward is one
    pass of closed forms (about twice as fast for the whole video model).
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, threshold: float, with_error: bool,  # type: ignore[override]
                dims: tuple[int, ...]) -> torch.Tensor:
        t2 = threshold * threshold
        u = torch.mul(q, q).mul_(1.0 / t2)
        inverse = torch.mul(u, u).add_(1.0).reciprocal_()        # 1 / (1 + r)
        survive = 1.0 - inverse
        octaves = torch.log1p(q.abs()).mul_(1.0 / math.log(2.0))  # log2(1 + |q|)
        columns = [survive, survive * octaves, torch.log(inverse).neg_()]
        if with_error:
            columns.append(torch.mul(q, q).mul_(inverse).add_(survive, alpha=1.0 / 12.0))
        ctx.save_for_backward(q, inverse, octaves)
        ctx.t2, ctx.with_error, ctx.dims = t2, with_error, dims
        return torch.stack([c.sum(dim=dims) if dims else c for c in columns], dim=-1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        q, inverse, octaves = ctx.saved_tensors
        g = grad
        for axis in sorted(ctx.dims):
            g = g.unsqueeze(axis)
        g = g.unbind(-1)
        # d log(1 + r)/dq = 4 u q / t^2 / (1 + r) with u = (q / t)^2; ds/dq is that times 1 / (1 + r).
        dlog = torch.mul(q, q).mul_(q).mul_(4.0 / (ctx.t2 * ctx.t2)).mul_(inverse)
        inner = torch.mul(octaves, g[1]).add_(g[0])
        if ctx.with_error:
            inner.addcmul_(torch.mul(q, q).neg_().add_(1.0 / 12.0), g[3])
        out = inner.mul_(inverse).add_(g[2]).mul_(dlog)
        magnitude = q.abs().add_(1.0).mul_(math.log(2.0))
        out.addcmul_(torch.sign(q).mul_(1.0 - inverse).div_(magnitude), g[1])
        if ctx.with_error:
            out.addcmul_(torch.mul(q, inverse).mul_(2.0), g[3])
        return out, None, None, None


def _terms(q: torch.Tensor, threshold: float, with_error: bool, dims: tuple[int, ...] = ()) -> torch.Tensor:
    """The rate terms of :class:`_TermSums` of each coefficient ``q`` (in steps), summed over ``dims``.

    Returns ``q``'s shape without ``dims``, plus a last axis of 3 terms (4 with ``with_error``); differentiable.
    """
    return _TermSums.apply(q, threshold, with_error, dims)


@functools.lru_cache(maxsize=None)
def _ramps(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DCT of the planar weights ``n-1-x`` and ``x+1`` (float64, (n,))."""
    x = torch.arange(n, dtype=torch.float64)
    d = dct_matrix(n, torch.float64)
    return d @ (n - 1 - x), d @ (x + 1)


def block_mode_terms(plane: torch.Tensor, step: float, threshold: float, n: int = _BLOCK,
                     with_error: bool = False) -> torch.Tensor:
    """Rate terms of every n x n block of a plane under each intra mode of :data:`MODES`.

    Args:
        plane: (1 + n * nby, n * nbx) floating samples in 8-bit code units; row 0 is the row above
            the first block row (context), the rest are the blocks.
        step: quantisation step (:func:`qstep`).
        threshold: dead-zone threshold in steps (see :func:`rrd.rate.base.soft_nonzero`).
        n: block size.
        with_error: add the quantisation error term (see :func:`plane_bits`).
    Returns:
        (nby, nbx, 4, 3) tensor ((nby, nbx, 4, 4) with ``with_error``): for each block and mode, the sums
        over the residual's n^2 quantised DCT coefficients of ``s``, ``s * log2(1 + |q|)`` and
        ``log(1 + (q/t)^4)`` (so that the probability that all coefficients vanish is ``exp(-that term)``),
        and of the expected squared quantisation error ``(1 - s) q^2 + s / 12`` in steps^2; differentiable.
    """
    rows, width = plane.shape
    nby, nbx = (rows - 1) // n, width // n
    d = dct_matrix(n, plane.dtype, plane.device)
    ramp_down, ramp_up = (r.to(plane) for r in _ramps(n))
    root = math.sqrt(n)

    coef = block_dct(plane[1:], n).mul_(1.0 / step)            # (nby, u, nbx, v), in steps
    top = plane[0:rows - 1:n]                                   # (nby, W): row above each block row
    above = top.reshape(nby, nbx, n)                            # T[x]
    above_right = torch.cat([top[:, n::n], top[:, -1:]], dim=1)  # T[8], edge-replicated at the right
    left = torch.cat([plane[1:, :1], plane[1:, n - 1:width - 1:n]], dim=1).reshape(nby, n, nbx)  # L[y]
    dc_value = (above.sum(-1) + left.sum(1)) * (1.0 / (2 * n * step))
    left_coef = d @ left                                        # (nby, u, nbx): DCT of L
    above_coef = above @ d.T                                    # (nby, nbx, v): DCT of T

    # Each directional mode changes one row or column of the residual's coefficients (DC one coefficient):
    # its terms are the whole block's, with that row or column swapped.
    first_col, first_row, corner = coef[:, :, :, 0], coef[:, 0], coef[:, 0, :, 0]
    total = _terms(coef, threshold, with_error, (1, 3))
    dc = total - _terms(corner, threshold, with_error) + _terms(corner - n * dc_value, threshold, with_error)
    horizontal = total - _terms(first_col, threshold, with_error, (1,)) + _terms(
        first_col - left_coef * (root / step), threshold, with_error, (1,))
    vertical = total - _terms(first_row, threshold, with_error, (2,)) + _terms(
        first_row - above_coef * (root / step), threshold, with_error, (2,))

    # DCT of the planar prediction: four separable (rank-one) terms.
    planar = left_coef[..., None] * ramp_down + ramp_down[:, None, None] * above_coef[:, None]
    corner_terms = torch.zeros_like(planar)
    corner_terms[:, 0] = root * above_right[..., None] * ramp_up
    corner_terms[:, :, :, 0] = corner_terms[:, :, :, 0] + root * ramp_up[:, None] * left[:, -1][:, None, :]
    planar = (planar + corner_terms) * (1.0 / (2 * n * step))
    planar_terms = _terms(coef - planar, threshold, with_error, (1, 3))
    return torch.stack([dc, planar_terms, horizontal, vertical], dim=2)


def plane_bits(terms: torch.Tensor, cost: VideoPlaneCost, temperature: float = MODE_TEMPERATURE_BITS,
               error_bits: float = 0.0) -> torch.Tensor:
    """Bits of each block from :func:`block_mode_terms`: a soft minimum over the modes.

    Args:
        terms: (..., modes, 3 or 4) from :func:`block_mode_terms`.
        cost: the plane's constants.
        temperature: soft-minimum temperature in bits (-> 0: the cheapest mode).
        error_bits: price of the quantisation error, bits per squared step (needs the fourth term): the
            encoder's rate-distortion cost instead of its bits (see :attr:`VideoRateModel.error_bits`).
    Returns:
        (...) bits per block, ``-tau log(mean_m exp(-bits_m / tau))`` (between the cheapest mode's
        bits and the mean over modes).
    """
    mode_bits = (terms[..., 0] * cost.coefficient.nonzero_bits + terms[..., 1] * cost.coefficient.magnitude_bits
                 + cost.cbf_bits * (1.0 - torch.exp(-terms[..., 2])) + cost.block_bits)
    if error_bits:
        mode_bits = mode_bits + error_bits * terms[..., 3]
    return _soft_min(mode_bits, temperature)


def quadtree_bits(terms: Sequence[torch.Tensor], cost: VideoPlaneCost,
                  temperature: float = MODE_TEMPERATURE_BITS, error_bits: float = 0.0) -> torch.Tensor:
    """Bits of a plane coded with a quadtree of block sizes: each block is coded whole or split in four.

    Args:
        terms: :func:`block_mode_terms` of the plane at block sizes ``n, 2n, 4n, ...`` (smallest first),
            shapes ``(..., nby / 2^k, nbx / 2^k, modes, 3)`` (leading axes: e.g. a batch of planes).
        cost: the plane's constants (the same for every size: ``block_bits`` is paid once per block,
            which is what makes a large smooth block cheaper than four small ones).
        temperature: of the soft minima over modes and over "whole or split".
        error_bits: see :func:`plane_bits`.
    Returns:
        (..., nby / 2^K, nbx / 2^K) bits of the largest blocks.
    """
    bits = plane_bits(terms[0], cost, temperature, error_bits)
    for level in terms[1:]:
        *lead, rows, cols = level.shape[:-2]
        split = bits.reshape(*lead, rows, 2, cols, 2).sum(dim=(-3, -1))
        bits = _soft_min(torch.stack([plane_bits(level, cost, temperature, error_bits), split], dim=-1), temperature)
    return bits


def _soft_min(bits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``-tau log(mean exp(-bits / tau))`` over the last axis."""
    choices = bits.shape[-1]
    return -temperature * (torch.logsumexp(bits * (-1.0 / temperature), dim=-1) - math.log(choices))


@functools.lru_cache(maxsize=None)
def _video_matrix() -> tuple[tuple[float, float, float], ...]:
    """Rows Y', Cb', Cr' of RGB in [0, 1] -> limited-range 8-bit code units without offsets."""
    matrix = rgb_to_ycbcr(torch.eye(3, dtype=torch.float64), "bt709").T
    span = torch.tensor([_LUMA_SPAN, _CHROMA_SPAN, _CHROMA_SPAN], dtype=torch.float64)
    return tuple(tuple(row) for row in (matrix * span[:, None]).tolist())


@dataclass(frozen=True)
class VideoRateModel(RateModel):
    """Shared implementation of the HEVC and VVC rate models; ``param`` = QP.

    Attributes:
        scale: calibration factor (see :class:`rrd.rate.base.RateModel`).
        luma, chroma: the fitted plane constants.
        threshold: where a coefficient counts as half surviving, in quantisation steps
            (:data:`rrd.settings.CODEC_TUNING` holds each model's, with the result that chose it).
        error_bits: price, in bits per squared quantisation step, of the coding error the optimiser's
            :meth:`cost` adds to the bits (0: none, :meth:`cost` is :meth:`bits`). Where it is set the
            threshold can sit at the encoder's dead zone (honest bits) without inviting the optimiser to
            nudge coefficients just under it: a coefficient pushed under the dead zone is then priced
            for being lost whole. An encoder deciding by ``D + lambda R`` with HEVC's
            ``lambda = 0.57 * 2^((QP - 12) / 3)`` prices a squared step at about 11 bits at every QP.
    """

    luma: VideoPlaneCost = field(default=None)  # type: ignore[assignment]
    chroma: VideoPlaneCost = field(default=None)  # type: ignore[assignment]
    threshold: float = 0.5
    error_bits: float = 0.0

    unit_rows: ClassVar[int] = _MULTIPLE
    context_rows: ClassVar[int] = 2  # one luma row, and the chroma row made of two luma rows

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.error_bits) and self.error_bits >= 0):
            raise InputError(f"rate model error_bits must be a finite number >= 0, got {self.error_bits!r}")

    def band_bits(self, band: torch.Tensor, context: int, pad_rows: int, param: int) -> torch.Tensor:
        """Unscaled bits of 64-row units of one tile (see :func:`rrd.rate.base.banded_bits`).

        Args:
            band: (context + h, W, 3) RGB in [0, 1]; ``context`` is 0 or 2 rows.
            pad_rows: rows of edge replication below (last band only).
            param: QP.
        """
        return self._band_cost(band, context, pad_rows, param, 0.0)

    def cost(self, tiles: torch.Tensor, param: int) -> torch.Tensor:
        """:meth:`bits` with the coding error priced at :attr:`error_bits` (also in the soft mode decisions)."""
        if not self.error_bits:
            return self.bits(tiles, param)
        tiles, param = check_tiles(tiles), self.check_param(param)
        raw = banded_bits(tiles, lambda band, context, pad_rows: self._band_cost(band, context, pad_rows, param,
                                                                                 self.error_bits),
                          self.unit_rows, self.context_rows)
        return self.header_bits * tiles.shape[0] + self.scale * raw

    def _band_cost(self, band: torch.Tensor, context: int, pad_rows: int, param: int,
                   error_bits: float) -> torch.Tensor:
        """:meth:`band_bits` with the coding error priced at ``error_bits`` bits per squared step."""
        luma, *chroma = self.plane_terms(band, context, pad_rows, param, with_error=error_bits > 0)
        bits = quadtree_bits(luma, self.luma, error_bits=error_bits).sum()
        for terms in chroma:
            bits = bits + quadtree_bits(terms, self.chroma, error_bits=error_bits).sum()
        return bits

    def plane_terms(self, band: torch.Tensor, context: int, pad_rows: int,
                    param: int, with_error: bool = False) -> list[list[torch.Tensor]]:
        """:func:`block_mode_terms` of the Y', Cb', Cr' planes of a band at each block size of the quadtree.

        Arguments as :meth:`band_bits` (``with_error`` as :func:`block_mode_terms`). Returns:
            [luma, cb, cr], each a list over :data:`BLOCK_SIZES` (smallest first) of
            (rows / n, W' / n, 4, 3 or 4) terms, ``W'`` the width padded to :data:`_MULTIPLE`, chroma planes
            half the size.
        """
        ycc = pad_edge(color_planes(band, _video_matrix()), _MULTIPLE, pad_rows)   # (3, context + h, W')
        if context == 0:
            # The first band's "row above" is its own first row (no neighbour above the tile).
            ycc = torch.cat([ycc[:, :1], ycc[:, :1], ycc], dim=1)
        chroma = F.avg_pool2d(ycc[1:], 2)                         # (2, 1 + h/2, W'/2)
        step = qstep(param)
        return [[block_mode_terms(plane, step, self.threshold, n, with_error) for n in BLOCK_SIZES]
                for plane in (ycc[0, 1:], chroma[0], chroma[1])]


# Fitted constants (see the module docstring).
HEVC_LUMA = VideoPlaneCost(CoefficientCost(1.577, 1.0), cbf_bits=6.037, block_bits=0.5062)
HEVC_CHROMA = VideoPlaneCost(CoefficientCost(6.276, 1.0), cbf_bits=0.4013, block_bits=0.1414)
VVC_LUMA = VideoPlaneCost(CoefficientCost(1.575, 1.0), cbf_bits=4.079, block_bits=0.4)
VVC_CHROMA = VideoPlaneCost(CoefficientCost(0.0, 1.0), cbf_bits=4.238, block_bits=0.2454)


@register_rate_model
@dataclass(frozen=True)
class HevcRateModel(VideoRateModel):
    """Rate model of HEVC as ``rrd_pipeline.codecs.ffmpeg.HevcCodec`` codes it (x265 all-intra, constant QP 0..51)."""

    luma: VideoPlaneCost = field(default=HEVC_LUMA)
    chroma: VideoPlaneCost = field(default=HEVC_CHROMA)
    threshold: float = CODEC_TUNING["hevc"].threshold

    codec: ClassVar[str] = "hevc"
    header_bits: ClassVar[float] = 760.0


@register_rate_model
@dataclass(frozen=True)
class VvcRateModel(VideoRateModel):
    """Rate model of VVC as ``rrd_pipeline.codecs.ffmpeg.VvcCodec`` codes it (vvenc all-intra, constant QP 0..63)."""

    luma: VideoPlaneCost = field(default=VVC_LUMA)
    chroma: VideoPlaneCost = field(default=VVC_CHROMA)
    threshold: float = CODEC_TUNING["vvc"].threshold
    error_bits: float = CODEC_TUNING["vvc"].error_bits

    codec: ClassVar[str] = "vvc"
    header_bits: ClassVar[float] = 656.0
