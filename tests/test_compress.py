"""``rrd compress``: a textured mesh in, the published asset out (a folder or a glTF), with what was gained."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rrd_pipeline.cli import app

runner = CliRunner()
FAST = ["--iterations", "5", "--quality", "70"]


def test_compress_with_cameras_publishes_a_folder_and_says_what_was_gained(meshroom_output, tmp_path):
    mesh = meshroom_output / "mesh" / "texturedMesh.obj"
    out = tmp_path / "published"
    result = runner.invoke(app, ["compress", str(mesh), "--sfm", str(meshroom_output / "cameras.sfm"),
                                 "--images", str(meshroom_output / "images"), "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "compress.json").read_text())
    assert record["views"] == {**record["views"], "source": 4, "generated": 0}
    # the mesh and its material file name the published JPEG pages; their bytes are the codec's own
    page = out / "texture_1001.jpg"
    assert "map_Kd texture_1001.jpg" in (out / "texturedMesh.mtl").read_text()
    assert page.read_bytes()[:3] == b"\xff\xd8\xff" and record["bytes_out"] == page.stat().st_size
    assert record["bytes_in"] == (mesh.parent / "texture_1001.png").stat().st_size
    assert record["bytes_in_source"] == "files"
    assert set(record["baselines"]) == {"spp", "hbf"}
    assert record["baseline"]["bytes"] == min(b["bytes"] for b in record["baselines"].values())
    assert 20 < record["psnr_db"] < 80 and record["quality"] == 70
    line = next(line for line in result.stdout.splitlines() if line.startswith("texture "))
    assert " MB -> " in line and "dB; padding alone (" in line and "at the same setting" in line


def test_a_mesh_alone_is_seen_from_generated_views_and_published_as_glb(meshroom_output, tmp_path):
    out = tmp_path / "asset.glb"
    result = runner.invoke(app, ["compress", str(meshroom_output / "mesh" / "texturedMesh.obj"),
                                 "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "asset.compress.json").read_text())
    assert record["views"]["source"] == 0 and record["views"]["generated"] > 0
    assert out.is_file() and out.read_bytes()[:4] == b"glTF"
    # the GLB embeds exactly the bytes the codec wrote for the pages compress.json counts
    assert record["bytes_out"] < record["bytes_in"]
    body = out.read_bytes()
    assert body.count(b"\xff\xd8\xff") >= 1


def test_compress_refuses_a_codec_whose_files_a_mesh_cannot_name(meshroom_output, tmp_path):
    result = runner.invoke(app, ["compress", str(meshroom_output / "mesh" / "texturedMesh.obj"),
                                 "--codec", "hevc", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "writes no image file a mesh can reference" in result.stderr
    assert not (tmp_path / "o").exists()
