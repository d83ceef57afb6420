"""The scene model: cameras, a textured mesh, its atlas tiles and the source photos.

Conventions, written once and referred to everywhere
----------------------------------------------------
Cameras (OpenCV / COLMAP):
    ``x_cam = R @ X_world + t``; +X right, +Y down, +Z forward. ``K`` maps camera coordinates to
    continuous pixel coordinates whose pixel *centres* lie at +0.5: the top-left pixel covers
    [0, 1) x [0, 1) and its centre is (0.5, 0.5). Pixel ``(row i, col j)`` is sampled at
    ``(x, y) = (j + 0.5, i + 0.5)``.

Texture coordinates (UDIM, as Meshroom writes them):
    ``uv`` is per face corner, u to the right, **v up**. A corner belongs to UDIM tile
    ``1001 + floor(u) + 10 * floor(v)``; inside its tile the local coordinates are
    ``(u - floor(u), v - floor(v))`` in [0, 1]. A tile image of ``H x W`` texels is stored row 0 at the
    top, so local ``(u, v)`` falls on the continuous texel position ``(x, y) = (u * W, (1 - v) * H)``
    and texel ``(row r, col c)`` has its centre at ``(c + 0.5, r + 0.5)``.
    Example (W = H = 4): ``(u, v) = (0.125, 0.875)`` is the centre of texel (row 0, col 0);
    ``(u, v) = (0.5, 0.5)`` is the corner shared by texels (1, 1), (1, 2), (2, 1) and (2, 2).
    A single-atlas mesh (OpenMVS) is tile 1001 with ``uv`` in [0, 1].

Images (photos, atlas tiles):
    numpy arrays ``(H, W, 3)``; photos ``uint8``, atlas tiles ``float32`` in [0, 1] (8-bit tiles are
    divided by 255, so rounding back with ``round(255 * x)`` is exact).

Pages (the tiles of an atlas) may differ in size, as texturers cut them: the atlas keeps them on one
canvas ``(T, H, W, 3)`` (H, W the largest height and width), page ``t`` of ``h_t x w_t`` texels in its
top-left corner and zeros around it. A page's local UVs address the page alone (``x = u * w_t``);
:mod:`rrd.sample` says how the canvas indexes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rrd.errors import InputError

__all__ = ["Camera", "TexturedMesh", "Atlas", "AtlasShape", "Scene", "udim_of", "look_at"]


@dataclass(frozen=True)
class Camera:
    """A pinhole camera, world-to-camera, OpenCV/COLMAP convention (see the module docstring).

    Attributes:
        K: (3, 3) float64 intrinsics in pixels (fx, fy, cx, cy; pixel centres at +0.5).
        R: (3, 3) float64 world-to-camera rotation.
        t: (3,) float64 world-to-camera translation, ``x_cam = R @ X + t``.
        width, height: image size in pixels.
        name: the photo's file name, or a generated label.
    """

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "K", np.asarray(self.K, dtype=np.float64).reshape(3, 3))
        object.__setattr__(self, "R", np.asarray(self.R, dtype=np.float64).reshape(3, 3))
        object.__setattr__(self, "t", np.asarray(self.t, dtype=np.float64).reshape(3))
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"camera {self.name!r}: image size {self.width}x{self.height} is not positive")

    @property
    def center(self) -> np.ndarray:
        """(3,) camera centre in world coordinates, ``C = -R^T t``."""
        return -self.R.T @ self.t

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points.

        Args:
            points: (N, 3) world coordinates.
        Returns:
            xy: (N, 2) continuous pixel coordinates (pixel centres at +0.5).
            depth: (N,) camera-space z (positive in front of the camera).
        """
        cam = np.asarray(points, dtype=np.float64) @ self.R.T + self.t
        depth = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = (cam @ self.K.T)[:, :2] / depth[:, None]
        return xy, depth

    def scaled(self, factor: float) -> "Camera":
        """The same camera for an image resized by ``factor`` (pixel-centre convention kept)."""
        width = max(1, round(self.width * factor))
        height = max(1, round(self.height * factor))
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0] *= sx
        K[1] *= sy
        return Camera(K, self.R, self.t, width, height, self.name)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray, K: np.ndarray, width: int,
            height: int, name: str = "") -> Camera:
    """A camera at ``eye`` looking at ``target`` with world vector ``up`` pointing up in the image."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)  # +X right when +Y is down and +Z forward
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return Camera(K, R, -R @ eye, width, height, name)


def udim_of(uv: np.ndarray) -> np.ndarray:
    """UDIM tile number of UV points: ``1001 + floor(u) + 10 floor(v)``.

    Args:
        uv: (..., 2) UDIM-global texture coordinates (v up).
    Returns:
        (...) int64 tile numbers.
    """
    fl = np.floor(uv).astype(np.int64)
    return 1001 + fl[..., 0] + 10 * fl[..., 1]


@dataclass(frozen=True)
class TexturedMesh:
    """A triangle mesh with per-face-corner UDIM texture coordinates.

    Attributes:
        vertices: (V, 3) float32 world coordinates.
        faces: (F, 3) int64 vertex indices.
        uv: (F, 3, 2) float32 UDIM-global texture coordinates of each face corner, v up.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "vertices", np.ascontiguousarray(self.vertices, dtype=np.float32))
        object.__setattr__(self, "faces", np.ascontiguousarray(self.faces, dtype=np.int64))
        object.__setattr__(self, "uv", np.ascontiguousarray(self.uv, dtype=np.float32))
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise InputError(f"mesh vertices have shape {self.vertices.shape}, expected (V, 3)")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise InputError(f"mesh faces have shape {self.faces.shape}, expected (F, 3)")
        if self.uv.shape != (len(self.faces), 3, 2):
            raise InputError(f"mesh UVs have shape {self.uv.shape}, expected ({len(self.faces)}, 3, 2)")
        if len(self.faces) and (self.faces.min() < 0 or self.faces.max() >= len(self.vertices)):
            raise InputError(f"mesh faces index vertices outside 0..{len(self.vertices) - 1}")
        if not np.isfinite(self.vertices).all() or not np.isfinite(self.uv).all():
            raise InputError("mesh has non-finite vertex positions or UVs")

    @property
    def face_udim(self) -> np.ndarray:
        """(F,) int64 UDIM tile of each face, taken at the face's UV centroid."""
        return udim_of(self.uv.mean(axis=1))

    def local_uv(self) -> np.ndarray:
        """(F, 3, 2) float32 UVs relative to each face's own tile, in [0, 1] for a well-formed mesh."""
        fl = np.floor(self.uv.mean(axis=1, keepdims=True))
        return (self.uv - fl).astype(np.float32)


