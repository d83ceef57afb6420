"""Any textured Wavefront OBJ + MTL (mvs-texturing / OpenDroneMap, OpenMVS's OBJ export, Agisoft Metashape,
RealityCapture, ...): one texture page per material, each page at its own size.

Meshroom's UDIM meshes (``texture_1001.png``, ...) are read by
:func:`rrd_pipeline.loaders.meshroom.read_meshroom_obj`; this reader is for every other OBJ.

What is read:
    * ``v x y z`` (further columns, e.g. vertex colours or a ``w``, are ignored), ``vt u v [w]``, and
      ``f`` with ``v/vt`` or ``v/vt/vn`` corners, 1-based or negative (counted back from the last ``v`` /
      ``vt`` so far); polygons are split into triangle fans ``(0, k, k + 1)``. ``vn``, ``o``, ``g``, ``s``,
      ``l``, ``p`` and every other statement are ignored; a line ending in ``\\`` continues on the next.
    * ``mtllib`` (the rest of the line is one file name, spaces allowed; failing that, several names
      separated by spaces), ``usemtl``; faces before the first ``usemtl`` use the library's material
      when it defines exactly one.
    * In the MTL, ``newmtl`` and ``map_Kd [options] file``: option tokens and their arguments are skipped
      and the rest of the line is the file name (spaces allowed). Options that change how the texture is
      mapped or its values (``-o``, ``-s``, ``-t``, ``-mm`` other than their identity) are refused, as rrd
      would render something else than a viewer; the other options (``-blendu``, ``-blendv``, ``-bm``,
      ``-boost``, ``-cc``, ``-clamp``, ``-imfchan``, ``-texres``, ``-type``) change nothing rrd renders.
      A file name with backslashes (written on Windows) is tried as written, then with ``/``.
    * Pages: anything :func:`rrd_pipeline.loaders.images.read_image` decodes (PNG, JPEG, TIFF, OpenEXR,
      WebP, ...); 8-bit values divided by 255, 16-bit by 65535, float pages (EXR, float TIFF) taken as
      stored and clipped to [0, 1] (no transfer curve is applied).

Scene model (:mod:`rrd.scene`):
    The textures in order of first use by a face are pages ``k = 0, 1, ...`` of UDIM ``1001 + k``, each at
    its own size; two materials naming the same file share its page. A face's UVs must lie in [0, 1]
    (up to :data:`rrd_pipeline.loaders._mesh.UV_TOLERANCE`; they are then clipped to it) and are moved to
    its page's tile by adding ``(k % 10, k // 10)``, the UDIM layout, so UDIM ``1001 + k`` whatever ``k``.
    Example: a corner ``vt 0.25 0.5`` of a face in the third texture used becomes ``(2.25, 0.5)``.
    Page names are the texture paths relative to the mesh's folder (``sub/tex 1.png``), so results can be
    written back beside the mesh.

Vertex frame: positions are taken as written, the world frame of the reconstruction that textured them
(these texturers write the frame of their input cameras); nothing is flipped or moved.

Refused with one line naming the file (:class:`rrd.errors.InputError`), never kept aside: faces without
texture coordinates and faces whose material has no ``map_Kd`` (rrd optimises the textures of a mesh that
is entirely textured; keeping such faces aside would publish a mesh that renders differently), UVs outside
[0, 1] (rrd does not wrap textures), a missing OBJ, MTL or page, a page that does not decode, a material
that no MTL defines, faces that index missing vertices or UVs, non-finite positions or UVs, an OBJ without
faces, a malformed line (with its number).

Safety: a ``mtllib`` or ``map_Kd`` path that leaves the mesh's folder (``..`` above it, a symbolic link
pointing out of it, an absolute path, a ``file:`` URI) is refused unless ``allow_outside=True``: a mesh
from elsewhere must not make rrd read, and embed in its output, a file of the machine it runs on. Other
URI schemes (``http:`` ...) are always refused: rrd reads local files only.
"""

