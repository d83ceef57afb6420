"""Writing a textured mesh as glTF 2.0 (``.glb``, or a self-contained ``.gltf``), its pages embedded as given.

The pages are the exact bytes a codec produced (JPEG, PNG, WebP, AVIF): they are embedded byte for byte,
never decoded or re-encoded. One mesh, one primitive per page that has faces, each with its own material
whose base colour is that page (``KHR_materials_unlit``: photogrammetry colour is baked light; listed as
used, not required, so viewers without it shade the same texture). WebP and AVIF pages need
``EXT_texture_webp`` / ``EXT_texture_avif``, required (no PNG fallback is written).

Conventions: glTF texture coordinates have their origin at the top-left (v down), so a corner's local UV
``(u, v)`` (:mod:`rrd.scene`, v up) is written ``(u, 1 - v)``: the centre of the top-left texel of a 4 x 4
page, local ``(0.125, 0.875)``, is glTF ``(0.125, 0.125)``. glTF UVs are per vertex, so every distinct
(vertex, local UV) pair of a page becomes its own glTF vertex (a vertex on a UV seam is split); indices are
UNSIGNED_SHORT below 65536 glTF vertices (65535 itself is reserved), else UNSIGNED_INT. Positions are written
as they are (the reconstruction's frame). The output is deterministic: the same input gives the same bytes.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rrd.errors import InputError
from rrd.scene import Atlas, TexturedMesh
from rrd_pipeline.writers import atomic_write

__all__ = ["write_gltf", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS: dict[str, str | None] = {"image/jpeg": None, "image/png": None,
                                           "image/webp": "EXT_texture_webp", "image/avif": "EXT_texture_avif"}
"""MIME type of a page -> the glTF extension its texture needs (None: core glTF)."""

_FLOAT, _UINT16, _UINT32 = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def _primitive_arrays(vertices: np.ndarray, corner_vertex: np.ndarray,
                      corner_uv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split the corners of one page's faces into glTF vertices.

    Args:
        vertices: (V, 3) float32 positions of the whole mesh.
        corner_vertex: (3k,) int64 vertex index of each corner of the page's k faces, face by face.
        corner_uv: (3k, 2) float32 local UV of each corner (v up, :mod:`rrd.scene`).
    Returns:
        positions (n, 3) float32, glTF UVs (n, 2) float32 ``(u, 1 - v)`` and indices (3k,) int64 into
        them: one glTF vertex per distinct (vertex index, local UV), numbered in order of first use.
    """
    # glTF has one UV per vertex, so a mesh vertex on a UV seam becomes one glTF vertex per UV it has.
    # The key is the raw bytes of (index, u, v) viewed as one 16-byte void: np.unique then sorts by
    # memcmp, several times faster than a row-wise unique; the byte order does not matter as the
    # vertices are renumbered by first use below.
    key = np.concatenate([corner_vertex.astype("<i8")[:, None].view(np.uint8),
                          corner_uv.astype("<f4").view(np.uint8)], axis=1)
    key = np.ascontiguousarray(key).view(np.dtype((np.void, key.shape[1]))).reshape(-1)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first)                       # first-use order: deterministic and cache friendly
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    chosen = first[order]
    uv = corner_uv[chosen]
    # glTF's texture origin is the top-left corner (v down); rrd's local v points up.
    gltf_uv = np.stack([uv[:, 0], np.float32(1.0) - uv[:, 1]], axis=1).astype(np.float32)
    return vertices[corner_vertex[chosen]].astype(np.float32), gltf_uv, rank[inverse.reshape(-1)]


