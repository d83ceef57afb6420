"""Rendering a textured mesh from its cameras: rasterize once, then sample any atlas through taps.

A view's rasterization does not depend on the atlas, so :class:`View` keeps what a camera reads
(covered pixels, their tile and UVs) and :func:`view_taps` turns it into the linear sampling operator
that both the evaluation (render a decoded atlas) and the optimiser (fold views into a quadratic
form, or render every iteration in the reference mode) apply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rrd.rasterize import Fragments, rasterize
from rrd.sample import Taps, bilinear_taps, gather, mip_texels, trilinear_taps
from rrd.errors import InputError
from rrd.scene import Atlas, AtlasShape, Camera, TexturedMesh

__all__ = ["View", "face_tiles", "make_view", "rasterize_views", "view_taps", "texel_vector", "render",
           "FILTERS"]

FILTERS = ("bilinear", "trilinear")


@dataclass(frozen=True)
class View:
    """The atlas reads of one camera.

    Attributes:
        camera: the camera.
        pixels: (N,) int64 flat indices ``row * width + col`` of the covered pixels.
        tile: (N,) int64 atlas tile index of each covered pixel.
        uv: (N, 2) float32 local tile UVs (v up) at the pixel centres.
        uv_dx, uv_dy: (N, 2) float32 UV change per pixel step right / down.
    """

    camera: Camera
    pixels: torch.Tensor
    tile: torch.Tensor
    uv: torch.Tensor
    uv_dx: torch.Tensor
    uv_dy: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        return self.camera.height, self.camera.width

    def mask(self) -> torch.Tensor:
        """(H, W) bool coverage mask."""
        m = torch.zeros(self.camera.height * self.camera.width, dtype=torch.bool)
        m[self.pixels] = True
        return m.reshape(self.shape)


def face_tiles(mesh: TexturedMesh, atlas: Atlas) -> np.ndarray:
    """(F,) int64 index into ``atlas.tiles`` of each face's UDIM tile."""
    return atlas.tile_index(mesh.face_udim)


def make_view(fragments: Fragments, mesh: TexturedMesh, atlas: Atlas, camera: Camera) -> View:
    """Keep the covered pixels of a rasterization, with tile indices and tile-local UVs.

    A pixel whose interpolated UV or UV derivatives are not finite (a face seen exactly edge-on can give 0/0
    barycentrics) cannot be sampled and counts as not covered.
    """
    finite = torch.cat([fragments.uv.reshape(-1, 2), fragments.uv_dx.reshape(-1, 2),
                        fragments.uv_dy.reshape(-1, 2)], dim=1).isfinite().all(dim=1)
    covered = fragments.mask.reshape(-1) & finite
    pixels = torch.nonzero(covered).squeeze(1)
    face = fragments.face.reshape(-1)[pixels]
    tile = torch.from_numpy(face_tiles(mesh, atlas))[face]
    # Local UVs relative to each face's tile origin (floor of its UV centroid), so a face whose corners sit
    # exactly on a tile's upper border (u = 1.0) stays in its own tile.
    origin = torch.from_numpy(np.floor(mesh.uv.mean(axis=1))).float()[face]
    uv = fragments.uv.reshape(-1, 2)[pixels] - origin
    return View(camera, pixels, tile, uv, fragments.uv_dx.reshape(-1, 2)[pixels],
                fragments.uv_dy.reshape(-1, 2)[pixels])


def rasterize_views(mesh: TexturedMesh, atlas: Atlas, cameras: list[Camera], backend: str = "auto",
                    progress=None) -> list[View]:
    """Rasterize every camera once. ``progress``: optional callable wrapping the camera iterable (tqdm)."""
    it = progress(cameras) if progress else cameras
    return [make_view(rasterize(mesh, cam, backend), mesh, atlas, cam) for cam in it]


def view_taps(view: View, atlas_shape: tuple[int, int, int], filter: str = "bilinear") -> Taps:
    """The sampling operator of a view into :func:`texel_vector` of the same filter.

    Args:
        view: the view.
        atlas_shape: (T, H, W) of the atlas tiles: ``Atlas.shape`` (an :class:`rrd.scene.AtlasShape`,
            which also gives each page's size) or a plain tuple (every page fills its tile).
        filter: "bilinear" (index into the base texels) or "trilinear" (into the mip chain).
    """
    T, H, W = atlas_shape
    uniform = not isinstance(atlas_shape, AtlasShape) or atlas_shape.uniform
    if filter == "bilinear":
        page_sizes = None if uniform else torch.tensor(atlas_shape.sizes, dtype=torch.int64)
        return bilinear_taps(view.uv, view.tile, H, W, page_sizes=page_sizes)
    if filter == "trilinear":
        if not uniform:
            raise InputError("trilinear filtering needs atlas pages of one size; use bilinear")
        return trilinear_taps(view.uv, view.tile, view.uv_dx, view.uv_dy, T, H, W)
    raise ValueError(f"unknown texture filter {filter!r}; choose one of {FILTERS}")


def texel_vector(tiles: torch.Tensor, filter: str = "bilinear") -> torch.Tensor:
    """(T, H, W, C) tiles -> the texel vector that :func:`view_taps` of ``filter`` indexes."""
    if filter == "trilinear":
        return mip_texels(tiles)
    return tiles.reshape(-1, tiles.shape[-1])


def render(texels: torch.Tensor, taps: Taps, view: View, background: float = 0.0) -> torch.Tensor:
    """Render one view.

    Args:
        texels: (M, C) texel vector (see :func:`texel_vector`).
        taps: the view's taps for the same filter.
        view: the view (for pixel placement).
        background: value of uncovered pixels.
    Returns:
        (H, W, C) image, differentiable in ``texels``.
    """
    H, W = view.shape
    values = gather(texels, taps)
    img = torch.full((H * W, texels.shape[1]), background, dtype=texels.dtype, device=texels.device)
    img = img.index_copy(0, view.pixels.to(texels.device), values)
    return img.reshape(H, W, -1)
