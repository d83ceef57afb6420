"""The methods the evaluation harness compares: which atlas each codes at each operating point.

A method is registered by name in :data:`METHODS` with a factory that receives the
:class:`EvaluationContext` (built once per scene by :func:`build_context`) and returns a :class:`Method`;
``Method.atlas_for(param)`` gives the atlas to code at that operating point of ``ctx.codec``. The
registrations are at the end of this module:

- every padding method of :data:`rrd.padding.PADDING_METHODS` ("none", "dilate", "pushpull", "spp",
"hbf", ...) under its own name, as a baseline (``is_baseline = True``): it pads the
  original atlas with occupancy ``keep`` (the UV triangles grown by one texel,
  ``texel_coverage(margin=KEEP_MARGIN)``: padding must never change a texel that a render reads,
  REFERENCE.md section 6) and returns the same atlas at every operating point, padded once and kept in
  ``ctx.cache``. The ``pad`` stage pads through the same :func:`padded_atlas`. The baselines are the
  methods that compete for the default BD-rate anchor (:func:`rrd.evaluate.default_anchor`);
- ``rrd``, the R-RD optimiser with lambda tied to each operating point, and ``rrd-fixed``, the published
  mode (one lambda, the middle point's, one atlas coded at every point). Both fold the source views the
  evaluation uses, except the held-out ones (``holdout``: leave-one-out evaluates on a view the optimiser
  never saw), against the evaluation's own reference ("renders" or "photos"), with ``ctx.rrd``'s settings.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rrd.codec import Codec
from rrd.errors import InputError
from rrd.evaluate import Evaluator, build_evaluator, check_evaluation
from rrd.occupancy import KEEP_MARGIN, USED_MARGIN, texel_coverage
from rrd.padding import PADDING_METHODS, pad_pages
from rrd.preprocess import Problem, prepare, preprocess
from rrd.rate import get_rate_model
from rrd.registry import Registry
from rrd.render import View, face_tiles, rasterize_views
from rrd.scene import Scene
from rrd.settings import DEFAULT_SETTINGS, OptimizeSettings
from rrd.viewpoints import ORBIT_COUNT, ORBIT_SIZE

__all__ = ["EvaluationContext", "Method", "MethodFactory", "METHODS", "check_methods", "make_method", "occupancy",
           "padded_atlas", "PaddingBaseline", "RRDOptions", "RRDMethod", "build_context"]


@dataclass(frozen=True)
class RRDOptions:
    """How the ``rrd`` methods run: the optimiser's ``settings`` (:class:`rrd.settings.OptimizeSettings`),
    the ``device`` ("cpu" or "cuda") and ``coded_distortion`` (the evaluated codec in the loop: steps judged
    by D of the decoded atlas)."""

    settings: OptimizeSettings = DEFAULT_SETTINGS
    device: str = "cpu"
    coded_distortion: bool = False

    def summary(self) -> dict[str, object]:
        """What the report records of these options."""
        return {**self.settings.summary(), "device": self.device, "coded_distortion": self.coded_distortion}


@dataclass(eq=False)
class EvaluationContext:
    """Everything a method or the harness needs about one scene, computed once.

    Attributes:
        scene: the scene (its atlas is the original).
        codec: the codec of the sweep.
        reference: "renders" or "photos" (see :mod:`rrd.evaluate`).
        filter: "bilinear" or "trilinear", the evaluation's texture filter.
        views: the rasterized source views, in ``scene.cameras`` order (all of them; the evaluation
            leaves out ``leave_out``, a method fitting views decides which it uses).
        used: (T, H, W) bool, ``texel_coverage(margin=0.5)``.
        keep: (T, H, W) bool, ``texel_coverage(margin=1.0)``: the occupancy padding keeps.
        original: (T*H*W, 3) float32 flat texels of the original atlas (:mod:`rrd.sample` order).
        evaluator: the evaluation views (:func:`rrd.evaluate.build_evaluator`).
        leave_out: indices of source views the evaluation does not use.
        holdout: indices of source views held out from fitting: methods that fit views (``rrd``) must
            not use them, and the evaluation uses only them (leave-one-out: one index).
        cache: atlases that do not depend on the codec or the operating point (e.g. padded ones),
            by key; contexts made from this one with ``dataclasses.replace`` (another codec) share it.
        rrd: how the ``rrd`` and ``rrd-fixed`` methods run.
    """

    scene: Scene
    codec: Codec
    reference: str
    filter: str
    views: list[View]
    used: np.ndarray
    keep: np.ndarray
    original: torch.Tensor
    evaluator: Evaluator
    leave_out: tuple[int, ...] = ()
    holdout: tuple[int, ...] = ()
    cache: dict[str, object] = field(default_factory=dict)
    rrd: RRDOptions = RRDOptions()


class Method(abc.ABC):
    """An atlas preprocessing method under evaluation.

    Class attribute ``is_baseline``: True for the methods that compete for the default anchor.
    """

    is_baseline: bool = False

    @abc.abstractmethod
    def atlas_for(self, param: int) -> np.ndarray:
        """(T, H, W, 3) float32 atlas in [0, 1] to code at operating point ``param`` of ``ctx.codec``."""

    @property
    def settings(self) -> dict[str, object]:
        """The method's own settings, recorded in the report (none for the padding baselines)."""
        return {}


