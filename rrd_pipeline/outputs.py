"""Writing a processed atlas so that the mesh and its material file keep working.

The mesh file the scene was read from is copied as it is (an OpenMVS ``.ply``, or a Meshroom
``texturedMesh.obj`` with its ``.mtl``) and the new tiles are written beside it under the original
names, losslessly. A tile whose original name is lossy (``.jpg``) is written as ``.png`` and the
copied material file / PLY header is updated to name it. A scene generated in code (the demo) is
written as an OBJ + MTL in the pre-3.0 AliceVision convention (its world frame is the SfM frame).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from rrd.scene import Atlas, Scene
from rrd_pipeline.writers import LOSSLESS_SUFFIXES, atomic_write, write_atlas, write_obj

__all__ = ["write_textured_mesh", "copy_mesh_file"]


def _lossless_names(atlas: Atlas) -> dict[str, str]:
    return {n: (n if Path(n).suffix.lower() in LOSSLESS_SUFFIXES else str(Path(n).with_suffix(".png")))
            for n in atlas.names}


def _copy_renaming(src: Path, dst: Path, renames: dict[str, str]) -> None:
    """Copy a text file (or a PLY, whose header is text) replacing texture file names."""
    if all(a == b for a, b in renames.items()):
        with atomic_write(dst) as tmp:
            shutil.copyfile(src, tmp)
        return
    data = src.read_bytes()
    if src.suffix.lower() == ".ply":
        end = data.index(b"end_header") + len(b"end_header")
        head, body = data[:end].decode("ascii"), data[end:]
        for a, b in renames.items():
            head = head.replace(f"TextureFile {a}", f"TextureFile {b}")
        data = head.encode("ascii") + body
    else:
        text = data.decode("utf-8", errors="surrogateescape")
        for a, b in renames.items():
            text = text.replace(a, b)
        data = text.encode("utf-8", errors="surrogateescape")
    with atomic_write(dst) as tmp:
        tmp.write_bytes(data)


def copy_mesh_file(out_dir: Path, scene: Scene, renames: dict[str, str]) -> list[Path]:
    """Copy the mesh file ``scene`` was read from (and an OBJ's material file) into ``out_dir``, with the
    texture file names changed by ``renames``; returns the written files, the mesh file first."""
    src = Path(scene.mesh_file)
    written = [out_dir / src.name]
    _copy_renaming(src, written[0], renames)
    if src.suffix.lower() == ".obj":
        for line in src.read_text(errors="replace").splitlines():
            if line.startswith("mtllib "):
                mtl = src.parent / line.split(None, 1)[1].strip()
                _copy_renaming(mtl, out_dir / mtl.name, renames)
                written.append(out_dir / mtl.name)
    return written


def write_textured_mesh(out_dir: Path, scene: Scene, tiles: np.ndarray) -> list[Path]:
    """Write the mesh of ``scene`` with new texel values into ``out_dir``.

    Args:
        out_dir: destination folder (created).
        scene: the scene (its ``mesh_file``, if any, is copied).
        tiles: (T, H, W, 3) float texels in [0, 1], the layout of ``scene.atlas``.
    Returns:
        The written files: the mesh file first, then its material file (OBJ), then the tiles.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    renames = _lossless_names(scene.atlas)
    atlas = Atlas(np.clip(tiles, 0.0, 1.0), scene.atlas.udims, tuple(renames[n] for n in scene.atlas.names),
                  scene.atlas.sizes)
    if scene.mesh_file is None or Path(scene.mesh_file).suffix.lower() not in (".ply", ".obj"):
        mesh_path = write_obj(out_dir / "texturedMesh.obj", scene.mesh, atlas, convention="legacy")
        return [mesh_path, mesh_path.with_suffix(".mtl"), *[out_dir / n for n in atlas.names]]
    return copy_mesh_file(out_dir, scene, renames) + write_atlas(out_dir, atlas)