from __future__ import annotations

import os
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import numpy as np

from rrd.errors import InputError
from rrd.scene import Atlas, TexturedMesh
from rrd_pipeline.loaders._mesh import UV_TOLERANCE, finish_mesh
from rrd_pipeline.loaders.images import read_image

__all__ = ["read_obj", "local_reference", "page_values"]

# map_Kd options: name -> (fewest, most arguments, identity values of the first two or None when the option
# changes nothing rrd renders). Arguments after the fewest are taken while they read as numbers.
_MAP_OPTIONS: dict[str, tuple[int, int, tuple[float, float] | None]] = {
    "-blendu": (1, 1, None), "-blendv": (1, 1, None), "-bm": (1, 1, None), "-boost": (1, 1, None),
    "-cc": (1, 1, None), "-clamp": (1, 1, None), "-imfchan": (1, 1, None), "-texres": (1, 1, None),
    "-type": (1, 1, None), "-mm": (1, 2, (0.0, 1.0)), "-o": (1, 3, (0.0, 0.0)), "-s": (1, 3, (1.0, 1.0)),
    "-t": (1, 3, (0.0, 0.0)),
}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")  # two letters at least: "C:" is a Windows drive
_ABSOLUTE = re.compile(r"^([/\\]|[A-Za-z]:)")  # "/x", "\\x", "C:\\x", "C:x": absolute on some system


def local_reference(base: Path, name: str, what: str, allow_outside: bool = False) -> tuple[Path, str]:
    """Resolve a file that ``base`` (a mesh file) names, refusing it when it leaves ``base``'s folder.

    Args:
        base: the file holding the reference (named in every message).
        name: the reference as written: a relative path, an absolute path or a ``file:`` URI (already
            percent-decoded where the format percent-encodes, as glTF URIs are).
        what: what is referenced, for messages (``"texture 'a.png' of material 'm'"``).
        allow_outside: accept absolute paths, ``file:`` URIs and paths leaving the folder.
    Returns:
        (path to read, page name): the name is the path relative to ``base``'s folder, POSIX style
        (``sub/tex 1.png``), or the file name alone for a file outside it.
    Raises:
        InputError: a reference leaving the folder (unless allowed; a symbolic link inside the folder
            that points out of it leaves it too), another URI scheme, a missing file.
    """
    folder = base.parent
    scheme = _SCHEME.match(name)
    if scheme and scheme.group(1).lower() != "file":
        raise InputError(f"{base}: {what} is a {scheme.group(1)}: URI; rrd reads local files only")
    if scheme and not allow_outside:
        raise InputError(f"{base}: {what} is a file: URI, which may lie anywhere on this machine; copy the file "
                         "beside the mesh (or allow files outside its folder: allow_outside)")
    if not scheme and _ABSOLUTE.match(name) and not allow_outside:
        raise InputError(f"{base}: {what} is an absolute path, which may lie anywhere on this machine; copy the "
                         "file beside the mesh and name it relatively (or allow files outside its folder: "
                         "allow_outside)")
    written = unquote(urlsplit(name).path) if scheme else name
    candidates = [written] + ([written.replace("\\", "/")] if "\\" in written else [])
    home = folder.resolve()
    for candidate in candidates:
        path = folder / candidate  # an absolute candidate replaces the folder
        try:
            target = path.resolve()
            inside, exists = target.is_relative_to(home), target.is_file()
        except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a loop of links
            raise InputError(f"{base}: {what} cannot be opened ({exc})") from None
        if not inside and not allow_outside:
            raise InputError(f"{base}: {what} lies outside the mesh's folder; copy it beside the mesh (or allow "
                             "files outside its folder: allow_outside)")
        if exists:
            relative = Path(os.path.relpath(os.path.normpath(path.absolute()), folder.absolute()))
            below = relative.parts[:1] != ("..",) and not relative.is_absolute()
            return path, PurePosixPath(*relative.parts).as_posix() if below else target.name
    raise InputError(f"{base}: {what} is missing")