class AtlasShape(tuple):
    """``(T, H, W)`` of an atlas canvas, unpacking like a plain tuple, with ``sizes``: each page's
    ``(height, width)`` (see the module docstring), and ``uniform``: whether every page fills the canvas.

    >>> shape = AtlasShape(2, 4, 4, ((4, 4), (2, 3)))
    >>> T, H, W = shape
    >>> (T, H, W), shape.sizes, shape.uniform, shape.texels
    ((2, 4, 4), ((4, 4), (2, 3)), False, 22)
    """

    sizes: tuple[tuple[int, int], ...]

    def __new__(cls, tiles: int, height: int, width: int,
                sizes: tuple[tuple[int, int], ...] | None = None) -> "AtlasShape":
        shape = super().__new__(cls, (int(tiles), int(height), int(width)))
        shape.sizes = tuple((int(h), int(w)) for h, w in sizes) if sizes is not None \
            else ((int(height), int(width)),) * int(tiles)
        return shape

    def __getnewargs__(self) -> tuple:  # type: ignore[override]
        return (*self, self.sizes)

    @property
    def uniform(self) -> bool:
        return all(size == (self[1], self[2]) for size in self.sizes)

    @property
    def texels(self) -> int:
        """Texels of all pages (the canvas around smaller pages not counted)."""
        return sum(h * w for h, w in self.sizes)


