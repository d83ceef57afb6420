"""The ``rrd`` command line: one short function per command, each calling the stages or the library.

Exit codes: 0 success, 1 a pipeline finished with failed scenes, 2 bad input or a bad output place (one
line on stderr naming the file and the problem; typer's own usage errors also exit 2). Every option is
checked, and the output folder tried, before the scene is loaded.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from typer.core import TyperGroup

from rrd.errors import InputError
from rrd.settings import DEFAULT_SETTINGS
from rrd_pipeline.choices import (BackendChoice, CodecChoice, DeviceChoice, FilterChoice, PaddingChoice,
                                  ReferenceChoice, VertexFrameChoice, ViewSetChoice)
from rrd.viewpoints import ORBIT_SIZE
from rrd_pipeline.methods import METHODS
from rrd_pipeline.places import check_output_dir, place_error
from rrd_pipeline.publish import IMAGE_TYPES
from rrd_pipeline.sources import SceneSource, load_scene
from rrd_pipeline.stages import call_stage, stage_params
from rrd_pipeline.stages.compress import summary_line
from rrd_pipeline.stages.evaluate import DEFAULT_METHODS

__all__ = ["app", "main"]

class _OneLineUsageErrors(TyperGroup):
    """The command group, with a usage mistake (an unknown choice, a missing option) reported as one line
    ``error: <what is wrong> (see rrd <command> --help)`` and exit code 2, like every other user error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # typer's own click: usage errors (exit code 2) and the like
            code = getattr(exc, "exit_code", 1)
            ctx = getattr(exc, "ctx", None)
            if code == 2 and ctx is not None and "Help" not in type(exc).__name__:
                message = exc.format_message().replace("Value error, ", "")  # pydantic's prefix on a bad choice
                typer.echo(f"error: {message} (see {ctx.command_path} --help)", err=True)
            else:
                exc.show()
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=_OneLineUsageErrors, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  help="Rate-rendering distortion optimised preprocessing of texture atlases "
                       "(COLMAP, Meshroom, OpenMVS).")

