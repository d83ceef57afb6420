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

from dataclasses import dataclass, replace

import numpy as np
import torch

from rrd.errors import InputError
from rrd.occupancy import USED_MARGIN, texel_coverage
from rrd.rasterize import rasterize
from rrd.render import make_view, view_taps
from rrd.scene import Atlas, Camera, TexturedMesh, look_at

__all__ = ["fibonacci_sphere", "union_bbox", "orbit_cameras", "ORBIT_COUNT", "ORBIT_SIZE", "texel_cameras",
           "face_texel_size", "native_coverage"]

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
# --- Generated viewpoints: every used texel seen at its native resolution (a mesh without cameras) ---------
#
# Tuned on the demo scene and the concave test meshes of tests/test_texel_cameras.py.
_GENERATED_FOV_DEG = 40.0
"""Field of view a patch is framed in when the space in front of it is free: narrow enough that the
texel density varies little across the image, wide enough to keep the camera close to its patch."""
_CLOSE_FOV_DEG = 90.0
"""Widest field of view, used where other surfaces in front of a patch force the camera close."""
_NORMAL_BINS = 20
"""Normal directions faces are first grouped by (a Fibonacci sphere): every normal is within 35 degrees
of one of them, so a patch's camera never sees its faces at a grazing angle."""
_SMOOTHING_TEXELS = 128.0
"""Width of the cells, in (median) texels, over which normals are averaged to group faces into patches."""
_DENSITY_MARGIN = 1.15
"""Planned pixels per texel along each image axis: 1 plus headroom for the faces' edges, where the
samples of a 1-pixel-per-texel view can fall just short of the texels a chart's border overlaps."""
_DENSITY_QUANTILE = 0.9
"""A patch's focal length serves this share of its texels (weighted by texel area); the few finer ones
(UV charts squeezed on the surface, faces steep to the view) are left to the next round's own views."""
_FREE_SPACE = 0.8
"""A camera stays within this share of the free distance in front of its patch's centre."""
_PAD_PX = 2
"""Pixels of margin around a patch's projection."""
_MIN_COS = 0.1
"""Rays meeting a face's plane more obliquely than this cosine are taken at this cosine (84 degrees)."""
_MIN_FILL = 0.35
"""A patch whose triangles would cover less of its image than this share is cut (its faces are scattered)."""
_SPARSE_PIXELS = 512 * 512
"""Images smaller than this are not cut for being sparse: another camera costs about as much to render."""
_MIN_PATCH_TEXELS = 64.0 * 64.0
"""The first round plans no patch of fewer texels than this: such scraps of scattered faces are mostly
seen by their neighbours' views, and the next rounds plan for those that are not."""
_MIN_PIECE_TEXELS = 2.0
_MIN_ROOM_TEXELS = 16.0
"""A triangle is cut to fit the free space in front of it only where pieces this wide (texels) would fit."""
"""A triangle is cut into smaller pieces only while its longest edge spans more texels than this."""


def _face_geometry(mesh: TexturedMesh, atlas: Atlas) -> tuple[np.ndarray, ...]:
    """Per face: corners (F, 3, 3) float64 world, unit normals (F, 3) (winding order, 0 where the face
    has no area), the world-to-texel Jacobian (F, 2, 3) float64 (texels per world unit along the face's
    plane; texel x = u w, texel y = (1 - v) h, (h, w) the face's page size, :mod:`rrd.scene`), and (F,)
    bool: the face has a world area, a texel area and a page."""
    corners = mesh.vertices[mesh.faces].astype(np.float64)
    edges = np.stack([corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]], axis=2)   # (F, 3, 2)
    cross = np.cross(edges[..., 0], edges[..., 1])
    twice_area = np.linalg.norm(cross, axis=1)
    page = atlas.tile_index(mesh.face_udim)
    sizes = np.asarray(atlas.sizes, dtype=np.float64)[np.maximum(page, 0)]                    # (F, 2) (h, w)
    local = mesh.local_uv().astype(np.float64)
    texel = np.stack([local[..., 0] * sizes[:, None, 1], (1.0 - local[..., 1]) * sizes[:, None, 0]], axis=2)
    tedges = np.stack([texel[:, 1] - texel[:, 0], texel[:, 2] - texel[:, 0]], axis=2)         # (F, 2, 2)
    texel_area = np.abs(np.linalg.det(tedges))
    valid = (twice_area > 0) & (texel_area > 0) & (page >= 0)
    gram = np.einsum("fki,fkj->fij", edges, edges)
    gram[~valid] = np.eye(2)
    jacobian = tedges @ np.linalg.inv(gram) @ np.swapaxes(edges, 1, 2)                        # (F, 2, 3)
    jacobian[~valid] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        normals = np.where(twice_area[:, None] > 0, cross / twice_area[:, None], 0.0)
    return corners, normals, jacobian, valid


