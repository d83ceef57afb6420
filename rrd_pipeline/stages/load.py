"""The ``load`` stage: a scene from the demo generator, a COLMAP workspace or a Meshroom output.

Its parameters are :class:`rrd_pipeline.sources.SceneSource`, the options the CLI commands share.
"""

from __future__ import annotations

from typing import Any

from rrd.scene import Scene
from rrd_pipeline.sources import SceneSource, load_scene
from rrd_pipeline.stage import StageContext, stage

__all__: list[str] = []


@stage("load", params=SceneSource, outputs={"scene": "scene"})
def load(ctx: StageContext, params: SceneSource) -> dict[str, Any]:
    """Load a scene: cameras, photos, textured mesh and atlas."""
    scene: Scene = load_scene(params)
    ctx.log.info("scene %s: %d faces, %d cameras, atlas %d x %dx%d", scene.name, len(scene.mesh.faces),
                 len(scene.cameras), len(scene.atlas.udims), scene.atlas.width, scene.atlas.height)
    return {"scene": scene}
