"""glTF 2.0 in (rrd_pipeline.loaders.gltf.read_gltf): a .gltf with an external image and .bin, a .glb with two
primitives, two materials (images of different sizes) and node transforms, written here by hand with numpy and
json. The reader must give back the scene they describe (world positions, pages, UVs with t flipped) and it must
render the same through the project's renderer as that scene built directly. Bad input is one line naming
the file."""

from __future__ import annotations

import io
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from rrd.errors import InputError
from rrd.render import rasterize_views, texel_vector, view_taps
from rrd.sample import gather
from rrd.scene import Atlas, TexturedMesh, look_at
from rrd_pipeline.loaders.gltf import read_gltf

COMPONENT = {np.float32: 5126, np.uint8: 5121, np.uint16: 5123, np.uint32: 5125}
TYPE = {1: "SCALAR", 2: "VEC2", 3: "VEC3"}


class Gltf:
    """A glTF put together by hand: one binary buffer of bufferViews, and the JSON around it."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.doc: dict = {"asset": {"version": "2.0", "generator": "tests/test_loaders_gltf.py"},
                          "buffers": [{}], "bufferViews": [], "accessors": [], "images": [], "textures": [],
                          "samplers": [{"magFilter": 9729, "minFilter": 9729, "wrapS": 33071, "wrapT": 33071}],
                          "materials": [], "meshes": [], "nodes": [], "scenes": [{"nodes": []}], "scene": 0}

    def view(self, data: bytes, stride: int = 0) -> int:
        while len(self.blob) % 4:
            self.blob.append(0)
        entry = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if stride:
            entry["byteStride"] = stride
        self.blob += data
        self.doc["bufferViews"].append(entry)
        return len(self.doc["bufferViews"]) - 1

    def accessor(self, array: np.ndarray | None = None, *, view: int | None = None, offset: int = 0,
                 dtype=np.float32, count: int = 0, width: int = 1, normalized: bool = False) -> int:
        """An accessor of a new tightly packed view holding ``array`` (N, width), or of ``view`` at ``offset``."""
        if array is not None:
            array = np.ascontiguousarray(array)
            dtype, count, width = array.dtype.type, len(array), 1 if array.ndim == 1 else array.shape[1]
            view = self.view(array.tobytes())
        entry = {"bufferView": view, "byteOffset": offset, "componentType": COMPONENT[dtype], "count": count,
                 "type": TYPE[width]}
        if normalized:
            entry["normalized"] = True
        if array is not None and width == 3:
            entry["min"], entry["max"] = array.min(axis=0).tolist(), array.max(axis=0).tolist()
        self.doc["accessors"].append(entry)
        return len(self.doc["accessors"]) - 1

    def material(self, image: dict, tex_coord: int = 0) -> int:
        self.doc["images"].append(image)
        self.doc["textures"].append({"sampler": 0, "source": len(self.doc["images"]) - 1})
        info = {"index": len(self.doc["textures"]) - 1}
        if tex_coord:
            info["texCoord"] = tex_coord
        self.doc["materials"].append({"pbrMetallicRoughness": {"baseColorTexture": info, "metallicFactor": 0.0}})
        return len(self.doc["materials"]) - 1

    def node(self, node: dict, root: bool = False) -> int:
        self.doc["nodes"].append(node)
        if root:
            self.doc["scenes"][0]["nodes"].append(len(self.doc["nodes"]) - 1)
        return len(self.doc["nodes"]) - 1

    def glb(self, path: Path) -> Path:
        while len(self.blob) % 4:
            self.blob.append(0)
        self.doc["buffers"][0] = {"byteLength": len(self.blob)}
        text = json.dumps(self.doc).encode()
        text += b" " * (-len(text) % 4)
        body = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(self.blob), 0x004E4942)
        path.write_bytes(b"glTF" + struct.pack("<II", 2, 12 + len(body) + len(self.blob)) + body + bytes(self.blob))
        return path

    def gltf(self, path: Path, bin_name: str) -> Path:
        """The JSON and the binary buffer as ``bin_name`` beside it (a buffer entry already given is kept)."""
        if not self.doc["buffers"][0]:
            self.doc["buffers"][0] = {"uri": bin_name.replace(" ", "%20"), "byteLength": len(self.blob)}
        (path.parent / bin_name).write_bytes(bytes(self.blob))
        path.write_text(json.dumps(self.doc, indent=1))
        return path


def encoded(page: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(page).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) / np.float32(255)


def strip(columns: int, x0: float = 0.0):
    """A strip of ``columns`` quads with relief: vertices (V, 3) float32, triangles (F, 3), texture
    coordinates (V, 2) in [0.05, 0.95] in glTF's convention (t down: the strip's top row at t = 0.05)."""
    x, y = np.meshgrid(np.arange(columns + 1, dtype=np.float64) + x0, [0.0, 1.0])
    z = 0.2 * np.sin(x) * (1 + y)
    vertices = np.stack([x, y, z], axis=-1).reshape(-1, 3).astype(np.float32)
    n = columns + 1
    quads = np.array([[i, i + 1, i + 1 + n, i + n] for i in range(columns)])
    triangles = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    s = 0.05 + 0.9 * (x - x0) / columns
    t = 0.05 + 0.9 * (1.0 - y)
    return vertices, triangles, np.stack([s, t], axis=-1).reshape(-1, 2).astype(np.float32)


def render(mesh: TexturedMesh, atlas: Atlas, eye, target, up) -> torch.Tensor:
    K = np.array([[70.0, 0.0, 80.0], [0.0, 70.0, 40.0], [0.0, 0.0, 1.0]])
    view = rasterize_views(mesh, atlas, [look_at(eye, target, up, K, 160, 80, "v")], "cpu")[0]
    assert len(view.pixels) > 2000 and set(view.tile.unique().tolist()) == set(range(atlas.shape[0]))
    return gather(texel_vector(torch.from_numpy(atlas.tiles)), view_taps(view, atlas.shape))


def assert_same_scene(read, built, eye, target, up):
    (mesh, atlas), (direct_mesh, direct_atlas) = read, built
    np.testing.assert_allclose(mesh.vertices[mesh.faces], direct_mesh.vertices[direct_mesh.faces], atol=1e-5, rtol=0)
    np.testing.assert_allclose(mesh.uv, direct_mesh.uv, atol=1e-6, rtol=0)
    assert atlas.udims == direct_atlas.udims and atlas.sizes == direct_atlas.sizes
    assert atlas.names == direct_atlas.names
    np.testing.assert_array_equal(atlas.tiles, direct_atlas.tiles)
    torch.testing.assert_close(render(mesh, atlas, eye, target, up),
                               render(direct_mesh, direct_atlas, eye, target, up), atol=1e-5, rtol=0)


def local_uv(st: np.ndarray, page: int = 0) -> np.ndarray:
    """glTF (s, t), t down -> the scene's local (s, 1 - t), v up, moved to page ``page``'s tile."""
    return np.stack([st[..., 0] + page, 1.0 - st[..., 1]], axis=-1)


def test_gltf_with_external_bin_and_image_reads_as_built(tmp_path):
    """.gltf + .bin + PNG beside it (names with spaces, percent-encoded), a node ``matrix`` (column-major)."""
    rng = np.random.default_rng(0)
    vertices, triangles, st = strip(6)
    page = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(page).save(tmp_path / "atlas page.png")
    g = Gltf()
    position, texcoord = g.accessor(vertices), g.accessor(st)
    indices = g.accessor(triangles.reshape(-1).astype(np.uint16))
    material = g.material({"uri": "atlas%20page.png"})
    g.doc["meshes"].append({"primitives": [{"attributes": {"POSITION": position, "TEXCOORD_0": texcoord},
                                            "indices": indices, "material": material}]})
    matrix = np.diag([1.5, 1.5, 1.5, 1.0])
    matrix[:3, 3] = [0.5, -1.0, 2.0]
    g.node({"mesh": 0, "matrix": matrix.T.reshape(-1).tolist()}, root=True)
    path = g.gltf(tmp_path / "scene.gltf", "scene data.bin")

    mesh, atlas = read_gltf(path)
    world = vertices * 1.5 + [0.5, -1.0, 2.0]
    direct = (TexturedMesh(world, triangles, local_uv(st[triangles])),
              Atlas.from_pages([page / np.float32(255)], (1001,), ("atlas page.png",)))
    assert_same_scene((mesh, atlas), direct, eye=[5.0, -1.5, 6.5], target=[5.0, 0.0, 2.0], up=[0.0, 1.0, 0.0])


def two_primitive_glb(g: Gltf, rng):
    """Two primitives side by side on two materials: A indexed (uint32) with float UVs on a PNG of 48 x 64;
    B not indexed, positions and normalized uint16 UVs interleaved (byteStride 16), reading TEXCOORD_1 (its
    TEXCOORD_0 is nonsense), on a JPEG of 16 x 32. Returns the pages as read and the geometry of each."""
    pages = [encoded(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), "PNG"),
             encoded(rng.integers(0, 256, (16, 32, 3), dtype=np.uint8), "JPEG")]
    a_vertices, a_triangles, a_st = strip(3)
    b_vertices, b_triangles, b_st = strip(3, x0=3.0)
    b_quantised = np.rint(b_st * 65535).astype(np.uint16)
    b_corners = b_triangles.reshape(-1)
    interleaved = np.zeros(len(b_corners), dtype=[("p", "<f4", 3), ("t", "<u2", 2)])
    interleaved["p"], interleaved["t"] = b_vertices[b_corners], b_quantised[b_corners]
    view = g.view(interleaved.tobytes(), stride=16)
    b_position = g.accessor(view=view, offset=0, dtype=np.float32, count=len(b_corners), width=3)
    g.doc["accessors"][b_position].update(min=b_vertices.min(0).tolist(), max=b_vertices.max(0).tolist())
    b_texcoord = g.accessor(view=view, offset=12, dtype=np.uint16, count=len(b_corners), width=2, normalized=True)
    nonsense = g.accessor(np.full((len(b_corners), 2), 7.0, np.float32))
    materials = [g.material({"bufferView": g.view(pages[0]), "mimeType": "image/png"}),
                 g.material({"bufferView": g.view(pages[1]), "mimeType": "image/jpeg"}, tex_coord=1)]
    g.doc["meshes"].append({"primitives": [
        {"attributes": {"POSITION": g.accessor(a_vertices), "TEXCOORD_0": g.accessor(a_st)},
         "indices": g.accessor(a_triangles.reshape(-1).astype(np.uint32)), "material": materials[0], "mode": 4},
        {"attributes": {"POSITION": b_position, "TEXCOORD_0": nonsense, "TEXCOORD_1": b_texcoord},
         "material": materials[1]}]})
    a = (a_vertices[a_triangles], local_uv(a_st[a_triangles], 0))
    b = (b_vertices[b_triangles], local_uv(b_quantised[b_triangles] / 65535.0, 1))
    return [decoded(p) for p in pages], a, b


def test_glb_with_two_primitives_two_materials_and_node_transforms_reads_as_built(tmp_path):
    rng = np.random.default_rng(1)
    g = Gltf()
    pages, (a_corners, a_uv), (b_corners, b_uv) = two_primitive_glb(g, rng)
    # The mesh node rotates 40 degrees about (1, 1, 1) and translates; its parent scales by 2 and moves.
    rotation = Rotation.from_rotvec(np.deg2rad(40.0) * np.ones(3) / math.sqrt(3.0))
    child = g.node({"mesh": 0, "rotation": rotation.as_quat().tolist(), "translation": [1.0, 2.0, 3.0]})
    g.node({"name": "parent", "scale": [2.0, 2.0, 2.0], "translation": [0.0, 0.0, -1.0], "children": [child]},
           root=True)
    g.node({"name": "not in the scene", "mesh": 0})
    path = g.glb(tmp_path / "model.glb")

    mesh, atlas = read_gltf(path)
    corners = np.concatenate([a_corners, b_corners]).reshape(-1, 3)
    world = (2.0 * (rotation.apply(corners) + [1.0, 2.0, 3.0]) + [0.0, 0.0, -1.0]).reshape(-1, 3, 3)
    direct_mesh = TexturedMesh(world.reshape(-1, 3), np.arange(len(world) * 3).reshape(-1, 3),
                               np.concatenate([a_uv, b_uv]))
    direct_atlas = Atlas.from_pages(pages, (1001, 1002), ("model_0.png", "model_1.jpg"))
    assert atlas.sizes == ((48, 64), (16, 32))
    normal, up = rotation.apply([0.0, 0.0, 1.0]), rotation.apply([0.0, 1.0, 0.0])
    centre = world.reshape(-1, 3).mean(axis=0)
    assert_same_scene((mesh, atlas), (direct_mesh, direct_atlas), eye=centre + 6.5 * normal - 1.0 * up,
                      target=centre, up=up)


def test_khr_texture_transform_is_applied_as_the_extension_writes_it(tmp_path):
    """The extension's own example: offset (0, 1), rotation pi/2, scale 0.5 use the lower-left quarter of the
    image, (s, t) -> (t / 2, 1 - s / 2); its texCoord overrides the texture info's."""
    g = Gltf()
    vertices, triangles, st = strip(2)
    nonsense = g.accessor(np.full_like(st, -3.0))
    g.material({"uri": "page.png"})
    g.doc["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["extensions"] = {
        "KHR_texture_transform": {"offset": [0.0, 1.0], "rotation": math.pi / 2, "scale": [0.5, 0.5], "texCoord": 1}}
    g.doc["extensionsUsed"] = g.doc["extensionsRequired"] = ["KHR_texture_transform"]
    g.doc["meshes"].append({"primitives": [{"attributes": {
        "POSITION": g.accessor(vertices), "TEXCOORD_0": nonsense, "TEXCOORD_1": g.accessor(st)},
        "indices": g.accessor(triangles.reshape(-1).astype(np.uint8)), "material": 0}]})
    g.node({"mesh": 0}, root=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "page.png")
    mesh, _ = read_gltf(g.gltf(tmp_path / "t.gltf", "t.bin"))
    s, t = st[triangles][..., 0], st[triangles][..., 1]
    np.testing.assert_allclose(mesh.uv, np.stack([t / 2, s / 2], axis=-1), atol=1e-6)  # local (s', 1 - t')
    g.doc["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["extensions"]["KHR_texture_transform"][
        "scale"] = [2.0, 2.0]
    with pytest.raises(InputError, match=r"outside \[0, 1\].*rrd does not wrap textures"):
        read_gltf(g.gltf(tmp_path / "t.gltf", "t.bin"))


