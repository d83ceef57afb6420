"""Where a scene comes from: the embedded demo, a COLMAP workspace or a Meshroom output.

One function reads the options the CLI and the ``load`` stage share, so both accept the same
combinations: nothing (the demo scene), ``colmap + mesh``, ``sfm + mesh + images``, or a ``mesh``
alone (no cameras: the commands that need views generate them, :func:`rrd.viewpoints.texel_cameras`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rrd.demo_scene import make_demo_scene
from rrd.errors import InputError
from rrd.scene import Scene
from rrd_pipeline.choices import VertexFrameChoice

__all__ = ["SceneSource", "load_scene", "colmap_model_dir"]


@dataclass(frozen=True)
class SceneSource:
    """The scene options.

    Attributes:
        colmap: a COLMAP workspace (holding ``sparse/0`` or ``sparse`` and ``images``) or a sparse model folder.
        sfm: an AliceVision ``.sfm`` camera file (Meshroom).
        mesh: the textured mesh: OpenMVS ``.ply`` or Meshroom ``texturedMesh.obj``.
        images: the photos' folder; default ``<colmap>/images`` for a workspace.
        scale: photo and camera resize factor in (0, 1].
        seed: seed of the demo scene (used when neither colmap nor sfm is given).
        vertex_frame: how a Meshroom ``.obj``'s vertices relate to the cameras' frame: "auto" (from its
            material names), "sfm" or "yz_flipped" (:mod:`rrd_pipeline.loaders.meshroom`).
    """

    colmap: Path | None = None
    sfm: Path | None = None
    mesh: Path | None = None
    images: Path | None = None
    scale: float = 1.0
    seed: int = 0
    vertex_frame: VertexFrameChoice = "auto"

    def __post_init__(self) -> None:
        if not 0.0 < self.scale <= 1.0:
            raise InputError(f"scale {self.scale!r} is out of range; valid: 0 < scale <= 1")


def colmap_model_dir(workspace: Path) -> Path:
    """The sparse model inside a COLMAP workspace (``sparse/0``, ``sparse``) or the folder itself."""
    for candidate in (workspace / "sparse" / "0", workspace / "sparse", workspace):
        if any((candidate / f"cameras{ext}").is_file() for ext in (".bin", ".txt")):
            return candidate
    raise InputError(f"{workspace}: no COLMAP sparse model (cameras.bin/.txt) in it, in sparse/ or in sparse/0/")


def load_scene(source: SceneSource) -> Scene:
    """Load the scene the options describe (see :class:`SceneSource`)."""
    if source.colmap is not None and source.sfm is not None:
        raise InputError("give either --colmap (COLMAP workspace) or --sfm (Meshroom cameras), not both")
    if (source.colmap is not None or source.sfm is not None) and source.mesh is None:
        raise InputError("--mesh is required with --colmap or --sfm (the textured mesh: .ply or .obj)")
    if source.colmap is not None:
        from rrd_pipeline.loaders.colmap import load_colmap_scene

        colmap = Path(source.colmap)
        if not colmap.is_dir():
            raise InputError(f"{colmap}: COLMAP workspace not found")
        images = source.images if source.images is not None else colmap / "images"
        scene = load_colmap_scene(colmap_model_dir(colmap), images, source.mesh, scale=source.scale,
                                  vertex_frame=source.vertex_frame)
        scene.mesh_file = str(source.mesh)
        return scene
    if source.sfm is not None:
        from rrd_pipeline.loaders.meshroom import load_meshroom_scene

        if source.images is None:
            raise InputError("--images is required with --sfm (the folder of the photos the .sfm names)")
        scene = load_meshroom_scene(source.sfm, source.mesh, source.images, scale=source.scale,
                                    vertex_frame=source.vertex_frame)
        scene.mesh_file = str(source.mesh)
        return scene
    if source.mesh is not None:
        from rrd_pipeline.loaders import read_textured_mesh

        mesh_path = Path(source.mesh)
        if source.images is not None or source.scale != 1.0:
            raise InputError("--images and --scale apply to photos; a mesh alone has none (add --colmap or --sfm)")
        mesh, atlas = read_textured_mesh(mesh_path, vertex_frame=source.vertex_frame)
        return Scene(mesh, atlas, cameras=[], name=mesh_path.stem, mesh_file=str(mesh_path))
    scene = make_demo_scene(seed=source.seed)
    if source.scale != 1.0:
        raise InputError("--scale applies to loaded photos; the demo scene is generated at its own size")
    return scene
