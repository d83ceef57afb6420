"""Tests for rrd.occupancy.texel_coverage."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rrd.errors import InputError
from rrd.occupancy import texel_coverage

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SCEAUX = DATA / "sceaux_castle"


def to_uv(xy: np.ndarray, height: int, width: int) -> np.ndarray:
    """Continuous texel positions (x right, y down) to local UVs (v up), rrd.scene convention."""
    xy = np.asarray(xy, dtype=np.float64)
    return np.stack([xy[..., 0] / width, 1.0 - xy[..., 1] / height], axis=-1)


def clip_reference(tri: np.ndarray, height: int, width: int, margin: float) -> np.ndarray:
    """Independent reference: a texel is covered when clipping the triangle to its (closed)
    square leaves something (Sutherland-Hodgman against the four sides)."""
    out = np.zeros((height, width), dtype=bool)
    for r in range(height):
        for c in range(width):
            poly = [tuple(p) for p in tri]
            sides = ((0, c + 0.5 - margin, False), (0, c + 0.5 + margin, True),
                     (1, r + 0.5 - margin, False), (1, r + 0.5 + margin, True))
            for axis, bound, keep_below in sides:
                inside = [(p[axis] <= bound) if keep_below else (p[axis] >= bound) for p in poly]
                clipped = []
                for i, p in enumerate(poly):
                    q = poly[(i + 1) % len(poly)]
                    if inside[i]:
                        clipped.append(p)
                    if inside[i] != inside[(i + 1) % len(poly)]:
                        t = (bound - p[axis]) / (q[axis] - p[axis])
                        clipped.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
                poly = clipped
                if not poly:
                    break
            out[r, c] = bool(poly)
    return out


@pytest.mark.parametrize("margin", [0.0, 0.5, 1.0, 2.0])
def test_axis_aligned_quad_matches_the_analytic_texel_ranges(margin: float) -> None:
    h, w = 16, 20
    x0, x1, y0, y1 = 2.7, 7.2, 4.2, 9.9  # a rectangle seen head-on, as two triangles
    quad = np.array([[[x0, y0], [x1, y0], [x1, y1]], [[x0, y0], [x1, y1], [x0, y1]]])
    got = texel_coverage(to_uv(quad, h, w), np.zeros(2, dtype=int), 1, h, w, margin)[0]
    # texel c's square [c + 0.5 - m, c + 0.5 + m] meets [x0, x1] iff the bounds below hold
    cols = np.arange(w)
    rows = np.arange(h)
    col_ok = (cols >= math.ceil(x0 - 0.5 - margin)) & (cols <= math.floor(x1 - 0.5 + margin))
    row_ok = (rows >= math.ceil(y0 - 0.5 - margin)) & (rows <= math.floor(y1 - 0.5 + margin))
    np.testing.assert_array_equal(got, row_ok[:, None] & col_ok[None, :])
    if margin == 0.5:
        assert got.sum() == 6 * 6  # columns 2..7, rows 4..9


def test_sliver_thinner_than_a_texel_is_marked() -> None:
    h, w = 8, 16
    sliver = np.array([[[1.3, 3.2], [13.6, 3.3], [13.6, 3.35]]])  # no texel centre inside
    uv = to_uv(sliver, h, w)
    assert not texel_coverage(uv, np.zeros(1, dtype=int), 1, h, w, 0.0).any()
    got = texel_coverage(uv, np.zeros(1, dtype=int), 1, h, w, 0.5)[0]
    expected = np.zeros((h, w), dtype=bool)
    expected[3, 1:14] = True
    np.testing.assert_array_equal(got, expected)


def test_degenerate_triangles_mark_their_point_or_segment() -> None:
    # rrd.scene example: (u, v) = (0.5, 0.5) on a 4x4 tile is the corner of texels (1|2, 1|2).
    point = np.full((1, 3, 2), 0.5)
    got = texel_coverage(point, np.zeros(1, dtype=int), 1, 4, 4, 0.5)[0]
    expected = np.zeros((4, 4), dtype=bool)
    expected[1:3, 1:3] = True
    np.testing.assert_array_equal(got, expected)
    # A horizontal segment at y = 2.25 from x = 0.6 to 2.4 (third corner on it).
    segment = to_uv(np.array([[[0.6, 2.25], [2.4, 2.25], [1.0, 2.25]]]), 4, 4)
    got = texel_coverage(segment, np.zeros(1, dtype=int), 1, 4, 4, 0.5)[0]
    expected = np.zeros((4, 4), dtype=bool)
    expected[2, 0:3] = True
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("margin", [0.0, 0.5, 1.0, 1.7])
def test_random_triangles_match_a_clipping_reference(margin: float) -> None:
    rng = np.random.default_rng(7)
    h, w = 12, 14
    centres = rng.uniform([0, 0], [w, h], size=(12, 1, 2))
    tris = centres + rng.normal(scale=2.5, size=(12, 3, 2))  # some stick out of the tile
    tris[0] = tris[0, 0] + np.array([[0, 0], [6.0, 0.3], [12.0, 0.6]])  # collinear
    tris[1, :, 1] = tris[1, 0, 1] + np.array([0.0, 0.05, 0.1])  # sliver
    tiles = np.arange(12) % 2
    got = texel_coverage(to_uv(tris, h, w), tiles, 2, h, w, margin)
    for t in range(2):
        expected = np.zeros((h, w), dtype=bool)
        for tri in tris[tiles == t]:
            expected |= clip_reference(tri, h, w, margin)
        np.testing.assert_array_equal(got[t], expected)


def test_larger_margin_covers_more() -> None:
    rng = np.random.default_rng(3)
    uv = rng.uniform(0.05, 0.95, size=(40, 1, 2)) + rng.normal(scale=0.03, size=(40, 3, 2))
    half = texel_coverage(uv, np.zeros(40, dtype=int), 1, 64, 64, 0.5)
    one = texel_coverage(uv, np.zeros(40, dtype=int), 1, 64, 64, 1.0)
    assert half.sum() > 0
    assert not (half & ~one).any()
    assert one.sum() > half.sum()


def test_faces_mark_only_their_own_tile() -> None:
    tri = np.array([[[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]])
    got = texel_coverage(tri, np.array([2]), 3, 8, 8, 0.5)
    assert got.shape == (3, 8, 8) and got.dtype == bool
    assert got[2].any() and not got[:2].any()


def test_bad_input_raises_input_error() -> None:
    tri = np.array([[[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]])
    with pytest.raises(InputError, match=r"uv_local has shape \(1, 3\)"):
        texel_coverage(tri[:, :, 0], np.zeros(1, dtype=int), 1, 8, 8, 0.5)
    with pytest.raises(InputError, match="face_tile has shape"):
        texel_coverage(tri, np.zeros(2, dtype=int), 1, 8, 8, 0.5)
    with pytest.raises(InputError, match=r"tile indices in 0\.\.1"):
        texel_coverage(tri, np.array([2]), 2, 8, 8, 0.5)
    with pytest.raises(InputError, match="margin -1"):
        texel_coverage(tri, np.zeros(1, dtype=int), 1, 8, 8, -1)
    with pytest.raises(InputError, match="non-finite"):
        texel_coverage(np.full((1, 3, 2), np.nan), np.zeros(1, dtype=int), 1, 8, 8, 0.5)


@pytest.fixture(scope="module")
def sceaux() -> tuple[np.ndarray, np.ndarray]:
    """(F, 3, 2) face UVs and the (4096, 4096, 3) uint8 atlas of the Sceaux Castle mesh."""
    if not SCEAUX.is_dir():
        pytest.skip(f"real test data not found at {SCEAUX}")
    trimesh = pytest.importorskip("trimesh")
    from PIL import Image

    mesh = trimesh.load(SCEAUX / "scene_mesh_texture.ply", process=False)
    uv = np.asarray(mesh.visual.uv)[np.asarray(mesh.faces)]
    atlas = np.asarray(Image.open(SCEAUX / "scene_mesh_texture0.png").convert("RGB"))
    return uv, atlas


def test_sceaux_coverage_agrees_with_the_atlas(sceaux: tuple[np.ndarray, np.ndarray]) -> None:
    uv, atlas = sceaux
    assert uv.shape == (14709, 3, 2)
    tiles = np.zeros(len(uv), dtype=int)
    non_black = atlas.any(axis=-1)
    used = texel_coverage(uv, tiles, 1, 4096, 4096, 0.5)[0]
    grown = texel_coverage(uv, tiles, 1, 4096, 4096, 1.0)[0]
    # README: about 30% of the texels are used (measured: 29.6% at margin 0.5, 29.9% at 1.0).
    assert 0.28 < used.mean() < 0.31
    assert not (used & ~grown).any()
    # What a render reads is texture, not gutter: all but a few genuinely black texels.
    assert non_black[grown].mean() > 0.99999
    # The texturing rim ends within 3.5 texels of every triangle; everything beyond is black.
    far = ~texel_coverage(uv, tiles, 1, 4096, 4096, 3.5)[0]
    assert far.mean() > 0.6
    assert not non_black[far].any()
