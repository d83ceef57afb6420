"""OpenMVS loaders: textured PLY (ascii, both binary byte orders, polygons, several textures), scene.mvs."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from rrd.errors import InputError
from rrd_pipeline.loaders import read_colmap_cameras, read_openmvs_ply, read_textured_mesh
from rrd_pipeline.loaders.openmvs import read_mvs_cameras

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SCEAUX = DATA / "sceaux_castle"

VERTICES = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]], dtype=np.float32)
# A quad (fanned into two triangles) on texture 1 and a triangle on texture 0.
POLYGONS = [([0, 1, 2, 3], [0.1, 0.1, 0.9, 0.1, 0.9, 0.9, 0.1, 0.9], 1),
            ([1, 4, 2], [0.2, 0.3, 0.4, 0.3, 0.2, 0.5], 0)]


def _header(fmt: str, textures: list[str], texnumber: bool, count_type: str = "uchar") -> bytes:
    lines = ["ply", f"format {fmt} 1.0", *[f"comment TextureFile {t}" for t in textures],
             f"element vertex {len(VERTICES)}", "property float x", "property float y", "property float z",
             f"element face {len(POLYGONS)}", f"property list {count_type} uint vertex_indices",
             f"property list {count_type} float texcoord"]
    if texnumber:
        lines.append("property int texnumber")
    return ("\n".join(lines + ["end_header"]) + "\n").encode()


def _binary_ply(path: Path, order: str = "<", textures=("t0.png", "t1.png"), texnumber=True) -> Path:
    fmt = "binary_little_endian" if order == "<" else "binary_big_endian"
    body = b"".join(struct.pack(order + "3f", *v) for v in VERTICES)
    for idx, tc, tex in POLYGONS:
        body += struct.pack(f"{order}B{len(idx)}I", len(idx), *idx)
        body += struct.pack(f"{order}B{len(tc)}f", len(tc), *tc)
        if texnumber:
            body += struct.pack(order + "i", tex)
    path.write_bytes(_header(fmt, list(textures), texnumber) + body)
    return path


def _expected_uv() -> np.ndarray:
    quad = np.array(POLYGONS[0][1]).reshape(4, 2) + [1, 0]  # texture 1 -> u shifted into tile 1002
    tri = np.array(POLYGONS[1][1]).reshape(3, 2)
    return np.stack([quad[[0, 1, 2]], quad[[0, 2, 3]], tri])


@pytest.mark.parametrize("order", ["<", ">"])
def test_binary_polygons_and_texnumber(tmp_path, order):
    mesh, textures = read_openmvs_ply(_binary_ply(tmp_path / "m.ply", order))
    assert textures == [str(tmp_path / "t0.png"), str(tmp_path / "t1.png")]
    assert np.array_equal(mesh.vertices, VERTICES)
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 2]]
    assert np.allclose(mesh.uv, _expected_uv())
    assert mesh.face_udim.tolist() == [1002, 1002, 1001]


def test_ascii_reads_like_binary(tmp_path):
    body = "".join(f"{x} {y} {z}\n" for x, y, z in VERTICES)
    for idx, tc, tex in POLYGONS:
        body += f"{len(idx)} {' '.join(map(str, idx))} {len(tc)} {' '.join(map(str, tc))} {tex}\n"
    path = tmp_path / "a.ply"
    path.write_bytes(_header("ascii", ["t0.png", "t1.png"], True) + body.encode())
    mesh, _ = read_openmvs_ply(path)
    reference, _ = read_openmvs_ply(_binary_ply(tmp_path / "b.ply"))
    assert np.array_equal(mesh.faces, reference.faces) and np.allclose(mesh.uv, reference.uv)


def test_sceaux_mesh():
    if not (SCEAUX / "scene_mesh_texture.ply").is_file():
        pytest.skip(f"real test data not found at {SCEAUX}")
    mesh, textures = read_openmvs_ply(SCEAUX / "scene_mesh_texture.ply")
    assert mesh.vertices.shape == (7378, 3) and mesh.faces.shape == (14709, 3)
    assert textures == [str(SCEAUX / "scene_mesh_texture0.png")]
    assert mesh.uv.min() >= 0 and mesh.uv.max() <= 1
    assert set(mesh.face_udim.tolist()) == {1001}
    mesh2, atlas = read_textured_mesh(SCEAUX / "scene_mesh_texture.ply")
    assert atlas.tiles.shape == (1, 4096, 4096, 3) and atlas.udims == (1001,)
    assert atlas.names == ("scene_mesh_texture0.png",)


def test_truncated_and_corrupt_files(tmp_path):
    path = _binary_ply(tmp_path / "m.ply")
    data = path.read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[:-7])
    with pytest.raises(InputError, match=r"cut\.ply: file is truncated inside element 'face'"):
        read_openmvs_ply(tmp_path / "cut.ply")
    (tmp_path / "junk.ply").write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match=r"junk\.ply: not a PLY file"):
        read_openmvs_ply(tmp_path / "junk.ply")
    with pytest.raises(InputError, match=r"none\.ply: PLY file not found"):
        read_openmvs_ply(tmp_path / "none.ply")
    (tmp_path / "bad.ply").write_bytes(data.replace(b"property float x", b"property flaot x"))
    with pytest.raises(InputError, match="malformed PLY header line 'property flaot x'"):
        read_openmvs_ply(tmp_path / "bad.ply")


def test_missing_uvs_textures_and_bad_texnumber(tmp_path):
    no_uv = tmp_path / "no_uv.ply"
    no_uv.write_text("ply\nformat ascii 1.0\ncomment TextureFile t.png\nelement vertex 3\nproperty float x\n"
                     "property float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\n"
                     "end_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    with pytest.raises(InputError, match=r"no_uv\.ply: the mesh has no UVs"):
        read_openmvs_ply(no_uv)
    with pytest.raises(InputError, match="names no texture"):
        read_openmvs_ply(_binary_ply(tmp_path / "n.ply", textures=()))
    with pytest.raises(InputError, match=r"texnumber outside 0\.\.0"):
        read_openmvs_ply(_binary_ply(tmp_path / "k.ply", textures=("t0.png",)))
    with pytest.raises(InputError, match="2 textures but faces have no 'texnumber'"):
        read_openmvs_ply(_binary_ply(tmp_path / "x.ply", texnumber=False))
    with pytest.raises(InputError, match=r"t0\.png: image file not found"):
        read_textured_mesh(_binary_ply(tmp_path / "m.ply"))


def _one_texture_ply(path: Path, faces: list[list[int]], uvs: list[list[float]]) -> Path:
    text = ("ply\nformat ascii 1.0\ncomment TextureFile t.png\nelement vertex 5\nproperty float x\n"
            "property float y\nproperty float z\n" f"element face {len(faces)}\n"
            "property list uchar int vertex_indices\nproperty list uchar float texcoord\nend_header\n"
            + "".join(f"{x} {y} {z}\n" for x, y, z in VERTICES)
            + "".join(f"3 {' '.join(map(str, f))} 6 {' '.join(map(str, t))}\n" for f, t in zip(faces, uvs)))
    path.write_text(text)
    return path


def test_degenerate_faces_are_dropped_with_a_warning(tmp_path):
    uv = [0.1, 0.1, 0.5, 0.1, 0.1, 0.5]
    # face 1 repeats a vertex, face 2 is collinear (0, 1, 4 on the x axis)
    path = _one_texture_ply(tmp_path / "d.ply", [[0, 1, 2], [0, 0, 2], [0, 1, 4]], [uv] * 3)
    with pytest.warns(UserWarning, match=r"d\.ply: dropped 2 degenerate faces"):
        mesh, _ = read_openmvs_ply(path)
    assert mesh.faces.tolist() == [[0, 1, 2]]


def test_uvs_out_of_range(tmp_path):
    path = _one_texture_ply(tmp_path / "o.ply", [[0, 1, 2]], [[0.5, 0.5, 1.2, 0.5, 0.5, 0.9]])
    with pytest.raises(InputError, match=r"o\.ply: 1 faces have UV corners outside their tile"):
        read_openmvs_ply(path)
    path = _one_texture_ply(tmp_path / "p.ply", [[0, 1, 2]], [[1.5, 0.5, 1.7, 0.5, 1.5, 0.9]])
    with pytest.raises(InputError, match=r"UDIM tiles \[1002\] but textures exist only for tiles \[1001\]"):
        read_openmvs_ply(path)


def test_mvs_cameras_agree_with_the_colmap_model():
    if not (SCEAUX / "scene.mvs").is_file():
        pytest.skip(f"real test data not found at {SCEAUX}")
    mvs = read_mvs_cameras(SCEAUX / "scene.mvs")
    colmap = {c.name: c for c in read_colmap_cameras(SCEAUX / "sparse" / "0")}
    assert [c.name for c in mvs] == [f"{i:05d}.jpg" for i in range(11)]
    assert not (SCEAUX / "images" / mvs[10].name).exists()  # pose 10 has no photo in the sample
    for cam in mvs[:10]:
        ref = colmap[cam.name]
        assert (cam.width, cam.height) == (ref.width, ref.height)
        # The COLMAP model was converted from scene.mvs with the +0.5 principal-point shift and
        # printed with 6 decimals.
        assert np.allclose(cam.K, ref.K, atol=1e-6)
        assert np.allclose(cam.R, ref.R, atol=1e-9)
        assert np.linalg.norm(cam.center - ref.center) <= 1e-6 * np.linalg.norm(ref.center)


def _mvs_v3(path: Path, width: int = 64, pose_id: int = 0) -> Path:
    """A version-3 interface file: one platform, one camera, one pose, one image (no points)."""
    def string(s: str) -> bytes:
        return struct.pack("<Q", len(s)) + s.encode()

    K = [50.0, 0, 31.5, 0, 50, 23.5, 0, 0, 1]
    R_cam, C_cam = [1.0, 0, 0, 0, 1, 0, 0, 0, 1], [0.0, 0, 0]
    R_pose, C_pose = [0.0, -1, 0, 1, 0, 0, 0, 0, 1], [1.0, 2, 3]
    data = b"MVSI" + struct.pack("<II", 3, 0) + struct.pack("<Q", 1) + string("platform0")
    data += struct.pack("<Q", 1) + string("cam") + struct.pack("<II", width, 48)
    data += struct.pack("<9d", *K) + struct.pack("<9d", *R_cam) + struct.pack("<3d", *C_cam)
    data += struct.pack("<Q", 1) + struct.pack("<9d", *R_pose) + struct.pack("<3d", *C_pose)
    data += struct.pack("<Q", 1) + string("images/a.png") + struct.pack("<IIII", 0, 0, pose_id, 0)
    data += struct.pack("<QQQ", 0, 0, 0)  # no vertices, normals, colours
    path.write_bytes(data)
    return path


def test_mvs_fixture_conventions_and_errors(tmp_path):
    cam, = read_mvs_cameras(_mvs_v3(tmp_path / "scene.mvs"))
    assert cam.name == "a.png" and (cam.width, cam.height) == (64, 48)
    assert np.allclose(cam.K, [[50, 0, 32], [0, 50, 24], [0, 0, 1]])  # OpenMVS centre 31.5 -> +0.5
    assert np.allclose(cam.center, [1, 2, 3]) and np.allclose(cam.R, [[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    xy, depth = cam.project(np.array([[1.0, 2.0, 5.0]]))
    assert np.allclose(xy, [[32, 24]]) and depth[0] == pytest.approx(2)

    data = (tmp_path / "scene.mvs").read_bytes()
    (tmp_path / "cut.mvs").write_bytes(data[:150])
    with pytest.raises(InputError, match=r"cut\.mvs: file is truncated"):
        read_mvs_cameras(tmp_path / "cut.mvs")
    (tmp_path / "new.mvs").write_bytes(b"MVSI" + struct.pack("<II", 9, 0) + data[12:])
    with pytest.raises(InputError, match="interface version 9 is newer than the supported 0..7"):
        read_mvs_cameras(tmp_path / "new.mvs")
    with pytest.raises(InputError, match="normalized intrinsics without a resolution"):
        read_mvs_cameras(_mvs_v3(tmp_path / "norm.mvs", width=0))
    with pytest.raises(InputError, match="no image has a pose"), pytest.warns(UserWarning, match="without a pose"):
        read_mvs_cameras(_mvs_v3(tmp_path / "unposed.mvs", pose_id=0xFFFFFFFF))
    (tmp_path / "x.bin").write_bytes(b"nothing")
    with pytest.raises(InputError, match="not an OpenMVS interface file"):
        read_mvs_cameras(tmp_path / "x.bin")
