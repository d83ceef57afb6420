"""glTF 2.0 in: a GLB and a .gltf read into the scene model, with node transforms, pages of their own sizes,
and the mistakes a file can hold refused in one line naming it."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from rrd.errors import InputError
from rrd.render import rasterize_views, texel_vector, view_taps
from rrd.sample import gather
from rrd_pipeline.loaders import read_textured_mesh
from rrd_pipeline.writers.gltf import write_gltf
from test_pages import _split_scene


def png(page: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.rint(page * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def two_page_scene(small_demo):
    scene = _split_scene(small_demo)
    pages = [np.rint(scene.atlas.page(t) * 255) / 255 for t in range(2)]  # what a PNG keeps
    atlas = type(scene.atlas).from_pages([p.astype(np.float32) for p in pages], scene.atlas.udims, scene.atlas.names)
    return dataclasses.replace(scene, atlas=atlas)


def renders(scene, mesh, atlas):
    view = rasterize_views(mesh, atlas, scene.cameras[:2], "cpu")
    return [gather(texel_vector(torch.from_numpy(atlas.tiles)), view_taps(v, atlas.shape)) for v in view]


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_a_written_gltf_reads_back_and_renders_as_the_scene(two_page_scene, tmp_path, suffix):
    scene = two_page_scene
    path = write_gltf(tmp_path / f"m{suffix}", scene.mesh, scene.atlas,
                      [(png(scene.atlas.page(t)), "image/png") for t in range(2)])
    mesh, atlas = read_textured_mesh(path)
    assert atlas.sizes == scene.atlas.sizes and len(mesh.faces) == len(scene.mesh.faces)
    np.testing.assert_array_equal(atlas.tiles, scene.atlas.tiles)
    for ours, theirs in zip(renders(scene, mesh, atlas), renders(scene, scene.mesh, scene.atlas)):
        assert len(ours) > 100
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_node_transforms_are_applied(two_page_scene, tmp_path):
    scene = two_page_scene
    path = write_gltf(tmp_path / "m.gltf", scene.mesh, scene.atlas,
                      [(png(scene.atlas.page(t)), "image/png") for t in range(2)])
    doc = json.loads(path.read_text())
    # a parent scaling by 2 around a child rotating 90 degrees about z and translating by (1, 2, 3)
    s = np.sqrt(0.5)
    doc["nodes"] = [{"children": [1], "scale": [2.0, 2.0, 2.0]},
                    {"mesh": 0, "rotation": [0.0, 0.0, s, s], "translation": [1.0, 2.0, 3.0]}]
    doc["scenes"] = [{"nodes": [0]}]
    path.write_text(json.dumps(doc))
    mesh, _ = read_textured_mesh(path)
    original = read_textured_mesh(write_gltf(tmp_path / "o.glb", scene.mesh, scene.atlas,
                                             [(png(scene.atlas.page(t)), "image/png") for t in range(2)]))[0]
    x, y, z = original.vertices.astype(np.float64).T
    expected = 2.0 * (np.stack([-y, x, z], axis=1) + [1.0, 2.0, 3.0])
    np.testing.assert_allclose(mesh.vertices, expected, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["meshes"][0]["primitives"][0]["attributes"].pop("TEXCOORD_0"), "has no TEXCOORD_0"),
    (lambda d: d["buffers"][0].update(uri="data:application/octet-stream;base64,@@@"), "does not decode"),
    (lambda d: d["buffers"][0].update(uri="../elsewhere.bin"), "outside the file's folder"),
    (lambda d: d["buffers"][0].update(uri="file:///etc/passwd"), "not a path relative to the file"),
    (lambda d: d["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"].update(
        extensions={"KHR_texture_transform": {"scale": [2, 2]}}), "KHR_texture_transform"),
    (lambda d: d["buffers"][0].update(byteLength=10 ** 9), "fewer than its byteLength"),
])
def test_mistakes_in_a_gltf_are_one_line_naming_it(two_page_scene, tmp_path, change, message):
    scene = two_page_scene
    path = write_gltf(tmp_path / "m.gltf", scene.mesh, scene.atlas,
                      [(png(scene.atlas.page(t)), "image/png") for t in range(2)])
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=message) as err:
        read_textured_mesh(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
