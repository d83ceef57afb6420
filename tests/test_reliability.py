"""Bad places and bad views, as a user meets them: one clear line, exit code 2, nothing half-written.

Output places: a folder the user may not write (as an unprivileged user), a read-only file system and a
full disk (small tmpfs mounts, skipped where this machine cannot mount them), and a disk that fills during
the write (a file-size limit on a child process: the same ``OSError`` path as a full disk). Views: one view
that sees nothing is left out by name; none seeing the mesh is an error, never an optimisation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rrd.errors import InputError
from rrd_pipeline.cli import app
from rrd_pipeline.stages import call_stage

runner = CliRunner()
NOBODY = 65534


def one_line_error(result, *parts: str) -> None:
    """Exit code 2, one line on stderr naming each part, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(p in lines[0] for p in parts), lines[0]
    assert "Traceback" not in result.output


def final_files(folder: Path) -> list[Path]:
    """Files under ``folder`` (a missing folder has none)."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@contextlib.contextmanager
def as_nobody():
    """Run the block as an unprivileged user: the effective uid of this process, restored afterwards."""
    if os.geteuid() != 0:
        yield  # already unprivileged
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture()
def locked(tmp_path_factory):
    """A folder nobody may write into (mode 555), reachable by everyone."""
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"rrd-locked-{os.getpid()}-{os.urandom(3).hex()}"
    base.mkdir(mode=0o755)
    base.chmod(0o555)
    yield base
    base.chmod(0o755)
    os.rmdir(base) if not any(base.iterdir()) else None


@pytest.fixture()
def tmpfs(tmp_path):
    """mount(size, read_only) -> a folder on a fresh small tmpfs; skipped where this machine cannot mount."""
    mounted: list[Path] = []

    def mount(size: str, read_only: bool = False) -> Path:
        target = tmp_path / f"mnt{len(mounted)}"
        target.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode(errors='replace').strip()})")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", str(target)], capture_output=True)


@pytest.mark.parametrize("command", [["optimize", "--iterations", "1"], ["render"]])
def test_unwritable_output_folder_is_one_line_before_any_work(locked, command):
    out = locked / "out"
    runner.invoke(app, [*command, "--help"])  # the unprivileged user may not read the lazily imported modules
    with as_nobody():
        result = runner.invoke(app, [*command, "--out", str(out)])
    one_line_error(result, str(out), "Permission denied")
    assert not out.exists()


def test_read_only_file_system(tmpfs):
    place = tmpfs("1m", read_only=True)
    result = runner.invoke(app, ["optimize", "--iterations", "1", "--out", str(place / "out")])
    one_line_error(result, str(place / "out"), "Read-only file system")


@pytest.mark.parametrize("command", [["optimize", "--iterations", "1"], ["render"]])
def test_full_disk_is_found_before_the_work(tmpfs, command):
    place = tmpfs("1m")
    result = runner.invoke(app, [*command, "--out", str(place / "out")])
    one_line_error(result, str(place / "out"), "MB free; this needs about")
    assert final_files(place) == []


def _limit_file_size():  # runs in the child before exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))


@pytest.mark.parametrize("command", [["optimize", "--iterations", "1"], ["render"]])
def test_a_write_that_fails_midway_leaves_nothing_under_a_final_name(tmp_path, command):
    """The disk fills while the results are written (a file-size limit stands in for it)."""
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", "from rrd_pipeline.cli import main; main()", *command,
                           "--out", str(out)],
                          capture_output=True, text=True, preexec_fn=_limit_file_size, timeout=600)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write {out}/") and "File too large" in lines[0]
    assert ".tmp-" not in lines[0]  # the final name, not the temporary one
    assert final_files(out) == []  # nothing half-written, no temporary left


def test_output_that_is_a_file(tmp_path):
    (tmp_path / "out").write_text("mine")
    result = runner.invoke(app, ["pad", "--out", str(tmp_path / "out")])
    one_line_error(result, str(tmp_path / "out"), "is a file, not a folder")
    assert (tmp_path / "out").read_text() == "mine"


@pytest.mark.parametrize("args, message", [
    (["--iterations", "-1"], "iterations -1 is out of range; valid: an integer >= 1"),
    (["--iterations", "0"], "iterations 0 is out of range; valid: an integer >= 1"),
    (["--lambda-scale", "-1"], "lambda_scale -1.0 is out of range; valid: a number > 0"),
    (["--lambda", "0"], "lambda 0.0 is out of range; valid: a number > 0"),
    (["--codec", "hevc", "--param", "60"], "hevc qp 60 is out of range; valid: 0..51"),
    (["--scale", "0"], "scale"),
    (["--scale", "1.5"], "scale"),
    (["--init", "sppp"], "'sppp' is not one of"),
])
def test_numeric_and_choice_options_name_their_range(tmp_path, args, message):
    result = runner.invoke(app, ["optimize", *args, "--out", str(tmp_path / "o")])
    one_line_error(result, message)
    assert not (tmp_path / "o").exists() or final_files(tmp_path / "o") == []


def _blind(scene, indices):
    """The scene with the cameras at ``indices`` turned away from the mesh (it lies behind them)."""
    cameras = list(scene.cameras)
    for i in indices:
        cameras[i] = dataclasses.replace(cameras[i], t=cameras[i].t - np.array([0.0, 0.0, 1e3]))
    return dataclasses.replace(scene, cameras=cameras)


def test_a_view_that_sees_nothing_is_left_out_by_name(small_demo, tmp_path, caplog):
    scene = _blind(small_demo, [1])
    blind = scene.cameras[1].name
    with caplog.at_level(logging.WARNING):
        rendered = call_stage("render", tmp_path / "r", {"scene": scene}, backend="cpu")
        optimized = call_stage("optimize", tmp_path / "o", {"scene": scene}, iterations=2, backend="cpu",
                               device="cpu")
    assert caplog.text.count(f"view {blind} sees none of the mesh") == 2
    import json

    report = json.loads(rendered["report"].read_text())
    assert report["unseen_views"] == [blind] and len(report["views"]) == len(scene.cameras) - 1
    assert json.loads(optimized["record"].read_text())["unseen_views"] == [blind]


@pytest.mark.parametrize("stage", ["render", "optimize"])
def test_no_view_seeing_the_mesh_is_an_error_not_an_optimisation(small_demo, tmp_path, stage):
    scene = _blind(small_demo, range(len(small_demo.cameras)))
    params = {"backend": "cpu"} | ({"iterations": 2, "device": "cpu"} if stage == "optimize" else {})
    with pytest.raises(InputError, match="none of the 4 views sees the mesh"):
        call_stage(stage, tmp_path / "o", {"scene": scene}, **params)
    assert final_files(tmp_path / "o") == []


def test_optimize_reports_measured_bytes_beside_the_estimate(tmp_path):
    result = runner.invoke(app, ["optimize", "--iterations", "3", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith("texture as jpeg quality 60"))
    assert "kB padded (spp) ->" in line and "measured:" in line and "the rate model estimated" in line
    import json

    measured = json.loads((tmp_path / "o" / "optimize.json").read_text())["measured"]
    assert measured["bytes"]["padded_start"] > 0 and measured["bytes"]["optimized"] > 0
    assert measured["saving_%"] == pytest.approx(100 * (1 - measured["bytes"]["optimized"]
                                                        / measured["bytes"]["padded_start"]))