ColmapOpt = Annotated[Optional[Path], typer.Option("--colmap", help="COLMAP workspace (sparse/0 + images/) or sparse model folder.")]
SfmOpt = Annotated[Optional[Path], typer.Option("--sfm", help="Meshroom/AliceVision .sfm camera file.")]
MeshOpt = Annotated[Optional[Path], typer.Option("--mesh", help="Textured mesh: OpenMVS .ply, an .obj (Meshroom or any texturer's) or glTF .glb/.gltf.")]
ImagesOpt = Annotated[Optional[Path], typer.Option("--images", help="Photo folder (default: <colmap>/images).")]
ScaleOpt = Annotated[float, typer.Option("--scale", help="Resize photos and cameras by this factor in (0, 1].")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the embedded demo scene (used without --colmap/--sfm).")]
VertexFrameOpt = Annotated[VertexFrameChoice, typer.Option(help="How a Meshroom .obj's vertices relate to the cameras: auto (from its material names), sfm or yz_flipped.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
CodecOpt = Annotated[CodecChoice, typer.Option(help="Codec that will store the atlas.")]
BackendOpt = Annotated[BackendChoice, typer.Option(help="Rasterizer (auto: the first available).")]
FilterOpt = Annotated[FilterChoice, typer.Option(help="Texture filter.")]
ReferenceOpt = Annotated[ReferenceChoice, typer.Option(help="Distortion reference: renders (of the original atlas) or the photos.")]
IterationsOpt = Annotated[int, typer.Option(help="Gradient steps of the optimiser per operating point (>= 1).")]
LambdaScaleOpt = Annotated[float, typer.Option(help="Multiplier of the operating-point lambda (> 0).")]
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
    """Turn InputError, and a write that failed for the place's fault (permission, read-only or full disk),
    into one line on stderr and exit code 2 (no traceback for user mistakes)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:
            error = place_error(exc)
            if error is None:
                raise
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _source(colmap, sfm, mesh, images, scale, seed, vertex_frame) -> SceneSource:
    return SceneSource(colmap=colmap, sfm=sfm, mesh=mesh, images=images, scale=scale, seed=seed,
                       vertex_frame=vertex_frame)


@app.command()
@user_errors
def render(out: OutOpt, colmap: ColmapOpt = None, sfm: SfmOpt = None, mesh: MeshOpt = None,
           images: ImagesOpt = None, scale: ScaleOpt = 1.0, seed: SeedOpt = 0, vertex_frame: VertexFrameOpt = "auto",
           filter: FilterOpt = "bilinear", backend: BackendOpt = "auto") -> None:
    """Render every source view with the original atlas; write renders, side-by-sides and a PSNR table."""
    params = dict(filter=filter, backend=backend)
    stage_params("render", **params)
    check_output_dir(out)
    scene = load_scene(_source(colmap, sfm, mesh, images, scale, seed, vertex_frame))
    result = call_stage("render", out, {"scene": scene}, **params)
    typer.echo((out / "psnr.md").read_text())
    typer.echo(f"wrote {result['report']}")


@app.command()
@user_errors
def optimize(out: OutOpt, colmap: ColmapOpt = None, sfm: SfmOpt = None, mesh: MeshOpt = None,
             images: ImagesOpt = None, scale: ScaleOpt = 1.0, seed: SeedOpt = 0, vertex_frame: VertexFrameOpt = "auto",
             codec: CodecOpt = "jpeg",
             param: Annotated[Optional[int], typer.Option(help="Operating point: JPEG quality or QP (default: middle of the standard sweep).")] = None,
             lam: Annotated[Optional[float], typer.Option("--lambda", help="Explicit lambda, bits per 8-bit SSE unit (default: tied to --param).")] = None,
             lambda_scale: LambdaScaleOpt = DEFAULT_SETTINGS.lambda_scale,
             iterations: IterationsOpt = DEFAULT_SETTINGS.iterations,
             reference: ReferenceOpt = "renders",
             init: Annotated[PaddingChoice, typer.Option(help="Padding that fills the starting gutters.")] = DEFAULT_SETTINGS.init,
             device: Annotated[DeviceChoice, typer.Option(help="Where the optimiser runs (auto: CUDA when available).")] = "auto",
             backend: BackendOpt = "auto",
             coded_distortion: CodedOpt = False) -> None:
    """Optimise the atlas for a codec; write the optimised tiles (same names, lossless) beside a copy of the mesh."""
    params = dict(codec=codec, param=param, lam=lam, lambda_scale=lambda_scale, iterations=iterations,
                  reference=reference, init=init, device=device, backend=backend, coded_distortion=coded_distortion)
    stage_params("optimize", **params)  # every value checked before the scene is loaded
    check_output_dir(out)
    scene = load_scene(_source(colmap, sfm, mesh, images, scale, seed, vertex_frame))
    result = call_stage("optimize", out, {"scene": scene}, **params)
    s = result["summary"]
    name = "quality" if "quality" in s else "qp"
    typer.echo(f"texture as {s['codec']} {name} {s[name]}: {s['start_kB']} kB padded ({init}) -> {s['kB']} kB "
               f"optimised (measured: {-s['saving_%']:+.1f} % bytes, rendering distortion "
               f"{s['distortion_%']:+.1f} %; the rate model estimated {-s['estimated_saving_%']:+.1f} % bits)")
    typer.echo(f"wrote {result['mesh']} (lossless tiles beside it) and {result['record']}")


@app.command()
@user_errors
def compress(mesh: Annotated[Path, typer.Argument(help="Textured mesh: OpenMVS .ply, an .obj (Meshroom or any texturer's) or glTF .glb/.gltf.")],
             out: Annotated[Path, typer.Option("--out", "-o", help="Output: a .glb / .gltf file, or a folder (mesh + page files).")],
             colmap: ColmapOpt = None, sfm: SfmOpt = None, images: ImagesOpt = None,
             vertex_frame: VertexFrameOpt = "auto",
             codec: Annotated[CodecChoice, typer.Option(help="Codec of the published pages.")] = "jpeg",
             param: Annotated[Optional[int], typer.Option("--quality", "--param", help="The codec's setting: JPEG quality (default: middle of the standard sweep).")] = None,
             generated_views: Annotated[bool, typer.Option(help="Add viewpoints generated around the mesh to its cameras (always used without cameras).")] = False,
             keep_lossless: Annotated[bool, typer.Option(help="Also write the optimised pages losslessly (under lossless/).")] = False,
             iterations: IterationsOpt = DEFAULT_SETTINGS.iterations,
             lambda_scale: LambdaScaleOpt = DEFAULT_SETTINGS.lambda_scale,
             device: Annotated[DeviceChoice, typer.Option(help="Where the optimiser runs (auto: CUDA when available).")] = "auto",
             backend: BackendOpt = "auto") -> None:
    """Publish the mesh with compressed textures: optimise the atlas for the codec, code it, write the asset
    and compress.json, and say what was gained against padding alone at the same setting."""
    is_gltf = out.suffix.lower() in (".glb", ".gltf")
    folder = out.parent if is_gltf else out
    params = dict(codec=codec, param=param, format=out.suffix.lower()[1:] if is_gltf else "folder",
                  name=out.stem if is_gltf else None, generated_views=generated_views, keep_lossless=keep_lossless,
                  iterations=iterations, lambda_scale=lambda_scale, device=device, backend=backend)
    stage_params("compress", **params)  # every value checked before the mesh is loaded
    check_output_dir(folder)
    scene = load_scene(_source(colmap, sfm, mesh, images, 1.0, 0, vertex_frame))
    result = call_stage("compress", folder, {"scene": scene}, **params)
    typer.echo(summary_line(json.loads(result["record"].read_text())))
    typer.echo(f"wrote {result['asset']} and {result['record']}")


@app.command()
@user_errors
def demo(out: OutOpt = Path("demo_out"), seed: SeedOpt = 0,
         codec: CodecOpt = "jpeg",
         points: Annotated[Optional[str], typer.Option(help="Comma-separated operating points.")] = "30,50,70,90",
         iterations: IterationsOpt = DEFAULT_SETTINGS.iterations) -> None:
    """The main job on the embedded demo scene: render it, code its atlas as delivered, padded (SPP, HBF) and
    R-RD optimised, against the photos (the BD-rate report), then publish it compressed (a GLB)."""
    point_values = _int_csv("--points", points)
    params = dict(codec=codec, methods=("none", "spp", "hbf", "rrd"), reference="photos", iterations=iterations,
                  points=None if point_values is None else tuple(point_values))
    stage_params("evaluate", **params)
    check_output_dir(out)
    scene = load_scene(SceneSource(seed=seed))
    call_stage("render", out / "render", {"scene": scene})
    typer.echo((out / "render" / "psnr.md").read_text())
    call_stage("evaluate", out / "evaluate", {"scene": scene}, **params)
    typer.echo((out / "evaluate" / "report.md").read_text())
    if codec in IMAGE_TYPES:
        published = call_stage("compress", out / "compress", {"scene": scene}, codec=codec, iterations=iterations,
                               format="glb", name="demo")
        typer.echo(summary_line(json.loads(published["record"].read_text())))
    typer.echo(f"demo results in {out}")


@app.command()
@user_errors
def run(pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML file.")],
        set_: Annotated[list[str], typer.Option("--set", help="Override a parameter: STAGE_ID.PARAM=VALUE (repeatable).")] = []) -> None:  # noqa: B006
    """Run a YAML pipeline (validated before anything runs; resumes from its cache)."""
    from rrd_pipeline.graph import run_pipeline

    result = run_pipeline(pipeline, set_, report=lambda line: typer.echo(line, err=True))
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
             scale: ScaleOpt = 1.0, seed: SeedOpt = 0, vertex_frame: VertexFrameOpt = "auto",
             codec: CodecOpt = "jpeg",
             methods: Annotated[str, typer.Option(help=f"Comma-separated methods, of: {', '.join(METHODS)} (the padding baselines, then the optimiser).")] = ",".join(DEFAULT_METHODS),
             points: Annotated[Optional[str], typer.Option(help="Comma-separated operating points (JPEG quality or QP); default the codec's.")] = None,
             reference: ReferenceOpt = "renders",
             filter: FilterOpt = "bilinear",
             views: Annotated[ViewSetChoice, typer.Option(help="source, orbit (16 cameras on a Fibonacci sphere) or both.")] = "source",
             anchor: Annotated[Optional[str], typer.Option(help="BD-rate anchor method; default the best baseline.")] = None,
             orbit_size: Annotated[int, typer.Option(help="Orbit image side in pixels.")] = ORBIT_SIZE,
             save_decoded: Annotated[bool, typer.Option(help="Write every decoded atlas (default: the lowest point's).")] = False,
             backend: BackendOpt = "auto",
             holdout: Annotated[Optional[str], typer.Option(help="Comma-separated source view indices to evaluate on, hidden from the rrd methods (leave-one-out).")] = None,
             iterations: IterationsOpt = DEFAULT_SETTINGS.iterations,
             lambda_scale: LambdaScaleOpt = DEFAULT_SETTINGS.lambda_scale,
             coded_distortion: CodedOpt = False) -> None:
    """Sweep a codec's operating points for several methods; write report.json, report.md, rd.png."""
    point_values = _int_csv("--points", points)
    params = dict(codec=codec, methods=tuple(_csv("--methods", methods)),
                  points=None if point_values is None else tuple(point_values), reference=reference,
                  filter=filter, views=views, anchor=anchor, orbit_size=orbit_size, save_decoded=save_decoded,
                  backend=backend, iterations=iterations, lambda_scale=lambda_scale,
                  holdout=tuple(_int_csv("--holdout", holdout) or ()), coded_distortion=coded_distortion)
    stage_params("evaluate", **params)  # every value checked before the scene is loaded
    check_output_dir(out)
    scene = load_scene(_source(colmap, sfm, mesh, images, scale, seed, vertex_frame))
    result = call_stage("evaluate", out, {"scene": scene}, **params)
    typer.echo((out / "report.md").read_text())
    typer.echo(f"wrote {result['report']}")


@app.command()
@user_errors
def pad(out: OutOpt, colmap: ColmapOpt = None, sfm: SfmOpt = None, mesh: MeshOpt = None, images: ImagesOpt = None,
        scale: ScaleOpt = 1.0, seed: SeedOpt = 0, vertex_frame: VertexFrameOpt = "auto",
        method: Annotated[PaddingChoice, typer.Option(help="Padding method.")] = "spp") -> None:
    """Pad the atlas gutters (texels a render reads kept bit for bit); write the tiles and mesh.obj."""
    check_output_dir(out)
    scene = load_scene(_source(colmap, sfm, mesh, images, scale, seed, vertex_frame))
    result = call_stage("pad", out, {"scene": scene}, method=method)
    typer.echo(f"wrote {result['mesh']} and {len(scene.atlas.udims)} padded tile(s) beside it")


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    app()
