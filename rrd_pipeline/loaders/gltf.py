"""glTF 2.0 meshes: ``.gltf`` (external or data-URI buffers and images) and ``.glb`` (embedded images).

The container (GLB chunks, JSON, buffers) and the geometry are read here with numpy, so nothing merges
materials, welds UV seams or repacks pages on the way in.

What is read:
    * Geometry: every node of the default scene (``scene``, else the first scene; all root nodes when the
      file has no scene) and its descendants that hold a mesh, each instance with its node transforms
      (``matrix``, or ``translation * rotation * scale``) composed down the hierarchy and applied to the
      positions (float64, then stored float32): the mesh is in the glTF's world frame, as a viewer shows
      it. Every primitive is kept: mode TRIANGLES (4, the default), TRIANGLE_STRIP (5) and TRIANGLE_FAN (6)
      (converted to triangles as the glTF specification orders their corners); indexed or not.
    * Accessors: componentType, normalized (integers scaled to [0, 1] or [-1, 1]), byteOffset, byteStride,
      count, and sparse accessors (their values replace the base ones). Positions and texture coordinates
      may be quantised (``KHR_mesh_quantization``).
    * Texture: each primitive's material's ``pbrMetallicRoughness.baseColorTexture``, read at the
      ``TEXCOORD_<n>`` set its ``texCoord`` names. ``KHR_texture_transform`` on it is applied (its
      ``texCoord`` overrides the set): ``uv' = offset + [[cos r, sin r], [-sin r, cos r]] @ (scale * uv)``,
      as the extension's ratified text writes it; e.g. offset (0, 1), rotation pi/2, scale (0.5, 0.5) maps
      (s, t) to (t / 2, 1 - s / 2), the lower-left quarter of the image.
    * Images: PNG, JPEG, and WebP / AVIF (the texture's ``EXT_texture_webp`` / ``EXT_texture_avif``
      source, used when Pillow decodes it, else the texture's fallback ``source``), as files, data URIs or
      buffer views, decoded with :func:`rrd_pipeline.loaders.images.read_image` (8-bit divided by 255,
      16-bit by 65535).

Scene model (:mod:`rrd.scene`): one page per image, at its own size, in order of first use by a primitive
(``k = 0, 1, ...``, UDIM ``1001 + k``); primitives sharing an image share its page, as do images naming the
same file. glTF's texture origin is the top-left of the image (t down), so a vertex's ``(s, t)`` (after the
texture transform) is the local UV ``(s, 1 - t)``, moved to the page's tile by ``(k % 10, k // 10)``.
Example: ``(s, t) = (0.125, 0.125)`` on a 4 x 4 page is the centre of its top-left texel, local
``(0.125, 0.875)``. Page names: an external image's path relative to the file's folder (usually its file
name), an embedded one ``<stem>_<image index>.<png|jpg|webp|avif>``.

Not used, as rrd renders a texture alone: samplers (rrd samples bilinear, clamped to the edge; as UVs must
lie in [0, 1], a wrap mode only changes the outer half texel, and a NEAREST filter is rendered bilinear),
``baseColorFactor`` (a warning when it tints), vertex colours, normals and the other material maps.

Refused with one line naming the file (:class:`rrd.errors.InputError`): a primitive without a base colour
texture or without the texture coordinate set it names, UVs outside [0, 1] after the transform (rrd does
not wrap textures), points and lines, skins and morph targets in use, an extension the file requires that
rrd does not implement (Draco, meshopt, KTX2 ...), an image of another type or that does not decode, a
data URI that does not decode, a missing file, a buffer shorter than its byteLength or its views, an
accessor reading past its view, indices out of range, non-finite positions, an index out of range of the
file's lists, and malformed JSON or GLB.

Safety: a buffer or image URI that leaves the file's folder (``..`` above it, an absolute path, a
``file:`` URI) is refused unless ``allow_outside=True``
(:func:`rrd_pipeline.loaders.obj.local_reference`); ``http:`` and other remote URIs always are.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
import tempfile
import warnings
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes

import numpy as np
from PIL import features

from rrd.errors import InputError
from rrd.scene import Atlas, TexturedMesh
from rrd_pipeline.loaders._mesh import UV_TOLERANCE, finish_mesh
from rrd_pipeline.loaders.images import read_image
from rrd_pipeline.loaders.obj import local_reference, page_values

__all__ = ["read_gltf", "IMAGE_TYPES", "EXTENSIONS"]

IMAGE_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/avif": ".avif"}
"""Image MIME types read, with the file ending of an embedded image's page name."""

