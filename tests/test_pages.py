"""Atlases whose pages differ in size (as texturers cut them): sampling, coverage, padding, coding and the
optimiser treat each page on its own, exactly as if it were the only one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from rrd.codec import code_atlas
from rrd.errors import InputError
from rrd.occupancy import texel_coverage
from rrd.padding import pad, pad_pages
from rrd.preprocess import prepare, preprocess
from rrd.rate import get_rate_model
from rrd.render import rasterize_views, view_taps
from rrd.sample import bilinear_taps, gather
from rrd.scene import Atlas, Scene, TexturedMesh
from rrd.settings import DEFAULT_SETTINGS
from rrd_pipeline.codecs import get_codec
from rrd_pipeline.outputs import write_textured_mesh


def two_pages(seed: int = 0) -> Atlas:
    g = np.random.default_rng(seed)
    return Atlas.from_pages([g.random((8, 12, 3)), g.random((5, 7, 3))], (1001, 1002), ("a.png", "b.png"))


def test_canvas_holds_each_page_in_its_corner():
    atlas = two_pages()
    assert atlas.tiles.shape == (2, 8, 12, 3) and atlas.sizes == ((8, 12), (5, 7))
    assert atlas.page(1).shape == (5, 7, 3) and not atlas.tiles[1, 5:].any() and not atlas.tiles[1, :, 7:].any()
    assert atlas.shape.texels == 8 * 12 + 5 * 7 and not atlas.shape.uniform
    assert atlas.page_mask().sum() == atlas.shape.texels
    with pytest.raises(InputError, match="do not fit"):
        Atlas(np.zeros((1, 4, 4, 3)), sizes=((5, 4),))


def test_sampling_a_page_on_the_canvas_equals_sampling_it_alone():
    atlas = two_pages()
    g = torch.Generator().manual_seed(1)
    uv = torch.rand(500, 2, generator=g, dtype=torch.float64) * 1.2 - 0.1  # also beyond the edges: clamped
    page = torch.ones(500, dtype=torch.int64)
    sizes = torch.tensor(atlas.sizes)
    on_canvas = gather(torch.from_numpy(atlas.tiles).double().reshape(-1, 3),
                       bilinear_taps(uv, page, 8, 12, page_sizes=sizes))
    alone = gather(torch.from_numpy(atlas.page(1).copy()).double().reshape(-1, 3),
                   bilinear_taps(uv, torch.zeros(500, dtype=torch.int64), 5, 7))
    torch.testing.assert_close(on_canvas, alone, rtol=0, atol=1e-12)


def test_coverage_of_a_page_on_the_canvas_equals_its_coverage_alone():
    g = np.random.default_rng(2)
    uv = g.random((40, 3, 2)) * 0.3 + g.random((40, 1, 2)) * 0.7
    tile = np.repeat([0, 1], 20)
    covered = texel_coverage(uv, tile, 2, 8, 12, 1.0, ((8, 12), (5, 7)))
    alone = texel_coverage(uv[20:], np.zeros(20, dtype=np.int64), 1, 5, 7, 1.0)
    np.testing.assert_array_equal(covered[1, :5, :7], alone[0])
    assert not covered[1, 5:].any() and not covered[1, :, 7:].any()


def test_padding_and_coding_see_each_page_at_its_own_size():
    atlas = two_pages()
    keep = np.zeros(atlas.tiles.shape[:3], dtype=bool)
    keep[:, 1:4, 1:4] = True
    padded = pad_pages(atlas.tiles, keep, "spp", atlas.sizes)
    np.testing.assert_array_equal(padded[1, :5, :7], pad(atlas.page(1), keep[1, :5, :7], "spp"))
    assert not padded[1, 5:].any() and not padded[1, :, 7:].any()
    codec = get_codec("jpeg")
    coded = code_atlas(codec, padded, 80, atlas.sizes)
    alone = codec.encode(np.clip(np.rint(padded[1, :5, :7] * 255), 0, 255).astype(np.uint8), 80)
    assert coded.bitstreams[1] == alone.bitstream
    assert coded.bpp == pytest.approx(coded.bits / atlas.shape.texels)
    assert not coded.decoded[1, 5:].any()


def _split_scene(scene: Scene) -> Scene:
    """The scene with its faces on the right half of the atlas moved to a second, half-size page."""
    mesh, page = scene.mesh, scene.atlas.tiles[0]
    right = mesh.uv[:, :, 0].min(axis=1) >= 0.5
    uv = mesh.uv.copy()
    # Page 1002 holds the right half of the original page at half resolution: u in [0.5, 1] -> [1, 2].
    uv[right, :, 0] = 1.0 + (uv[right, :, 0] - 0.5) * 2.0
    h, w = page.shape[:2]
    half = np.asarray(Image.fromarray(np.rint(page[:, w // 2:] * 255).astype(np.uint8)).resize(
        (w // 4, h // 2), Image.BILINEAR), dtype=np.float32) / 255
    atlas = Atlas.from_pages([page, half], (1001, 1002), ("texture_1001.png", "texture_1002.png"))
    return dataclasses.replace(scene, mesh=TexturedMesh(mesh.vertices, mesh.faces, uv), atlas=atlas)


def test_the_optimiser_runs_on_pages_of_two_sizes_and_writes_them_at_their_sizes(small_demo, tmp_path):
    scene = _split_scene(small_demo)
    assert scene.atlas.sizes == ((256, 256), (128, 64))
    views = rasterize_views(scene.mesh, scene.atlas, scene.cameras, "cpu")
    assert all(view_taps(v, scene.atlas.shape).index.max() < scene.atlas.tiles[..., 0].size for v in views)
    problem = prepare(scene.mesh, scene.atlas, views, "photos", scene.photos)
    assert not problem.used[1, 128:].any() and not problem.keep[1, :, 64:].any()
    rate = get_rate_model("jpeg")
    result = preprocess(problem, rate, 50, DEFAULT_SETTINGS.replace(iterations=4))
    tiles = result.tiles.numpy()
    assert not tiles[1, 128:].any() and not tiles[1, :, 64:].any()  # the canvas stays out of it
    assert min(h[2] for h in result.history) < result.history[0][2]
    files = write_textured_mesh(tmp_path, scene, tiles)
    sizes = {f.name: Image.open(f).size for f in files if f.suffix == ".png"}
    assert sizes == {"texture_1001.png": (256, 256), "texture_1002.png": (64, 128)}
