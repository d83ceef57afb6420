"""Are the rate models honest? Estimated against real bits over processed atlases and operating points.

For each codec (rrd_pipeline.codecs) and its rate model (rrd.rate), crops of the real atlases
(Sceaux Castle ``scene_mesh_texture0.png`` and Meshroom NASA ``texture_1001.png``, crops with at
least 25 % occupied texels) are processed into variants:

* ``asis``: as delivered (black gutters); ``pushpull``: gutters filled by rrd.padding "pushpull";
* ``blur1``, ``blur2.5``: Gaussian blur sigma 1 and 2.5 texels; ``noise``: + Gaussian noise
  sigma 6/255 (seeded); ``poster``: posterised to 8 levels per channel;
* ``opt-R``: ``asis`` after gradient descent on the model's bits alone; ``opt-RD``: the same on
  the model's cost (its bits, and for VVC the coding error it prices) + lambda * squared error on the
  occupied texels (what the R-RD optimiser does, with the rendering distortion replaced by the texel
  error). Both at the middle operating point.

Every variant is coded at every operating point (JPEG quality 30..90, HEVC/VVC QP 22..42) and the
report gives the Spearman rank correlation of estimated and real bits (overall, and within each
operating point: the honest one), the relative error with the shipped constants and after
``rrd.rate.calibrate`` on the crop's ``asis`` version at that point (what the optimiser does at
start-up), and, for the optimised variants, the estimated saving over the real saving (1 = honest,
2 = the model promised twice the real saving). Timings: forward, and forward + backward, on the full
4096 x 4096 Sceaux atlas. Benchmark crops never overlap the crops the constants were fitted on.

    python benchmarks/bench_rate_models.py                 # all codecs -> benchmarks/results/rate_models.md
    python benchmarks/bench_rate_models.py --codecs jpeg --quick
    python benchmarks/bench_rate_models.py --fit hevc      # refit a model's constants and print them
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.optimize import nnls
from scipy.stats import spearmanr

from rrd_pipeline.codecs import get_codec
from rrd.padding import pad
from rrd.rate import CoefficientCost, RateModel, calibrate, get_rate_model
from rrd.rate.jpeg import JPEG_CHROMA, JPEG_LUMA, JpegPlaneCost
from rrd.rate.video import BLOCK_SIZES, VideoPlaneCost, quadtree_bits

__all__ = ["crop_positions", "fit_jpeg", "fit_video", "optimise", "run_codec", "variants"]

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
ATLASES = {"sceaux": DATA / "sceaux_castle" / "scene_mesh_texture0.png",
           "nasa": DATA / "meshroom_nasa" / "texture_1001.png"}
POINTS = {"jpeg": (30, 40, 50, 60, 70, 80, 90), "hevc": (22, 27, 32, 37, 42), "vvc": (22, 27, 32, 37, 42)}
MIDDLE = {"jpeg": 50, "hevc": 32, "vvc": 32}
BENCH_SIDE = {"jpeg": 1024, "hevc": 1024, "vvc": 512}
FIT_SIDE, FIT_CROPS = 512, {"jpeg": 6, "hevc": 6, "vvc": 3}
MIN_OCCUPANCY = 0.25
BENCH_SEED, FIT_SEED = 1234, 0
# Gradient descent of the optimised variants: steps, largest texel change per step, RD weight.
OPT_STEPS, OPT_STEP_VALUE = 200, 1.0 / 255
OPT_LAMBDA_BITS = 0.05  # bits per squared 8-bit code value per occupied texel and channel
TIMING_SIDE = 4096

torch.set_num_threads(min(2, os.cpu_count() or 1))


def load(name: str) -> np.ndarray:
    with Image.open(ATLASES[name]) as image:
        return np.asarray(image.convert("RGB"))


def crop_positions(image: np.ndarray, side: int, count: int, seed: int,
                   avoid: list[tuple[int, int, int]] = ()) -> list[tuple[int, int]]:
    """``count`` top-left corners of ``side`` crops with enough occupied texels, not overlapping ``avoid``
    (a list of (y, x, side)); drawn with a seeded generator."""
    occupied = image.max(axis=-1) > 0
    rng = np.random.default_rng(seed)
    found: list[tuple[int, int]] = []
    for _ in range(100000):
        y, x = (int(v) for v in rng.integers(0, np.array(image.shape[:2]) - side + 1))
        taken = list(avoid) + [(fy, fx, side) for fy, fx in found]
        if occupied[y:y + side, x:x + side].mean() > MIN_OCCUPANCY and not any(
                y < ay + aside and ay < y + side and x < ax + aside and ax < x + side for ay, ax, aside in taken):
            found.append((y, x))
            if len(found) == count:
                return found
    raise SystemExit(f"found only {len(found)} crops of side {side}")


def variants(u8: np.ndarray) -> dict[str, np.ndarray]:
    """The fixed processing variants of a crop, each (S, S, 3) uint8."""
    texels = u8.astype(np.float32) / 255
    occupied = u8.max(axis=-1) > 0
    noise = np.random.default_rng(7).normal(0.0, 6.0 / 255, texels.shape).astype(np.float32)
    floats = {"asis": texels, "pushpull": pad(texels, occupied, "pushpull"),
              "blur1": gaussian_filter(texels, (1, 1, 0)), "blur2.5": gaussian_filter(texels, (2.5, 2.5, 0)),
              "noise": texels + noise, "poster": np.round(texels * 7) / 7}
    return {name: to_u8(value) for name, value in floats.items()}


def to_u8(texels: np.ndarray | torch.Tensor) -> np.ndarray:
    array = texels.detach().cpu().numpy() if isinstance(texels, torch.Tensor) else texels
    return np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)


def to_tensor(u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(u8).to(torch.float32) / 255


def optimise(model: RateModel, u8: np.ndarray, param: int, distortion_weight: float) -> np.ndarray:
    """Plain gradient descent on ``bits + w * sum_occupied (255 (x - x0))^2``, texels clamped to [0, 1];
    with ``w > 0`` the model's ``cost`` stands for its bits, as in the R-RD optimiser.

    The step is fixed so that the largest texel change of the first step is OPT_STEP_VALUE.
    """
    start = to_tensor(u8)
    occupied = torch.from_numpy(u8.max(axis=-1) > 0)[..., None].to(torch.float32)
    texels = start.clone().requires_grad_(True)
    step = None
    for _ in range(OPT_STEPS):
        loss = model.cost(texels, param) if distortion_weight else model.bits(texels, param)
        if distortion_weight:
            loss = loss + distortion_weight * (((texels - start) * 255.0) ** 2 * occupied).sum()
        (grad,) = torch.autograd.grad(loss, texels)
        if step is None:
            step = OPT_STEP_VALUE / float(grad.abs().max().clamp_min(1e-12))
        with torch.no_grad():
            texels -= step * grad
            texels.clamp_(0.0, 1.0)
    return to_u8(texels)


def run_codec(codec_name: str, quick: bool) -> dict[str, object]:
    """Rows (crop, variant, param, real bits, model bits, calibrated bits) and summaries for one codec."""
    codec = get_codec(codec_name)
    model = get_rate_model(codec_name)
    side = 256 if quick else BENCH_SIDE[codec_name]
    per_atlas = 1 if quick else 3
    # Quick: every third point, and always the middle one, where the optimised variants are made and reported.
    points = sorted({*POINTS[codec_name][::3], MIDDLE[codec_name]}) if quick else POINTS[codec_name]
    steps_note = OPT_STEPS
    rows, savings = [], []
    for atlas_name in ATLASES:
        atlas = load(atlas_name)
        fit_avoid = [(y, x, FIT_SIDE) for y, x in crop_positions(atlas, FIT_SIDE, FIT_CROPS[codec_name], FIT_SEED)]
        for y, x in crop_positions(atlas, side, per_atlas, BENCH_SEED, fit_avoid):
            crop = np.ascontiguousarray(atlas[y:y + side, x:x + side])
            images = variants(crop)
            t0 = time.perf_counter()
            images["opt-R"] = optimise(model, crop, MIDDLE[codec_name], 0.0)
            images["opt-RD"] = optimise(model, crop, MIDDLE[codec_name], OPT_LAMBDA_BITS)
            opt_seconds = time.perf_counter() - t0
            crop_id = f"{atlas_name}@{y},{x}"
            for param in points:
                calibrated = calibrate(model, codec, [crop], [param])
                for name, image in images.items():
                    real = codec.encode(image, param).bits
                    with torch.no_grad():
                        estimate = float(model.bits(to_tensor(image), param))
                        estimate_cal = float(calibrated.bits(to_tensor(image), param))
                    rows.append({"crop": crop_id, "variant": name, "param": param, "real": real,
                                 "model": estimate, "calibrated": estimate_cal})
            by_key = {(r["variant"], r["param"]): r for r in rows if r["crop"] == crop_id}
            for name in ("opt-R", "opt-RD"):
                for param in points:
                    before, after = by_key[("asis", param)], by_key[(name, param)]
                    real_saving = 1 - after["real"] / before["real"]
                    model_saving = 1 - after["calibrated"] / before["calibrated"]
                    savings.append({"crop": crop_id, "variant": name, "param": param,
                                    "optimised_at": MIDDLE[codec_name], "model_saving": model_saving,
                                    "real_saving": real_saving})
            print(f"{codec_name} {crop_id}: {len(images)} variants x {len(points)} points "
                  f"(optimisation {opt_seconds:.0f} s)", flush=True)
    return {"codec": codec_name, "side": side, "points": points, "rows": rows, "savings": savings,
            "steps": steps_note}


def summarise(result: dict[str, object]) -> list[dict[str, object]]:
    """One summary line per operating point plus an "all" line."""
    rows = result["rows"]
    lines = []
    for param in list(result["points"]) + ["all"]:
        sel = [r for r in rows if param == "all" or r["param"] == param]
        real = np.array([r["real"] for r in sel], dtype=np.float64)
        est = np.array([r["model"] for r in sel])
        cal = np.array([r["calibrated"] for r in sel])
        other = np.array([r["variant"] != "asis" for r in sel])
        rel = est / real - 1
        rel_cal = (cal / real - 1)[other]
        if param == "all":
            within = [spearmanr([r["model"] for r in rows if r["param"] == p],
                                [r["real"] for r in rows if r["param"] == p])[0] for p in result["points"]]
            rho = spearmanr(est, real)[0]
            within_text = f"{min(within):.4f} (min over points)"
        else:
            rho = spearmanr(est, real)[0]
            within_text = f"{rho:.4f}"
        sav = [s for s in result["savings"] if param == "all" or s["param"] == param]
        ratios = [s["model_saving"] / s["real_saving"] for s in sav if abs(s["real_saving"]) > 1e-3]
        lines.append({"param": param, "n": len(sel), "spearman_within": within_text,
                      "spearman_overall": spearmanr(est, real)[0] if param == "all" else rho,
                      "rms_rel": float(np.sqrt(np.mean(rel ** 2))), "max_rel": float(np.abs(rel).max()),
                      "rms_rel_cal": float(np.sqrt(np.mean(rel_cal ** 2))),
                      "max_rel_cal": float(np.abs(rel_cal).max()),
                      "saving_ratio": float(np.median(ratios)) if ratios else float("nan")})
    return lines


def time_models(codec_names: list[str], side: int) -> list[dict[str, object]]:
    """Best-of-3 wall time of the forward pass and of forward + backward on the Sceaux atlas."""
    atlas = to_tensor(np.ascontiguousarray(load("sceaux")[:side, :side]))
    out = []
    for name in codec_names:
        model = get_rate_model(name)
        param = MIDDLE[name]
        forward, both = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            with torch.no_grad():
                model.bits(atlas, param)
            forward.append(time.perf_counter() - t0)
            texels = atlas.clone().requires_grad_(True)
            t0 = time.perf_counter()
            model.bits(texels, param).backward()
            both.append(time.perf_counter() - t0)
        out.append({"codec": name, "forward_s": min(forward), "forward_backward_s": min(both)})
        print(f"timing {name}: forward {min(forward):.3f} s, forward+backward {min(both):.3f} s", flush=True)
    return out


# --------------------------------------------------------------------------------------------------
# Fitting the shipped constants


def fit_set(codec_name: str) -> list[tuple[np.ndarray, int, int]]:
    """(image, param, real bits) of the fitting set: FIT_SIDE crops, the six fixed variants.

    The real bits are cached in benchmarks/out/ (ignored by git) to refit without re-encoding.
    """
    codec = get_codec(codec_name)
    cache = ROOT / "benchmarks" / "out" / f"rate_fit_{codec_name}.npz"
    if cache.exists():
        stored = np.load(cache)
        return list(zip(stored["images"], stored["params"].tolist(), stored["bits"].tolist()))
    out = []
    for atlas_name in ATLASES:
        atlas = load(atlas_name)
        for y, x in crop_positions(atlas, FIT_SIDE, FIT_CROPS[codec_name], FIT_SEED):
            for image in variants(np.ascontiguousarray(atlas[y:y + FIT_SIDE, x:x + FIT_SIDE])).values():
                for param in POINTS[codec_name]:
                    out.append((image, param, codec.encode(image, param).bits))
        print(f"fit set {codec_name}: {len(out)} encodes", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, images=np.stack([o[0] for o in out]), params=np.array([o[1] for o in out]),
             bits=np.array([o[2] for o in out]))
    return out


def fit_jpeg(samples: list[tuple[np.ndarray, int, int]]) -> None:
    """Non-negative least squares (rows weighted by 1 / real bits) of the JPEG model's coefficient terms.

    ``block_bits`` is not fitted: it is the exact cost of an empty block with the standard Huffman
    tables (DC difference 0 and end of block: 2 + 4 bits luma, 2 + 2 bits chroma), since luma and
    chroma block counts are proportional and a fit could not tell them apart.
    """
    zero = CoefficientCost(0.0, 0.0)
    empty = JpegPlaneCost(0.0, zero, zero)
    fixed = get_rate_model("jpeg", luma=dataclasses.replace(empty, block_bits=JPEG_LUMA.block_bits),
                           chroma=dataclasses.replace(empty, block_bits=JPEG_CHROMA.block_bits))
    names, bases = [], []
    for plane in ("luma", "chroma"):
        for part in ("ac", "dc"):
            for which, one in (("nonzero_bits", CoefficientCost(1.0, 0.0)),
                               ("magnitude_bits", CoefficientCost(0.0, 1.0))):
                cost = dataclasses.replace(empty, **{part: one})
                names.append(f"{plane}.{part}.{which}")
                bases.append(get_rate_model("jpeg", **{"luma": empty, "chroma": empty, plane: cost}))
    with torch.no_grad():
        features = np.array([[float(m.raw_bits(to_tensor(image), param)) for m in bases]
                             for image, param, _ in samples])
        constant = np.array([float(fixed.raw_bits(to_tensor(image), param)) + fixed.header_bits
                             for image, param, _ in samples])
    real = np.array([bits for _, _, bits in samples], dtype=np.float64)
    weights, _ = nnls(features / real[:, None], (real - constant) / real)
    estimate = features @ weights + constant
    print(f"rms relative error {np.sqrt(np.mean((estimate / real - 1) ** 2)):.4f}, "
          f"max {np.abs(estimate / real - 1).max():.4f}")
    for name, weight in zip(names, weights):
        print(f"  {name} = {weight:.4g}")


def fit_video(codec_name: str, samples: list[tuple[np.ndarray, int, int]],
              thresholds: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9),
              magnitude_floor: float = 0.0) -> None:
    """Least squares of log(estimate / real) over the video model's constants, for each threshold.

    ``magnitude_floor`` is a lower bound of the magnitude bits (the level coding of CABAC costs about
    one bit or more per octave of a large coefficient; without a floor the fit may trade it for the
    per-coefficient and coded-block constants, leaving large coefficients without a gradient).
    The per-picture ``header_bits`` is not fitted: it is the size of a flat grey 16 x 16 picture at the
    middle QP (parameter sets, slice header and a few bits of data), since all fitting crops have one size.
    """
    real = torch.tensor([bits for _, _, bits in samples], dtype=torch.float64)
    header = float(get_codec(codec_name).encode(np.full((16, 16, 3), 128, np.uint8), MIDDLE[codec_name]).bits)
    print(f"header_bits = {header:.0f}")
    for threshold in thresholds:
        model = get_rate_model(codec_name, threshold=threshold)
        with torch.no_grad():
            terms = [model.plane_terms(to_tensor(image), 0, -image.shape[0] % model.unit_rows, param)
                     for image, param, _ in samples]
        planes = [[torch.stack([t[k][s] for t in terms]).to(torch.float64) for s in range(len(BLOCK_SIZES))]
                  for k in range(3)]
        log_params = torch.log(torch.tensor([2.0, 1.0, 2.0, 0.5, 2.0, 1.0, 2.0, 0.5],
                                            dtype=torch.float64)).requires_grad_(True)
        floors = torch.zeros(8, dtype=torch.float64)
        floors[[1, 5]] = magnitude_floor

        def estimate(log_p: torch.Tensor) -> torch.Tensor:
            p = torch.exp(log_p) + floors
            costs = [VideoPlaneCost(CoefficientCost(p[o], p[o + 1]), p[o + 2], p[o + 3]) for o in (0, 4)]
            return header + sum(quadtree_bits(planes[k], costs[min(k, 1)]).sum(dim=(1, 2)) for k in range(3))

        optimiser = torch.optim.LBFGS([log_params], max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            loss = ((torch.log(estimate(log_params)) - torch.log(real)) ** 2).mean()
            loss.backward()
            return loss

        optimiser.step(closure)
        with torch.no_grad():
            rel = estimate(log_params) / real - 1
            p = (torch.exp(log_params) + floors).tolist()
        print(f"threshold {threshold}: rms relative error {float(rel.pow(2).mean().sqrt()):.4f}, "
              f"max {float(rel.abs().max()):.4f}")
        print(f"  luma: nonzero {p[0]:.4g}, magnitude {p[1]:.4g}, cbf {p[2]:.4g}, block {p[3]:.4g}; "
              f"chroma: nonzero {p[4]:.4g}, magnitude {p[5]:.4g}, cbf {p[6]:.4g}, block {p[7]:.4g}", flush=True)


# --------------------------------------------------------------------------------------------------
# Report


def write_markdown(path: Path, results: list[dict[str, object]], timings: list[dict[str, object]]) -> None:
    lines = ["# Rate models against the real codecs (benchmarks/bench_rate_models.py)", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
             f"({torch.get_num_threads()} threads). Crops: {', '.join(ATLASES)} atlases, >= "
             f"{int(MIN_OCCUPANCY * 100)} % occupied, disjoint from the fitting crops. Variants: asis, "
             "pushpull, blur1, blur2.5, noise, poster, opt-R, opt-RD (see the script's docstring; "
             f"opt-* = {OPT_STEPS} gradient steps at the middle point).", "",
             "Columns: Spearman of estimated vs real bits within the point (overall on the `all` line, "
             "with the minimum within-point value); relative error RMS / max with the shipped constants; "
             "after `calibrate` on the crop's asis version at that point (over the other variants); "
             "median over crops of estimated saving / real saving of the optimised variants against "
             "asis (1 = honest, 2 = twice the real saving promised).", ""]
    for result in results:
        lines += [f"## {result['codec']} ({result['side']}x{result['side']} crops)", "",
                  "| point | n | Spearman within | Spearman overall | rel. err. RMS / max | calibrated RMS / max "
                  "| saving ratio |", "|---|---:|---:|---:|---:|---:|---:|"]
        for s in summarise(result):
            lines.append(f"| {s['param']} | {s['n']} | {s['spearman_within']} | {s['spearman_overall']:.4f} | "
                         f"{s['rms_rel']:.3f} / {s['max_rel']:.3f} | {s['rms_rel_cal']:.3f} / "
                         f"{s['max_rel_cal']:.3f} | {s['saving_ratio']:.2f} |")
        lines += ["", "Optimised variants at the middle point (saving against asis, calibrated model):", "",
                  "| crop | variant | model saving | real saving | ratio |", "|---|---|---:|---:|---:|"]
        for s in result["savings"]:
            if s["param"] == s["optimised_at"]:
                ratio = s["model_saving"] / s["real_saving"] if abs(s["real_saving"]) > 1e-3 else float("nan")
                lines.append(f"| {s['crop']} | {s['variant']} | {100 * s['model_saving']:.1f} % | "
                             f"{100 * s['real_saving']:.1f} % | {ratio:.2f} |")
        lines.append("")
    if timings:
        lines += [f"## Speed ({TIMING_SIDE}x{TIMING_SIDE}x3 Sceaux atlas, float32, CPU, best of 3)", "",
                  "| model | forward (s) | forward + backward (s) |", "|---|---:|---:|"]
        lines += [f"| {t['codec']} | {t['forward_s']:.3f} | {t['forward_backward_s']:.3f} |" for t in timings]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codecs", nargs="+", default=["jpeg", "hevc", "vvc"], choices=sorted(POINTS))
    parser.add_argument("--quick", action="store_true", help="256 crops, one per atlas, every third point and the middle one")
    parser.add_argument("--fit", choices=sorted(POINTS), help="refit this model's constants and print them")
    parser.add_argument("--magnitude-floor", type=float, default=0.0,
                        help="--fit hevc/vvc: lower bound of the magnitude bits")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9],
                        help="--fit hevc/vvc: dead-zone thresholds to try")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rate_models.md")
    args = parser.parse_args()
    if args.fit:
        samples = fit_set(args.fit)
        if args.fit == "jpeg":
            fit_jpeg(samples)
        else:
            fit_video(args.fit, samples, tuple(args.thresholds), args.magnitude_floor)
        return
    timings = [] if args.no_timing else time_models(args.codecs, TIMING_SIDE)
    results = []
    for name in args.codecs:
        results.append(run_codec(name, args.quick))
        for s in summarise(results[-1]):
            print(s, flush=True)
    write_markdown(args.out, results, timings)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
