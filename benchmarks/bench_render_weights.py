"""How unevenly do the source views weigh the texels? The room R-RD preprocessing has beyond the codec's own RDO.

A codec spends its bits by texel-space squared error, every texel alike; the rendering distortion weighs
texel ``i`` by ``sum over view pixels of (bilinear tap weight)^2``, the diagonal of the folded quadratic
form (:mod:`rrd.distortion`, asset reference, no prior). Where that weight is even across the used texels,
an encoder with rate-distortion optimisation (HEVC, VVC) already spends its bits the way the rendering
distortion asks, and preprocessing can gain only at chart edges, in the gutters and in the texture's
finest detail (which bilinear sampling attenuates); where it is uneven (texels seen from far away, or by
no view), preprocessing can take bits from the texels that matter little. JPEG has no such optimisation,
so it gains everywhere.

    python benchmarks/bench_render_weights.py            # demo scene and the full Sceaux sample

Writes ``benchmarks/results/render_weights.{md,json}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import demo_and_sceaux, write_timed_results  # noqa: E402

from rrd.preprocess import prepare  # noqa: E402
from rrd.render import rasterize_views  # noqa: E402
from rrd.scene import Scene  # noqa: E402

__all__ = ["main", "weight_summary"]

QUANTILES = (0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99)
BELOW = (0.1, 0.5)


def weight_summary(scene: Scene) -> dict:
    """Spread of the render weight over the used texels, relative to the median weight of the seen ones."""
    views = rasterize_views(scene.mesh, scene.atlas, scene.cameras)
    problem = prepare(scene.mesh, scene.atlas, views, "renders", prior=0.0)
    weight = problem.distortion.hessian_diagonal.double()[torch.from_numpy(problem.used).reshape(-1)]
    seen = weight[weight > 0]
    relative = weight / seen.median()
    return {"used_texels": int(weight.numel()), "unseen_fraction": float((weight == 0).double().mean()),
            "quantiles": {f"{q:.2f}": float(relative.quantile(q)) for q in QUANTILES},
            "below": {f"{b}": float((relative < b).double().mean()) for b in BELOW}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-sceaux", action="store_true", help="the demo scene only")
    args = parser.parse_args()
    scenes = demo_and_sceaux(not args.no_sceaux)
    start = time.perf_counter()
    results = {name: weight_summary(make()) for name, make in scenes.items()}
    header = " | ".join(f"q{float(q) * 100:g}" for q in QUANTILES)
    lines = ["# Render weight of the used texels (benchmarks/bench_render_weights.py)", "",
             "Diagonal of the folded distortion (source views, asset reference, no prior) over the texels the "
             "mesh uses, divided by its median over the texels some view sees. Quantiles q1..q99; the share of "
             "used texels no view samples, and the shares below a tenth and a half of the median.", "",
             f"| scene | used texels | unseen | {header} | < 0.1 | < 0.5 |",
             "|---|---:|---:|" + "---:|" * (len(QUANTILES) + 2)]
    for name, r in results.items():
        cells = " | ".join(f"{v:.2f}" for v in r["quantiles"].values())
        lines.append(f"| {name} | {r['used_texels']} | {100 * r['unseen_fraction']:.1f} % | {cells} | "
                     f"{100 * r['below']['0.1']:.1f} % | {100 * r['below']['0.5']:.1f} % |")
    write_timed_results("render_weights", lines, results, start)


if __name__ == "__main__":
    main()
