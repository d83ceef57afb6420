"""Writing images, atlases and textured meshes, atomically.

Every file is written to a temporary file in its destination folder and then renamed onto its final
name with ``os.replace`` (:func:`atomic_write`), so a file under its final name is always complete.
Multi-file outputs write their textures first, then the material file, then the mesh, so a mesh on
disk never names a texture that is not there yet.

Pixel values follow :mod:`rrd.scene`: ``uint8`` images are written as they are; ``float`` images in
[0, 1] become ``round(255 x)`` (clipped) in 8-bit formats and are stored unchanged (float32) in
OpenEXR. Reading a written 8-bit tile back with :func:`rrd_pipeline.loaders.read_atlas` gives
``round(255 x) / 255``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from rrd.errors import InputError
from rrd.scene import Atlas, TexturedMesh

__all__ = ["LOSSLESS_SUFFIXES", "OBJ_CONVENTIONS", "atomic_write", "to_uint8", "write_image", "write_atlas",
           "write_obj", "write_ply"]

LOSSLESS_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".exr")
"""Image file endings :func:`write_atlas` accepts (JPEG is lossy and would change the atlas)."""

OBJ_CONVENTIONS = {
    # name: (material prefix, vertex sign flip applied when writing)
    "alicevision3": ("material_", np.array([1.0, -1.0, -1.0])),
    "legacy": ("TextureAtlas_", np.array([1.0, 1.0, 1.0])),
}
"""OBJ layouts of the Meshroom Texturing node: AliceVision >= 3.0 names materials ``material_<udim>``
and stores vertices as (x, -y, -z) of the SfM frame; older versions name them ``TextureAtlas_<udim>``
and store the SfM frame as is."""

_PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Give a temporary path next to ``path``; on success rename it onto ``path``.

    The temporary file lies in the same folder (so the rename is atomic on one file system) and keeps
    the suffix of ``path`` (so format detection by ending still works). If the body raises, the
    temporary file is deleted and ``path`` is left as it was. Missing parent folders are created.

    >>> import tempfile
    >>> from PIL import Image
    >>> path = Path(tempfile.mkdtemp()) / "out" / "texture_1001.png"
    >>> with atomic_write(path) as tmp:
    ...     Image.new("RGB", (4, 4)).save(tmp, format="PNG")
    >>> sorted(p.name for p in path.parent.iterdir())
    ['texture_1001.png']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp{path.suffix}"
    # os.open with mode 0o666 honours the umask, so the final file gets ordinary permissions
    # (tempfile.mkstemp would leave it readable by its owner only).
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:  # a failed write() names no file: name the one being written
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) image -> ``uint8``: ``uint8`` passes through, floats in [0, 1] become ``round(255 x)``
    (clipped to 0..255)."""
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(np.asarray(image, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def write_image(path: str | Path, image: np.ndarray, jpeg_quality: int = 95) -> Path:
    """Write an (H, W, 3) image atomically; the format follows the file ending.

    Args:
        path: ``.png``, ``.tif``/``.tiff``, ``.bmp``, ``.jpg``/``.jpeg`` (8-bit) or ``.exr`` (float32).
        image: (H, W, 3) ``uint8``, or float in [0, 1] (8-bit formats store ``round(255 x)``,
            clipped; OpenEXR stores the float32 values unchanged, ``uint8`` as ``x / 255``).
        jpeg_quality: Pillow JPEG quality 1..95 for ``.jpg`` files.
    Returns:
        ``path``.
    Raises:
        InputError: unknown file ending or an array that is not (H, W, 3).
    """
    path = Path(path)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"{path}: image to write has shape {image.shape}, expected (H, W, 3)")
    suffix = path.suffix.lower()
    if suffix == ".exr":
        import OpenEXR  # only EXR users pay for the module

        values = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
        channels = {c: np.ascontiguousarray(values[..., i]) for i, c in enumerate("RGB")}
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        with atomic_write(path) as tmp, OpenEXR.File(header, channels) as exr:
            exr.write(str(tmp))
        return path
    if suffix not in _PIL_FORMATS:
        raise InputError(f"{path}: unknown image file ending {suffix!r}; expected one of "
                         f"{', '.join(sorted(set(_PIL_FORMATS) | {'.exr'}))}")
    options = {"quality": jpeg_quality} if _PIL_FORMATS[suffix] == "JPEG" else {}
    if _PIL_FORMATS[suffix] == "TIFF":
        options = {"compression": "tiff_deflate"}
    with atomic_write(path) as tmp:
        Image.fromarray(to_uint8(image)).save(tmp, format=_PIL_FORMATS[suffix], **options)
    return path


def write_atlas(directory: str | Path, atlas: Atlas) -> list[Path]:
    """Write every page of ``atlas`` (at its own size) to ``directory / atlas.names[i]`` without lossy compression.

    Args:
        directory: destination folder (created if missing).
        atlas: tiles in [0, 1]; a ``.exr`` name stores float32 exactly, other names store
            ``round(255 x)`` losslessly compressed.
    Returns:
        The written paths, in tile order.
    Raises:
        InputError: a tile name with a lossy or unknown ending (rename the tiles, e.g. to ``.png``).
    """
    directory = Path(directory)
    for name in atlas.names:
        if Path(name).suffix.lower() not in LOSSLESS_SUFFIXES or Path(name).name != name:
            raise InputError(f"atlas tile name {name!r}: expected a plain file name ending in one of "
                             f"{', '.join(LOSSLESS_SUFFIXES)} (JPEG would change the atlas)")
    return [write_image(directory / name, atlas.page(t)) for t, name in enumerate(atlas.names)]


def _check_mesh_atlas(path: Path, mesh: TexturedMesh, atlas: Atlas) -> np.ndarray:
    """Index into ``atlas.tiles`` of every face; InputError if a face's tile has no texture."""
    index = atlas.tile_index(mesh.face_udim)
    if (index < 0).any():
        missing = sorted(set(mesh.face_udim[index < 0].tolist()))
        raise InputError(f"{path}: faces use UDIM tiles {missing} that the atlas (tiles {list(atlas.udims)}) lacks")
    return index


def write_obj(path: str | Path, mesh: TexturedMesh, atlas: Atlas, convention: str = "alicevision3",
              write_textures: bool = True) -> Path:
    """Write a Meshroom-style OBJ + MTL (+ texture tiles) that :func:`read_meshroom_obj` reads back.

    Args:
        path: the ``.obj`` file; the material library is ``path.with_suffix('.mtl')`` and the tiles
            go next to it under ``atlas.names``.
        mesh: faces are written in their order, switching ``usemtl`` when the tile changes; ``vt``
            are UDIM-global (v up), as AliceVision writes them with UDIMs enabled.
        atlas: one material per tile, ``map_Kd`` = the tile's name.
        convention: a key of :data:`OBJ_CONVENTIONS` (material names and vertex frame).
        write_textures: also write the tiles with :func:`write_atlas`.
    Returns:
        ``path``.
    Raises:
        InputError: unknown convention, or faces in tiles the atlas lacks.
    """
    path = Path(path)
    if convention not in OBJ_CONVENTIONS:
        raise InputError(f"OBJ convention {convention!r} is unknown; expected one of {', '.join(OBJ_CONVENTIONS)}")
    prefix, sign = OBJ_CONVENTIONS[convention]
    face_tile = np.asarray(atlas.udims)[_check_mesh_atlas(path, mesh, atlas)]
    if write_textures:
        write_atlas(path.parent, atlas)
    mtl_path = path.with_suffix(".mtl")
    mtl = ["# Wavefront material file written by rrd", ""]
    for udim, name in zip(atlas.udims, atlas.names):
        mtl += [f"newmtl {prefix}{udim}", "Ka 0.6 0.6 0.6", "Kd 0.6 0.6 0.6", "Ks 0.0 0.0 0.0", "d 1.0",
                "Ns 0.0", "illum 2", f"map_Kd {name}", ""]
    with atomic_write(mtl_path) as tmp:
        tmp.write_text("\n".join(mtl))

    uv_rows, uv_index = np.unique(mesh.uv.reshape(-1, 2), axis=0, return_inverse=True)
    uv_index = uv_index.reshape(-1, 3) + 1
    vertex_index = mesh.faces + 1
    lines = ["# Wavefront OBJ file written by rrd", f"mtllib {mtl_path.name}", ""]
    # %.9g keeps every float32 value exactly.
    lines += [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in (mesh.vertices.astype(np.float64) * sign)]
    lines += [f"vt {u:.9g} {v:.9g}" for u, v in uv_rows.astype(np.float64)]
    current = None
    for tile, vi, ti in zip(face_tile.tolist(), vertex_index.tolist(), uv_index.tolist()):
        if tile != current:
            lines.append(f"usemtl {prefix}{tile}")
            current = tile
        lines.append(f"f {vi[0]}/{ti[0]} {vi[1]}/{ti[1]} {vi[2]}/{ti[2]}")
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def write_ply(path: str | Path, mesh: TexturedMesh, atlas: Atlas, write_textures: bool = True) -> Path:
    """Write an OpenMVS-style textured binary PLY that :func:`read_openmvs_ply` reads back.

    Layout: ``comment TextureFile <name>`` per tile in atlas order, float32 ``x y z``, faces with
    ``vertex_indices`` (uchar count, uint32) and ``texcoord`` (uchar count, 6 float32: the corners'
    UVs local to their tile, v up) and, with several tiles, an int32 ``texnumber`` (index into the
    atlas). A PLY holds no UDIM numbers: reading it back numbers the textures 1001, 1002, ... in
    the order written.

    Args:
        path: the ``.ply`` file; tiles go next to it under ``atlas.names``.
        mesh, atlas: the textured mesh; every face's tile must be in the atlas.
        write_textures: also write the tiles with :func:`write_atlas`.
    Returns:
        ``path``.
    """
    path = Path(path)
    texnumber = _check_mesh_atlas(path, mesh, atlas)
    if write_textures:
        write_atlas(path.parent, atlas)
    header = ["ply", "format binary_little_endian 1.0", *[f"comment TextureFile {n}" for n in atlas.names],
              f"element vertex {len(mesh.vertices)}", "property float x", "property float y", "property float z",
              f"element face {len(mesh.faces)}", "property list uchar uint vertex_indices",
              "property list uchar float texcoord"]
    fields = [("n_index", "u1"), ("index", "<u4", (3,)), ("n_uv", "u1"), ("uv", "<f4", (6,))]
    if len(atlas.udims) > 1:
        header.append("property int texnumber")
        fields.append(("texnumber", "<i4"))
    header.append("end_header")
    faces = np.zeros(len(mesh.faces), dtype=np.dtype(fields))
    faces["n_index"], faces["n_uv"] = 3, 6
    faces["index"] = mesh.faces
    faces["uv"] = mesh.local_uv().reshape(-1, 6)
    if len(atlas.udims) > 1:
        faces["texnumber"] = texnumber
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(("\n".join(header) + "\n").encode("ascii"))
            f.write(mesh.vertices.astype("<f4").tobytes())
            f.write(faces.tobytes())
    return path
