"""The ``optimize`` stage: R-RD preprocessing of the scene's atlas for one codec and operating point.

Besides the textured mesh it writes ``optimize.json``: the settings, the rate model's *estimate* of the
bits per iteration, and what was *measured* at the end: the atlas as the real codec codes it at the
operating point, against the padded atlas the descent started from (its bytes, and the rendering
distortion of each decoded atlas through the folded views).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch

from rrd.codec import code_atlas
from rrd.errors import InputError
from rrd.padding import pad_pages
from rrd.preprocess import prepare, preprocess
from rrd.rate import get_rate_model
from rrd.render import rasterize_views
from rrd.scene import Scene
from rrd.settings import DEFAULT_SETTINGS, OptimizeSettings
from rrd.viewpoints import texel_cameras
from rrd_pipeline.choices import BackendChoice, CodecChoice, DeviceChoice, PaddingChoice, ReferenceChoice
from rrd_pipeline.codecs import CODECS, get_codec
from rrd_pipeline.outputs import write_textured_mesh
from rrd_pipeline.stage import StageContext, stage
from rrd_pipeline.writers import atomic_write

__all__ = ["OptimizeParams", "resolve_device"]


@dataclass(frozen=True)
class OptimizeParams:
    """Settings of the R-RD optimisation (see :func:`rrd.preprocess.preprocess`).

    codec: the codec that will store the atlas (its rate model is used); param: its operating point
    (JPEG quality or QP; default the middle of the codec's standard sweep); lam: explicit lambda (bits
    per 8-bit SSE unit), default tied to ``param``; lambda_scale: multiplier of that default;
    reference: "renders" of the original atlas (real scenes) or the "photos"; prior: pull of used
    texels towards the original; init: padding that fills the starting gutters; mode: "quadratic"
    (views folded once) or "rendered" (reference mode); device: "auto", "cpu" or "cuda";
    coded_distortion: run the codec every iteration and judge steps by D of the decoded atlas (default
    False: D of the atlas itself, as published; see :mod:`rrd.optimize` for what each gives).
    """

    codec: CodecChoice = "jpeg"
    param: int | None = None
    lam: float | None = None
    lambda_scale: float = DEFAULT_SETTINGS.lambda_scale
    iterations: int = DEFAULT_SETTINGS.iterations
    reference: ReferenceChoice = "renders"
    prior: float = DEFAULT_SETTINGS.prior
    init: PaddingChoice = DEFAULT_SETTINGS.init
    mode: Literal["quadratic", "rendered"] = "quadratic"
    backend: BackendChoice = "auto"
    device: DeviceChoice = "auto"
    coded_distortion: bool = False

    def __post_init__(self) -> None:
        self.settings()  # every range checked when the pipeline is validated, before anything runs
        if self.param is not None:
            CODECS.lookup(self.codec).spec.check_param(self.param)
        if self.lam is not None and not self.lam > 0:
            raise InputError(f"lambda {self.lam!r} is out of range; valid: a number > 0")

    def settings(self) -> OptimizeSettings:
        """The optimiser's settings: the tuned defaults with this stage's values."""
        return DEFAULT_SETTINGS.replace(iterations=self.iterations, lambda_scale=self.lambda_scale,
                                        prior=self.prior, init=self.init)


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when available, else "cpu"; "cuda" without CUDA is an InputError."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but CUDA is not available; use device 'cpu'")
    return device


@stage("optimize", params=OptimizeParams, inputs={"scene": "scene"},
       outputs={"mesh": "file", "record": "file", "summary": "any"})
def optimize_stage(ctx: StageContext, params: OptimizeParams, scene: Scene) -> dict[str, Any]:
    """Optimise the atlas (estimated bits + lambda x rendering distortion) and write the textured mesh."""
    if params.reference == "photos" and scene.photos is None:
        raise InputError(f"scene {scene.name!r} has no photos; use reference 'renders'")
    codec = get_codec(params.codec)
    param = codec.check_param(params.param if params.param is not None else codec.spec.middle_point)
    rate = get_rate_model(params.codec)
    settings = params.settings()
    device = resolve_device(params.device)
    t0 = time.perf_counter()
    cameras = scene.cameras
    if not cameras:  # a mesh alone: views generated to see every texel at its native resolution
        if params.reference == "photos":
            raise InputError(f"scene {scene.name!r} has no cameras and no photos; use reference 'renders'")
        cameras = texel_cameras(scene.mesh, scene.atlas, backend=params.backend)
    n = len(cameras)
    views = rasterize_views(scene.mesh, scene.atlas, cameras, params.backend)
    ctx.progress(0.1, f"rasterized {n} views")
    t1 = time.perf_counter()
    problem = prepare(scene.mesh, scene.atlas, views, params.reference, scene.photos, settings.prior, params.mode,
                      progress=lambda i: ctx.progress(0.1 + 0.1 * (i + 1) / n, f"folded view {i + 1}/{n}"))
    t2 = time.perf_counter()
    for name in problem.unseen_views:
        ctx.log.warning("view %s sees none of the mesh (or only seams): left out", name)

    def report(it: int, bits: float, distortion: float) -> None:
        ctx.progress(0.2 + 0.8 * it / params.iterations, f"{bits / 8e3:.1f} kB est, D {distortion:.4g}")

    result = preprocess(problem, rate, param, settings, lam=params.lam, device=device, progress=report,
                        codec=codec if params.coded_distortion else None)
    t3 = time.perf_counter()
    ctx.progress(1.0, f"coding at {codec.param_name} {param}")
    measured = _measure(problem, codec, param, pad_pages(scene.atlas.tiles, problem.keep, settings.init,
                                                         scene.atlas.sizes), result.tiles.numpy())
    files = write_textured_mesh(ctx.out_dir, scene, result.tiles.numpy())
    first = result.history[0]
    record = {
        "scene": scene.name, "codec": params.codec, "param": param, "settings": asdict(params), "device": device,
        "lambda": result.lam,
        "estimated_bits": {"start": first[0], "final": result.bits,
                           "note": "the rate model's estimate, not a measurement"},
        "measured": measured,
        "distortion": {"start": first[1], "final": result.distortion,
                       "units": "8-bit atlas-equivalent SSE (see rrd.distortion)"},
        "seconds": {"rasterize": t1 - t0, "fold": t2 - t1, "optimize": t3 - t2,
                    "measure": time.perf_counter() - t3},
        "unseen_views": problem.unseen_views,
        "history": [{"iteration": i, "bits": b, "distortion": d} for i, (b, d, _) in enumerate(result.history)],
        "files": [f.name for f in files],
    }
    path = ctx.out_dir / "optimize.json"
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    estimated = 100 * (result.bits / first[0] - 1) if first[0] > 0 else 0.0
    sizes = measured["bytes"]
    return {"mesh": files[0], "record": path,
            "summary": {"codec": codec.name, codec.param_name: param, "start_kB": round(sizes["padded_start"] / 1e3, 1),
                        "kB": round(sizes["optimized"] / 1e3, 1), "saving_%": round(measured["saving_%"], 1),
                        "distortion_%": round(measured["distortion_change_%"], 1),
                        "estimated_saving_%": round(-estimated, 1)}}


def _measure(problem, codec, param: int, start: np.ndarray, optimized: np.ndarray) -> dict[str, Any]:
    """Both atlases coded by the real codec at ``param``: bytes, and D of each decoded atlas (folded views)."""
    sizes = problem.atlas.sizes
    coded = {"padded_start": code_atlas(codec, start, param, sizes),
             "optimized": code_atlas(codec, optimized, param, sizes)}
    dtype = problem.distortion.hessian_diagonal.dtype
    dist = {k: problem.distortion.value_and_gradient(torch.from_numpy(c.decoded).reshape(-1, 3).to(dtype))[0]
            for k, c in coded.items()}
    nbytes = {k: c.nbytes for k, c in coded.items()}
    return {"codec": repr(codec), "param": param, "bytes": nbytes,
            "saving_%": 100 * (1 - nbytes["optimized"] / nbytes["padded_start"]),
            "distortion_decoded": dist,
            "distortion_change_%": 100 * (dist["optimized"] / dist["padded_start"] - 1) if dist["padded_start"] else 0.0}
