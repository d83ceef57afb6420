"""Evaluation core: coded sizes, rendering quality against both references, seam exclusion, BD summaries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rrd.errors import InputError
from rrd.codec import code_atlas
from rrd_pipeline.codecs import get_codec
from rrd.evaluate import (bd_summary, bd_table, build_evaluator, default_anchor, masked_psnrs,
                          used_texel_vector)
from rrd.metrics import psnr, psnr_yuv
from rrd.occupancy import texel_coverage
from rrd.padding import pad
from rrd.render import face_tiles, rasterize_views, view_taps

# JCTVC-E137 curves (rate, PSNR) and their BD-rate, REFERENCE.md section 2.
E137_A = ([108048.8736, 61279.976, 33905.6656, 18883.6928], [43.6471, 40.3953, 37.247, 34.2911])
E137_B = ([108061.2784, 61299.9936, 33928.7472, 18910.912], [43.6768, 40.4232, 37.2761, 34.3147])


@pytest.fixture(scope="module")
def demo(small_demo):
    scene = small_demo
    T, H, W = scene.atlas.tiles.shape[:3]
    uv, tiles = scene.mesh.local_uv(), face_tiles(scene.mesh, scene.atlas)
    used = texel_coverage(uv, tiles, T, H, W, 0.5)
    keep = texel_coverage(uv, tiles, T, H, W, 1.0)
    views = rasterize_views(scene.mesh, scene.atlas, scene.cameras, "cpu")
    return scene, views, used, keep


def test_masked_psnrs_equal_the_metrics_module():
    g = np.random.default_rng(0)
    ref = g.random((5000, 3)).astype(np.float32)
    test = np.clip(ref + g.normal(0, 0.03, ref.shape), 0, 1).astype(np.float32)
    rgb, yuv = masked_psnrs(test, ref)
    assert rgb == pytest.approx(psnr(test[:, None], ref[:, None]), abs=1e-9)
    assert yuv == pytest.approx(psnr_yuv(test[:, None], ref[:, None])["yuv"], abs=1e-9)
    assert masked_psnrs(ref, ref) == (float("inf"), float("inf"))


def test_code_atlas_counts_every_tile_and_decodes(small_demo):
    tiles = np.concatenate([small_demo.atlas.tiles, small_demo.atlas.tiles[:, ::-1]])  # two tiles
    codec = get_codec("jpeg")
    coded = code_atlas(codec, tiles, 50)
    codes = np.clip(np.rint(tiles * 255.0), 0, 255).astype(np.uint8)
    alone = [codec.encode(np.ascontiguousarray(c), 50) for c in codes]
    assert coded.nbytes == sum(c.nbytes for c in alone) > 0
    assert coded.bpp == pytest.approx(8 * coded.nbytes / tiles[..., 0].size)
    assert coded.decoded.shape == tiles.shape and coded.decoded.dtype == np.float32
    np.testing.assert_array_equal(np.rint(coded.decoded[1] * 255).astype(np.uint8), alone[1].decoded)
    assert coded.seconds > 0 and len(coded.bitstreams) == 2


def test_mip_texel_is_used_only_when_all_base_texels_are():
    used = np.ones((1, 4, 4), dtype=bool)
    used[0, 3, 0] = False
    flags = used_texel_vector(used, "trilinear")
    assert flags.shape == (16 + 4 + 1,)
    assert flags[:16].tolist() == used.reshape(-1).tolist()
    assert flags[16:20].tolist() == [True, True, False, True]  # 2x2 level: the bottom-left block has the hole
    assert flags[20:].tolist() == [False]


def test_renders_reference_excludes_seam_pixels_and_padding_keeps_renders(demo):
    scene, views, used, keep = demo
    ev = build_evaluator(scene, views, used, "renders", "bilinear")
    assert 0.0 < ev.excluded_share < 1.0
    flat_used = torch.from_numpy(used.reshape(-1))
    for v in ev.views:
        assert 0.0 < v.excluded_share < 1.0
        # Every counted pixel reads used texels only (non-zero weights), and only counted pixels are kept.
        reads = v.sampler.tocoo()
        assert flat_used[torch.from_numpy(reads.col[reads.data > 0].astype(np.int64))].all()
        taps = view_taps(v.view, used.shape, "bilinear")
        clean = ~((taps.weight > 0) & ~flat_used[taps.index]).any(dim=1)
        assert int(clean.sum()) == v.n_counted
    # The reference is the original itself; padding changes no texel a counted pixel reads.
    assert ev.quality(scene.atlas.tiles).psnr_db == float("inf")
    padded = pad(scene.atlas.tiles, keep, "spp")
    quality = ev.quality(padded)
    assert quality.psnr_db == float("inf") and quality.psnr_yuv_db == float("inf")
    image = ev.render(padded, 0)
    assert image.shape == (scene.cameras[0].height, scene.cameras[0].width, 3)


def test_psnr_rises_with_jpeg_quality_against_photos(demo):
    scene, views, used, keep = demo
    ev = build_evaluator(scene, views, used, "photos", "bilinear")
    assert ev.excluded_share == 0.0
    padded = pad(scene.atlas.tiles, keep, "spp")
    ceiling = ev.quality(padded).psnr_db
    assert 30.0 < ceiling < 60.0  # the demo photos line up with the mesh
    values = [ev.quality(code_atlas(get_codec("jpeg"), padded, q).decoded) for q in (20, 60, 95)]
    psnrs = [v.psnr_db for v in values]
    assert psnrs[0] < psnrs[1] < psnrs[2] < ceiling + 1e-9
    assert len(values[0].views) == len(scene.cameras)
    assert values[0].psnr_db == pytest.approx(np.mean([v.psnr_db for v in values[0].views]))


def test_trilinear_excludes_at_least_the_bilinear_seams_and_orbit_views_work(demo):
    scene, views, used, _ = demo
    bilinear = build_evaluator(scene, views, used, "renders", "bilinear")
    trilinear = build_evaluator(scene, views, used, "renders", "trilinear", views="both", orbit_count=4,
                                orbit_size=48, backend="cpu")
    assert [v.kind for v in trilinear.views].count("orbit") + len(trilinear.dropped) == 4
    source = [v for v in trilinear.views if v.kind == "source"]
    for b, t in zip(bilinear.views, source):
        assert t.excluded_share >= b.excluded_share
    assert trilinear.quality(scene.atlas.tiles).psnr_db == float("inf")


def test_leave_out_and_bad_options(demo):
    scene, views, used, _ = demo
    ev = build_evaluator(scene, views, used, leave_out=[0, 2])
    assert [v.name for v in ev.views] == [scene.cameras[1].name, scene.cameras[3].name]
    with pytest.raises(InputError, match="leave_out index 7"):
        build_evaluator(scene, views, used, leave_out=[7])
    with pytest.raises(InputError, match="no photos"):
        build_evaluator(scene, views, used, "photos", views="orbit")
    with pytest.raises(InputError, match="unknown view set 'all'"):
        build_evaluator(scene, views, used, views="all")
    with pytest.raises(InputError, match="no evaluation view"):
        build_evaluator(scene, views, used, leave_out=[0, 1, 2, 3])


def test_bd_summary_matches_the_reference_vector_and_records_undefined_cases():
    entry = bd_summary(E137_A, E137_B)
    assert entry["pchip"] == pytest.approx(-0.465215420752807, abs=1e-9)
    assert entry["cubic"] == pytest.approx(-0.464415, abs=1e-5)
    assert entry["warnings"] == []
    flat = (E137_A[0], [30.05, 30.04, 30.02, 30.0])  # rising with rate, but by 0.05 dB only
    undefined = bd_summary(E137_A, flat)
    assert set(undefined["pchip"]) == {"undefined"} and "0.1 dB" in undefined["pchip"]["undefined"]
    assert "undefined" in undefined["cubic"]
    shifted = ([r / 3 for r in E137_B[0]], [p - 6 for p in E137_B[1]])  # overlaps on a third of the range
    partial = bd_summary(E137_A, shifted)
    assert isinstance(partial["pchip"], float)
    assert any("overlap" in w for w in partial["warnings"])
    table = bd_table({"a": E137_A, "b": E137_B}, "a")
    assert table["a"]["pchip"] == pytest.approx(0.0, abs=1e-12) and table["b"]["anchor"] == "a"


def test_default_anchor_is_the_baseline_cheapest_against_the_others():
    rates, psnrs = E137_A
    curves = {"spp": ([1.1 * r for r in rates], psnrs), "none": ([0.9 * r for r in rates], psnrs),
              "hbf": ([1.0 * r for r in rates], psnrs), "other": ([0.5 * r for r in rates], psnrs)}
    anchor, scores = default_anchor(curves, ["spp", "none", "hbf"])
    assert anchor == "none"  # black gutters can win: the rule does not assume padding does
    assert scores["none"] == pytest.approx(np.mean([100 * (0.9 / 1.1 - 1), 100 * (0.9 - 1)]), abs=1e-6)
    assert set(scores) == {"spp", "none", "hbf"}
    flat = {"a": (rates, [30.0] * 4), "b": (rates, [30.0] * 4)}
    assert default_anchor(flat, ["a", "b"]) == ("a", {"a": None, "b": None})  # nothing defined: first
