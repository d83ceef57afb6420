"""Viewpoints that need no photo: an orbit of cameras on a Fibonacci sphere (evaluation), and cameras
generated to see every texel of a mesh at its native resolution (a mesh without cameras, :func:`texel_cameras`).

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
from rrd.scene import Atlas, Camera, TexturedMesh, look_at

__all__ = ["fibonacci_sphere", "union_bbox", "orbit_cameras", "ORBIT_COUNT", "ORBIT_SIZE", "texel_cameras",
           "face_texel_size", "generated_coverage"]

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



# The generated views' field of view, degrees: wide enough to frame a patch from close by, narrow enough
# that perspective does not stretch the texel density across an image by more than about 1.6x.
_GENERATED_FOV_DEG = 40.0
# The direction nearest a face's normal is within about 35 degrees of it with 14 directions: the
# texels of a face seen at that angle are foreshortened by cos(35) ~ 0.82, which the focal length makes up.
_GENERATED_DIRECTIONS = 14
_FORESHORTENING = 1.0 / np.cos(np.radians(35.0))


def face_texel_size(mesh: TexturedMesh, atlas: Atlas) -> np.ndarray:
    """(F,) float64 world size of one texel on each face: ``sqrt(world area / texel area)`` (inf where the
    face has no texel area, nan where it has no world area)."""
    corners = mesh.vertices[mesh.faces].astype(np.float64)
    world = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    sizes = np.asarray(atlas.sizes, dtype=np.float64)[atlas.tile_index(mesh.face_udim)]
    uv = mesh.local_uv().astype(np.float64) * sizes[:, None, ::-1]            # texel units (x = u w, y = v h)
    d1, d2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    texel = 0.5 * np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(world / texel)


def texel_cameras(mesh: TexturedMesh, atlas: Atlas, max_side: int = 2048, max_cameras: int = 96,
                  backend: str = "auto") -> list[Camera]:
    """Viewpoints around a mesh that see every used texel at about its native resolution.

    The rule: every face should be seen, from a direction within about 35 degrees of its normal, at one
    pixel per texel or finer. The texel's world size ``s`` (:func:`face_texel_size`, its 5th percentile
    over the faces, so that the finest charts count) sets the focal length: a texel at distance ``D``
    covers ``f s / D`` pixels, so ``f = D_far / s`` over the foreshortening at 35 degrees, with ``D_far``
    the distance to the far side of the part a camera frames. Cameras look from :data:`_GENERATED_DIRECTIONS`
    directions (a Fibonacci sphere) at the mesh's bounding sphere; where the image this needs is wider than
    ``max_side``, the view is cut into a grid of parallel cameras of ``max_side`` pixels. A second round
    looks at the faces no camera saw at that density (concave parts, occluded from outside) along their
    normals, from as close as their own extent allows. Above ``max_cameras`` the focal length is lowered
    (fewer pixels per texel) rather than adding cameras.

    Args:
        mesh, atlas: the textured mesh (page sizes from ``atlas.sizes``).
        max_side: largest image side in pixels.
        max_cameras: bound on the number of cameras of the first round.
        backend: rasterizer of the second round's coverage check.
    Returns:
        Cameras named ``gen_000``, ``gen_001``, ... (deterministic).
    """
    used = np.unique(mesh.faces)
    bbox = union_bbox(mesh.vertices[used])
    centre, radius = bbox.mean(axis=0), 0.5 * float(np.linalg.norm(bbox[1] - bbox[0]))
    if radius == 0.0:
        raise InputError("the mesh's bounding box is a single point: there is nothing to look at")
    sizes = face_texel_size(mesh, atlas)
    finite = sizes[np.isfinite(sizes) & (sizes > 0)]
    if not len(finite):
        raise InputError("the mesh has no face with both a world area and a texel area")
    texel = float(np.percentile(finite, 5))
    half = np.radians(_GENERATED_FOV_DEG) / 2.0
    distance = radius / np.sin(half)
    directions = fibonacci_sphere(_GENERATED_DIRECTIONS)
    focal = (distance + radius) / texel * _FORESHORTENING
    grid = int(np.ceil(2.0 * focal * np.tan(half) / max_side))
    if grid * grid * len(directions) > max_cameras:
        grid = max(1, int(np.sqrt(max_cameras / len(directions))))
        focal = grid * max_side / (2.0 * np.tan(half))
    side = min(max_side, max(16, int(np.ceil(2.0 * focal * np.tan(half) / grid))))
    cameras = _grid_cameras(centre, radius, directions, distance, focal, grid, side)

    # Second round: faces not seen at native density from outside (concave or occluded parts).
    unseen = np.setdiff1d(_textured_faces(mesh, atlas), _faces_seen(mesh, atlas, cameras, backend))
    if len(unseen):
        cameras += _normal_cameras(mesh, unseen, sizes, max_side, len(cameras))
    return cameras


def _up_for(direction: np.ndarray) -> np.ndarray:
    return np.array([0.0, 1.0, 0.0]) if abs(direction[2]) > _POLE_COS else np.array([0.0, 0.0, 1.0])


def _grid_cameras(centre: np.ndarray, radius: float, directions: np.ndarray, distance: float, focal: float,
                  grid: int, side: int) -> list[Camera]:
    """``grid x grid`` parallel cameras per direction tiling the view of the bounding sphere."""
    K = np.array([[focal, 0.0, side / 2.0], [0.0, focal, side / 2.0], [0.0, 0.0, 1.0]])
    tile_world = 2.0 * radius / grid  # the sphere's width at the centre, cut in grid strips
    cameras = []
    for direction in directions:
        up = _up_for(direction)
        right = np.cross(-direction, up)
        right /= np.linalg.norm(right)
        down = np.cross(-direction, right)
        for row in range(grid):
            for col in range(grid):
                offset = ((col + 0.5) * tile_world - radius) * right + ((row + 0.5) * tile_world - radius) * down
                target = centre + offset
                cameras.append(look_at(target + distance * direction, target, up, K, side, side,
                                       f"gen_{len(cameras):03d}"))
    return cameras


def _faces_seen(mesh: TexturedMesh, atlas: Atlas, cameras: list[Camera], backend: str) -> np.ndarray:
    """Faces some camera samples at one pixel per texel or finer (a pixel's footprint at most a texel)."""
    from rrd.rasterize import rasterize

    page_size = np.asarray(atlas.sizes, dtype=np.float64)[atlas.tile_index(mesh.face_udim)][:, ::-1]  # (w, h)
    seen = [np.zeros(0, dtype=np.int64)]
    for camera in cameras:
        fragments = rasterize(mesh, camera, backend)
        mask = fragments.mask.reshape(-1).numpy()
        face = fragments.face.reshape(-1).numpy()[mask]
        size = page_size[face]
        footprint = np.maximum(np.abs(fragments.uv_dx.reshape(-1, 2).numpy()[mask] * size).max(1),
                               np.abs(fragments.uv_dy.reshape(-1, 2).numpy()[mask] * size).max(1))
        seen.append(face[footprint <= 1.0])
    return np.unique(np.concatenate(seen))


def _normal_cameras(mesh: TexturedMesh, faces: np.ndarray, sizes: np.ndarray, side: int,
                    first: int) -> list[Camera]:
    """Cameras looking at groups of faces along their mean normal, each group fitting one image."""
    corners = mesh.vertices[mesh.faces[faces]].astype(np.float64)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    keep = lengths > 0
    faces, corners, normals = faces[keep], corners[keep], normals[keep] / lengths[keep, None]
    centroids = corners.mean(axis=1)
    # Group by the nearest of the generated directions, then by position on a coarse grid.
    group_dir = np.argmax(normals @ fibonacci_sphere(_GENERATED_DIRECTIONS).T, axis=1)
    span = np.ptp(centroids, axis=0).max() if len(centroids) else 0.0
    cell = max(span / 4.0, 1e-12)
    keys = np.concatenate([group_dir[:, None], np.floor(centroids / cell).astype(np.int64)], axis=1)
    half = np.radians(_GENERATED_FOV_DEG) / 2.0
    cameras = []
    for key in np.unique(keys, axis=0):
        members = np.all(keys == key, axis=1)
        normal = normals[members].mean(axis=0)
        if np.linalg.norm(normal) == 0.0:
            continue
        normal /= np.linalg.norm(normal)
        target = centroids[members].mean(axis=0)
        extent = max(float(np.linalg.norm(corners[members] - target, axis=2).max()), 1e-9)
        distance = extent / np.sin(half)
        texel = float(np.nanmin(np.where(np.isfinite(sizes[faces[members]]), sizes[faces[members]], np.nan)))
        focal = min((distance + extent) / texel * _FORESHORTENING, side / (2.0 * np.tan(half)) * 4.0)
        width = int(min(side, max(16, np.ceil(2.0 * focal * np.tan(half)))))
        K = np.array([[focal, 0.0, width / 2.0], [0.0, focal, width / 2.0], [0.0, 0.0, 1.0]])
        cameras.append(look_at(target + distance * normal, target, _up_for(normal), K, width, width,
                               f"gen_{first + len(cameras):03d}"))
    return cameras


def _textured_faces(mesh: TexturedMesh, atlas: Atlas) -> np.ndarray:
    sizes = face_texel_size(mesh, atlas)
    return np.flatnonzero(np.isfinite(sizes) & (sizes > 0))


def generated_coverage(mesh: TexturedMesh, atlas: Atlas, cameras: list[Camera], backend: str = "auto") -> float:
    """Share in [0, 1] of the texels whose centre lies on the mesh (``texel_coverage`` margin 0) that some
    camera samples at one pixel per texel or finer: the texel nearest a pixel whose footprint is at most a
    texel is seen."""
    from rrd.occupancy import texel_coverage
    from rrd.rasterize import rasterize

    shape = atlas.shape
    face_page = atlas.tile_index(mesh.face_udim)
    on_mesh = texel_coverage(mesh.local_uv(), face_page, *shape, 0.0, shape.sizes)
    seen = np.zeros_like(on_mesh)
    page_size = np.asarray(shape.sizes, dtype=np.float64)                      # (h, w) per page
    origin = np.floor(mesh.uv.mean(axis=1))
    for camera in cameras:
        fragments = rasterize(mesh, camera, backend)
        mask = fragments.mask.reshape(-1).numpy()
        face = fragments.face.reshape(-1).numpy()[mask]
        h, w = page_size[face_page[face], 0], page_size[face_page[face], 1]
        footprint = np.maximum(np.abs(fragments.uv_dx.reshape(-1, 2).numpy()[mask] * np.stack([w, h], 1)).max(1),
                               np.abs(fragments.uv_dy.reshape(-1, 2).numpy()[mask] * np.stack([w, h], 1)).max(1))
        local = fragments.uv.reshape(-1, 2).numpy()[mask] - origin[face]
        col = np.clip(np.floor(local[:, 0] * w), 0, w - 1).astype(np.int64)
        row = np.clip(np.floor((1.0 - local[:, 1]) * h), 0, h - 1).astype(np.int64)
        fine = footprint <= 1.0
        seen[face_page[face][fine], row[fine], col[fine]] = True
    total = int(on_mesh.sum())
    return float((seen & on_mesh).sum() / total) if total else 1.0
