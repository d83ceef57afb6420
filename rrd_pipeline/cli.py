"""The ``rrd`` command line: one short function per command, each calling the stages or the library.

Exit codes: 0 success, 1 a pipeline finished with failed scenes, 2 bad input (one line on stderr
naming the file and the problem; typer's own usage errors also exit 2).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from rrd.errors import InputError
from rrd.preprocess import DEFAULT_ITERATIONS, DEFAULT_LAMBDA_SCALE
from rrd_pipeline.sources import SceneSource, load_scene
from rrd_pipeline.stages import call_stage
from rrd_pipeline.stages import encode as _encode, evaluate as _evaluate, pad as _pad  # noqa: F401  (registration)

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Rate-rendering distortion optimised preprocessing of texture atlases "
                       "(COLMAP, Meshroom, OpenMVS).")

ColmapOpt = Annotated[Optional[Path], typer.Option("--colmap", help="COLMAP workspace (sparse/0 + images/) or sparse model folder.")]
SfmOpt = Annotated[Optional[Path], typer.Option("--sfm", help="Meshroom/AliceVision .sfm camera file.")]
MeshOpt = Annotated[Optional[Path], typer.Option("--mesh", help="Textured mesh: OpenMVS .ply or Meshroom texturedMesh.obj.")]
ImagesOpt = Annotated[Optional[Path], typer.Option("--images", help="Photo folder (default: <colmap>/images).")]
ScaleOpt = Annotated[float, typer.Option("--scale", help="Resize photos and cameras by this factor in (0, 1].")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the embedded demo scene (used without --colmap/--sfm).")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
CodedOpt = Annotated[bool, typer.Option("--coded-distortion/--no-coded-distortion",
                                        help="Judge each step by the distortion of the atlas as the codec decodes it (the "
                                             "codec runs every iteration; see rrd.optimize) instead of the atlas's own.")]


LOG_LEVELS = {"fatal": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING,
              "info": logging.INFO, "debug": logging.DEBUG, "trace": logging.DEBUG}


@app.callback()
def options(log_level: Annotated[str, typer.Option("--log-level", help="fatal, error, warning, info, debug or trace.")] = "warning") -> None:
    """Rate-rendering distortion optimised preprocessing of texture atlases (COLMAP, Meshroom, OpenMVS)."""
    if log_level not in LOG_LEVELS:
        raise typer.BadParameter(f"{log_level!r} is not one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    logging.getLogger().setLevel(LOG_LEVELS[log_level])


def user_errors(func: Callable) -> Callable:
    """Turn InputError into one line on stderr and exit code 2 (no traceback for user mistakes)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _source(colmap, sfm, mesh, images, scale, seed) -> SceneSource:
    return SceneSource(colmap=colmap, sfm=sfm, mesh=mesh, images=images, scale=scale, seed=seed)


@app.command()
@user_errors
def render(out: OutOpt, colmap: ColmapOpt = None, sfm: SfmOpt = None, mesh: MeshOpt = None,
           images: ImagesOpt = None, scale: ScaleOpt = 1.0, seed: SeedOpt = 0,
           filter: Annotated[str, typer.Option(help="Texture filter: bilinear or trilinear.")] = "bilinear",
           backend: Annotated[str, typer.Option(help="Rasterizer: auto, nvdiffrast, embree or cpu.")] = "auto") -> None:
    """Render every source view with the original atlas; write renders, side-by-sides and a PSNR table."""
    scene = load_scene(_source(colmap, sfm, mesh, images, scale, seed))
    result = call_stage("render", out, {"scene": scene}, filter=filter, backend=backend)
    typer.echo((out / "psnr.md").read_text())
    typer.echo(f"wrote {result['report']}")


