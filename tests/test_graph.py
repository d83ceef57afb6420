"""Tests of the YAML stage graph (rrd_pipeline.graph), its stage registry and its cache.

The stages here are throwaway test stages registered in this module and removed from the registry
afterwards; each counts its calls so the tests can tell a run from a cache hit.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import pytest

from rrd.errors import InputError
from rrd_pipeline.graph import load_pipeline, run_pipeline
from rrd_pipeline.stage import STAGES, StageContext, stage

CALLS: Counter[str] = Counter()
INTERRUPT: dict[str, type[BaseException] | None] = {"t_flaky": None}


@dataclass(frozen=True)
class SourceParams:
    seed: int = 0
    scale: float = 1.0


@stage("t_source", params=SourceParams, outputs={"values": "array"})
def t_source(ctx: StageContext, params: SourceParams) -> dict:
    """Four values: ``scale * [0, 1, 2, 3] + seed``."""
    CALLS["t_source"] += 1
    return {"values": np.arange(4.0) * params.scale + params.seed}


@dataclass(frozen=True)
class DoubleParams:
    factor: int = 2


@stage("t_double", params=DoubleParams, inputs={"values": "array"}, outputs={"values": "array"})
def t_double(ctx: StageContext, params: DoubleParams, values: np.ndarray) -> dict:
    CALLS["t_double"] += 1
    return {"values": values * params.factor}


@stage("t_flaky", inputs={"values": "array"}, outputs={"values": "array"})
def t_flaky(ctx: StageContext, params: object, values: np.ndarray) -> dict:
    """Writes half its output, then raises INTERRUPT["t_flaky"] if set (a simulated Ctrl-C or crash)."""
    CALLS["t_flaky"] += 1
    np.save(ctx.out_dir / "partial.npy", values)
    ctx.progress(0.5, "half way")
    if INTERRUPT["t_flaky"] is not None:
        raise INTERRUPT["t_flaky"]("interrupted half way")
    return {"values": values + 1}


@dataclass(frozen=True)
class ReportParams:
    title: str = "report"
    fail: bool = False
    user_error: bool = False


@stage("t_report", params=ReportParams, inputs={"values": "array"},
       outputs={"file": "text", "summary": "summary"})
def t_report(ctx: StageContext, params: ReportParams, values: np.ndarray) -> dict:
    """Writes a text file itself and returns its path plus a summary dict."""
    CALLS["t_report"] += 1
    if params.fail:
        raise RuntimeError(f"{params.title}: asked to fail")
    if params.user_error:
        raise InputError(f"{params.title}: a user's mistake")
    path = ctx.out_dir / "report.txt"
    path.write_text(f"{params.title} {values.sum():g}\n", encoding="utf-8")
    return {"file": path, "summary": {"total": float(values.sum()), "title": params.title}}


@dataclass(frozen=True)
class TypedParams:
    size: int
    ratio: float = 0.5
    name: str = "x"
    flag: bool = False
    mode: Literal["fast", "slow"] = "fast"
    levels: tuple[int, ...] = (1, 2)
    weights: list[float] = field(default_factory=list)
    file: Path = Path("a.txt")
    limit: Optional[int] = None
    pad: Literal["spp", "mip"] | None = None


@stage("t_typed", params=TypedParams, outputs={"params": "any"})
def t_typed(ctx: StageContext, params: TypedParams) -> dict:
    return {"params": params}


TEST_STAGES = ("t_source", "t_double", "t_flaky", "t_report", "t_typed")


@pytest.fixture(autouse=True, scope="module")
def _unregister():
    yield
    for name in TEST_STAGES:
        STAGES.pop(name, None)


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    INTERRUPT["t_flaky"] = None


CHAIN = """\
pipeline: chain
workdir: work
stages:
  - id: src
    stage: t_source
    params: {seed: 1}
  - id: mid
    stage: t_double
    inputs: {values: src}
  - id: end
    stage: t_double
    inputs: {values: mid.values}
    params: {factor: 10}
