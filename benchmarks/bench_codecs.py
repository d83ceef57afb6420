"""Time and size of the real codecs (rrd_pipeline.codecs) at their default rate points on a texture atlas.

Codes the 4096x4096 Sceaux Castle atlas (/work/shared/data/sceaux_castle/scene_mesh_texture0.png;
a generated 4096x4096 image of gradients and texture if it is absent), or its centred N x N crop
with ``--size N``, at every default point of each codec; prints one line per point and writes a
markdown table to ``benchmarks/results/codecs.md`` (``--out``). Time is the wall-clock time of
``Codec.encode``: colour conversion, encoding, decoding and (HEVC/VVC) FFmpeg start-up.

    python benchmarks/bench_codecs.py                      # full size, all codecs
    python benchmarks/bench_codecs.py --size 512 --codecs jpeg hevc
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image

from rrd_pipeline.codecs import CODECS, get_codec
from rrd.metrics import psnr

__all__ = ["load_atlas", "run"]

ROOT = Path(__file__).resolve().parents[1]
ATLAS = ROOT.parent / "shared" / "data" / "sceaux_castle" / "scene_mesh_texture0.png"
FULL_SIDE = 4096


def load_atlas(size: int | None) -> tuple[np.ndarray, str]:
    """The (S, S, 3) uint8 benchmark image (centred crop of side ``size`` if given) and its source."""
    if ATLAS.exists():
        with Image.open(ATLAS) as im:
            image, source = np.asarray(im.convert("RGB")), f"Sceaux Castle atlas ({ATLAS.name})"
    else:
        yy, xx = np.mgrid[0:FULL_SIDE, 0:FULL_SIDE].astype(np.float64)
        base = 28 + 200 * np.stack([xx, yy, FULL_SIDE - (xx + yy) / 2], axis=-1) / FULL_SIDE
        texture = 20 * np.sin(0.21 * xx) * np.cos(0.13 * yy) + 8 * np.sin(0.05 * (xx + 3 * yy))
        noise = np.random.default_rng(0).normal(0, 3, base.shape[:2] + (1,))
        image = np.clip(np.rint(base + texture[..., None] + noise), 0, 255).astype(np.uint8)
        source = "generated gradients + sinusoidal texture + Gaussian noise (seed 0; atlas not found)"
    if size is not None:
        if not 1 <= size <= min(image.shape[:2]):
            raise SystemExit(f"--size {size} must be in 1..{min(image.shape[:2])}")
        top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
        image = image[top:top + size, left:left + size]
    return np.ascontiguousarray(image), source


def run(image: np.ndarray, codec_names: list[str]) -> list[dict[str, object]]:
    """Code ``image`` at each default point of each codec; one row per point (also printed)."""
    rows = []
    for name in codec_names:
        codec = get_codec(name)
        for param in codec.default_points:
            start = time.perf_counter()
            coded = codec.encode(image, param)
            seconds = time.perf_counter() - start
            psnr_db = psnr(image / 255.0, coded.decoded / 255.0)
            row = {"codec": repr(codec), "param": f"{codec.param_name} {param}", "nbytes": coded.nbytes,
                   "bpp": coded.bpp, "psnr_db": psnr_db, "seconds": seconds}
            print(f"{row['codec']:32s} {row['param']:12s} {coded.nbytes:10d} B {coded.bpp:7.4f} bpp "
                  f"{psnr_db:6.2f} dB {seconds:8.2f} s", flush=True)
            rows.append(row)
    return rows


def write_markdown(path: Path, rows: list[dict[str, object]], image: np.ndarray, source: str,
                   load_avg: float) -> None:
    lines = [
        "# Real codecs at their default rate points (benchmarks/bench_codecs.py)",
        "",
        f"Image: {source}, {image.shape[1]}x{image.shape[0]} RGB. "
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, load average {load_avg:.1f} at the "
        "start (other processes slow the timings down). PSNR: RGB, peak 255, whole image. "
        "Time: wall clock of one `Codec.encode` call (colour conversion + encode + decode + FFmpeg "
        "start-up). Codecs with their default options.",
        "",
        "| codec | point | nbytes | bpp | PSNR (dB) | time (s) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['codec']} | {r['param']} | {r['nbytes']} | {r['bpp']:.4f} | {r['psnr_db']:.2f} "
              f"| {r['seconds']:.2f} |" for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=None, help="side of a centred square crop, pixels")
    parser.add_argument("--codecs", nargs="+", default=list(CODECS), choices=list(CODECS))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "codecs.md")
    args = parser.parse_args()
    image, source = load_atlas(args.size)
    load_avg = os.getloadavg()[0]
    rows = run(image, args.codecs)
    write_markdown(args.out, rows, image, source, load_avg)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
