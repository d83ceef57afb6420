"""The ``pad`` stage: fill the gutters of a scene's atlas with a padding method and write it with the mesh.

Occupancy is the UV triangles grown by one texel (``texel_coverage(margin=1.0)``), so no texel that a
render reads changes (REFERENCE.md section 6); the padding itself is :func:`rrd_pipeline.methods.padded_atlas`,
the one the evaluation's padding baselines use. The files are written by
:func:`rrd_pipeline.outputs.write_textured_mesh`: the mesh file the scene came from (or an OBJ for the
demo scene) with the padded tiles beside it under the original names, losslessly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rrd.scene import Atlas, Scene
from rrd_pipeline.methods import padded_atlas
from rrd_pipeline.choices import PaddingChoice
from rrd_pipeline.outputs import write_textured_mesh
from rrd_pipeline.stage import StageContext, stage

__all__ = ["PadParams"]


@dataclass(frozen=True)
class PadParams:
    """method: a key of rrd.padding.PADDING_METHODS (none, dilate, pushpull, spp, vdmc, hbf, sparse, extend)."""

    method: PaddingChoice = "spp"


@stage("pad", params=PadParams, inputs={"scene": "scene"}, outputs={"scene": "scene", "mesh": "file"})
def pad_stage(ctx: StageContext, params: PadParams, scene: Scene) -> dict[str, Any]:
    """Pad the atlas gutters (texels a render reads kept bit for bit); write the mesh and padded tiles."""
    ctx.progress(0.0, f"padding {params.method}")
    tiles = padded_atlas(scene, params.method)
    ctx.progress(0.8, "writing")
    files = write_textured_mesh(ctx.out_dir, scene, tiles)
    tile_names = tuple(Path(f).name for f in files[-len(scene.atlas.udims):])
    ctx.progress(1.0)
    ctx.log.info("padded %d tile(s) with %s into %s", len(tile_names), params.method, ctx.out_dir)
    return {"scene": replace(scene, atlas=Atlas(tiles, scene.atlas.udims, tile_names, scene.atlas.sizes)),
            "mesh": files[0]}