@pytest.mark.parametrize("mode, faces", [(5, [[0, 1, 2], [1, 3, 2], [2, 3, 4]]),
                                         (6, [[1, 2, 0], [2, 3, 0], [3, 4, 0]])], ids=["strip", "fan"])
def test_strips_and_fans_become_triangles_in_the_specification_order(tmp_path, mode, faces):
    g = Gltf()
    angle = np.linspace(0.0, 2.0, 5)
    vertices = np.c_[np.cos(angle) * (1 + np.arange(5) % 2), np.sin(angle) * (1 + np.arange(5) % 2),
                     np.zeros(5)].astype(np.float32)
    st = (0.5 + 0.2 * vertices[:, :2]).astype(np.float32)
    g.material({"uri": "page.png"})
    g.doc["meshes"].append({"primitives": [{"attributes": {"POSITION": g.accessor(vertices), "TEXCOORD_0":
                                                           g.accessor(st)}, "material": 0, "mode": mode}]})
    g.node({"mesh": 0}, root=True)
    del g.doc["scenes"], g.doc["scene"]  # no scene: every root node is drawn
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "page.png")
    mesh, _ = read_gltf(g.gltf(tmp_path / "s.gltf", "s.bin"))
    np.testing.assert_array_equal(mesh.vertices[mesh.faces], vertices[np.asarray(faces)])


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_what_rrd_writes_reads_back_and_renders_as_the_scene(small_demo, tmp_path, suffix):
    """rrd's own glTF writer (pages of two sizes as PNG, seams split) and this reader invert each other."""
    from test_pages import _split_scene

    from rrd_pipeline.writers.gltf import write_gltf

    scene = _split_scene(small_demo)
    pages = [np.rint(scene.atlas.page(t) * 255).astype(np.uint8) for t in range(2)]
    atlas = Atlas.from_pages([p / np.float32(255) for p in pages], scene.atlas.udims, ("m_0.png", "m_1.png"))
    path = write_gltf(tmp_path / f"m{suffix}", scene.mesh, atlas, [(encoded(p, "PNG"), "image/png") for p in pages])
    mesh, read = read_gltf(path)
    assert read.sizes == atlas.sizes and read.names == atlas.names
    np.testing.assert_array_equal(read.tiles, atlas.tiles)
    order = np.argsort(scene.mesh.face_udim, kind="stable")  # the writer groups the faces by page
    np.testing.assert_array_equal(mesh.vertices[mesh.faces], scene.mesh.vertices[scene.mesh.faces[order]])
    np.testing.assert_allclose(mesh.uv, scene.mesh.uv[order], atol=1e-6, rtol=0)
    for ours, theirs in zip(rasterize_views(mesh, read, scene.cameras, "cpu"),
                            rasterize_views(scene.mesh, atlas, scene.cameras, "cpu")):
        assert len(ours.pixels) > 100
        torch.testing.assert_close(gather(texel_vector(torch.from_numpy(read.tiles)), view_taps(ours, read.shape)),
                                   gather(texel_vector(torch.from_numpy(atlas.tiles)), view_taps(theirs, atlas.shape)),
                                   atol=1e-5, rtol=0)