MethodFactory = Callable[[EvaluationContext], Method]
METHODS: Registry[MethodFactory] = Registry("method")
"""Method name -> factory; filled at the end of this module."""


def check_methods(names: Iterable[str]) -> list[str]:
    """The method names, stripped and checked; InputError naming an unknown one and the valid ones."""
    checked = [str(n).strip() for n in names]
    if not checked or any(not n for n in checked):
        raise InputError(f"methods {list(names)!r}: give one or more method names, comma-separated; "
                         f"valid: {', '.join(METHODS)}")
    for name in checked:
        METHODS.lookup(name)
    duplicates = sorted({n for n in checked if checked.count(n) > 1})
    if duplicates:
        raise InputError(f"method {duplicates[0]!r} is listed more than once")
    return checked


def make_method(name: str, ctx: EvaluationContext) -> Method:
    """Build the registered method ``name`` for ``ctx``."""
    return METHODS.lookup(name)(ctx)


def occupancy(scene: Scene, margin: float) -> np.ndarray:
    """(T, H, W) bool texels of the scene's atlas that its UV triangles touch with ``margin`` texels
    (:func:`rrd.occupancy.texel_coverage`; 0.5 = used, 1.0 = what padding keeps)."""
    shape = scene.atlas.shape
    return texel_coverage(scene.mesh.local_uv(), face_tiles(scene.mesh, scene.atlas), *shape, margin, shape.sizes)


def padded_atlas(scene: Scene, method: str, keep: np.ndarray | None = None) -> np.ndarray:
    """The scene's atlas padded with ``method`` (a key of ``PADDING_METHODS``, default parameters).

    Args:
        scene: the scene.
        method: padding method name.
        keep: (T, H, W) bool occupancy to keep; default :func:`occupancy` with ``KEEP_MARGIN``.
    Returns:
        (T, H, W, 3) float32; texels in ``keep`` equal the original bit for bit.
    """
    PADDING_METHODS.lookup(method)
    if keep is None:
        keep = occupancy(scene, KEEP_MARGIN)
    return pad_pages(scene.atlas.tiles, keep, method, scene.atlas.sizes)


class PaddingBaseline(Method):
    """A padding method as a baseline: the same padded atlas at every operating point."""

    is_baseline = True

    def __init__(self, ctx: EvaluationContext, padding: str) -> None:
        self.ctx = ctx
        self.padding = padding

    def atlas_for(self, param: int) -> np.ndarray:
        key = f"pad:{self.padding}"
        if key not in self.ctx.cache:
            self.ctx.cache[key] = padded_atlas(self.ctx.scene, self.padding, self.ctx.keep)
        return self.ctx.cache[key]