@app.command()
@user_errors
def optimize(out: OutOpt, colmap: ColmapOpt = None, sfm: SfmOpt = None, mesh: MeshOpt = None,
             images: ImagesOpt = None, scale: ScaleOpt = 1.0, seed: SeedOpt = 0,
             codec: Annotated[str, typer.Option(help="Codec that will store the atlas: jpeg, hevc or vvc.")] = "jpeg",
             param: Annotated[Optional[int], typer.Option(help="Operating point: JPEG quality or QP (default: middle of the standard sweep).")] = None,
             lam: Annotated[Optional[float], typer.Option("--lambda", help="Explicit lambda, bits per 8-bit SSE unit (default: tied to --param).")] = None,
             lambda_scale: Annotated[float, typer.Option(help="Multiplier of the operating-point lambda.")] = DEFAULT_LAMBDA_SCALE,
             iterations: Annotated[int, typer.Option(help="Gradient steps.")] = DEFAULT_ITERATIONS,
             reference: Annotated[str, typer.Option(help="Distortion reference: renders (of the original atlas) or photos.")] = "renders",
             init: Annotated[str, typer.Option(help="Padding that fills the starting gutters (spp, pushpull, hbf, none, ...).")] = "spp",
             device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
             backend: Annotated[str, typer.Option(help="Rasterizer: auto, nvdiffrast, embree or cpu.")] = "auto",
             coded_distortion: CodedOpt = False) -> None:
    """Optimise the atlas for a codec; write the optimised tiles (same names, lossless) beside a copy of the mesh."""
    scene = load_scene(_source(colmap, sfm, mesh, images, scale, seed))
    result = call_stage("optimize", out, {"scene": scene}, codec=codec, param=param, lam=lam,
                        lambda_scale=lambda_scale, iterations=iterations, reference=reference, init=init,
                        device=device, backend=backend, coded_distortion=coded_distortion)
    summary = result["summary"]
    typer.echo(f"estimated {summary['est_kB']} kB ({summary['est_saving_%']}% below the padded start); "
               f"wrote {result['mesh']} and {result['record']}")


@app.command()
@user_errors
def demo(out: OutOpt = Path("demo_out"), seed: SeedOpt = 0,
         codec: Annotated[str, typer.Option(help="Codec: jpeg, hevc or vvc.")] = "jpeg",
         points: Annotated[Optional[str], typer.Option(help="Comma-separated operating points.")] = "30,50,70,90",
         iterations: Annotated[int, typer.Option(help="Gradient steps of the optimiser.")] = DEFAULT_ITERATIONS) -> None:
    """The main job on the embedded demo scene: render it, then code its atlas as delivered, padded (SPP,
    HBF) and R-RD optimised, against the photos; write the BD-rate report."""
    scene = load_scene(SceneSource(seed=seed))
    call_stage("render", out / "render", {"scene": scene})
    typer.echo((out / "render" / "psnr.md").read_text())
    point_values = _int_csv("--points", points)
    call_stage("evaluate", out / "evaluate", {"scene": scene}, codec=codec, methods=("none", "spp", "hbf", "rrd"),
               points=None if point_values is None else tuple(point_values), reference="photos",
               iterations=iterations)
    typer.echo((out / "evaluate" / "report.md").read_text())
    typer.echo(f"demo results in {out}")


@app.command()
@user_errors
def run(pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML file.")],
        set_: Annotated[list[str], typer.Option("--set", help="Override a parameter: STAGE_ID.PARAM=VALUE (repeatable).")] = []) -> None:  # noqa: B006
    """Run a YAML pipeline (validated before anything runs; resumes from its cache)."""
    from rrd_pipeline.graph import run_pipeline

    result = run_pipeline(pipeline, set_)
    typer.echo(result.table())
    raise typer.Exit(0 if result.ok else 1)


