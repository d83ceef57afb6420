"""OpenMVS files: the textured mesh PLY (``scene_mesh_texture.ply``) and the ``scene.mvs`` cameras.

Textured PLY (as OpenMVS ``TextureMesh`` writes it):
    ``element vertex`` with float ``x y z``; ``element face`` with a list ``vertex_indices`` (or
    ``vertex_index``), a list ``texcoord`` of ``2 * n`` floats (u0 v0 u1 v1 ...) per face and, when
    there are several textures, an integer ``texnumber`` per face. Each ``comment TextureFile <name>``
    header line names one texture, in ``texnumber`` order, relative to the PLY's folder.
    OpenMVS's (u, v) is the convention of :mod:`rrd.scene` (v up, texel ``(u W, (1 - v) H)``), so
    texture ``k`` becomes UDIM tile ``1001 + k`` by adding ``k % 10`` to u and ``k // 10`` to v. Polygons are split into
    triangle fans. ASCII and both binary byte orders are read. PLYs with per-vertex UVs
    (``texture_u``/``texture_v``, ``s``/``t`` or ``u``/``v`` vertex properties) are accepted too.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rrd.errors import InputError
from rrd.scene import Camera, TexturedMesh
from rrd_pipeline.loaders._camera import checked_camera
from rrd_pipeline.loaders._mesh import finish_mesh

__all__ = ["read_ply_elements", "read_openmvs_ply", "read_mvs_cameras"]

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_VERTEX_UV_NAMES = (("texture_u", "texture_v"), ("s", "t"), ("u", "v"))


@dataclass(frozen=True)
class _Property:
    name: str
    dtype: str  # numpy type code without byte order
    count_dtype: str | None = None  # set for list properties


@dataclass(frozen=True)
class _Element:
    name: str
    count: int
    properties: tuple[_Property, ...]


def _parse_header(path: Path, raw: bytes) -> tuple[str, list[_Element], list[str], int]:
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise InputError(f"{path}: not a PLY file (no 'ply' magic or no 'end_header')")
    body_start = raw.index(b"\n", end) + 1 if b"\n" in raw[end:] else len(raw)
    lines = raw[:end].decode("ascii", errors="replace").splitlines()[1:]
    fmt, comments, elements = "", [], []
    for line in lines:
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "format":
                fmt = words[1]
            elif words[0] in ("comment", "obj_info"):
                comments.append(line.split(None, 1)[1] if len(words) > 1 else "")
            elif words[0] == "element":
                if int(words[2]) < 0:
                    raise ValueError
                elements.append(_Element(words[1], int(words[2]), ()))
            elif words[0] == "property":
                if words[1] == "list":
                    prop = _Property(words[4], _PLY_TYPES[words[3]], _PLY_TYPES[words[2]])
                else:
                    prop = _Property(words[2], _PLY_TYPES[words[1]])
                last = elements[-1]
                if any(p.name == prop.name for p in last.properties):
                    raise InputError(f"{path}: PLY element '{last.name}' declares property '{prop.name}' twice")
                elements[-1] = _Element(last.name, last.count, last.properties + (prop,))
            else:
                raise ValueError
        except (IndexError, KeyError, ValueError):
            raise InputError(f"{path}: malformed PLY header line {line!r}") from None
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise InputError(f"{path}: unknown PLY format {fmt!r}; expected ascii, binary_little_endian or "
                         "binary_big_endian")
    return fmt, elements, comments, body_start


def _read_binary_element(path: Path, elem: _Element, buf: memoryview, offset: int, order: str,
                         ) -> tuple[dict[str, np.ndarray | list[np.ndarray]], int]:
    """Read one element starting at byte ``offset``; return its properties and the next offset."""
    def truncated() -> InputError:
        return InputError(f"{path}: file is truncated inside element '{elem.name}' ({elem.count} records "
                          f"declared, {len(buf)} bytes in the file)")

    if not elem.properties:
        return {}, offset  # nothing stored, whatever the count
    # Every record holds at least its scalars and list counts: a count the file cannot hold (a damaged
    # header claiming 10^12 vertices) is refused before anything is allocated or looped over.
    smallest = sum(np.dtype(p.count_dtype or p.dtype).itemsize for p in elem.properties)
    if elem.count * smallest > len(buf) - offset:
        raise truncated()
    # Fast path: assume every list has the length found in the first record, then verify.
    fields, pos = [], offset
    for prop in elem.properties:
        if prop.count_dtype is None:
            fields.append((prop.name, order + prop.dtype))
            pos += np.dtype(prop.dtype).itemsize
            continue
        cdt = np.dtype(order + prop.count_dtype)
        if pos + cdt.itemsize > len(buf):
            raise truncated()
        n = int(np.frombuffer(buf, cdt, 1, pos)[0]) if elem.count else 0
        fields.append((prop.name + "\0count", cdt.str))
        fields.append((prop.name, order + prop.dtype, (n,)))
        pos += cdt.itemsize + n * np.dtype(prop.dtype).itemsize
    record = np.dtype(fields)
    if offset + record.itemsize * elem.count <= len(buf):
        table = np.frombuffer(buf, record, elem.count, offset)
        uniform = elem.count == 0 or all((table[name] == table[name][0]).all()
                                         for name in record.names if name.endswith("\0count"))
        if uniform:
            out = {p.name: np.array(table[p.name]) for p in elem.properties}
            return out, offset + record.itemsize * elem.count
    # Slow path: lists of varying length (polygon meshes).
    values: dict[str, list] = {p.name: [] for p in elem.properties}
    pos = offset
    for _ in range(elem.count):
        for prop in elem.properties:
            n = 1
            if prop.count_dtype is not None:
                cdt = np.dtype(order + prop.count_dtype)
                if pos + cdt.itemsize > len(buf):
                    raise truncated()
                n = int(np.frombuffer(buf, cdt, 1, pos)[0])
                pos += cdt.itemsize
            dt = np.dtype(order + prop.dtype)
            if pos + n * dt.itemsize > len(buf):
                raise truncated()
            item = np.frombuffer(buf, dt, n, pos)
            values[prop.name].append(item if prop.count_dtype is not None else item[0])
            pos += n * dt.itemsize
    out = {p.name: (values[p.name] if p.count_dtype is not None else np.array(values[p.name]))
           for p in elem.properties}
    return out, pos


def _typed(path: Path, elem: _Element, prop: _Property, values: np.ndarray) -> np.ndarray:
    """ASCII ``values`` (float64, any shape) in the property's type.

    Raises:
        InputError: an integer property holding a value that is not an integer of its type (NaN, inf,
            a fraction, out of range); a cast would raise or silently wrap around.
    """
    dtype = np.dtype(prop.dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values != np.round(values)) | (values < info.min) | (values > info.max)
        if bad.any():
            raise InputError(f"{path}: element '{elem.name}' property '{prop.name}' holds {values[bad].flat[0]!r}, "
                             f"which is not a {dtype.name}")
    with np.errstate(over="ignore"):  # floats beyond float32 become inf, which finish_mesh names
        return values.astype(dtype)


def _read_ascii_elements(path: Path, elements: list[_Element], text: str,
                         ) -> dict[str, dict[str, np.ndarray | list[np.ndarray]]]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    result, row = {}, 0
    for elem in elements:
        block = lines[row:row + elem.count]
        if len(block) < elem.count:
            raise InputError(f"{path}: file is truncated inside element '{elem.name}' ({elem.count} lines "
                             f"declared, {len(block)} present)")
        row += elem.count
        values: dict[str, list] = {p.name: [] for p in elem.properties}
        try:
            for line in block:
                tokens, i = line.split(), 0
                for prop in elem.properties:
                    if prop.count_dtype is None:
                        values[prop.name].append(float(tokens[i]))
                        i += 1
                    else:
                        n = int(tokens[i])
                        values[prop.name].append(np.array(tokens[i + 1:i + 1 + n], dtype=np.float64))
                        if len(values[prop.name][-1]) != n:
                            raise IndexError
                        i += 1 + n
        except (IndexError, ValueError):
            raise InputError(f"{path}: malformed ASCII record in element '{elem.name}': {line[:80]!r}") from None
        result[elem.name] = {}
        for prop in elem.properties:
            vals = values[prop.name]
            if prop.count_dtype is None:
                result[elem.name][prop.name] = _typed(path, elem, prop, np.array(vals, dtype=np.float64))
            elif vals and all(len(v) == len(vals[0]) for v in vals):
                result[elem.name][prop.name] = _typed(path, elem, prop, np.stack(vals))
            else:
                result[elem.name][prop.name] = [_typed(path, elem, prop, v) for v in vals]
    return result


def read_ply_elements(path: str | Path) -> tuple[dict[str, dict[str, np.ndarray | list[np.ndarray]]], list[str]]:
    """Read every element of a PLY file.

    Returns:
        (elements, comments): ``elements[name][property]`` is an (N,) array for a scalar property and
        an (N, k) array for a list property whose lists all have length k, else a list of N 1-D
        arrays; ``comments`` are the header's comment texts, in order.
    Raises:
        InputError: missing file, not a PLY, malformed header, truncated data.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: PLY file not found")
    raw = path.read_bytes()
    fmt, elements, comments, body_start = _parse_header(path, raw)
    if fmt == "ascii":
        return _read_ascii_elements(path, elements, raw[body_start:].decode("ascii", errors="replace")), comments
    order = "<" if fmt == "binary_little_endian" else ">"
    buf = memoryview(raw)
    result, offset = {}, body_start
    for elem in elements:
        result[elem.name], offset = _read_binary_element(path, elem, buf, offset, order)
    return result, comments