def build_context(scene: Scene, codec: Codec, reference: str = "renders", filter: str = "bilinear",
                  views: str = "source", leave_out: Sequence[int] = (), orbit_count: int = ORBIT_COUNT,
                  orbit_size: int = ORBIT_SIZE, backend: str = "auto",
                  progress: Callable[[Iterable], Iterable] | None = None,
                  holdout: Sequence[int] = ()) -> EvaluationContext:
    """Rasterize the source views, compute the occupancies and build the evaluator (once per scene).

    Arguments after ``codec`` are those of :func:`rrd.evaluate.build_evaluator`; ``progress`` wraps
    the camera iterables being rasterized (tqdm); ``holdout``: source views to evaluate on and not to
    fit on (see :class:`EvaluationContext`; excludes ``leave_out``, which it then sets).
    """
    if holdout:
        if leave_out:
            raise InputError("give either leave_out or holdout, not both")
        check_evaluation(scene, reference, filter, views, holdout)
        leave_out = [i for i in range(len(scene.cameras)) if i not in set(holdout)]
    check_evaluation(scene, reference, filter, views, leave_out)
    source_views = rasterize_views(scene.mesh, scene.atlas, scene.cameras, backend, progress)
    used = occupancy(scene, USED_MARGIN)
    keep = occupancy(scene, KEEP_MARGIN)
    evaluator = build_evaluator(scene, source_views, used, reference, filter, views, leave_out, orbit_count,
                                orbit_size, backend, progress)
    original = torch.from_numpy(scene.atlas.tiles).reshape(-1, 3)
    return EvaluationContext(scene, codec, reference, filter, source_views, used, keep, original, evaluator,
                             tuple(leave_out), tuple(holdout))


class RRDMethod(Method):
    """R-RD preprocessing as a method under evaluation.

    Args:
        ctx: the evaluation context (``ctx.rrd`` says how the optimiser runs).
        fixed: one lambda for all points (the middle point's), one atlas; else per-point lambda and atlas.
    """

    def __init__(self, ctx: EvaluationContext, fixed: bool) -> None:
        self.ctx, self.fixed, self.options = ctx, fixed, ctx.rrd
        options = {"subsampling": ctx.codec.options["subsampling"]} if ctx.codec.name == "jpeg" else {}
        self.rate = get_rate_model(ctx.codec.name, **options)

    @property
    def settings(self) -> dict[str, object]:
        return self.options.summary()

    def _problem(self) -> Problem:
        excluded = set(self.ctx.holdout or self.ctx.leave_out)
        prior = self.options.settings.prior
        key = f"rrd:problem:{self.ctx.reference}:{sorted(excluded)}:{prior}"
        if key not in self.ctx.cache:
            keep = [i for i in range(len(self.ctx.views)) if i not in excluded]
            photos = None if self.ctx.scene.photos is None else [self.ctx.scene.photos[i] for i in keep]
            self.ctx.cache[key] = prepare(self.ctx.scene.mesh, self.ctx.scene.atlas, [self.ctx.views[i] for i in keep],
                                          self.ctx.reference, photos, prior=prior)
        return self.ctx.cache[key]

    def atlas_for(self, param: int) -> np.ndarray:
        target = self.ctx.codec.spec.middle_point if self.fixed else param
        key = f"rrd:{self.ctx.codec!r}:{target}:{self.options}"
        if key not in self.ctx.cache:
            o = self.options
            result = preprocess(self._problem(), self.rate, target, o.settings, device=o.device,
                                codec=self.ctx.codec if o.coded_distortion else None)
            self.ctx.cache[key] = result.tiles.numpy()
        return self.ctx.cache[key]


# Registration: the padding baselines, in the padding registry's order, then the optimiser.
for _padding in PADDING_METHODS:
    METHODS.add(_padding, lambda ctx, padding=_padding: PaddingBaseline(ctx, padding))
METHODS.add("rrd", lambda ctx: RRDMethod(ctx, fixed=False))
METHODS.add("rrd-fixed", lambda ctx: RRDMethod(ctx, fixed=True))
