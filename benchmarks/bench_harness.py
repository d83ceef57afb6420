"""Cost of the evaluation harness (``rrd evaluate``) on the Sceaux Castle sample.

Measures, on the 4096x4096 Sceaux atlas and its 10 source views (``--scale`` resizes the views):
the one-off set-up (rasterizing the views, the two occupancies, the evaluator), the padding time of
each baseline, the codec time of one point per codec (the full per-point table is
``benchmarks/results/codecs.md``, from ``bench_codecs.py``), the rendering-quality time of one point
(every view rendered with a decoded atlas and compared), and the time to write one decoded atlas
(PNG). From these it estimates the time of a default sweep per codec. Writes
``benchmarks/results/harness.{md,json}``.

    python benchmarks/bench_harness.py
    python benchmarks/bench_harness.py --scale 0.5 --codecs jpeg
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, machine, peak_rss_mb, timed, write_results  # noqa: E402

from rrd_pipeline.codecs import get_codec  # noqa: E402
from rrd.codec import code_atlas  # noqa: E402
from rrd_pipeline.methods import build_context, padded_atlas  # noqa: E402
from rrd_pipeline.sources import SceneSource, load_scene  # noqa: E402
from rrd_pipeline.stages.evaluate import DEFAULT_METHODS  # noqa: E402
from rrd_pipeline.writers import write_image  # noqa: E402

__all__ = ["main"]

SCEAUX = SHARED_DATA / "sceaux_castle"
MIDDLE_POINTS = {"jpeg": 60, "hevc": 32, "vvc": 32}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="photo and camera resize factor in (0, 1]")
    parser.add_argument("--codecs", nargs="+", default=["jpeg", "hevc", "vvc"])
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated padding methods")
    args = parser.parse_args()
    if not SCEAUX.is_dir():
        raise SystemExit(f"the Sceaux Castle sample is not at {SCEAUX}")
    load_avg = os.getloadavg()[0]
    times: dict[str, float] = {}
    with timed(times, "load_s"):
        scene = load_scene(SceneSource(colmap=SCEAUX, mesh=SCEAUX / "scene_mesh_texture.ply", scale=args.scale))
    with timed(times, "context_s"):
        ctx = build_context(scene, get_codec("jpeg"))
    pixels = sum(v.n_counted for v in ctx.evaluator.views)
    print(f"set-up {times['context_s']:.1f} s ({pixels / 1e6:.1f} M counted pixels)", flush=True)

    padding: dict[str, float] = {}
    padded = {}
    for name in args.methods.split(","):
        with timed(padding, name):
            padded[name] = padded_atlas(scene, name, ctx.keep)
        print(f"pad {name}: {padding[name]:.2f} s", flush=True)
    atlas = padded["spp" if "spp" in padded else next(iter(padded))]

    codecs = {}
    for name in args.codecs:
        codec = get_codec(name)
        coded = code_atlas(codec, atlas, MIDDLE_POINTS[name])
        quality = []
        for _ in range(3):
            start = time.perf_counter()
            ctx.evaluator.quality(coded.decoded)
            quality.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_image(Path(tmp) / "decoded.png", coded.decoded[0])
            png_s = time.perf_counter() - start
        n_points = len(codec.default_points)
        sweep = len(padding) * n_points * (coded.seconds + float(np.median(quality)))
        codecs[name] = {"codec": repr(codec), "param": MIDDLE_POINTS[name], "codec_s": coded.seconds,
                        "quality_s": float(np.median(quality)), "png_s": png_s, "points": n_points,
                        "sweep_estimate_s": sweep + sum(padding.values()) + times["context_s"]}
        print(f"{name}: codec {coded.seconds:.2f} s, quality {np.median(quality):.2f} s, png {png_s:.2f} s", flush=True)

    cam = scene.cameras[0]
    lines = [
        "# Cost of the evaluation harness (benchmarks/bench_harness.py)", "",
        f"Sceaux Castle: atlas {scene.atlas.width}x{scene.atlas.height}, {len(scene.cameras)} source views of "
        f"{cam.width}x{cam.height} px (scale {args.scale}), {pixels / 1e6:.1f} M counted pixels. "
        f"Machine: {os.cpu_count()} CPU cores, load average {load_avg:.1f} at the start (other processes slow "
        f"the timings down); peak memory {peak_rss_mb():.0f} MB.", "",
        f"One-off set-up (rasterize the views, occupancies at margins 0.5 and 1.0, evaluator): "
        f"{times['context_s']:.1f} s; loading the scene {times['load_s']:.1f} s.", "",
        "## Padding a 4096x4096 atlas (occupancy = UV triangles grown by one texel)", "",
        "| method | time (s) |", "|---|---:|",
        *[f"| {name} | {seconds:.2f} |" for name, seconds in padding.items()], "",
        "## One operating point", "",
        "codec: `Codec.encode` of the atlas (encode + decode), see `codecs.md` for every point; quality: "
        "rendering every view with the decoded atlas and computing RGB + YUV PSNR; png: writing the "
        "decoded atlas. Sweep estimate: set-up + padding + methods x points x (codec + quality).", "",
        "| codec | point | codec (s) | quality (s) | png (s) | default points | sweep estimate (min) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *[f"| {c['codec']} | {c['param']} | {c['codec_s']:.2f} | {c['quality_s']:.2f} | {c['png_s']:.2f} | "
          f"{c['points']} | {c['sweep_estimate_s'] / 60:.1f} |" for c in codecs.values()], ""]
    write_results("harness", "\n".join(lines), {"scale": args.scale, "times": times, "padding_s": padding,
                                                 "codecs": codecs, "counted_pixels": pixels, "load_avg": load_avg,
                                                 "machine": machine()})


if __name__ == "__main__":
    main()
