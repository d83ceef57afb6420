"""The ``rrd`` CLI: commands run end to end, user mistakes give one line and exit code 2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from conftest import shared_path
from rrd_pipeline.cli import app

runner = CliRunner()


def test_demo_runs_and_reports_psnr(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--points", "40,80", "--iterations", "3"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "render" / "psnr.json").read_text())
    assert len(report["views"]) == 10
    assert report["mean"]["psnr"] > 40.0  # the demo photos line up with the mesh exactly
    assert len(list((tmp_path / "render" / "renders").glob("*.png"))) == 10
    evaluation = json.loads((tmp_path / "evaluate" / "report.json").read_text())
    assert evaluation["reference"] == "photos"
    assert set(evaluation["methods"]) == {"none", "spp", "hbf", "rrd"}
    assert all(p["bytes"] > 0 for p in evaluation["methods"]["rrd"]["points"])
    settings = evaluation["methods"]["rrd"]["settings"]
    assert settings["iterations"] == 3 and settings["coded_distortion"] is False
    assert evaluation["methods"]["hbf"]["settings"] == {}
    assert "`rrd` settings: iterations 3," in (tmp_path / "evaluate" / "report.md").read_text()
    assert (tmp_path / "evaluate" / "rd.png").stat().st_size > 0


def test_missing_mesh_file_is_one_line_exit_2(tmp_path):
    root = shared_path("sceaux_castle")
    result = runner.invoke(app, ["render", "--colmap", str(root), "--mesh", str(tmp_path / "nope.ply"),
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "nope.ply" in result.output and "not found" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o" / "psnr.json").exists()


def test_photo_count_differs_from_cameras(tmp_path):
    root = shared_path("sceaux_castle")
    images = tmp_path / "images"
    images.mkdir()
    for name in ("00000.jpg", "00001.jpg"):
        (images / name).symlink_to(root / "images" / name)
    result = runner.invoke(app, ["render", "--colmap", str(root), "--mesh", str(root / "scene_mesh_texture.ply"),
                                 "--images", str(images), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "00002.jpg" in result.output and "Traceback" not in result.output


def test_options_that_do_not_fit_together(tmp_path):
    result = runner.invoke(app, ["render", "--colmap", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--mesh is required" in result.output