def page_values(image: np.ndarray) -> np.ndarray:
    """A decoded image (:func:`rrd_pipeline.loaders.images.read_image`) as an atlas page.

    Returns:
        (H, W, 3) float32 in [0, 1]: ``uint8 / 255``; float images (16-bit already divided by 65535,
        EXR, float TIFF) clipped to [0, 1].
    """
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    return np.clip(np.nan_to_num(image.astype(np.float32)), 0.0, 1.0)


@dataclass(frozen=True)
class _Obj:
    """What an OBJ file holds, before the materials are resolved (indices 0-based, not yet range-checked)."""

    vertices: np.ndarray       # (V, 3) float64
    texcoords: np.ndarray      # (T, 2) float64
    face_v: np.ndarray         # (F, 3) int64 vertex of each triangle corner (polygons fanned)
    face_vt: np.ndarray        # (F, 3) int64 texture coordinate of each triangle corner
    face_line: np.ndarray      # (F,) int64 line number of each triangle's ``f`` statement
    face_material: np.ndarray  # (F,) int64 index into ``materials``, -1 before any ``usemtl``
    materials: list[str]       # ``usemtl`` names in order of first use
    mtllibs: list[tuple[str, int]]  # (the rest of each ``mtllib`` line, its line number)


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) with lines ending in ``\\`` joined to the next (numbered by their first line)."""
    if "\\\n" not in text and "\\\r" not in text:
        yield from enumerate(text.splitlines(), start=1)
        return
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def _parse_obj(path: Path) -> _Obj:
    """Read the statements rrd uses in one pass over the lines; numbers are converted in bulk afterwards."""
    v_rows, vt_rows, f_rows = [], [], []
    v_numbers, vt_numbers, f_numbers = array("q"), array("q"), array("q")
    materials: list[str] = []
    switches: list[tuple[int, int]] = [(0, -1)]  # (line number, material from that line on)
    mtllibs: list[tuple[str, int]] = []
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    for number, line in _logical_lines(text):
        if line[:1] in (" ", "\t"):
            line = line.lstrip()
        head = line[:2]
        if head in ("v ", "v\t"):
            v_rows.append(line)
            v_numbers.append(number)
        elif head == "vt" and line[2:3] in (" ", "\t"):
            vt_rows.append(line)
            vt_numbers.append(number)
        elif head in ("f ", "f\t"):
            f_rows.append(line)
            f_numbers.append(number)
        elif line.startswith(("usemtl", "mtllib")) and line[6:7] in (" ", "\t", ""):
            rest = line[6:].strip()
            if not rest:
                raise InputError(f"{path}:{number}: {line[:6]} without a name")
            if line.startswith("mtllib"):
                mtllibs.append((rest, number))
                continue
            if rest not in materials:
                materials.append(rest)
            switches.append((number, materials.index(rest)))
    vertices = _floats([r.split()[1:4] for r in v_rows], v_numbers, 3, path, "vertex")
    texcoords = _floats([t if len(t) == 2 else t + ["0"] for t in (r.split()[1:3] for r in vt_rows)], vt_numbers,
                        2, path, "texture coordinate")
    numbers = np.asarray(f_numbers, dtype=np.int64)
    # What was defined before each f line: v and vt (negative indices count back from there), the material.
    defined_v = np.searchsorted(np.asarray(v_numbers, dtype=np.int64), numbers)
    defined_vt = np.searchsorted(np.asarray(vt_numbers, dtype=np.int64), numbers)
    switch_lines, switch_material = np.asarray(switches, dtype=np.int64).T
    material = switch_material[np.searchsorted(switch_lines, numbers, side="right") - 1]
    face_v, face_vt, line_of = _faces(path, f_rows, numbers, defined_v, defined_vt)
    return _Obj(vertices, texcoords, face_v, face_vt, numbers[line_of], material[line_of], materials, mtllibs)


def _floats(rows: list[list[str]], numbers: array, width: int, path: Path, what: str) -> np.ndarray:
    """Token rows -> (N, width) float64, naming the first line that does not read as ``width`` numbers."""
    try:
        values = np.asarray(rows, dtype=np.float64)
        if values.shape == (len(rows), width) or not rows:
            return values.reshape(-1, width)
    except ValueError:  # ragged rows, or a token that is not a number
        pass
    for row, number in zip(rows, numbers):
        try:
            if len([float(x) for x in row]) != width:
                raise ValueError
        except ValueError:
            raise InputError(f"{path}:{number}: {what} {' '.join(row)[:80]!r} is not {width} numbers") from None
    raise AssertionError("unreachable: every row read as numbers")


def _corner_ids(path: Path, corners: list[str], numbers: np.ndarray) -> np.ndarray:
    """(N, 2) int64 raw OBJ indices (vertex, texture coordinate) of face corners ``v/vt`` or ``v/vt/vn``.

    Files that write every corner alike are converted in one call; mixed forms, corners without a texture
    coordinate and tokens that are not integers go corner by corner (``numbers``: each corner's line).
    """
    joined, n = " ".join(corners), len(corners)
    if n and "//" not in joined:
        raw = np.frombuffer(joined.encode("utf-8", errors="surrogateescape"), dtype=np.uint8)
        slashes = np.add.reduceat(raw == ord("/"), np.r_[0, np.flatnonzero(raw == ord(" ")) + 1])
        fields = int(slashes[0]) + 1
        if fields in (2, 3) and (slashes == fields - 1).all():
            try:
                return np.asarray(joined.replace("/", " ").split(), dtype=np.int64).reshape(n, fields)[:, :2]
            except (ValueError, OverflowError):
                pass
    out = np.empty((n, 2), dtype=np.int64)
    for i, (corner, number) in enumerate(zip(corners, numbers)):
        parts = corner.split("/")
        if len(parts) < 2 or not parts[1]:
            raise InputError(f"{path}:{number}: face corner {corner!r} has no texture coordinate; rrd needs UVs "
                             "on every face (texture the mesh first)")
        try:
            out[i] = int(parts[0]), int(parts[1])
        except (ValueError, OverflowError):
            raise InputError(f"{path}:{number}: face corner {corner!r} is not integer indices") from None
    return out


def _faces(path: Path, rows: list[str], numbers: np.ndarray, nv: np.ndarray,
           nvt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangles of the ``f`` lines: (F, 3) vertex and (F, 3) texture coordinate indices (0-based; negative
    ones counted back from the ``nv`` / ``nvt`` defined before their line), and each triangle's ``f`` line
    (an index into ``rows``). A polygon of n corners is the fan (0, k, k + 1), k = 1 .. n - 2."""
    tokens = [r.split() for r in rows]
    counts = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens)) - 1
    if (counts < 3).any():
        first = int(np.argmax(counts < 3))
        raise InputError(f"{path}:{numbers[first]}: malformed line {rows[first].strip()[:80]!r} (a face needs three "
                         "corners)")
    ids = _corner_ids(path, [c for t in tokens for c in t[1:]], np.repeat(numbers, counts))
    for column, defined, kind in ((0, nv, "vertex"), (1, nvt, "texture coordinate")):
        raw = ids[:, column]
        if (raw == 0).any():
            line = np.repeat(numbers, counts)[np.argmax(raw == 0)]
            raise InputError(f"{path}:{line}: {kind} index 0 (OBJ indices start at 1)")
        ids[:, column] = np.where(raw > 0, raw - 1, np.repeat(defined, counts) + raw)
    triangles = counts - 2
    line_of = np.repeat(np.arange(len(counts)), triangles)
    k = np.arange(int(triangles.sum())) - np.repeat(np.cumsum(triangles) - triangles, triangles) + 1
    first_corner = (np.cumsum(counts) - counts)[line_of]
    corners = np.stack([first_corner, first_corner + k, first_corner + k + 1], axis=1)
    return ids[corners, 0], ids[corners, 1], line_of


