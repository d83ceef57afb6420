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
            # In place and fused: a 4096^2 atlas makes every temporary a 200 MB pass over memory.
            out[:-o].addcmul_(p, T[o:], value=0.5)
            out[o:].addcmul_(p, T[:-o], value=0.5)
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

    def centred(self, centre: torch.Tensor) -> "QuadraticForm":
        """The same D as a form in ``d = T - centre``: ``d' A d - 2 (b - A centre)' d + D(centre)``.

        Evaluate it on ``T - centre``. Near ``centre`` its terms are small, where the plain form's value is
        the difference of two sums as large as the references' squared norm: in float32 that cancels to
        noise of thousands of SSE units on a full-resolution scene, as large as one step's saving.
        centre: (M, C), e.g. the original atlas (computed in this form's dtype; cast the result after).
        """
        x = centre.to(self.b)
        half = self.half_gradient_of_quadratic(x)
        value = float((x * (half - 2 * self.b)).sum()) + self.c  # D(centre), as :meth:`value` without a second A x
        return replace(self, b=self.b - half, c=value)

    def with_prior(self, weight: torch.Tensor, target: torch.Tensor) -> "QuadraticForm":
        """Add ``sum_i weight_i |T_i - target_i|^2`` (a pull towards ``target``, e.g. the original texels).

        weight: (M,) non-negative; target: (M, C).
        """
        w = weight.to(self.diag)
        t = target.to(self.b)
        return replace(self, diag=self.diag + w, b=self.b + w[:, None] * t,
                       c=self.c + float((w[:, None] * t * t).sum()))


class QuadraticAccumulator:
    """Folds views into a :class:`QuadraticForm` one at a time.

    A bilinear tap set away from a tile border reads texels (i, i + 1, i + W, i + W + 1) of its top-left
    texel i, so all ten products of its weights and its four reference terms are added to row i of one
    (M, 10 + 4 C) table in a single scatter; :meth:`form` shifts the columns to their texels. Taps that
    clamp at a tile border take the general path.

    Args:
        n_texels: M, the length of the texel vector.
        width: texels per atlas row (W >= 3).
        channels: C.
        dtype: accumulation type (float64 for exactness in tests; float32 halves the memory of big atlases).
    """

    # Columns of the table: the products w_k w_l (k <= l) of taps 0..3 = (i, i+1, i+W, i+W+1), then w_k r.
    _PAIRS = ((0, 0), (1, 1), (2, 2), (3, 3), (0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))

    def __init__(self, n_texels: int, width: int, channels: int = 3, dtype: torch.dtype = torch.float64):
        if width < 3:
            raise ValueError("atlas rows must have at least 3 texels to fold a quadratic form")
        self.M, self.width, self.C, self.dtype = n_texels, width, channels, dtype
        self.offsets = (1, width - 1, width, width + 1)
        self.table = torch.zeros(n_texels, 10 + 4 * channels, dtype=dtype)
        self.diag = torch.zeros(n_texels, dtype=dtype)
        self.pairs = torch.zeros(4, n_texels, dtype=dtype)
        self.b = torch.zeros(n_texels, channels, dtype=dtype)
        self.c = 0.0
        self.weight_sum = 0.0

    def add(self, taps: Taps, reference: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        """Fold one view.

        Args:
            taps: (N, 4) bilinear taps of the view's pixels (order of :func:`rrd.sample.bilinear_taps`).
            reference: (N, C) the colour each pixel should render.
            weight: (N,) non-negative pixel weights (default 1); 0 removes a pixel.
        """
        if taps.index.shape[1] != 4:
            raise ValueError("only bilinear (4-tap) taps fold into a quadratic form")
        idx, W = taps.index, self.width
        w = taps.weight.to(self.dtype)
        ref = reference.to(self.dtype)
        omega = torch.ones(len(idx), dtype=self.dtype) if weight is None else weight.to(self.dtype)
        base = idx[:, 0]
        regular = (idx[:, 1] == base + 1) & (idx[:, 2] == base + W) & (idx[:, 3] == base + W + 1)
        r = torch.nonzero(regular).squeeze(1)
        wr, om = w[r], omega[r]
        # The rows in one buffer, written in place: per-column products and a concatenation cost
        # more than the scatter itself on a full-resolution view (6 M pixels).
        rows = torch.empty(len(r), 10 + 4 * self.C, dtype=self.dtype)
        first, second = (torch.tensor(side) for side in zip(*self._PAIRS))
        factor = torch.where(first == second, 1.0, 2.0).to(self.dtype)
        torch.mul(wr[:, first] * wr[:, second], om[:, None] * factor, out=rows[:, :10])
        torch.mul((om[:, None] * wr)[:, :, None], ref[r][:, None, :], out=rows[:, 10:].unflatten(1, (4, self.C)))
        self.table.index_add_(0, base[r], rows)
        if len(r) < len(idx):
            self._add_general(torch.nonzero(~regular).squeeze(1), idx, w, ref, omega)
        self.c += float((omega[:, None] * ref * ref).sum())
        self.weight_sum += float(omega.sum())

    def _add_general(self, sel, idx, w, ref, omega) -> None:
        """Taps clamped at a tile border: classify each pair by its offset."""
        idx, w, ref, omega = idx[sel], w[sel], ref[sel], omega[sel]
        for k in range(4):
            wk = omega * w[:, k]
            self.diag.index_add_(0, idx[:, k], wk * w[:, k])
            self.b.index_add_(0, idx[:, k], wk[:, None] * ref)
            for m in range(k + 1, 4):
                lo = torch.minimum(idx[:, k], idx[:, m])
                off = (idx[:, m] - idx[:, k]).abs()
                value = 2 * wk * w[:, m]
                same = off == 0
                self.diag.index_add_(0, lo[same], value[same])
                for s, o in enumerate(self.offsets):
                    hit = off == o
                    self.pairs[s].index_add_(0, lo[hit], value[hit])

    def form(self) -> QuadraticForm:
        """The accumulated form."""
        W, C, t = self.width, self.C, self.table
        diag, pairs, b = self.diag.clone(), self.pairs.clone(), self.b.clone()
        # Tap k of the block whose top-left texel is i sits at i + shift[k].
        shift = (0, 1, W, W + 1)
        for k in range(4):
            s = shift[k]
            diag[s:] += t[: self.M - s, k]
            b[s:] += t[: self.M - s, 10 + C * k: 10 + C * (k + 1)]
        # Pair columns 4..9: (0,1) (0,2) (0,3) (1,2) (1,3) (2,3) -> (offset slot, lower tap's shift).
        for col, (slot, s) in zip(range(4, 10), ((0, 0), (2, 0), (3, 0), (1, 1), (2, 1), (0, W))):
            pairs[slot, s:] += t[: self.M - s, col]
        return QuadraticForm(diag=diag, pairs=pairs, b=b, c=self.c, width=W, weight_sum=self.weight_sum)


def masked_sse(rendered: torch.Tensor, reference: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The reference-path distortion of one view: ``sum_n weight_n |rendered_n - reference_n|^2``.

    rendered, reference: (N, C); weight: (N,) or None.
    """
    err = ((rendered - reference) ** 2).sum(1)
    return err.sum() if weight is None else (weight.to(err) * err).sum()
