"""Differentiable rate model of baseline JPEG as Pillow (libjpeg-turbo) writes it (``rrd_pipeline.codecs.pillow``).

What is modelled, step by step as the encoder does it (ITU-T T.81; the colour path is documented
in :mod:`rrd_pipeline.codecs.pillow`):

1. Edge replication of the right and bottom borders up to whole MCUs (16 x 16 texels in 4:2:0,
   8 x 8 in 4:4:4), as libjpeg pads partial MCUs.
2. JFIF colour transform: full-range BT.601 Y'CbCr in 8-bit units (``255 * rgb_to_ycbcr(rgb,
   "bt601")``), level shift (Y - 128; Cb and Cr are already centred); 4:2:0 chroma is the mean of
   each 2 x 2 block.
3. 8 x 8 orthonormal DCT-II (:func:`rrd.rate.transform.block_dct`), division by the IJG example
   tables (T.81 Annex K) scaled by quality exactly as libjpeg's ``jpeg_set_quality`` with
   ``force_baseline``: ``s = 5000 / q`` below 50, else ``200 - 2 q``; entries ``(t * s + 50) // 100``
   clamped to 1..255 (:func:`quant_table`).
4. Entropy coding, replaced by a smooth estimate (:func:`rrd.rate.base.coefficient_bits`; its
   survival threshold sits below the rounding point on purpose, :data:`rrd.settings.CODEC_TUNING`):
   * every AC coefficient ``c / Q`` costs ``s(q) (nonzero_bits + magnitude_bits log2(1 + |q|))`` (the
     Huffman code of its (run, size) symbol plus its ``size`` extra bits);
   * the DC coefficient is coded as the difference from the previous block of the same component in
     coding order (DPCM; the predictor starts at 0 and is never reset, Pillow writes no restart
     markers), its cost is the same formula on the difference with the DC constants. In 4:2:0 the
     luma blocks are coded MCU by MCU (the four blocks of a 16 x 16 MCU in raster order, MCUs in
     raster order), chroma blocks in raster order;
   * every block costs ``block_bits`` more (at least its end-of-block code; fitted, the luma blocks
     carry the fixed cost of a whole MCU).
5. ``header_bits``: the 625 bytes Pillow writes around the entropy-coded data (SOI, JFIF APP0, two
   quantisation tables, SOF0, four standard Huffman tables, SOS, EOI), measured on Pillow's output,
   identical for 4:2:0 and 4:4:4.

Fitted constants (:data:`JPEG_LUMA`, :data:`JPEG_CHROMA`): non-negative least squares of the real
minus header bits against the model's terms, each row weighted by 1 / real bits (relative error), over
Pillow 4:2:0 encodes at quality 30, 40, ..., 90 of 512 x 512 crops of the Sceaux Castle and Meshroom
NASA atlases in six variants (as delivered, push-pull filled gutters, Gaussian blur sigma 1 and 2.5,
noise sigma 6/255, posterised to 8 levels), with the DC cost on the magnitude term (the comment at the
constants says why); ``python benchmarks/bench_rate_models.py --fit jpeg`` runs the current fit. The
default ``scale`` is 1 because the constants are fitted to absolute bits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from rrd.color import rgb_to_ycbcr
from rrd.errors import InputError
from rrd.rate.base import (CoefficientCost, RateModel, coefficient_bits, coefficient_bits_and_slope,
                           register_rate_model)
from rrd.settings import CODEC_TUNING
from rrd.rate.transform import block_dct, block_idct, color_planes, color_planes_grad, pad_edge, pad_edge_grad

__all__ = ["JPEG_CHROMA", "JPEG_LUMA", "JpegPlaneCost", "JpegRateModel", "LUMA_TABLE",
           "CHROMA_TABLE", "quant_table"]

# ITU-T T.81 Annex K.1 example quantisation tables, natural (row-major) order.
LUMA_TABLE: tuple[int, ...] = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
CHROMA_TABLE: tuple[int, ...] = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99) + (99,) * 32

_BLOCK = 8


@dataclass(frozen=True)
class JpegPlaneCost:
    """Constants of one kind of plane (luma, or both chroma planes).

    Attributes:
        block_bits: bits every 8 x 8 block costs whatever its content.
        ac: cost of each quantised AC coefficient.
        dc: cost of each quantised DC difference.
    """

    block_bits: float
    ac: CoefficientCost
    dc: CoefficientCost


# Fitted constants (see the module docstring). A DC difference costs by its magnitude (its size
# category and extra bits), which is what pulls the means of neighbouring blocks together in the
# gutters. A later fit (block bits fixed at 6 and 4) put the DC cost on the survival indicator instead
# (1.08 and 4.52 bits, no magnitude term): its bits were slightly closer (RMS relative error 1.1 %),
# but the optimiser then had no gradient on DC differences beyond half a step, and the saving on the
# demo scene (photo reference, against HBF) fell from -28.8 % to -11.9 % BD-rate.
JPEG_LUMA = JpegPlaneCost(block_bits=7.972, ac=CoefficientCost(2.988, 1.583), dc=CoefficientCost(0.0, 1.074))
JPEG_CHROMA = JpegPlaneCost(block_bits=0.0, ac=CoefficientCost(1.276, 3.287), dc=CoefficientCost(0.0, 4.742))


def quant_table(base: tuple[int, ...], quality: int) -> list[int]:
    """libjpeg's ``jpeg_set_quality(quality, force_baseline=True)`` scaling of a base table.

    Args:
        base: 64 entries, natural order. quality: 1..100.
    Returns:
        64 ints in 1..255. Example: quality 50 returns the base table unchanged.
    """
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(max((entry * scale + 50) // 100, 1), 255) for entry in base]


@functools.lru_cache(maxsize=64)
def _inverse_steps(quality: int, luma: bool) -> tuple[torch.Tensor, float]:
    """(8, 1, 8) float64 reciprocals of the AC steps (0 at DC) in the (u, j, v) layout, and the DC step."""
    table = torch.tensor(quant_table(LUMA_TABLE if luma else CHROMA_TABLE, quality), dtype=torch.float64)
    inverse = (1.0 / table).reshape(_BLOCK, _BLOCK)
    inverse[0, 0] = 0.0
    return inverse[:, None, :], float(table[0])


@functools.lru_cache(maxsize=None)
def _jfif_matrix() -> tuple[tuple[float, float, float], ...]:
    """Rows Y, Cb, Cr of the JFIF transform of RGB in [0, 1] to 8-bit units."""
    matrix = 255.0 * rgb_to_ycbcr(torch.eye(3, dtype=torch.float64), "bt601").T
    return tuple(tuple(row) for row in matrix.tolist())


# Level shift of the planes: Y - 128 (Cb and Cr come out centred).
_LEVEL_SHIFT = (-128.0, 0.0, 0.0)


@register_rate_model
@dataclass(frozen=True)
class JpegRateModel(RateModel):
    """Rate model of JPEG as ``rrd_pipeline.codecs.pillow.JpegCodec`` codes it (module docstring); ``param`` = quality.

    Attributes:
        scale: calibration factor (see :class:`rrd.rate.base.RateModel`).
        subsampling: "4:2:0" (default) or "4:4:4", as the codec's option.
        luma, chroma: the fitted constants.
        threshold: where a coefficient counts as half surviving, in quantisation steps. A quarter step,
            not JPEG's rounding point: a cost that falls steeply at the rounding point invites the optimiser
            to nudge coefficients just under it, which the encoder then drops whole (the value and the
            result that chose it: :data:`rrd.settings.CODEC_TUNING`).
    """

    subsampling: str = "4:2:0"
    luma: JpegPlaneCost = field(default=JPEG_LUMA)
    chroma: JpegPlaneCost = field(default=JPEG_CHROMA)
    threshold: float = CODEC_TUNING["jpeg"].threshold

    codec: ClassVar[str] = "jpeg"
    header_bits: ClassVar[float] = 8.0 * 625
    unit_rows: ClassVar[int] = 16  # one MCU row in 4:2:0, two in 4:4:4
    context_rows: ClassVar[int] = 16  # the previous MCU row holds the DC predictor of a band

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.subsampling not in ("4:2:0", "4:4:4"):
            raise InputError(f"jpeg rate model: subsampling {self.subsampling!r} is not supported; "
                             "choose one of ['4:2:0', '4:4:4']")

    def band_bits(self, band: torch.Tensor, context: int, pad_rows: int, param: int) -> torch.Tensor:
        """Unscaled bits of MCU rows of one tile (see :func:`rrd.rate.base.banded_bits`).

        Args:
            band: (context + h, W, 3) RGB in [0, 1]; ``context`` is 0 or 16 rows.
            pad_rows: rows of edge replication below (last band only).
            param: quality 1..100.
        """
        planes, luma_coef, chroma_coef = self._coefficients(band, context, pad_rows)
        inv_luma, step_luma = _inverse_steps(param, True)
        inv_chroma, step_chroma = _inverse_steps(param, False)
        bits = coefficient_bits(luma_coef * inv_luma.to(band), self.luma.ac, self.threshold).sum()
        bits = bits + coefficient_bits(chroma_coef * inv_chroma.to(band), self.chroma.ac, self.threshold).sum()
        luma_diff, chroma_diff = self._dc_differences(planes, context, luma_coef, chroma_coef)
        bits = bits + coefficient_bits(luma_diff * (1.0 / step_luma), self.luma.dc, self.threshold).sum()
        bits = bits + coefficient_bits(chroma_diff * (1.0 / step_chroma), self.chroma.dc, self.threshold).sum()
        return bits + self._block_bits(luma_coef, chroma_coef)

    def band_bits_and_grad(self, band: torch.Tensor, context: int, pad_rows: int,
                           param: int) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`band_bits` and its gradient, written out: every step before the entropy estimate is
        linear (colour transform, padding, chroma means, DCT, DC differences), so the gradient is the
        coefficients' slopes carried back through the adjoints of those steps. Autograd costs more on
        the CPU: it zero-fills a full-size gradient for every slice it goes back through.
        """
        band = band.detach()
        planes, luma_coef, chroma_coef = self._coefficients(band, context, pad_rows)
        inv_luma, step_luma = _inverse_steps(param, True)
        inv_chroma, step_chroma = _inverse_steps(param, False)
        inv_luma, inv_chroma = inv_luma.to(band), inv_chroma.to(band)
        luma_bits, luma_grad = coefficient_bits_and_slope(luma_coef * inv_luma, self.luma.ac, self.threshold)
        chroma_bits, chroma_grad = coefficient_bits_and_slope(chroma_coef * inv_chroma, self.chroma.ac, self.threshold)
        luma_grad.mul_(inv_luma)
        chroma_grad.mul_(inv_chroma)

        luma_diff, chroma_diff = self._dc_differences(planes, context, luma_coef, chroma_coef)
        luma_dc_bits, luma_slope = coefficient_bits_and_slope(luma_diff * (1.0 / step_luma), self.luma.dc,
                                                              self.threshold)
        chroma_dc_bits, chroma_slope = coefficient_bits_and_slope(chroma_diff * (1.0 / step_chroma),
                                                                  self.chroma.dc, self.threshold)
        luma_slope.mul_(1.0 / step_luma)
        chroma_slope.mul_(1.0 / step_chroma)
        # A DC value enters its own difference with +1 and the next block's with -1.
        luma_seq_grad, chroma_seq_grad = luma_slope.clone(), chroma_slope.clone()
        luma_seq_grad[:-1] -= luma_slope[1:]
        chroma_seq_grad[:, :-1] -= chroma_slope[:, 1:]
        luma_grad[:, 0, :, 0] += self._from_luma_order(luma_seq_grad, luma_coef.shape[0], luma_coef.shape[2])
        chroma_grad[:, :, 0, :, 0] += chroma_seq_grad.reshape(2, chroma_coef.shape[1], chroma_coef.shape[3])

        planes_grad = torch.empty_like(planes)
        planes_grad[:, :context] = 0.0
        planes_grad[0, context:] = block_idct(luma_grad)
        chroma_plane_grad = block_idct(chroma_grad)
        if self.subsampling == "4:2:0":
            # Adjoint of the 2 x 2 mean: a quarter of each coded sample's gradient to each of its four.
            rows, cols = chroma_plane_grad.shape[1:]
            chroma_plane_grad = (chroma_plane_grad[:, :, None, :, None].expand(2, rows, 2, cols, 2)
                                 .reshape(2, 2 * rows, 2 * cols) * 0.25)
        planes_grad[1:, context:] = chroma_plane_grad
        if context:
            # The predictors are block means of the context (see _dc_differences), each entering the
            # first difference with -1.
            chroma_side = self._mcu
            planes_grad[0, context - _BLOCK:context, -_BLOCK:] -= luma_slope[0] * (_BLOCK / _BLOCK ** 2)
            planes_grad[1:, context - chroma_side:context, -chroma_side:] -= (
                chroma_slope[:, :1, None] * (_BLOCK / chroma_side ** 2))
        grad = color_planes_grad(pad_edge_grad(planes_grad, band.shape[0], band.shape[1]), _jfif_matrix())
        bits = luma_bits + chroma_bits + luma_dc_bits + chroma_dc_bits + self._block_bits(luma_coef, chroma_coef)
        return bits, grad

    @property
    def _mcu(self) -> int:
        """MCU side in texels (16 in 4:2:0, 8 in 4:4:4)."""
        return 16 if self.subsampling == "4:2:0" else 8

    def _coefficients(self, band: torch.Tensor, context: int,
                      pad_rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The JFIF planes of a band and the 8 x 8 DCT coefficients of its coded rows.

        Returns:
            planes: (3, context + h', W') level-shifted Y, Cb, Cr, edge-replicated to whole MCUs;
            luma: (h'/8, 8, W'/8, 8) and chroma: (2, h''/8, 8, W''/8, 8) coefficients of the rows
            below the context (chroma at its coded resolution), layout of :func:`block_dct`.
        """
        planes = pad_edge(color_planes(band, _jfif_matrix(), _LEVEL_SHIFT), self._mcu, pad_rows)
        luma, chroma = planes[0, context:], self._chroma(planes[1:, context:])
        return planes, block_dct(luma, _BLOCK), block_dct(chroma, _BLOCK)

    def _dc_differences(self, planes: torch.Tensor, context: int, luma_coef: torch.Tensor,
                        chroma_coef: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The DC differences the encoder codes: (n,) luma in MCU order and (2, m) chroma in raster order."""
        luma_seq = self._to_luma_order(luma_coef[:, 0, :, 0])
        chroma_seq = chroma_coef[:, :, 0, :, 0].reshape(2, -1)
        if context:
            # The DC predictor: the last block of the previous MCU row (its bottom-right 8x8 luma
            # block, and its last chroma block), the last block coded before this band.
            previous = planes[:, :context, -self._mcu:]
            luma_prev = previous[0, -_BLOCK:, -_BLOCK:].mean() * _BLOCK
            chroma_prev = self._chroma(previous[1:])[:, -_BLOCK:, -_BLOCK:].mean(dim=(1, 2)) * _BLOCK
        else:
            luma_prev, chroma_prev = luma_seq.new_zeros(()), chroma_seq.new_zeros(2)
        return (torch.diff(luma_seq, prepend=luma_prev.reshape(1)),
                torch.diff(chroma_seq, dim=1, prepend=chroma_prev.reshape(2, 1)))

    def _to_luma_order(self, luma_dc: torch.Tensor) -> torch.Tensor:
        """(rows, cols) luma block values -> (rows * cols,) in coding order: in 4:2:0 the 2 x 2 blocks
        of each MCU in raster order, MCUs in raster order."""
        if self.subsampling == "4:2:0":
            rows, cols = luma_dc.shape
            luma_dc = luma_dc.reshape(rows // 2, 2, cols // 2, 2).permute(0, 2, 1, 3)
        return luma_dc.reshape(-1)

    def _from_luma_order(self, sequence: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """Inverse of :meth:`_to_luma_order`: (rows * cols,) -> (rows, cols)."""
        if self.subsampling == "4:2:0":
            return sequence.reshape(rows // 2, cols // 2, 2, 2).permute(0, 2, 1, 3).reshape(rows, cols)
        return sequence.reshape(rows, cols)

    def _block_bits(self, luma_coef: torch.Tensor, chroma_coef: torch.Tensor) -> float:
        """The fixed bits of every coded 8 x 8 block."""
        luma_blocks = luma_coef.shape[0] * luma_coef.shape[2]
        chroma_blocks = 2 * chroma_coef.shape[1] * chroma_coef.shape[3]
        return self.luma.block_bits * luma_blocks + self.chroma.block_bits * chroma_blocks

    def _chroma(self, chroma: torch.Tensor) -> torch.Tensor:
        """(2, H, W) full-resolution Cb, Cr -> the coded chroma planes (2x2 means in 4:2:0)."""
        return F.avg_pool2d(chroma, 2) if self.subsampling == "4:2:0" else chroma
