"""Rendering distortion as a quadratic form in the atlas, folded once from every view.

With fixed per-view taps (bilinear sampling), a rendered pixel is linear in the texels, so the
weighted squared error over all views is

    D(T) = sum_c [ sum_i a_i T_ic^2 + sum_o sum_i p_o[i] T_ic T_(i+o)c - 2 sum_i b_ic T_ic ] + c

over the flat texel vector ``T`` (M, C) (tiles, rows, columns; see :mod:`rrd.sample`). A bilinear tap
set spans a 2x2 texel block, so a texel only couples with its 8 neighbours: four offsets
``o`` in {1, W - 1, W, W + 1} (right, down-left, down, down-right; the other four are the same pairs seen
from the other side). Folding the views costs one pass over their pixels; afterwards D and its gradient
cost a few passes over the atlas, whatever the number of views or the photo resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from rrd.sample import Taps

__all__ = ["QuadraticForm", "QuadraticAccumulator", "masked_sse"]


@dataclass(frozen=True)
class QuadraticForm:
    """A distortion ``D(T)`` with a 3x3 texel stencil (see the module docstring).

    Attributes:
        diag: (M,) coefficients ``a_i`` of ``T_i^2``.
        pairs: (4, M) coefficients ``p_o[i]`` of ``T_i T_(i+o)`` for the offsets in :attr:`offsets` order;
            entries whose partner would fall outside the vector are 0.
        b: (M, C) linear coefficients (the references folded back onto the texels).
        c: constant: the weighted squared norm of the references.
        width: texels per atlas row (sets the offsets).
        weight_sum: total pixel weight folded in (the number of pixels for unit weights).
    """

    diag: torch.Tensor
    pairs: torch.Tensor
    b: torch.Tensor
    c: float
    width: int
    weight_sum: float

    @property
    def offsets(self) -> tuple[int, int, int, int]:
        return (1, self.width - 1, self.width, self.width + 1)

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "QuadraticForm":
        return replace(self, diag=self.diag.to(device, dtype), pairs=self.pairs.to(device, dtype),
                       b=self.b.to(device, dtype))

    def half_gradient_of_quadratic(self, T: torch.Tensor) -> torch.Tensor:
        """``A T`` where the quadratic part is ``T' A T`` (A symmetric): (M, C) -> (M, C)."""
        out = self.diag[:, None] * T
        for k, o in enumerate(self.offsets):
            p = self.pairs[k, :-o, None]
            out[:-o] += 0.5 * p * T[o:]
            out[o:] += 0.5 * p * T[:-o]
        return out

    def value(self, T: torch.Tensor) -> torch.Tensor:
        """D(T) (scalar tensor). T: (M, C)."""
        return (T * (self.half_gradient_of_quadratic(T) - 2 * self.b)).sum() + self.c

    def gradient(self, T: torch.Tensor) -> torch.Tensor:
        """dD/dT = 2 (A T - b): (M, C)."""
        return 2 * (self.half_gradient_of_quadratic(T) - self.b)

    def hessian_diagonal(self) -> torch.Tensor:
        """(M,) second derivative of D in each texel (2 a_i): the per-texel render weight."""
        return 2 * self.diag

    def with_prior(self, weight: torch.Tensor, target: torch.Tensor) -> "QuadraticForm":
        """Add ``sum_i weight_i |T_i - target_i|^2`` (a pull towards ``target``, e.g. the original texels).

        weight: (M,) non-negative; target: (M, C).
        """
        w = weight.to(self.diag)
        t = target.to(self.b)
        return replace(self, diag=self.diag + w, b=self.b + w[:, None] * t,
                       c=self.c + float((w[:, None] * t * t).sum()))


class QuadraticAccumulator:
    """Folds views into a :class:`QuadraticForm` one at a time (float64 sums).

    Args:
        n_texels: M, the length of the texel vector.
        width: texels per atlas row.
        channels: C.
    """

    def __init__(self, n_texels: int, width: int, channels: int = 3):
        self.M, self.width, self.C = n_texels, width, channels
        self.offsets = (1, width - 1, width, width + 1)
        self.diag_pairs = torch.zeros(5 * n_texels, dtype=torch.float64)  # slot 0 diag, slots 1..4 pairs
        self.b = torch.zeros(n_texels, channels, dtype=torch.float64)
        self.c = 0.0
        self.weight_sum = 0.0

    def add(self, taps: Taps, reference: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        """Fold one view.

        Args:
            taps: (N, K) taps of the view's pixels.
            reference: (N, C) the colour each pixel should render.
            weight: (N,) non-negative pixel weights (default 1); 0 removes a pixel.
        """
        idx = taps.index
        w = taps.weight.double()
        ref = reference.double()
        omega = torch.ones(len(idx), dtype=torch.float64) if weight is None else weight.double()
        K = idx.shape[1]
        keys, vals = [], []
        for k in range(K):
            wk = omega * w[:, k]
            keys.append(idx[:, k])
            vals.append(wk * w[:, k])
            self.b.index_add_(0, idx[:, k], wk[:, None] * ref)
            for m in range(k + 1, K):
                lo = torch.minimum(idx[:, k], idx[:, m])
                off = (idx[:, m] - idx[:, k]).abs()
                slot = torch.zeros_like(off)
                for s, o in enumerate(self.offsets, start=1):
                    slot = torch.where(off == o, s, slot)
                if not bool(((slot > 0) | (off == 0)).all()):
                    raise ValueError("taps span more than a 2x2 texel block: only bilinear taps fold into the form")
                keys.append(slot * self.M + lo)
                vals.append(2 * wk * w[:, m])
        self.diag_pairs += torch.bincount(torch.cat(keys), torch.cat(vals), minlength=5 * self.M)
        self.c += float((omega[:, None] * ref * ref).sum())
        self.weight_sum += float(omega.sum())

    def form(self) -> QuadraticForm:
        """The accumulated form (float64)."""
        dp = self.diag_pairs.view(5, self.M)
        return QuadraticForm(diag=dp[0].clone(), pairs=dp[1:].clone(), b=self.b.clone(), c=self.c,
                             width=self.width, weight_sum=self.weight_sum)


def masked_sse(rendered: torch.Tensor, reference: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The reference-path distortion of one view: ``sum_n weight_n |rendered_n - reference_n|^2``.

    rendered, reference: (N, C); weight: (N,) or None.
    """
    err = ((rendered - reference) ** 2).sum(1)
    return err.sum() if weight is None else (weight.to(err) * err).sum()