def _csv(option: str, text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _int_csv(option: str, text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in _csv(option, text)]
    except ValueError:
        raise InputError(f"{option} {text!r}: expected comma-separated integers, e.g. 30,50,70") from None


@app.command()
@user_errors
def evaluate(out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("out/evaluate"),
             colmap: ColmapOpt = None, sfm: SfmOpt = None, mesh: MeshOpt = None, images: ImagesOpt = None,
             scale: ScaleOpt = 1.0, seed: SeedOpt = 0,
             codec: Annotated[str, typer.Option(help="Codec: jpeg, hevc or vvc.")] = "jpeg",
             methods: Annotated[str, typer.Option(help="Comma-separated methods (padding baselines: none, dilate, pushpull, spp, vdmc, hbf, sparse, extend).")] = ",".join(_evaluate.DEFAULT_METHODS),
             points: Annotated[Optional[str], typer.Option(help="Comma-separated operating points (JPEG quality or QP); default the codec's.")] = None,
             reference: Annotated[str, typer.Option(help="renders (of the original atlas) or photos.")] = "renders",
             filter: Annotated[str, typer.Option(help="Texture filter: bilinear or trilinear.")] = "bilinear",
             views: Annotated[str, typer.Option(help="source, orbit (16 cameras on a Fibonacci sphere) or both.")] = "source",
             anchor: Annotated[Optional[str], typer.Option(help="BD-rate anchor method; default the best baseline.")] = None,
             orbit_size: Annotated[int, typer.Option(help="Orbit image side in pixels.")] = 1024,
             save_decoded: Annotated[bool, typer.Option(help="Write every decoded atlas (default: the lowest point's).")] = False,
             backend: Annotated[str, typer.Option(help="Rasterizer: auto, nvdiffrast, embree or cpu.")] = "auto",
             holdout: Annotated[Optional[str], typer.Option(help="Comma-separated source view indices to evaluate on, hidden from the rrd methods (leave-one-out).")] = None,
             iterations: Annotated[int, typer.Option(help="Gradient steps of the rrd methods.")] = DEFAULT_ITERATIONS,
             lambda_scale: Annotated[float, typer.Option(help="Multiplier of the rrd methods' operating-point lambda.")] = DEFAULT_LAMBDA_SCALE,
             coded_distortion: CodedOpt = False) -> None:
    """Sweep a codec's operating points for several methods; write report.json, report.md, rd.png."""
    method_names, point_values = _csv("--methods", methods), _int_csv("--points", points)
    _evaluate.check_request(codec, method_names, point_values, anchor)
    scene = load_scene(_source(colmap, sfm, mesh, images, scale, seed))
    result = call_stage("evaluate", out, {"scene": scene}, codec=codec, methods=tuple(method_names),
                        points=None if point_values is None else tuple(point_values), reference=reference,
                        filter=filter, views=views, anchor=anchor, orbit_size=orbit_size,
                        save_decoded=save_decoded, backend=backend, iterations=iterations,
                        lambda_scale=lambda_scale, holdout=tuple(_int_csv("--holdout", holdout) or ()),
                        coded_distortion=coded_distortion)
    typer.echo((out / "report.md").read_text())
    typer.echo(f"wrote {result['report']}")


@app.command()
@user_errors
def pad(out: OutOpt, colmap: ColmapOpt = None, sfm: SfmOpt = None, mesh: MeshOpt = None, images: ImagesOpt = None,
        scale: ScaleOpt = 1.0, seed: SeedOpt = 0,
        method: Annotated[str, typer.Option(help="Padding method: none, dilate, pushpull, spp, vdmc, hbf, sparse or extend.")] = "spp") -> None:
    """Pad the atlas gutters (texels a render reads kept bit for bit); write the tiles and mesh.obj."""
    from rrd_pipeline.methods import check_padding

    check_padding(method)
    scene = load_scene(_source(colmap, sfm, mesh, images, scale, seed))
    result = call_stage("pad", out, {"scene": scene}, method=method)
    typer.echo(f"wrote {result['mesh']} and {len(scene.atlas.udims)} padded tile(s) beside it")


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    app()
