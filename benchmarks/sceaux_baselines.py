"""BD-rates of the padding baselines (and, with --methods ...,rrd, of the R-RD optimiser) on the Sceaux Castle sample.

Runs what ``rrd evaluate`` runs (the same library calls: :func:`rrd_pipeline.methods.build_context`,
:func:`rrd_pipeline.stages.evaluate.run_evaluation`, :func:`rrd_pipeline.report.write_report`), with
the scene loaded, rasterized and padded once for all codecs. Per codec it writes the full output
(report, RD plot, decoded atlases, renders) to ``benchmarks/out/sceaux_<codec>/`` (git-ignored:
sample-derived images) and copies ``report.md`` and ``report.json`` to
``benchmarks/results/sceaux_baselines_<codec>.{md,json}``.

    python benchmarks/sceaux_baselines.py                    # full resolution, jpeg hevc vvc
    python benchmarks/sceaux_baselines.py --scale 0.5 --codecs jpeg

Equivalent command per codec (which re-rasterizes and re-pads each time)::

    rrd evaluate --colmap ../shared/data/sceaux_castle --mesh ../shared/data/sceaux_castle/scene_mesh_texture.ply \\
        --codec hevc --methods none,dilate,pushpull,spp,hbf --out benchmarks/out/sceaux_hevc
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, RESULTS, SHARED_DATA, machine, peak_rss_mb  # noqa: E402

from rrd_pipeline.codecs import get_codec  # noqa: E402
from rrd.settings import DEFAULT_SETTINGS  # noqa: E402
from rrd_pipeline.methods import RRDOptions, build_context  # noqa: E402
from rrd_pipeline.report import write_report  # noqa: E402
from rrd_pipeline.sources import SceneSource, load_scene  # noqa: E402
from rrd_pipeline.stages.evaluate import DEFAULT_METHODS, check_request, run_evaluation  # noqa: E402

__all__ = ["main"]

SCEAUX = SHARED_DATA / "sceaux_castle"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="photo and camera resize factor in (0, 1]")
    parser.add_argument("--codecs", nargs="+", default=["jpeg", "hevc", "vvc"])
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated methods")
    parser.add_argument("--views", default="source", choices=["source", "orbit", "both"])
    parser.add_argument("--iterations", type=int, default=DEFAULT_SETTINGS.iterations, help="gradient steps of the rrd methods")
    parser.add_argument("--coded-distortion", action="store_true", help="rrd methods with the codec in the loop")
    parser.add_argument("--tag", default="baselines", help="results go to benchmarks/results/sceaux_<tag>_<codec>.*")
    args = parser.parse_args()
    if not SCEAUX.is_dir():
        raise SystemExit(f"the Sceaux Castle sample is not at {SCEAUX}")
    methods = [m.strip() for m in args.methods.split(",")]
    for name in args.codecs:
        check_request(name, methods, None, None)

    timings: dict[str, float] = {}
    start = time.perf_counter()
    scene = load_scene(SceneSource(colmap=SCEAUX, mesh=SCEAUX / "scene_mesh_texture.ply", scale=args.scale))
    timings["load_s"] = time.perf_counter() - start
    start = time.perf_counter()
    bar = lambda items: tqdm(items, desc="rasterizing", unit="view", leave=False, disable=None)  # noqa: E731
    base = build_context(scene, get_codec(args.codecs[0]), views=args.views, progress=bar)
    base.rrd = RRDOptions(DEFAULT_SETTINGS.replace(iterations=args.iterations), coded_distortion=args.coded_distortion)
    timings["context_s"] = time.perf_counter() - start
    cam = scene.cameras[0]
    print(f"scene {scene.name}: {len(scene.cameras)} views of {cam.width}x{cam.height}, atlas "
          f"{len(scene.atlas.udims)} x {scene.atlas.width}x{scene.atlas.height}; load {timings['load_s']:.1f} s, "
          f"rasterize + occupancy + evaluator {timings['context_s']:.1f} s", flush=True)

    for name in args.codecs:
        ctx = replace(base, codec=get_codec(name))  # shares the padded atlases through ctx.cache
        out = OUT / f"sceaux_{args.tag}_{name}"
        if out.exists():
            shutil.rmtree(out)
        start = time.perf_counter()
        report = run_evaluation(ctx, methods, None, out)
        seconds = time.perf_counter() - start
        report["notes"] = [
            f"run: benchmarks/sceaux_baselines.py, photos and cameras scaled by {args.scale} "
            f"({cam.width}x{cam.height} px per view), views {args.views}, rrd iterations {args.iterations}"
            + (", codec in the loop (coded distortion)" if args.coded_distortion else ""),
            f"time: {seconds:.0f} s for this codec's sweep (padding included for the first codec), "
            f"{timings['context_s']:.0f} s rasterizing and setting up once; {os.cpu_count()} CPU cores, "
            f"peak memory {peak_rss_mb():.0f} MB",
        ]
        report["machine"] = machine()
        paths = write_report(out, report)
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths["md"], RESULTS / f"sceaux_{args.tag}_{name}.md")
        shutil.copyfile(paths["json"], RESULTS / f"sceaux_{args.tag}_{name}.json")
        print(paths["md"].read_text(), flush=True)


if __name__ == "__main__":
    main()
