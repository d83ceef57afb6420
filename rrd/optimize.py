"""R-RD optimisation of a texture atlas: minimise estimated bits + lambda x rendering distortion.

    L(T) = R(T) + lambda * D(T)

``R`` is a differentiable rate model of the codec that will store the atlas (bits, see
:mod:`rrd.rate`); ``D`` the rendering distortion of :mod:`rrd.distortion`, in 8-bit atlas-equivalent
SSE, so lambda has the meaning it has inside an encoder (bits per unit of 8-bit SSE), which is how
:func:`lambda_for` ties it to the operating point.

With ``decode`` (the codec's round trip) the objective is measured on the *decoded* atlas, the atlas as
it will be rendered: a step is kept only if it lowers ``bits + lambda * D(decode(T))``, so the descent
sees what coding does to each change (a coefficient pushed under the quantiser's dead zone loses all of
itself, not the part the descent removed). The quantiser has no useful derivative; the step direction
mixes D's own gradient with a fraction ``straight_through`` of the decoded atlas's gradient passed
straight through the codec (which pre-compensates coding error). It gains on some scenes and loses on
others (where the coded distortion moves from step to step by about what a step saves, good steps are
rejected), so the pipeline keeps it optional.

The step is gradient descent preconditioned by the diagonal of the distortion Hessian (each texel's
render weight), with heavy-ball momentum and a projection onto [0, 1]: per-texel adaptive
optimisers (Adam) rescale every texel's step and make lambda nearly ineffective. Every tuned
number of the step rule is in :class:`rrd.settings.OptimizeSettings`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from rrd.distortion import DistortionModel
from rrd.settings import DEFAULT_SETTINGS, OptimizeSettings

__all__ = ["OptimizeResult", "optimize_atlas", "lambda_for", "HM_LAMBDA_FACTOR"]

HM_LAMBDA_FACTOR = 0.57 * 2 ** (-8 / 3)
"""HEVC's reference encoder ties its mode-decision lambda to the quantiser step:
lambda_HM = 0.57 * 2^((QP - 12) / 3) = 0.57 * 2^(-8/3) * Qstep^2 (8-bit SSE per bit)."""


def lambda_for(qstep: float, scale: float = 1.0) -> float:
    """Lambda of the R-RD objective (bits per unit of 8-bit SSE) for a quantiser step (8-bit units).

    The encoder trades ``SSE + lambda_enc * bits`` with ``lambda_enc = HM_LAMBDA_FACTOR * Qstep^2``;
    our objective is ``bits + lambda * SSE``, so ``lambda = scale / lambda_enc``.
    """
    return scale / (HM_LAMBDA_FACTOR * qstep * qstep)


@dataclass
class OptimizeResult:
    """Outcome of :func:`optimize_atlas`.

    Attributes:
        tiles: (T, H, W, C) float32 optimised texels in [0, 1].
        bits: the rate model's estimate for the final atlas (bits).
        distortion: final D (8-bit SSE units, see the module docstring; of the decoded atlas with ``decode``).
        lam: the lambda the objective used (bits per 8-bit SSE unit).
        history: per iteration (bits, distortion, objective).
    """

    tiles: torch.Tensor
    bits: float
    distortion: float
    lam: float
    history: list[tuple[float, float, float]] = field(default_factory=list)


def optimize_atlas(tiles: torch.Tensor, rate_bits: Callable[[torch.Tensor], torch.Tensor],
                   distortion: DistortionModel, lam: float, rate_curvature: float,
                   settings: OptimizeSettings = DEFAULT_SETTINGS,
                   progress: Callable[[int, float, float], None] | None = None,
                   decode: Callable[[torch.Tensor], torch.Tensor] | None = None) -> OptimizeResult:
    """Minimise ``rate_bits(T) + lam * D(T)`` over the whole atlas.

    Args:
        tiles: (T, H, W, C) float32 initial texels in [0, 1] (e.g. the original with padded gutters).
        rate_bits: differentiable estimate of the codec's bits for (T, H, W, C) tiles.
        distortion: D on the flat texel vector of the same tiles.
        lam: lambda, bits per unit of D (8-bit SSE); see :func:`lambda_for`.
        rate_curvature: an estimate of the rate's second derivative per texel value (bits per unit^2, texel
            values in [0, 1]); the preconditioner is ``1 / (lam * d2D/dT2 + rate_curvature)``, so texels no
            view sees (gutters) step with the rate gradient at this curvature (:func:`rrd.preprocess.preprocess`
            derives it from :attr:`rrd.settings.CodecTuning.curvature`).
        settings: the step rule (``iterations``, ``step``, ``step_growth``, ``step_backoff``, ``momentum``,
            ``straight_through``) of :class:`rrd.settings.OptimizeSettings`.
        progress: called after each iteration with (iteration, bits, distortion).
        decode: the codec's round trip, (T, H, W, C) tiles in [0, 1] -> the decoded tiles, same shape; when
            given, D is that of the decoded atlas (module docstring).
    Returns:
        :class:`OptimizeResult`; deterministic for given inputs (no randomness is used) and a deterministic
        ``decode``.
    """
    shape = tiles.shape
    x = tiles.detach().reshape(-1, shape[-1]).clone()
    precond = (1.0 / (lam * distortion.hessian_diagonal.to(x) + rate_curvature))[:, None]
    step = settings.step
    velocity = torch.zeros_like(x)
    history: list[tuple[float, float, float]] = []
    best_objective, best_x, best_grad = float("inf"), x, torch.zeros_like(x)
    for it in range(settings.iterations + 1):
        xr = x.reshape(shape).requires_grad_(True)
        bits = rate_bits(xr)
        (g_rate,) = torch.autograd.grad(bits, xr)
        d_value, g_dist = distortion.value_and_gradient(x)
        if decode is not None:
            decoded = decode(x.reshape(shape)).reshape(x.shape).to(x)
            d_value, g_decoded = distortion.value_and_gradient(decoded)
            g_dist.lerp_(g_decoded, settings.straight_through)
        bits_value = float(bits.detach())
        objective = bits_value + lam * d_value
        history.append((bits_value, d_value, objective))
        if progress is not None:
            progress(it, bits_value, d_value)
        # In place where a tensor is not kept: on a 4096^2 atlas a new (M, C) tensor costs more in page
        # faults than the arithmetic written into it.
        if objective < best_objective:
            grad = g_dist.to(x).mul_(lam).add_(g_rate.reshape(x.shape))
            if not bool(torch.isfinite(grad).all()):
                raise FloatingPointError(f"non-finite gradient at iteration {it}")
            best_objective, best_x, best_grad = objective, x, grad
            step = min(settings.step, step * settings.step_growth)
            velocity.mul_(settings.momentum).addcmul_(precond, grad, value=-step)
        else:
            # The step overshot (the rate model is not quadratic): restart from the best point, shorter, no momentum.
            step *= settings.step_backoff
            torch.mul(best_grad, precond, out=velocity).mul_(-step)
        if it == settings.iterations:
            break
        x = (best_x + velocity).clamp_(0.0, 1.0)
    tiles_out = best_x.reshape(shape)
    final = min(history, key=lambda h: h[2])
    return OptimizeResult(tiles=tiles_out, bits=final[0], distortion=final[1], lam=lam, history=history)