def write_gltf(path: str | Path, mesh: TexturedMesh, atlas: Atlas, images: Sequence[tuple[bytes, str]],
               unlit: bool = True) -> Path:
    """Write ``mesh`` with one embedded image per page of ``atlas`` as glTF 2.0.

    Args:
        path: ``.glb`` (binary) or ``.gltf`` (JSON with the buffer as a base64 data URI).
        mesh: the mesh; each face belongs to the page of its UDIM (``atlas.tile_index(mesh.face_udim)``).
        atlas: the page layout (UDIMs, names); its texel values are not used.
        images: per page, in page order, ``(data, mime_type)``: the encoded image exactly as it is to be
            stored; ``mime_type`` a key of :data:`IMAGE_EXTENSIONS`. Every page gets an image, a texture
            and a material; only pages with faces get a primitive.
        unlit: mark the materials ``KHR_materials_unlit``.
    Returns:
        ``path``.
    Raises:
        InputError: another file ending, an unknown MIME type, an image count that differs from the
            pages, a mesh with no faces, or faces on a page the atlas lacks.
    """
    path = Path(path)
    if path.suffix.lower() not in (".glb", ".gltf"):
        raise InputError(f"{path}: a glTF file must end in .glb or .gltf")
    if len(images) != len(atlas.udims):
        raise InputError(f"{path}: {len(images)} images for {len(atlas.udims)} pages")
    for _, mime in images:
        if mime not in IMAGE_EXTENSIONS:
            raise InputError(f"{path}: image type {mime!r} cannot go in a glTF; "
                             f"use one of {', '.join(IMAGE_EXTENSIONS)}")
    if len(mesh.faces) == 0:
        raise InputError(f"{path}: the mesh has no faces; a glTF mesh needs at least one primitive")
    page_of_face = atlas.tile_index(mesh.face_udim)
    if (page_of_face < 0).any():
        missing = sorted(set(mesh.face_udim[page_of_face < 0].tolist()))
        raise InputError(f"{path}: faces use UDIM pages {missing} that the atlas "
                         f"(pages {list(atlas.udims)}) lacks")
    local_uv = mesh.local_uv()

    blob = bytearray()
    views: list[dict] = []

    def add_view(data: bytes, target: int | None = None) -> int:
        blob.extend(b"\0" * (-len(blob) % 4))                       # accessors need 4-byte alignment
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data),
                      **({"target": target} if target is not None else {})})
        blob.extend(data)
        return len(views) - 1

    accessors: list[dict] = []
    primitives: list[dict] = []
    for page in range(len(atlas.udims)):
        faces = np.flatnonzero(page_of_face == page)
        if len(faces) == 0:
            continue
        positions, uv, indices = _primitive_arrays(mesh.vertices, mesh.faces[faces].reshape(-1),
                                                   local_uv[faces].reshape(-1, 2))
        index_type, index_dtype = (_UINT16, np.uint16) if len(positions) < 65536 else (_UINT32, np.uint32)
        accessors += [
            {"bufferView": add_view(positions.tobytes(), _ARRAY_BUFFER), "componentType": _FLOAT,
             "count": len(positions), "type": "VEC3",  # min/max of POSITION are required by the spec
             "min": positions.min(0).tolist(), "max": positions.max(0).tolist()},
            {"bufferView": add_view(uv.tobytes(), _ARRAY_BUFFER), "componentType": _FLOAT, "count": len(uv),
             "type": "VEC2"},
            {"bufferView": add_view(indices.astype(index_dtype).tobytes(), _ELEMENT_ARRAY_BUFFER),
             "componentType": index_type, "count": len(indices), "type": "SCALAR"},
        ]
        n = len(accessors)
        primitives.append({"attributes": {"POSITION": n - 3, "TEXCOORD_0": n - 2}, "indices": n - 1,
                           "material": page, "mode": 4})

    used, required = set(), set()
    textures, gltf_images, materials = [], [], []
    for page, (data, mime) in enumerate(images):
        gltf_images.append({"bufferView": add_view(bytes(data)), "mimeType": mime,
                            "name": Path(atlas.names[page]).stem})
        extension = IMAGE_EXTENSIONS[mime]
        if extension is None:
            textures.append({"sampler": 0, "source": page})
        else:
            textures.append({"sampler": 0, "extensions": {extension: {"source": page}}})
            used.add(extension)
            required.add(extension)
        material = {"name": Path(atlas.names[page]).stem,
                    "pbrMetallicRoughness": {"baseColorTexture": {"index": page}, "metallicFactor": 0.0,
                                             "roughnessFactor": 1.0}}
        if unlit:
            material["extensions"] = {"KHR_materials_unlit": {}}
            used.add("KHR_materials_unlit")
        materials.append(material)
    blob.extend(b"\0" * (-len(blob) % 4))

    document: dict = {
        "asset": {"version": "2.0", "generator": "rrd"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": primitives}], "materials": materials, "textures": textures,
        "images": gltf_images,
        # LINEAR magnification, LINEAR_MIPMAP_LINEAR minification, CLAMP_TO_EDGE: a page has no wrap-around.
        "samplers": [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}],
        "accessors": accessors, "bufferViews": views, "buffers": [{"byteLength": len(blob)}],
    }
    if used:
        document["extensionsUsed"] = sorted(used)
    if required:
        document["extensionsRequired"] = sorted(required)
    with atomic_write(path) as tmp:
        if path.suffix.lower() == ".gltf":
            document["buffers"][0]["uri"] = ("data:application/octet-stream;base64,"
                                             + base64.b64encode(bytes(blob)).decode("ascii"))
            tmp.write_text(json.dumps(document, indent=1), encoding="utf-8")
        else:
            text = json.dumps(document, separators=(",", ":")).encode("utf-8")
            text += b" " * (-len(text) % 4)                         # the JSON chunk is padded with spaces
            total = 12 + 8 + len(text) + 8 + len(blob)
            tmp.write_bytes(struct.pack("<4sII", b"glTF", 2, total)
                            + struct.pack("<I4s", len(text), b"JSON") + text
                            + struct.pack("<I4s", len(blob), b"BIN\0") + bytes(blob))
    return path