def _map_kd(mtl: Path, number: int, rest: str, material: str) -> str:
    """The file name of a ``map_Kd`` line (``rest``: the line after the keyword), options checked."""
    tokens = list(re.finditer(r"\S+", rest))
    i = 0
    while i < len(tokens) and tokens[i].group().lower() in _MAP_OPTIONS:
        option = tokens[i].group().lower()
        fewest, most, identity = _MAP_OPTIONS[option]
        args = [t.group() for t in tokens[i + 1:i + 1 + fewest]]
        for t in tokens[i + 1 + fewest:i + 1 + most]:
            try:
                float(t.group())
            except ValueError:
                break
            args.append(t.group())
        if len(args) < fewest:
            raise InputError(f"{mtl}:{number}: map_Kd option {option} of material {material!r} lacks its value")
        if identity is not None:
            try:
                values = [float(a) for a in args[:2]]
            except ValueError:
                raise InputError(f"{mtl}:{number}: map_Kd option {option} {' '.join(args)} of material "
                                 f"{material!r} is not numbers") from None
            values += list(identity[len(values):])
            if values != list(identity):
                raise InputError(f"{mtl}:{number}: map_Kd option {option} {' '.join(args)} of material "
                                 f"{material!r} changes the texture's mapping or values, which rrd does not "
                                 "apply; bake it into the texture")
        i += 1 + len(args)
    if i >= len(tokens):
        raise InputError(f"{mtl}:{number}: map_Kd of material {material!r} names no file")
    return rest[tokens[i].start():].strip()


