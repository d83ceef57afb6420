"""The R-RD optimiser as evaluation methods: ``rrd`` (lambda tied to each operating point) and
``rrd-fixed`` (the published mode: one lambda, one atlas coded at every point).

Both fold the source views the evaluation uses, except the held-out ones (``holdout``: leave-one-out
evaluates on a view the optimiser never saw), against the evaluation's own reference ("renders" or
"photos").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rrd.preprocess import DEFAULT_ITERATIONS, DEFAULT_LAMBDA_SCALE, Problem, prepare, preprocess
from rrd.rate import get_rate_model
from rrd_pipeline.methods import EvaluationContext, Method, register_method

__all__ = ["RRDMethod", "RRDSettings", "DEFAULT_SETTINGS"]


@dataclass(frozen=True)
class RRDSettings:
    """Optimiser settings the methods use (see :func:`rrd.preprocess.preprocess`); ``coded_distortion``
    runs the evaluated codec in the loop (steps judged by D of the decoded atlas)."""

    iterations: int = DEFAULT_ITERATIONS
    lambda_scale: float = DEFAULT_LAMBDA_SCALE
    prior: float = 0.05
    init: str = "spp"
    device: str = "cpu"
    coded_distortion: bool = False


DEFAULT_SETTINGS = RRDSettings()


class RRDMethod(Method):
    """R-RD preprocessing as a method under evaluation.

    Args:
        ctx: the evaluation context.
        fixed: one lambda for all points (the middle point's), one atlas; else per-point lambda and atlas.
        settings: optimiser settings.
    """

    def __init__(self, ctx: EvaluationContext, fixed: bool, settings: RRDSettings = DEFAULT_SETTINGS) -> None:
        self.ctx, self.fixed, self.config = ctx, fixed, settings
        options = {"subsampling": ctx.codec.options["subsampling"]} if ctx.codec.name == "jpeg" else {}
        self.rate = get_rate_model(ctx.codec.name, **options)

    @property
    def settings(self) -> dict[str, object]:
        return asdict(self.config)

    def _problem(self) -> Problem:
        excluded = set(self.ctx.holdout or self.ctx.leave_out)
        key = f"rrd:problem:{self.ctx.reference}:{sorted(excluded)}:{self.config.prior}"
        if key not in self.ctx.cache:
            keep = [i for i in range(len(self.ctx.views)) if i not in excluded]
            photos = None if self.ctx.scene.photos is None else [self.ctx.scene.photos[i] for i in keep]
            self.ctx.cache[key] = prepare(self.ctx.scene.mesh, self.ctx.scene.atlas, [self.ctx.views[i] for i in keep],
                                          self.ctx.reference, photos, prior=self.config.prior)
        return self.ctx.cache[key]

    def atlas_for(self, param: int) -> np.ndarray:
        points = self.ctx.codec.default_points
        target = points[len(points) // 2] if self.fixed else param
        key = f"rrd:{self.ctx.codec!r}:{target}:{self.config}"
        if key not in self.ctx.cache:
            s = self.config
            result = preprocess(self._problem(), self.rate, target, lambda_scale=s.lambda_scale,
                                iterations=s.iterations, init=s.init, device=s.device,
                                codec=self.ctx.codec if s.coded_distortion else None)
            self.ctx.cache[key] = result.tiles.numpy()
        return self.ctx.cache[key]


@register_method("rrd")
def _rrd(ctx: EvaluationContext) -> Method:
    """R-RD optimisation with lambda tied to each operating point."""
    return RRDMethod(ctx, fixed=False, settings=RRDSettings(**ctx.options.get("rrd", {})))


@register_method("rrd-fixed")
def _rrd_fixed(ctx: EvaluationContext) -> Method:
    """R-RD optimisation with one lambda (the middle point's) and one atlas for every point."""
    return RRDMethod(ctx, fixed=True, settings=RRDSettings(**ctx.options.get("rrd-fixed", {})))
