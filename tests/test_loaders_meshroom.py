"""Meshroom loaders: Texturing OBJ conventions, .sfm versions, whole scenes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rrd.errors import InputError
from rrd.scene import Camera, look_at
from rrd_pipeline.loaders import load_meshroom_scene, read_meshroom_obj, read_sfm, write_sfm
from rrd_pipeline.writers import write_image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NASA = DATA / "meshroom_nasa"
K = np.array([[1500.0, 0, 800], [0, 1500, 600], [0, 0, 1]])


@pytest.fixture(scope="module")
def nasa():
    """The real Meshroom output, read once for the module."""
    if not (NASA / "texturedMesh.obj").is_file():
        pytest.skip(f"real test data not found at {NASA}")
    return read_meshroom_obj(NASA / "texturedMesh.obj")


def _obj(folder: Path, body: str, materials: dict[str, str], tile_px: int = 4) -> Path:
    """Write an OBJ + MTL + flat texture tiles; ``materials`` maps material name to texture file."""
    folder.mkdir(parents=True, exist_ok=True)
    mtl = "".join(f"newmtl {m}\nKd 0.6 0.6 0.6\nmap_Kd {t}\n\n" for m, t in materials.items())
    (folder / "m.mtl").write_text(mtl)
    for i, texture in enumerate(materials.values()):
        Image.fromarray(np.full((tile_px, tile_px, 3), 40 * i, np.uint8)).save(folder / texture)
    (folder / "m.obj").write_text("mtllib m.mtl\n" + body)
    return folder / "m.obj"


SQUARE = ("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 2 1 1\n"
          "vt 0.1 0.1\nvt 0.9 0.1\nvt 0.9 0.9\nvt 0.1 0.9\nvn 0 0 1\n")


def test_nasa_texturing_output(nasa):
    mesh, atlas = nasa
    assert mesh.faces.shape == (53364, 3) and mesh.vertices.shape == (26984, 3)
    assert atlas.udims == (1001,) and atlas.names == ("texture_1001.png",)
    assert atlas.tiles.shape == (1, 4096, 4096, 3) and atlas.tiles.dtype == np.float32
    assert set(mesh.face_udim.tolist()) == {1001}
    # TextureAtlas_1001 -> pre-3.0 writer -> vertices as stored (first line: v -0.477895 0.061197 2.144552)
    assert np.allclose(mesh.vertices[0], [-0.477895, 0.061197, 2.144552])


def test_material_names_choose_the_vertex_frame_and_tile(tmp_path):
    body = SQUARE + "usemtl material_1002\nf 1/1/1 2/2/1 3/3/1 4/4/1\nusemtl material_1001\nf -4/-4 -3/-3 -1/-1\n"
    mesh, atlas = read_meshroom_obj(_obj(tmp_path / "new", body, {"material_1001": "texture_1001.png",
                                                                    "material_1002": "texture_1002.png"}))
    # AliceVision >= 3.0 stored (x, -y, -z); the loader returns the SfM frame.
    assert np.allclose(mesh.vertices[4], [2, -1, -1])
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3], [1, 2, 4]]
    # the quad's UVs were local to [0, 1] (UDIMs off): shifted into tile 1002
    assert np.allclose(mesh.uv[0], [[1.1, 0.1], [1.9, 0.1], [1.9, 0.9]])
    assert mesh.face_udim.tolist() == [1002, 1002, 1001] and atlas.udims == (1001, 1002)
    assert atlas.names == ("texture_1001.png", "texture_1002.png")
    assert np.allclose(atlas.tiles[1], 40 / 255)

    legacy = read_meshroom_obj(_obj(tmp_path / "old", SQUARE + "usemtl TextureAtlas_1001\nf 1/1 2/2 3/3\n",
                                    {"TextureAtlas_1001": "texture_1001.png"}))[0]
    assert np.allclose(legacy.vertices[4], [2, 1, 1])
    override = read_meshroom_obj(tmp_path / "old" / "m.obj", vertex_frame="yz_flipped")[0]
    assert np.allclose(override.vertices[4], [2, -1, -1])


def test_obj_errors(tmp_path):
    unknown = _obj(tmp_path / "a", SQUARE + "usemtl Wood\nf 1/1 2/2 3/3\n", {"Wood": "texture_1001.png"})
    with pytest.raises(InputError, match="cannot tell the vertex frame from the material names.*--vertex-frame sfm or yz_flipped"):
        read_meshroom_obj(unknown)
    assert read_meshroom_obj(unknown, vertex_frame="sfm")[1].udims == (1001,)
    with pytest.raises(InputError, match="vertex_frame 'up' is unknown; expected one of auto, sfm, yz_flipped"):
        read_meshroom_obj(unknown, vertex_frame="up")
    no_uv = _obj(tmp_path / "b", SQUARE + "usemtl material_1001\nf 1 2 3\n", {"material_1001": "texture_1001.png"})
    with pytest.raises(InputError, match=r"m\.obj:13: face corner '1' has no texture coordinate"):
        read_meshroom_obj(no_uv)
    missing = _obj(tmp_path / "c", SQUARE + "usemtl material_1001\nf 1/1 2/2 3/3\n", {"material_1001": "t.png"})
    (tmp_path / "c" / "t.png").unlink()
    with pytest.raises(InputError, match=r"m\.obj: texture 't\.png' is missing"):
        read_meshroom_obj(missing)
    outside = _obj(tmp_path / "d", SQUARE + "vt 1.5 0.5\nusemtl material_1001\nf 1/1 2/2 3/5\n",
                   {"material_1001": "texture_1001.png"})
    with pytest.raises(InputError, match="1 faces have UV corners outside their tile"):
        read_meshroom_obj(outside)
    wrong_tile = _obj(tmp_path / "e", SQUARE + "vt 2.5 0.5\nvt 2.6 0.5\nvt 2.5 0.6\nusemtl material_1002\n"
                      "f 1/5 2/6 3/7\n", {"material_1002": "texture_1002.png"})
    with pytest.raises(InputError, match="faces have UVs outside the tile of their material"):
        read_meshroom_obj(wrong_tile)
    broken = _obj(tmp_path / "f", "v 0 0\n", {"material_1001": "texture_1001.png"})
    with pytest.raises(InputError, match=r"m\.obj:2: malformed line 'v 0 0'"):
        read_meshroom_obj(broken)
    with pytest.raises(InputError, match="OBJ file not found"):
        read_meshroom_obj(tmp_path / "none.obj")


def test_sfm_round_trip(tmp_path):
    cams = [look_at([3, 0.5, -1], [0, 0, 2], [0, -1, 0], K, 1600, 1200, "a.jpg"),
            Camera(np.array([[1400.0, 0, 790.25], [0, 1500, 610.5], [0, 0, 1]]), np.eye(3), [0.1, 0.2, 0.3],
                   1600, 1200, "b.jpg")]
    path = write_sfm(tmp_path / "cameras.sfm", cams, images_dir="/data/photos")
    data = json.loads(path.read_text())
    assert data["version"] == ["1", "2", "11"] and data["views"][0]["path"] == "/data/photos/a.jpg"
    assert all(isinstance(x, str) for x in data["poses"][0]["pose"]["transform"]["rotation"])
    back = read_sfm(path)
    for a, b in zip(cams, back):
        assert b.name == a.name and (b.width, b.height) == (a.width, a.height)
        assert np.allclose(a.K, b.K, atol=1e-9) and np.allclose(a.R, b.R, atol=1e-12)
        assert np.allclose(a.t, b.t, atol=1e-12)


def _sfm_fixture(path: Path, version: list[str] | None, intrinsic: dict, views: int = 1) -> Path:
    """A one-intrinsic .sfm; pose 1 is the identity rotation with centre (0, 0, -2)."""
    base = {"intrinsicId": "7", "width": "1600", "height": "1200", "type": "pinhole", "distortionParams": []}
    data = {"views": [{"viewId": str(10 + i), "poseId": "1" if i == 0 else "99", "intrinsicId": "7",
                       "path": f"/x/photo{i}.jpg", "width": "1600", "height": "1200"} for i in range(views)],
            "intrinsics": [{**base, **intrinsic}],
            "poses": [{"poseId": "1", "pose": {"transform": {"rotation": ["1", "0", "0", "0", "1", "0", "0", "0", "1"],
                                                             "center": ["0", "0", "-2"]}}}]}
    if version is not None:
        data["version"] = version
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("version, intrinsic, fx, fy, cx, cy", [
    # expected values worked out by hand from AliceVision's sfmDataIO/jsonIO.cpp loadIntrinsic
    (None, {"pxFocalLength": "1500", "principalPoint": ["801", "599"]}, 1500, 1500, 801, 599),
    (["1", "2", "0"], {"pxFocalLength": ["1500", "1450"], "principalPoint": ["801", "599"]}, 1500, 1450, 801, 599),
    (["1", "2", "4"], {"focalLength": "30", "sensorWidth": "32", "pixelRatio": "2",
                       "principalPoint": ["1", "-1"]}, 1500, 750, 801, 599),
    (["1", "2", "10"], {"focalLength": "30", "sensorWidth": "32", "pixelRatio": "2",
                        "principalPoint": ["1", "-1"]}, 1500, 3000, 801, 599),
    (["1", "2", "11"], {"focalLength": "30", "sensorWidth": "32", "pixelRatio": "2",
                        "principalPoint": ["1", "-1"]}, 750, 1500, 801, 599),
])
def test_sfm_intrinsics_by_version(tmp_path, version, intrinsic, fx, fy, cx, cy):
    cam, = read_sfm(_sfm_fixture(tmp_path / "c.sfm", version, intrinsic))
    assert np.allclose(cam.K, [[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    assert np.allclose(cam.center, [0, 0, -2]) and cam.name == "photo0.jpg"


def test_sfm_errors_and_unposed_views(tmp_path):
    intr = {"focalLength": "30", "sensorWidth": "32", "principalPoint": ["0", "0"]}
    with pytest.warns(UserWarning, match="skipped 1 views without a pose: photo1.jpg"):
        assert len(read_sfm(_sfm_fixture(tmp_path / "a.sfm", ["1", "2", "11"], intr, views=2))) == 1
    distorted = _sfm_fixture(tmp_path / "d.sfm", ["1", "2", "11"],
                             {**intr, "type": "radial3", "distortionParams": ["0.1", "0", "0"]})
    with pytest.raises(InputError, match="view photo0.jpg has distortion 'radial3'.*PrepareDenseScene"):
        read_sfm(distorted)
    assert len(read_sfm(distorted, allow_distortion=True)) == 1
    (tmp_path / "bad.sfm").write_text('{"views": [')
    with pytest.raises(InputError, match=r"bad\.sfm: not valid JSON"):
        read_sfm(tmp_path / "bad.sfm")
    (tmp_path / "m.sfm").write_text('{"views": [{"poseId": "1"}], "poses": [{"poseId": "1"}]}')
    with pytest.raises(InputError, match=r"m\.sfm: malformed \.sfm content \(KeyError"):
        read_sfm(tmp_path / "m.sfm")
    with pytest.raises(InputError, match=".sfm file not found"):
        read_sfm(tmp_path / "none.sfm")


def test_nasa_scene_with_generated_cameras(tmp_path, nasa):
    names = ["nasa00_00.jpg", "nasa05_00.jpg", "nasa10_00.jpg"]
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in names:  # links, not copies, to the real photos (1600x1200)
        (photos / name).symlink_to(NASA / "photos" / name)
    centre = nasa[0].vertices.mean(axis=0)
    cams = [look_at(centre + 5 * np.array([np.sin(a), 0.3, -np.cos(a)]), centre, [0, -1, 0], K, 1600, 1200, n)
            for a, n in zip((-0.5, 0.0, 0.5), names)]
    sfm = write_sfm(tmp_path / "cameras.sfm", cams)
    scene = load_meshroom_scene(sfm, NASA / "texturedMesh.obj", photos, scale=0.25)
    assert [c.name for c in scene.cameras] == names and scene.name == "meshroom_nasa"
    assert all(p.shape == (300, 400, 3) and p.dtype == np.uint8 for p in scene.photos)
    assert np.allclose(scene.cameras[0].K, [[375, 0, 200], [0, 375, 150], [0, 0, 1]])
    for cam in scene.cameras:
        xy, depth = cam.project(scene.mesh.vertices)
        inside = (depth > 0) & (xy >= 0).all(1) & (xy[:, 0] < cam.width) & (xy[:, 1] < cam.height)
        assert inside.mean() > 0.8


def test_scene_prefers_prepare_dense_scene_images(tmp_path):
    folder = tmp_path / "mesh"
    obj = _obj(folder, SQUARE + "usemtl material_1001\nf 1/1 2/2 3/3\n", {"material_1001": "texture_1001.png"})
    intr = {"focalLength": "30", "sensorWidth": "32", "principalPoint": ["0", "0"], "type": "radial3",
            "distortionParams": ["0.1", "0", "0"]}
    sfm = _sfm_fixture(tmp_path / "c.sfm", ["1", "2", "11"], {**intr, "width": "8", "height": "6"})
    data = json.loads(sfm.read_text())
    data["views"][0].update(width="8", height="6")
    sfm.write_text(json.dumps(data))
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(images / "photo0.jpg")
    with pytest.raises(InputError, match=r"photo0\.jpg: its camera has distortion.*10\.exr"):
        load_meshroom_scene(sfm, obj, images)
    (images / "photo0.jpg").unlink()
    write_image(images / "10.exr", np.full((6, 8, 3), 0.5, np.float32))  # PrepareDenseScene: linear EXR
    scene = load_meshroom_scene(sfm, obj, images)
    assert scene.cameras[0].name == "10.exr"
    assert np.all(scene.photos[0] == 188)  # sRGB encoding of linear 0.5 is 0.7354 -> round(255 x) = 188
