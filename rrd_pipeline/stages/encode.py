"""The ``encode`` stage: code a scene's atlas at one operating point of a real codec, keep the decoded atlas.

Each tile is coded as its own image (:func:`rrd.evaluate.code_atlas`). Files: the bitstreams
``<tile stem>.jpg`` (JPEG), ``.265`` (HEVC, raw Annex-B) or ``.266`` (VVC), and the decoded tiles as
PNG under ``decoded/`` with the tiles' stems. The output scene carries the decoded atlas, so a
``render`` stage downstream shows what the coded atlas looks like on the mesh.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rrd.codec import code_atlas
from rrd.scene import Atlas, Scene
from rrd_pipeline.choices import CodecChoice
from rrd_pipeline.codecs import CODECS, get_codec
from rrd_pipeline.stage import StageContext, stage
from rrd_pipeline.writers import atomic_write, write_atlas

__all__ = ["EncodeParams", "BITSTREAM_SUFFIXES"]

BITSTREAM_SUFFIXES = {"jpeg": ".jpg", "hevc": ".265", "vvc": ".266"}
"""File ending of each codec's bitstream."""


@dataclass(frozen=True)
class EncodeParams:
    """param: JPEG quality or QP; codec: jpeg | hevc | vvc (default options)."""

    param: int
    codec: CodecChoice = "jpeg"

    def __post_init__(self) -> None:
        CODECS.lookup(self.codec).spec.check_param(self.param)


@stage("encode", params=EncodeParams, inputs={"scene": "scene"},
       outputs={"scene": "scene", "bitstreams": "files", "summary": "any"})
def encode_stage(ctx: StageContext, params: EncodeParams, scene: Scene) -> dict[str, Any]:
    """Code the atlas at one operating point; write the bitstreams and the decoded tiles."""
    codec = get_codec(params.codec)
    ctx.progress(0.0, f"{codec.name} {codec.param_name} {params.param}")
    coded = code_atlas(codec, scene.atlas.tiles, params.param, scene.atlas.sizes)
    suffix = BITSTREAM_SUFFIXES.get(codec.name, f".{codec.name}")
    bitstreams = []
    for name, data in zip(scene.atlas.names, coded.bitstreams):
        path = ctx.out_dir / (Path(name).stem + suffix)
        with atomic_write(path) as tmp:
            tmp.write_bytes(data)
        bitstreams.append(path)
    decoded = Atlas(coded.decoded, scene.atlas.udims, tuple(Path(n).stem + ".png" for n in scene.atlas.names),
                    scene.atlas.sizes)
    write_atlas(ctx.out_dir / "decoded", decoded)
    ctx.progress(1.0)
    summary = {"codec": codec.name, codec.param_name: params.param, "bytes": coded.nbytes,
               "bpp": round(coded.bpp, 4)}
    return {"scene": replace(scene, atlas=decoded), "bitstreams": bitstreams, "summary": summary}
