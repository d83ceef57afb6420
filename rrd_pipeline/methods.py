"""The methods the evaluation harness compares: which atlas each codes at each operating point.

A method is registered by name with a factory that receives the :class:`EvaluationContext` (built
once per scene by :func:`build_context`) and returns a :class:`Method`; ``Method.atlas_for(param)``
gives the atlas to code at that operating point of ``ctx.codec``::

    @register_method("mine")
    def _mine(ctx: EvaluationContext) -> Method:
        return MyMethod(ctx)

Every padding method of :data:`rrd.padding.PADDING_METHODS` ("none", "dilate", "pushpull", "spp",
"hbf", ...) is registered under its own name as a baseline (``is_baseline = True``): it pads the
original atlas with occupancy ``keep`` (the UV triangles grown by one texel,
``texel_coverage(margin=1.0)``: padding must never change a texel that a render reads,
REFERENCE.md section 6) and returns the same atlas at every operating point, padded once and kept in
``ctx.cache``. The ``pad`` stage pads through the same :func:`padded_atlas`. The baselines are the
methods that compete for the default BD-rate anchor (:func:`rrd.evaluate.default_anchor`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rrd.codecs import Codec
from rrd.errors import InputError
from rrd.evaluate import Evaluator, build_evaluator, check_evaluation
from rrd.occupancy import texel_coverage
from rrd.padding import PADDING_METHODS, pad
from rrd.render import View, face_tiles, rasterize_views
from rrd.scene import Scene
from rrd.viewpoints import ORBIT_COUNT, ORBIT_SIZE

__all__ = ["EvaluationContext", "Method", "MethodFactory", "METHODS", "register_method", "check_methods",
           "make_method", "occupancy", "check_padding", "padded_atlas", "PaddingBaseline", "build_context",
           "USED_MARGIN", "KEEP_MARGIN"]

USED_MARGIN = 0.5
"""Texels a UV triangle overlaps: the "used" texels of the seam-exclusion rule."""
KEEP_MARGIN = 1.0
"""Texels a bilinear tap at a point of a triangle can read: what padding must keep."""


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
        options: settings of non-baseline methods by method name (e.g. ``{"rrd": {"iterations": 50}}``).
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
    cache: dict[str, np.ndarray] = field(default_factory=dict)
    options: dict[str, dict] = field(default_factory=dict)


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
METHODS: dict[str, MethodFactory] = {}


def register_method(name: str) -> Callable[[MethodFactory], MethodFactory]:
    """Decorator: register a method factory ``(ctx) -> Method`` in :data:`METHODS` under ``name``."""
    def add(factory: MethodFactory) -> MethodFactory:
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        METHODS[name] = factory
        return factory
    return add


def check_methods(names: Iterable[str]) -> list[str]:
    """The method names, stripped and checked; InputError naming an unknown one and the valid ones."""
    checked = [str(n).strip() for n in names]
    if not checked or any(not n for n in checked):
        raise InputError(f"methods {list(names)!r}: give one or more method names, comma-separated; "
                         f"valid: {', '.join(METHODS)}")
    for name in checked:
        if name not in METHODS:
            raise InputError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    duplicates = sorted({n for n in checked if checked.count(n) > 1})
    if duplicates:
        raise InputError(f"method {duplicates[0]!r} is listed more than once")
    return checked


def make_method(name: str, ctx: EvaluationContext) -> Method:
    """Build the registered method ``name`` for ``ctx``."""
    return METHODS[check_methods([name])[0]](ctx)


def occupancy(scene: Scene, margin: float) -> np.ndarray:
    """(T, H, W) bool texels of the scene's atlas that its UV triangles touch with ``margin`` texels
    (:func:`rrd.occupancy.texel_coverage`; 0.5 = used, 1.0 = what padding keeps)."""
    T, H, W = scene.atlas.tiles.shape[:3]
    return texel_coverage(scene.mesh.local_uv(), face_tiles(scene.mesh, scene.atlas), T, H, W, margin)


def check_padding(method: str) -> str:
    """``method`` if it is a padding method, else InputError listing them."""
    if method not in PADDING_METHODS:
        raise InputError(f"unknown padding method {method!r}; choose one of: {', '.join(sorted(PADDING_METHODS))}")
    return method


def padded_atlas(scene: Scene, method: str, keep: np.ndarray | None = None) -> np.ndarray:
    """The scene's atlas padded with ``method`` (a key of ``PADDING_METHODS``, default parameters).

    Args:
        scene: the scene.
        method: padding method name.
        keep: (T, H, W) bool occupancy to keep; default :func:`occupancy` with ``KEEP_MARGIN``.
    Returns:
        (T, H, W, 3) float32; texels in ``keep`` equal the original bit for bit.
    """
    check_padding(method)
    if keep is None:
        keep = occupancy(scene, KEEP_MARGIN)
    return pad(scene.atlas.tiles, keep, method)


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


def _padding_factory(padding: str) -> MethodFactory:
    def factory(ctx: EvaluationContext) -> Method:
        return PaddingBaseline(ctx, padding)
    factory.__doc__ = f"The {padding!r} padding baseline."
    return factory


for _padding in PADDING_METHODS:
    register_method(_padding)(_padding_factory(_padding))


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
