"""The rendering distortion D(T) of the R-RD objective, in two interchangeable implementations.

    D(T) = s * [ sum_views sum_pixels w_p |render_p(T) - reference_p|^2 + sum_i prior_i |T_i - T0_i|^2 ]

- references: the source photos, or renders of the original atlas ``T0`` (the asset reference, for real
  scenes whose photos the mesh does not match). With the asset reference a pixel whose bilinear taps
  touch a texel no triangle uses has no trustworthy reference colour (the original reads its black
  gutter there) and gets weight 0, exactly as the evaluation excludes it.
- prior: texels the mesh uses but no source view samples (or samples little) must not be destroyed:
  they matter for every other viewpoint. Every used texel is pulled towards its original value with a
  weight ``prior`` times the median render weight of the seen texels; where views see a texel well,
  the views dominate.
- scale ``s = 255^2 * N_seen / (total pixel weight)``: the mean squared render error per pixel in 8-bit
  units times the number of seen texels, i.e. an atlas-equivalent 8-bit SSE, so lambda reads like an
  encoder's (bits per unit of SSE).

:class:`QuadraticDistortion` folds all of it into one :class:`~rrd.quadratic.QuadraticForm` (cost per
evaluation independent of views and resolution); :class:`RenderedDistortion` renders every view on
every evaluation (the reference mode, for tests and the benchmark ratio). Both give the same value and
gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from rrd.errors import InputError
from rrd.quadratic import QuadraticAccumulator, QuadraticForm, masked_sse
from rrd.render import View, view_taps
from rrd.sample import Taps, gather
from rrd.settings import DEFAULT_SETTINGS

__all__ = ["DistortionModel", "QuadraticDistortion", "RenderedDistortion", "build_distortion", "REFERENCES",
           "seam_free_weights"]

REFERENCES = ("renders", "photos")


class DistortionModel:
    """D(T) and its gradient on the flat texel vector T (M, C)."""

    scale: float

    @property
    def hessian_diagonal(self) -> torch.Tensor:
        """(M,) d2D/dT_i^2: the per-texel weight that preconditions the optimiser."""
        raise NotImplementedError

    def value_and_gradient(self, T: torch.Tensor) -> tuple[float, torch.Tensor]:
        raise NotImplementedError


@dataclass
class QuadraticDistortion(DistortionModel):
    """D from a folded quadratic form (views and prior folded together, SSE in [0, 1] units).

    Attributes:
        form: the form, in ``T - centre`` when a centre is given (:meth:`QuadraticForm.centred`).
        scale: see the module docstring.
        centre: (M, C) the expansion point of ``form`` (the original atlas), or None for a form in ``T``.
        view_pixels: the pixels each folded view counts (0: the view adds nothing), in view order.
    """

    form: QuadraticForm
    scale: float
    centre: torch.Tensor | None = None
    view_pixels: tuple[int, ...] = ()
    # Two (M, C) work buffers kept between evaluations: a fresh 200 MB tensor (4096^2 atlas) costs its
    # page faults, more than the arithmetic done in it.
    _work: list[torch.Tensor] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def hessian_diagonal(self) -> torch.Tensor:
        return self.scale * self.form.hessian_diagonal()

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "QuadraticDistortion":
        centre = None if self.centre is None else self.centre.to(device, dtype)
        return QuadraticDistortion(self.form.to(device, dtype), self.scale, centre, self.view_pixels)

    def value_and_gradient(self, T: torch.Tensor) -> tuple[float, torch.Tensor]:
        if not (self._work and self._work[0].shape == T.shape and self._work[0].dtype == T.dtype
                and self._work[0].device == T.device):
            self._work[:] = [torch.empty_like(T), torch.empty_like(T)]
        d = T if self.centre is None else torch.sub(T, self.centre, out=self._work[0])
        half = self.form.half_gradient_of_quadratic(d)  # a new tensor: it becomes the returned gradient
        # A pairwise sum: torch.dot accumulates float32 serially (1e-3 relative error on 5e7 texels).
        value = float(torch.add(half, self.form.b, alpha=-2, out=self._work[1]).mul_(d).sum()) + self.form.c
        return self.scale * value, half.sub_(self.form.b).mul_(2 * self.scale)


@dataclass
class RenderedDistortion(DistortionModel):
    """D by rendering every view on every evaluation (autograd through the texture gather)."""

    taps: Sequence[Taps]
    references: Sequence[torch.Tensor]
    weights: Sequence[torch.Tensor]
    prior_weight: torch.Tensor
    prior_target: torch.Tensor
    scale: float
    render_weight: torch.Tensor  # (M,) sum over pixels of w_p * tap_weight^2: the views' Hessian diagonal / 2
    view_pixels: tuple[int, ...] = ()  # as QuadraticDistortion's

    @property
    def hessian_diagonal(self) -> torch.Tensor:
        return 2 * self.scale * (self.render_weight + self.prior_weight)

    def value_and_gradient(self, T: torch.Tensor) -> tuple[float, torch.Tensor]:
        T = T.detach().requires_grad_(True)
        total = sum(masked_sse(gather(T, t), r, w) for t, r, w in zip(self.taps, self.references, self.weights))
        total = total + (self.prior_weight[:, None] * (T - self.prior_target) ** 2).sum()
        (grad,) = torch.autograd.grad(total, T)
        return self.scale * float(total.detach()), self.scale * grad


def seam_free_weights(taps: Taps, used: torch.Tensor) -> torch.Tensor:
    """(N,) 1.0 for pixels whose non-zero taps all read used texels, else 0.0.

    taps: the view's bilinear taps; used: (M,) bool, texels some triangle covers.
    """
    touches_unused = ((taps.weight > 0) & ~used[taps.index]).any(dim=1)
    return (~touches_unused).to(torch.float64)


def build_distortion(views: Sequence[View], atlas_shape: tuple[int, int, int], original: torch.Tensor,
                     used: torch.Tensor, reference: str = "renders",
                     photos: Sequence[torch.Tensor] | None = None, prior: float = DEFAULT_SETTINGS.prior,
                     mode: str = "quadratic", progress: Callable[[int], None] | None = None) -> DistortionModel:
    """Fold the source views into the distortion of the R-RD objective (bilinear sampling).

    Args:
        views: the rasterized source views.
        atlas_shape: (T, H, W) of the atlas.
        original: (M, C) float texels of the original atlas (flat, see :mod:`rrd.sample`).
        used: (M,) bool texels that some triangle covers (``texel_coverage(margin=0.5)``).
        reference: "renders" (the original atlas rendered; seam pixels excluded) or "photos".
        photos: with "photos", one (H*W, C) float tensor in [0, 1] per view (flattened image rows).
        prior: weight of the pull of used texels towards the original, relative to the median render
            weight of the texels the views see.
        mode: "quadratic" (fold once) or "rendered" (reference mode: render every evaluation).
        progress: called with the index of each view folded.
    Returns:
        A :class:`DistortionModel`; in float64 (cast a :class:`QuadraticDistortion` with ``to`` for speed).
        Its ``view_pixels`` counts the pixels of each view that count (0 for a view that sees none of the
        mesh, or, with the renders reference, whose pixels all touch a seam).
    Raises:
        InputError: no view has a pixel to count: there is nothing to optimise the atlas from.
    """
    if reference not in REFERENCES:
        raise InputError(f"unknown distortion reference {reference!r}; choose one of {', '.join(REFERENCES)}")
    if mode not in ("quadratic", "rendered"):
        raise InputError(f"unknown distortion mode {mode!r}; choose quadratic or rendered")
    if reference == "photos" and (photos is None or len(photos) != len(views)):
        raise InputError("the photo reference needs one photo per view")
    T, H, W = atlas_shape
    M, C = original.shape
    original = original.double()  # once: every view gathers its reference colours from it
    acc = QuadraticAccumulator(M, W, C)
    kept: list[tuple[Taps, torch.Tensor, torch.Tensor]] = []
    counted: list[int] = []
    for i, view in enumerate(views):
        taps = view_taps(view, atlas_shape)
        if reference == "renders":
            weight = seam_free_weights(taps, used)
            ref = gather(original, taps)
        else:
            weight = torch.ones(len(view.pixels), dtype=torch.float64)
            ref = photos[i][view.pixels].double()
        counted.append(int((weight > 0).sum()))
        acc.add(taps, ref, weight)
        if mode == "rendered":
            kept.append((taps, ref, weight))
        if progress is not None:
            progress(i)
    if not any(counted):
        raise InputError(f"none of the {len(views)} views sees the mesh (no pixel to compare with the "
                         f"{reference}): there is nothing to optimise the atlas from")
    form = acc.form()
    del acc  # its table is the largest buffer of the fold
    seen = form.diag > 0
    n_seen = int(seen.sum())
    scale = 255.0 ** 2 * n_seen / max(form.weight_sum, 1e-12)
    prior_weight = prior * (float(form.diag[seen].median()) if n_seen else 1.0) * used.to(torch.float64)
    if mode == "quadratic":
        return QuadraticDistortion(form.with_prior(prior_weight, original).centred(original), scale, original,
                                   tuple(counted))
    return RenderedDistortion([k[0] for k in kept], [k[1] for k in kept], [k[2] for k in kept],
                              prior_weight, original, scale, form.diag, tuple(counted))
