"""The ``render`` stage: renders of every source view and a PSNR table of render vs photo."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rrd.errors import InputError
from rrd.metrics import mean_psnr, psnr, psnr_yuv
from rrd.render import make_view, render, texel_vector, view_taps
from rrd.rasterize import rasterize
from rrd.scene import Scene
from rrd_pipeline.choices import BackendChoice, FilterChoice
from rrd_pipeline.stage import StageContext, stage
from rrd_pipeline.writers import atomic_write, write_image

__all__ = ["RenderParams", "psnr_table_markdown"]


@dataclass(frozen=True)
class RenderParams:
    """filter: texture filter; backend: rasterizer; compare: also write render|photo side-by-side PNGs."""

    filter: FilterChoice = "bilinear"
    backend: BackendChoice = "auto"
    compare: bool = True


def psnr_table_markdown(rows: list[dict[str, Any]], mean: dict[str, float]) -> str:
    """A markdown table of per-view masked PSNR (dB) with the mean as last row."""
    lines = ["| view | covered % | PSNR RGB (dB) | PSNR YUV (dB) |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['view']} | {100 * r['covered']:.1f} | {r['psnr']:.2f} | {r['psnr_yuv']:.2f} |")
    lines.append(f"| **mean** | | **{mean['psnr']:.2f}** | **{mean['psnr_yuv']:.2f}** |")
    return "\n".join(lines) + "\n"


@stage("render", params=RenderParams, inputs={"scene": "scene"}, outputs={"report": "file", "summary": "any"})
def render_stage(ctx: StageContext, params: RenderParams, scene: Scene) -> dict[str, Any]:
    """Render every source view with the scene's atlas and compare with the photos."""
    if scene.photos is None:
        raise InputError(f"scene {scene.name!r} has no photos to compare the renders with")
    texels = texel_vector(torch.from_numpy(scene.atlas.tiles), params.filter)
    rows, unseen = [], []
    for i, (cam, photo) in enumerate(zip(scene.cameras, scene.photos)):
        ctx.progress(i / len(scene.cameras), cam.name)
        view = make_view(rasterize(scene.mesh, cam, params.backend), scene.mesh, scene.atlas, cam)
        if len(view.pixels) == 0:
            ctx.log.warning("view %s sees none of the mesh: left out", cam.name)
            unseen.append(cam.name)
            continue
        with torch.no_grad():
            image = render(texels, view_taps(view, scene.atlas.shape, params.filter), view).numpy()
        mask = view.mask().numpy()
        reference = photo.astype(np.float32) / 255.0
        stem = Path(cam.name).stem
        write_image(ctx.out_dir / "renders" / f"{stem}.png", image)
        if params.compare:
            write_image(ctx.out_dir / "compare" / f"{stem}.png", np.concatenate([image, reference], axis=1))
        rows.append({"view": cam.name, "covered": float(mask.mean()), "psnr": psnr(image, reference, mask),
                     "psnr_yuv": psnr_yuv(image, reference, mask)["yuv"]})
    ctx.progress(1.0)
    if not rows:
        raise InputError(f"scene {scene.name!r}: none of the {len(scene.cameras)} views sees the mesh; "
                         "check that the cameras and the mesh are in the same frame")
    mean = {k: mean_psnr([r[k] for r in rows]) for k in ("psnr", "psnr_yuv")}
    report = {"scene": scene.name, "filter": params.filter, "reference": "photos", "views": rows, "mean": mean,
              "unseen_views": unseen}
    path = ctx.out_dir / "psnr.json"
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    with atomic_write(ctx.out_dir / "psnr.md") as tmp:
        tmp.write_text(psnr_table_markdown(rows, mean))
    return {"report": path, "summary": {"psnr": round(mean["psnr"], 2)}}