def face_texel_size(mesh: TexturedMesh, atlas: Atlas) -> np.ndarray:
    """World length of one texel on each face, along the face's direction of finest texels.

    It is ``1 / sigma_max(J)`` with ``J`` the face's world-to-texel Jacobian (texels per world unit along
    the face's plane); where the texels are square on the surface it equals
    ``sqrt(world area / texel area)``. Example: a unit right triangle mapped to 64 x 64 texels has texels
    of 1/64 world units; mapped to 64 x 128 texels, 1/128.

    Returns:
        (F,) float64 world units; nan for faces with no world area, no texel area or no page.
    """
    _, _, jacobian, valid = _face_geometry(mesh, atlas)
    stretch = np.sqrt(np.linalg.eigvalsh(jacobian @ np.swapaxes(jacobian, 1, 2))[:, -1])
    with np.errstate(divide="ignore"):
        return np.where(valid, 1.0 / stretch, np.nan)


def native_coverage(mesh: TexturedMesh, atlas: Atlas, cameras: list[Camera], backend: str = "auto",
                    faces: np.ndarray | None = None) -> float:
    """Share in [0, 1] of the used texels that ``cameras`` see at their native resolution.

    The used texels are those a face's UV triangle overlaps (:func:`rrd.occupancy.texel_coverage` with
    :data:`~rrd.occupancy.USED_MARGIN`); a texel is seen at its native resolution when a bilinear tap of
    nonzero weight reads it from a pixel of level of detail 0, i.e. whose footprint ``rho`` (the longer of
    its two UV steps, ``uv_dx`` and ``uv_dy``, in texels of its page: the rule GPUs choose mip levels by,
    as :func:`rrd.sample.trilinear_taps`) is at most one texel: one pixel per texel or finer.

    Args:
        mesh, atlas: the textured mesh.
        cameras: the views (any: generated, orbit or the photos').
        backend: the rasterizer (:func:`rrd.rasterize.rasterize`).
        faces: (K,) int face indices: count only their used texels (default: all faces).
    Returns:
        The share of used texels seen (1.0 when there are none).
    """
    used = _used_texels(mesh, atlas, faces)
    seen = np.zeros(used.size, dtype=bool)
    for index in _native_reads(mesh, atlas, cameras, backend):
        seen[index] = True
    total = int(used.sum())
    return float((seen & used.reshape(-1)).sum() / total) if total else 1.0


def _used_texels(mesh: TexturedMesh, atlas: Atlas, faces: np.ndarray | None = None) -> np.ndarray:
    """(T, H, W) bool canvas of the texels the faces' UV triangles overlap."""
    shape = atlas.shape
    select = slice(None) if faces is None else np.asarray(faces, dtype=np.int64)
    page = atlas.tile_index(mesh.face_udim)[select]
    uv = mesh.local_uv()[select]
    return texel_coverage(uv[page >= 0], page[page >= 0], *shape, USED_MARGIN, shape.sizes)


