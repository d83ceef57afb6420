"""The method registry, the evaluation context, the pad and encode stages, and a sweep with a custom method."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rrd.errors import InputError
from rrd.padding import PADDING_METHODS
from rrd_pipeline.codecs import get_codec
from rrd_pipeline.methods import METHODS, Method, build_context, check_methods, make_method, occupancy
from rrd_pipeline.report import write_report
from rrd_pipeline.stages import call_stage, encode, pad  # noqa: F401  (registration of the stages)
from rrd_pipeline.stages.evaluate import run_evaluation


@pytest.fixture(scope="module")
def ctx(small_demo):
    return build_context(small_demo, get_codec("jpeg"), reference="photos", backend="cpu")


class _Gray(Method):
    """A flat mid-grey atlas: JPEG codes it alike at every quality, so its PSNR cannot move."""

    def __init__(self, ctx):
        self.shape = ctx.scene.atlas.tiles.shape

    def atlas_for(self, param):
        return np.full(self.shape, 0.5, dtype=np.float32)


@pytest.fixture()
def gray_method():
    METHODS.add("gray", _Gray)
    yield "gray"
    del METHODS["gray"]


def test_every_padding_method_is_a_registered_baseline(ctx):
    assert set(PADDING_METHODS) <= set(METHODS)
    for name in PADDING_METHODS:
        assert make_method(name, ctx).is_baseline


def test_unknown_or_repeated_method_names_are_refused():
    with pytest.raises(InputError, match=r"unknown method 'sppp'; choose one of: .*spp.*hbf"):
        check_methods(["none", "sppp"])
    with pytest.raises(InputError, match="more than once"):
        check_methods(["spp", "spp"])
    assert check_methods([" none", "spp "]) == ["none", "spp"]


def test_context_masks_and_padding_baseline(ctx):
    assert ctx.used.shape == ctx.keep.shape == ctx.scene.atlas.tiles.shape[:3]
    assert (ctx.used <= ctx.keep).all() and ctx.keep.sum() > ctx.used.sum()
    assert len(ctx.views) == len(ctx.scene.cameras)
    method = make_method("spp", ctx)
    a, b = method.atlas_for(30), method.atlas_for(90)
    assert a is b  # padded once, shared by every point
    original = ctx.scene.atlas.tiles
    np.testing.assert_array_equal(a[ctx.keep], original[ctx.keep])
    assert (a[~ctx.keep] > 0).all()  # the gutters are filled
    assert make_method("spp", ctx).atlas_for(50) is a  # and by every method built on this context


def test_flat_psnr_method_gets_an_undefined_bd_rate(ctx, gray_method, tmp_path):
    report = run_evaluation(ctx, ["spp", gray_method], [40, 70, 95], tmp_path)
    assert report["reference"] == "photos"
    assert report["methods"]["gray"]["baseline"] is False
    assert report["anchor"] == "spp"  # only baselines compete for the default anchor
    gray = [p["psnr"] for p in report["methods"]["gray"]["points"]]
    assert max(gray) - min(gray) < 0.1
    assert set(report["bd_rate"]["gray"]["pchip"]) == {"undefined"}
    assert isinstance(report["bd_rate"]["spp"]["pchip"], float)
    paths = write_report(tmp_path, report)
    assert "undefined (" in paths["md"].read_text()
    assert json.loads(paths["json"].read_text())["bd_rate"]["gray"]["pchip"]["undefined"]


def test_pad_stage_keeps_occupied_texels_bit_exact(small_demo, tmp_path):
    result = call_stage("pad", tmp_path, {"scene": small_demo}, method="hbf")
    assert result["mesh"].exists() and result["mesh"].suffix == ".obj"
    with Image.open(tmp_path / small_demo.atlas.names[0]) as im:
        written = np.asarray(im.convert("RGB"))
    keep = occupancy(small_demo, 1.0)[0]
    original = np.rint(small_demo.atlas.tiles[0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(written[keep], original[keep])
    assert (written[~keep] > 0).any()
    np.testing.assert_array_equal(np.rint(result["scene"].atlas.tiles[0] * 255).astype(np.uint8), written)


def test_pad_stage_refuses_an_unknown_method(small_demo, tmp_path):
    with pytest.raises(InputError, match="parameter 'method': invalid choice 'blur' \\(valid: .*spp"):
        call_stage("pad", tmp_path, {"scene": small_demo}, method="blur")


def test_encode_stage_writes_the_bitstream_and_decoded_atlas(small_demo, tmp_path):
    result = call_stage("encode", tmp_path, {"scene": small_demo}, codec="jpeg", param=60)
    (stream,) = result["bitstreams"]
    assert stream.suffix == ".jpg" and stream.stat().st_size == result["summary"]["bytes"] > 0
    with Image.open(stream) as im:
        decoded = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(np.rint(result["scene"].atlas.tiles[0] * 255).astype(np.uint8), decoded)
    assert (tmp_path / "decoded" / "texture_1001.png").exists()
