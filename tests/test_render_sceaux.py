"""The renderer on the real Sceaux Castle sample: renders line up with the photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_path
from rrd.metrics import psnr
from rrd.rasterize import rasterize
from rrd.render import make_view, render, texel_vector, view_taps


@pytest.fixture(scope="module")
def sceaux():
    from rrd_pipeline.loaders.colmap import load_colmap_scene

    root = shared_path("sceaux_castle")
    return load_colmap_scene(root / "sparse" / "0", root / "images", root / "scene_mesh_texture.ply")


def _edges(gray: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(gray)
    return np.hypot(gx, gy)


def test_view0_full_resolution_lines_up_with_the_photo(sceaux, tmp_path):
    cam = sceaux.cameras[0]
    assert (cam.width, cam.height) == (2832, 2128)
    view = make_view(rasterize(sceaux.mesh, cam, "cpu"), sceaux.mesh, sceaux.atlas, cam)
    with torch.no_grad():
        image = render(texel_vector(torch.from_numpy(sceaux.atlas.tiles)), view_taps(view, sceaux.atlas.tiles.shape[:3]), view).numpy()
    photo = sceaux.photos[0].astype(np.float32) / 255
    mask = view.mask().numpy()
    assert 0.4 < mask.mean() < 0.8
    # The bar: about 13 dB, where the coarse mesh and the trees in front allow no more.
    assert psnr(image, photo, mask) >= 13.0
    # Facade edges coincide: the gradient images correlate best without a shift.
    crop = (slice(700, 1700), slice(600, 2300))  # the facade, inside the covered area
    a, b = _edges(image[crop].mean(-1)), _edges(photo[crop].mean(-1))
    scores = {}
    for dy in range(-4, 5, 2):
        for dx in range(-4, 5, 2):
            shifted = np.roll(np.roll(a, dy, 0), dx, 1)[8:-8, 8:-8]
            scores[(dy, dx)] = np.corrcoef(shifted.ravel(), b[8:-8, 8:-8].ravel())[0, 1]
    assert max(scores, key=scores.get) == (0, 0), scores
    assert scores[(0, 0)] > 0.3
    side = np.concatenate([image, photo], axis=1)[::4, ::4]
    Image.fromarray((side * 255).round().astype(np.uint8)).save(tmp_path / "sceaux_view0.png")
    assert Image.open(tmp_path / "sceaux_view0.png").size == (1416, 532)
