"""Fuzzing the readers: mutated input files never give a traceback, a hang or an unusable result.

Formats: Meshroom's UDIM OBJ and another texturer's OBJ, each with its MTL and a texture page (read
through the OBJ); OpenMVS PLY (binary of both byte orders with polygons and several textures, ASCII, and
rrd's own); AliceVision .sfm (two versions); OpenMVS scene.mvs; a COLMAP model as text (cameras.txt,
images.txt, points3D.txt) and as binary (cameras/images/points3D/rigs/frames.bin); glTF/GLB; a pipeline
YAML.

Every mutant (1 to 3 of: truncated, bytes flipped, a number replaced by nan/inf/a huge, negative or zero
value, a line dropped or repeated) is either read into finite values or refused with an
:class:`rrd.errors.InputError` of one line that names the file (or its folder: a COLMAP model, the OBJ
whose material or page is broken). The mutations come from a seeded generator (the same mutants on
every run). Each format gets at most MUTANTS mutants and BUDGET_S seconds (stopping early, never
failing, when the time is up); each read has a SIGALRM watchdog, and the whole format runs in a forked
child with a hard time limit and an address-space cap, so a hang, a crash inside C code (pycolmap,
Pillow, numpy) or an allocation for a size no file holds fails the test, naming the mutant, instead of
blocking or killing the run. Headers claiming sizes no file can hold (10^12 vertices, a 100000 x 100000
page) are checked one by one as well.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import resource
import shutil
import signal
import struct
import tempfile
import zlib
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_loaders_colmap import _write_text_model
from test_loaders_meshroom import SQUARE, _obj, _sfm_fixture
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
MEMORY_HEADROOM = 2 << 30
"""Bytes the reading child may allocate beyond what it inherits: a header claiming 10^12 records must be
refused, not allocated, and an attempt fails as a MemoryError instead of exhausting the machine."""
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


def _cap_memory() -> None:
    """Limit this process's address space to its present size plus MEMORY_HEADROOM (Linux)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return
    size = 1024 * int(next(ln for ln in status.read_text().splitlines() if ln.startswith("VmSize")).split()[1])
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    soft = size + MEMORY_HEADROOM if hard == resource.RLIM_INFINITY else min(size + MEMORY_HEADROOM, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _watchdog(signum, frame):
    raise TimeoutError("no answer within the watchdog's time")


def _generated(original: bytes, seed: int) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    for _ in range(MUTANTS):
        yield mutant(original, rng)


def _fuzz_here(target: Path, mutants: Iterable[tuple[str, bytes]], read: Callable[[Path], object],
               current: Path) -> tuple[list[str], int]:
    """Read the mutants of ``target`` in this process; returns (failures, mutants read)."""
    failures, start, count = [], time.monotonic(), 0
    signal.signal(signal.SIGALRM, _watchdog)
    for what, data in mutants:
        if time.monotonic() - start > BUDGET_S:
            break
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


def fuzz(target: Path, read: Callable[[Path], object], seed: int,
         mutants: Iterable[tuple[str, bytes]] | None = None) -> tuple[list[str], int]:
    """Mutate ``target`` in place and read each mutant, in a forked child with a hard time and memory limit.

    Args:
        mutants: (description, content) pairs to read; default MUTANTS generated from ``seed``.
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
                _cap_memory()
                mutants = _generated(original, seed) if mutants is None else mutants
                failures, count = _fuzz_here(target, mutants, read, current)
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

    # Another texturer's OBJ (rrd_pipeline.loaders.obj): named materials, a quad, a PNG and a JPEG page.
    _obj(root / "texturer", SQUARE + "usemtl wood\nf 1/1 2/2 3/3 4/4\nusemtl stone\nf 2/1 5/2 3/3\n",
         {"wood": "wood.png", "stone": "stone.jpg"})

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
    import pycolmap  # the binary model as COLMAP itself writes it (with rigs.bin, frames.bin from 3.12 on)

    (root / "sparse_bin").mkdir()
    pycolmap.Reconstruction(str(root / "sparse")).write_binary(str(root / "sparse_bin"))
    return root


def _obj_of(path: Path):
    """The OBJ beside ``path`` (a material file or a page), read."""
    return read_textured_mesh(next(path.parent.glob("*.obj")))


def _colmap_of(path: Path):
    return read_colmap_cameras(path.parent)


READERS: dict[str, Callable[[Path], object]] = {
    "obj/texturedMesh.obj": read_textured_mesh,
    "obj/texturedMesh.mtl": _obj_of,
    "obj/texture_1001.png": _obj_of,
    "texturer/m.obj": read_textured_mesh,
    "texturer/m.mtl": _obj_of,
    "texturer/stone.jpg": _obj_of,
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
    "sparse_bin/cameras.bin": _colmap_of,
    "sparse_bin/images.bin": _colmap_of,
    "sparse_bin/points3D.bin": _colmap_of,
    "sparse_bin/rigs.bin": _colmap_of,
    "sparse_bin/frames.bin": _colmap_of,
    "demo.yaml": load_pipeline,
    "mesh.glb": read_textured_mesh,
    "mesh.gltf": read_textured_mesh,
}


@pytest.mark.parametrize("name", list(READERS))
def test_mutated_files_are_read_or_refused_in_one_line_naming_the_file(seeds, name):
    target, read = seeds / name, READERS[name]
    if not target.exists():
        pytest.skip(f"this pycolmap writes no {target.name} (COLMAP before 3.12)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert implausible(read(target)) == ""  # the seed itself reads
    failures, count = fuzz(target, read, seed=sum(map(ord, name)))
    assert not failures, f"{len(failures)} of {count} mutants of {name}:\n" + "\n".join(failures[:8])


def _png_claiming(data: bytes, width: int, height: int) -> bytes:
    """``data`` (a PNG) with its IHDR size replaced (and its checksum redone, so only the size lies)."""
    assert data[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + data[24:29]
    return data[:16] + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + data[33:]


HUGE = 10 ** 12
# (file, what the damaged copy claims, how to damage it): sizes no file of that length can hold.
CLAIMS = [
    ("polygons/le.ply", "10^12 vertices", lambda d: d.replace(b"element vertex 5", b"element vertex %d" % HUGE)),
    ("polygons/le.ply", "10^12 faces", lambda d: d.replace(b"element face 2", b"element face %d" % HUGE)),
    ("polygons/ascii.ply", "10^12 faces", lambda d: d.replace(b"element face 2", b"element face %d" % HUGE)),
    ("obj/texture_1001.png", "100000 x 100000 pixels", lambda d: _png_claiming(d, 100_000, 100_000)),
    ("mvs/scene.mvs", "10^12 platforms", lambda d: d[:12] + struct.pack("<Q", HUGE) + d[20:]),
    ("sparse_bin/cameras.bin", "10^12 cameras", lambda d: struct.pack("<Q", HUGE) + d[8:]),
    ("sparse_bin/points3D.bin", "10^12 points", lambda d: struct.pack("<Q", HUGE) + d[8:]),
    ("sparse_bin/points3D.bin", "a track of 10^12 views", lambda d: d[:51] + struct.pack("<Q", HUGE) + d[59:]),
    ("sparse_bin/images.bin", "10^12 images", lambda d: struct.pack("<Q", HUGE) + d[8:]),
]


@pytest.mark.parametrize("name, claim, damage", CLAIMS, ids=[f"{n}: {c}" for n, c, _ in CLAIMS])
def test_sizes_no_file_can_hold_are_refused_before_allocating(seeds, name, claim, damage):
    target = seeds / name
    damaged = damage(target.read_bytes())
    assert damaged != target.read_bytes()
    def refuse(path: Path) -> None:
        READERS[name](path)
        raise AssertionError("read without complaint")

    # In the fuzzing child: MEMORY_HEADROOM turns an attempt to allocate for the claim into a failure.
    failures, count = fuzz(target, refuse, 0, [(f"claims {claim}", damaged)])
    assert count == 1 and not failures, "\n".join(failures)
