"""The pipeline stages, registered in :data:`rrd_pipeline.stage.STAGES` on import.

The CLI commands call the same stage functions through :func:`call_stage`, with the command's
output folder as the stage's folder, so a command and its YAML stage cannot drift apart. As in a
pipeline, the stage writes into a temporary folder that is published into the output folder once it
has finished (:mod:`rrd_pipeline.places`): a failure leaves nothing half-written there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rrd_pipeline import cache
from rrd_pipeline.places import check_output_dir, place_error, publish
from rrd_pipeline.stage import STAGES, StageContext, coerce_param, make_params
from rrd_pipeline.stages import compress, encode, evaluate, load, optimize, pad, render  # noqa: F401  (registration)

__all__ = ["call_stage", "stage_params", "expected_bytes"]


def stage_params(name: str, /, **params: Any) -> Any:
    """The params dataclass of stage ``name`` built from ``params``, checked as a pipeline's are (InputError)."""
    spec = STAGES[name]
    return make_params(spec, {k: coerce_param(spec, k, v, Path.cwd()) for k, v in params.items()})


def call_stage(name: str, out_dir: Path, inputs: dict[str, Any] | None = None, /, **params: Any) -> dict[str, Any]:
    """Run one registered stage directly, writing into ``out_dir``.

    Args:
        name: stage registry key.
        out_dir: the folder the stage's files are published into (created; checked first, see
            :func:`rrd_pipeline.places.check_output_dir`).
        inputs: the stage's inputs by name.
        params: parameter values (validated like YAML values, :func:`stage_params`).
    Returns:
        The stage's outputs.
    """
    spec = STAGES[name]
    checked = stage_params(name, **params)
    out_dir = check_output_dir(out_dir, expected_bytes(inputs or {}))
    bar = tqdm(total=100, desc=name, leave=False, disable=None, bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

    def progress(fraction: float, message: str = "") -> None:
        bar.n = round(100 * fraction)
        bar.set_postfix_str(message, refresh=True)

    try:
        with cache.staging(out_dir / name) as staged:
            ctx = StageContext(stage_id=name, scene=name, out_dir=staged, progress=progress,
                               log=logging.getLogger(f"rrd_pipeline.stage.{name}"))
            try:
                outputs = spec.func(ctx, checked, **(inputs or {}))
                publish(staged, out_dir)
            except OSError as exc:
                # Name the file the user asked for, not its temporary place.
                target = Path(exc.filename) if exc.filename else out_dir
                if target.is_relative_to(staged):
                    target = out_dir / target.relative_to(staged)
                if place_error(exc) is None:
                    raise
                raise place_error(OSError(exc.errno, exc.strerror, str(target))) from None
    finally:
        bar.close()
    return cache.relocated(outputs, staged, out_dir)


def expected_bytes(inputs: dict[str, Any]) -> int:
    """A rough size of what a stage writes for a scene: its atlas as 8-bit RGB, twice (the tiles and a
    decoded or padded copy), plus its photos twice (renders and side-by-sides)."""
    scene = inputs.get("scene")
    if scene is None:
        return 0
    photos = sum(p.nbytes for p in scene.photos) if scene.photos is not None else 0
    return 2 * scene.atlas.tiles[..., :3].size + 2 * photos
