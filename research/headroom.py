"""How much render-aware preprocessing could save on a scene: the R-RD headroom, under a Gaussian model.

A codec spends its bits by texel-space squared error; the rendering distortion weighs every block-DCT
coefficient of the atlas by what the views sample of it: its *render weight* ``w = phi' A phi`` (``A`` the
folded quadratic form of :mod:`rrd.quadratic`, ``phi`` the coefficient's basis function in its block). Where
those weights are uneven (texels seen from far away or not at all, the fine detail that bilinear sampling
attenuates), bits can move from coefficients that matter little to the renders to those that matter much.
This module estimates how many, before any optimisation is run.

The model: every coefficient ``c`` (JFIF YCbCr planes in 8-bit units, DC predicted from the block to its
left, as JPEG codes it) is a Gaussian source of variance ``c^2``. Coding it at distortion ``d < c^2`` costs
``1/2 log2(c^2 / d)`` bits (its rate-distortion function); skipping it costs ``c^2`` and no bits. Its error
counts ``g w`` times in the rendering distortion, ``g`` the weight of its colour plane in RGB squared error
(:data:`PLANE_GAINS`). Three coders are compared at equal rendering distortion:

- the *anchor*, the codec as it is, every texel alike: an RDO encoder (HEVC, VVC) codes each coefficient at
  one level ``theta`` (reverse water-filling, skipping those below it); JPEG quantises with its table's step
  ``Q``: ``d = Q^2 / 12`` where ``|c| >= Q / 2``, skipped otherwise (:func:`anchor_curve`);
- *weighted*: an encoder that knew every render weight (reverse water-filling on ``g w c^2``), the best any
  preprocessing and codec together could do under the model (:func:`weighted_curve`);
- *preprocessed*: the anchor coding the atlas with each coefficient shrunk by a factor ``a`` in [0, 1], chosen
  per coefficient for bits + ``mu`` x rendering distortion (:func:`preprocessed_curve`). Coding the shrunk
  source ``a c`` at level ``theta`` leaves the Gaussian test channel's error ``(1 - a)^2 c^2 +
  theta (2 - a) / a`` (the coded value is ``a c`` minus a noise uncorrelated with the reconstruction): the
  model's stand-in for a preprocessor in front of the real codec, which can change the signal but not where
  the codec puts its noise.

:func:`bd_rate_of` compares two curves as the evaluation does (BD-rate, pchip). The model ignores intra
prediction beyond the DC, chroma subsampling, the entropy coder's context and the couplings of ``A`` between
basis functions, so its figures are estimates, not bounds; benchmarks/results/README.md compares them (``benchmarks/
bench_headroom.py``) with the real codecs' rates, which run higher (JPEG's several times: its Huffman code
spends bits on every surviving coefficient besides its magnitude), and with what the optimiser measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from rrd.color import rgb_to_ycbcr
from rrd.metrics import bd_rate, psnr_from_mse
from rrd.preprocess import operating_qstep
from rrd.quadratic import QuadraticForm
from rrd.rate.jpeg import CHROMA_TABLE, LUMA_TABLE, quant_table
from rrd.rate.transform import block_dct, dct_matrix

__all__ = ["ModelCurve", "PLANE_GAINS", "basis_weights", "block_coefficients", "anchor_curve", "jpeg_theta",
           "qp_theta", "weighted_curve", "preprocessed_curve", "bd_rate_of"]

# Rows Y, Cb, Cr of the JFIF transform (full-range BT.601) of RGB in [0, 1] to 8-bit units.
_JFIF = 255.0 * rgb_to_ycbcr(torch.eye(3, dtype=torch.float64), "bt601").T

PLANE_GAINS: tuple[float, float, float] = tuple(float(g) for g in (torch.linalg.inv(_JFIF / 255.0) ** 2).sum(0))
"""Squared RGB error per unit of squared Y, Cb and Cr error (the column norms of the JFIF YCbCr -> RGB
matrix): 3.0, 3.26 and 2.48, so an error in any plane counts two and a half to three times in RGB SSE."""

# Offsets of the quadratic form's pair slots in (rows, columns): right, down-left, down, down-right
# (:attr:`rrd.quadratic.QuadraticForm.offsets`).
_PAIR_STEPS = ((0, 1), (1, -1), (1, 0), (1, 1))


@dataclass(frozen=True)
class ModelCurve:
    """Rate-distortion points of one coder, in the model's units.

    Attributes:
        bits: (N,) bits of the coefficients the curve was computed on.
        distortion: (N,) rendering distortion (render-weighted squared error, 8-bit units).
    """

    bits: np.ndarray
    distortion: np.ndarray

    def lower_hull(self) -> "ModelCurve":
        """The points no other point beats in both bits and distortion, by increasing bits."""
        order = np.argsort(self.bits, kind="stable")
        keep, best = [], math.inf
        for i in order:
            if self.distortion[i] < best:
                keep.append(i)
                best = self.distortion[i]
        return ModelCurve(self.bits[keep], self.distortion[keep])


def basis_weights(form: QuadraticForm, shape: tuple[int, int, int], block: int) -> torch.Tensor:
    """Render weight of every block-DCT basis function: ``phi' A phi`` with ``A`` the form's quadratic part.

    Exact for each basis function (it is zero outside its block); the model keeps only this diagonal of ``A``
    in the block-DCT basis, not the couplings between basis functions.

    Args:
        form: a folded distortion (views, and the prior if one was added), its quadratic part per channel.
        shape: (T, H, W) of the atlas, H and W multiples of ``block``.
        block: the DCT block size.
    Returns:
        (T, H/block, W/block, block^2) float64, coefficients in row-major (u, v) order, non-negative
        (``A`` is positive semi-definite).
    """
    T, H, W = shape
    if H % block or W % block:
        raise ValueError(f"atlas {H}x{W} is not a whole number of {block}x{block} blocks")
    d = dct_matrix(block, torch.float64)
    phi = torch.einsum("uy,vx->uvyx", d, d).reshape(block * block, block, block)

    def per_block(values: torch.Tensor, products: torch.Tensor) -> torch.Tensor:
        tiles = values.double().reshape(T, H // block, block, W // block, block).transpose(2, 3)
        return tiles.reshape(T, H // block, W // block, block * block) @ products.reshape(block * block, -1).T

    weights = per_block(form.diag, phi * phi)
    for slot, (dy, dx) in enumerate(_PAIR_STEPS):
        # phi(y, x) phi(y + dy, x + dx) where the partner lies in the same block, else 0.
        products = torch.zeros_like(phi)
        x0, x1 = max(0, -dx), block - max(0, dx)
        products[:, : block - dy, x0:x1] = phi[:, : block - dy, x0:x1] * phi[:, dy:, x0 + dx: x1 + dx]
        weights += per_block(form.pairs[slot], products)
    return weights.clamp_(min=0.0)


def block_coefficients(tiles: torch.Tensor, block: int) -> torch.Tensor:
    """Block-DCT coefficients of the atlas's JFIF YCbCr planes, DC predicted from the left block.

    Args:
        tiles: (T, H, W, 3) RGB in [0, 1].
        block: DCT block size (8 is JPEG's).
    Returns:
        (T, H/block, W/block, block^2, 3) float64 in 8-bit units (orthonormal DCT: for block 8 these are
        JPEG's coefficients), row-major (u, v); coefficient 0 is the DC minus the DC of the block to its
        left (0 in the first column).
    """
    T, H, W, _ = tiles.shape
    planes = torch.einsum("thwc,pc->tphw", tiles.double(), _JFIF)
    coeffs = block_dct(planes, block)  # (T, 3, H/b, b, W/b, b)
    coeffs = coeffs.permute(0, 2, 4, 3, 5, 1).reshape(T, H // block, W // block, block * block, 3).contiguous()
    dc = coeffs[..., 0, :].clone()
    coeffs[:, :, 1:, 0, :] -= dc[:, :, :-1, :]
    return coeffs


def qp_theta(qp: float) -> float:
    """The RDO anchor's level for a HEVC/VVC QP: ``Qstep^2 / 6`` (:func:`rrd.preprocess.operating_qstep`).

    Between the quantiser's own noise ``Qstep^2 / 12`` and the ``Qstep^2 / 4`` below which a dead zone at
    half a step drops a coefficient.
    """
    return operating_qstep("hevc", qp) ** 2 / 6.0


def jpeg_theta(quality: int) -> torch.Tensor:
    """JPEG's noise ``Q^2 / 12`` per coefficient and plane at ``quality`` (libjpeg's scaled tables; 8x8 blocks).

    Returns:
        (64, 3) float64: the luma table's for Y, the chroma table's for Cb and Cr, row-major (u, v).
    """
    luma = torch.tensor(quant_table(LUMA_TABLE, quality), dtype=torch.float64)
    chroma = torch.tensor(quant_table(CHROMA_TABLE, quality), dtype=torch.float64)
    return torch.stack([luma, chroma, chroma], dim=1) ** 2 / 12.0


def _weights(w: torch.Tensor) -> torch.Tensor:
    """(..., K) basis weights -> (..., K, 3) weights per plane."""
    return w[..., None] * torch.tensor(PLANE_GAINS, dtype=w.dtype)


def _code(c2: torch.Tensor, theta: torch.Tensor, survive: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per coefficient (coded, bits) of the anchor at level ``theta``: coded where ``c^2 >= survive theta``
    (at ``1/2 log2(c^2 / theta)`` bits), skipped otherwise."""
    coded = c2 >= survive * theta
    return coded, torch.where(coded, 0.5 * torch.log2(torch.clamp(c2 / theta, min=1.0)), 0.0)


def anchor_curve(coeffs: torch.Tensor, weights: torch.Tensor, thetas: list[torch.Tensor | float],
                 survive: float = 1.0) -> ModelCurve:
    """The codec as it is: every coefficient at the level of the operating point, whatever its render weight.

    Args:
        coeffs: (..., K, 3) from :func:`block_coefficients`.
        weights: (..., K) from :func:`basis_weights` (same leading shape).
        thetas: one level per operating point: a float (RDO, :func:`qp_theta`) or a (K, 3) tensor (JPEG,
            :func:`jpeg_theta`).
        survive: a coefficient is coded where ``c^2 >= survive * theta``: 1 for reverse water-filling (RDO),
            3 for rounding to the nearest step (``|c| >= Q / 2`` with ``theta = Q^2 / 12``).
    """
    c2, gw = coeffs ** 2, _weights(weights)
    bits, dist = [], []
    for t in thetas:
        theta = torch.as_tensor(t, dtype=c2.dtype)
        coded, b = _code(c2, theta, survive)
        bits.append(float(b.sum()))
        dist.append(float((gw * torch.where(coded, torch.minimum(theta, c2), c2)).sum()))
    return ModelCurve(np.array(bits), np.array(dist))


def weighted_curve(coeffs: torch.Tensor, weights: torch.Tensor, levels: list[float]) -> ModelCurve:
    """An encoder that knew the render weights: reverse water-filling on ``g w c^2`` at each level.

    A coefficient of weight ``g w`` is coded at squared error ``level / (g w)`` (skipped where that exceeds
    ``c^2``, always where ``w = 0``), so every coded coefficient adds ``level`` to the rendering distortion.
    """
    c2, gw = coeffs ** 2, _weights(weights)
    bits, dist = [], []
    for level in levels:
        excess = gw * c2 / level
        bits.append(float((0.5 * torch.log2(torch.clamp(excess, min=1.0))).sum()))
        dist.append(float(torch.where(excess > 1.0, level, gw * c2).sum()))
    return ModelCurve(np.array(bits), np.array(dist))


def preprocessed_curve(coeffs: torch.Tensor, weights: torch.Tensor, thetas: list[torch.Tensor | float],
                       survive: float = 1.0, multipliers: tuple[float, ...] = (0.5, 1.0, 2.0),
                       shrinks: int = 16) -> ModelCurve:
    """The anchor coding a preprocessed atlas: each coefficient shrunk by the best ``a`` in [0, 1].

    For each operating point ``theta`` and each ``mu = m / (2 ln 2 theta_mean)`` (``m`` in ``multipliers``:
    the encoder's own slope ``1 / (2 ln 2 theta)`` and around it), every coefficient takes the shrink that
    minimises its bits + ``mu`` x its rendering error (see the module docstring); ``a = 0`` skips it.
    Returns every (theta, mu) point; take :meth:`ModelCurve.lower_hull` for the best.

    Args:
        coeffs, weights, thetas, survive: as in :func:`anchor_curve`.
        multipliers: the ``m`` above.
        shrinks: number of shrink factors tried between 0.3 and 1 (besides 0).
    """
    c2, gw = coeffs ** 2, _weights(weights)
    factors = [0.0, *torch.linspace(0.3, 1.0, shrinks).tolist()]
    bits, dist = [], []
    for t in thetas:
        theta = torch.as_tensor(t, dtype=c2.dtype)
        for m in multipliers:
            mu = m / (2 * math.log(2) * float(theta.mean()))
            best_cost = best_bits = best_err = None
            for a in factors:
                if a > 0:
                    coded, b = _code(c2 * (a * a), theta, survive)
                    # Coded: the shrink's own error plus the test channel's (module docstring); skipped: all of c.
                    err = gw * torch.where(coded, (1 - a) ** 2 * c2 + theta * (2 - a) / a, c2)
                else:
                    b, err = torch.zeros_like(c2), gw * c2
                cost = b + mu * err
                if best_cost is None:
                    best_cost, best_bits, best_err = cost, b, err
                else:
                    better = cost < best_cost
                    best_cost = torch.where(better, cost, best_cost)
                    best_bits = torch.where(better, b, best_bits)
                    best_err = torch.where(better, err, best_err)
            bits.append(float(best_bits.sum()))
            dist.append(float(best_err.sum()))
    return ModelCurve(np.array(bits), np.array(dist))


def bd_rate_of(anchor: ModelCurve, test: ModelCurve, samples: int, margin_db: float = 1.5) -> float:
    """BD-rate (%, pchip) of ``test``'s lower hull against ``anchor``, PSNR ``10 log10(samples 255^2 / D)``.

    Only the test points within ``margin_db`` of the anchor's PSNR range are used, so that the wide
    sweeps of the weighted and preprocessed coders do not bend the fit where the anchor has no points.
    """
    def psnr(curve: ModelCurve) -> np.ndarray:
        return np.array([psnr_from_mse(max(float(d), 1e-30) / samples, 255.0) for d in curve.distortion])

    hull = test.lower_hull()
    p_anchor, p_test = psnr(anchor), psnr(hull)
    near = (p_test >= p_anchor.min() - margin_db) & (p_test <= p_anchor.max() + margin_db)
    return bd_rate(anchor.bits, p_anchor, hull.bits[near], p_test[near])
