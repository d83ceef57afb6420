"""The ``evaluate`` stage: sweep a codec's operating points for several methods and report BD-rates.

For each method (:mod:`rrd_pipeline.methods`) and each point, the method's atlas is coded, decoded
and rendered from every evaluation view (:mod:`rrd.evaluate`). The stage's folder receives:

- ``report.json``: ``scene``, ``codec``, ``reference``, ``methods`` {name: {``points``: [{``param``,
  ``bytes``, ``bpp``, ``psnr``, ``psnr_yuv``, ``encode_s``, ``views``}], ``baseline``, ``settings`` (the
  method's own, e.g. the optimiser's for rrd), ``uncoded``}},
  ``bd_rate`` {name: {``anchor``, ``pchip``, ``cubic``, ``warnings``}} on RGB PSNR, ``bd_rate_yuv``
  the same on YUV PSNR (percent, negative = fewer bits; an undefined value is ``{"undefined": reason}``),
  ``anchor`` and how it was chosen, the settings, the views and their excluded shares;
- ``report.md`` (the table for a paper) and ``rd.png`` (the RD curves), :mod:`rrd_pipeline.report`;
- ``decoded/<method>/<param>.png``: decoded atlases (``<param>_<udim>.png`` with several tiles), at the
  lowest-quality point of each method, or at every point with ``save_decoded``;
- ``renders/``: the first evaluation view rendered with the original atlas, and with each method's
  decoded atlas at its lowest and highest point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rrd.codec import code_atlas
from rrd.errors import InputError
from rrd.evaluate import bd_table, default_anchor
from rrd.settings import DEFAULT_SETTINGS
from rrd.scene import Scene
from rrd.viewpoints import ORBIT_COUNT, ORBIT_SIZE
from rrd_pipeline.choices import BackendChoice, CodecChoice, FilterChoice, ReferenceChoice, ViewSetChoice
from rrd_pipeline.codecs import CODECS, get_codec
from rrd_pipeline.methods import EvaluationContext, RRDOptions, build_context, check_methods, make_method
from rrd_pipeline.report import write_report
from rrd_pipeline.stage import StageContext, stage
from rrd_pipeline.writers import write_image

__all__ = ["EvaluateParams", "DEFAULT_METHODS", "check_points", "check_request", "run_evaluation"]

DEFAULT_METHODS = ("none", "dilate", "pushpull", "spp", "hbf")

_DEFAULT_RULE = "default: the baseline with the lowest mean pchip BD-rate (RGB) against the other baselines"


@dataclass(frozen=True)
class EvaluateParams:
    """codec: jpeg | hevc | vvc (default options); methods: registry names; points: operating points
    (default the codec's); reference: renders | photos; filter: bilinear | trilinear; views: source |
    orbit | both; anchor: BD-rate anchor (default rule in :mod:`rrd.evaluate`); orbit_size: orbit image
    side (px); orbit_count: orbit cameras; leave_out: source view indices not evaluated on; holdout: source view
    indices evaluated on and hidden from the rrd methods (leave-one-out; excludes leave_out);
    save_decoded: keep every decoded atlas; backend: rasterizer; iterations, lambda_scale, coded_distortion:
    settings of the R-RD methods ``rrd`` and ``rrd-fixed`` (:class:`rrd_pipeline.methods.RRDOptions`)."""

    codec: CodecChoice = "jpeg"
    methods: tuple[str, ...] = DEFAULT_METHODS
    points: tuple[int, ...] | None = None
    reference: ReferenceChoice = "renders"
    filter: FilterChoice = "bilinear"
    views: ViewSetChoice = "source"
    anchor: str | None = None
    orbit_size: int = ORBIT_SIZE
    orbit_count: int = ORBIT_COUNT
    leave_out: tuple[int, ...] = ()
    holdout: tuple[int, ...] = ()
    save_decoded: bool = False
    backend: BackendChoice = "auto"
    iterations: int = DEFAULT_SETTINGS.iterations
    lambda_scale: float = DEFAULT_SETTINGS.lambda_scale
    coded_distortion: bool = False

    def __post_init__(self) -> None:
        # Checked when the pipeline is validated, before anything runs.
        check_request(self.codec, self.methods, self.points, self.anchor)
        self.rrd_options()
        for name in ("orbit_size", "orbit_count"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} {getattr(self, name)} is out of range; valid: an integer >= 1")

    def rrd_options(self) -> RRDOptions:
        """How the ``rrd`` methods run: the tuned defaults with this stage's values."""
        settings = DEFAULT_SETTINGS.replace(iterations=self.iterations, lambda_scale=self.lambda_scale)
        return RRDOptions(settings=settings, coded_distortion=self.coded_distortion)


def check_points(codec_name: str, points: Sequence[int] | None) -> list[int]:
    """The operating points (default: the codec's), checked and ordered from lowest to highest quality."""
    spec = CODECS.lookup(codec_name).spec
    chosen = list(spec.default_points if points is None else points)
    if len(chosen) < 2 or len(set(chosen)) != len(chosen):
        raise InputError(f"points {chosen}: give at least two different {spec.name} {spec.param_name} values")
    return spec.ordered([spec.check_param(p) for p in chosen])


def check_request(codec_name: str, methods: Sequence[str], points: Sequence[int] | None,
                  anchor: str | None) -> tuple[list[str], list[int]]:
    """Check a sweep request before anything expensive runs: (method names, ordered points) or InputError."""
    params = check_points(codec_name, points)
    names = check_methods(methods)
    if anchor is not None and anchor not in names:
        raise InputError(f"anchor {anchor!r} is not one of the evaluated methods: {', '.join(names)}")
    return names, params


def _tile_files(folder: Path, stem: str, udims: Sequence[int]) -> list[Path]:
    if len(udims) == 1:
        return [folder / f"{stem}.png"]
    return [folder / f"{stem}_{u}.png" for u in udims]


def _point_row(param: int, coded, quality) -> dict[str, Any]:
    return {"param": param, "bytes": coded.nbytes, "bpp": coded.bpp, "psnr": quality.psnr_db,
            "psnr_yuv": quality.psnr_yuv_db, "encode_s": round(coded.seconds, 3),
            "views": [{"view": v.name, "psnr": v.psnr_db, "psnr_yuv": v.psnr_yuv_db} for v in quality.views]}


def run_evaluation(ctx: EvaluationContext, methods: Sequence[str], points: Sequence[int] | None,
                   out_dir: Path, anchor: str | None = None, save_decoded: bool = False,
                   progress: Callable[..., None] | None = None) -> dict[str, Any]:
    """Sweep ``ctx.codec`` over ``points`` for each method, write decoded atlases and renders, return the report.

    Args:
        ctx: the scene's evaluation context (:func:`rrd_pipeline.methods.build_context`).
        methods: method names (registry keys).
        points: operating points, default the codec's.
        out_dir: folder for ``decoded/`` and ``renders/``.
        anchor: BD-rate anchor; default the best baseline (:func:`rrd.evaluate.default_anchor`).
        save_decoded: write every decoded atlas, not only the lowest point's.
        progress: ``progress(fraction, message)``.
    Returns:
        The report dict (see the module docstring); :func:`rrd_pipeline.report.write_report` writes it.
    """
    names, params = check_request(ctx.codec.name, methods, points, anchor)
    out_dir = Path(out_dir)
    scene, evaluator = ctx.scene, ctx.evaluator
    first = evaluator.views[0]
    stem0 = Path(first.name).stem
    write_image(out_dir / "renders" / f"original_{stem0}.png", evaluator.render(scene.atlas.tiles, 0))

    entries: dict[str, dict[str, Any]] = {}
    total = len(names) * len(params)
    bar = tqdm(total=total, desc=f"{ctx.codec.name} sweep", unit="point", disable=None)
    with bar:
        for name in names:
            method = make_method(name, ctx)
            bar.set_postfix_str(f"{name} atlas")
            uncoded = evaluator.quality(method.atlas_for(params[0]))
            entry = {"baseline": method.is_baseline, "settings": method.settings,
                     "uncoded": {"psnr": uncoded.psnr_db, "psnr_yuv": uncoded.psnr_yuv_db}, "points": []}
            for k, param in enumerate(params):
                bar.set_postfix_str(f"{name} {ctx.codec.param_name} {param}")
                if progress is not None:
                    progress(bar.n / total, f"{name} {ctx.codec.param_name} {param}")
                coded = code_atlas(ctx.codec, method.atlas_for(param), param, scene.atlas.sizes)
                entry["points"].append(_point_row(param, coded, evaluator.quality(coded.decoded)))
                if save_decoded or k == 0:
                    for t, path in enumerate(_tile_files(out_dir / "decoded" / name, str(param), scene.atlas.udims)):
                        h, w = scene.atlas.sizes[t]
                        write_image(path, coded.decoded[t, :h, :w])
                if k in (0, len(params) - 1):
                    write_image(out_dir / "renders" / f"{name}_{param}_{stem0}.png",
                                evaluator.render(coded.decoded, 0))
                bar.update()
            entries[name] = entry
    if progress is not None:
        progress(1.0, "BD-rates")

    curves = {n: ([p["bpp"] for p in e["points"]], [p["psnr"] for p in e["points"]]) for n, e in entries.items()}
    curves_yuv = {n: ([p["bpp"] for p in e["points"]], [p["psnr_yuv"] for p in e["points"]])
                  for n, e in entries.items()}
    best, scores = default_anchor(curves, [n for n in names if entries[n]["baseline"]] or names)
    anchor, rule = (best, _DEFAULT_RULE) if anchor is None else (anchor, "given")
    return {
        "scene": scene.name, "codec": ctx.codec.name, "codec_repr": repr(ctx.codec),
        "codec_options": ctx.codec.options, "param_name": ctx.codec.param_name, "points": params,
        "reference": ctx.reference, "filter": ctx.filter,
        "views": {"set": _view_set(ctx), "names": [v.name for v in evaluator.views],
                  "kinds": [v.kind for v in evaluator.views], "leave_out": list(ctx.leave_out),
                  "holdout": list(ctx.holdout),
                  "dropped": list(evaluator.dropped), "excluded_share": evaluator.excluded_share,
                  "excluded_share_per_view": {v.name: v.excluded_share for v in evaluator.views},
                  "pixels_counted": sum(v.n_counted for v in evaluator.views)},
        "atlas": {"tiles": len(scene.atlas.udims), "height": scene.atlas.height, "width": scene.atlas.width,
                  "page_sizes": [list(s) for s in scene.atlas.sizes],
                  "used_share": float(ctx.used.sum() / scene.atlas.shape.texels),
                  "keep_share": float(ctx.keep.sum() / scene.atlas.shape.texels)},
        "methods": entries,
        "anchor": anchor, "anchor_rule": rule, "anchor_scores": scores,
        "bd_rate": bd_table(curves, anchor), "bd_rate_yuv": bd_table(curves_yuv, anchor),
    }


def _view_set(ctx: EvaluationContext) -> str:
    kinds = {v.kind for v in ctx.evaluator.views}
    return "both" if len(kinds) == 2 else next(iter(kinds))


@stage("evaluate", params=EvaluateParams, inputs={"scene": "scene"}, outputs={"report": "file", "summary": "any"})
def evaluate_stage(ctx: StageContext, params: EvaluateParams, scene: Scene) -> dict[str, Any]:
    """Sweep a codec's operating points for several methods; write report.json, report.md and rd.png."""
    names, _ = check_request(params.codec, params.methods, params.points, params.anchor)
    codec = get_codec(params.codec)
    ctx.progress(0.0, "rasterizing")
    bar = lambda items: tqdm(items, desc="rasterizing", unit="view", leave=False, disable=None)  # noqa: E731
    eval_ctx = build_context(scene, codec, params.reference, params.filter, params.views, params.leave_out,
                             params.orbit_count, params.orbit_size, params.backend, bar, params.holdout)
    eval_ctx.rrd = params.rrd_options()
    for name in eval_ctx.evaluator.dropped:
        ctx.log.warning("view %s has no pixel to compare (it sees none of the mesh, or only seams): left out", name)
    report = run_evaluation(eval_ctx, names, params.points, ctx.out_dir, params.anchor, params.save_decoded,
                            ctx.progress)
    paths = write_report(ctx.out_dir, report)
    summary = {"anchor": report["anchor"]}
    summary.update({f"bd_{n}": (round(e["pchip"], 2) if isinstance(e["pchip"], float) else "undefined")
                    for n, e in report["bd_rate"].items() if n != report["anchor"]})
    return {"report": paths["json"], "summary": summary}
