"""Loaders for photogrammetry outputs: OpenMVS, COLMAP, Meshroom (AliceVision), any textured OBJ and glTF 2.0.

Every loader returns the types of :mod:`rrd.scene` in its conventions and raises
:class:`rrd.errors.InputError` with one line naming the file and the problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rrd.errors import InputError
from rrd.scene import Atlas, TexturedMesh
from rrd_pipeline.loaders.colmap import load_colmap_scene, read_colmap_cameras
from rrd_pipeline.loaders.images import load_photos, read_atlas, read_image
from rrd_pipeline.loaders.gltf import read_gltf
from rrd_pipeline.loaders.meshroom import is_meshroom_obj, load_meshroom_scene, read_meshroom_obj, read_sfm, write_sfm
from rrd_pipeline.loaders.obj import read_obj
from rrd_pipeline.loaders.openmvs import read_mvs_cameras, read_openmvs_ply

__all__ = [
    "read_image", "read_atlas", "load_photos",
    "read_openmvs_ply", "read_mvs_cameras",
    "read_colmap_cameras", "load_colmap_scene",
    "read_meshroom_obj", "read_sfm", "write_sfm", "load_meshroom_scene",
    "read_obj", "read_gltf", "read_textured_mesh",
]


def read_textured_mesh(path: str | Path, texture_paths: Sequence[str | Path] | None = None,
                       vertex_frame: str = "auto") -> tuple[TexturedMesh, Atlas]:
    """Read a textured mesh and its atlas, choosing the reader by file ending.

    Args:
        path: ``.ply`` (OpenMVS, :func:`read_openmvs_ply`), ``.obj`` (:func:`read_meshroom_obj`: Meshroom's
            UDIM meshes, and every other texturer's OBJ with material k as page 1001 + k) or ``.glb`` /
            ``.gltf`` (:func:`rrd_pipeline.loaders.gltf.read_gltf`).
        texture_paths: for a ``.ply``, texture files replacing those its header names (tile 1001 + k
            for the k-th).
        vertex_frame: for a Meshroom ``.obj``, how its vertices relate to the cameras' frame
            (:data:`rrd_pipeline.loaders.meshroom.VERTEX_FRAMES`; "auto" reads it from the material names).
    Returns:
        (mesh, atlas) in the conventions of :mod:`rrd.scene`.
    Raises:
        InputError: unknown file type or any problem the reader finds.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".ply":
        mesh, named = read_openmvs_ply(path)
        files = named if texture_paths is None else list(texture_paths)
        if len(files) != len(named):
            raise InputError(f"{path}: the mesh uses {len(named)} textures but {len(files)} texture files "
                             "were given")
        return mesh, read_atlas(files, range(1001, 1001 + len(files)))
    if suffix == ".obj":
        if texture_paths is not None:
            raise InputError(f"{path}: an OBJ names its textures in its .mtl; texture_paths applies to .ply only")
        if not path.is_file():
            raise InputError(f"{path}: OBJ file not found")
        if is_meshroom_obj(path):
            return read_meshroom_obj(path, vertex_frame)
        mesh, atlas = read_obj(path)
        if vertex_frame == "yz_flipped":  # "auto" and "sfm": positions as written
            mesh = TexturedMesh(mesh.vertices * np.float32([1, -1, -1]), mesh.faces, mesh.uv)
        return mesh, atlas
    if suffix in (".glb", ".gltf"):
        if texture_paths is not None:
            raise InputError(f"{path}: a glTF names its textures itself; texture_paths applies to .ply only")
        return read_gltf(path)
    raise InputError(f"{path}: unknown mesh file type {suffix!r}; expected .ply (OpenMVS), .obj, .glb or .gltf")
