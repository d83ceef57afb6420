"""Fuzzing the readers: mutated OBJ/MTL/PLY/.sfm/glTF/GLB/YAML files never give a traceback or a hang.

Every mutant (truncated, bytes flipped, a number replaced by nan/inf/a huge or negative value, a line dropped
or repeated) is either read or refused with an :class:`rrd.errors.InputError` of one line that names the file
(or the file it names, for a material file naming a texture). The
mutations come from a seeded generator (the same mutants on every run); each format gets a bounded number
of mutants and each read a watchdog.
"""

from __future__ import annotations

import io
import random
import re
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import rrd_pipeline.stages  # noqa: F401  (registers the stages the pipeline file names)
from rrd.errors import InputError
from rrd_pipeline.graph import load_pipeline
from rrd_pipeline.loaders import read_textured_mesh
from rrd_pipeline.loaders.meshroom import read_sfm, write_sfm
from rrd_pipeline.loaders.openmvs import read_openmvs_ply
from rrd_pipeline.writers import write_obj, write_ply
from rrd_pipeline.writers.gltf import write_gltf

MUTANTS = 150
WATCHDOG_S = 20
NUMBER = re.compile(rb"-?\d+(\.\d+)?(e-?\d+)?")
REPLACEMENTS = [b"nan", b"inf", b"-inf", b"1e308", b"-1", b"0", b"99999999999", b"1e-320"]


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One mutation of ``data`` and its description."""
    kind = rng.choice(["truncate", "flip", "number", "drop", "repeat"])
    if kind == "truncate" or not data:
        at = rng.randrange(len(data) + 1)
        return f"truncated at {at}", data[:at]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(out))
            out[at] ^= 1 << rng.randrange(8)
        return "bytes flipped", bytes(out)
    if kind == "number":
        numbers = list(NUMBER.finditer(data[:200_000]))
        if numbers:
            m = rng.choice(numbers)
            new = rng.choice(REPLACEMENTS)
            return f"number at {m.start()} -> {new.decode()}", data[:m.start()] + new + data[m.end():]
    lines = data.split(b"\n")
    at = rng.randrange(len(lines))
    if kind == "drop":
        return f"line {at + 1} dropped", b"\n".join(lines[:at] + lines[at + 1:])
    return f"line {at + 1} repeated", b"\n".join(lines[:at + 1] + lines[at:])


def _watchdog(signum, frame):
    raise TimeoutError("no answer within the watchdog's time")


def fuzz(target: Path, read: Callable[[Path], object], seed: int) -> list[str]:
    """Mutate ``target`` in place MUTANTS times, read each; returns the failures (restores the file)."""
    original = target.read_bytes()
    rng = random.Random(seed)
    failures = []
    old = signal.signal(signal.SIGALRM, _watchdog)
    try:
        for _ in range(MUTANTS):
            what, data = mutate(original, rng)
            target.write_bytes(data)
            signal.alarm(WATCHDOG_S)
            try:
                read(target)
            except InputError as exc:
                # The file, or the file it names that is wrong (a texture an MTL names), in one line.
                if (target.name not in str(exc) and str(target.parent) not in str(exc)) or "\n" in str(exc):
                    failures.append(f"{what}: InputError without the file's name or on several lines: {exc}")
            except Exception as exc:  # noqa: BLE001  (any other exception is what the fuzz test finds)
                failures.append(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)
        target.write_bytes(original)
    return failures


@pytest.fixture(scope="module")
def seeds(small_demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    write_obj(root / "obj" / "texturedMesh.obj", small_demo.mesh, small_demo.atlas)
    write_ply(root / "ply" / "scene_mesh_texture.ply", small_demo.mesh, small_demo.atlas)
    write_sfm(root / "cameras.sfm", small_demo.cameras)
    shutil.copy(Path(__file__).resolve().parents[1] / "pipelines" / "demo.yaml", root / "demo.yaml")
    page = io.BytesIO()
    Image.fromarray(np.rint(small_demo.atlas.tiles[0] * 255).astype(np.uint8)).save(page, format="JPEG")
    write_gltf(root / "mesh.glb", small_demo.mesh, small_demo.atlas, [(page.getvalue(), "image/jpeg")])
    write_gltf(root / "mesh.gltf", small_demo.mesh, small_demo.atlas, [(page.getvalue(), "image/jpeg")])
    return root


@pytest.mark.parametrize("name, read", [
    ("obj/texturedMesh.obj", read_textured_mesh),
    ("obj/texturedMesh.mtl", lambda p: read_textured_mesh(p.with_suffix(".obj"))),
    ("ply/scene_mesh_texture.ply", read_openmvs_ply),
    ("cameras.sfm", read_sfm),
    ("demo.yaml", load_pipeline),
    ("mesh.glb", read_textured_mesh),
    ("mesh.gltf", read_textured_mesh),
], ids=["obj", "mtl", "ply", "sfm", "yaml", "glb", "gltf"])
def test_mutated_files_are_read_or_refused_in_one_line_naming_the_file(seeds, name, read):
    target = seeds / name
    read(target if name != "obj/texturedMesh.mtl" else target)  # the seed itself reads
    failures = fuzz(target, read, seed=sum(map(ord, name)))
    assert not failures, f"{len(failures)} of {MUTANTS} mutants of {name}:\n" + "\n".join(failures[:8])