"""


def write(tmp_path: Path, text: str, name: str = "demo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_run_then_rerun_uses_the_cache(tmp_path, caplog):
    path = write(tmp_path, CHAIN)
    first = run_pipeline(path)
    scene = first.scenes[0]
    assert (scene.name, scene.status, scene.ran, scene.cached) == ("chain", "ok", ["src", "mid", "end"], [])
    np.testing.assert_array_equal(scene.outputs["end"]["values"], (np.arange(4.0) + 1) * 20)
    assert set(scene.outputs) == {"end"}  # only sinks are kept
    assert CALLS == {"t_source": 1, "t_double": 2}
    assert len(list((tmp_path / "work" / ".cache").glob("*-*"))) == 3

    lines: list[str] = []
    second = run_pipeline(path, report=lines.append)
    assert CALLS == {"t_source": 1, "t_double": 2}
    assert (second.scenes[0].ran, second.scenes[0].cached) == ([], ["src", "mid", "end"])
    np.testing.assert_array_equal(second.scenes[0].outputs["end"]["values"], (np.arange(4.0) + 1) * 20)
    # one line per stage: reused, and where its files are (a link beside the hidden cache)
    assert lines == [f"chain: {i} ({s}) reused from cache -> {tmp_path / 'work' / i}"
                     for i, s in (("src", "t_source"), ("mid", "t_double"), ("end", "t_double"))]
    for stage_id in ("src", "mid", "end"):
        link = tmp_path / "work" / stage_id
        assert link.is_symlink() and (link / "done").is_file() and second.scenes[0].folders[stage_id] == link


def test_changed_middle_parameter_reruns_only_downstream(tmp_path):
    path = write(tmp_path, CHAIN)
    run_pipeline(path)
    CALLS.clear()
    result = run_pipeline(path, ["mid.factor=3"])
    assert (result.scenes[0].cached, result.scenes[0].ran) == (["src"], ["mid", "end"])
    assert CALLS == {"t_double": 2}
    np.testing.assert_array_equal(result.scenes[0].outputs["end"]["values"], (np.arange(4.0) + 1) * 30)
    CALLS.clear()
    back = run_pipeline(path)  # the old folders are still there
    assert back.scenes[0].ran == [] and not CALLS


def test_stage_version_is_part_of_the_key(tmp_path):
    path = write(tmp_path, CHAIN)
    run_pipeline(path)
    CALLS.clear()
    spec = STAGES["t_source"]
    STAGES["t_source"] = type(spec)(**{**spec.__dict__, "version": "2"})
    try:
        assert run_pipeline(path).scenes[0].ran == ["src", "mid", "end"]
    finally:
        STAGES["t_source"] = spec


FLAKY = CHAIN + """\
  - id: flaky
    stage: t_flaky
    inputs: {values: end}
"""


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, RuntimeError])
def test_interrupted_run_leaves_no_final_folder_and_resumes(tmp_path, interruption):
    path = write(tmp_path, FLAKY)
    INTERRUPT["t_flaky"] = interruption
    with pytest.raises(interruption, match="interrupted half way"):
        run_pipeline(path)
    cache_dir = tmp_path / "work" / ".cache"
    names = sorted(p.name for p in cache_dir.iterdir())
    assert [n.split("-")[0] for n in names] == ["end", "mid", "src"]  # no flaky-*, no .tmp-*
    assert all((cache_dir / n / "done").is_file() for n in names)

    INTERRUPT["t_flaky"] = None
    CALLS.clear()
    result = run_pipeline(path)
    assert (result.scenes[0].cached, result.scenes[0].ran) == (["src", "mid", "end"], ["flaky"])
    assert CALLS == {"t_flaky": 1}
    np.testing.assert_array_equal(result.scenes[0].outputs["flaky"]["values"], (np.arange(4.0) + 1) * 20 + 1)
    flaky_dir = next(cache_dir.glob("flaky-*"))
    assert (flaky_dir / "done").is_file() and (flaky_dir / "partial.npy").is_file()


def test_file_outputs_move_with_the_folder_and_are_checked(tmp_path):
    path = write(tmp_path, CHAIN + """\
  - id: report
    stage: t_report
    inputs: {values: end}
    params: {title: hello}
