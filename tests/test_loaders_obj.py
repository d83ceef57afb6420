"""Any textured OBJ (rrd_pipeline.loaders.obj.read_obj), as the texturers people use write it: mvs-texturing /
OpenDroneMap, OpenMVS's OBJ export, Agisoft Metashape. Each fixture is written here from a scene built
directly; the reader must give back that scene (positions, per-corner UVs on UDIM pages, page pixels and
sizes) and it must render the same through the project's renderer. Bad input is one line naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rrd.errors import InputError
from rrd.render import rasterize_views, texel_vector, view_taps
from rrd.sample import gather
from rrd.scene import Atlas, TexturedMesh, look_at
from rrd_pipeline.loaders.obj import read_obj
from rrd_pipeline.writers import write_image

COLUMNS = 6  # quads in a row; quad i lies on page i % pages


def grid(pages: int, rng: np.random.Generator):
    """A 6 x 1 strip of quads with some relief, and each quad's corner UVs: a random rectangle in [0, 1].

    Returns:
        vertices (V, 3), quads (Q, 4) vertex indices, quad_uv (Q, 4, 2) local UVs (v up), quad_page (Q,).
    """
    x, y = np.meshgrid(np.arange(COLUMNS + 1, dtype=np.float64), [0.0, 1.0])
    z = 0.2 * np.sin(x) * (1 + y)
    vertices = np.stack([x, y, z], axis=-1).reshape(-1, 3)
    quads = np.array([[i, i + 1, i + 2 + COLUMNS, i + 1 + COLUMNS] for i in range(COLUMNS)])
    lo = rng.uniform(0.02, 0.4, (COLUMNS, 2))
    hi = rng.uniform(0.6, 0.98, (COLUMNS, 2))
    quad_uv = np.stack([lo, np.c_[hi[:, 0], lo[:, 1]], hi, np.c_[lo[:, 0], hi[:, 1]]], axis=1)
    return vertices, quads, quad_uv, np.arange(COLUMNS) % pages


def direct_scene(vertices, quads, quad_uv, quad_page, pages, names):
    """The scene the OBJ describes, built directly: each quad fanned into (a, b, c), (a, c, d) in file order,
    page k at UDIM 1001 + k (u moved by k)."""
    faces = np.stack([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]], axis=1).reshape(-1, 3)
    uv = np.stack([quad_uv[:, [0, 1, 2]], quad_uv[:, [0, 2, 3]]], axis=1).reshape(-1, 3, 2)
    uv[..., 0] += np.repeat(quad_page, 2)[:, None]
    mesh = TexturedMesh(vertices, faces, uv)
    return mesh, Atlas.from_pages(pages, tuple(1001 + k for k in range(len(pages))), tuple(names))


def write_obj(folder: Path, vertices, quads, quad_uv, quad_page, materials, *, mtl="mesh.mtl",
              map_kd=None, negative=False, normals=False, vertex_colours=False) -> Path:
    """An OBJ of the quads (one ``vt`` per quad corner), ``usemtl materials[page]`` before each quad."""
    lines = ["# written by tests/test_loaders_obj.py", f"mtllib {mtl}", "o mesh", "g part"]
    colour = " 0.5 0.25 1" if vertex_colours else ""
    lines += [f"v {float(x)!r} {float(y)!r} {float(z)!r}{colour}" for x, y, z in vertices]
    lines += [f"vt {float(u)!r} {float(v)!r}" for u, v in quad_uv.reshape(-1, 2)]
    if normals:
        lines += ["vn 0 0 1"]
    n_v, n_vt = len(vertices), quad_uv.shape[0] * 4
    lines.append("s off")
    for q, (quad, page) in enumerate(zip(quads, quad_page)):
        lines.append(f"usemtl {materials[page]}")
        corners = []
        for c in range(4):
            v, vt = quad[c] + 1, 4 * q + c + 1
            if negative:
                v, vt = v - n_v - 1, vt - n_vt - 1
            corners.append(f"{v}/{vt}" + ("/1" if normals else ""))
        lines.append("f " + " ".join(corners))
    obj = folder / "mesh.obj"
    obj.write_text("\n".join(lines) + "\n")
    if map_kd is not None:
        (folder / mtl).write_text("".join(f"newmtl {m}\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nd 1.0\n"
                                          f"illum 2\nmap_Kd {t}\n\n" for m, t in zip(materials, map_kd)))
    return obj


def random_page(rng, height, width) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def render(mesh: TexturedMesh, atlas: Atlas) -> torch.Tensor:
    """Bilinear samples of the atlas at every covered pixel of one oblique view of the strip."""
    K = np.array([[70.0, 0.0, 80.0], [0.0, 70.0, 40.0], [0.0, 0.0, 1.0]])
    camera = look_at([3.0, -0.6, 2.6], [3.0, 0.5, 0.0], [0.0, 1.0, 0.0], K, 160, 80, "oblique")
    view = rasterize_views(mesh, atlas, [camera], "cpu")[0]
    assert len(view.pixels) > 3000 and set(view.tile.unique().tolist()) == set(range(atlas.shape[0]))
    return gather(texel_vector(torch.from_numpy(atlas.tiles)), view_taps(view, atlas.shape))


def assert_same_scene(read, built):
    (mesh, atlas), (direct_mesh, direct_atlas) = read, built
    np.testing.assert_array_equal(mesh.vertices, direct_mesh.vertices)
    np.testing.assert_array_equal(mesh.faces, direct_mesh.faces)
    np.testing.assert_allclose(mesh.uv, direct_mesh.uv, atol=1e-6, rtol=0)
    assert atlas.udims == direct_atlas.udims and atlas.sizes == direct_atlas.sizes
    assert atlas.names == direct_atlas.names
    np.testing.assert_array_equal(atlas.tiles, direct_atlas.tiles)
    torch.testing.assert_close(render(mesh, atlas), render(direct_mesh, direct_atlas), atol=1e-5, rtol=0)


def test_mvs_texturing_obj_reads_two_pages_of_their_own_sizes(tmp_path):
    """mvs-texturing / OpenDroneMap: material0000, result_material0000_map_Kd.png; the last page smaller."""
    rng = np.random.default_rng(0)
    vertices, quads, quad_uv, quad_page = grid(2, rng)
    pages = [random_page(rng, 48, 64), random_page(rng, 16, 32)]
    names = [f"result_material000{k}_map_Kd.png" for k in range(2)]
    for name, page in zip(names, pages):
        Image.fromarray(page).save(tmp_path / name)
    obj = write_obj(tmp_path, vertices, quads, quad_uv, quad_page, ["material0000", "material0001"],
                    mtl="result.mtl", map_kd=names, normals=True)
    mesh, atlas = read_obj(obj)
    assert atlas.sizes == ((48, 64), (16, 32)) and atlas.udims == (1001, 1002)
    assert_same_scene((mesh, atlas), direct_scene(vertices, quads, quad_uv, quad_page,
                                                  [p / np.float32(255) for p in pages], names))


def test_openmvs_obj_export_reads_its_jpeg_pages(tmp_path):
    """OpenMVS TextureMesh --export-type obj: <name>_material_<i>_map_Kd.jpg."""
    rng = np.random.default_rng(1)
    vertices, quads, quad_uv, quad_page = grid(2, rng)
    names = [f"scene_dense_mesh_texture_material_{k}_map_Kd.jpg" for k in range(2)]
    for name, size in zip(names, ((40, 56), (24, 24))):
        Image.fromarray(random_page(rng, *size)).save(tmp_path / name, quality=90)
    decoded = [np.asarray(Image.open(tmp_path / n).convert("RGB")) / np.float32(255) for n in names]
    obj = write_obj(tmp_path, vertices, quads, quad_uv, quad_page,
                    [f"scene_dense_mesh_texture_material_{k}" for k in range(2)],
                    mtl="scene_dense_mesh_texture.mtl", map_kd=names)
    assert_same_scene(read_obj(obj), direct_scene(vertices, quads, quad_uv, quad_page, decoded, names))


def test_metashape_obj_with_options_spaces_negative_indices_and_four_page_formats(tmp_path):
    """Agisoft Metashape: material0..3, map_Kd with options, names with spaces and a subfolder, vertex colours,
    negative indices, quads; pages as PNG, TIFF, lossless WebP and OpenEXR."""
    rng = np.random.default_rng(2)
    vertices, quads, quad_uv, quad_page = grid(4, rng)
    sizes = ((32, 32), (20, 36), (16, 8), (12, 24))
    pages = [random_page(rng, *s) for s in sizes]
    names = ["model tex 0.png", "textures/model tex 1.tif", "model_2.webp", "model_3.exr"]
    (tmp_path / "textures").mkdir()
    Image.fromarray(pages[0]).save(tmp_path / names[0])
    Image.fromarray(pages[1]).save(tmp_path / names[1])
    Image.fromarray(pages[2]).save(tmp_path / names[2], lossless=True)
    write_image(tmp_path / names[3], pages[3] / np.float32(255))
    options = ["-s 1 1 1 ", "-o 0 0 0 -bm 0.5 ", "-clamp on -blendu off ", "-mm 0 1 -imfchan l "]
    obj = write_obj(tmp_path, vertices, quads, quad_uv, quad_page, [f"material{k}" for k in range(4)],
                    mtl="my model.mtl", map_kd=[o + n for o, n in zip(options, names)], negative=True,
                    vertex_colours=True)
    mesh, atlas = read_obj(obj)
    assert atlas.names == tuple(names) and atlas.sizes == sizes
    assert_same_scene((mesh, atlas), direct_scene(vertices, quads, quad_uv, quad_page,
                                                  [p / np.float32(255) for p in pages], names))


def test_pages_follow_first_use_and_a_shared_texture_is_one_page(tmp_path):
    """Materials used in the order b, a, c where c names a's file: two pages, b's first (UDIM 1001)."""
    rng = np.random.default_rng(3)
    vertices, quads, quad_uv, _ = grid(3, rng)
    quad_page = np.array([0, 1, 2, 0, 1, 2])  # materials b, a, c
    pages = [random_page(rng, 8, 8), random_page(rng, 16, 8)]
    for name, page in zip(["b.png", "a.png"], pages):
        Image.fromarray(page).save(tmp_path / name)
    obj = write_obj(tmp_path, vertices, quads, quad_uv, quad_page, ["b", "a", "c"], map_kd=["b.png", "a.png",
                                                                                           "./a.png"])
    mesh, atlas = read_obj(obj)
    assert atlas.names == ("b.png", "a.png") and atlas.sizes == ((8, 8), (16, 8))
    assert mesh.face_udim.tolist() == [1001, 1001, 1002, 1002, 1002, 1002] * 2


def test_a_windows_written_single_material_obj_reads(tmp_path):
    """Backslashes in map_Kd (written on Windows), faces before any usemtl with a one-material library,
    ``v/vt/vn`` corners: one page."""
    rng = np.random.default_rng(5)
    vertices, quads, quad_uv, quad_page = grid(1, rng)
    page = random_page(rng, 24, 40)
    (tmp_path / "tex").mkdir()
    Image.fromarray(page).save(tmp_path / "tex" / "page 0.png")
    obj = write_obj(tmp_path, vertices, quads, quad_uv, quad_page, ["only"], normals=True)
    edit(obj, "usemtl only\n", "", count=-1)
    (tmp_path / "mesh.mtl").write_text("newmtl only\nmap_Kd tex\\page 0.png\n")
    assert_same_scene(read_obj(obj), direct_scene(vertices, quads, quad_uv, quad_page, [page / np.float32(255)],
                                                  ["tex/page 0.png"]))


# -- bad input: one line naming the file ---------------------------------------------------------------


@pytest.fixture
def small_obj(tmp_path):
    """A valid two-page mvs-texturing-style OBJ to break."""
    rng = np.random.default_rng(4)
    vertices, quads, quad_uv, quad_page = grid(2, rng)
    for name in ("a.png", "b.png"):
        Image.fromarray(random_page(rng, 8, 8)).save(tmp_path / name)
    obj = write_obj(tmp_path, vertices, quads, quad_uv, quad_page, ["a", "b"], map_kd=["a.png", "b.png"])
    read_obj(obj)  # the unbroken file reads
    return obj


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, count))


def refused(path: Path, match: str, named: Path | None = None, **kwargs) -> str:
    with pytest.raises(InputError, match=match) as err:
        read_obj(path, **kwargs)
    message = str(err.value)
    assert str(named or path) in message and "\n" not in message
    return message


def test_a_missing_mtl_is_refused(small_obj):
    (small_obj.parent / "mesh.mtl").unlink()
    refused(small_obj, r"material library 'mesh.mtl' \(line 2\) is missing")
    edit(small_obj, "mtllib mesh.mtl\n", "")
    refused(small_obj, "no 'mtllib' line")


def test_a_missing_page_is_refused(small_obj):
    (small_obj.parent / "b.png").unlink()
    refused(small_obj, r"texture 'b.png' of material 'b' \(mesh.mtl line \d+\) is missing")


def test_a_page_that_does_not_decode_is_refused(small_obj):
    (small_obj.parent / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    refused(small_obj, "cannot decode the image", named=small_obj.parent / "b.png")


def test_faces_without_uv_or_texture_are_refused(small_obj):
    edit(small_obj, "f 1/1 2/2 9/3 8/4", "f 1 2 9 8")
    refused(small_obj, r"mesh.obj:\d+: face corner '1' has no texture coordinate")
    edit(small_obj, "f 1 2 9 8", "f 1//1 2//1 9//1 8//1")
    refused(small_obj, "face corner '1//1' has no texture coordinate")
    edit(small_obj, "f 1//1 2//1 9//1 8//1", "f 1/1 2/2 9/3 8/4")
    edit(small_obj.parent / "mesh.mtl", "map_Kd b.png", "")
    refused(small_obj, "material 'b' has no texture")
    edit(small_obj, "usemtl b", "usemtl nowhere")
    refused(small_obj, "material 'nowhere' is not defined in mesh.mtl")


def test_a_texture_outside_the_mesh_folder_is_refused_unless_allowed(small_obj):
    folder = small_obj.parent
    elsewhere = folder.parent / f"{folder.name}-secret.png"
    Image.fromarray(np.full((4, 4, 3), 7, np.uint8)).save(elsewhere)
    mtl = folder / "mesh.mtl"
    edit(mtl, "map_Kd a.png", f"map_Kd ../{elsewhere.name}")
    refused(small_obj, "lies outside the mesh's folder")
    mesh, atlas = read_obj(small_obj, allow_outside=True)
    assert atlas.names == (elsewhere.name, "b.png") and atlas.page(0).max() == np.float32(7 / 255)
    for written, match in ((str(elsewhere), "is an absolute path"), (elsewhere.as_uri(), "is a file: URI"),
                           ("http://example.com/a.png", "http: URI; rrd reads local files only")):
        mtl.write_text(f"newmtl a\nmap_Kd {written}\nnewmtl b\nmap_Kd b.png\n")
        refused(small_obj, match)
    mtl.write_text(f"newmtl a\nmap_Kd {elsewhere.as_uri()}\nnewmtl b\nmap_Kd b.png\n")
    assert read_obj(small_obj, allow_outside=True)[1].names[0] == elsewhere.name
    (folder / "link.png").symlink_to(elsewhere)
    mtl.write_text("newmtl a\nmap_Kd link.png\nnewmtl b\nmap_Kd b.png\n")
    refused(small_obj, "outside the mesh's folder")
    edit(small_obj, "mtllib mesh.mtl", f"mtllib ../{folder.name}/../x.mtl")
    refused(small_obj, "material library .* lies outside the mesh's folder")


@pytest.mark.parametrize("old, new, match", [
    ("v 0.0 0.0 0.0", "v nan 0.0 0.0", "1 vertices are not finite"),
    ("v 0.0 0.0 0.0", "v 0.0 zero 0.0", r"mesh.obj:5: vertex '0.0 zero 0.0' is not 3 numbers"),
    ("v 0.0 0.0 0.0", "v 0.0 0.0", r"mesh.obj:5: vertex '0.0 0.0' is not 3 numbers"),
    ("f 1/1 2/2 9/3 8/4", "f 1/1 2/2 99/3 8/4", r"mesh.obj:\d+: a face indexes vertices the file does not have "
                                                r"\(it has 14\); 2 faces do"),
    ("f 1/1 2/2 9/3 8/4", "f 1/1 2/2 9/30 8/4", "a face indexes texture coordinates the file does not have"),
    ("f 1/1 2/2 9/3 8/4", "f 1/1 2/2 -99/3 8/4", "a face indexes vertices the file does not have"),
    ("f 1/1 2/2 9/3 8/4", "f 0/1 2/2 9/3 8/4", "vertex index 0"),
    ("f 1/1 2/2 9/3 8/4", "f 1/1 2/2", "malformed line 'f 1/1 2/2'"),
    ("vt 0.", "vt 1.5", r"a face has UVs outside \[0, 1\]"),
    ("vt 0.", "vt inf 0.5 #", "a face has non-finite UVs"),  # "#..." is read as the ignored w
], ids=["nan-vertex", "bad-number", "two-numbers", "missing-vertex", "missing-uv", "negative-too-far", "index-0",
        "two-corners", "uv-outside", "inf-uv"])
def test_broken_geometry_is_one_line_naming_the_file(small_obj, old, new, match):
    edit(small_obj, old, new)
    refused(small_obj, match)


def test_an_obj_without_faces_or_a_mapping_option_is_refused(small_obj):
    edit(small_obj.parent / "mesh.mtl", "map_Kd b.png", "map_Kd -s 2 2 1 b.png")
    refused(small_obj, r"map_Kd option -s 2 2 1 of material 'b' changes the texture's mapping",
            named=small_obj.parent / "mesh.mtl")
    small_obj.write_text("mtllib mesh.mtl\nv 0 0 0\n")
    refused(small_obj, "has no faces")
    small_obj.unlink()
    refused(small_obj, "OBJ file not found")
