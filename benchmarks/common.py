"""Helpers shared by the benchmark scripts: the sample data location, timing, peak memory, results files."""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import time
from contextlib import contextmanager
from collections.abc import Callable
from pathlib import Path

import torch

from rrd.demo_scene import make_demo_scene
from rrd.scene import Scene
from rrd_pipeline.sources import SceneSource, load_scene

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "benchmarks" / "out"  # images for people to look at (git-ignored: sample-derived)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux ru_maxrss is in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed(store: dict, key: str):
    """Record the wall time of the block in ``store[key]`` (seconds)."""
    t = time.perf_counter()
    yield
    store[key] = time.perf_counter() - t


def machine() -> dict:
    """What ran the benchmark: CPU, cores torch uses, torch version, commit."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "commit": commit}


def write_results(name: str, markdown: str, data: dict) -> None:
    """Write benchmarks/results/<name>.md and .json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(markdown)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2))
    print(markdown)


def write_timed_results(name: str, lines: list[str], results: dict, started: float) -> None:
    """``write_results`` of a markdown report that ends with the run's time (since ``started``, a
    ``time.perf_counter()`` reading) and peak memory, and of ``results`` with the machine."""
    lines = [*lines, "", f"Time {time.perf_counter() - started:.0f} s, peak memory {peak_rss_mb():.0f} MB."]
    write_results(name, "\n".join(lines) + "\n", {"results": results, "machine": machine()})


def demo_and_sceaux(with_sceaux: bool = True) -> dict[str, Callable[[], Scene]]:
    """Scene makers by name: the demo scene, and the full-resolution Sceaux sample where ../shared has it."""
    scenes: dict[str, Callable[[], Scene]] = {"demo": make_demo_scene}
    sample = SHARED_DATA / "sceaux_castle"
    if with_sceaux and sample.is_dir():
        scenes["sceaux (full resolution)"] = lambda: load_scene(
            SceneSource(colmap=sample, mesh=sample / "scene_mesh_texture.ply"))
    return scenes
