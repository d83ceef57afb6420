"""R-RD preprocessing of an atlas, end to end: set up the problem once, optimise per operating point.

:func:`prepare` folds the rasterized source views into the distortion and computes the texel masks;
:func:`preprocess` starts from the atlas with its gutters padded (so the descent starts at the best
smooth fill, not at black) and runs :func:`rrd.optimize.optimize_atlas` with the codec's rate model at
one operating point, optionally with the real codec in the loop (D measured on the decoded atlas, see
:mod:`rrd.optimize`). Lambda is either tied to that point (``lambda_for(qstep)``, as encoders tie it to
QP: each coded point gets an atlas optimised for it) or fixed (the published method: one lambda, one
atlas for every point).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rrd.codec import Codec, code_atlas
from rrd.distortion import DistortionModel, QuadraticDistortion, build_distortion
from rrd.errors import InputError
from rrd.occupancy import KEEP_MARGIN, USED_MARGIN, texel_coverage
from rrd.optimize import OptimizeResult, lambda_for, optimize_atlas
from rrd.padding import pad_pages
from rrd.rate.base import RateModel
from rrd.rate.jpeg import LUMA_TABLE, quant_table
from rrd.render import View, face_tiles
from rrd.scene import Atlas, TexturedMesh
from rrd.settings import DEFAULT_SETTINGS, OptimizeSettings

__all__ = ["Problem", "prepare", "preprocess", "operating_qstep"]


def operating_qstep(codec: str, param: int) -> float:
    """The quantiser step an operating point implies, in 8-bit sample units (orthonormal transform).

    HEVC and VVC: ``2^((QP - 4) / 6)``. JPEG: the luma DC step of libjpeg's quality-scaled table
    (16 at quality 50), the step that sets the accuracy of flat areas, as QP does for the video codecs.
    """
    if codec == "jpeg":
        return float(quant_table(LUMA_TABLE, int(param))[0])
    return 2.0 ** ((param - 4) / 6)


@dataclass
class Problem:
    """Everything about one scene that does not depend on the operating point.

    Attributes:
        atlas: the original atlas.
        used: (T, H, W) bool, texels some triangle covers (``USED_MARGIN``): the prior holds them.
        keep: (T, H, W) bool, texels a bilinear tap of some triangle can read (``KEEP_MARGIN``): the initial
            padding fills only outside them, so the start renders exactly like the original.
        distortion: the folded distortion model.
        view_names: the folded views' camera names, in order.
    """

    atlas: Atlas
    used: np.ndarray
    keep: np.ndarray
    distortion: DistortionModel
    view_names: tuple[str, ...] = ()

    @property
    def unseen_views(self) -> list[str]:
        """Names of the views that add nothing: they see none of the mesh, or (renders reference) every
        pixel they see touches a seam."""
        return [n for n, c in zip(self.view_names, self.distortion.view_pixels) if c == 0]


def prepare(mesh: TexturedMesh, atlas: Atlas, views: Sequence[View], reference: str = "renders",
            photos: Sequence[np.ndarray] | None = None, prior: float = DEFAULT_SETTINGS.prior,
            mode: str = "quadratic",
            progress: Callable[[int], None] | None = None) -> Problem:
    """Fold the views and compute the texel masks.

    Args:
        mesh, atlas: the textured mesh.
        views: its rasterized source views (``rasterize_views``).
        reference: "renders" (the original atlas rendered) or "photos".
        photos: with "photos", one (H, W, 3) uint8 photo per view.
        prior: see :func:`rrd.distortion.build_distortion`.
        mode: "quadratic" (fast) or "rendered" (reference mode).
        progress: called with the index of each folded view.
    """
    shape, C = atlas.shape, atlas.tiles.shape[-1]
    tiles_of = face_tiles(mesh, atlas)
    uv = mesh.local_uv()
    used = texel_coverage(uv, tiles_of, *shape, USED_MARGIN, shape.sizes)
    keep = texel_coverage(uv, tiles_of, *shape, KEEP_MARGIN, shape.sizes)
    original = torch.from_numpy(np.array(atlas.tiles)).reshape(-1, C)  # a writable copy
    flat_photos = None
    if photos is not None:
        flat_photos = [torch.tensor(p.reshape(-1, C), dtype=torch.float32) / 255.0 for p in photos]
    dist = build_distortion(views, shape, original, torch.from_numpy(used).reshape(-1), reference,
                            flat_photos, prior=prior, mode=mode, progress=progress)
    if mode == "quadratic":
        dist = dist.to("cpu", torch.float32)
    return Problem(atlas=atlas, used=used, keep=keep, distortion=dist,
                   view_names=tuple(v.camera.name for v in views))


def preprocess(problem: Problem, rate: RateModel, param: int, settings: OptimizeSettings = DEFAULT_SETTINGS,
               lam: float | None = None, device: str = "cpu",
               progress: Callable[[int, float, float], None] | None = None,
               codec: Codec | None = None) -> OptimizeResult:
    """Optimise the atlas for coding at ``param``.

    Args:
        problem: from :func:`prepare`.
        rate: the codec's rate model.
        param: the operating point the rate model estimates (JPEG quality or QP).
        settings: iterations, lambda scale, starting padding (``init``), step rule and the per-codec
            tuning (:class:`rrd.settings.OptimizeSettings`; ``prior`` acts in :func:`prepare`).
        lam: explicit lambda (bits per 8-bit SSE unit); default
            ``lambda_for(operating_qstep(...), lambda_scale * lambda_factor)``, times ``coded_lambda_factor``
            with ``codec`` (the factors of ``settings.tuning(rate.codec)``).
        device: "cpu" or "cuda".
        progress: called with (iteration, estimated rate cost (:meth:`RateModel.cost`, bits), distortion).
        codec: the real codec of the rate model's family; when given it codes the atlas at ``param`` on
            every iteration and D is measured on the decoded atlas (one encode + decode more per
            iteration, see :mod:`rrd.optimize`). None: D of the atlas itself, as published.
    Returns:
        The :class:`OptimizeResult`, tiles on the CPU.
    """
    sizes = problem.atlas.sizes
    decode = None
    if codec is not None:
        if codec.name != rate.codec:
            raise InputError(f"codec {codec.name!r} does not match the {rate.codec!r} rate model")

        def decode(tiles: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(code_atlas(codec, tiles.detach().cpu().numpy(), param, sizes).decoded)

    def page_cost(tiles: torch.Tensor, cost: Callable[[torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
        # Each page is coded as its own picture: the canvas around a smaller page costs nothing.
        if problem.atlas.shape.uniform:
            return cost(tiles, param)
        return sum(cost(tiles[t:t + 1, :h, :w], param) for t, (h, w) in enumerate(sizes))

    tuning = settings.tuning(rate.codec)
    start = pad_pages(problem.atlas.tiles, problem.keep, settings.init, sizes)
    qstep = operating_qstep(rate.codec, param)
    if lam is None:
        factor = tuning.lambda_factor * (tuning.coded_lambda_factor if codec is not None else 1.0)
        lam = lambda_for(qstep, settings.lambda_scale * factor)
    dist = problem.distortion
    if device != "cpu" and isinstance(dist, QuadraticDistortion):
        dist = dist.to(device)
    result = optimize_atlas(torch.from_numpy(start).to(device), lambda t: page_cost(t, rate.cost), dist, lam,
                            tuning.curvature * (255.0 / qstep) ** 2, settings, progress, decode)
    with torch.no_grad():
        # The record's estimate is the bits alone, also where the descent priced the coding error.
        result.bits = float(page_cost(result.tiles, rate.bits))
    result.tiles = result.tiles.cpu()
    return result