def _parse_mtl(mtl: Path, textures: dict[str, tuple[str, Path, int] | None]) -> None:
    """Add ``material -> (texture name, mtl file, line)`` (None without ``map_Kd``) for materials not seen yet."""
    current, seen = None, set()
    text = mtl.read_bytes().decode("utf-8", errors="surrogateescape")
    for number, line in _logical_lines(text):
        words = line.split()
        if not words:
            continue
        if words[0] == "newmtl" and len(words) > 1:
            current = line.split(None, 1)[1].strip()
            if current not in textures:
                textures[current] = None
                seen.add(current)
        elif words[0].lower() == "map_kd" and current in seen:
            textures[current] = (_map_kd(mtl, number, line.split(None, 1)[1] if len(words) > 1 else "", current),
                                 mtl, number)


def _mtl_files(path: Path, obj: _Obj, allow_outside: bool) -> list[Path]:
    if not obj.mtllibs:
        raise InputError(f"{path}: no 'mtllib' line; an OBJ names its textures in a material library (.mtl)")
    files = []
    for rest, number in obj.mtllibs:
        try:
            files.append(local_reference(path, rest, f"material library {rest!r} (line {number})", allow_outside)[0])
        except InputError:
            names = rest.split()
            if len(names) < 2:
                raise
            # The OBJ specification allows several libraries on one line.
            files += [local_reference(path, n, f"material library {n!r} (line {number})", allow_outside)[0]
                      for n in names]
    return files


