"""Fuzzing the readers: mutated input files never give a traceback, a hang or an unusable result.

Formats: OBJ, MTL and a texture page (through the OBJ), OpenMVS PLY (binary of both byte orders with
polygons and several textures, ASCII, and rrd's own), AliceVision .sfm (two versions), OpenMVS
scene.mvs, a COLMAP text model (cameras.txt, images.txt, points3D.txt), glTF/GLB and a pipeline YAML.

Every mutant (1 to 3 of: truncated, bytes flipped, a number replaced by nan/inf/a huge, negative or zero
value, a line dropped or repeated) is either read into finite values or refused with an
:class:`rrd.errors.InputError` of one line that names the file (or its folder: a COLMAP model, the OBJ
whose material or page is broken). The mutations come from a seeded generator (the same mutants on
every run). Each format gets at most MUTANTS mutants and BUDGET_S seconds (stopping early, never
failing, when the time is up); each read has a SIGALRM watchdog, and the whole format runs in a forked
child with a hard time limit, so a hang or a crash inside C code (pycolmap, Pillow, numpy) fails the
test, naming the mutant, instead of blocking or killing the run.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import signal
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_loaders_colmap import _write_text_model
from test_loaders_meshroom import _sfm_fixture
from test_loaders_openmvs import POLYGONS, VERTICES, _binary_ply, _header, _mvs_v3

import rrd_pipeline.stages  # noqa: F401  (registers the stages the pipeline file names)
from rrd.errors import InputError
from rrd.scene import Atlas, Camera, TexturedMesh
from rrd_pipeline.graph import load_pipeline
from rrd_pipeline.loaders import read_colmap_cameras, read_textured_mesh
from rrd_pipeline.loaders.meshroom import read_sfm, write_sfm
from rrd_pipeline.loaders.openmvs import read_mvs_cameras
from rrd_pipeline.writers import write_obj, write_ply
from rrd_pipeline.writers.gltf import write_gltf

MUTANTS = 150
BUDGET_S = 10.0
"""Wall-clock seconds per format; mutants left when it runs out are skipped (a slow machine tests fewer)."""
WATCHDOG_S = 10
"""Seconds one read may take before it counts as a hang."""
NUMBER = re.compile(rb"-?\d+(\.\d+)?(e-?\d+)?")
REPLACEMENTS = [b"nan", b"inf", b"-inf", b"1e308", b"1e999", b"-1", b"-0", b"0", b"99999999999",
                b"4294967295", b"99999999999999999999", b"1e-320"]


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


def mutant(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """1 to 3 mutations of ``data`` (mostly one) and their description."""
    steps = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        what, data = mutate(data, rng)
        steps.append(what)
    return " + ".join(steps), data


def implausible(result: object) -> str:
    """What makes an accepted read unusable (non-finite or impossible values), or ''."""
    items = result if isinstance(result, (list, tuple)) else [result]
    for item in items:
        if isinstance(item, Camera):
            if not all(np.isfinite(a).all() for a in (item.K, item.R, item.t)):
                return f"camera {item.name!r} has non-finite values"
            if not (item.K[0, 0] > 0 and item.K[1, 1] > 0):
                return f"camera {item.name!r} has focal lengths {item.K[0, 0]}, {item.K[1, 1]}"
            if np.abs(item.R @ item.R.T - np.eye(3)).max() > 1e-3:
                return f"camera {item.name!r} has an R that is not a rotation"
        elif isinstance(item, TexturedMesh):
            if not (np.isfinite(item.vertices).all() and np.isfinite(item.uv).all()):
                return "the mesh has non-finite vertices or UVs"
        elif isinstance(item, Atlas):
            if not all(np.isfinite(t).all() for t in item.tiles):
                return "the atlas has non-finite texels"
    return ""


def _watchdog(signum, frame):
    raise TimeoutError("no answer within the watchdog's time")


def _fuzz_here(target: Path, original: bytes, read: Callable[[Path], object], seed: int,
               current: Path) -> tuple[list[str], int]:
    """Read the mutants of ``target`` in this process; returns (failures, mutants read)."""
    rng = random.Random(seed)
    failures, start, count = [], time.monotonic(), 0
    signal.signal(signal.SIGALRM, _watchdog)
    while count < MUTANTS and time.monotonic() - start < BUDGET_S:
        what, data = mutant(original, rng)
        count += 1
        target.write_bytes(data)
        current.write_text(f"{count}\t{what}")  # for the parent, should this process hang or die
        signal.alarm(WATCHDOG_S)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # dropped faces, skipped views: warned, and fine
                problem = implausible(read(target))
            if problem:
                failures.append(f"{what}: read without complaint, but {problem}")
        except InputError as exc:
            # The file, or the folder holding it (a COLMAP model, the OBJ a material or page belongs to).
            text = str(exc)
            if (target.name not in text and str(target.parent) not in text) or len(text.splitlines()) != 1:
                failures.append(f"{what}: InputError without the file's name or on several lines: {text!r}")
        except Exception as exc:  # noqa: BLE001  (any other exception is what the fuzz test finds)
            failures.append(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")
        finally:
            signal.alarm(0)
    return failures, count


def fuzz(target: Path, read: Callable[[Path], object], seed: int) -> tuple[list[str], int]:
    """Mutate ``target`` in place and read each mutant, in a forked child with a hard time limit.

    Returns:
        (failures, mutants read); a hang or a crash of the child is one failure naming its mutant.
        ``target`` is restored.
    """
    original = target.read_bytes()
    limit = BUDGET_S + 2 * WATCHDOG_S + 30
    with tempfile.TemporaryDirectory() as tmp:
        report, current = Path(tmp) / "report.json", Path(tmp) / "current.txt"
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                failures, count = _fuzz_here(target, original, read, seed, current)
                report.write_text(json.dumps({"failures": failures, "count": count}))
                code = 0
            finally:
                os._exit(code)
        try:
            deadline, status = time.monotonic() + limit, None
            while status is None:
                done, code = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = code
                elif time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    count, what = _last(current)
                    return [f"{what}: no answer within {limit:.0f} s (a hang the watchdog could not break)"], count
                else:
                    time.sleep(0.02)
        finally:
            target.write_bytes(original)
        if report.exists():
            result = json.loads(report.read_text())
            return result["failures"], result["count"]
        count, what = _last(current)
        cause = (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                 else f"exit status {os.WEXITSTATUS(status)}")
        return [f"{what}: the reading process died ({cause})"], count


def _last(current: Path) -> tuple[int, str]:
    """(mutants begun, description of the last) as the child left them in ``current``."""
    if not current.exists():
        return 0, "before the first mutant"
    count, what = current.read_text().split("\t", 1)
    return int(count), what


def _colmap_model(folder: Path) -> Path:
    """A two-image SIMPLE_PINHOLE text model with 2D points and one 3D point seen by both images."""
    model = _write_text_model(folder, "1 SIMPLE_PINHOLE 64 48 50 32 24", ["b.png", "a.png"])
    (model / "images.txt").write_text("1 1 0 0 0 0 0 5 1 b.png\n10 20 1 30 40 -1\n"
                                      "2 0.7071 0 0.7071 0 0.5 0 5 1 a.png\n11 21 1\n")
    (model / "points3D.txt").write_text("1 0.5 0.25 1.5 200 100 50 0.3 1 0 2 0\n")
    return model


@pytest.fixture(scope="module")
def seeds(small_demo, tmp_path_factory):
    """Valid files of every format under one folder (the keys of READERS are paths in it)."""
    root = tmp_path_factory.mktemp("seeds")
    write_obj(root / "obj" / "texturedMesh.obj", small_demo.mesh, small_demo.atlas)
    assert small_demo.atlas.names == ("texture_1001.png",)  # the page READERS names
    write_ply(root / "ply" / "scene_mesh_texture.ply", small_demo.mesh, small_demo.atlas)
    write_sfm(root / "cameras.sfm", small_demo.cameras)
    _sfm_fixture(root / "old.sfm", ["1", "2", "4"], {"focalLength": "30", "sensorWidth": "32", "pixelRatio": "2",
                                                   "principalPoint": ["1", "-1"]}, views=2)
    shutil.copy(Path(__file__).resolve().parents[1] / "pipelines" / "demo.yaml", root / "demo.yaml")
    page = io.BytesIO()
    Image.fromarray(np.rint(small_demo.atlas.tiles[0] * 255).astype(np.uint8)).save(page, format="JPEG")
    write_gltf(root / "mesh.glb", small_demo.mesh, small_demo.atlas, [(page.getvalue(), "image/jpeg")])
    write_gltf(root / "mesh.gltf", small_demo.mesh, small_demo.atlas, [(page.getvalue(), "image/jpeg")])

    polygons = root / "polygons"  # OpenMVS layout: polygons, two textures, texnumber
    polygons.mkdir()
    for name in ("t0.png", "t1.png"):
        Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(polygons / name)
    _binary_ply(polygons / "le.ply")
    _binary_ply(polygons / "be.ply", ">")
    body = "".join(f"{x} {y} {z}\n" for x, y, z in VERTICES)
    for idx, tc, tex in POLYGONS:
        body += f"{len(idx)} {' '.join(map(str, idx))} {len(tc)} {' '.join(map(str, tc))} {tex}\n"
    (polygons / "ascii.ply").write_bytes(_header("ascii", ["t0.png", "t1.png"], True) + body.encode())
    (root / "mvs").mkdir()
    _mvs_v3(root / "mvs" / "scene.mvs")
    _colmap_model(root / "sparse")
    return root


def _obj_of(path: Path):
    return read_textured_mesh(path.parent / "texturedMesh.obj")


def _colmap_of(path: Path):
    return read_colmap_cameras(path.parent)


READERS: dict[str, Callable[[Path], object]] = {
    "obj/texturedMesh.obj": read_textured_mesh,
    "obj/texturedMesh.mtl": _obj_of,
    "obj/texture_1001.png": _obj_of,
    "ply/scene_mesh_texture.ply": read_textured_mesh,
    "polygons/le.ply": read_textured_mesh,
    "polygons/be.ply": read_textured_mesh,
    "polygons/ascii.ply": read_textured_mesh,
    "cameras.sfm": read_sfm,
    "old.sfm": read_sfm,
    "mvs/scene.mvs": read_mvs_cameras,
    "sparse/cameras.txt": _colmap_of,
    "sparse/images.txt": _colmap_of,
    "sparse/points3D.txt": _colmap_of,
    "demo.yaml": load_pipeline,
    "mesh.glb": read_textured_mesh,
    "mesh.gltf": read_textured_mesh,
}


@pytest.mark.parametrize("name", list(READERS))
def test_mutated_files_are_read_or_refused_in_one_line_naming_the_file(seeds, name):
    target, read = seeds / name, READERS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert implausible(read(target)) == ""  # the seed itself reads
    failures, count = fuzz(target, read, seed=sum(map(ord, name)))
    assert not failures, f"{len(failures)} of {count} mutants of {name}:\n" + "\n".join(failures[:8])
