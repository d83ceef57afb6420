"""Texture padding: fill the empty texels (gutters) of atlas tiles, the baselines of R-RD.

``pad(atlas, occupancy, method, **params)`` keeps every occupied texel bit for bit and fills every
empty one with the named method. The occupancy must contain every texel a render can read: use
:func:`rrd.occupancy.texel_coverage` with ``margin=1.0`` (the UV triangles grown by one texel), or
padding overwrites the texturing tool's own rim and changes the renders (REFERENCE.md section 6).

Methods (``PADDING_METHODS``; definitions follow MPEG's reference software, REFERENCE.md section 3):

``"none"``
    Black gutters: empty texels set to 0, the atlas as texturing tools deliver it.
``"dilate"``
    Dilation rings (V-DMC's pre-pass, repeated): in each ring every empty texel with at least one
    occupied 4-neighbour takes their rounded mean and becomes occupied. Values are rounded to the
    8-bit grid as MPEG's 8-bit software does: with codes ``q = round(255 * value)``, the new code is
    ``(sum q + n // 2) // n`` for ``n`` occupied neighbours (halves round up) and the value is
    ``code / 255``. ``rings=None`` (default) repeats until no empty texel is left, which is what
    the "dilation" / "margin" option of most texturing tools does; with a number, texels beyond
    that many rings stay 0.
``"pushpull"``
    Push-pull. Pull: halve the tile repeatedly (sizes rounded up); a coarse texel is the mean of its
    occupied children and is occupied if any child is; stop at the first level whose height or
    width is 4 or less (TMC2). Push, coarse to fine: an empty fine texel takes the bilinear
    9/16, 3/16, 3/16, 1/16 weighted mean of its four nearest coarse texels (edge-clamped).
``"spp"``
    Smoothed push-pull (V-PCC / V-DMC default): push-pull where, after each push, the level's empty
    texels get Jacobi passes (each: mean of the 8 neighbours, edge-clamped; occupied texels never
    change): ``coarsest_passes`` (4) after the first push, one more per finer level, at most
    ``max_passes`` (16). ``max_passes=0`` is plain push-pull, exactly.
``"vdmc"``
    The V-DMC encoder's composite: ``rings`` (4) dilation rings as in ``"dilate"``, then SPP with
    the dilated texels as occupied.
``"hbf"``
    Harmonic background filling (TMC2): the discrete Laplace equation (5-point stencil, Neumann at
    the tile border, i.e. each empty texel equals the mean of its in-tile 4-neighbours) on the
    empty texels with occupied texels fixed. Solved coarse to fine on the push-pull pyramid: the
    coarsest level starts from the mean of its occupied texels, each finer level from the bilinear
    upsampling of the coarser solution (TMC2: nearest); on every level red-black Gauss-Seidel
    sweeps until the mean (over empty texels) squared update of a sweep is below ``tol`` in squared
    8-bit code values (``1e-5``, TMC2's threshold on its 8-bit values) in every channel, at most
    ``max_sweeps`` (1024) sweeps. Like TMC2's, the result is locally harmonic (tiny residual) but
    not converged at large scale: far inside wide gutters it can differ from the exact solution
    by several code values.
``"sparse"``
    The same Laplace system solved by conjugate gradients (older V-PCC / V-DMC option), coarse to
    fine like "hbf" (cascadic CG): on each level CG from the upsampled coarser solution until every
    channel's residual norm is at most ``tol`` (1e-5) times its right-hand side's, at most
    ``max_iters`` (2000) iterations per level. Closer to the exact harmonic fill than "hbf"
    (about a code value at worst on the Sceaux atlas), and slower.
``"extend"``
    Blender's bake margin "extend": in each pass every empty texel with filled 8-neighbours takes
    their weighted mean, edge neighbours weighing 2 and diagonal ones 1, and counts as filled for
    the next pass. ``passes=16`` (Blender's default margin); texels still empty stay 0, as in
    Blender; ``passes=None`` repeats until every texel is filled.

Values are float32 throughout; apart from "dilate" (and the rings of "vdmc") nothing is rounded to
8 bits, so results can differ from MPEG's integer software by rounding. A tile with no occupied
texel pads to all zeros with every method (there is nothing to extend); a fully occupied tile
comes back as an unchanged copy.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Callable

import numpy as np

from rrd.errors import InputError
from rrd.registry import Registry

__all__ = ["pad", "pad_pages", "PADDING_METHODS"]

# A method takes ``values`` (C, H, W) float32 with empty texels set to 0 and ``keep`` (H, W) bool
# (True = occupied, never changed) plus its keyword parameters, and returns (C, H, W) float32.
PaddingMethod = Callable[..., np.ndarray]
PADDING_METHODS: Registry[PaddingMethod] = Registry("padding method")

# Neighbourhoods of the region-growing methods as (row offset, col offset, weight).
_CROSS = ((-1, 0, 1.0), (1, 0, 1.0), (0, -1, 1.0), (0, 1, 1.0))
_BLENDER_EXTEND = ((-1, 0, 2.0), (1, 0, 2.0), (0, -1, 2.0), (0, 1, 2.0),
                   (-1, -1, 1.0), (-1, 1, 1.0), (1, -1, 1.0), (1, 1, 1.0))


def pad_pages(tiles: np.ndarray, occupancy: np.ndarray, method: str, sizes: Sequence[tuple[int, int]],
              **params: object) -> np.ndarray:
    """:func:`pad` of each page of an atlas canvas on its own (:class:`rrd.scene.Atlas`): page ``t`` is
    ``tiles[t, :h_t, :w_t]``; the canvas around a smaller page stays 0 (no codec sees it).

    Args:
        tiles: (T, H, W, C) canvas; occupancy: (T, H, W) bool; sizes: T pairs (h_t, w_t).
    """
    T, H, W = tiles.shape[:3]
    if all(tuple(size) == (H, W) for size in sizes):
        return pad(tiles, occupancy, method, **params)
    out = np.zeros(tiles.shape, dtype=np.float32)
    for t, (h, w) in enumerate(sizes):
        out[t, :h, :w] = pad(tiles[t, :h, :w], occupancy[t, :h, :w], method, **params)
    return out


def pad(atlas: np.ndarray, occupancy: np.ndarray, method: str, **params: object) -> np.ndarray:
    """Fill the empty texels of an atlas tile (or of each tile) with a padding method.

    Args:
        atlas: (H, W, C) or (T, H, W, C) texel values, float in [0, 1] (converted to float32).
        occupancy: (H, W) or (T, H, W) bool, ``atlas.shape[:-1]``; True = occupied (kept as is).
        method: a key of ``PADDING_METHODS``: "none", "dilate", "pushpull", "spp", "vdmc", "hbf",
            "sparse" or "extend" (see the module docstring).
        **params: the method's parameters (module docstring), e.g. ``rings=4`` for "dilate".

    Returns:
        A new float32 array of the atlas's shape: occupied texels equal to ``atlas`` (as float32)
        bit for bit, empty texels filled (or 0 where the method leaves them empty).
    """
    fill = PADDING_METHODS.lookup(method)
    accepted = list(inspect.signature(fill).parameters)[2:]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InputError(f"padding method {method!r} has no parameter {', '.join(unknown)}; "
                         f"its parameters: {', '.join(accepted) or 'none'}")
    values = np.asarray(atlas)
    keep = np.asarray(occupancy)
    if values.ndim not in (3, 4) or not np.issubdtype(values.dtype, np.floating):
        raise InputError(f"atlas has shape {values.shape} and dtype {values.dtype}, expected float "
                         "(H, W, C) or (T, H, W, C)")
    if keep.shape != values.shape[:-1]:
        raise InputError(f"occupancy has shape {keep.shape} but the atlas has shape "
                         f"{values.shape}; expected occupancy {values.shape[:-1]}")
    if keep.dtype != np.bool_:
        raise InputError(f"occupancy has dtype {keep.dtype}, expected bool (True = occupied)")
    values = values.astype(np.float32, copy=False)
    if values.ndim == 4:
        return np.stack([_pad_tile(tile, mask, fill, params) for tile, mask in zip(values, keep)])
    return _pad_tile(values, keep, fill, params)


def _pad_tile(tile: np.ndarray, keep: np.ndarray, fill: PaddingMethod,
              params: dict[str, object]) -> np.ndarray:
    """Pad one (H, W, C) float32 tile; occupied texels are copied from ``tile`` at the end."""
    values = tile.transpose(2, 0, 1).copy()  # (C, H, W), C-contiguous
    np.copyto(values, np.float32(0), where=~keep)  # assignment, so NaN gutters do not leak
    filled = fill(values, keep, **params)
    return np.where(keep[..., None], tile, filled.transpose(1, 2, 0))


# --------------------------------------------------------------------------------------------
# Parameter checks


def _count(name: str, value: object, allow_none: bool = False) -> int | None:
    """A non-negative integer parameter (or None where allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        hint = " or None" if allow_none else ""
        raise InputError(f"padding parameter {name}={value!r} must be an integer >= 0{hint}")
    return int(value)


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not np.isfinite(value) or value <= 0:
        raise InputError(f"padding parameter {name}={value!r} must be a finite number > 0")
    return float(value)


# --------------------------------------------------------------------------------------------
# Shared operations on (C, H, W) float32 images and (H, W) bool masks


def _cross_sum(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Sum of the 4-neighbours inside the image (missing ones count 0), same shape as ``x``;
    written into ``out`` when given (reusing a buffer saves page faults on large images)."""
    if out is None:
        out = np.empty_like(x)
    out[..., 1:, :] = x[..., :-1, :]
    out[..., :1, :] = 0
    out[..., :-1, :] += x[..., 1:, :]
    out[..., :, 1:] += x[..., :, :-1]
    out[..., :, :-1] += x[..., :, 1:]
    return out


def _ring_sum_clamped(x: np.ndarray) -> np.ndarray:
    """Sum of the 8 neighbours with edge clamping (a missing neighbour repeats the border texel)."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    cols = p[:, :-2] + p[:, 1:-1]
    cols += p[:, 2:]
    box = cols[:, :, :-2] + cols[:, :, 1:-1]
    box += cols[:, :, 2:]
    box -= x
    return box


def _pull(values: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One pull level: (C, ceil(H/2), ceil(W/2)) means of the occupied children, and occupancy."""
    c, h, w = values.shape
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    padded = np.zeros((c, 2 * h2, 2 * w2), dtype=np.float32)
    padded[:, :h, :w] = values
    counts_in = np.zeros((2 * h2, 2 * w2), dtype=np.float32)
    counts_in[:h, :w] = keep
    sums = padded[:, 0::2, 0::2] + padded[:, 1::2, 0::2]
    sums += padded[:, 0::2, 1::2]
    sums += padded[:, 1::2, 1::2]
    counts = counts_in[0::2, 0::2] + counts_in[1::2, 0::2]
    counts += counts_in[0::2, 1::2]
    counts += counts_in[1::2, 1::2]
    coarse_keep = counts > 0
    sums /= np.maximum(counts, 1)  # empty coarse texels: 0 / 1
    return sums, coarse_keep


def _pyramid(values: np.ndarray, keep: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The pull pyramid, finest (the input) first, down to a level with a side of 4 or less."""
    levels = [(values, keep)]
    while True:
        levels.append(_pull(*levels[-1]))
        if min(levels[-1][1].shape) <= 4:
            return levels


def _fill_with_mean(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Empty texels set to the mean of the occupied ones (TMC2 leaves the coarsest level's empty
    texels at 0, which only matters when that level is not fully occupied)."""
    mean = values.sum(axis=(1, 2), dtype=np.float64) / max(int(keep.sum()), 1)
    return np.where(keep, values, mean.astype(np.float32)[:, None, None])


def _upsample(coarse: np.ndarray, height: int, width: int) -> np.ndarray:
    """Push interpolation of (C, ceil(height/2), ceil(width/2)) to (C, height, width).

    Fine texel i lies at coarse position i/2 - 1/4, so it weighs its coarse texel i // 2 by 3/4
    and the next one towards it (i // 2 - 1 for even i, i // 2 + 1 for odd i, clamped at the
    border) by 1/4 in each direction: 9/16, 3/16, 3/16, 1/16 in 2D."""
    return _upsample_axis(_upsample_axis(coarse, 1, height), 2, width)


def _upsample_axis(coarse: np.ndarray, axis: int, n_fine: int) -> np.ndarray:
    """The 3/4, 1/4 interpolation of :func:`_upsample` along one axis, cropped to ``n_fine``."""
    def take(index: slice) -> np.ndarray:
        return coarse[(slice(None),) * axis + (index,)]

    before = np.concatenate([take(slice(0, 1)), take(slice(None, -1))], axis=axis)
    after = np.concatenate([take(slice(1, None)), take(slice(-1, None))], axis=axis)
    shape = list(coarse.shape)
    shape[axis] *= 2
    fine = np.empty(shape, dtype=np.float32)
    main = np.float32(0.75) * coarse
    fine[(slice(None),) * axis + (slice(0, None, 2),)] = main + np.float32(0.25) * before
    fine[(slice(None),) * axis + (slice(1, None, 2),)] = main + np.float32(0.25) * after
    return fine[(slice(None),) * axis + (slice(0, n_fine),)]


def _coarse_to_fine(values: np.ndarray, keep: np.ndarray,
                    refine: Callable[[np.ndarray, np.ndarray, int], np.ndarray]) -> np.ndarray:
    """Fill the pull pyramid's coarsest level with its mean, then push level by level to the
    finest: each level's empty texels start from the bilinear upsampling of the coarser result
    and ``refine(u, level_keep, pushes)`` improves them (``pushes`` = 0 at the coarsest level,
    k after the k-th push). Returns (C, H, W) float32 equal to ``values`` on occupied texels."""
    levels = _pyramid(values, keep)
    u = refine(_fill_with_mean(*levels[-1]), levels[-1][1], 0)
    for pushes, (level_values, level_keep) in enumerate(reversed(levels[:-1]), start=1):
        u = np.where(level_keep, level_values, _upsample(u, *level_keep.shape))
        u = refine(u, level_keep, pushes)
    return u


def _smoothed_push_pull(values: np.ndarray, keep: np.ndarray, coarsest_passes: int,
                        max_passes: int) -> np.ndarray:
    def smooth(u: np.ndarray, level_keep: np.ndarray, pushes: int) -> np.ndarray:
        passes = min(coarsest_passes + pushes - 1, max_passes) if pushes else 0
        empty = ~level_keep
        for _ in range(passes):
            ring = _ring_sum_clamped(u)  # Jacobi: all of it from the previous pass
            ring *= np.float32(0.125)
            np.copyto(u, ring, where=empty)
        return u
    return _coarse_to_fine(values, keep, smooth)


def _grow(values: np.ndarray, keep: np.ndarray, neighbourhood: tuple[tuple[int, int, float], ...],
          steps: int | None, to_8bit: bool) -> tuple[np.ndarray, np.ndarray]:
    """Region growing, one ring per step (Jacobi: a step only reads texels filled before it).

    Each step, every empty texel with at least one filled neighbour takes the weighted mean of its
    filled neighbours. Only the frontier is visited, so the cost is proportional to the number of
    filled texels, not to steps x image size. ``to_8bit``: average 8-bit codes and round halves up
    (the dilation of MPEG's software). Returns the (C, H, W) grown values (never-reached texels
    at 0; occupied texels as 8-bit codes / 255 when ``to_8bit``) and the (H, W) filled mask.
    """
    c, h, w = values.shape
    flat = np.ascontiguousarray(values.reshape(c, -1).T)  # (H*W, C)
    if to_8bit:
        flat = np.rint(flat * np.float32(255))
    filled = keep.reshape(-1).copy()
    # Start from the filled texels that have an empty neighbour.
    boundary = np.zeros((h, w), dtype=bool)
    for dr, dc, _ in neighbourhood:
        empty_nb = np.zeros((h, w), dtype=bool)
        empty_nb[max(-dr, 0):h - max(dr, 0), max(-dc, 0):w - max(dc, 0)] = \
            ~keep[max(dr, 0):h - max(-dr, 0), max(dc, 0):w - max(-dc, 0)]
        boundary |= empty_nb
    fresh = np.flatnonzero(boundary & keep)
    step = 0
    while fresh.size and (steps is None or step < steps):
        row, col = np.divmod(fresh, w)
        candidates = []
        for dr, dc, _ in neighbourhood:
            ok = (row + dr >= 0) & (row + dr < h) & (col + dc >= 0) & (col + dc < w)
            candidates.append(fresh[ok] + (dr * w + dc))
        front = np.concatenate(candidates)
        front = np.sort(front[~filled[front]])
        if front.size == 0:
            break
        front = front[np.concatenate(([True], front[1:] != front[:-1]))]  # unique
        row, col = np.divmod(front, w)
        total = np.zeros((front.size, c), dtype=np.float64)
        weight = np.zeros(front.size, dtype=np.float64)
        for dr, dc, wk in neighbourhood:
            ok = (row + dr >= 0) & (row + dr < h) & (col + dc >= 0) & (col + dc < w)
            nb = np.where(ok, front + (dr * w + dc), 0)
            ok &= filled[nb]
            total += np.where(ok[:, None], flat[nb], 0) * wk
            weight += ok * wk
        if to_8bit:
            flat[front] = np.floor((total + np.floor(weight / 2)[:, None]) / weight[:, None])
        else:
            flat[front] = total / weight[:, None]
        filled[front] = True
        fresh = front
        step += 1
    if to_8bit:
        flat = flat / np.float32(255)
    out = np.where(filled[:, None], flat, np.float32(0)).astype(np.float32)
    return np.ascontiguousarray(out.T.reshape(c, h, w)), filled.reshape(h, w)


def _laplace_gauss_seidel(u: np.ndarray, keep: np.ndarray, max_sweeps: int,
                          tol: float) -> np.ndarray:
    """Red-black Gauss-Seidel on the empty texels of (C, H, W) ``u`` (updated in place): each
    empty texel becomes the mean of its in-image 4-neighbours (Neumann border). Stops after a sweep
    whose mean squared update over the empty texels is below ``tol`` (in [0, 1]^2 units) in every
    channel."""
    h, w = keep.shape
    neighbours = _cross_sum(np.ones((1, h, w), dtype=np.float32))[0]
    red = np.add.outer(np.arange(h), np.arange(w)) % 2 == 0
    empty = ~keep
    n_empty = int(empty.sum())
    if n_empty == 0:
        return u
    # update = (neighbour sum - n * u) / n on one colour's empty texels, 0 elsewhere
    scales = [np.where(empty & colour, 1.0 / neighbours, 0).astype(np.float32)
              for colour in (red, ~red)]
    update = np.empty_like(u)
    scratch = np.empty_like(u)
    for _ in range(max_sweeps):
        squared = np.zeros(u.shape[0], dtype=np.float64)
        for scale in scales:
            _cross_sum(u, out=update)
            update -= np.multiply(neighbours, u, out=scratch)
            update *= scale
            u += update
            squared += _channel_dots(update, update)
        if (squared / n_empty).max() < tol:
            break
    return u


def _laplace_conjugate_gradient(u: np.ndarray, keep: np.ndarray, max_iters: int,
                                tol: float) -> np.ndarray:
    """Conjugate gradients on the Laplace system of the empty texels of (C, H, W) ``u``:
    ``n x - (sum of empty neighbours' x) = sum of occupied neighbours' values`` (n = in-image
    neighbour count, Neumann border), from ``u`` as the first guess, per channel until the residual
    norm is at most ``tol`` times the right-hand side's. Returns a new (C, H, W) array."""
    h, w = keep.shape
    neighbours = _cross_sum(np.ones((1, h, w), dtype=np.float32))[0]
    empty_f = (~keep).astype(np.float32)
    known = u * (1 - empty_f)
    scratch = np.empty_like(u)

    def apply(x: np.ndarray, out: np.ndarray) -> np.ndarray:  # x is 0 on occupied texels
        np.multiply(neighbours, x, out=out)
        out -= _cross_sum(x, out=scratch)
        out *= empty_f
        return out

    rhs = _cross_sum(known) * empty_f
    x = u * empty_f
    residual = rhs - apply(x, np.empty_like(u))
    direction = residual.copy()
    a_dir = np.empty_like(u)
    rr = _channel_dots(residual, residual)
    stop = tol ** 2 * _channel_dots(rhs, rhs)
    for _ in range(max_iters):
        if (rr <= stop).all():
            break
        apply(direction, a_dir)
        curvature = _channel_dots(direction, a_dir)
        alpha = np.divide(rr, curvature, out=np.zeros_like(rr), where=curvature > 0)
        for c in range(u.shape[0]):
            x[c] += np.float32(alpha[c]) * direction[c]
            residual[c] -= np.float32(alpha[c]) * a_dir[c]
        rr_next = _channel_dots(residual, residual)
        beta = np.divide(rr_next, rr, out=np.zeros_like(rr), where=rr > 0)
        direction *= beta.astype(np.float32)[:, None, None]
        direction += residual
        rr = rr_next
    return known + x


def _channel_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(C,) float64 per-channel dot products of two (C, H, W) float32 arrays (BLAS, float32
    accumulation: ample for step sizes and stopping tests)."""
    return np.array([np.dot(ac.ravel(), bc.ravel()) for ac, bc in zip(a, b)], dtype=np.float64)


# --------------------------------------------------------------------------------------------
# The methods


@PADDING_METHODS.register("none")
def _none(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return values


@PADDING_METHODS.register("dilate")
def _dilate(values: np.ndarray, keep: np.ndarray, rings: int | None = None) -> np.ndarray:
    return _grow(values, keep, _CROSS, _count("rings", rings, allow_none=True), to_8bit=True)[0]


@PADDING_METHODS.register("pushpull")
def _pushpull(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return _smoothed_push_pull(values, keep, 0, 0)


@PADDING_METHODS.register("spp")
def _spp(values: np.ndarray, keep: np.ndarray, coarsest_passes: int = 4,
         max_passes: int = 16) -> np.ndarray:
    return _smoothed_push_pull(values, keep, _count("coarsest_passes", coarsest_passes),
                               _count("max_passes", max_passes))


@PADDING_METHODS.register("vdmc")
def _vdmc(values: np.ndarray, keep: np.ndarray, rings: int = 4, coarsest_passes: int = 4,
          max_passes: int = 16) -> np.ndarray:
    dilated, reached = _grow(values, keep, _CROSS, _count("rings", rings), to_8bit=True)
    dilated = np.where(keep, values, dilated)
    return _smoothed_push_pull(dilated, reached, _count("coarsest_passes", coarsest_passes),
                               _count("max_passes", max_passes))


@PADDING_METHODS.register("hbf")
def _hbf(values: np.ndarray, keep: np.ndarray, max_sweeps: int = 1024,
         tol: float = 1e-5) -> np.ndarray:
    max_sweeps = _count("max_sweeps", max_sweeps)
    tol_unit = _positive("tol", tol) / 255.0 ** 2  # TMC2 measures the update in 8-bit codes
    return _coarse_to_fine(values, keep,
                           lambda u, k, _: _laplace_gauss_seidel(u, k, max_sweeps, tol_unit))


@PADDING_METHODS.register("sparse")
def _sparse(values: np.ndarray, keep: np.ndarray, max_iters: int = 2000,
            tol: float = 1e-5) -> np.ndarray:
    max_iters = _count("max_iters", max_iters)
    tol = _positive("tol", tol)
    return _coarse_to_fine(values, keep,
                           lambda u, k, _: _laplace_conjugate_gradient(u, k, max_iters, tol))


@PADDING_METHODS.register("extend")
def _extend(values: np.ndarray, keep: np.ndarray, passes: int | None = 16) -> np.ndarray:
    return _grow(values, keep, _BLENDER_EXTEND, _count("passes", passes, allow_none=True),
                 to_8bit=False)[0]