def read_obj(path: str | Path, allow_outside: bool = False) -> tuple[TexturedMesh, Atlas]:
    """Read a textured OBJ, its MTL and its texture pages (see the module docstring).

    Args:
        path: the ``.obj`` file.
        allow_outside: accept material libraries and textures outside the mesh's folder (absolute paths,
            ``file:`` URIs, ``..``); off by default, see the module docstring.
    Returns:
        (mesh, atlas): positions as written, float32; faces (F, 3) int64 (polygons fanned, degenerate
        faces dropped with a warning); UVs (F, 3, 2) float32, page ``k``'s faces in UDIM tile ``1001 + k``
        (v up); the atlas has one page per texture at its own size, names relative to the mesh's folder.
    Raises:
        InputError: one line naming the file and the problem (module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: OBJ file not found")
    try:
        return _read_obj(path, allow_outside)
    except OSError as exc:  # a file that exists but cannot be read (permissions, I/O)
        raise InputError(f"{path}: cannot read {exc.filename or 'a file it names'} ({exc.strerror or exc})") from None


def _read_obj(path: Path, allow_outside: bool) -> tuple[TexturedMesh, Atlas]:
    obj = _parse_obj(path)
    if not len(obj.face_v):
        raise InputError(f"{path}: the OBJ has no faces")
    vertices, texcoords, face_v, face_vt, face_line = (obj.vertices, obj.texcoords, obj.face_v, obj.face_vt,
                                                       obj.face_line)
    for ids, count, kind in ((face_v, len(vertices), "vertices"), (face_vt, len(texcoords), "texture coordinates")):
        bad = ((ids < 0) | (ids >= count)).any(axis=1)
        if bad.any():
            raise InputError(f"{path}:{face_line[np.argmax(bad)]}: a face indexes {kind} the file does not have "
                             f"(it has {count}); {int(bad.sum())} faces do")

    textures: dict[str, tuple[str, Path, int] | None] = {}
    libraries = _mtl_files(path, obj, allow_outside)
    for mtl in libraries:
        _parse_mtl(mtl, textures)
    face_material = obj.face_material.copy()
    materials = list(obj.materials)
    if (face_material < 0).any():
        if len(textures) != 1:
            raise InputError(f"{path}:{face_line[np.argmax(face_material < 0)]}: faces come before any 'usemtl' "
                             f"line and the material libraries define {len(textures)} materials, not one")
        materials.append(next(iter(textures)))
        face_material[face_material < 0] = len(materials) - 1

    # Pages in order of first use by a face; materials naming the same file share its page.
    first_use = np.full(len(materials), len(face_material))
    np.minimum.at(first_use, face_material, np.arange(len(face_material)))
    page_of_material = np.full(len(materials), -1)
    files, names = [], []
    lib_names = ", ".join(m.name for m in libraries)
    for m in sorted((m for m in range(len(materials)) if first_use[m] < len(face_material)),
                    key=lambda m: first_use[m]):
        name = materials[m]
        if name not in textures:
            raise InputError(f"{path}:{face_line[first_use[m]]}: material {name!r} is not defined in {lib_names}")
        if textures[name] is None:
            raise InputError(f"{path}:{face_line[first_use[m]]}: material {name!r} has no texture (no map_Kd in "
                             f"{lib_names}); rrd needs a texture on every face")
        texture, mtl, number = textures[name]
        file, label = local_reference(path, texture, f"texture {texture!r} of material {name!r} ({mtl.name} line "
                                      f"{number})", allow_outside)
        key = file.resolve()
        if key not in files:
            files.append(key)
            names.append(label)
        page_of_material[m] = files.index(key)

    uv = texcoords[face_vt]
    finite = np.isfinite(uv).all(axis=(1, 2))
    outside = finite & ((uv < -UV_TOLERANCE) | (uv > 1 + UV_TOLERANCE)).any(axis=(1, 2))
    if not finite.all() or outside.any():
        first = int(np.flatnonzero(~finite | outside)[0])
        problem = "non-finite UVs" if not finite[first] else \
            f"UVs outside [0, 1] ({np.round(uv[first], 4).tolist()}); rrd does not wrap textures"
        raise InputError(f"{path}:{face_line[first]}: a face has {problem} ({int((~finite | outside).sum())} "
                         "such faces; Meshroom UDIM meshes are read by read_meshroom_obj)")
    page = page_of_material[face_material]
    uv = np.clip(uv, 0.0, 1.0)
    uv[:, :, 0] += (page % 10)[:, None]
    uv[:, :, 1] += (page // 10)[:, None]

    pages = [page_values(read_image(f)) for f in files]
    udims = tuple(1001 + k for k in range(len(files)))
    atlas = Atlas.from_pages(pages, udims, tuple(names))
    return finish_mesh(vertices, face_v, uv, path, udims), atlas
