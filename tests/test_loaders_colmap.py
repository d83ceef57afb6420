"""COLMAP loader: real Sceaux model (text and binary), distorted models, scene assembly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rrd.errors import InputError
from rrd_pipeline.loaders import load_colmap_scene, read_colmap_cameras

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SCEAUX = DATA / "sceaux_castle"


def _need_sceaux() -> None:
    if not (SCEAUX / "sparse" / "0" / "cameras.txt").is_file():
        pytest.skip(f"real test data not found at {SCEAUX}")


def _write_text_model(folder: Path, camera_line: str, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cameras.txt").write_text(camera_line + "\n")
    # Identity rotation (QW=1), camera 5 units in front of the origin.
    lines = [f"{i + 1} 1 0 0 0 0 0 5 1 {name}\n\n" for i, name in enumerate(names)]
    (folder / "images.txt").write_text("".join(lines))
    (folder / "points3D.txt").write_text("")
    return folder


def test_sceaux_cameras_match_the_published_model():
    _need_sceaux()
    cams = read_colmap_cameras(SCEAUX / "sparse" / "0")
    assert [c.name for c in cams] == [f"{i:05d}.jpg" for i in range(10)]
    for cam in cams:
        assert (cam.width, cam.height) == (2832, 2128)
        assert cam.K[0, 0] == pytest.approx(2985.328343)
        assert cam.K[1, 1] == pytest.approx(2985.328343)
        assert cam.K[0, 2] == pytest.approx(1452.635863)
        assert np.allclose(cam.R @ cam.R.T, np.eye(3), atol=1e-9)
    # images.txt line of 00000.jpg: QW QX QY QZ = 0.622321055679 -0.766746173568 -0.117913098585
    # -0.104466789748, T = 0.571232788945 0.300558695587 8.217525787674.
    w, x, y, z = 0.622321055679, -0.766746173568, -0.117913098585, -0.104466789748
    expected_R = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    assert np.allclose(cams[0].R, expected_R, atol=1e-9)
    assert np.allclose(cams[0].t, [0.571232788945, 0.300558695587, 8.217525787674])


def test_binary_model_reads_like_the_text_model(tmp_path):
    _need_sceaux()
    import pycolmap

    pycolmap.Reconstruction(str(SCEAUX / "sparse" / "0")).write_binary(str(tmp_path))
    assert (tmp_path / "images.bin").is_file() and not (tmp_path / "images.txt").exists()
    text, binary = read_colmap_cameras(SCEAUX / "sparse" / "0"), read_colmap_cameras(tmp_path)
    assert [c.name for c in binary] == [c.name for c in text]
    for a, b in zip(text, binary):
        assert np.array_equal(a.K, b.K) and np.array_equal(a.R, b.R) and np.array_equal(a.t, b.t)


def test_sceaux_scene_poses_see_the_mesh_and_its_texture():
    _need_sceaux()
    scene = load_colmap_scene(SCEAUX / "sparse" / "0", SCEAUX / "images", SCEAUX / "scene_mesh_texture.ply",
                              scale=0.25)
    assert len(scene.cameras) == len(scene.photos) == 10
    cam, photo = scene.cameras[0], scene.photos[0]
    assert (cam.width, cam.height) == (708, 532) and photo.shape == (532, 708, 3) and photo.dtype == np.uint8
    assert cam.K[0, 0] == pytest.approx(2985.328343 * 708 / 2832)
    mesh = scene.mesh
    for view in scene.cameras:
        xy, depth = view.project(mesh.vertices)
        inside = (depth > 0) & (xy >= 0).all(1) & (xy[:, 0] < view.width) & (xy[:, 1] < view.height)
        assert inside.mean() > 0.8, view.name
    # Photo colour at each face's projection correlates with the atlas colour at its UV centroid only
    # when pose and UV conventions are both right (with v flipped the correlation was about -0.05).
    centre_xy, depth = cam.project(mesh.vertices[mesh.faces].mean(axis=1))
    ok = (depth > 0) & (centre_xy >= 0).all(1) & (centre_xy[:, 0] < cam.width) & (centre_xy[:, 1] < cam.height)
    grey_photo = photo.astype(np.float64).mean(axis=2)
    at_photo = grey_photo[centre_xy[ok, 1].astype(int), centre_xy[ok, 0].astype(int)]
    tile = scene.atlas.tiles[0].mean(axis=2)
    uv = mesh.uv.mean(axis=1)[ok]
    size = scene.atlas.width
    at_atlas = tile[((1 - uv[:, 1]) * size).astype(int), (uv[:, 0] * size).astype(int)]
    assert np.corrcoef(at_photo, at_atlas)[0, 1] > 0.3


def test_distorted_camera_model_is_rejected(tmp_path):
    model = _write_text_model(tmp_path / "sparse", "1 OPENCV 64 48 50 50 32 24 0.1 0.01 0 0", ["a.png"])
    with pytest.raises(InputError, match=r"OPENCV.*PINHOLE/SIMPLE_PINHOLE.*image_undistorter.*undistort_images"):
        read_colmap_cameras(model)


def test_simple_pinhole_fixture_and_scene_errors(tmp_path):
    model = _write_text_model(tmp_path / "sparse", "1 SIMPLE_PINHOLE 64 48 50 32 24", ["b.png", "a.png"])
    cams = read_colmap_cameras(model)
    assert [c.name for c in cams] == ["a.png", "b.png"]
    assert np.allclose(cams[0].K, [[50, 0, 32], [0, 50, 24], [0, 0, 1]])
    assert np.allclose(cams[0].center, [0, 0, -5])

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(images / "a.png")
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(images / "c.png")
    mesh = tmp_path / "mesh.ply"
    mesh.write_text("ply\nformat ascii 1.0\ncomment TextureFile tex.png\nelement vertex 3\n"
                    "property float x\nproperty float y\nproperty float z\nelement face 1\n"
                    "property list uchar int vertex_indices\nproperty list uchar float texcoord\nend_header\n"
                    "0 0 0\n1 0 0\n0 1 0\n3 0 1 2 6 0.1 0.1 0.9 0.1 0.1 0.9\n")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "tex.png")
    with pytest.raises(InputError, match=r"cameras without a photo: b\.png; photos without a camera: c\.png"):
        load_colmap_scene(model, images, mesh)
    (images / "c.png").unlink()
    Image.fromarray(np.zeros((40, 64, 3), np.uint8)).save(images / "b.png")
    with pytest.raises(InputError, match=r"b\.png: photo is 64x40 but its camera is 64x48"):
        load_colmap_scene(model, images, mesh)
    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(images / "b.png")
    scene = load_colmap_scene(model, images, mesh, scale=0.5)
    assert [p.shape for p in scene.photos] == [(24, 32, 3)] * 2
    assert scene.cameras[1].K[0, 0] == pytest.approx(25) and scene.cameras[1].K[0, 2] == pytest.approx(16)
    assert np.all(scene.photos[1] == 200)


def test_missing_or_broken_model_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="COLMAP model folder not found"):
        read_colmap_cameras(tmp_path / "nope")
    with pytest.raises(InputError, match="no cameras.bin or cameras.txt"):
        read_colmap_cameras(tmp_path)
    model = _write_text_model(tmp_path / "sparse", "1 PINHOLE 64 48 50", ["a.png"])
    with pytest.raises(InputError, match="cannot read the COLMAP model"):
        read_colmap_cameras(model)
