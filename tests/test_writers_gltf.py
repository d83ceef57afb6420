"""glTF writer: GLB / .gltf layout, the page bytes embedded as given, a geometry round trip through the
written accessors, image extensions, bad input, and the Khronos glTF-Validator where node and npm work."""

from __future__ import annotations

import base64
import io
import json
import shutil
import struct
import subprocess

import numpy as np
import pytest
from PIL import Image, features

from rrd.errors import InputError
from rrd.scene import Atlas, TexturedMesh
from rrd_pipeline.writers.gltf import write_gltf

pygltflib = pytest.importorskip("pygltflib")

_COMPONENTS = {5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}


def _encode(page: np.ndarray, fmt: str) -> bytes:
    """A (h, w, 3) float page in [0, 1] coded by Pillow as ``fmt`` (JPEG, PNG, WEBP, AVIF)."""
    out = io.BytesIO()
    Image.fromarray(np.rint(page * 255).astype(np.uint8)).save(out, format=fmt)
    return out.getvalue()


def _images(atlas: Atlas, fmt: str = "JPEG", mime: str = "image/jpeg") -> list[tuple[bytes, str]]:
    return [(_encode(atlas.page(t), fmt), mime) for t in range(len(atlas.udims))]


@pytest.fixture(scope="module")
def two_pages(small_demo) -> tuple[TexturedMesh, Atlas]:
    """The small demo mesh with the faces of the right half of its 256x256 page moved to a second page
    of 128x64 texels (UDIM 1002), as tests/test_pages.py splits it: pages of two sizes."""
    mesh, page = small_demo.mesh, small_demo.atlas.page(0)
    right = mesh.uv[:, :, 0].min(axis=1) >= 0.5
    uv = mesh.uv.copy()
    uv[right, :, 0] = 1.0 + (uv[right, :, 0] - 0.5) * 2.0
    half = np.asarray(Image.fromarray(np.rint(page[:, 128:] * 255).astype(np.uint8)).resize((64, 128)),
                      dtype=np.float32) / 255
    atlas = Atlas.from_pages([page, half], (1001, 1002), ("texture_1001.png", "texture_1002.png"))
    split = TexturedMesh(mesh.vertices, mesh.faces, uv)
    assert 0 < right.sum() < len(mesh.faces) and set(split.face_udim.tolist()) == {1001, 1002}
    return split, atlas


def _load(path) -> tuple[dict, bytes]:
    """(the JSON document as written, the buffer as pygltflib reads it) of a .glb or .gltf file."""
    gltf = pygltflib.GLTF2.load(str(path))
    if path.suffix == ".glb":
        # pygltflib's own JSON fills in defaults: the document is read from the JSON chunk as written.
        (json_length,) = struct.unpack_from("<I", path.read_bytes(), 12)
        return json.loads(path.read_bytes()[20:20 + json_length]), gltf.binary_blob()
    document = json.loads(path.read_text())
    prefix = "data:application/octet-stream;base64,"
    uri = gltf.buffers[0].uri
    assert uri.startswith(prefix)
    return document, base64.b64decode(uri[len(prefix):], validate=True)


def _accessor(document: dict, blob: bytes, index: int) -> np.ndarray:
    """Accessor ``index`` as a (count, components) or (count,) array (tightly packed views only)."""
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    assert "byteStride" not in view
    dtype = np.dtype(_COMPONENTS[accessor["componentType"]]).newbyteorder("<")
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    width = _WIDTH[accessor["type"]]
    values = np.frombuffer(blob, dtype=dtype, count=accessor["count"] * width, offset=start)
    return values.reshape(-1, width) if width > 1 else values


def _image_bytes(document: dict, blob: bytes, index: int) -> bytes:
    view = document["bufferViews"][document["images"][index]["bufferView"]]
    return blob[view.get("byteOffset", 0):view.get("byteOffset", 0) + view["byteLength"]]


