"""Checks shared by the camera loaders: a camera read from a file is usable or refused naming the file.

A pose file with a damaged number (NaN, infinity, a zero focal length, a rotation that is no longer
one) would otherwise load and render garbage, or fail much later without naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rrd.errors import InputError
from rrd.scene import Camera

__all__ = ["MAX_IMAGE_SIDE", "ROTATION_TOLERANCE", "checked_camera"]

MAX_IMAGE_SIDE = 1 << 20
"""Largest image width or height accepted (pixels): beyond any camera; a wrapped-around -1 is 2^32 - 1."""

ROTATION_TOLERANCE = 1e-3
"""Largest entry of ``|R R^T - I|`` accepted: pose files store rotations to at least 6 digits."""


def checked_camera(source: str | Path, K: np.ndarray, R: np.ndarray, t: np.ndarray, width: int, height: int,
                   name: str) -> Camera:
    """Build a :class:`Camera` from values read from ``source``, refusing values no camera can have.

    Args:
        source: the file (or model folder) the values came from, named in every message.
        K: (3, 3) intrinsics; R: (3, 3) world-to-camera rotation; t: (3,) translation.
        width, height: image size in pixels.
        name: the camera's photo name.
    Raises:
        InputError: non-finite K, R or t, a side outside 1..:data:`MAX_IMAGE_SIDE`, a focal length that is not
            positive, or an R that is not a rotation (within :data:`ROTATION_TOLERANCE`).
    """
    K, R, t = (np.asarray(a, dtype=np.float64) for a in (K, R, t))
    if not (np.isfinite(K).all() and np.isfinite(R).all() and np.isfinite(t).all()):
        raise InputError(f"{source}: camera {name!r} has non-finite intrinsics or pose values")
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise InputError(f"{source}: camera {name!r} has image size {width}x{height}; each side must be in "
                         f"1..{MAX_IMAGE_SIDE}")
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise InputError(f"{source}: camera {name!r} has focal lengths fx={K[0, 0]:g}, fy={K[1, 1]:g}; "
                         "both must be positive")
    with np.errstate(over="ignore", invalid="ignore"):  # huge entries overflow: not a rotation either
        not_rotation = not np.abs(R @ R.T - np.eye(3)).max() <= ROTATION_TOLERANCE or np.linalg.det(R) <= 0
    if not_rotation:
        raise InputError(f"{source}: camera {name!r} has a pose matrix that is not a rotation "
                         f"(rows {np.round(R, 4).tolist()})")
    return Camera(K, R, t, width, height, name)
