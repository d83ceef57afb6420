"""The ``compress`` stage: optimise the atlas for a codec, code it, and publish the mesh with its compressed pages.

One stage, so that the views are rasterized and folded once for the optimiser and for the measurement:

1. the views: the scene's cameras, or, for a mesh without cameras (or with ``generated_views``), viewpoints
   generated around the mesh so that every used texel is seen at about its native resolution
   (:func:`rrd.viewpoints.texel_cameras`);
2. the R-RD optimisation at the codec's setting (:func:`rrd.preprocess.preprocess`);
3. the optimised pages and, as the baseline, the atlas padded by each of ``BASELINES`` coded by the real
   codec at the same setting; each decoded atlas rendered from the same views against the original atlas
   (asset reference, seam pixels excluded: :mod:`rrd.evaluate`);
4. the asset (:mod:`rrd_pipeline.publish`), ``compress.json`` (``<name>.compress.json`` beside a glTF) and,
   with ``keep_lossless``, the optimised pages losslessly under ``lossless/``.

``compress.json``: ``bytes_in`` (the input's texture bytes: its page files, or the pages as PNG for a scene
made in code, ``bytes_in_source`` says which), ``bytes_out`` (the published page bytes), ``psnr_db`` (rendering PSNR, the squared error pooled over every
counted pixel of every view),
``baseline`` {``method``, ``bytes``, ``psnr_db``} (the padding with the fewest bytes at the same setting),
``baselines`` (every padding tried), the settings, views and timings.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from rrd.codec import code_atlas
from rrd.errors import InputError
from rrd.evaluate import build_evaluator
from rrd.metrics import psnr_from_mse
from rrd.padding import pad_pages
from rrd.preprocess import prepare, preprocess
from rrd.rate import get_rate_model
from rrd.render import rasterize_views
from rrd.scene import Scene
from rrd.settings import DEFAULT_SETTINGS
from rrd.viewpoints import texel_cameras
from rrd_pipeline.choices import BackendChoice, CodecChoice, DeviceChoice, PaddingChoice
from rrd_pipeline.codecs import CODECS, get_codec
from rrd_pipeline.outputs import write_textured_mesh
from rrd_pipeline.publish import check_publishable, publish_asset
from rrd_pipeline.stage import StageContext, stage
from rrd_pipeline.stages.optimize import resolve_device
from rrd_pipeline.writers import atomic_write, to_uint8

__all__ = ["CompressParams", "BASELINES", "summary_line"]

BASELINES = ("spp", "hbf")
"""The paddings coded as the baseline: the two best on every scene measured (benchmarks/results/README.md)."""


@dataclass(frozen=True)
class CompressParams:
    """codec: a codec whose files a mesh can name (jpeg); param: its setting (JPEG quality; default the middle
    of its standard sweep); format: "folder" (the mesh and page files), "glb" or "gltf"; name: the asset's
    file stem (default: the scene's name); generated_views: add generated viewpoints to the scene's cameras
    (always used when it has none); keep_lossless: also write the optimised pages losslessly; iterations,
    lambda_scale, init: the optimiser's (:class:`rrd.settings.OptimizeSettings`); backend, device."""

    codec: CodecChoice = "jpeg"
    param: int | None = None
    format: Literal["folder", "glb", "gltf"] = "folder"
    name: str | None = None
    generated_views: bool = False
    keep_lossless: bool = False
    iterations: int = DEFAULT_SETTINGS.iterations
    lambda_scale: float = DEFAULT_SETTINGS.lambda_scale
    init: PaddingChoice = DEFAULT_SETTINGS.init
    backend: BackendChoice = "auto"
    device: DeviceChoice = "auto"

    def __post_init__(self) -> None:
        DEFAULT_SETTINGS.replace(iterations=self.iterations, lambda_scale=self.lambda_scale, init=self.init)
        check_publishable(self.codec, Path(self.name or "asset"))
        if self.param is not None:
            CODECS.lookup(self.codec).spec.check_param(self.param)
        if self.name is not None and (not self.name or Path(self.name).name != self.name):
            raise InputError(f"asset name {self.name!r} must be a plain file stem")


def _input_bytes(scene: Scene) -> tuple[int, str]:
    """The input's texture bytes: its page files beside the mesh file where they all exist, else PNG."""
    if scene.mesh_file is not None:
        folder = Path(scene.mesh_file).parent
        files = [folder / name for name in scene.atlas.names]
        if all(f.is_file() for f in files):
            return sum(f.stat().st_size for f in files), "files"
    total = 0
    for t in range(len(scene.atlas.names)):
        buffer = io.BytesIO()
        Image.fromarray(to_uint8(scene.atlas.page(t))).save(buffer, format="PNG")
        total += buffer.tell()
    return total, "png"


def _pooled_psnr(evaluator, tiles: np.ndarray) -> float:
    """Rendering PSNR (dB) of the squared error pooled over every counted pixel of every view: with many
    generated views, some see so little that their own PSNR is infinite, which would make a mean of
    per-view PSNRs infinite too."""
    quality = evaluator.quality(tiles)
    counts = np.array([v.n_counted for v in evaluator.views], dtype=np.float64)
    mse = np.array([10.0 ** (-q.psnr_db / 10.0) for q in quality.views])
    return psnr_from_mse(float((mse * counts).sum() / counts.sum()))


def summary_line(record: dict[str, Any]) -> str:
    """The result in plain words: ``texture 2.9 MB -> 0.41 MB, 36.2 dB; padding alone ...``."""
    base = record["baseline"]
    source = "" if record["bytes_in_source"] == "files" else " as PNG"
    return (f"texture {record['bytes_in'] / 1e6:.3g} MB{source} -> {record['bytes_out'] / 1e6:.3g} MB, "
            f"{record['psnr_db']:.1f} dB; padding alone ({base['method']}) at the same setting: "
            f"{base['bytes'] / 1e6:.3g} MB, {base['psnr_db']:.1f} dB")


@stage("compress", params=CompressParams, inputs={"scene": "scene"},
       outputs={"asset": "file", "record": "file", "summary": "any"})
def compress_stage(ctx: StageContext, params: CompressParams, scene: Scene) -> dict[str, Any]:
    """Optimise, code and publish the textured mesh (the asset, compress.json, a summary)."""
    codec = get_codec(params.codec)
    param = codec.check_param(params.param if params.param is not None else codec.spec.middle_point)
    settings = DEFAULT_SETTINGS.replace(iterations=params.iterations, lambda_scale=params.lambda_scale,
                                        init=params.init)
    device = resolve_device(params.device)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    cameras = list(scene.cameras)
    generated = []
    if not cameras or params.generated_views:
        ctx.progress(0.0, "generating viewpoints")
        generated = texel_cameras(scene.mesh, scene.atlas, backend=params.backend)
        cameras += generated
    # Generated views have no photo: the reference is the original atlas rendered.
    views_scene = replace(scene, cameras=cameras, photos=None, photo_names=[])
    views = rasterize_views(scene.mesh, scene.atlas, cameras, params.backend)
    times["views_s"] = time.perf_counter() - t0
    ctx.progress(0.1, f"folding {len(views)} views")
    problem = prepare(scene.mesh, scene.atlas, views, "renders", None, settings.prior)
    for name in problem.unseen_views:
        ctx.log.warning("view %s sees none of the mesh (or only seams): left out", name)
    times["fold_s"] = time.perf_counter() - t0 - times["views_s"]

    def report(it: int, bits: float, distortion: float) -> None:
        ctx.progress(0.2 + 0.6 * it / settings.iterations, f"{bits / 8e3:.1f} kB est, D {distortion:.4g}")

    t1 = time.perf_counter()
    result = preprocess(problem, get_rate_model(params.codec), param, settings, device=device, progress=report)
    times["optimize_s"] = time.perf_counter() - t1

    ctx.progress(0.85, "coding and measuring")
    t2 = time.perf_counter()
    evaluator = build_evaluator(views_scene, views, problem.used, "renders", "bilinear", "source")
    sizes = scene.atlas.sizes
    optimised = result.tiles.numpy()
    coded = code_atlas(codec, optimised, param, sizes)
    baselines = {}
    for method in BASELINES:
        padded = code_atlas(codec, pad_pages(scene.atlas.tiles, problem.keep, method, sizes), param, sizes)
        baselines[method] = {"method": method, "bytes": padded.nbytes,
                             "psnr_db": _pooled_psnr(evaluator, padded.decoded)}
    psnr = _pooled_psnr(evaluator, coded.decoded)
    times["measure_s"] = time.perf_counter() - t2

    name = params.name or scene.name
    out = ctx.out_dir if params.format == "folder" else ctx.out_dir / f"{name}.{params.format}"
    written = publish_asset(out, scene, coded, params.codec)
    if params.keep_lossless:
        write_textured_mesh(ctx.out_dir / "lossless", scene, optimised)
    bytes_in, source = _input_bytes(scene)
    record = {
        "scene": scene.name, "codec": repr(codec), codec.param_name: param, "format": params.format,
        "bytes_in": bytes_in, "bytes_in_source": source, "bytes_out": coded.nbytes, "psnr_db": psnr,
        "reference": "renders of the original atlas (seam pixels excluded)",
        "baseline": min(baselines.values(), key=lambda b: b["bytes"]), "baselines": baselines,
        "estimated_bits": {"start": result.history[0][0], "final": result.bits,
                           "note": "the rate model's estimate, not a measurement"},
        "views": {"source": len(scene.cameras), "generated": len(generated),
                  "unseen": problem.unseen_views, "excluded_share": evaluator.excluded_share},
        "settings": asdict(params), "device": device, "seconds": times,
        "files": [str(p.relative_to(ctx.out_dir)) for p in written],
    }
    record_path = ctx.out_dir / ("compress.json" if params.format == "folder" else f"{name}.compress.json")
    with atomic_write(record_path) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    ctx.progress(1.0)
    base = record["baseline"]
    summary = {"bytes_in": bytes_in, "bytes_out": coded.nbytes, "psnr_db": round(psnr, 2),
               "baseline_bytes": base["bytes"], "baseline_psnr_db": round(base["psnr_db"], 2)}
    return {"asset": written[0], "record": record_path, "summary": summary}
