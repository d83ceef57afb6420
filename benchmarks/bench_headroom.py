"""How much could render-aware preprocessing save on a scene at most? The R-RD headroom under a Gaussian model.

For the demo scene and the full Sceaux sample (source views, asset reference, the optimiser's prior), the
model of :mod:`research.headroom` compares, at equal rendering distortion, the codec as it is (every texel alike)
with an encoder that knew every coefficient's render weight (the most any preprocessing and codec could
give) and with the codec fed the best per-coefficient shrink of the atlas (what a preprocessor can give),
for two anchors: an RDO encoder (HEVC, VVC; QP 22-42) and JPEG's tables (quality 30-90). Each on all
blocks of the atlas and on the blocks that hold a used texel (the charts: the model codes the smooth padded
gutters from the DC prediction alone, where the video codecs' planar and angular prediction makes them
nearly free, so the charts-only figure is the one to compare with HEVC and VVC). The atlas starts as HBF pads
it (the best baseline on both scenes). Set-up costs what ``prepare`` costs (about 2 minutes on Sceaux).

    python benchmarks/bench_headroom.py                 # demo scene and the full Sceaux sample
    python benchmarks/bench_headroom.py --no-sceaux

Writes ``benchmarks/results/headroom.{md,json}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # research/
from common import demo_and_sceaux, write_timed_results  # noqa: E402

from research.headroom import (anchor_curve, basis_weights, bd_rate_of, block_coefficients, jpeg_theta,  # noqa: E402
                          preprocessed_curve, qp_theta, weighted_curve)
from rrd.padding import pad  # noqa: E402
from rrd.preprocess import prepare  # noqa: E402
from rrd.render import rasterize_views  # noqa: E402
from rrd.scene import Scene  # noqa: E402

__all__ = ["main", "scene_headroom"]

QPS = (22, 27, 32, 37, 42)
QUALITIES = (30, 50, 70, 90)
# Wide sweeps for the weighted and preprocessed coders; bd_rate_of keeps the points near the anchor's range.
LEVELS = np.geomspace(qp_theta(8), 3 * qp_theta(58), 48).tolist()
SWEEP_QPS = tuple(range(16, 49, 2))
SWEEP_QUALITIES = (10, 15, 20, 25, 30, 35, 40, 50, 60, 70, 75, 80, 85, 90, 95)


def anchors() -> dict[str, dict]:
    """The two anchors: operating points, the preprocessed coder's sweep, the survival rule."""
    return {
        "rdo": {"label": "RDO encoder (HEVC, VVC), QP 22-42", "block": 8, "survive": 1.0,
                "thetas": [qp_theta(q) for q in QPS], "sweep": [qp_theta(q) for q in SWEEP_QPS]},
        "rdo16": {"label": "RDO encoder, 16x16 blocks", "block": 16, "survive": 1.0,
                  "thetas": [qp_theta(q) for q in QPS], "sweep": [qp_theta(q) for q in SWEEP_QPS]},
        "jpeg": {"label": "JPEG tables, quality 30-90", "block": 8, "survive": 3.0,
                 "thetas": [jpeg_theta(q) for q in QUALITIES], "sweep": [jpeg_theta(q) for q in SWEEP_QUALITIES]},
    }


def scene_headroom(scene: Scene, max_blocks: int, seed: int = 0) -> dict:
    """BD-rates of the weighted and preprocessed coders against each anchor, all blocks and charts only."""
    views = rasterize_views(scene.mesh, scene.atlas, scene.cameras)
    problem = prepare(scene.mesh, scene.atlas, views, "renders")
    del views
    form = problem.distortion.form
    T, H, W, _ = scene.atlas.tiles.shape
    start = torch.from_numpy(pad(scene.atlas.tiles, problem.keep, "hbf"))
    out: dict[str, dict] = {}
    per_block: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # block size -> (weights, coefficients), once
    jobs = [(name, a, v) for name, a in anchors().items() for v in ("all", "charts")]
    for name, anchor, variant in tqdm(jobs, desc="headroom", leave=False, disable=None):
        block = anchor["block"]
        if block not in per_block:
            per_block[block] = (basis_weights(form, (T, H, W), block).reshape(-1, block * block),
                                block_coefficients(start, block).reshape(-1, block * block, 3))
        weights, coeffs = per_block[block]
        if variant == "charts":
            # The prior weighs every used texel, so a block holds a used (or seen) texel where a weight is > 0.
            chart = weights.amax(dim=1) > 0
            weights, coeffs = weights[chart], coeffs[chart]
        n_blocks = len(weights)
        if n_blocks > max_blocks:
            pick = torch.randperm(n_blocks, generator=torch.Generator().manual_seed(seed))[:max_blocks]
            weights, coeffs = weights[pick], coeffs[pick]
        samples = coeffs.shape[0] * coeffs.shape[1]
        base = anchor_curve(coeffs, weights, anchor["thetas"], anchor["survive"])
        ideal = weighted_curve(coeffs, weights, LEVELS)
        pre = preprocessed_curve(coeffs, weights, anchor["sweep"], anchor["survive"])
        out.setdefault(name, {})[variant] = {
            "blocks": n_blocks, "sampled": int(coeffs.shape[0]),
            "anchor_bits_per_texel": (base.bits / samples).tolist(),
            "weighted_bd_rate": bd_rate_of(base, ideal, samples),
            "preprocessed_bd_rate": bd_rate_of(base, pre, samples),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-sceaux", action="store_true", help="the demo scene only")
    parser.add_argument("--max-blocks", type=int, default=20000, help="blocks sampled per curve (seed 0)")
    args = parser.parse_args()
    scenes = demo_and_sceaux(not args.no_sceaux)
    start = time.perf_counter()
    results = {}
    for name, make in scenes.items():
        results[name] = scene_headroom(make(), args.max_blocks)
        print(f"{name}: done at {time.perf_counter() - start:.0f} s", flush=True)
    lines = ["# R-RD headroom under a Gaussian model (benchmarks/bench_headroom.py)", "",
             "BD-rate (%, pchip, model units) at equal rendering distortion against the anchor (the codec as it "
             "is, every texel alike), atlas padded by HBF, source views, asset reference, the optimiser's prior "
             "(0.05). *weighted*: an encoder that knew every coefficient's render weight (the most any "
             "preprocessing and codec could give under the model); *preprocessed*: the anchor fed the best "
             "per-coefficient shrink (what a preprocessor can give). *charts*: only the blocks holding a used "
             "texel (the gutters taken as free, as HEVC's and VVC's intra prediction nearly makes them). Model "
             "in `rrd/headroom.py`.", "",
             "| scene | anchor | blocks | weighted | preprocessed | anchor bits per texel (QP 22..42 or quality 30..90) |",
             "|---|---|---|---:|---:|---|"]
    labels = {k: a["label"] for k, a in anchors().items()}
    for scene, per_anchor in results.items():
        for name, variants in per_anchor.items():
            for variant, r in variants.items():
                bpt = ", ".join(f"{b:.3f}" for b in r["anchor_bits_per_texel"])
                lines.append(f"| {scene} | {labels[name]} | {variant} ({r['blocks']}, {r['sampled']} sampled) | "
                             f"{r['weighted_bd_rate']:+.2f} % | {r['preprocessed_bd_rate']:+.2f} % | {bpt} |")
    write_timed_results("headroom", lines, results, start)


if __name__ == "__main__":
    main()