EXTENSIONS = ("KHR_texture_transform", "KHR_mesh_quantization", "KHR_materials_unlit", "EXT_texture_webp",
              "EXT_texture_avif")
"""Extensions a file may require (``extensionsRequired``); any other required one is refused."""

_COMPONENTS = {5120: "<i1", 5121: "<u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_INDEX_TYPES = (5121, 5123, 5125)
_MODES = {0: "POINTS", 1: "LINES", 2: "LINE_LOOP", 3: "LINE_STRIP"}
_PILLOW_FEATURE = {"EXT_texture_webp": "webp", "EXT_texture_avif": "avif"}
_MAX_ZEROS = 1 << 26  # elements of an accessor without a bufferView (all zero but for sparse values)
_GLB_MAGIC, _JSON_CHUNK, _BIN_CHUNK = b"glTF", 0x4E4F534A, 0x004E4942


class _Document:
    """A glTF file: its JSON, the GLB binary chunk, and its buffers read on first use."""

    def __init__(self, path: Path, allow_outside: bool) -> None:
        self.path, self.allow_outside = path, allow_outside
        self.blob: bytes | None = None
        raw = path.read_bytes()
        if raw[:4] == _GLB_MAGIC:
            text = self._glb(raw)
        else:
            text = raw
        try:
            self.json = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise InputError(f"{path}: not glTF 2.0 (its JSON does not parse: {exc})") from None
        asset = self.json.get("asset") if isinstance(self.json, dict) else None
        version = asset.get("version") if isinstance(asset, dict) else None
        if not isinstance(version, str) or version.split(".")[0] != "2":
            raise InputError(f"{path}: not glTF 2.0 (asset.version is {version!r})")
        self._buffers: dict[int, bytes] = {}

    def _glb(self, raw: bytes) -> bytes:
        """The JSON chunk of a GLB; the binary chunk goes to ``self.blob``."""
        if len(raw) < 20:
            raise InputError(f"{self.path}: GLB shorter than its header")
        version, length = struct.unpack_from("<II", raw, 4)
        if version != 2:
            raise InputError(f"{self.path}: GLB version {version}, not a glTF 2.0 binary")
        if length > len(raw):
            raise InputError(f"{self.path}: the GLB header gives {length} bytes but the file has {len(raw)} "
                             "(truncated)")
        chunks, at = [], 12
        while at + 8 <= length:
            size, kind = struct.unpack_from("<II", raw, at)
            if at + 8 + size > length:
                raise InputError(f"{self.path}: GLB chunk at byte {at} runs past the file's end")
            chunks.append((kind, raw[at + 8:at + 8 + size]))
            at += 8 + size
        if not chunks or chunks[0][0] != _JSON_CHUNK:
            raise InputError(f"{self.path}: GLB without a JSON chunk first")
        self.blob = next((data for kind, data in chunks[1:] if kind == _BIN_CHUNK), None)
        return chunks[0][1]

    # -- the JSON's lists --------------------------------------------------------------------------------

    def item(self, kind: str, index: object) -> dict:
        """Entry ``index`` of the top-level list ``kind``; InputError when it is not there."""
        items = self.json.get(kind, [])
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(items):
            raise InputError(f"{self.path}: {kind} index {index!r} is out of range (the file has {len(items)})")
        if not isinstance(items[index], dict):
            raise InputError(f"{self.path}: {kind}[{index}] is not an object")
        return items[index]

    # -- bytes ------------------------------------------------------------------------------------------

    def uri(self, uri: str, what: str) -> tuple[bytes, Path | None, str]:
        """(bytes, file or None for a data URI, page name for a file) of a URI."""
        if uri.startswith("data:"):
            header, comma, payload = uri.partition(",")
            try:
                data = base64.b64decode(payload, validate=True) if header.endswith(";base64") \
                    else unquote_to_bytes(payload)
            except (binascii.Error, ValueError):
                data = None
            if data is None or not comma:
                raise InputError(f"{self.path}: the data URI of {what} does not decode")
            return data, None, ""
        file, name = local_reference(self.path, unquote(uri), f"{what} ({uri!r})", self.allow_outside)
        return file.read_bytes(), file, name

    def buffer(self, index: int) -> bytes:
        if index not in self._buffers:
            entry = self.item("buffers", index)
            if "uri" in entry:
                data = self.uri(entry["uri"], f"buffer {index}")[0]
            elif index == 0 and self.blob is not None:
                data = self.blob
            else:
                raise InputError(f"{self.path}: buffer {index} has no uri and no GLB binary chunk holds it")
            length = int(entry.get("byteLength", len(data)))
            if len(data) < length:
                raise InputError(f"{self.path}: buffer {index} holds {len(data)} bytes, fewer than its byteLength "
                                 f"{length}")
            self._buffers[index] = data[:length]
        return self._buffers[index]

    def view(self, index: int) -> tuple[bytes, int]:
        """(bytes, byteStride or 0) of a bufferView."""
        view = self.item("bufferViews", index)
        if "extensions" in view and set(view["extensions"]) & {"EXT_meshopt_compression", "KHR_meshopt_compression"}:
            raise InputError(f"{self.path}: bufferView {index} is meshopt-compressed, which rrd does not decode; "
                             "decompress the file first (e.g. gltf-transform copy)")
        data = self.buffer(view["buffer"])
        start, length = int(view.get("byteOffset", 0)), int(view["byteLength"])
        if start < 0 or length < 0 or start + length > len(data):
            raise InputError(f"{self.path}: bufferView {index} (bytes {start}..{start + length}) runs past its "
                             f"buffer {view['buffer']} of {len(data)} bytes")
        return data[start:start + length], int(view.get("byteStride", 0))

    def _read(self, view: int, offset: int, count: int, dtype: np.dtype, width: int, what: str) -> np.ndarray:
        data, stride = self.view(view)
        element = dtype.itemsize * width
        stride = stride or element
        if stride < element or offset < 0 or (count and offset + stride * (count - 1) + element > len(data)):
            raise InputError(f"{self.path}: {what} reads {count} elements of {element} bytes every {stride} bytes "
                             f"from byte {offset}, past its bufferView {view} of {len(data)} bytes")
        if count == 0:
            return np.zeros((0, width), dtype)
        return np.ndarray((count, width), dtype, buffer=data, offset=offset, strides=(stride, dtype.itemsize)).copy()

    def accessor(self, index: int, types: tuple[str, ...]) -> np.ndarray:
        """(count, width) values of an accessor of one of ``types``: float64 for float or normalized
        components (integers to [0, 1] unsigned, [-1, 1] signed), else int64."""
        acc = self.item("accessors", index)
        what = f"accessor {index}"
        if acc.get("type") not in types or acc.get("componentType") not in _COMPONENTS:
            raise InputError(f"{self.path}: {what} is {acc.get('type')!r} of componentType "
                             f"{acc.get('componentType')!r}; expected {' or '.join(types)}")
        dtype, width, count = np.dtype(_COMPONENTS[acc["componentType"]]), _WIDTH[acc["type"]], int(acc["count"])
        if count < 0:
            raise InputError(f"{self.path}: {what} has a negative count")
        if "bufferView" in acc:
            values = self._read(acc["bufferView"], int(acc.get("byteOffset", 0)), count, dtype, width, what)
        elif count <= _MAX_ZEROS:
            values = np.zeros((count, width), dtype)  # the specification's initial values (sparse, or all zero)
        else:
            raise InputError(f"{self.path}: {what} has {count} elements and no bufferView")
        if "sparse" in acc:
            sparse = acc["sparse"]
            n, where, new = int(sparse["count"]), sparse["indices"], sparse["values"]
            if where.get("componentType") not in _INDEX_TYPES:
                raise InputError(f"{self.path}: {what}'s sparse indices have componentType "
                                 f"{where.get('componentType')!r}")
            rows = self._read(where["bufferView"], int(where.get("byteOffset", 0)), n,
                              np.dtype(_COMPONENTS[where["componentType"]]), 1, f"{what}'s sparse indices")[:, 0]
            if n and rows.max() >= count:
                raise InputError(f"{self.path}: {what}'s sparse indices reach {int(rows.max())}, past its count "
                                 f"{count}")
            values = values.copy()
            values[rows.astype(np.int64)] = self._read(new["bufferView"], int(new.get("byteOffset", 0)), n, dtype,
                                                       width, f"{what}'s sparse values")
        if dtype.kind == "f":
            with np.errstate(invalid="ignore"):  # signalling NaNs in the file; refused by the callers
                return values.astype(np.float64)
        if acc.get("normalized"):
            scaled = values.astype(np.float64) / np.iinfo(dtype).max
            return np.maximum(scaled, -1.0)
        return values.astype(np.int64)

    def image(self, index: int) -> tuple[np.ndarray, str, object]:
        """(page (H, W, 3) float32 in [0, 1], page name, identity shared by images of one file)."""
        entry = self.item("images", index)
        what = f"image {index}"
        mime = entry.get("mimeType")
        if "uri" in entry:
            data, file, name = self.uri(entry["uri"], what)
            if file is None:
                mime = entry["uri"][5:].partition(",")[0].split(";")[0] or mime
        elif "bufferView" in entry:
            data, file, name = self.view(entry["bufferView"])[0], None, ""
        else:
            raise InputError(f"{self.path}: {what} has neither a uri nor a bufferView")
        if file is None and mime not in IMAGE_TYPES:
            raise InputError(f"{self.path}: {what} has the unsupported type {mime!r}; rrd reads "
                             f"{', '.join(IMAGE_TYPES)}")
        if file is not None:
            return page_values(read_image(file)), name, file.resolve()
        name = f"{self.path.stem}_{index}{IMAGE_TYPES[mime]}"
        with tempfile.TemporaryDirectory(prefix="rrd-gltf-") as folder:
            temporary = Path(folder) / name
            temporary.write_bytes(data)
            try:
                image = read_image(temporary)
            except Exception as exc:  # noqa: BLE001  (a decoder fed bytes from elsewhere may raise any type)
                reason = str(exc).split(": ", 1)[-1] if isinstance(exc, InputError) else type(exc).__name__
                raise InputError(f"{self.path}: {what} ({mime}, {len(data)} bytes) does not decode "
                                 f"({' '.join(reason.split())})") from None
        return page_values(image), name, index


def _node_matrix(node: dict) -> np.ndarray:
    """(4, 4) float64 local transform of a node (column vectors)."""
    if "matrix" in node:
        return np.asarray(node["matrix"], dtype=np.float64).reshape(4, 4).T  # stored column-major
    x, y, z, w = np.asarray(node.get("rotation", [0.0, 0.0, 0.0, 1.0]), dtype=np.float64)
    norm = math.sqrt(x * x + y * y + z * z + w * w) or 1.0
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    rotation = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * np.asarray(node.get("scale", [1.0, 1.0, 1.0]), dtype=np.float64)[None, :]
    matrix[:3, 3] = np.asarray(node.get("translation", [0.0, 0.0, 0.0]), dtype=np.float64)
    return matrix


def _triangles(indices: np.ndarray, mode: int) -> np.ndarray:
    """(F, 3) corners of a triangle list, strip or fan (glTF 2.0 specification, 3.7.2.1)."""
    if mode == 4:
        return indices[:len(indices) // 3 * 3].reshape(-1, 3)
    if len(indices) < 3:
        return np.zeros((0, 3), np.int64)
    i = np.arange(len(indices) - 2)
    if mode == 5:  # strip: {i, i + (1 + i % 2), i + (2 - i % 2)}
        return np.stack([indices[i], indices[i + 1 + i % 2], indices[i + 2 - i % 2]], axis=1)
    return np.stack([indices[i + 1], indices[i + 2], np.full_like(i, indices[0])], axis=1)  # fan


def _uv_transform(st: np.ndarray, transform: dict) -> np.ndarray:
    """``KHR_texture_transform`` applied to (N, 2) texture coordinates (module docstring)."""
    offset = np.asarray(transform.get("offset", [0.0, 0.0]), dtype=np.float64)
    scale = np.asarray(transform.get("scale", [1.0, 1.0]), dtype=np.float64)
    r = float(transform.get("rotation", 0.0))
    rotation = np.array([[math.cos(r), math.sin(r)], [-math.sin(r), math.cos(r)]])
    return (st * scale) @ rotation.T + offset


def _scene_nodes(doc: _Document) -> list[tuple[int, np.ndarray]]:
    """(node index, world matrix) of every node below the default scene's roots, depth first."""
    gltf = doc.json
    if gltf.get("scenes"):
        roots = doc.item("scenes", gltf.get("scene", 0)).get("nodes", [])
    else:
        children = {c for node in gltf.get("nodes", []) for c in node.get("children", [])}
        roots = [n for n in range(len(gltf.get("nodes", []))) if n not in children]
    out, seen = [], set()
    stack = [(n, np.eye(4)) for n in reversed(roots)]
    while stack:
        index, parent = stack.pop()
        node = doc.item("nodes", index)
        if index in seen:
            raise InputError(f"{doc.path}: node {index} appears twice in the scene's hierarchy (a cycle or a "
                             "shared child)")
        seen.add(index)
        matrix = parent @ _node_matrix(node)
        out.append((index, matrix))
        stack += [(c, matrix) for c in reversed(node.get("children", []))]
    return out


def read_gltf(path: str | Path, allow_outside: bool = False) -> tuple[TexturedMesh, Atlas]:
    """Read a glTF 2.0 mesh and its base colour textures (see the module docstring).

    Args:
        path: a ``.gltf`` or ``.glb`` file (told apart by content, not by ending).
        allow_outside: accept buffers and images outside the file's folder (absolute paths, ``file:`` URIs,
            ``..``); off by default, see the module docstring.
    Returns:
        (mesh, atlas): positions in the glTF's world frame (float32); faces (F, 3) int64 with one vertex per
        glTF vertex used (degenerate faces dropped with a warning); UVs (F, 3, 2) float32, page ``k``'s faces
        in UDIM tile ``1001 + k`` (v up); one page per image at its own size.
    Raises:
        InputError: one line naming the file and the problem (module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: glTF file not found")
    try:
        return _read(_Document(path, allow_outside))
    except InputError:
        raise
    except OSError as exc:  # a file that exists but cannot be read (permissions, I/O)
        raise InputError(f"{path}: cannot read {exc.filename or 'a file it names'} ({exc.strerror or exc})") from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise InputError(f"{path}: malformed glTF ({type(exc).__name__}: {' '.join(str(exc).split())})") from None


def _texture_source(doc: _Document, texture: dict, where: str) -> int:
    extensions = texture.get("extensions", {})
    for name, feature in _PILLOW_FEATURE.items():
        if name in extensions and features.check(feature):
            return extensions[name]["source"]
    if "source" not in texture:
        raise InputError(f"{doc.path}: {where}: its texture has no image rrd reads (extensions "
                         f"{sorted(extensions) or 'none'}; rrd reads {', '.join(IMAGE_TYPES)})")
    return texture["source"]


def _primitive(doc: _Document, where: str, primitive: dict,
               weights: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """One primitive's geometry: the positions it uses (n, 3), their (s, t) after the texture transform (n, 2),
    its triangles (F, 3) indexing them, and its base colour texture's image; None when it has no triangle."""
    mode = primitive.get("mode", 4)
    if mode not in (4, 5, 6):
        raise InputError(f"{doc.path}: {where} is {_MODES.get(mode, f'mode {mode}')}, not triangles")
    if primitive.get("targets") and any(w != 0 for w in weights):
        raise InputError(f"{doc.path}: {where} has morph targets with weights {weights}, which rrd does not apply")
    if "material" not in primitive:
        raise InputError(f"{doc.path}: {where} has no material, so no base colour texture")
    pbr = doc.item("materials", primitive["material"]).get("pbrMetallicRoughness", {})
    info = pbr.get("baseColorTexture")
    if info is None:
        raise InputError(f"{doc.path}: {where}: material {primitive['material']} has no baseColorTexture")
    factor = pbr.get("baseColorFactor", [1.0, 1.0, 1.0, 1.0])
    if any(f != 1 for f in factor[:3]):
        warnings.warn(f"{doc.path}: {where}: baseColorFactor {factor[:3]} tints the texture in viewers; rrd "
                      "optimises the texture alone", stacklevel=4)
    transform = info.get("extensions", {}).get("KHR_texture_transform")
    attribute = f"TEXCOORD_{(transform or {}).get('texCoord', info.get('texCoord', 0))}"
    attributes = primitive["attributes"]
    if attribute not in attributes:
        raise InputError(f"{doc.path}: {where} has no {attribute}, the texture coordinates its material's base "
                         "colour texture uses")
    if "POSITION" not in attributes:
        raise InputError(f"{doc.path}: {where} has no POSITION")
    position = doc.accessor(attributes["POSITION"], ("VEC3",))
    st = doc.accessor(attributes[attribute], ("VEC2",)).astype(np.float64)
    if len(st) != len(position):
        raise InputError(f"{doc.path}: {where}: {attribute} has {len(st)} elements but POSITION {len(position)}")
    if "indices" in primitive:
        if doc.item("accessors", primitive["indices"]).get("componentType") not in _INDEX_TYPES:
            raise InputError(f"{doc.path}: {where}: its indices are not unsigned integers")
        indices = doc.accessor(primitive["indices"], ("SCALAR",))[:, 0]
    else:
        indices = np.arange(len(position), dtype=np.int64)
    if len(indices) and indices.max() >= len(position):
        raise InputError(f"{doc.path}: {where} has index {int(indices.max())} but {len(position)} vertices")
    triangles = _triangles(indices, mode)
    if len(triangles) == 0:
        return None
    used, corners = np.unique(triangles, return_inverse=True)  # only the vertices the triangles use
    if not np.isfinite(position[used]).all():
        raise InputError(f"{doc.path}: {where} has non-finite positions")
    st = (st if transform is None else _uv_transform(st, transform))[used]
    bad = ~np.isfinite(st).all(axis=1) | ((st < -UV_TOLERANCE) | (st > 1 + UV_TOLERANCE)).any(axis=1)
    if bad.any():
        raise InputError(f"{doc.path}: {where} has texture coordinates outside [0, 1] (e.g. "
                         f"{np.round(st[np.argmax(bad)], 4).tolist()}); rrd does not wrap textures")
    source = _texture_source(doc, doc.item("textures", info["index"]), where)
    return position[used], st, corners.reshape(-1, 3), source


def _read(doc: _Document) -> tuple[TexturedMesh, Atlas]:
    required = sorted(set(doc.json.get("extensionsRequired", [])) - set(EXTENSIONS))
    if required:
        raise InputError(f"{doc.path}: requires the extensions {required}, which rrd does not implement "
                         f"(it reads {', '.join(EXTENSIONS)}); decompress or convert the file first")
    vertices, faces, uvs = [], [], []
    pages: list[tuple[np.ndarray, str]] = []
    page_of: dict[object, int] = {}      # image identity (file or index) -> page
    image_page: dict[int, int] = {}      # image index -> page
    n_vertices = 0
    for node_index, matrix in _scene_nodes(doc):
        node = doc.item("nodes", node_index)
        if "mesh" not in node:
            continue
        if "skin" in node:
            raise InputError(f"{doc.path}: node {node_index} is skinned, which rrd does not pose; apply the skin "
                             "first")
        mesh = doc.item("meshes", node["mesh"])
        weights = node.get("weights", mesh.get("weights", []))
        for p, primitive in enumerate(mesh["primitives"]):
            read = _primitive(doc, f"mesh {node['mesh']} primitive {p}", primitive, weights)
            if read is None:
                continue
            position, st, triangles, source = read
            if source not in image_page:
                page, name, identity = doc.image(source)
                if identity not in page_of:
                    page_of[identity] = len(pages)
                    pages.append((page, name))
                image_page[source] = page_of[identity]
            k = image_page[source]
            vertices.append((np.c_[position, np.ones(len(position))] @ matrix.T)[:, :3])
            faces.append(triangles + n_vertices)
            uvs.append((np.clip(np.c_[st[:, 0], 1.0 - st[:, 1]], 0.0, 1.0) + [k % 10, k // 10])[triangles])
            n_vertices += len(position)
    if not faces:
        raise InputError(f"{doc.path}: the scene has no triangles")
    udims = tuple(1001 + k for k in range(len(pages)))
    atlas = Atlas.from_pages([p for p, _ in pages], udims, tuple(n for _, n in pages))
    mesh = finish_mesh(np.concatenate(vertices), np.concatenate(faces), np.concatenate(uvs), doc.path, udims)
    return mesh, atlas