def _corners(document: dict, blob: bytes) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Per primitive: (material, (k, 3, 3) corner positions, (k, 3, 2) corner glTF UVs)."""
    out = []
    for primitive in document["meshes"][0]["primitives"]:
        assert primitive.get("mode", 4) == 4
        indices = _accessor(document, blob, primitive["indices"]).astype(np.int64)
        positions = _accessor(document, blob, primitive["attributes"]["POSITION"])
        uv = _accessor(document, blob, primitive["attributes"]["TEXCOORD_0"])
        out.append((primitive["material"], positions[indices].reshape(-1, 3, 3), uv[indices].reshape(-1, 3, 2)))
    return out


def test_glb_opens_in_pygltflib_and_trimesh_with_the_page_bytes_embedded_exactly(two_pages, tmp_path):
    mesh, atlas = two_pages
    images = _images(atlas)
    path = write_gltf(tmp_path / "asset.glb", mesh, atlas, images)
    document, blob = _load(path)
    gltf = pygltflib.GLTF2.load(str(path))
    assert (len(gltf.meshes), len(gltf.meshes[0].primitives), len(gltf.images)) == (1, 2, 2)
    assert gltf.asset.version == "2.0" and gltf.asset.generator == "rrd"
    assert [_image_bytes(document, blob, i) for i in range(2)] == [data for data, _ in images]
    assert [image["mimeType"] for image in document["images"]] == ["image/jpeg"] * 2
    assert document["samplers"] == [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}]
    assert [t["source"] for t in document["textures"]] == [0, 1]
    for page, material in enumerate(document["materials"]):
        assert material["pbrMetallicRoughness"] == {"baseColorTexture": {"index": page}, "metallicFactor": 0.0,
                                                    "roughnessFactor": 1.0}
        assert material["extensions"] == {"KHR_materials_unlit": {}}
    assert document["extensionsUsed"] == ["KHR_materials_unlit"] and "extensionsRequired" not in document

    trimesh = pytest.importorskip("trimesh")
    assert len(trimesh.load(path, force="mesh").faces) == len(mesh.faces)
    scene = trimesh.load(path)
    parts = list(scene.geometry.values())
    assert sorted(len(g.faces) for g in parts) == sorted(np.bincount(atlas.tile_index(mesh.face_udim)).tolist())
    # Each part carries its own page: trimesh decoded the embedded JPEG at the page's size.
    assert sorted(g.visual.material.baseColorTexture.size for g in parts) == sorted((w, h) for h, w in atlas.sizes)


def test_the_glb_chunks_follow_the_binary_layout_of_the_spec(two_pages, tmp_path):
    mesh, atlas = two_pages
    data = write_gltf(tmp_path / "asset.glb", mesh, atlas, _images(atlas)).read_bytes()
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, total) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack_from("<I4s", data, 12)
    text = data[20:20 + json_length]
    bin_length, bin_type = struct.unpack_from("<I4s", data, 20 + json_length)
    assert (json_type, bin_type) == (b"JSON", b"BIN\0")
    assert json_length % 4 == 0 and bin_length % 4 == 0 and 28 + json_length + bin_length == len(data)
    end = text.rindex(b"}") + 1
    assert text[end:] == b" " * (json_length - end)               # the JSON chunk is padded with spaces
    document = json.loads(text)
    assert document["buffers"] == [{"byteLength": bin_length}]
    assert all(v["byteOffset"] % 4 == 0 for v in document["bufferViews"])
    used = max(v["byteOffset"] + v["byteLength"] for v in document["bufferViews"])
    assert bin_length - used < 4 and data[28 + json_length + used:] == bytes(bin_length - used)  # zeros


def test_geometry_round_trips_through_the_accessors_with_v_flipped_and_seams_split(two_pages, tmp_path):
    mesh, atlas = two_pages
    document, blob = _load(write_gltf(tmp_path / "asset.glb", mesh, atlas, _images(atlas)))
    page_of_face = atlas.tile_index(mesh.face_udim)
    local = mesh.local_uv()
    primitives = _corners(document, blob)
    assert [material for material, _, _ in primitives] == [0, 1]
    for (page, positions, uv), primitive in zip(primitives, document["meshes"][0]["primitives"]):
        faces = page_of_face == page                    # each face in the primitive of its page, in order
        assert np.array_equal(positions, mesh.vertices[mesh.faces[faces]])
        expected = np.stack([local[faces, :, 0], 1.0 - local[faces, :, 1]], axis=-1)
        np.testing.assert_allclose(uv, expected, rtol=0, atol=1e-7)
        # One glTF vertex per distinct (vertex, local UV) of the page: fewer than corners, more than
        # the mesh vertices used where a seam splits them.
        key = np.concatenate([mesh.faces[faces].reshape(-1, 1).astype(np.float64),
                              local[faces].reshape(-1, 2).astype(np.float64)], axis=1)
        position = document["accessors"][primitive["attributes"]["POSITION"]]
        assert position["count"] == len(np.unique(key, axis=0)) < key.shape[0]
        assert position["min"] == positions.reshape(-1, 3).min(0).tolist()
        assert position["max"] == positions.reshape(-1, 3).max(0).tolist()
        assert document["accessors"][primitive["indices"]]["componentType"] == 5123  # UNSIGNED_SHORT


def test_more_than_65535_gltf_vertices_take_unsigned_int_indices(tmp_path):
    faces = np.arange(3 * 22000).reshape(-1, 3)  # 66000 vertices, none shared
    rng = np.random.default_rng(1)
    mesh = TexturedMesh(rng.random((faces.size, 3)), faces, rng.uniform(0.1, 0.9, (len(faces), 3, 2)))
    atlas = Atlas(np.zeros((1, 4, 4, 3)))
    document, blob = _load(write_gltf(tmp_path / "big.glb", mesh, atlas, [(b"\x89PNG fake", "image/png")]))
    [(_, positions, uv)] = _corners(document, blob)
    assert document["accessors"][document["meshes"][0]["primitives"][0]["indices"]]["componentType"] == 5125
    assert np.array_equal(positions, mesh.vertices[mesh.faces])
    np.testing.assert_allclose(uv[..., 1], 1.0 - mesh.uv[..., 1], rtol=0, atol=1e-7)


def test_gltf_with_a_data_uri_holds_the_same_content_as_the_glb(two_pages, tmp_path):
    mesh, atlas = two_pages
    images = _images(atlas)
    glb, glb_blob = _load(write_gltf(tmp_path / "asset.glb", mesh, atlas, images))
    gltf, gltf_blob = _load(write_gltf(tmp_path / "asset.gltf", mesh, atlas, images))
    assert gltf_blob == glb_blob
    del gltf["buffers"][0]["uri"]
    assert gltf == glb
    trimesh = pytest.importorskip("trimesh")
    assert len(trimesh.load(tmp_path / "asset.gltf", force="mesh").faces) == len(mesh.faces)


def test_the_same_input_gives_the_same_bytes(two_pages, tmp_path):
    mesh, atlas = two_pages
    images = _images(atlas)
    for suffix in (".glb", ".gltf"):
        first = write_gltf(tmp_path / f"a{suffix}", mesh, atlas, images).read_bytes()
        assert write_gltf(tmp_path / f"b{suffix}", mesh, atlas, images).read_bytes() == first


@pytest.mark.parametrize(("fmt", "mime", "extension"), [("WEBP", "image/webp", "EXT_texture_webp"),
                                                        ("AVIF", "image/avif", "EXT_texture_avif")])
def test_webp_and_avif_pages_require_their_extension(two_pages, tmp_path, fmt, mime, extension):
    if not features.check(fmt.lower()):
        pytest.skip(f"this Pillow cannot write {fmt}")
    mesh, atlas = two_pages
    images = _images(atlas, fmt, mime)
    document, blob = _load(write_gltf(tmp_path / "asset.glb", mesh, atlas, images))
    assert document["textures"] == [{"sampler": 0, "extensions": {extension: {"source": i}}} for i in range(2)]
    assert document["extensionsRequired"] == [extension]
    assert document["extensionsUsed"] == sorted([extension, "KHR_materials_unlit"])
    assert [_image_bytes(document, blob, i) for i in range(2)] == [data for data, _ in images]


def test_without_unlit_no_extension_is_used(small_demo, tmp_path):
    document, _ = _load(write_gltf(tmp_path / "lit.glb", small_demo.mesh, small_demo.atlas,
                                   _images(small_demo.atlas, "PNG", "image/png"), unlit=False))
    assert "extensions" not in document["materials"][0] and "extensionsUsed" not in document


def test_a_page_without_faces_gets_an_image_and_a_material_but_no_primitive(small_demo, tmp_path):
    atlas = Atlas.from_pages([small_demo.atlas.page(0), np.zeros((8, 16, 3))], (1001, 1002),
                             ("texture_1001.png", "texture_1002.png"))
    document, blob = _load(write_gltf(tmp_path / "asset.glb", small_demo.mesh, atlas, _images(atlas)))
    assert [p["material"] for p in document["meshes"][0]["primitives"]] == [0]
    assert len(document["images"]) == len(document["materials"]) == 2


def test_bad_input_is_refused_naming_the_file_and_nothing_is_written(two_pages, tmp_path):
    mesh, atlas = two_pages
    images = _images(atlas)
    with pytest.raises(InputError, match=r"asset\.obj.*\.glb or \.gltf"):
        write_gltf(tmp_path / "asset.obj", mesh, atlas, images)
    with pytest.raises(InputError, match=r"asset\.glb.*'image/bmp'.*image/jpeg"):
        write_gltf(tmp_path / "asset.glb", mesh, atlas, [images[0], (images[1][0], "image/bmp")])
    with pytest.raises(InputError, match=r"asset\.glb: 1 images for 2 pages"):
        write_gltf(tmp_path / "asset.glb", mesh, atlas, images[:1])
    with pytest.raises(InputError, match=r"asset\.glb: faces use UDIM pages \[1002\]"):
        write_gltf(tmp_path / "asset.glb", mesh, Atlas(atlas.tiles[:1]), images[:1])
    with pytest.raises(InputError, match=r"asset\.glb: the mesh has no faces"):
        write_gltf(tmp_path / "asset.glb", TexturedMesh(mesh.vertices, np.zeros((0, 3)), np.zeros((0, 3, 2))),
                   atlas, images)
    assert list(tmp_path.iterdir()) == []


# --- the Khronos glTF-Validator (npm package gltf-validator), where node and npm can install it ---

_VALIDATE = """
const validator = require(process.argv[1]);
const fs = require('fs');
Promise.all(process.argv.slice(2).map((p) => validator.validateBytes(new Uint8Array(fs.readFileSync(p)),
                                                                      {maxIssues: 100})))
  .then((reports) => console.log(JSON.stringify(reports.map((r) => r.issues))))
  .catch((e) => { console.error(String(e)); process.exit(1); });
