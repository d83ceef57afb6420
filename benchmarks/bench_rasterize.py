"""Rasterize all 10 Sceaux Castle views at full resolution on the CPU: time and peak memory.

Writes benchmarks/results/rasterize.{md,json} and, for a person to look at, a render|photo
side-by-side of view 0 under benchmarks/out/ (not committed: it is derived from the sample).
Usage: python benchmarks/bench_rasterize.py [--backend cpu|nvdiffrast]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import OUT, SHARED_DATA, machine, peak_rss_mb, write_results  # noqa: E402

from rrd.metrics import psnr  # noqa: E402
from rrd.rasterize import rasterize  # noqa: E402
from rrd.render import make_view, render, texel_vector, view_taps  # noqa: E402
from rrd_pipeline.loaders.colmap import load_colmap_scene  # noqa: E402
from rrd_pipeline.writers import write_image  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="cpu")
    args = parser.parse_args()
    root = SHARED_DATA / "sceaux_castle"
    scene = load_colmap_scene(root / "sparse" / "0", root / "images", root / "scene_mesh_texture.ply")
    base_mb = peak_rss_mb()
    rows, total = [], 0.0
    texels = texel_vector(torch.from_numpy(scene.atlas.tiles))
    for i, cam in enumerate(scene.cameras):
        t = time.perf_counter()
        frag = rasterize(scene.mesh, cam, args.backend)
        dt = time.perf_counter() - t
        total += dt
        view = make_view(frag, scene.mesh, scene.atlas, cam)
        with torch.no_grad():
            image = render(texels, view_taps(view, scene.atlas.tiles.shape[:3]), view).numpy()
        photo = scene.photos[i].astype(np.float32) / 255
        mask = view.mask().numpy()
        rows.append({"view": cam.name, "seconds": dt, "covered": float(mask.mean()), "psnr": psnr(image, photo, mask)})
        if i == 0:
            write_image(OUT / "sceaux_view0_render_vs_photo.png", np.concatenate([image, photo], axis=1))
        print(f"{cam.name}: {dt:.2f} s, covered {100 * mask.mean():.1f} %, PSNR {rows[-1]['psnr']:.2f} dB", flush=True)
    info = machine()
    md = [f"# Rasterization of the 10 Sceaux views at 2832x2128 ({args.backend})", "",
          f"commit {info['commit']}, torch {info['torch']}, {info['torch_threads']} threads", "",
          "| view | seconds | covered % | masked PSNR vs photo (dB) |", "|---|---:|---:|---:|"]
    md += [f"| {r['view']} | {r['seconds']:.2f} | {100 * r['covered']:.1f} | {r['psnr']:.2f} |" for r in rows]
    md += ["", f"Total rasterization: **{total:.1f} s** for 10 views ({total / 10:.2f} s per view); "
               f"peak memory {peak_rss_mb():.0f} MB (process, after loading the scene: {base_mb:.0f} MB)."]
    write_results(f"rasterize_{args.backend}", "\n".join(md) + "\n",
                  {"backend": args.backend, "views": rows, "total_seconds": total, "peak_rss_mb": peak_rss_mb(),
                   "rss_after_load_mb": base_mb, "machine": info})


if __name__ == "__main__":
    main()
