"""Texel occupancy: which atlas texels a mesh's UV triangles touch.

Conventions are those of :mod:`rrd.scene`: local ``(u, v)`` (v up) falls on the continuous texel
position ``(x, y) = (u * W, (1 - v) * H)`` and texel ``(row r, col c)`` has its centre at
``(c + 0.5, r + 0.5)``.

Texel ``(r, c)`` is *covered with margin m* when the closed axis-aligned square of half-width ``m``
texels centred at ``(c + 0.5, r + 0.5)`` intersects the closed UV triangle. The test is the exact
separating-axis test (axes x, y and the three edge normals), so slivers thinner than a texel and
degenerate (zero-area) triangles still mark every texel their segment or point touches.
Example (H = W = 4, margin 0.5): the point ``(u, v) = (0.5, 0.5)`` is the corner shared by texels
(1, 1), (1, 2), (2, 1) and (2, 2); a degenerate triangle collapsed onto it marks exactly those.

Useful margins:
    * :data:`USED_MARGIN` 0.5: the texels a triangle overlaps at all ("used texels");
    * :data:`KEEP_MARGIN` 1.0: every texel that a bilinear tap at a point of the triangle can read, i.e.
      the triangle grown by one texel. Padding must keep these texels unchanged (REFERENCE.md section 6).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rrd.errors import InputError

__all__ = ["texel_coverage", "USED_MARGIN", "KEEP_MARGIN"]

USED_MARGIN = 0.5
"""Texels a UV triangle overlaps: the "used" texels (the prior, the seam-exclusion rule)."""
KEEP_MARGIN = 1.0
"""Texels a bilinear tap at a point of a triangle can read: what padding must keep."""

# Candidate texels tested per chunk: bounds memory (about 100 bytes per candidate).
_CHUNK_CANDIDATES = 1 << 20
# Texels are tested against a square this much larger than asked for, so that a square that only
# touches the triangle is not lost to float64 rounding (the result is conservative by 1e-6 texel).
_EPS_TEXELS = 1e-6


def texel_coverage(uv_local: np.ndarray, face_tile: np.ndarray, n_tiles: int, height: int,
                   width: int, margin: float, page_sizes: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
    """Mark the texels of each atlas tile that the UV triangles of its faces touch.

    Args:
        uv_local: (F, 3, 2) float per-face-corner UVs local to each face's tile (v up), normally in
            [0, 1] (``TexturedMesh.local_uv()``); parts of a triangle outside the tile are ignored.
        face_tile: (F,) int index of each face's tile, in 0..n_tiles-1.
        n_tiles: T, the number of tiles.
        height, width: H, W, the tile (canvas) size in texels.
        margin: half-width in texels (>= 0) of the square around each texel centre tested against
            the closed triangle: 0.5 = texels the triangle overlaps, 1.0 = the triangle grown by one
            texel (what bilinear sampling can read), 0 = texel centres inside the closed triangle.
        page_sizes: each page's (height, width) where pages are smaller than the canvas
            (:class:`rrd.scene.AtlasShape`); a face's UVs then address its own page.

    Returns:
        (T, H, W) bool, True where some triangle of that tile intersects the texel's square (never
        outside a page).
    """
    uv = np.asarray(uv_local)
    tiles = np.asarray(face_tile)
    if uv.ndim != 3 or uv.shape[1:] != (3, 2):
        raise InputError(f"uv_local has shape {uv.shape}, expected (F, 3, 2)")
    if tiles.shape != (uv.shape[0],):
        raise InputError(f"face_tile has shape {tiles.shape}, expected ({uv.shape[0]},) to match "
                         f"uv_local {uv.shape}")
    if int(n_tiles) <= 0 or int(height) <= 0 or int(width) <= 0:
        raise InputError(f"atlas size {n_tiles} tiles of {width}x{height} texels is not positive")
    if not np.isfinite(margin) or margin < 0:
        raise InputError(f"margin {margin} is not a finite number of texels >= 0")
    if not np.isfinite(uv).all():
        raise InputError("uv_local has non-finite values")
    if tiles.size and (not np.issubdtype(tiles.dtype, np.integer) or tiles.min() < 0
                       or tiles.max() >= n_tiles):
        raise InputError(f"face_tile must hold integer tile indices in 0..{n_tiles - 1}")
    n_tiles, height, width = int(n_tiles), int(height), int(width)
    covered = np.zeros((n_tiles, height, width), dtype=bool)
    if uv.shape[0] == 0:
        return covered

    sizes = np.asarray(page_sizes if page_sizes is not None else [(height, width)] * n_tiles, dtype=np.int64)
    if sizes.shape != (n_tiles, 2) or (sizes < 1).any() or (sizes[:, 0] > height).any() or (sizes[:, 1] > width).any():
        raise InputError(f"page sizes {sizes.tolist()} do not fit {n_tiles} tiles of {width}x{height} texels")
    face_h, face_w = sizes[tiles, 0], sizes[tiles, 1]
    xy = np.empty(uv.shape, dtype=np.float64)
    xy[..., 0] = uv[..., 0].astype(np.float64) * face_w[:, None]
    xy[..., 1] = (1.0 - uv[..., 1].astype(np.float64)) * face_h[:, None]
    grow = float(margin) + _EPS_TEXELS

    # x / y axes of the separating-axis test: the candidate texel ranges themselves.
    # Texel c's square [c + 0.5 - grow, c + 0.5 + grow] meets [xmin, xmax] iff
    # xmin - 0.5 - grow <= c <= xmax - 0.5 + grow.
    lo_xy, hi_xy = xy.min(axis=1), xy.max(axis=1)
    col0 = np.clip(np.ceil(lo_xy[:, 0] - 0.5 - grow), 0, face_w).astype(np.int64)
    col1 = np.clip(np.floor(hi_xy[:, 0] - 0.5 + grow), -1, face_w - 1).astype(np.int64)
    row0 = np.clip(np.ceil(lo_xy[:, 1] - 0.5 - grow), 0, face_h).astype(np.int64)
    row1 = np.clip(np.floor(hi_xy[:, 1] - 0.5 + grow), -1, face_h - 1).astype(np.int64)
    n_cols = np.maximum(col1 - col0 + 1, 0)
    n_rows = np.maximum(row1 - row0 + 1, 0)
    counts = n_cols * n_rows

    # Edge-normal axes, in coordinates relative to corner 0 (keeps the products small and exact
    # enough). For edge (i, j) with third corner k the triangle projects onto [min, max] of
    # {n.p_i, n.p_k}; the square projects onto n.centre +- grow * (|nx| + |ny|).
    origin = xy[:, 0, :]
    rel = xy - origin[:, None, :]
    edge_axes = []
    for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        d = rel[:, j] - rel[:, i]
        nx, ny = -d[:, 1], d[:, 0]
        on_edge = nx * rel[:, i, 0] + ny * rel[:, i, 1]
        opposite = nx * rel[:, k, 0] + ny * rel[:, k, 1]
        reach = grow * (np.abs(nx) + np.abs(ny))
        edge_axes.append((nx, ny, np.minimum(on_edge, opposite) - reach,
                          np.maximum(on_edge, opposite) + reach))

    ends = np.cumsum(counts)
    starts = ends - counts
    flat = covered.reshape(-1)
    tile_base = tiles.astype(np.int64) * (height * width)
    total = int(ends[-1])
    for begin in range(0, total, _CHUNK_CANDIDATES):
        index = np.arange(begin, min(begin + _CHUNK_CANDIDATES, total), dtype=np.int64)
        face = np.searchsorted(ends, index, side="right")
        local = index - starts[face]
        cols_f = n_cols[face]
        row = row0[face] + local // cols_f
        col = col0[face] + local % cols_f
        cx = col + (0.5 - origin[face, 0])
        cy = row + (0.5 - origin[face, 1])
        hit = np.ones(index.shape, dtype=bool)
        for nx, ny, lo, hi in edge_axes:
            t = nx[face] * cx + ny[face] * cy
            hit &= (t >= lo[face]) & (t <= hi[face])
        flat[tile_base[face[hit]] + row[hit] * width + col[hit]] = True
    return covered