def _native_reads(mesh: TexturedMesh, atlas: Atlas, cameras: list[Camera], backend: str):
    """Per camera, (N,) int64 flat canvas indices of the texels it reads at native resolution
    (:func:`native_coverage`), without repeats."""
    shape = atlas.shape
    page_wh = torch.tensor([(w, h) for h, w in shape.sizes], dtype=torch.float32)
    for camera in cameras:
        view = make_view(rasterize(mesh, camera, backend), mesh, atlas, camera)
        scale = page_wh[view.tile]
        rho = torch.maximum((view.uv_dx * scale).norm(dim=1), (view.uv_dy * scale).norm(dim=1))
        taps = view_taps(view, shape, "bilinear")
        fine = rho <= 1.0
        yield torch.unique(taps.index[fine][taps.weight[fine] > 0]).numpy()


def texel_cameras(mesh: TexturedMesh, atlas: Atlas, *, max_side: int = 2048, max_rounds: int = 3,
                  backend: str = "auto") -> list[Camera]:
    """Viewpoints around a mesh that see every used texel at its native resolution, concave parts included.

    The rule: every used texel is read by some view at one pixel per texel or finer (the test of
    :func:`native_coverage`: a pixel's longer UV step is at most one texel). The cameras are planned so:

    1. Faces are grouped by normal (the nearest of :data:`_NORMAL_BINS` directions); a group is a patch.
    2. A patch's camera looks at it along its mean normal, from as far as frames it in a
       :data:`_GENERATED_FOV_DEG` field of view, but no farther than :data:`_FREE_SPACE` of the free
       distance in front of the patch's centre (to the first other surface on its normal), widening the
       view up to :data:`_CLOSE_FOV_DEG` to frame it from there: so a camera sits inside a concave part.
    3. The focal length gives every corner of the patch ``_DENSITY_MARGIN`` pixels per texel along both
       image axes: at depth ``z`` a pixel step covers ``z / f`` world units across the line of sight,
       stretched on the face by the ray's obliquity and turned into texels by the face's world-to-texel
       Jacobian ``J`` (:func:`face_texel_size`); ``f`` is the margin times the largest ``z |J M e|`` over
       the corners (``M`` the obliquity map, ``e`` a unit image axis).
    4. A patch whose image would be wider or taller than ``max_side`` pixels, or that cannot be framed in
       front of the next surface, is cut in two across its longer side and each half planned again; a
       patch of one triangle is cut into four at its edges' midpoints (down to two texels a side).
    5. The views are rasterized and the used texels they read at native resolution marked; the faces
       that still have an unread texel are planned again as in 1-4, in patches at most half as wide as
       those that missed them, for up to ``max_rounds`` rounds.
    6. Views that read no used texel that the other views do not read are dropped.

    Deterministic (no randomness). On the default demo scene (1,280 faces, a 512 x 512 atlas) 20-odd
    cameras of at most 250 pixels a side see 99.5 % of the used texels (tests/test_texel_cameras.py).

    Args:
        mesh, atlas: the textured mesh (page sizes from ``atlas.sizes``).
        max_side: largest image side in pixels (>= 16).
        max_rounds: rounds of views added for the texels not yet seen (>= 0).
        backend: the rasterizer that checks what the views see (:func:`rrd.rasterize.rasterize`).
    Returns:
        Cameras named ``gen_000``, ``gen_001``, ...
    """
    if isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)) or max_side < 16:
        raise InputError(f"max_side must be an integer number of pixels >= 16, got {max_side!r}")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, (int, np.integer)) or max_rounds < 0:
        raise InputError(f"max_rounds must be an integer >= 0, got {max_rounds!r}")
    corners, normals, jacobian, valid = _face_geometry(mesh, atlas)
    if not valid.any():
        raise InputError("the mesh has no face with both a world area and a texel area on a page")
    geometry = _Geometry(corners, normals, jacobian, int(max_side))
    used = _used_texels(mesh, atlas).reshape(-1)
    # Texels a chart's border only clips are not chased: a view at one pixel per texel can miss them.
    shape = atlas.shape
    page = atlas.tile_index(mesh.face_udim)
    clipped = used & ~texel_coverage(mesh.local_uv()[valid], page[valid], *shape, 0.0, shape.sizes).reshape(-1)
    seen = np.zeros(used.size, dtype=bool)
    limit = np.full(len(normals), np.inf)            # widest patch allowed per face, world units
    faces = np.flatnonzero(valid)                     # round 0: every face
    planned: list[Camera] = []
    reads: list[np.ndarray] = []                      # per camera, the used texels it reads natively
    for round_ in range(max_rounds + 1):
        new = _plan(geometry, faces, limit, _MIN_PATCH_TEXELS if round_ == 0 and max_rounds else 0.0)
        planned += [camera for camera, _, _ in new]
        for index in _native_reads(mesh, atlas, [camera for camera, _, _ in new], backend):
            reads.append(index[used[index]])
            seen[reads[-1]] = True
        faces = _faces_with_unseen_texels(mesh, atlas, faces, seen | clipped)
        if not len(faces) or round_ == max_rounds:
            break
        for _, owners, extent in new:                 # the next patch of a missed face is half as wide
            hit = np.intersect1d(owners, faces)
            limit[hit] = np.minimum(limit[hit], 0.5 * extent)
    kept = [camera for camera, keep in zip(planned, _needed(reads)) if keep]
    return [replace(camera, name=f"gen_{i:03d}") for i, camera in enumerate(kept)]


