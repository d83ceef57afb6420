"""Cost of the R-RD optimisation on the full-resolution Sceaux Castle sample (4096 x 4096 atlas, 10 views).

In one run:

* the whole optimisation at one operating point, as ``rrd optimize`` runs it: rasterizing the views,
  folding them into the quadratic form (with the masks), and the descent; wall time of each part and
  the peak memory of the process;
* the time per iteration with the 10 source views and with 40 (each view four times): the folded
  form makes it independent of the number of views (only the fold grows with them);
* the time per iteration with the codec in the loop (``coded_distortion``: one encode + decode more);
* the same iterations with the reference path (every view rendered and back-propagated on every
  evaluation) and the ratio of the two.

    python benchmarks/bench_optimize.py                       # jpeg 50, default iterations -> results/optimize_sceaux.*
    python benchmarks/bench_optimize.py --codec hevc --param 32   # -> results/optimize_sceaux_hevc.*
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, machine, peak_rss_mb, write_results  # noqa: E402

from rrd_pipeline.codecs import get_codec  # noqa: E402
from rrd.preprocess import prepare, preprocess  # noqa: E402
from rrd.settings import DEFAULT_SETTINGS  # noqa: E402
from rrd.rate import get_rate_model  # noqa: E402
from rrd.render import rasterize_views  # noqa: E402
from rrd_pipeline.sources import SceneSource, load_scene  # noqa: E402

__all__ = ["main"]

SCEAUX = SHARED_DATA / "sceaux_castle"


def iteration_seconds(problem, rate, param: int, iterations: int, codec=None) -> float:
    """Mean wall time of one iteration (rate model + distortion, value and gradient, and the step)."""
    stamps: list[float] = []
    preprocess(problem, rate, param, DEFAULT_SETTINGS.replace(iterations=iterations),
               progress=lambda *_: stamps.append(time.perf_counter()), codec=codec)
    # stamps[0] follows the evaluation at the start; each later stamp one step + one evaluation.
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", default="jpeg")
    parser.add_argument("--param", type=int, default=50, help="JPEG quality or QP")
    parser.add_argument("--iterations", type=int, default=DEFAULT_SETTINGS.iterations)
    parser.add_argument("--timing-iterations", type=int, default=5, help="iterations per per-iteration timing")
    parser.add_argument("--scale", type=float, default=1.0, help="photo and camera resize factor in (0, 1]")
    args = parser.parse_args()
    if not SCEAUX.is_dir():
        raise SystemExit(f"the Sceaux Castle sample is not at {SCEAUX}")

    t: dict[str, float] = {}
    start = time.perf_counter()
    scene = load_scene(SceneSource(colmap=SCEAUX, mesh=SCEAUX / "scene_mesh_texture.ply", scale=args.scale))
    t["load_s"] = time.perf_counter() - start
    rate = get_rate_model(args.codec)

    start = time.perf_counter()
    views = rasterize_views(scene.mesh, scene.atlas, scene.cameras)
    t["rasterize_s"] = time.perf_counter() - start
    start = time.perf_counter()
    problem = prepare(scene.mesh, scene.atlas, views, "renders")
    t["fold_s"] = time.perf_counter() - start
    start = time.perf_counter()
    result = preprocess(problem, rate, args.param, DEFAULT_SETTINGS.replace(iterations=args.iterations))
    t["descent_s"] = time.perf_counter() - start
    t["optimisation_s"] = t["rasterize_s"] + t["fold_s"] + t["descent_s"]
    peak_optimisation = peak_rss_mb()
    first, last = result.history[0], min(result.history, key=lambda h: h[2])
    print(f"optimisation: rasterize {t['rasterize_s']:.1f} s, fold {t['fold_s']:.1f} s, "
          f"{args.iterations} iterations {t['descent_s']:.1f} s; peak {peak_optimisation:.0f} MB", flush=True)

    n = args.timing_iterations
    t["iteration_10_views_s"] = iteration_seconds(problem, rate, args.param, n)
    start = time.perf_counter()
    problem_40 = prepare(scene.mesh, scene.atlas, list(views) * 4, "renders")
    t["fold_40_views_s"] = time.perf_counter() - start
    t["iteration_40_views_s"] = iteration_seconds(problem_40, rate, args.param, n)
    del problem_40
    t["iteration_coded_s"] = iteration_seconds(problem, rate, args.param, n, get_codec(args.codec))
    print(f"per iteration: 10 views {t['iteration_10_views_s']:.2f} s, 40 views {t['iteration_40_views_s']:.2f} s, "
          f"codec in the loop {t['iteration_coded_s']:.2f} s", flush=True)
    rendered = prepare(scene.mesh, scene.atlas, views, "renders", mode="rendered")
    t["iteration_rendered_s"] = iteration_seconds(rendered, rate, args.param, n)
    del rendered
    ratio = t["iteration_rendered_s"] / t["iteration_10_views_s"]
    print(f"reference path (render every view): {t['iteration_rendered_s']:.2f} s per iteration, {ratio:.1f}x",
          flush=True)

    cam = scene.cameras[0]
    threads = torch.get_num_threads()
    lines = [
        "# R-RD optimisation cost on the Sceaux Castle sample (benchmarks/bench_optimize.py)", "",
        f"- scene: atlas {len(scene.atlas.udims)} x {scene.atlas.width}x{scene.atlas.height}, "
        f"{len(scene.cameras)} views of {cam.width}x{cam.height}, asset reference",
        f"- codec {args.codec} at {args.param}, {args.iterations} iterations, lambda scale default; "
        f"{os.cpu_count()} CPU cores ({threads} torch threads), float32",
        f"- estimated bits {first[0]:.0f} -> {last[0]:.0f} ({100 * (last[0] / first[0] - 1):+.1f} %), "
        f"distortion {first[1]:.0f} -> {last[1]:.0f} (8-bit atlas-equivalent SSE)", "",
        "| part | seconds |", "|---|---:|",
        f"| load (not part of the optimisation) | {t['load_s']:.1f} |",
        f"| rasterize 10 views | {t['rasterize_s']:.1f} |",
        f"| fold views + masks | {t['fold_s']:.1f} |",
        f"| {args.iterations} iterations | {t['descent_s']:.1f} |",
        f"| **optimisation total** | **{t['optimisation_s']:.1f}** |", "",
        f"Peak memory of the process during the optimisation: {peak_optimisation:.0f} MB.", "",
        "| per iteration | seconds |", "|---|---:|",
        f"| 10 views, folded | {t['iteration_10_views_s']:.2f} |",
        f"| 40 views, folded (fold {t['fold_40_views_s']:.1f} s) | {t['iteration_40_views_s']:.2f} |",
        f"| 10 views, folded, codec in the loop (`--coded-distortion`) | {t['iteration_coded_s']:.2f} |",
        f"| 10 views, reference path (render every view) | {t['iteration_rendered_s']:.2f} |",
        f"| ratio reference / folded | {ratio:.1f}x |", "",
        f"Peak memory of the whole run (40-view fold and reference path included): {peak_rss_mb():.0f} MB.",
    ]
    name = "optimize_sceaux" if args.codec == "jpeg" else f"optimize_sceaux_{args.codec}"
    write_results(name, "\n".join(lines) + "\n",
                  {"codec": args.codec, "param": args.param, "iterations": args.iterations, "scale": args.scale,
                   "seconds": t, "peak_optimisation_mb": peak_optimisation, "peak_mb": peak_rss_mb(),
                   "bits": [first[0], last[0]], "distortion": [first[1], last[1]], "machine": machine()})


if __name__ == "__main__":
    main()
