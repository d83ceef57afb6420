"""Does the R-RD atlas hold up on viewpoints it was not optimised for? Leave-one-out and orbit views.

* Leave-one-out: for each source view k, ``rrd`` folds the other views only and every method is evaluated on
  view k alone (``rrd evaluate --holdout k``); the BD-rate of ``rrd`` against the best baseline of that
  fold, per fold and averaged.
* Orbit: ``rrd`` folds all source views and the evaluation uses only generated viewpoints on a Fibonacci
  sphere around the mesh (``rrd evaluate --views orbit``), against renders of the original atlas.

    python benchmarks/bench_generalisation.py                          # demo scene, jpeg hevc vvc
    python benchmarks/bench_generalisation.py --codecs jpeg --points 30,50,70,90
    python benchmarks/bench_generalisation.py --sceaux --codecs jpeg --no-loo   # orbit on the Sceaux sample
    python benchmarks/bench_generalisation.py --codecs hevc vvc --folds 2 --coded-distortion

Writes ``benchmarks/results/generalisation_<scene>_<codecs>[_coded].{md,json}``; full reports per fold under
``benchmarks/out/generalisation_<scene>/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, SHARED_DATA, machine, peak_rss_mb, write_results  # noqa: E402

from rrd_pipeline.codecs import get_codec  # noqa: E402
from rrd.demo_scene import make_demo_scene  # noqa: E402
from rrd_pipeline.methods import RRDOptions, build_context  # noqa: E402
from rrd_pipeline.sources import SceneSource, load_scene  # noqa: E402
from rrd_pipeline.stages.evaluate import DEFAULT_METHODS, run_evaluation  # noqa: E402

__all__ = ["main"]


def rrd_against_best(report: dict) -> tuple[str, float | str]:
    """(anchor, pchip RGB BD-rate of rrd against it) from an evaluation report."""
    entry = report["bd_rate"]["rrd"]["pchip"]
    return report["anchor"], round(entry, 2) if isinstance(entry, float) else str(entry)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codecs", nargs="+", default=["jpeg", "hevc", "vvc"])
    parser.add_argument("--points", default=None, help="comma-separated points (default the codec's)")
    parser.add_argument("--sceaux", action="store_true", help="the Sceaux Castle sample instead of the demo scene")
    parser.add_argument("--no-loo", action="store_true", help="skip leave-one-out")
    parser.add_argument("--folds", type=int, default=None, help="hold out only this many views, evenly spaced")
    parser.add_argument("--orbit-size", type=int, default=512, help="orbit image side in pixels")
    parser.add_argument("--coded-distortion", action="store_true", help="rrd with the codec in the loop")
    args = parser.parse_args()
    if args.sceaux:
        scene = load_scene(SceneSource(colmap=SHARED_DATA / "sceaux_castle",
                                       mesh=SHARED_DATA / "sceaux_castle" / "scene_mesh_texture.ply"))
    else:
        scene = make_demo_scene()
    methods = list(DEFAULT_METHODS) + ["rrd"]
    points = None if args.points is None else [int(p) for p in args.points.split(",")]
    out = OUT / f"generalisation_{scene.name}"
    results: dict[str, dict] = {}
    rrd_options = RRDOptions(coded_distortion=args.coded_distortion)
    start = time.perf_counter()
    for name in args.codecs:
        codec = get_codec(name)
        entry: dict = {}
        ctx = build_context(scene, codec, views="orbit", orbit_size=args.orbit_size)
        ctx.rrd = rrd_options
        entry["orbit"] = rrd_against_best(run_evaluation(ctx, methods, points, out / f"{name}_orbit"))
        print(f"{name} orbit: rrd {entry['orbit'][1]} % against {entry['orbit'][0]}", flush=True)
        if not args.no_loo:
            folds = []
            count = len(scene.cameras)
            held = range(count) if args.folds is None else sorted({i * count // args.folds for i in range(args.folds)})
            for k in held:
                ctx = build_context(scene, codec, holdout=(k,))
                ctx.rrd = rrd_options
                folds.append(rrd_against_best(run_evaluation(ctx, methods, points, out / f"{name}_holdout{k}")))
                print(f"{name} holdout {k}: rrd {folds[-1][1]} % against {folds[-1][0]}", flush=True)
            entry["holdout"], entry["held"] = folds, list(held)
        results[name] = entry

    lines = [f"# Unseen viewpoints: {scene.name} (benchmarks/bench_generalisation.py)", "",
             "BD-rate (RGB, pchip) of `rrd` against the best baseline of each evaluation (the anchor column), "
             "asset reference (renders of the original atlas, seam pixels excluded), methods "
             f"{', '.join(methods)}, points {args.points or 'the codec defaults'}"
             f"{', rrd with the codec in the loop' if args.coded_distortion else ''}. Negative: `rrd` needs fewer "
             "bits for the same rendering PSNR on views it was not optimised for.", ""]
    for name, entry in results.items():
        lines += [f"## {name}", "", "| evaluation views | anchor | rrd BD-rate (%) |", "|---|---|---:|",
                  f"| orbit ({args.orbit_size} px, rrd fitted on all source views) | {entry['orbit'][0]} | "
                  f"{entry['orbit'][1]} |"]
        folds = entry.get("holdout", [])
        for k, (anchor, bd) in zip(entry.get("held", []), folds):
            lines.append(f"| source view {k} alone (rrd fitted on the other views) | {anchor} | {bd} |")
        numeric = [bd for _, bd in folds if isinstance(bd, float)]
        if numeric:
            lines.append(f"| **leave-one-out mean ({len(numeric)} of {len(scene.cameras)} views), worst** | | "
                         f"**{statistics.mean(numeric):+.2f}**, "
                         f"{max(numeric):+.2f} |")
        lines.append("")
    lines.append(f"Time {time.perf_counter() - start:.0f} s, peak memory {peak_rss_mb():.0f} MB.")
    suffix = "_coded" if args.coded_distortion else ""
    write_results(f"generalisation_{scene.name}_{'_'.join(args.codecs)}{suffix}", "\n".join(lines) + "\n",
                  {"scene": scene.name, "points": points, "coded_distortion": args.coded_distortion,
                   "results": results, "machine": machine()})


if __name__ == "__main__":
    main()
