"""Evaluation of coded atlases: coded size, rendering quality of the decoded atlas, Bjontegaard summaries.

The harness (``rrd evaluate``) sweeps a codec's operating points for several methods; per point it
codes the method's atlas (:func:`rrd.codec.code_atlas`), renders every evaluation view with the decoded atlas
and compares it with a reference (:meth:`Evaluator.quality`). Everything that does not depend on the
decoded atlas (rasterization, taps, reference colours, which pixels count) is built once by
:func:`build_evaluator`, so a quality evaluation is a gather per view.

References (``reference``)
--------------------------
``"renders"`` (default, the asset reference)
    The views rendered with the *original* atlas through the same filter. At chart borders the
    original's taps read its black gutters, so a pixel whose footprint touches a texel that no
    triangle uses has no trustworthy reference colour: such pixels are excluded (the rule of
    :func:`rrd.distortion.seam_free_weights`, the one the optimiser uses) and their share of the
    covered pixels is reported (:attr:`EvalView.excluded_share`). "Used" texels are
    ``texel_coverage(margin=0.5)``. With trilinear filtering the taps also read mip texels; a mip
    texel counts as used only when every base texel under it is used (:func:`used_texel_vector`),
    so minified views (high mip levels) exclude more pixels than magnified ones.
    Views need no photo: the orbit views of :mod:`rrd.viewpoints` work too.
``"photos"``
    The source photos at the covered pixels, every covered pixel counted. Only meaningful where
    the mesh lines up with the photos (the embedded demo scene); real scenes with occluders or pose
    error stay near 15-20 dB whatever the codec does, and a PSNR that moves by less than 0.1 dB
    over a sweep makes BD-rate undefined (:func:`bd_summary` records why instead of a number).

Views (``views``): ``"source"`` the scene's cameras (minus ``leave_out``), ``"orbit"`` the Fibonacci
orbit (renders reference only), ``"both"``. Metrics: per view RGB PSNR and YUV PSNR (BT.709,
``(6 MSE_Y + MSE_U + MSE_V) / 8``) over the counted pixels, the values of :func:`rrd.metrics.psnr`
and :func:`rrd.metrics.psnr_yuv` (computed by :func:`masked_psnrs`), averaged over views in dB
(:func:`rrd.metrics.mean_psnr`). Each view's counted pixels are one sparse matrix product with the
texel vector (:attr:`EvalView.sampler`), about a second per operating point for the ten
2832x2128 Sceaux views.

Rates are bits per texel of the whole atlas: ``bpp = 8 * nbytes / (T * H * W)``, every tile coded
as its own image (a UDIM tile is its own file).

Default anchor of the BD-rate table (:func:`default_anchor`): among the baseline methods, the one
whose mean pchip BD-rate (RGB PSNR) against each of the *other* baselines is the lowest, i.e. the
baseline that needs the fewest bits for the same quality on average. BD-rates that are undefined
are left out of the mean; a baseline with no defined BD-rate ranks last; ties and the all-undefined
case go to the first baseline in the order given.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import torch

from rrd.color import rgb_to_ycbcr
from rrd.distortion import REFERENCES, seam_free_weights
from rrd.errors import InputError
from rrd.metrics import BDRateUndefined, bd_rate, mean_psnr, psnr_from_mse, yuv_mse
from rrd.render import FILTERS, View, rasterize_views, render, texel_vector, view_taps
from rrd.sample import Taps, mip_texels
from rrd.scene import Scene
from rrd.viewpoints import ORBIT_COUNT, ORBIT_SIZE, orbit_cameras, union_bbox

__all__ = ["VIEW_SETS", "used_texel_vector", "EvalView",
           "ViewQuality", "Quality", "masked_psnrs", "Evaluator", "evaluation_view", "check_evaluation",
           "build_evaluator", "Curve", "BD_INTERPOLATIONS", "bd_summary", "bd_table", "default_anchor"]

VIEW_SETS = ("source", "orbit", "both")


# --------------------------------------------------------------------------------------------
# Rendering quality


def used_texel_vector(used: np.ndarray | torch.Tensor, filter: str = "bilinear") -> torch.Tensor:
    """The used-texel flags aligned with :func:`rrd.render.texel_vector` of ``filter``.

    Args:
        used: (T, H, W) bool, texels some triangle covers (``texel_coverage(margin=0.5)``).
        filter: "bilinear" (base texels) or "trilinear" (the mip chain: a mip texel is used only when
            all base texels under it are, i.e. when the mip mean of the 0/1 flags is exactly 1).
    Returns:
        (M,) bool.
    """
    flags = used if isinstance(used, torch.Tensor) else torch.from_numpy(np.asarray(used))
    if flags.ndim != 3 or flags.dtype != torch.bool:
        raise InputError(f"used texels must be a (T, H, W) bool array, got {tuple(flags.shape)} {flags.dtype}")
    if filter == "bilinear":
        return flags.reshape(-1)
    if filter == "trilinear":
        # A mean of 0/1 values is exactly 1.0 in floating point iff every value is 1.
        return mip_texels(flags.to(torch.float32)[..., None])[:, 0] == 1.0
    raise InputError(f"unknown texture filter {filter!r}; choose one of {', '.join(FILTERS)}")


@dataclass(frozen=True, eq=False)
class EvalView:
    """One evaluation view with everything that does not depend on the atlas under test.

    Attributes:
        name: the camera's name.
        kind: "source" or "orbit".
        view: the rasterized view (N covered pixels).
        sampler: (K, M) float32 CSR matrix (scipy): row k holds the filter's tap weights of the k-th
            counted pixel over the texel vector (:func:`rrd.render.texel_vector`), so the counted
            pixels of a render are ``sampler @ texels``.
        reference: (K, 3) float32 reference colours in [0, 1] of the counted pixels.
    """

    name: str
    kind: str
    view: View
    sampler: scipy.sparse.csr_matrix
    reference: np.ndarray

    @property
    def n_covered(self) -> int:
        return int(len(self.view.pixels))

    @property
    def n_counted(self) -> int:
        return int(self.reference.shape[0])

    @property
    def excluded_share(self) -> float:
        """Share in [0, 1] of the covered pixels left out (seam pixels of the renders reference)."""
        return 1.0 - self.n_counted / self.n_covered


@dataclass(frozen=True)
class ViewQuality:
    """Quality of one view: PSNR over its counted pixels, dB (``+inf`` when identical)."""

    name: str
    psnr_db: float
    psnr_yuv_db: float


@dataclass(frozen=True)
class Quality:
    """Per-view qualities and their means over views (:func:`rrd.metrics.mean_psnr`), dB."""

    views: tuple[ViewQuality, ...]
    psnr_db: float
    psnr_yuv_db: float


# (3, 3) float64 x -> BT.709 Y'CbCr as a right factor: ycc = rgb @ _RGB_TO_YCC.
_RGB_TO_YCC = rgb_to_ycbcr(torch.eye(3, dtype=torch.float64), "bt709").numpy()


def masked_psnrs(test: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """RGB PSNR and YUV PSNR (dB, peak 1) of (K, 3) pixel colours in [0, 1] against a reference.

    The values of :func:`rrd.metrics.psnr` and ``rrd.metrics.psnr_yuv(...)["yuv"]`` on the same
    pixels, computed from one difference: Y'CbCr is linear in RGB, so with ``C`` the 3x3 second-moment
    matrix of the RGB error, the per-channel MSEs are ``diag(C)`` (RGB) and ``diag(A' C A)`` (Y, Cb,
    Cr; ``A`` the BT.709 matrix), combined as ``(6 MSE_Y + MSE_U + MSE_V) / 8``. Several times faster
    on millions of pixels, which is what one operating point of a sweep costs.
    """
    diff = np.asarray(test, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    second = diff.T @ diff / max(len(diff), 1)
    mse_ycc = np.diag(_RGB_TO_YCC.T @ second @ _RGB_TO_YCC)
    return psnr_from_mse(float(np.trace(second)) / 3.0), psnr_from_mse(yuv_mse(*(float(m) for m in mse_ycc)))


@dataclass(frozen=True, eq=False)
class Evaluator:
    """The evaluation views of a scene, ready to score any atlas of the same layout.

    Attributes:
        views: the views (each with at least one counted pixel).
        atlas_shape: (T, H, W) of the atlas.
        filter: "bilinear" or "trilinear".
        reference: "renders" or "photos".
        dropped: names of views left out because no pixel could be counted.
    """

    views: tuple[EvalView, ...]
    atlas_shape: tuple[int, int, int]
    filter: str
    reference: str
    dropped: tuple[str, ...] = ()

    @property
    def excluded_share(self) -> float:
        """Share of all covered pixels (over every view) that the metric leaves out."""
        covered = sum(v.n_covered for v in self.views)
        return 1.0 - sum(v.n_counted for v in self.views) / covered

    def _texels(self, tiles: np.ndarray | torch.Tensor) -> torch.Tensor:
        tiles = (tiles.detach().float().cpu() if isinstance(tiles, torch.Tensor)
                 else torch.from_numpy(np.asarray(tiles, dtype=np.float32)))
        if tuple(tiles.shape) != (*self.atlas_shape, 3):
            raise InputError(f"atlas has shape {tuple(tiles.shape)}, expected {(*self.atlas_shape, 3)}")
        with torch.no_grad():
            return texel_vector(tiles, self.filter)

    def quality(self, tiles: np.ndarray | torch.Tensor) -> Quality:
        """Render every view with ``tiles`` ((T, H, W, 3) float in [0, 1]) and compare with the reference."""
        texels = self._texels(tiles).numpy()
        rows = [ViewQuality(v.name, *masked_psnrs(v.sampler @ texels, v.reference)) for v in self.views]
        return Quality(tuple(rows), mean_psnr([r.psnr_db for r in rows]),
                       mean_psnr([r.psnr_yuv_db for r in rows]))

    def render(self, tiles: np.ndarray | torch.Tensor, index: int = 0) -> np.ndarray:
        """(H, W, 3) float32 render of view ``index`` with ``tiles``, black where the mesh is absent."""
        v = self.views[index].view
        with torch.no_grad():
            return render(self._texels(tiles), view_taps(v, self.atlas_shape, self.filter), v).numpy()


def _sampler(taps: Taps, rows: torch.Tensor, n_texels: int) -> scipy.sparse.csr_matrix:
    """(K, n_texels) CSR matrix of the tap rows selected by the (N,) bool ``rows``."""
    index, weight = taps.index[rows].numpy(), taps.weight[rows].detach().to(torch.float32).numpy()
    k, width = index.shape
    indptr = np.arange(0, k * width + 1, width, dtype=np.int64)
    return scipy.sparse.csr_matrix((weight.ravel(), index.ravel(), indptr), shape=(k, n_texels))


def evaluation_view(view: View, kind: str, atlas_shape: tuple[int, int, int], filter: str,
                    used: torch.Tensor, original: torch.Tensor | None = None,
                    photo: np.ndarray | None = None) -> EvalView:
    """Build one :class:`EvalView`.

    Args:
        view: the rasterized view.
        kind: "source" or "orbit" (a label).
        atlas_shape: (T, H, W).
        filter: "bilinear" or "trilinear".
        used: (M,) bool :func:`used_texel_vector` of the same filter (renders reference).
        original: (M, 3) float32 :func:`rrd.render.texel_vector` of the original atlas: the renders
            reference; pixels whose non-zero taps touch an unused texel are not counted.
        photo: (H, W, 3) uint8 photo of the view: the photos reference; every covered pixel counts.
            Exactly one of ``original`` and ``photo`` is given.
    """
    if (original is None) == (photo is None):
        raise ValueError("give exactly one of original (renders reference) and photo (photos reference)")
    taps = view_taps(view, atlas_shape, filter)
    if original is not None:
        counted = seam_free_weights(taps, used) > 0
        sampler = _sampler(taps, counted, len(used))
        reference = sampler @ original.numpy()
    else:
        counted = torch.ones(len(view.pixels), dtype=torch.bool)
        sampler = _sampler(taps, counted, len(used))
        flat = np.ascontiguousarray(photo).reshape(-1, 3)
        reference = flat[view.pixels.numpy()].astype(np.float32) / np.float32(255.0)
    return EvalView(view.camera.name, kind, view, sampler, np.ascontiguousarray(reference, dtype=np.float32))


def check_evaluation(scene: Scene, reference: str, filter: str, views: str, leave_out: Sequence[int]) -> None:
    """Check the options of :func:`build_evaluator` before anything expensive runs (InputError if wrong)."""
    if reference not in REFERENCES:
        raise InputError(f"unknown evaluation reference {reference!r}; choose one of {', '.join(REFERENCES)}")
    if views not in VIEW_SETS:
        raise InputError(f"unknown view set {views!r}; choose one of {', '.join(VIEW_SETS)}")
    if filter not in FILTERS:
        raise InputError(f"unknown texture filter {filter!r}; choose one of {', '.join(FILTERS)}")
    if reference == "photos" and views != "source":
        raise InputError(f"views {views!r} include orbit cameras, which have no photos; use views 'source' "
                         "or reference 'renders'")
    if reference == "photos" and scene.photos is None:
        raise InputError(f"scene {scene.name!r} has no photos; use reference 'renders'")
    bad = [i for i in leave_out if isinstance(i, bool) or not 0 <= i < len(scene.cameras)]
    if bad:
        raise InputError(f"leave_out index {bad[0]!r} is out of range; the scene has source views "
                         f"0..{len(scene.cameras) - 1}")


def build_evaluator(scene: Scene, source_views: Sequence[View], used: np.ndarray, reference: str = "renders",
                    filter: str = "bilinear", views: str = "source", leave_out: Sequence[int] = (),
                    orbit_count: int = ORBIT_COUNT, orbit_size: int = ORBIT_SIZE, backend: str = "auto",
                    progress: Callable[[Iterable], Iterable] | None = None) -> Evaluator:
    """Build the evaluation views of a scene once (see the module docstring).

    Args:
        scene: the scene; its atlas is the original (the renders reference), its photos the photos reference.
        source_views: the rasterized source cameras, in ``scene.cameras`` order.
        used: (T, H, W) bool texels some triangle covers (``texel_coverage(margin=0.5)``).
        reference: "renders" or "photos".
        filter: "bilinear" or "trilinear".
        views: "source", "orbit" (renders reference only) or "both".
        leave_out: indices into ``scene.cameras`` of source views not to evaluate on.
        orbit_count, orbit_size: cameras and image side (pixels) of the orbit (:mod:`rrd.viewpoints`).
        backend: rasterizer of the orbit views.
        progress: optional wrapper of an iterable (tqdm) over the orbit cameras being rasterized.
    Raises:
        InputError: an unknown choice, the photos reference without photos or with orbit views, a
            ``leave_out`` index out of range, or no view left to evaluate on.
    """
    check_evaluation(scene, reference, filter, views, leave_out)
    if len(source_views) != len(scene.cameras):
        raise ValueError(f"{len(source_views)} source views for {len(scene.cameras)} cameras")
    shape = scene.atlas.shape
    flags = used_texel_vector(used, filter)
    original = texel_vector(torch.from_numpy(scene.atlas.tiles), filter) if reference == "renders" else None
    chosen: list[tuple[View, str, np.ndarray | None]] = []
    if views in ("source", "both"):
        skip = set(leave_out)
        chosen += [(v, "source", scene.photos[i] if reference == "photos" else None)
                   for i, v in enumerate(source_views) if i not in skip]
    if views in ("orbit", "both"):
        faces_vertices = scene.mesh.vertices[np.unique(scene.mesh.faces)]
        cameras = orbit_cameras(union_bbox(faces_vertices), orbit_count, orbit_size)
        chosen += [(v, "orbit", None) for v in rasterize_views(scene.mesh, scene.atlas, cameras, backend, progress)]
    built, dropped = [], []
    for view, kind, photo in chosen:
        ev = evaluation_view(view, kind, shape, filter, flags, original, photo)
        (built if ev.n_counted else dropped).append(ev)
    if not built:
        raise InputError(f"scene {scene.name!r}: no evaluation view has a pixel to compare "
                         f"(views {views!r}, {len(leave_out)} left out)")
    return Evaluator(tuple(built), shape, filter, reference, tuple(v.name for v in dropped))


# --------------------------------------------------------------------------------------------
# Bjontegaard summaries

Curve = tuple[Sequence[float], Sequence[float]]
"""A rate-distortion curve: (rates, PSNRs in dB), same length, rates in one positive unit (bpp)."""

BD_INTERPOLATIONS = ("pchip", "cubic")


def bd_summary(anchor: Curve, test: Curve) -> dict[str, object]:
    """BD-rate of ``test`` against ``anchor`` with both interpolations, undefined cases recorded.

    Returns:
        ``{"pchip": percent | {"undefined": reason}, "cubic": ..., "warnings": [message, ...]}``:
        percent negative = fewer bits for the same PSNR; ``warnings`` holds the overlap warnings of
        :func:`rrd.metrics.bd_rate` (e.g. curves overlapping on under 75 % of a PSNR range).
    """
    entry: dict[str, object] = {}
    notes: list[str] = []
    for method in BD_INTERPOLATIONS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                entry[method] = bd_rate(anchor[0], anchor[1], test[0], test[1], method=method)
            except BDRateUndefined as err:
                entry[method] = {"undefined": err.reason}
        notes += [f"{method}: {w.message}" for w in caught if f"{method}: {w.message}" not in notes]
    entry["warnings"] = notes
    return entry


def bd_table(curves: Mapping[str, Curve], anchor: str) -> dict[str, dict[str, object]]:
    """:func:`bd_summary` of every curve against ``curves[anchor]``, each entry with ``"anchor"`` added."""
    if anchor not in curves:
        raise InputError(f"anchor {anchor!r} is not one of the evaluated methods: {', '.join(curves)}")
    return {name: {"anchor": anchor, **bd_summary(curves[anchor], curve)} for name, curve in curves.items()}


def default_anchor(curves: Mapping[str, Curve], baselines: Sequence[str]) -> tuple[str, dict[str, float | None]]:
    """The default BD-rate anchor (rule in the module docstring).

    Args:
        curves: method name -> (bpp, RGB PSNR dB).
        baselines: the candidate methods, in order (ties go to the earlier one).
    Returns:
        (anchor name, baseline -> its mean pchip BD-rate in percent against the other baselines, or
        None when none is defined).
    """
    if not baselines:
        raise InputError("no baseline method to anchor the BD-rates on; name an anchor method")
    scores: dict[str, float | None] = {}
    for name in baselines:
        values = []
        for other in baselines:
            if other == name:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the table records overlap warnings, not the ranking
                try:
                    values.append(bd_rate(*curves[other], *curves[name], method="pchip"))
                except BDRateUndefined:
                    pass
        scores[name] = float(np.mean(values)) if values else None
    ranked = [n for n in baselines if scores[n] is not None]
    anchor = min(ranked, key=lambda n: scores[n]) if ranked else baselines[0]
    return anchor, scores