@dataclass(frozen=True)
class Atlas:
    """The texture pages of a mesh, on one canvas (see the module docstring).

    Attributes:
        tiles: (T, H, W, C) float32 texel values in [0, 1] (C = 3), row 0 at the top; page ``t`` is
            ``tiles[t, :h_t, :w_t]``, the canvas around it is 0.
        udims: the T UDIM numbers, ascending (1001, 1002, ...).
        names: the T file names the pages were read from (or will be written to).
        sizes: each page's (height, width); default: every page fills the canvas.
    """

    tiles: np.ndarray
    udims: tuple[int, ...] = (1001,)
    names: tuple[str, ...] = ("texture_1001.png",)
    sizes: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        tiles = np.asarray(self.tiles, dtype=np.float32)
        if tiles.ndim == 3:
            tiles = tiles[None]
        if tiles.ndim != 4 or tiles.shape[-1] != 3:
            raise InputError(f"atlas tiles have shape {tiles.shape}, expected (T, H, W, 3)")
        if len(self.udims) != tiles.shape[0] or len(self.names) != tiles.shape[0]:
            raise InputError(f"atlas has {tiles.shape[0]} tiles but {len(self.udims)} UDIM numbers "
                             f"and {len(self.names)} names")
        shape = AtlasShape(*tiles.shape[:3], self.sizes)
        if len(shape.sizes) != tiles.shape[0] or any(not (1 <= h <= tiles.shape[1] and 1 <= w <= tiles.shape[2])
                                                     for h, w in shape.sizes):
            raise InputError(f"atlas page sizes {shape.sizes} do not fit {tiles.shape[0]} pages of a "
                             f"{tiles.shape[2]}x{tiles.shape[1]} canvas")
        if not shape.uniform and tiles[~self._mask(shape)].any():
            tiles = np.where(self._mask(shape)[..., None], tiles, np.float32(0))
        object.__setattr__(self, "tiles", tiles)
        object.__setattr__(self, "udims", tuple(int(u) for u in self.udims))
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "sizes", shape.sizes)

    @classmethod
    def from_pages(cls, pages: list[np.ndarray], udims: tuple[int, ...], names: tuple[str, ...]) -> "Atlas":
        """An atlas of pages of any size: each (h_t, w_t, 3) float in [0, 1]."""
        height, width = max(p.shape[0] for p in pages), max(p.shape[1] for p in pages)
        tiles = np.zeros((len(pages), height, width, 3), dtype=np.float32)
        for t, page in enumerate(pages):
            tiles[t, :page.shape[0], :page.shape[1]] = page
        return cls(tiles, udims, names, tuple(p.shape[:2] for p in pages))

    @staticmethod
    def _mask(shape: AtlasShape) -> np.ndarray:
        T, H, W = shape
        mask = np.zeros((T, H, W), dtype=bool)
        for t, (h, w) in enumerate(shape.sizes):
            mask[t, :h, :w] = True
        return mask

    @property
    def shape(self) -> AtlasShape:
        """``(T, H, W)`` of the canvas, with each page's size."""
        return AtlasShape(*self.tiles.shape[:3], self.sizes)

    def page(self, t: int) -> np.ndarray:
        """(h_t, w_t, 3) view of page ``t``."""
        h, w = self.sizes[t]
        return self.tiles[t, :h, :w]

    def page_mask(self) -> np.ndarray:
        """(T, H, W) bool: the canvas texels that belong to a page."""
        return self._mask(self.shape)

    @property
    def height(self) -> int:
        """Height of the canvas (the tallest page)."""
        return int(self.tiles.shape[1])

    @property
    def width(self) -> int:
        """Width of the canvas (the widest page)."""
        return int(self.tiles.shape[2])

    def tile_index(self, udim: np.ndarray) -> np.ndarray:
        """Map UDIM numbers (any shape) to indices into ``tiles``; -1 where no such tile exists."""
        lut = {u: i for i, u in enumerate(self.udims)}
        flat = np.asarray(udim).reshape(-1)
        out = np.fromiter((lut.get(int(u), -1) for u in flat), dtype=np.int64, count=flat.size)
        return out.reshape(np.shape(udim))

    def with_tiles(self, tiles: np.ndarray) -> "Atlas":
        """The same layout, page sizes and names with new texel values."""
        return Atlas(tiles, self.udims, self.names, self.sizes)


@dataclass
class Scene:
    """A reconstructed scene: mesh, atlas, source cameras and (optionally) their photos.

    Attributes:
        mesh: the textured mesh.
        atlas: its texture tiles; every face's UDIM must be one of ``atlas.udims``.
        cameras: the source viewpoints.
        photos: one (height, width, 3) uint8 photo per camera, or None when there are none.
        name: a label for reports.
        photo_names: the photos' file names (for messages), in camera order.
        mesh_file: the file the mesh was read from, if any, so results can be written in its format.
    """

    mesh: TexturedMesh
    atlas: Atlas
    cameras: list[Camera]
    photos: list[np.ndarray] | None = None
    name: str = "scene"
    photo_names: list[str] = field(default_factory=list)
    mesh_file: str | None = None

    def __post_init__(self) -> None:
        face_tiles = self.atlas.tile_index(np.unique(self.mesh.face_udim))
        if (face_tiles < 0).any():
            missing = sorted(set(np.unique(self.mesh.face_udim).tolist()) - set(self.atlas.udims))
            raise InputError(f"scene {self.name!r}: faces use UDIM tiles {missing} that have no texture")
        if self.photos is not None:
            if len(self.photos) != len(self.cameras):
                raise InputError(f"scene {self.name!r}: {len(self.cameras)} cameras but "
                                 f"{len(self.photos)} photos")
            for i, (cam, photo) in enumerate(zip(self.cameras, self.photos)):
                if photo.shape[:2] != (cam.height, cam.width):
                    label = self.photo_names[i] if i < len(self.photo_names) else cam.name
                    raise InputError(f"photo {label}: size {photo.shape[1]}x{photo.shape[0]} differs "
                                     f"from its camera's {cam.width}x{cam.height}")