def _by_normal(geometry: "_Geometry", faces: np.ndarray) -> list[np.ndarray]:
    """The faces grouped by the nearest of :data:`_NORMAL_BINS` directions to their smoothed normal.

    A face's smoothed normal is the area-weighted mean normal of the faces whose centroids share its cell
    of a grid :data:`_SMOOTHING_TEXELS` texels wide, where its own normal is within 60 degrees of that
    mean (elsewhere its own): the bumps of a reconstructed wall then join the wall's patch."""
    corners = geometry.corners[faces]
    weighted = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])   # normal x 2 area
    centroids = corners.mean(axis=1)
    cell_size = _SMOOTHING_TEXELS * float(np.median(1.0 / np.linalg.norm(geometry.jacobian[faces], 2, axis=(1, 2))))
    _, cell = np.unique(np.floor((centroids - centroids.min(axis=0)) / cell_size).astype(np.int64), axis=0,
                        return_inverse=True)
    cell = cell.reshape(-1)
    mean = np.stack([np.bincount(cell, weighted[:, k]) for k in range(3)], axis=1)[cell]
    length = np.linalg.norm(mean, axis=1, keepdims=True)
    mean = np.divide(mean, length, out=np.zeros_like(mean), where=length > 0)
    own = geometry.normals[faces]
    smooth = np.where((np.einsum("fi,fi->f", own, mean) >= 0.5)[:, None], mean, own)
    bins = np.argmax(smooth @ fibonacci_sphere(_NORMAL_BINS).T, axis=1)
    return [faces[bins == b] for b in np.unique(bins)]


@dataclass(frozen=True)
class _Geometry:
    """What the planner needs of the mesh, per face (:func:`_face_geometry`), and the image bound."""

    corners: np.ndarray
    normals: np.ndarray
    jacobian: np.ndarray
    max_side: int