"""


@pytest.fixture(scope="session")
def khronos_validator(tmp_path_factory):
    """A function: glTF files -> the validator's ``issues`` object of each; installed once per session."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node or npm is not installed: the Khronos glTF-Validator cannot run here")
    prefix = tmp_path_factory.mktemp("gltf-validator")
    try:
        done = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                               "--loglevel=error", "gltf-validator@2.0.0-dev.3.10"],
                              capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.skip("npm install gltf-validator took over 90 s (no registry access?)")
    module = prefix / "node_modules" / "gltf-validator"
    if done.returncode != 0 or not module.is_dir():
        pytest.skip(f"npm install gltf-validator failed: {done.stderr.strip()[-300:]}")

    def validate(*paths) -> list[dict]:
        run = subprocess.run([node, "-e", _VALIDATE, str(module), *map(str, paths)], capture_output=True,
                             text=True, timeout=60, check=True)
        return json.loads(run.stdout)

    return validate


def test_the_khronos_validator_finds_no_error_and_no_warning(two_pages, small_demo, khronos_validator, tmp_path):
    mesh, atlas = two_pages
    paths = [write_gltf(tmp_path / "jpeg.glb", mesh, atlas, _images(atlas)),
             write_gltf(tmp_path / "jpeg.gltf", mesh, atlas, _images(atlas)),
             write_gltf(tmp_path / "png.glb", small_demo.mesh, small_demo.atlas,
                        _images(small_demo.atlas, "PNG", "image/png"), unlit=False)]
    if features.check("webp"):
        paths.append(write_gltf(tmp_path / "webp.glb", mesh, atlas, _images(atlas, "WEBP", "image/webp")))
    for path, issues in zip(paths, khronos_validator(*paths)):
        assert (issues["numErrors"], issues["numWarnings"]) == (0, 0), (path.name, issues["messages"])
