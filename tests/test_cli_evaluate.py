"""``rrd evaluate`` and ``rrd pad`` end to end on a small demo scene written to disk as a Meshroom output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from rrd_pipeline.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def scene_args(meshroom_output):
    """Scene options of the small demo saved as .sfm + texturedMesh.obj + photos."""
    root = meshroom_output
    return ["--sfm", str(root / "cameras.sfm"), "--mesh", str(root / "mesh" / "texturedMesh.obj"),
            "--images", str(root / "images")]


def test_evaluate_writes_report_plot_table_and_images(scene_args, small_demo, tmp_path):
    out = tmp_path / "ev"
    result = runner.invoke(app, ["evaluate", *scene_args, "--codec", "jpeg", "--methods", "none,spp,hbf",
                                 "--points", "30,60,90", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["codec"] == "jpeg" and report["reference"] == "renders"
    assert report["scene"] == "mesh"  # a Meshroom scene is named after its mesh folder
    T, H, W = small_demo.atlas.tiles.shape[:3]
    for name in ("none", "spp", "hbf"):
        points = report["methods"][name]["points"]
        assert [p["param"] for p in points] == [30, 60, 90]
        for p in points:
            assert p["bytes"] > 0 and p["bpp"] == pytest.approx(8 * p["bytes"] / (T * H * W))
            assert {"param", "bytes", "bpp", "psnr", "psnr_yuv"} <= set(p)
        assert points[0]["psnr"] < points[1]["psnr"] < points[2]["psnr"]
        assert points[0]["psnr_yuv"] < points[2]["psnr_yuv"]
        entry = report["bd_rate"][name]
        assert entry["anchor"] == report["anchor"] and {"pchip", "cubic"} <= set(entry)
    # Default anchor: the baseline with the lowest mean BD-rate against the others.
    scores = report["anchor_scores"]
    assert report["anchor"] == min(scores, key=scores.get)
    assert report["bd_rate"][report["anchor"]]["pchip"] == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < report["views"]["excluded_share"] < 1.0
    with Image.open(out / "rd.png") as im:
        assert im.size[0] > 400 and im.size[1] > 200
    table = (out / "report.md").read_text()
    assert "| method | RGB pchip | RGB cubic | YUV pchip | YUV cubic |" in table
    assert all(f"| {name}" in table for name in ("none", "spp", "hbf"))
    assert "excluded" in table
    assert (out / "decoded" / "spp" / "30.png").exists()
    assert len(list((out / "renders").glob("*.png"))) == 1 + 2 * 3
    assert "BD-rate" in result.output


def test_anchor_option_and_photos_reference(scene_args, tmp_path):
    out = tmp_path / "ev"
    result = runner.invoke(app, ["evaluate", *scene_args, "--methods", "none,pushpull", "--points", "10,50,95",
                                 "--reference", "photos", "--anchor", "none", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["anchor"] == "none" and report["anchor_rule"] == "given"
    assert report["reference"] == "photos" and report["views"]["excluded_share"] == 0.0
    assert report["bd_rate"]["pushpull"]["pchip"] < 0  # padding codes the demo's gutters cheaper than black


@pytest.mark.parametrize("args, message", [
    (["--methods", "none,sppp"], "unknown method 'sppp'; choose one of:"),
    (["--codec", "webp"], "'webp' is not one of"),
    (["--points", "30,x"], "--points '30,x': expected comma-separated integers"),
    (["--codec", "hevc", "--points", "30,70"], "hevc qp 70 is out of range"),
    (["--anchor", "hbf", "--methods", "none,spp"], "anchor 'hbf' is not one of the evaluated methods"),
    (["--reference", "photos", "--views", "orbit"], "no photos"),
])
def test_evaluate_user_errors_are_one_line_exit_2(scene_args, tmp_path, args, message):
    result = runner.invoke(app, ["evaluate", *scene_args, *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output


def test_pad_writes_mesh_and_lossless_tiles(scene_args, small_demo, tmp_path):
    result = runner.invoke(app, ["pad", *scene_args, "--method", "spp", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "texturedMesh.obj").exists() and (tmp_path / "texturedMesh.mtl").exists()
    with Image.open(tmp_path / small_demo.atlas.names[0]) as im:
        padded = np.asarray(im.convert("RGB"))
    original = np.rint(small_demo.atlas.tiles[0] * 255).astype(np.uint8)
    black = (original == 0).all(axis=-1)
    assert (padded[black] > 0).any(axis=-1).mean() > 0.9  # the gutters are filled


def test_pad_unknown_method_exit_2(scene_args, tmp_path):
    result = runner.invoke(app, ["pad", *scene_args, "--method", "blur", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "'blur' is not one of" in result.output
    assert "Traceback" not in result.output
