"""The ``load`` stage: a scene from the demo generator, a COLMAP workspace or a Meshroom output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rrd.scene import Scene
from rrd_pipeline.sources import SceneSource, load_scene
from rrd_pipeline.stage import StageContext, stage

__all__ = ["LoadParams"]


@dataclass(frozen=True)
class LoadParams:
    """See :class:`rrd_pipeline.sources.SceneSource`; no ``colmap``/``sfm`` means the demo scene."""

    colmap: Path | None = None
    sfm: Path | None = None
    mesh: Path | None = None
    images: Path | None = None
    scale: float = 1.0
    seed: int = 0


@stage("load", params=LoadParams, outputs={"scene": "scene"})
def load(ctx: StageContext, params: LoadParams) -> dict[str, Any]:
    """Load a scene: cameras, photos, textured mesh and atlas."""
    scene: Scene = load_scene(SceneSource(**vars(params)))
    ctx.log.info("scene %s: %d faces, %d cameras, atlas %d x %dx%d", scene.name, len(scene.mesh.faces),
                 len(scene.cameras), len(scene.atlas.udims), scene.atlas.width, scene.atlas.height)
    return {"scene": scene}
