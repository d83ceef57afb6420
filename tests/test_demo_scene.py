"""The embedded demo scene: deterministic, fragmented like an MVS atlas, photos that line up with the mesh."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from rrd.demo_scene import make_demo_scene
from rrd.metrics import psnr
from rrd.render import rasterize_views, render, texel_vector, view_taps


def test_same_seed_same_scene_other_seed_other_scene(small_demo):
    again = make_demo_scene(seed=0, width=96, height=72, n_views=4, atlas_size=256, subdivisions=2)
    assert np.array_equal(again.atlas.tiles, small_demo.atlas.tiles)
    assert all(np.array_equal(a, b) for a, b in zip(again.photos, small_demo.photos))
    other = make_demo_scene(seed=1, width=96, height=72, n_views=4, atlas_size=256, subdivisions=2)
    assert not np.array_equal(other.atlas.tiles, small_demo.atlas.tiles)


def test_default_atlas_is_fragmented_with_black_gutters():
    scene = make_demo_scene(n_views=1, width=64, height=48)
    used = scene.atlas.tiles[0].max(axis=-1) > 0
    _, n_charts = ndimage.label(used)
    assert n_charts >= 300, "MVS atlases have hundreds of small charts"
    assert 0.2 < used.mean() < 0.5
    assert len(scene.mesh.faces) == 1280 and scene.atlas.tiles.shape == (1, 512, 512, 3)
    # 8-bit texture values, as read from a PNG.
    assert np.array_equal(np.round(scene.atlas.tiles * 255) / 255, scene.atlas.tiles)


def test_photos_line_up_with_the_textured_mesh(small_demo):
    views = rasterize_views(small_demo.mesh, small_demo.atlas, small_demo.cameras, "cpu")
    texels = texel_vector(torch.from_numpy(small_demo.atlas.tiles))
    for view, photo in zip(views, small_demo.photos):
        assert view.pixels.numel() > 0.2 * 96 * 72
        image = render(texels, view_taps(view, small_demo.atlas.tiles.shape[:3]), view).numpy()
        assert psnr(image, photo / 255.0, view.mask().numpy()) > 30.0
