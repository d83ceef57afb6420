"""Differentiable texture sampling: bilinear (as the published method) and trilinear mipmapped.

Sampling is split the way it is linear: a *tap set* (which texels, with which weights) depends only on
the UVs, and sampling is a weighted gather of texel values. The optimiser folds tap sets into a
quadratic form; rendering gathers through them; gradients reach every texel a tap touches, including
gutter texels next to a chart border (the taps that make texture bleeding).

UV convention: :mod:`rrd.scene` (local tile UV, v up, texel centres at +0.5). Bilinear sampling of a
tile of ``H x W`` texels at local ``(u, v)`` reads the continuous texel position
``(x, y) = (u W - 0.5, (1 - v) H - 0.5)`` measured from the centre of texel (0, 0), clamped to the
edge: this is ``torch.nn.functional.grid_sample(..., align_corners=False, padding_mode="border")`` with
``grid = (2u - 1, 1 - 2v)``. Example (W = H = 4): u = 0.3 gives x = 0.7, so 30 % of texel column 0
and 70 % of column 1.

Texel vectors: the tiles ``(T, H, W, C)`` flattened to ``(T*H*W, C)`` (tile, row, column order); for
trilinear sampling, the mip levels of all tiles concatenated after each other (:func:`mip_texels`).

Pages of different sizes (:class:`rrd.scene.Atlas`): the tiles are a canvas ``(T, H, W, C)`` and page ``t``
of ``h_t x w_t`` texels occupies its top-left corner. Its local UVs address the page alone (``x = u w_t``),
clamped at the page's edge; the canvas only sets the strides of the texel vector. Example (a 4 x 4 canvas,
a 2 x 2 page): ``(u, v) = (0.25, 0.75)`` is the centre of texel (row 0, col 0), index 0; the page's texel
(row 1, col 1) is index ``1 * 4 + 1 = 5``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rrd.errors import InputError

__all__ = ["Taps", "bilinear_taps", "trilinear_taps", "mip_levels", "mip_texels", "gather", "texture"]


@dataclass(frozen=True)
class Taps:
    """A sparse linear sampling operator: ``out[n] = sum_k weight[n, k] * texels[index[n, k]]``.

    Attributes:
        index: (N, K) int64 rows of the texel vector (K = 4 bilinear, 8 trilinear).
        weight: (N, K) float weights, each row summing to 1.
    """

    index: torch.Tensor
    weight: torch.Tensor

    def to(self, device: torch.device | str) -> "Taps":
        return Taps(self.index.to(device), self.weight.to(device))


def _check_uv(uv: torch.Tensor, tile: torch.Tensor) -> None:
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise InputError(f"uv has shape {tuple(uv.shape)}, expected (N, 2)")
    if tile.shape != uv.shape[:1]:
        raise InputError(f"tile has shape {tuple(tile.shape)}, expected ({uv.shape[0]},)")


def bilinear_taps(uv: torch.Tensor, tile: torch.Tensor, height: int, width: int,
                  offset: int = 0, page_sizes: torch.Tensor | None = None) -> Taps:
    """Bilinear taps with clamp-to-edge addressing.

    Args:
        uv: (N, 2) local tile coordinates, v up (differentiable: the weights carry its gradient).
        tile: (N,) int64 tile index of each sample.
        height, width: tile (canvas) size in texels.
        offset: added to every index (where this level starts in a concatenated texel vector).
        page_sizes: (T, 2) int64 (height, width) of each page where pages are smaller than the canvas
            (module docstring); None: every page is the whole tile.
    Returns:
        Taps with K = 4, in the order (x0, y0), (x1, y0), (x0, y1), (x1, y1).
    """
    _check_uv(uv, tile)
    if page_sizes is None:
        page_h, page_w = height, width
    else:
        size = page_sizes.to(uv.device)[tile.long()].to(uv.dtype)
        page_h, page_w = size[:, 0], size[:, 1]
    x = uv[:, 0] * page_w - 0.5
    y = (1.0 - uv[:, 1]) * page_h - 0.5
    # Clamping the position (not only the indices) keeps the edge texel's weight at 1 outside the page.
    x = torch.minimum(x.clamp_min(0.0), torch.as_tensor(page_w - 1.0, dtype=x.dtype, device=x.device))
    y = torch.minimum(y.clamp_min(0.0), torch.as_tensor(page_h - 1.0, dtype=y.dtype, device=y.device))
    x0f, y0f = torch.floor(x).detach(), torch.floor(y).detach()
    fx, fy = x - x0f, y - y0f
    x0, y0 = x0f.long(), y0f.long()
    last_x = torch.as_tensor(page_w - 1, device=x.device).long()
    last_y = torch.as_tensor(page_h - 1, device=y.device).long()
    x1, y1 = torch.minimum(x0 + 1, last_x), torch.minimum(y0 + 1, last_y)
    base = offset + tile.long() * (height * width)
    index = torch.stack([base + y0 * width + x0, base + y0 * width + x1,
                         base + y1 * width + x0, base + y1 * width + x1], dim=1)
    weight = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dim=1)
    return Taps(index, weight)


def mip_levels(height: int, width: int) -> list[tuple[int, int]]:
    """Sizes of the mip chain, halving with ceil down to 1x1: [(H, W), (ceil(H/2), ceil(W/2)), ...]."""
    sizes = [(height, width)]
    while sizes[-1] != (1, 1):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def mip_texels(tiles: torch.Tensor) -> torch.Tensor:
    """The mip chain of all tiles as one texel vector (differentiable in ``tiles``).

    Args:
        tiles: (T, H, W, C) texel values.
    Returns:
        (M, C), M = sum over levels of T * H_l * W_l; each coarser texel is the mean of the (up to four)
        finer texels it covers.
    """
    level = tiles.permute(0, 3, 1, 2)
    parts = [tiles.reshape(-1, tiles.shape[-1])]
    while level.shape[-2:] != (1, 1):
        level = F.avg_pool2d(level, 2, ceil_mode=True)
        parts.append(level.permute(0, 2, 3, 1).reshape(-1, tiles.shape[-1]))
    return torch.cat(parts, dim=0)


def trilinear_taps(uv: torch.Tensor, tile: torch.Tensor, uv_dx: torch.Tensor, uv_dy: torch.Tensor,
                   n_tiles: int, height: int, width: int) -> Taps:
    """Trilinear mipmapped taps into :func:`mip_texels`' vector, as GPUs filter minified textures.

    The level of detail is ``log2`` of the longer screen-space footprint axis in texels,
    ``max(|d(uv)/dx|, |d(uv)/dy|)`` scaled by the tile size, clamped to the chain; the two nearest levels
    are sampled bilinearly and blended. The level choice carries no gradient.

    Args:
        uv: (N, 2) local UVs; tile: (N,) tile index; uv_dx, uv_dy: (N, 2) UV change per pixel step.
        n_tiles, height, width: size of the base level.
    Returns:
        Taps with K = 8.
    """
    _check_uv(uv, tile)
    scale = torch.tensor([width, height], dtype=uv_dx.dtype, device=uv_dx.device)
    rho = torch.maximum((uv_dx.detach() * scale).norm(dim=1), (uv_dy.detach() * scale).norm(dim=1))
    sizes = mip_levels(height, width)
    lod = torch.log2(rho.clamp_min(1e-12)).clamp(0.0, len(sizes) - 1.0)
    lo = torch.floor(lod).long()
    frac = (lod - lo).to(uv.dtype)
    hi = (lo + 1).clamp_max(len(sizes) - 1)
    offsets = [0]
    for h, w in sizes[:-1]:
        offsets.append(offsets[-1] + n_tiles * h * w)
    index = torch.empty((uv.shape[0], 8), dtype=torch.long, device=uv.device)
    weight = torch.empty((uv.shape[0], 8), dtype=uv.dtype, device=uv.device)
    for level, (h, w) in enumerate(sizes):
        for half, (which, lw) in enumerate(((lo, 1 - frac), (hi, frac))):
            sel = torch.nonzero(which == level).squeeze(1)
            if len(sel) == 0:
                continue
            taps = bilinear_taps(uv[sel], tile[sel], h, w, offsets[level])
            index[sel, 4 * half:4 * half + 4] = taps.index
            weight[sel, 4 * half:4 * half + 4] = taps.weight * lw[sel, None]
    return Taps(index, weight)


def gather(texels: torch.Tensor, taps: Taps) -> torch.Tensor:
    """Apply taps: (M, C) texel vector -> (N, C) samples; differentiable in texels and tap weights."""
    return (texels[taps.index] * taps.weight[..., None].to(texels.dtype)).sum(1)


def texture(tiles: torch.Tensor, uv: torch.Tensor, tile: torch.Tensor, filter: str = "bilinear",
            uv_dx: torch.Tensor | None = None, uv_dy: torch.Tensor | None = None) -> torch.Tensor:
    """Sample texture tiles at UVs (the one-call convenience over taps + gather).

    Args:
        tiles: (T, H, W, C) texel values (differentiable).
        uv: (N, 2) local UVs, v up; tile: (N,) int64 tile index.
        filter: "bilinear" or "trilinear" (needs uv_dx, uv_dy: (N, 2) UV change per pixel step).
    Returns:
        (N, C) sampled values.
    """
    T, H, W, C = tiles.shape
    if filter == "bilinear":
        return gather(tiles.reshape(-1, C), bilinear_taps(uv, tile, H, W))
    if filter == "trilinear":
        if uv_dx is None or uv_dy is None:
            raise InputError("trilinear filtering needs the screen-space UV derivatives uv_dx and uv_dy")
        return gather(mip_texels(tiles), trilinear_taps(uv, tile, uv_dx, uv_dy, T, H, W))
    raise InputError(f"unknown texture filter {filter!r}; choose bilinear or trilinear")