def _plan(geometry: _Geometry, faces: np.ndarray, limit: np.ndarray,
          min_texels: float = 0.0) -> list[tuple[Camera, np.ndarray, float]]:
    """Cameras for ``faces``, grouped by normal and cut until each patch fits its camera (texel_cameras, 1-4).

    A patch is a set of triangles, each a face or a part of one: ``(corners (P, 3, 3), owner faces (P,))``.

    Args:
        faces: (K,) face indices.
        limit: (F,) widest patch, world units, that may hold each face.
        min_texels: patches cut down to fewer texels than this are left out (to the next round).
    Returns:
        Per camera: the camera, its patch's faces, and its patch's width across the line of sight.
    """
    queue = [(geometry.corners[group], group) for group in _by_normal(geometry, faces)]
    cameras = []
    while queue:
        pieces, owner = queue.pop(0)
        if _texel_areas(geometry, pieces, owner).sum() < min_texels:
            continue
        camera, axis, extent, why = _patch_camera(geometry, pieces, owner)
        if why is None and extent > limit[owner].min():
            why = "limit"
        if why is not None and len(owner) > 1:
            order = np.argsort(pieces.mean(axis=1) @ axis, kind="stable")
            halves = np.sort(order[:len(order) // 2]), np.sort(order[len(order) // 2:])
            queue += [(pieces[half], owner[half]) for half in halves]
            continue
        if why in ("size", "free") and _texel_length(geometry, pieces[0], owner[0]) > _MIN_PIECE_TEXELS:
            mid = 0.5 * (pieces[0] + np.roll(pieces[0], -1, axis=0))     # midpoints of edges 01, 12, 20
            quarters = np.stack([[pieces[0][0], mid[0], mid[2]], [mid[0], pieces[0][1], mid[1]],
                                 [mid[2], mid[1], pieces[0][2]], [mid[0], mid[1], mid[2]]])
            queue.append((quarters, np.repeat(owner, 4)))
            continue
        if camera is None:
            camera, _, extent, _ = _patch_camera(geometry, pieces, owner, force=True)
        cameras.append((camera, np.unique(owner), extent))
    return cameras


def _texel_length(geometry: _Geometry, triangle: np.ndarray, face: int) -> float:
    """Longest edge of a (3, 3) triangle on ``face``, in texels."""
    edges = triangle - np.roll(triangle, 1, axis=0)
    return float(np.linalg.norm(edges @ geometry.jacobian[face].T, axis=1).max())


def _patch_camera(geometry: _Geometry, pieces: np.ndarray, owner: np.ndarray,
                  force: bool = False) -> tuple[Camera | None, np.ndarray, float, str | None]:
    """The camera of one patch (texel_cameras, 2-3), or None where the patch must be cut (4).

    Args:
        pieces: (P, 3, 3) the patch's triangles, world coordinates; owner: (P,) their faces.
        force: a camera whatever: behind the next surface, or coarser than the texels, if need be.
    Returns:
        The camera or None; the (3,) world direction of the patch's longer side (where to cut it); the
        patch's width along it, world units; why the patch should be cut: None (it need not), "free" (it
        does not fit in front of the next surface), "size" (its image would exceed ``max_side``), "sparse"
        (its triangles would cover less than :data:`_MIN_FILL` of its image).
    """
    cross = np.cross(pieces[:, 1] - pieces[:, 0], pieces[:, 2] - pieces[:, 0])
    weights = np.linalg.norm(cross, axis=1)
    normal = weights @ geometry.normals[owner]
    normal /= np.linalg.norm(normal)
    points = pieces.reshape(-1, 3)
    right, down = _patch_axes(points, normal)
    a, b = points @ right, points @ down
    extent = float(max(np.ptp(a), np.ptp(b)))
    centre = (0.5 * (a.max() + a.min())) * right + (0.5 * (b.max() + b.min())) * down
    centre += (weights @ pieces.mean(axis=1) / weights.sum()) @ normal * normal     # on the patch's mean plane
    a, b, h = (points - centre) @ right, (points - centre) @ down, (points - centre) @ normal
    half_width = np.maximum(np.abs(a), np.abs(b))
    distance = float(np.max(h + half_width / np.tan(np.radians(_GENERATED_FOV_DEG) / 2.0)))
    # The free space starts at the patch's highest point: the patch's own relief is not an obstacle.
    top = float(h.max())
    free = top + _FREE_SPACE * _free_distance(geometry.corners, owner, centre + top * normal, normal)
    if free < distance:
        close = float(np.max(h + half_width / np.tan(np.radians(_CLOSE_FOV_DEG) / 2.0)))
        stretch = np.linalg.norm(geometry.jacobian[owner[0]], 2)
        room = 2.0 * (free - top) * np.tan(np.radians(_CLOSE_FOV_DEG) / 2.0) * stretch   # texels
        if close > free and not force and (len(owner) > 1 or room >= _MIN_ROOM_TEXELS):
            return None, right, extent, "free"
        distance = max(close, min(free, distance))  # where nothing fits: behind the next surface
    eye = centre + distance * normal
    R = np.stack([right, down, -normal])
    depth = distance - h                                                             # (3P,) camera z
    need = depth * _corner_stretch(geometry, owner, points, eye, R)                # (3P,) focal per corner
    focal = _DENSITY_MARGIN * _weighted_quantile(need, np.repeat(_texel_areas(geometry, pieces, owner), 3),
                                                 _DENSITY_QUANTILE)
    x, y = focal * a / depth, focal * b / depth
    span = max(np.ptp(x), np.ptp(y))
    if span + 2 * _PAD_PX > geometry.max_side:
        if not force:
            return None, right, extent, "size"
        focal *= (geometry.max_side - 2 * _PAD_PX) / span
        x, y = focal * a / depth, focal * b / depth
    width = min(geometry.max_side, int(np.ceil(np.ptp(x))) + 2 * _PAD_PX)
    height = min(geometry.max_side, int(np.ceil(np.ptp(y))) + 2 * _PAD_PX)
    K = np.array([[focal, 0.0, _PAD_PX - x.min()], [0.0, focal, _PAD_PX - y.min()], [0.0, 0.0, 1.0]])
    camera = Camera(K, R, -R @ eye, width, height, "gen")
    if not force and len(owner) > 1:
        projected = np.stack([x, y], axis=1).reshape(-1, 3, 2)
        e1, e2 = projected[:, 1] - projected[:, 0], projected[:, 2] - projected[:, 0]
        filled = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).sum()
        if width * height > _SPARSE_PIXELS and filled < _MIN_FILL * width * height:
            return camera, right, extent, "sparse"
    return camera, right, extent, None


def _texel_areas(geometry: _Geometry, pieces: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """(P,) texel area of each piece (a triangle on face ``owner``), texels."""
    edges = np.stack([pieces[:, 1] - pieces[:, 0], pieces[:, 2] - pieces[:, 0]], axis=2)     # (P, 3, 2)
    return 0.5 * np.abs(np.linalg.det(geometry.jacobian[owner] @ edges))


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value with at least ``q`` of the total weight at or below it."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(values[order][min(np.searchsorted(cumulative, q * cumulative[-1]), len(values) - 1)])


def _patch_axes(points: np.ndarray, normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image right and down for a view along ``-normal``: right along the points' longer spread."""
    helper = np.eye(3)[np.argmin(np.abs(normal))]
    u = np.cross(normal, helper)
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    flat = (points - points.mean(axis=0)) @ np.stack([u, v], axis=1)
    _, vectors = np.linalg.eigh(flat.T @ flat)
    right = vectors[0, 1] * u + vectors[1, 1] * v                     # the larger eigenvalue's vector
    right /= np.linalg.norm(right)
    if right[np.argmax(np.abs(right))] < 0:
        right = -right
    down = np.cross(-normal, right)                                   # OpenCV: y = z x x
    return right, down


def _corner_stretch(geometry: _Geometry, owner: np.ndarray, points: np.ndarray, eye: np.ndarray,
                    R: np.ndarray) -> np.ndarray:
    """(3P,) texels per world unit that one image-axis step across the line of sight spans on the face, at
    each corner: the larger over ``e`` in (right, down) of ``|J (e - r (n . e) / (n . r))|``, ``r`` the ray."""
    normals = np.repeat(geometry.normals[owner], 3, axis=0)                      # (3P, 3)
    jacobian = np.repeat(geometry.jacobian[owner], 3, axis=0)                    # (3P, 2, 3)
    rays = points - eye
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    cosine = np.einsum("pi,pi->p", normals, rays)
    cosine = np.where(np.abs(cosine) < _MIN_COS, np.copysign(_MIN_COS, cosine), cosine)
    axes = R[:2]                                                                  # (2, 3) right, down
    moved = axes[None] - ((normals @ axes.T) / cosine[:, None])[..., None] * rays[:, None]   # (3P, 2, 3)
    steps = np.einsum("pij,pkj->pki", jacobian, moved)                           # (3P, 2 axes, 2 texel)
    return np.linalg.norm(steps, axis=2).max(axis=1)


def _free_distance(corners: np.ndarray, own: np.ndarray, origin: np.ndarray, direction: np.ndarray) -> float:
    """Distance from ``origin`` along ``direction`` to the first face not in ``own`` (inf: none), by the
    Moller-Trumbore ray-triangle test, both sides of a face."""
    others = np.ones(len(corners), dtype=bool)
    others[own] = False
    tri = corners[others]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    p = np.cross(direction, e2)
    det = np.einsum("fi,fi->f", e1, p)
    s = origin - tri[:, 0]
    q = np.cross(s, e1)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.einsum("fi,fi->f", s, p) / det
        v = (q @ direction) / det
        t = np.einsum("fi,fi->f", e2, q) / det
        hit = (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    return float(t[hit].min()) if hit.any() else np.inf


def _faces_with_unseen_texels(mesh: TexturedMesh, atlas: Atlas, faces: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """The faces (of ``faces``) with a texel that ``seen`` (flat canvas bool) misses, found at points inside
    each UV triangle about one texel apart (the centroids of its n x n subdivision, n its longest edge in
    texels)."""
    shape = atlas.shape
    _, H, W = shape
    page = atlas.tile_index(mesh.face_udim)[faces]
    sizes = np.asarray(shape.sizes, dtype=np.float64)[page]                            # (K, 2) (h, w)
    local = mesh.local_uv()[faces].astype(np.float64)
    xy = np.stack([local[..., 0] * sizes[:, None, 1], (1.0 - local[..., 1]) * sizes[:, None, 0]], axis=2)
    longest = np.linalg.norm(xy - np.roll(xy, 1, axis=1), axis=2).max(axis=1)
    steps = np.maximum(1, np.ceil(longest)).astype(np.int64)
    missed = np.zeros(len(faces), dtype=bool)
    for n in np.unique(steps):
        members = np.flatnonzero(steps == n)
        i, j = np.triu_indices(n)                                    # i <= j: n (n + 1) / 2 sub-triangles
        bary = np.stack([n - 1 - j, j - i, i], axis=1) + 1.0 / 3.0   # each row sums to n
        bary /= n
        for chunk in np.array_split(members, max(1, len(members) * len(bary) // (1 << 20))):
            points = np.einsum("mk,fkd->fmd", bary, xy[chunk])       # (C, M, 2) texel positions
            h, w = sizes[chunk, 0], sizes[chunk, 1]
            col = np.clip(np.floor(points[..., 0]), 0, w[:, None] - 1).astype(np.int64)
            row = np.clip(np.floor(points[..., 1]), 0, h[:, None] - 1).astype(np.int64)
            flat = (page[chunk, None] * H + row) * W + col
            missed[chunk] = ~seen[flat].all(axis=1)
    return faces[missed]


def _needed(reads: list[np.ndarray]) -> list[bool]:
    """Which views to keep: drop, smallest first, each view whose every texel another kept view reads."""
    if not reads:
        return []
    counts = np.bincount(np.concatenate(reads), minlength=max(int(r.max()) + 1 if len(r) else 0 for r in reads))
    keep = [len(r) > 0 for r in reads]
    for i in sorted(range(len(reads)), key=lambda k: (len(reads[k]), k)):
        if keep[i] and (counts[reads[i]] >= 2).all():
            keep[i] = False
            counts[reads[i]] -= 1
    return keep
