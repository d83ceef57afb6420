"""Evaluation viewpoints that need no photo: an orbit of cameras on a Fibonacci sphere.

MPEG's rendering-based mesh metric (mpeg-pcc-mmetric, mode ibsm; REFERENCE.md section 4) renders both
meshes from 16 cameras on a Fibonacci sphere around the union of their bounding boxes, at 2048 px.
:func:`orbit_cameras` builds such cameras for the OpenCV convention of :mod:`rrd.scene`:

* directions: :func:`fibonacci_sphere`, ``n`` nearly evenly spread unit vectors, the sphere's poles on
  the world z axis;
* every camera looks at the centre of the box from ``centre + distance * direction``;
* pinhole intrinsics with a square field of view ``fov_deg``: ``f = (size / 2) / tan(fov / 2)`` and the
  principal point at the image centre ``(size / 2, size / 2)`` (pixel centres at +0.5);
* ``distance = radius / sin(fov / 2)`` with ``radius`` half the box diagonal: the box's bounding sphere
  touches the four image sides, so the whole mesh is in every image whatever the direction.
  Example: fov 45 degrees, unit cube: radius = 0.866, distance = 2.263;
* image "up" is world +z projected into the image (world +y for a direction within 2.6 degrees of
  the poles, where +z is ill-defined).
"""

from __future__ import annotations

import numpy as np

from rrd.errors import InputError
from rrd.scene import Camera, look_at

__all__ = ["fibonacci_sphere", "union_bbox", "orbit_cameras", "ORBIT_COUNT", "ORBIT_SIZE"]

ORBIT_COUNT = 16
"""Cameras of MPEG's ibsm metric."""
ORBIT_SIZE = 1024
"""Default image side in pixels (MPEG uses 2048; half of it keeps CPU rendering fast)."""

# |cos| of the angle between a direction and world z above which +z cannot serve as image up.
_POLE_COS = 0.999


def fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` unit vectors spread over the sphere by the golden-angle (Fibonacci) spiral.

    Point ``i`` has ``z = 1 - (2 i + 1) / n`` and azimuth ``i * pi * (3 - sqrt(5))``; the points
    partition the sphere into ``n`` cells of equal area, none lies exactly on a pole.

    Returns:
        (n, 3) float64 unit vectors.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"number of orbit cameras must be a positive integer, got {n!r}")
    i = np.arange(n, dtype=np.float64)
    z = 1.0 - (2.0 * i + 1.0) / n
    ring = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    azimuth = i * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([ring * np.cos(azimuth), ring * np.sin(azimuth), z], axis=1)


def union_bbox(*vertex_sets: np.ndarray) -> np.ndarray:
    """Axis-aligned bounding box of the union of several point sets.

    Args:
        vertex_sets: arrays of shape (N_k, 3), world coordinates (e.g. the vertices of the faces of
            the reference and of the tested mesh).
    Returns:
        (2, 3) float64: row 0 the minimum corner, row 1 the maximum corner.
    """
    points = [np.asarray(v, dtype=np.float64).reshape(-1, 3) for v in vertex_sets]
    points = [p for p in points if len(p)]
    if not points:
        raise InputError("no vertices to bound: the mesh is empty")
    stacked = np.concatenate(points)
    return np.stack([stacked.min(axis=0), stacked.max(axis=0)])


def orbit_cameras(bbox: np.ndarray, n: int = ORBIT_COUNT, size: int = ORBIT_SIZE,
                  fov_deg: float = 45.0) -> list[Camera]:
    """Pinhole cameras on a Fibonacci sphere around a box, each looking at its centre (module docstring).

    Args:
        bbox: (2, 3) minimum and maximum corner (:func:`union_bbox`), world units.
        n: number of cameras.
        size: side of the square images, pixels.
        fov_deg: field of view across the image side, degrees in (0, 180).
    Returns:
        ``n`` cameras named ``orbit_00``, ``orbit_01``, ...
    """
    bbox = np.asarray(bbox, dtype=np.float64)
    if bbox.shape != (2, 3) or not np.isfinite(bbox).all() or (bbox[1] < bbox[0]).any():
        raise InputError(f"bounding box must be a finite (2, 3) array of min and max corners, got {bbox.tolist()}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise InputError(f"orbit image size must be a positive number of pixels, got {size!r}")
    if not 0.0 < fov_deg < 180.0:
        raise InputError(f"orbit field of view {fov_deg} degrees is not in (0, 180)")
    centre = bbox.mean(axis=0)
    radius = 0.5 * float(np.linalg.norm(bbox[1] - bbox[0]))
    if radius == 0.0:
        raise InputError("the mesh's bounding box is a single point: there is nothing to frame")
    half = np.radians(fov_deg) / 2.0
    distance = radius / np.sin(half)
    focal = (size / 2.0) / np.tan(half)
    K = np.array([[focal, 0.0, size / 2.0], [0.0, focal, size / 2.0], [0.0, 0.0, 1.0]])
    cameras = []
    for i, direction in enumerate(fibonacci_sphere(n)):
        up = np.array([0.0, 1.0, 0.0]) if abs(direction[2]) > _POLE_COS else np.array([0.0, 0.0, 1.0])
        cameras.append(look_at(centre + distance * direction, centre, up, K, size, size, f"orbit_{i:02d}"))
    return cameras