def _fan(lists: np.ndarray | list[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Split polygons into triangle fans.

    Args:
        lists: per face, ``n * width`` numbers (n corners of ``width`` numbers each).
    Returns:
        (triangles, source_face): (F', 3, width) corner values and (F',) index of the polygon each
        triangle came from.
    """
    if len(lists) == 0:
        return np.zeros((0, 3, width)), np.zeros(0, dtype=np.int64)
    if isinstance(lists, np.ndarray):
        polys = [lists.reshape(len(lists), -1, width)]
        owners = [np.arange(len(lists))]
    else:
        by_len: dict[int, list[int]] = {}
        for i, item in enumerate(lists):
            by_len.setdefault(len(item), []).append(i)
        polys = [np.stack([lists[i] for i in idx]).reshape(len(idx), -1, width) for idx in by_len.values()]
        owners = [np.array(idx) for idx in by_len.values()]
    tris, src = [], []
    for poly, owner in zip(polys, owners):
        n = poly.shape[1]
        for k in range(1, n - 1):
            tris.append(poly[:, [0, k, k + 1]])
            src.append(owner)
    if not tris:
        return np.zeros((0, 3, width)), np.zeros(0, dtype=np.int64)
    source_face = np.concatenate(src)
    order = np.argsort(source_face, kind="stable")
    return np.concatenate(tris)[order], source_face[order]


def read_openmvs_ply(path: str | Path) -> tuple[TexturedMesh, list[str]]:
    """Read an OpenMVS textured mesh PLY.

    Args:
        path: the ``.ply`` file (see the module docstring for the layout).
    Returns:
        (mesh, texture_paths): the mesh with UDIM-global UVs (texture k -> tile 1001 + k, v up) and
        the texture files named by the header's ``TextureFile`` comments, joined to the PLY's folder,
        in tile order. Degenerate (zero-area) faces are dropped with a warning.
    Raises:
        InputError: missing or corrupt file, no faces or no UVs, no ``TextureFile`` comment,
            ``texnumber`` out of range, UVs outside [0, 1].
    """
    path = Path(path)
    elements, comments = read_ply_elements(path)
    textures = [str(path.parent / m.group(1).strip()) for c in comments
                if (m := re.match(r"\s*TextureFile\s+(.+)$", c))]
    vertex = elements.get("vertex", {})
    if not all(k in vertex for k in "xyz"):
        raise InputError(f"{path}: no 'vertex' element with x, y, z properties")
    vertices = np.stack([vertex[k] for k in "xyz"], axis=1).astype(np.float64)
    face = elements.get("face", {})
    index_key = next((k for k in ("vertex_indices", "vertex_index") if k in face), None)
    if index_key is None:
        raise InputError(f"{path}: no 'face' element with a 'vertex_indices' list")
    if not textures:
        raise InputError(f"{path}: the header names no texture (no 'comment TextureFile <name>' line)")

    corners, owner = _fan(face[index_key], 1)
    faces = corners[..., 0].astype(np.int64)
    if "texcoord" in face:
        lengths = ([len(x) for x in face["texcoord"]] if isinstance(face["texcoord"], list)
                   else [face["texcoord"].shape[1]] * len(faces))
        index_lengths = ([len(x) for x in face[index_key]] if isinstance(face[index_key], list)
                         else [face[index_key].shape[1]] * len(faces))
        bad = [i for i, (a, b) in enumerate(zip(lengths, index_lengths)) if a != 2 * b]
        if bad:
            raise InputError(f"{path}: {len(bad)} faces have a texcoord list that is not 2 numbers per corner "
                             f"(face {bad[0]})")
        uv, _ = _fan(face["texcoord"], 2)
    else:
        names = next((pair for pair in _VERTEX_UV_NAMES if all(k in vertex for k in pair)), None)
        if names is None:
            raise InputError(f"{path}: the mesh has no UVs (no per-face 'texcoord' list and no per-vertex "
                             "texture_u/texture_v); texture it first (OpenMVS TextureMesh)")
        uv = np.stack([vertex[names[0]], vertex[names[1]]], axis=1).astype(np.float64)[faces]
    uv = uv.astype(np.float64)
    if "texnumber" in face:
        texnumber = np.asarray(face["texnumber"], dtype=np.int64)[owner]
        bad = (texnumber < 0) | (texnumber >= len(textures))
        if bad.any():
            raise InputError(f"{path}: {int(bad.sum())} faces have a texnumber outside 0..{len(textures) - 1} "
                             f"({len(textures)} TextureFile lines)")
        uv[..., 0] += (texnumber % 10)[:, None]
        uv[..., 1] += (texnumber // 10)[:, None]
    elif len(textures) > 1:
        raise InputError(f"{path}: the header names {len(textures)} textures but faces have no 'texnumber'")
    mesh = finish_mesh(vertices, faces, uv, path, range(1001, 1001 + len(textures)))
    return mesh, textures


_MVS_NO_ID = 0xFFFFFFFF
_MVS_MAX_VERSION = 7


class _Stream:
    """Little-endian reader over the bytes of a ``.mvs`` file; InputError when it runs short."""

    def __init__(self, path: Path, raw: bytes) -> None:
        self.path, self.raw, self.pos = path, raw, 0

    def take(self, dtype: str, count: int = 1) -> np.ndarray:
        nbytes = np.dtype(dtype).itemsize * count
        if self.pos + nbytes > len(self.raw):
            raise InputError(f"{self.path}: file is truncated (needed {nbytes} bytes at offset {self.pos}, "
                             f"{len(self.raw)} in the file)")
        out = np.frombuffer(self.raw, dtype, count, self.pos)
        self.pos += nbytes
        return out

    def u32(self) -> int:
        return int(self.take("<u4")[0])

    def size(self) -> int:
        n = int(self.take("<u8")[0])
        if n > len(self.raw):
            raise InputError(f"{self.path}: corrupt array length {n} at offset {self.pos - 8}")
        return n

    def string(self) -> str:
        n = self.size()
        return bytes(self.take("u1", n)).decode("utf-8", errors="replace")

    def mat33(self) -> np.ndarray:
        return self.take("<f8", 9).reshape(3, 3).copy()  # cv::Matx stores rows first

    def vec3(self) -> np.ndarray:
        return self.take("<f8", 3).copy()


def read_mvs_cameras(path: str | Path) -> list[Camera]:
    """Read the posed images of an OpenMVS ``scene.mvs`` (interface format versions 0 to 7).

    The file is read up to its image list (platforms: cameras with K, R, C relative to the
    platform, and poses; images: name, platform, camera and pose ids). An image's world-to-camera
    pose is the platform camera composed with the platform pose (``R = R_cam R_pose``,
    ``C = R_pose^T C_cam + C_pose``), ``x = K R (X - C)``. OpenMVS puts pixel centres on integer
    coordinates, :mod:`rrd.scene` at +0.5, so 0.5 is added to the principal point.

    Returns:
        One :class:`Camera` per image with a pose, in file order; ``name`` = the image file's
        basename. Images without a pose are skipped with a warning.
    Raises:
        InputError: missing, truncated or foreign file, a version newer than 7, cameras stored
            with normalized intrinsics (no resolution), ids out of range.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: OpenMVS scene file not found")
    s = _Stream(path, path.read_bytes())
    if bytes(s.raw[:4]) == b"MVSI":
        s.pos = 4
        version = s.u32()
        s.u32()  # reserved
        if version > _MVS_MAX_VERSION:
            raise InputError(f"{path}: OpenMVS interface version {version} is newer than the supported "
                             f"0..{_MVS_MAX_VERSION}")
    elif path.suffix.lower() == ".mvs":
        version = 0  # the first format had no header
    else:
        raise InputError(f"{path}: not an OpenMVS interface file (no 'MVSI' header)")

    platforms = []
    for _ in range(s.size()):
        s.string()  # platform name
        cams = []
        for _ in range(s.size()):
            s.string()  # camera name
            if version > 3:
                s.string()  # band name
            width, height = (s.u32(), s.u32()) if version > 0 else (0, 0)
            cams.append((s.mat33(), s.mat33(), s.vec3(), width, height))
        poses = [(s.mat33(), s.vec3()) for _ in range(s.size())]
        platforms.append((cams, poses))

    cameras, unposed = [], []
    for _ in range(s.size()):
        name = s.string()
        if version > 4:
            s.string()  # mask name
        platform_id, camera_id, pose_id = s.u32(), s.u32(), s.u32()
        if version > 2:
            s.u32()  # global image id
        if version > 6:
            s.take("<f4", 3)  # min/avg/max depth
            s.take("u1", 24 * s.size())  # view scores: 2 uint32 + 4 float32 each
        basename = Path(name.replace("\\", "/")).name
        if pose_id == _MVS_NO_ID:
            unposed.append(basename)
            continue
        try:
            cams, poses = platforms[platform_id]
            K, R_cam, C_cam, width, height = cams[camera_id]
            R_pose, C_pose = poses[pose_id]
        except IndexError:
            raise InputError(f"{path}: image {basename!r} refers to platform {platform_id}, camera {camera_id}, "
                             f"pose {pose_id}, which do not exist") from None
        if width == 0 or height == 0:
            raise InputError(f"{path}: camera of image {basename!r} has normalized intrinsics without a resolution; "
                             "export the scene with image sizes (OpenMVS interface version >= 1)")
        K = K.copy()
        K[0, 2] += 0.5
        K[1, 2] += 0.5
        with np.errstate(all="ignore"):  # huge values overflow; checked_camera refuses the result
            R = R_cam @ R_pose
            C = R_pose.T @ C_cam + C_pose
            t = -R @ C
        cameras.append(checked_camera(path, K, R, t, width, height, basename))
    if unposed:
        warnings.warn(f"{path}: skipped {len(unposed)} images without a pose: {', '.join(unposed)}", stacklevel=2)
    if not cameras:
        raise InputError(f"{path}: no image has a pose")
    return cameras
