"""The pipeline stages, registered in :data:`rrd_pipeline.stage.STAGES` on import.

The CLI commands call the same stage functions through :func:`call_stage`, with the command's
output folder as the stage's folder, so a command and its YAML stage cannot drift apart.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rrd_pipeline.stage import STAGES, StageContext, coerce_param, make_params
from rrd_pipeline.stages import encode, evaluate, load, optimize, pad, render  # noqa: F401  (registration)

__all__ = ["call_stage", "stage_params"]


def stage_params(name: str, **params: Any) -> Any:
    """The params dataclass of stage ``name`` built from ``params``, checked as a pipeline's are (InputError)."""
    spec = STAGES[name]
    return make_params(spec, {k: coerce_param(spec, k, v, Path.cwd()) for k, v in params.items()})


def call_stage(name: str, out_dir: Path, inputs: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    """Run one registered stage directly, writing into ``out_dir``.

    Args:
        name: stage registry key.
        out_dir: the folder the stage writes its files into (created).
        inputs: the stage's inputs by name.
        params: parameter values (validated like YAML values, :func:`stage_params`).
    Returns:
        The stage's outputs.
    """
    spec = STAGES[name]
    checked = stage_params(name, **params)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=100, desc=name, leave=False, disable=None, bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

    def progress(fraction: float, message: str = "") -> None:
        bar.n = round(100 * fraction)
        bar.set_postfix_str(message, refresh=True)

    ctx = StageContext(stage_id=name, scene=name, out_dir=out_dir, progress=progress,
                       log=logging.getLogger(f"rrd_pipeline.stage.{name}"))
    try:
        return spec.func(ctx, checked, **(inputs or {}))
    finally:
        bar.close()