""")
    first = run_pipeline(path).scenes[0]
    report = first.outputs["report"]["file"]
    assert report.parent.name.startswith("report-") and report.parent.parent.name == ".cache"
    assert report.read_text(encoding="utf-8") == "hello 200\n"
    assert first.summary == {"total": 200.0, "title": "hello"}

    second = run_pipeline(path).scenes[0]
    assert second.ran == [] and second.outputs["report"]["file"] == report
    assert second.summary == first.summary

    report.unlink()  # a recorded file gone: that stage is no longer complete
    third = run_pipeline(path).scenes[0]
    assert third.ran == ["report"] and report.is_file()


def test_parameter_types_are_converted(tmp_path):
    (tmp_path / "sub").mkdir()
    path = write(tmp_path / "sub", """\
stages:
  - id: t
    stage: t_typed
    params: {size: 3, ratio: 1, flag: true, mode: slow, levels: [4, 5], weights: [1, 2.5],
             file: data/x.txt, limit: null, pad: mip}
""")
    params = load_pipeline(path, ["t.ratio=1e-3", "t.name=abc"]).scenes[0].params["t"]
    assert params.size == 3 and params.ratio == 1e-3 and isinstance(params.ratio, float)
    assert (params.name, params.flag, params.mode, params.levels, params.weights) == (
        "abc", True, "slow", (4, 5), [1.0, 2.5])
    assert (params.limit, params.pad) == (None, "mip")
    assert params.file == (tmp_path / "sub" / "data" / "x.txt").absolute()
    pipeline = load_pipeline(path)
    assert pipeline.name == "demo" and pipeline.workdir == (tmp_path / "sub" / "out" / "demo").absolute()
    assert load_pipeline(path).scenes[0].params["t"].ratio == 1.0


def test_override_changes_the_value_and_bad_overrides_are_named(tmp_path):
    path = write(tmp_path, CHAIN)
    assert load_pipeline(path, ["src.seed=7"]).scenes[0].params["src"].seed == 7
    cases = {
        "src.seed": "--set src.seed: expected STAGE_ID.PARAM=VALUE",
        "nope.seed=1": "--set nope.seed=1: unknown stage id 'nope' (valid: src, mid, end)",
        "src.sed=1": "--set src.sed=1: stage 'src' (t_source): unknown parameter 'sed' (valid: seed, scale)",
        "src.seed=abc": "--set src.seed=abc: stage 'src' (t_source): parameter 'seed': "
                        "expected int, got str 'abc'",
        "src.seed=[1": "--set src.seed=[1: the value is not valid YAML",
    }
    for text, message in cases.items():
        with pytest.raises(InputError) as info:
            load_pipeline(path, [text])
        assert str(info.value) == message


SOURCE = "stages:\n  - id: a\n    stage: t_source\n"  # lines 1-3
REPORT = SOURCE + "  - id: p\n    stage: t_report\n    inputs: {values: a}\n"  # lines 4-6
TYPED = "stages:\n  - id: t\n    stage: t_typed\n    params:\n      size: 1\n"  # lines 1-5

# (pipeline text, line of the error, text the message contains, a second text it contains)
STAGE_ERRORS = {
    "unknown stage": ("stages:\n  - id: a\n    stage: t_nope\n", 3,
                      "stage 'a': unknown stage 't_nope' (valid: ", "t_source"),
    "unknown param": (SOURCE + "    params:\n      seeed: 1\n", 5,
                      "stage 'a' (t_source): unknown parameter 'seeed' (valid: seed, scale)", ""),
    "str for int": (SOURCE + "    params: {seed: abc}\n", 4,
                    "stage 'a' (t_source): parameter 'seed': expected int, got str 'abc'", ""),
    "float for int": (SOURCE + "    params: {seed: 1.5}\n", 4, "expected int, got float 1.5", ""),
    "bool for float": (SOURCE + "    params: {scale: true}\n", 4, "expected float, got bool True", ""),
    "bad choice": (TYPED + "      mode: quick\n", 6,
                   "stage 't' (t_typed): parameter 'mode': invalid choice 'quick' (valid: fast, slow)", ""),
    "bad optional choice": (TYPED + "      pad: ssp\n",
                            6, "parameter 'pad': invalid choice 'ssp' (valid: spp, mip)", ""),
    "bad list item": (TYPED + "      levels: [1, x]\n", 6,
                      "parameter 'levels': expected list of int, got list [1, 'x']", ""),
    "missing param": ("stages:\n  - id: t\n    stage: t_typed\n", 2,
                      "stage 't' (t_typed): missing required parameter size", ""),
    "missing input": (SOURCE + "  - id: b\n    stage: t_double\n", 4,
                      "stage 'b' (t_double): missing required input 'values' (kind 'array')", ""),
    "input from unknown id": (SOURCE + "  - id: b\n    stage: t_double\n    inputs:\n      values: nowhere\n",
                              7,
                              "stage 'b' (t_double): input 'values' refers to unknown stage id 'nowhere'",
                              "(ids: a, b)"),
    "input from unknown output": (SOURCE + "  - id: b\n    stage: t_double\n    inputs: {values: a.vals}\n",
                                  6,
                                  "input 'values' refers to unknown output 'a.vals' (valid: a.values)", ""),
    "unknown input": (SOURCE + "  - id: b\n    stage: t_double\n    inputs: {valuez: a}\n", 6,
                      "stage 'b' (t_double): unknown input 'valuez' (valid: values)", ""),
    "ambiguous input": (REPORT + "  - id: b\n    stage: t_double\n    inputs: {values: p}\n", 9,
                        "input 'values': stage 'p' has no single output to take, name one: ",
                        "p.file, p.summary"),
    "kind mismatch": (REPORT + "  - id: b\n    stage: t_double\n    inputs: {values: p.file}\n", 9,
                      "input 'values' expects kind 'array' but p.file is 'text'", ""),
    "duplicate id": (SOURCE + "  - id: a\n    stage: t_double\n",
                     4, "duplicate stage id 'a' (first at line 2)", ""),
    "cycle": (SOURCE + "  - id: b\n    stage: t_double\n    inputs: {values: c}\n"
              "  - id: c\n    stage: t_double\n    inputs: {values: b}\n", 4,
              "cycle between stages: ", "c -> b -> c"),
    "self cycle": ("stages:\n  - id: a\n    stage: t_double\n    inputs: {values: a}\n", 2,
                   "cycle between stages: a -> a", ""),
    "yaml syntax": (SOURCE + "    params: {seed: 1\n", 5, "YAML error: ", ""),
    "yaml python tag": ("stages:\n  - id: a\n    stage: !!python/object:os.system {}\n", 3,
                        "YAML error: could not determine a constructor", ""),
    "duplicate key": (SOURCE + "    params: {seed: 1}\n    params: {seed: 2}\n",
                      5, "duplicate key 'params'", ""),
    "unknown top key": ("pipline: x\n" + SOURCE, 1,
                        "unknown top-level key 'pipline' (valid: pipeline, workdir, stages, scenes)", ""),
    "unknown stage key": (SOURCE + "    param: {seed: 1}\n", 4,
                          "unknown stage key 'param' (valid: id, stage, inputs, params)", ""),
    "bad id": ("stages:\n  - id: a.b\n    stage: t_source\n", 2, "invalid stage id 'a.b'", ""),
    "no stages": ("stages: []\n", 1, "'stages' must be a non-empty list", ""),
    "duplicate scene": (SOURCE + "scenes:\n  - name: x\n  - name: x\n", 6, "duplicate scene name 'x'", ""),
    "scene unknown id": (SOURCE + "scenes:\n  - name: x\n    params: {b: {seed: 1}}\n", 6,
                         "scene 'x': unknown stage id 'b' (valid: a)", ""),
    "scene mistyped": (SOURCE + "scenes:\n  - name: x\n    params:\n      a: {seed: no}\n", 7,
                       "stage 'a' (t_source): parameter 'seed': expected int, got bool False", ""),
    "scene missing param": ("stages:\n  - id: t\n    stage: t_typed\nscenes:\n  - name: x\n    params:\n"
                            "      t: {size: 1}\n  - name: y\n", 2,
                            "stage 't' (t_typed) in scene 'y': missing required parameter size", ""),
}


@pytest.mark.parametrize(("text", "line", "message", "also"), STAGE_ERRORS.values(), ids=STAGE_ERRORS)
def test_validation_errors_name_file_line_and_problem(tmp_path, text, line, message, also):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        run_pipeline(path)
    error = str(info.value)
    assert "\n" not in error
    assert error.startswith(f"{path}:{line}: ") and message in error and also in error, error
    assert not CALLS  # nothing ran


def test_validation_happens_before_anything_runs(tmp_path):
    path = write(tmp_path, CHAIN.replace("factor: 10", "factor: ten"))
    with pytest.raises(InputError, match=r"demo.yaml:13: stage 'end' \(t_double\): parameter 'factor'"):
        run_pipeline(path)
    assert not CALLS and not (tmp_path / "work").exists()


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="nope.yaml: cannot read pipeline file"):
        load_pipeline(tmp_path / "nope.yaml")


BATCH = CHAIN + """\
  - id: report
    stage: t_report
    inputs: {values: end}
