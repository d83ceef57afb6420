"""glTF 2.0 meshes: ``.gltf`` (external or data-URI buffers and images) and ``.glb`` (embedded images).

Every node of the default scene (all root nodes when none is marked) that holds a mesh contributes its
triangle primitives, with the node transforms (``matrix``, or translation, rotation and scale) composed down
the hierarchy applied to the positions. Each primitive's material names its page through
``pbrMetallicRoughness.baseColorTexture`` (its ``texCoord`` set, ``TEXCOORD_<n>``); primitives that share an
image share the page, and image ``k`` in order of first use becomes page ``1001 + k`` (:mod:`rrd.scene`),
at its own size. glTF puts the texture origin at the top-left, so a vertex's ``(s, t)`` is the local UV
``(s, 1 - t)``. Refused with one line naming the file: a primitive without a base colour texture or without
the texture coordinate set it names, ``KHR_texture_transform`` (not applied), UVs outside [0, 1] (textures
that wrap), other primitive modes than triangles, sparse accessors, an image type Pillow cannot decode, a
data URI that does not decode, a buffer shorter than its views, indices out of range, and any URI that
leaves the file's folder (``..``, an absolute path, ``file:``/``http:``): a mesh from elsewhere must not
make rrd read, and embed in its output, a file of this machine.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from rrd.errors import InputError
from rrd.scene import Atlas, TexturedMesh
from rrd_pipeline.loaders._mesh import finish_mesh

__all__ = ["read_gltf"]

_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_SUFFIX = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/avif": ".avif"}
# glTF's UVs may overshoot [0, 1] by rounding; beyond this the texture would have to wrap.
_UV_TOLERANCE = 1e-4


class _Document:
    """A parsed glTF: its JSON, and its buffers resolved (GLB chunk, data URIs, files beside it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise InputError(f"{path}: glTF file not found")
        raw = path.read_bytes()
        self.blob = b""
        try:
            if raw[:4] == b"glTF":
                length = struct.unpack_from("<I", raw, 12)[0]
                self.json = json.loads(raw[20:20 + length])
                if len(raw) >= 28 + length:
                    blob_length = struct.unpack_from("<I", raw, 20 + length)[0]
                    self.blob = raw[28 + length:28 + length + blob_length]
            else:
                self.json = json.loads(raw.decode("utf-8"))
        except (struct.error, ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a glTF 2.0 file ({exc})") from None
        if not isinstance(self.json, dict) or str(self.json.get("asset", {}).get("version", "")).split(".")[0] != "2":
            raise InputError(f"{path}: not a glTF 2.0 file (asset.version must be 2.x)")
        self.buffers = [self._buffer(i, b) for i, b in enumerate(self.json.get("buffers", []))]

    def _uri(self, uri: str, what: str) -> bytes:
        if uri.startswith("data:"):
            try:
                return base64.b64decode(uri.split(",", 1)[1], validate=True)
            except (IndexError, ValueError):
                raise InputError(f"{self.path}: the data URI of {what} does not decode") from None
        if ":" in uri.split("/")[0] or Path(uri).is_absolute():
            raise InputError(f"{self.path}: {what} names {uri!r}, not a path relative to the file")
        target = (self.path.parent / uri).resolve()
        if not target.is_relative_to(self.path.parent.resolve()):
            raise InputError(f"{self.path}: {what} names {uri!r}, outside the file's folder")
        if not target.is_file():
            raise InputError(f"{self.path}: {what} names {uri!r}, which is missing")
        return target.read_bytes()

    def _buffer(self, index: int, entry: dict) -> bytes:
        data = self._uri(entry["uri"], f"buffer {index}") if "uri" in entry else self.blob
        if len(data) < int(entry.get("byteLength", 0)):
            raise InputError(f"{self.path}: buffer {index} holds {len(data)} bytes, fewer than its byteLength")
        return data

    def view(self, index: int) -> bytes:
        view = self.json["bufferViews"][index]
        data, start = self.buffers[view["buffer"]], int(view.get("byteOffset", 0))
        end = start + int(view["byteLength"])
        if end > len(data):
            raise InputError(f"{self.path}: bufferView {index} ends at byte {end}, past its buffer ({len(data)})")
        return data[start:end]

    def accessor(self, index: int) -> np.ndarray:
        """(count, width) array of an accessor, normalised integers scaled to [0, 1] / [-1, 1]."""
        acc = self.json["accessors"][index]
        if "sparse" in acc:
            raise InputError(f"{self.path}: accessor {index} is sparse, which rrd does not read")
        dtype, width, count = np.dtype(_COMPONENTS[acc["componentType"]]), _WIDTH[acc["type"]], int(acc["count"])
        view = self.json["bufferViews"][acc["bufferView"]]
        data = self.view(acc["bufferView"])
        stride = int(view.get("byteStride", 0)) or dtype.itemsize * width
        offset = int(acc.get("byteOffset", 0))
        if count and offset + stride * (count - 1) + dtype.itemsize * width > len(data):
            raise InputError(f"{self.path}: accessor {index} reads past its bufferView")
        rows = np.lib.stride_tricks.as_strided(np.frombuffer(data, np.uint8, offset=offset) if count else
                                               np.zeros(0, np.uint8), (count, dtype.itemsize * width), (stride, 1))
        values = np.ascontiguousarray(rows).view(dtype).reshape(count, width)
        if acc.get("normalized") and dtype.kind in "iu":
            values = values / np.iinfo(dtype).max
        return values.astype(np.float64) if dtype.kind == "f" or acc.get("normalized") else values

    def image(self, index: int) -> tuple[np.ndarray, str]:
        """(H, W, 3) float32 page in [0, 1] and its file name."""
        entry = self.json["images"][index]
        if "uri" in entry and not entry["uri"].startswith("data:"):
            data, name = self._uri(entry["uri"], f"image {index}"), Path(entry["uri"]).name
        else:
            data = self._uri(entry["uri"], f"image {index}") if "uri" in entry else self.view(entry["bufferView"])
            name = f"{self.path.stem}_{index}{_SUFFIX.get(entry.get('mimeType', ''), '.png')}"
        try:
            with Image.open(io.BytesIO(data)) as img:
                rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        except Exception as exc:  # noqa: BLE001  (Pillow raises several types for undecodable data)
            raise InputError(f"{self.path}: image {index} does not decode ({type(exc).__name__})") from None
        return rgb, name


def _node_matrix(node: dict) -> np.ndarray:
    if "matrix" in node:
        return np.asarray(node["matrix"], dtype=np.float64).reshape(4, 4).T  # column-major in the file
    x, y, z, w = node.get("rotation", [0.0, 0.0, 0.0, 1.0])
    rotation = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * np.asarray(node.get("scale", [1.0, 1.0, 1.0]))[None, :]
    matrix[:3, 3] = node.get("translation", [0.0, 0.0, 0.0])
    return matrix


def read_gltf(path: str | Path) -> tuple[TexturedMesh, Atlas]:
    """Read a glTF 2.0 mesh and its base colour textures (see the module docstring).

    Returns:
        (mesh, atlas): positions in the glTF's world frame, UVs UDIM-global (v up), one page per image.
    Raises:
        InputError: any problem of the module docstring, naming the file.
    """
    doc = _Document(Path(path))
    try:
        return _read(doc)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{doc.path}: malformed glTF ({type(exc).__name__}: {exc})") from None


def _read(doc: _Document) -> tuple[TexturedMesh, Atlas]:
    gltf = doc.json
    scenes = gltf.get("scenes", [])
    roots = scenes[gltf.get("scene", 0)]["nodes"] if scenes else range(len(gltf.get("nodes", [])))
    vertices, faces, uvs, pages, images = [], [], [], [], []
    stack = [(int(n), np.eye(4)) for n in roots]
    while stack:
        index, parent = stack.pop(0)
        node = gltf["nodes"][index]
        matrix = parent @ _node_matrix(node)
        stack += [(int(c), matrix) for c in node.get("children", [])]
        if "mesh" not in node:
            continue
        for p, primitive in enumerate(gltf["meshes"][node["mesh"]]["primitives"]):
            where = f"mesh {node['mesh']} primitive {p}"
            if primitive.get("mode", 4) != 4:
                raise InputError(f"{doc.path}: {where} is not made of triangles (mode {primitive['mode']})")
            info = gltf.get("materials", [{}])[primitive["material"]].get("pbrMetallicRoughness", {}) \
                .get("baseColorTexture") if "material" in primitive else None
            if info is None:
                raise InputError(f"{doc.path}: {where} has no base colour texture")
            if "KHR_texture_transform" in info.get("extensions", {}):
                raise InputError(f"{doc.path}: {where} uses KHR_texture_transform, which rrd does not apply")
            texture = gltf["textures"][info["index"]]
            source = texture.get("source")
            for ext in ("EXT_texture_webp", "EXT_texture_avif"):
                source = texture.get("extensions", {}).get(ext, {}).get("source", source)
            attribute = f"TEXCOORD_{info.get('texCoord', 0)}"
            if attribute not in primitive["attributes"]:
                raise InputError(f"{doc.path}: {where} has no {attribute}, which its material's texture uses")
            position = doc.accessor(primitive["attributes"]["POSITION"])
            st = doc.accessor(primitive["attributes"][attribute])
            index_list = (doc.accessor(primitive["indices"]).reshape(-1).astype(np.int64) if "indices" in primitive
                          else np.arange(len(position)))
            if len(index_list) % 3 or (len(index_list) and (index_list.min() < 0 or index_list.max() >= len(position))):
                raise InputError(f"{doc.path}: {where} has indices out of range or not a multiple of 3")
            if not np.isfinite(st).all() or (st < -_UV_TOLERANCE).any() or (st > 1 + _UV_TOLERANCE).any():
                raise InputError(f"{doc.path}: {where} has texture coordinates outside [0, 1] (wrapping textures "
                                 "are not supported)")
            if source not in images:
                images.append(source)
            page = images.index(source)
            world = (np.c_[position[:, :3], np.ones(len(position))] @ matrix.T)[:, :3]
            tri = index_list.reshape(-1, 3)
            local = np.clip(np.c_[st[:, 0], 1.0 - st[:, 1]], 0.0, 1.0)[tri]
            local += [page % 10, page // 10]
            faces.append(tri + sum(len(v) for v in vertices))
            vertices.append(world)
            uvs.append(local)
            pages.append(np.full(len(tri), page))
    if not faces:
        raise InputError(f"{doc.path}: no mesh with a textured triangle primitive in the scene")
    read = [doc.image(i) for i in images]
    udims = tuple(1001 + k for k in range(len(images)))
    atlas = Atlas.from_pages([r[0] for r in read], udims, tuple(r[1] for r in read))
    mesh = finish_mesh(np.concatenate(vertices), np.concatenate(faces), np.concatenate(uvs), doc.path, udims)
    return mesh, atlas
