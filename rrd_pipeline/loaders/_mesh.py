"""Checks shared by the mesh loaders: indices, finite values, degenerate faces, UV tiles.

Degenerate faces: a face whose 3D area is (numerically) zero covers no pixel of any render, so the
loaders drop it with a warning that gives the count, instead of failing. "Zero" means twice the area
is at most 1e-10 times the squared longest edge (computed in float64), which catches repeated vertex
indices, coincident vertices and collinear corners. Faces with a zero-area UV triangle but a real 3D
area are kept: they render as one colour, which is what the texturing tool produced.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rrd.errors import InputError
from rrd.scene import TexturedMesh, udim_of

__all__ = ["UV_TOLERANCE", "finish_mesh"]

UV_TOLERANCE = 1e-4
"""How far (in tile widths) a corner may stray outside its face's tile before the mesh is rejected."""

_DEGENERATE_RATIO = 1e-10


def finish_mesh(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, source: str | Path,
                udims: Sequence[int]) -> TexturedMesh:
    """Validate loaded arrays, drop degenerate faces and build the :class:`TexturedMesh`.

    Args:
        vertices: (V, 3) world coordinates.
        faces: (F, 3) integer vertex indices.
        uv: (F, 3, 2) UDIM-global texture coordinates (v up), see :mod:`rrd.scene`.
        source: the file the arrays came from (named in every message).
        udims: the UDIM tiles that have a texture.
    Raises:
        InputError: no faces, indices out of range, non-finite values, a face in a tile without a
            texture, or a corner outside its face's tile by more than :data:`UV_TOLERANCE`.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    uv = np.asarray(uv, dtype=np.float64)
    if len(faces) == 0:
        raise InputError(f"{source}: the mesh has no faces")
    bad_index = (faces < 0) | (faces >= len(vertices))
    if bad_index.any():
        face = int(np.flatnonzero(bad_index.any(axis=1))[0])
        raise InputError(f"{source}: face {face} references vertex {faces[face].tolist()} but there are "
                         f"{len(vertices)} vertices")
    # Checked as stored (float32): a value beyond its range is as unusable as an infinity.
    with np.errstate(over="ignore"):
        finite_vertices, finite_uv = np.isfinite(vertices.astype(np.float32)), np.isfinite(uv.astype(np.float32))
    if not finite_vertices.all():
        raise InputError(f"{source}: {int((~finite_vertices).any(axis=1).sum())} vertices are not finite "
                         "(or beyond 32-bit floats)")
    if not finite_uv.all():
        raise InputError(f"{source}: {int((~finite_uv).any(axis=(1, 2)).sum())} faces have non-finite UVs")

    corners = vertices[faces]
    edges = corners[:, [1, 2, 0]] - corners
    twice_area = np.linalg.norm(np.cross(edges[:, 0], -edges[:, 2]), axis=1)
    longest_sq = (edges ** 2).sum(axis=2).max(axis=1)
    degenerate = twice_area <= _DEGENERATE_RATIO * longest_sq
    if degenerate.all():
        raise InputError(f"{source}: all {len(faces)} faces are degenerate (zero area)")
    if degenerate.any():
        warnings.warn(f"{source}: dropped {int(degenerate.sum())} degenerate faces (zero 3D area) "
                      f"of {len(faces)}", stacklevel=3)
        faces, uv = faces[~degenerate], uv[~degenerate]

    face_tile = udim_of(uv.mean(axis=1))
    missing = sorted(set(np.unique(face_tile).tolist()) - {int(u) for u in udims})
    if missing:
        count = int(np.isin(face_tile, missing).sum())
        raise InputError(f"{source}: {count} faces have UVs in UDIM tiles {missing} but textures exist only "
                         f"for tiles {sorted(int(u) for u in udims)}")
    local = uv - np.floor(uv.mean(axis=1, keepdims=True))
    outside = ((local < -UV_TOLERANCE) | (local > 1 + UV_TOLERANCE)).any(axis=(1, 2))
    if outside.any():
        face = int(np.flatnonzero(outside)[0])
        raise InputError(f"{source}: {int(outside.sum())} faces have UV corners outside their tile "
                         f"(face {face}: uv {np.round(uv[face], 4).tolist()}); a face must lie in one tile")
    return TexturedMesh(vertices, faces, uv)