scenes:
  - name: a
    params: {src: {seed: 0}}
  - name: broken
    params: {report: {fail: true, title: bad}}
  - name: c
    params: {src: {seed: 2}, report: {title: cee}}
"""


def test_batch_runs_each_scene_and_continues_after_a_failure(tmp_path, caplog):
    path = write(tmp_path, BATCH)
    lines: list[str] = []
    result = run_pipeline(path, ["end.factor=1"], report=lines.append)
    assert [(s.name, s.status) for s in result.scenes] == [("a", "ok"), ("broken", "failed"), ("c", "ok")]
    assert not result.ok
    broken = result.scenes[1]
    assert broken.failed_stage == "report"
    # not the user's mistake: its traceback is kept in a file the line names
    trace = tmp_path / "work" / "broken" / "failure.log"
    assert broken.error == f"stage 'report': RuntimeError: bad: asked to fail (traceback in {trace})"
    assert "Traceback" in trace.read_text() and "asked to fail" in trace.read_text()
    assert broken.ran == ["src", "mid", "end"] and broken.summary == {}
    assert result.scenes[0].summary == {"total": 12.0, "title": "report"}  # 2 * (0+1+2+3)
    assert result.scenes[2].summary == {"total": 28.0, "title": "cee"}   # 2 * (2+3+4+5)
    for name in ("a", "broken", "c"):
        assert (tmp_path / "work" / name / ".cache").is_dir()
    assert not list((tmp_path / "work" / "broken" / ".cache").glob("report-*"))
    assert f"broken: failed: {broken.error}" in lines

    table = result.table().splitlines()
    assert table[0].split() == ["scene", "status", "seconds", "total", "title"]
    assert table[1].split()[:2] == ["a", "ok"] and table[1].split()[3:] == ["12", "report"]
    assert table[2].split()[:2] + table[2].split()[3:] == ["broken", "failed", "-", "-"]
    assert table[4] == f"broken: {broken.error}"

    CALLS.clear()
    again = run_pipeline(path, ["end.factor=1"])
    assert [(s.status, s.ran) for s in again.scenes] == [("ok", []), ("failed", []), ("ok", [])]
    assert CALLS == {"t_report": 1}  # only the failed stage is tried again


def test_batch_reports_a_users_mistake_in_one_line_without_traceback(tmp_path):
    path = write(tmp_path, BATCH)
    lines: list[str] = []
    result = run_pipeline(path, ["report.user_error=true"], report=lines.append)
    assert [s.status for s in result.scenes] == ["failed"] * 3
    failures = [line for line in lines if "failed" in line]
    assert len(failures) == 3
    for name in ("a", "c"):  # scene "broken" fails by a bug of its own first (the test above)
        assert any(re.fullmatch(rf"{name}: failed: stage 'report': \w+: a user's mistake", line) for line in failures)
    assert [p.parent.name for p in (tmp_path / "work").rglob("failure.log")] == ["broken"]


def test_killed_runs_leave_no_temporary_folder_behind(tmp_path):
    path = write(tmp_path, CHAIN)
    cache_dir = tmp_path / "work" / ".cache"
    cache_dir.mkdir(parents=True)
    dead = cache_dir / ".tmp-src-abc-999999999-x1y2"  # a pid no process has
    dead.mkdir()
    mine = cache_dir / f".tmp-mid-abc-{os.getpid()}-x1y2"  # a live process's: kept
    mine.mkdir()
    run_pipeline(path)
    assert not dead.exists() and mine.exists()


def test_single_scene_failure_propagates(tmp_path):
    path = write(tmp_path, CHAIN + "  - id: r\n    stage: t_report\n    inputs: {values: end}\n"
                 "    params: {fail: true}\n")
    with pytest.raises(RuntimeError, match="asked to fail"):
        run_pipeline(path)


def test_registration_checks_the_declaration():
    @dataclass
    class Mutable:
        x: int = 0

    @dataclass(frozen=True)
    class Unsupported:
        x: dict = None

    with pytest.raises(ValueError, match="already registered"):
        stage("t_source")(t_source)
    with pytest.raises(TypeError, match="frozen dataclass"):
        stage("t_bad", params=Mutable)
    with pytest.raises(TypeError, match="unsupported parameter type"):
        stage("t_bad", params=Unsupported)
    with pytest.raises(TypeError, match=r"cannot be called as func\(ctx, params, values=...\)"):
        stage("t_bad", inputs={"values": "array"})(lambda ctx, params, vals: {})
    with pytest.raises(ValueError, match="not an identifier"):
        stage("t_bad", outputs={"a-b": "x"})
    assert "t_bad" not in STAGES
    assert STAGES["t_source"].summary == "Four values: ``scale * [0, 1, 2, 3] + seed``."


def test_wrong_outputs_are_a_bug_not_a_cache_entry(tmp_path):
    stage("t_wrong", outputs={"a": "any"})(lambda ctx, params: {"b": 1})
    try:
        path = write(tmp_path, "workdir: w\nstages:\n  - id: w\n    stage: t_wrong\n")
        message = r"stage 'w' \(t_wrong\) returned \['b'\], declared outputs \['a'\]"
        with pytest.raises(TypeError, match=message):
            run_pipeline(path)
        assert list((tmp_path / "w" / ".cache").iterdir()) == []
    finally:
        STAGES.pop("t_wrong")


def test_editing_a_path_parameter_file_reruns_its_stage(tmp_path):
    (tmp_path / "in.txt").write_text("one", encoding="utf-8")
    path = write(tmp_path, "workdir: w\nstages:\n  - id: t\n    stage: t_typed\n"
                 "    params: {size: 1, file: in.txt}\n")
    assert run_pipeline(path).scenes[0].ran == ["t"]
    assert run_pipeline(path).scenes[0].ran == []
    (tmp_path / "in.txt").write_text("three", encoding="utf-8")
    assert run_pipeline(path).scenes[0].ran == ["t"]
