"""Orbit viewpoints: 16 cameras on a Fibonacci sphere, all looking at the box centre and framing the mesh."""

from __future__ import annotations

import numpy as np
import pytest

from rrd.errors import InputError
from rrd.rasterize import rasterize
from rrd.viewpoints import fibonacci_sphere, orbit_cameras, union_bbox


def test_fibonacci_sphere_spreads_unit_vectors_evenly():
    d = fibonacci_sphere(16)
    assert d.shape == (16, 3)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-12)
    # Equal-area bands: z = 1 - (2i + 1) / n, strictly decreasing, symmetric about 0.
    np.testing.assert_allclose(d[:, 2], 1.0 - (2 * np.arange(16) + 1) / 16)
    assert np.linalg.norm(d.mean(axis=0)) < 0.05
    gaps = np.linalg.norm(d[:, None] - d[None], axis=-1) + 10 * np.eye(16)
    assert gaps.min() > 0.6  # no two cameras bunch up (ideal spacing for 16 points is about 0.9)


def test_union_bbox_bounds_every_point_set():
    box = union_bbox(np.array([[0.0, 1.0, 2.0]]), np.array([[-1.0, 5.0, 0.0], [3.0, 0.0, 1.0]]))
    np.testing.assert_array_equal(box, [[-1.0, 0.0, 0.0], [3.0, 5.0, 2.0]])


def test_orbit_cameras_look_at_the_centre_and_frame_the_box(small_demo):
    mesh = small_demo.mesh
    box = union_bbox(mesh.vertices[np.unique(mesh.faces)])
    centre = box.mean(axis=0)
    radius = 0.5 * np.linalg.norm(box[1] - box[0])
    size = 48
    cams = orbit_cameras(box, n=16, size=size, fov_deg=45.0)
    assert len(cams) == 16 and [c.name for c in cams][:2] == ["orbit_00", "orbit_01"]
    corners = np.array([[box[i][0], box[j][1], box[k][2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    directions = []
    for cam in cams:
        assert (cam.width, cam.height) == (size, size)
        distance = np.linalg.norm(cam.center - centre)
        assert distance == pytest.approx(radius / np.sin(np.radians(22.5)), rel=1e-9)
        xy, depth = cam.project(centre[None])
        np.testing.assert_allclose(xy[0], [size / 2, size / 2], atol=1e-9)  # looks at the centre
        assert depth[0] > 0
        xy, depth = cam.project(corners)
        assert (depth > 0).all() and (xy >= 0).all() and (xy <= size).all()  # whole box in the image
        coverage = rasterize(mesh, cam, "cpu").mask.float().mean()
        assert coverage > 0.05  # the mesh is visible
        directions.append((cam.center - centre) / distance)
    np.testing.assert_allclose(np.array(directions), fibonacci_sphere(16), atol=1e-9)


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "positive integer"),
    ({"size": 0}, "image size"),
    ({"fov_deg": 180.0}, "field of view"),
])
def test_bad_orbit_options_name_the_problem(kwargs, message):
    with pytest.raises(InputError, match=message):
        orbit_cameras(np.array([[0.0, 0, 0], [1, 1, 1]]), **kwargs)


def test_degenerate_box_is_rejected():
    with pytest.raises(InputError, match="single point"):
        orbit_cameras(np.zeros((2, 3)))


def _open_box(page: int = 64) -> tuple:
    """A unit box open at the top, seen from inside: 5 squares of 2 triangles, each on a fifth of the page."""
    from rrd.scene import Atlas, TexturedMesh

    corners = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]],
                       dtype=np.float32)
    squares = [(0, 3, 2, 1), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)]  # bottom + 4 walls, inward
    faces, uv = [], []
    for k, (a, b, c, d) in enumerate(squares):
        u0, u1 = k / 5 + 0.01, (k + 1) / 5 - 0.01
        quad = np.array([[u0, 0.05], [u1, 0.05], [u1, 0.95], [u0, 0.95]], dtype=np.float32)
        faces += [(a, b, c), (a, c, d)]
        uv += [quad[[0, 1, 2]], quad[[0, 2, 3]]]
    mesh = TexturedMesh(corners, np.array(faces), np.array(uv))
    return mesh, Atlas(np.full((1, page, 5 * page, 3), 0.5, dtype=np.float32))


def test_generated_cameras_see_every_texel_at_native_resolution():
    from rrd.demo_scene import make_demo_scene
    from rrd.viewpoints import native_coverage, texel_cameras

    scene = make_demo_scene(width=96, height=72, n_views=4, atlas_size=256, subdivisions=2)
    cameras = texel_cameras(scene.mesh, scene.atlas, backend="cpu")
    again = texel_cameras(scene.mesh, scene.atlas, backend="cpu")  # deterministic
    assert [(c.name, c.width) for c in cameras] == [(c.name, c.width) for c in again]
    assert all(np.array_equal(a.K, b.K) and np.array_equal(a.R, b.R) and np.array_equal(a.t, b.t)
               for a, b in zip(cameras, again))
    assert all(c.width <= 2048 and c.K[0, 0] > 0 and np.isfinite(c.t).all() for c in cameras)
    # 98.95 % measured: the used texels (margin 0.5) include slivers along chart borders that a view's
    # taps read only at a coarser footprint
    assert native_coverage(scene.mesh, scene.atlas, cameras, "cpu") >= 0.98
    # the photos' cameras see the same texels far more coarsely
    assert native_coverage(scene.mesh, scene.atlas, scene.cameras, "cpu") < 0.5


def test_generated_cameras_see_inside_a_concave_part():
    from rrd.viewpoints import native_coverage, texel_cameras

    mesh, atlas = _open_box()
    cameras = texel_cameras(mesh, atlas, backend="cpu")
    assert native_coverage(mesh, atlas, cameras, "cpu") >= 0.99