# -- bad input: one line naming the file ---------------------------------------------------------------


@pytest.fixture
def small_gltf(tmp_path):
    """A valid one-primitive .gltf (indices uint16, .bin and PNG beside it) to break: (builder, write)."""
    g = Gltf()
    vertices, triangles, st = strip(2)
    g.accessor(vertices), g.accessor(st), g.accessor(triangles.reshape(-1).astype(np.uint16))
    g.material({"uri": "page.png"})
    g.doc["meshes"].append({"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "indices": 2,
                                            "material": 0}]})
    g.node({"mesh": 0}, root=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "page.png")
    read_gltf(g.gltf(tmp_path / "m.gltf", "m.bin"))  # the unbroken file reads
    return g, lambda: g.gltf(tmp_path / "m.gltf", "m.bin")


def texture_info(doc):
    return doc["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]


def poke(g: Gltf, view: int, value: bytes) -> None:
    """Overwrite the first bytes of a bufferView."""
    start = g.doc["bufferViews"][view]["byteOffset"]
    g.blob[start:start + len(value)] = value


@pytest.mark.parametrize("change, match", [
    (lambda g: texture_info(g.doc).update(texCoord=1), "mesh 0 primitive 0 has no TEXCOORD_1"),
    (lambda g: g.doc["buffers"].__setitem__(0, {"uri": "data:application/octet-stream;base64,@@@",
                                                "byteLength": 4}), "the data URI of buffer 0 does not decode"),
    (lambda g: g.doc["images"].__setitem__(0, {"uri": "data:image/png;base64,AAAA"}),
     r"image 0 \(image/png, 3 bytes\) does not decode"),
    (lambda g: g.doc["images"].__setitem__(0, {"uri": "data:image/ktx2;base64,AAAA"}),
     "image 0 has the unsupported type 'image/ktx2'"),
    (lambda g: g.doc["bufferViews"][2].update(byteLength=10_000), "bufferView 2 .* runs past its buffer 0"),
    (lambda g: g.doc["accessors"][0].update(count=100), "accessor 0 reads 100 elements .* past its bufferView 0"),
    (lambda g: g.doc["buffers"][0].update(byteLength=10 ** 6), "buffer 0 holds .* bytes, fewer than its byteLength"),
    (lambda g: poke(g, 2, struct.pack("<H", 9)), "mesh 0 primitive 0 has index 9 but 6 vertices"),
    (lambda g: poke(g, 0, struct.pack("<f", math.nan)), "mesh 0 primitive 0 has non-finite positions"),
    (lambda g: poke(g, 1, struct.pack("<f", 1.5)), r"texture coordinates outside \[0, 1\]"),
    (lambda g: g.doc["meshes"][0]["primitives"][0].update(mode=1), "mesh 0 primitive 0 is LINES, not triangles"),
    (lambda g: g.doc["materials"][0]["pbrMetallicRoughness"].pop("baseColorTexture"), "has no baseColorTexture"),
    (lambda g: g.doc["meshes"][0]["primitives"][0].pop("material"), "has no material"),
    (lambda g: g.doc.update(extensionsRequired=["KHR_draco_mesh_compression"]),
     r"requires the extensions \['KHR_draco_mesh_compression'\]"),
    (lambda g: g.doc["nodes"][0].update(mesh=3), r"meshes index 3 is out of range \(the file has 1\)"),
    (lambda g: g.doc["asset"].update(version="1.0"), "not glTF 2.0"),
    (lambda g: g.doc["images"][0].update(uri="gone.png"), r"image 0 \('gone.png'\) is missing"),
], ids=["no-texcoord-set", "bad-data-uri", "image-not-decoding", "unsupported-mime", "view-past-buffer",
        "accessor-past-view", "buffer-short", "index-out-of-range", "nan-position", "uv-outside", "lines",
        "no-base-colour", "no-material", "draco", "bad-reference", "version", "missing-image"])
def test_broken_gltf_is_one_line_naming_the_file(small_gltf, change, match):
    g, write = small_gltf
    change(g)
    path = write()
    with pytest.raises(InputError, match=match) as err:
        read_gltf(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_glb_image_of_an_unsupported_type_is_refused(tmp_path):
    g = Gltf()
    two_primitive_glb(g, np.random.default_rng(2))
    g.node({"mesh": 0}, root=True)
    g.doc["images"][1]["mimeType"] = "image/gif"
    path = g.glb(tmp_path / "m.glb")
    with pytest.raises(InputError, match="image 1 has the unsupported type 'image/gif'"):
        read_gltf(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match=r"the GLB header gives \d+ bytes but the file has 100 \(truncated\)"):
        read_gltf(path)


def test_uris_leaving_the_folder_are_refused_unless_allowed(small_gltf, tmp_path):
    g, write = small_gltf
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "m.bin").rename(tmp_path / "elsewhere" / "m.bin")
    moved = tmp_path / "elsewhere" / "m.bin"
    path = tmp_path / "m.gltf"
    doc = json.loads(path.read_text())
    for uri, match in (("../elsewhere/m.bin", "lies outside the mesh's folder"),
                       (moved.as_uri(), "is a file: URI"), (str(moved), "is an absolute path"),
                       ("http://example.com/m.bin", "http: URI; rrd reads local files only")):
        sub = tmp_path / "sub"
        sub.mkdir(exist_ok=True)
        doc["buffers"][0]["uri"] = uri
        doc["images"][0]["uri"] = "../page.png"
        (sub / "m.gltf").write_text(json.dumps(doc))
        with pytest.raises(InputError, match=match) as err:
            read_gltf(sub / "m.gltf")
        assert str(sub / "m.gltf") in str(err.value)
        if not uri.startswith("http"):
            mesh, atlas = read_gltf(sub / "m.gltf", allow_outside=True)
            assert atlas.names == ("page.png",) and len(mesh.faces) == 4
