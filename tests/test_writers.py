"""Writers: atomic replacement, image/atlas round trips, OBJ and PLY round trips through the loaders."""

from __future__ import annotations

import numpy as np
import pytest

from rrd.errors import InputError
from rrd.scene import Atlas, TexturedMesh
from rrd_pipeline.loaders import read_atlas, read_image, read_meshroom_obj, read_openmvs_ply
from rrd_pipeline.writers import atomic_write, write_atlas, write_image, write_obj, write_ply


def _mesh_and_atlas(udims: tuple[int, ...]) -> tuple[TexturedMesh, Atlas]:
    """A strip of quads, faces cycling through ``udims`` so that ``usemtl`` must switch back and forth."""
    rng = np.random.default_rng(0)
    n_quads = 6
    xs = np.arange(n_quads + 1, dtype=np.float32)
    vertices = np.concatenate([np.stack([xs, np.zeros_like(xs), xs * 0.1], 1),
                               np.stack([xs, np.ones_like(xs), -xs * 0.1], 1)])
    top = n_quads + 1
    faces, uv = [], []
    for q in range(n_quads):
        for tri in ([q, q + 1, top + q + 1], [q, top + q + 1, top + q]):
            tile = udims[len(faces) % len(udims)] - 1001
            faces.append(tri)
            local = rng.uniform(0.05, 0.95, (3, 2)).astype(np.float32)
            uv.append(local + np.array([tile % 10, tile // 10], dtype=np.float32))
    tiles = rng.random((len(udims), 8, 8, 3)).astype(np.float32)
    names = tuple(f"texture_{u}.png" for u in udims)
    return TexturedMesh(vertices, np.array(faces), np.array(uv)), Atlas(tiles, udims, names)


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".txt"
        tmp.write_text("first")
        assert not target.exists()  # nothing under the final name until the body finished
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]  # no temporary left behind
    assert oct(target.stat().st_mode & 0o044) != "0o0"  # ordinary permissions, not owner-only


def test_write_image_png_float_and_uint8(tmp_path):
    values = np.random.default_rng(1).random((5, 6, 3)).astype(np.float32)
    write_image(tmp_path / "f.png", values)
    assert np.array_equal(read_image(tmp_path / "f.png"), np.rint(values * 255).astype(np.uint8))
    pixels = (values * 255).astype(np.uint8)
    write_image(tmp_path / "u.tif", pixels)
    assert np.array_equal(read_image(tmp_path / "u.tif"), pixels)
    write_image(tmp_path / "f.exr", values * 2)
    assert np.array_equal(read_image(tmp_path / "f.exr"), values * 2)
    write_image(tmp_path / "j.jpg", pixels, jpeg_quality=95)
    assert read_image(tmp_path / "j.jpg").shape == (5, 6, 3)


def test_write_image_rejects_bad_input(tmp_path):
    with pytest.raises(InputError, match=r"unknown image file ending '\.gif'"):
        write_image(tmp_path / "a.gif", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(InputError, match=r"shape \(2, 2\), expected \(H, W, 3\)"):
        write_image(tmp_path / "a.png", np.zeros((2, 2), np.uint8))


def test_write_atlas_round_trip(tmp_path):
    tiles = np.random.default_rng(2).random((2, 4, 4, 3)).astype(np.float32)
    atlas = Atlas(tiles, (1001, 1002), ("texture_1001.png", "texture_1002.exr"))
    paths = write_atlas(tmp_path, atlas)
    back = read_atlas(paths, atlas.udims)
    assert back.names == atlas.names
    assert np.array_equal(back.tiles[0], np.rint(tiles[0] * 255) / np.float32(255))
    assert np.array_equal(back.tiles[1], tiles[1])
    with pytest.raises(InputError, match=r"'texture_1001\.jpg'.*JPEG would change the atlas"):
        write_atlas(tmp_path, Atlas(tiles[:1], (1001,), ("texture_1001.jpg",)))


@pytest.mark.parametrize("convention", ["alicevision3", "legacy"])
def test_obj_round_trip(tmp_path, convention):
    mesh, atlas = _mesh_and_atlas((1001, 1002, 1011))
    path = write_obj(tmp_path / "texturedMesh.obj", mesh, atlas, convention)
    text = path.read_text()
    prefix = "material_" if convention == "alicevision3" else "TextureAtlas_"
    assert f"usemtl {prefix}1011" in text and (tmp_path / "texturedMesh.mtl").is_file()
    stored = np.array([line.split()[1:] for line in text.splitlines() if line.startswith("v ")], dtype=np.float32)
    sign = [1, -1, -1] if convention == "alicevision3" else [1, 1, 1]  # AliceVision >= 3.0 stores (x, -y, -z)
    assert np.array_equal(stored, mesh.vertices * np.float32(sign))
    back, back_atlas = read_meshroom_obj(path)
    assert np.array_equal(back.vertices, mesh.vertices)
    assert np.array_equal(back.faces, mesh.faces) and np.array_equal(back.uv, mesh.uv)
    assert back_atlas.udims == atlas.udims
    assert np.array_equal(back_atlas.tiles, np.rint(atlas.tiles * 255) / np.float32(255))


def test_ply_round_trip(tmp_path):
    mesh, atlas = _mesh_and_atlas((1001, 1002, 1003))
    path = write_ply(tmp_path / "scene_mesh_texture.ply", mesh, atlas)
    back, textures = read_openmvs_ply(path)
    assert textures == [str(tmp_path / n) for n in atlas.names]
    assert np.array_equal(back.vertices, mesh.vertices) and np.array_equal(back.faces, mesh.faces)
    assert np.array_equal(back.uv, mesh.uv)


def test_mesh_writers_reject_faces_without_a_tile(tmp_path):
    mesh, atlas = _mesh_and_atlas((1001, 1002))
    lonely = Atlas(atlas.tiles[:1], (1001,), atlas.names[:1])
    with pytest.raises(InputError, match=r"faces use UDIM tiles \[1002\] that the atlas \(tiles \[1001\]\) lacks"):
        write_obj(tmp_path / "m.obj", mesh, lonely)
    with pytest.raises(InputError, match=r"faces use UDIM tiles \[1002\]"):
        write_ply(tmp_path / "m.ply", mesh, lonely)
    with pytest.raises(InputError, match="OBJ convention 'blender' is unknown; expected one of alicevision3, legacy"):
        write_obj(tmp_path / "m.obj", mesh, atlas, "blender")
    assert not any(tmp_path.iterdir())
