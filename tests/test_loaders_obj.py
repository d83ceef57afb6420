"""OBJ meshes as the texturers people use write them (mvs-texturing / OpenDroneMap, OpenMVS's OBJ export,
Agisoft Metashape): any material and texture names, several pages of different sizes, ``map_Kd`` options.
Each reads into the scene model and renders exactly as the same scene built directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rrd.errors import InputError
from rrd.render import rasterize_views, texel_vector, view_taps
from rrd.sample import gather
from rrd.scene import Atlas, TexturedMesh, look_at
from rrd_pipeline.loaders import read_textured_mesh

# Two quads side by side, each on its own material (page), UVs local to the page (v up).
VERTICES = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0], [2, 1, 0]], dtype=np.float32)
UV = np.array([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]], dtype=np.float32)


def _pages(rng):
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)]


def write_mesh(folder, materials, textures, map_kd_prefix="", mtl_name="mesh.mtl", pages=None):
    """An OBJ with the two quads, material k naming textures[k], and the pages written as PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, page in zip(textures, pages):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(page).save(folder / name)
    mtl = "".join(f"newmtl {m}\nKa 1 1 1\nKd 1 1 1\n{map_kd_prefix}map_Kd {opt}{t}\n\n"
                  for m, t, opt in zip(materials, textures, ("-s 1 1 1 ", "-bm 0.5 -clamp on ")))
    (folder / mtl_name).write_text(mtl)
    lines = [f"mtllib {mtl_name}"] + [f"v {x} {y} {z}" for x, y, z in VERTICES]
    lines += [f"vt {u} {v}" for u, v in UV]
    lines += [f"usemtl {materials[0]}", "f 1/1 2/2 3/3 4/4",       # a quad: split into a fan
              f"usemtl {materials[1]}", "f -5/-4 -2/-3 -1/-2"]     # negative indices
    (folder / "mesh.obj").write_text("\n".join(lines) + "\n")
    return folder / "mesh.obj"


def direct_scene(pages):
    """The same mesh built directly: page k is UDIM 1001 + k (u shifted by k)."""
    faces = np.array([[0, 1, 2], [0, 2, 3], [1, 4, 5]])
    uv = np.stack([UV[[0, 1, 2]], UV[[0, 2, 3]], UV[[0, 1, 2]] + [1.0, 0.0]]).astype(np.float32)
    atlas = Atlas.from_pages([p.astype(np.float32) / 255 for p in pages], (1001, 1002), ("a", "b"))
    return TexturedMesh(VERTICES, faces, uv), atlas


def renders(mesh, atlas):
    K = np.array([[120.0, 0, 64], [0, 120.0, 32], [0, 0, 1]])
    camera = look_at([1.0, 0.5, 2.0], [1.0, 0.5, 0.0], [0.0, -1.0, 0.0], K, 128, 64, "c")
    view = rasterize_views(mesh, atlas, [camera], "cpu")[0]
    assert len(view.pixels) > 2000  # both quads in the image
    return gather(texel_vector(torch.from_numpy(atlas.tiles)), view_taps(view, atlas.shape))


@pytest.mark.parametrize("materials, textures, prefix", [
    (["material0000", "material0001"], ["result_material0000_map_Kd.png", "result_material0001_map_Kd.png"], ""),
    (["mesh_material_0", "mesh_material_1"], ["mesh_material_0_map_Kd.png", "mesh_material_1_map_Kd.png"], ""),
    (["material0", "material1"], ["tex 0.png", "sub/tex 1.png"], ""),   # Metashape: spaces, a subfolder
], ids=["mvs-texturing", "openmvs-obj", "metashape"])
def test_texturer_objs_read_as_pages_of_their_own_sizes_and_render_as_built(tmp_path, materials, textures, prefix):
    pages = _pages(np.random.default_rng(0))
    mesh, atlas = read_textured_mesh(write_mesh(tmp_path, materials, textures, prefix, pages=pages))
    assert atlas.udims == (1001, 1002) and atlas.sizes == ((48, 64), (16, 32))
    assert atlas.names == tuple(t.split("/")[-1] for t in textures)
    np.testing.assert_array_equal(np.rint(atlas.page(1) * 255).astype(np.uint8), pages[1])
    direct_mesh, direct_atlas = direct_scene(pages)
    np.testing.assert_array_equal(mesh.faces, direct_mesh.faces)
    np.testing.assert_allclose(mesh.uv, direct_mesh.uv, atol=1e-6)
    torch.testing.assert_close(renders(mesh, atlas), renders(direct_mesh, direct_atlas), atol=1e-5, rtol=0)


def test_a_texture_outside_the_mesh_folder_is_refused(tmp_path):
    pages = _pages(np.random.default_rng(1))
    outside = tmp_path / "secret.png"
    Image.fromarray(pages[0]).save(outside)
    obj = write_mesh(tmp_path / "m", ["a", "b"], ["a.png", "b.png"], pages=pages)
    (tmp_path / "m" / "mesh.mtl").write_text("newmtl a\nmap_Kd ../secret.png\nnewmtl b\nmap_Kd b.png\n")
    with pytest.raises(InputError, match="lies outside the mesh's folder"):
        read_textured_mesh(obj)
    (tmp_path / "m" / "mesh.mtl").write_text(f"newmtl a\nmap_Kd {outside}\nnewmtl b\nmap_Kd b.png\n")
    with pytest.raises(InputError, match="is not a path relative to the mesh"):
        read_textured_mesh(obj)


def test_missing_page_and_faces_without_uv_name_the_file(tmp_path):
    pages = _pages(np.random.default_rng(2))
    obj = write_mesh(tmp_path, ["a", "b"], ["a.png", "b.png"], pages=pages)
    (tmp_path / "b.png").unlink()
    with pytest.raises(InputError, match="b.png"):
        read_textured_mesh(obj)
    obj.write_text(obj.read_text().replace("f 1/1 2/2 3/3 4/4", "f 1 2 3"))
    with pytest.raises(InputError, match="mesh.obj:.*has no texture coordinate"):
        read_textured_mesh(obj)
