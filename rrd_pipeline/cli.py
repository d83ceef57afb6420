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
from rrd_pipeline.sources import SceneSource, load_scene
from rrd_pipeline.stages import call_stage

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
           backend: Annotated[str, typer.Option(help="Rasterizer: auto, cpu or nvdiffrast.")] = "auto") -> None:
    """Render every source view with the original atlas; write renders, side-by-sides and a PSNR table."""
    scene = load_scene(_source(colmap, sfm, mesh, images, scale, seed))
    result = call_stage("render", out, {"scene": scene}, filter=filter, backend=backend)
    typer.echo((out / "psnr.md").read_text())
    typer.echo(f"wrote {result['report']}")


@app.command()
@user_errors
def demo(out: OutOpt = Path("demo_out"), seed: SeedOpt = 0) -> None:
    """Run the main job on the embedded demo scene."""
    scene = load_scene(SceneSource(seed=seed))
    call_stage("render", out / "render", {"scene": scene})
    typer.echo((out / "render" / "psnr.md").read_text())
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


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    app()
