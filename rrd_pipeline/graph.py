"""The YAML stage graph: check a pipeline file against the stage declarations, then run it with a
resumable cache.

Pipeline file (PyYAML's safe loader, so tags such as ``!!python/object`` are refused; a key repeated
in one mapping is an error rather than silently replaced)::

    pipeline: demo              # name; default: the file's stem
    workdir: out/demo           # relative to the file's folder, or absolute; default: out/<pipeline>
    stages:                     # any order; they run in dependency order (ties: file order)
      - id: scene               # unique, letters, digits, "_" and "-", not starting with a digit
        stage: load             # a key of rrd_pipeline.stage.STAGES
        params: {seed: 0}       # fields of the stage's params dataclass; omitted ones keep defaults
      - id: padded
        stage: pad
        inputs: {scene: scene}  # every declared input: "<stage id>" or "<stage id>.<output name>"
        params: {method: spp}
    scenes:                     # optional batch: all stages once per scene, under workdir/<name>
      - name: a                 # unique, same characters as an id
        params: {scene: {seed: 1}}   # stage id -> parameter overrides for this scene

An input given as ``"<stage id>"`` takes that stage's output of the same name as the input, or its
only output. An output feeds an input only if their kinds match (kind "any" matches all).
Parameter values: YAML file < the scene's ``params`` < ``--set STAGE_ID.PARAM=VALUE`` overrides
(VALUE is read with ``yaml.safe_load``; ``--set`` applies to every scene). Relative ``Path`` values
are relative to the file's folder (``--set``: to the working directory).

Everything is checked before anything runs; a problem raises :class:`rrd.errors.InputError` with one
line ``<file>:<line>: <problem>`` (``--set <text>: <problem>`` for overrides).

Running (:meth:`Pipeline.run`): each stage's cache key hashes (stage name, stage version, its
parameters, and the keys and output names of its inputs), so it changes when anything upstream
changes; a ``Path`` parameter counts with the size and mtime of its file(s), so editing an input
file re-runs the stage that reads it. A stage whose folder ``<scene workdir>/.cache/<id>-<key>`` is complete is
not run ("reused from cache"; its outputs are unpickled only if a running stage or the result needs them).
Otherwise the stage runs in a temporary folder renamed into place once it returns (:mod:`rrd_pipeline.cache`),
so an interrupted run resumes after the last completed stage; temporary folders of runs that were killed are
removed when the next run starts. ``<scene workdir>/<id>`` is a link to the stage's current folder, where its
files are. Each stage reports one line (ran or reused, and where). The scene workdir is checked before
anything runs (:func:`rrd_pipeline.places.check_output_dir`). In a batch a failing scene is reported in one
line and the next one runs (the traceback of an error that is not the user's goes to
``<scene workdir>/failure.log``); a single-scene run re-raises. The ``summary`` output (a dict) of the last
stage in run order, if it declares one, fills the columns of :meth:`RunResult.table`.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from rrd.errors import InputError
from rrd_pipeline import cache
from rrd_pipeline.places import check_output_dir, place_error
from rrd_pipeline.stage import STAGES, StageContext, StageSpec, coerce_param, make_params

__all__ = ["StageNode", "ScenePlan", "Pipeline", "SceneResult", "RunResult", "load_pipeline",
           "run_pipeline"]

log = logging.getLogger(__name__)

_TOP_KEYS = ("pipeline", "workdir", "stages", "scenes")
_STAGE_KEYS = ("id", "stage", "inputs", "params")
_SCENE_KEYS = ("name", "params")
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


@dataclass(frozen=True)
class StageNode:
    """One stage of a pipeline.

    Attributes:
        id: its id in the file.
        spec: the registered stage.
        inputs: input name -> (upstream stage id, output name).
        line: 1-based line of its entry in the file.
    """

    id: str
    spec: StageSpec
    inputs: Mapping[str, tuple[str, str]]
    line: int


@dataclass(frozen=True)
class ScenePlan:
    """One run of the stage list: its name, folder and the parameters of every stage (id -> instance)."""

    name: str
    workdir: Path
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline file.

    Attributes:
        name: the ``pipeline`` name.
        source: the file it was read from.
        workdir: its ``workdir``, made absolute.
        nodes: the stages in run order (dependencies first, else file order).
        scenes: one plan per scene; a file without ``scenes`` has one, named after the pipeline,
            whose workdir is ``workdir`` itself.
        batch: whether the file has ``scenes``.
    """

    name: str
    source: Path
    workdir: Path
    nodes: tuple[StageNode, ...]
    scenes: tuple[ScenePlan, ...]
    batch: bool

    def run(self, report: Callable[[str], None] | None = None) -> RunResult:
        """Run every scene (see the module docstring); returns what ran, what was cached, the outputs.

        Args:
            report: called with one line per stage (ran or reused, and where its files are) and per
                failed scene; default: the log at level INFO (WARNING for failures).
        """
        results = []
        for scene in self.scenes:
            result = SceneResult(scene.name)
            start = time.perf_counter()
            try:
                _run_scene(self, scene, result, report or log.info)
            except Exception as exc:
                if not self.batch:
                    raise
                result.status = "failed"
                user = exc if isinstance(exc, InputError) else place_error(exc) if isinstance(exc, OSError) else None
                if user is not None:
                    result.error = f"stage {result.failed_stage!r}: {user}"
                else:
                    trace = scene.workdir / "failure.log"
                    try:
                        trace.write_text(traceback.format_exc(), encoding="utf-8")
                        where = f" (traceback in {trace})"
                    except OSError:
                        where = ""
                    result.error = f"stage {result.failed_stage!r}: {type(exc).__name__}: {exc}{where}"
                (report or log.warning)(f"{scene.name}: failed: {result.error}")
            result.seconds = time.perf_counter() - start
            results.append(result)
        return RunResult(self.name, tuple(results))


@dataclass
class SceneResult:
    """The outcome of one scene.

    Attributes:
        name: scene name.
        status: "ok" or "failed".
        seconds: wall time of the scene.
        ran, cached: stage ids that ran / were found in the cache, in run order.
        outputs: outputs of the sink stages (those no other stage reads): stage id -> name -> value.
        summary: the last stage's ``summary`` output ({} when it has none or the scene failed).
        failed_stage, error: where and why a failed scene failed (one line).
        folders: stage id -> where its files are (the link ``<scene workdir>/<id>``).
    """

    name: str
    status: str = "ok"
    seconds: float = 0.0
    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    failed_stage: str | None = None
    error: str | None = None
    folders: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    """All scenes of one run, in file order."""

    pipeline: str
    scenes: tuple[SceneResult, ...]

    @property
    def ok(self) -> bool:
        """Whether every scene succeeded."""
        return all(s.status == "ok" for s in self.scenes)

    def table(self) -> str:
        """A plain-text table: scene, status, seconds, summary values; then one line per failure."""
        keys = list(dict.fromkeys(k for s in self.scenes for k in s.summary))
        rows = [["scene", "status", "seconds", *keys]]
        rows += [[s.name, s.status, f"{s.seconds:.1f}", *(_cell(s.summary.get(k)) for k in keys)]
                 for s in self.scenes]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        return "\n".join(lines + [f"{s.name}: {s.error}" for s in self.scenes if s.error])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def load_pipeline(path: str | Path, overrides: Sequence[str] = ()) -> Pipeline:
    """Read and validate a pipeline file.

    Args:
        path: the YAML file.
        overrides: ``"STAGE_ID.PARAM=VALUE"`` strings, as given to ``rrd run --set``.
    Raises:
        InputError: the first problem found, one line naming the file and line (see module docstring).
    """
    path = Path(path)
    src = _Source(path)
    data = src.data
    if not isinstance(data, dict):
        raise src.error((), "expected a mapping with keys " + ", ".join(_TOP_KEYS))
    _check_keys(src, (), data, _TOP_KEYS, "top-level key")
    name = data.get("pipeline", path.stem)
    workdir = data.get("workdir", f"out/{name}")
    for key, value in (("pipeline", name), ("workdir", workdir)):
        if not isinstance(value, str) or not value:
            raise src.error((key,), f"{key!r} must be a non-empty string, got {value!r}")
    workdir = (path.parent / workdir).absolute()
    entries = data.get("stages")
    if not isinstance(entries, list) or not entries:
        raise src.error(("stages",) if "stages" in data else (), "'stages' must be a non-empty list")

    nodes, params = _parse_stages(src, entries)
    nodes = _run_order(src, nodes)
    by_id = {n.id: n for n in nodes}
    forced = _parse_overrides(overrides, by_id)

    scenes_raw = data.get("scenes")
    if scenes_raw is None:
        plans = [(name, workdir, {}, ())]
    elif isinstance(scenes_raw, list) and scenes_raw:
        plans = [_parse_scene(src, i, entry, by_id, workdir) for i, entry in enumerate(scenes_raw)]
        names = [p[0] for p in plans]
        for i, scene_name in enumerate(names):
            if scene_name in names[:i]:
                raise src.error(("scenes", i, "name"), f"duplicate scene name {scene_name!r}")
    else:
        raise src.error(("scenes",), "'scenes' must be a non-empty list")

    scenes = []
    for scene_name, scene_dir, scene_params, keys in plans:
        instances = {}
        for node in nodes:
            values = {**params[node.id], **scene_params.get(node.id, {}), **forced.get(node.id, {})}
            try:
                instances[node.id] = make_params(node.spec, values)
            except InputError as exc:
                line = src.line(keys + ("params", node.id)) if node.id in scene_params else node.line
                scene = f" in scene {scene_name!r}" if scenes_raw is not None else ""
                raise InputError(f"{path}:{line}: {_label(node.id, node.spec)}{scene}: {exc}") from None
        scenes.append(ScenePlan(scene_name, scene_dir, instances))
    return Pipeline(name, path, workdir, tuple(nodes), tuple(scenes), scenes_raw is not None)


def run_pipeline(path: str | Path, overrides: Sequence[str] = (),
                 report: Callable[[str], None] | None = None) -> RunResult:
    """``load_pipeline(path, overrides).run(report)``: validate, then run; see :meth:`Pipeline.run`."""
    return load_pipeline(path, overrides).run(report)


class _Source:
    """A parsed YAML file that maps key paths back to line numbers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read pipeline file ({exc})") from None
        loader = None
        try:
            loader = yaml.SafeLoader(text)  # reads the stream: a control character already fails here
            self.root = loader.get_single_node()
            self.data = None if self.root is None else loader.construct_document(self.root)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = " ".join(str(exc.problem or exc.context).split())
            raise InputError(f"{path}:{mark.line + 1 if mark else 1}: YAML error: {problem}") from None
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: YAML error: {' '.join(str(exc).split())}") from None
        finally:
            if loader is not None:
                loader.dispose()
        self._check_duplicate_keys()

    def _check_duplicate_keys(self) -> None:
        """PyYAML keeps the last of repeated keys silently; a repeated key is almost always a slip."""
        todo, visited = [self.root], set()
        while todo:
            node = todo.pop()
            if id(node) in visited:  # aliases share nodes (and may be recursive)
                continue
            visited.add(id(node))
            if isinstance(node, yaml.SequenceNode):
                todo += node.value
            elif isinstance(node, yaml.MappingNode):
                seen = set()
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode):
                        if key.value in seen:
                            line = key.start_mark.line + 1
                            raise InputError(f"{self.path}:{line}: duplicate key {key.value!r}")
                        seen.add(key.value)
                    todo.append(value)

    def line(self, keys: tuple) -> int:
        """1-based line of the deepest key of ``keys`` found (mapping keys and list indices)."""
        node, line = self.root, 1 if self.root is None else self.root.start_mark.line + 1
        for key in keys:
            if isinstance(node, yaml.MappingNode):
                hit = next(((k, v) for k, v in node.value if k.value == str(key)), None)
                if hit is None:
                    break
                line, node = hit[0].start_mark.line + 1, hit[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                break
        return line

    def error(self, keys: tuple, message: str) -> InputError:
        return InputError(f"{self.path}:{self.line(keys)}: {message}")


def _label(stage_id: str, spec: StageSpec) -> str:
    return f"stage {stage_id!r} ({spec.name})"


def _check_keys(src: _Source, keys: tuple, data: dict, valid: Sequence[str], what: str) -> None:
    for key in data:
        if key not in valid:
            raise src.error(keys + (key,), f"unknown {what} {key!r} (valid: {', '.join(valid)})")


def _check_params(src: _Source, keys: tuple, stage_id: str, spec: StageSpec, raw: Any) -> dict:
    if not isinstance(raw, dict):
        raise src.error(keys, f"{_label(stage_id, spec)}: 'params' must be a mapping, got {raw!r}")
    values = {}
    for name, value in raw.items():
        try:
            values[str(name)] = coerce_param(spec, str(name), value, src.path.parent)
        except InputError as exc:
            raise src.error(keys + (name,), f"{_label(stage_id, spec)}: {exc}") from None
    return values


def _parse_stages(src: _Source, entries: list) -> tuple[list[StageNode], dict[str, dict]]:
    """Stage entries -> nodes with resolved inputs (file order) and checked parameters by id."""
    specs: dict[str, tuple[int, StageSpec]] = {}
    for i, entry in enumerate(entries):
        keys = ("stages", i)
        if not isinstance(entry, dict):
            raise src.error(keys, f"a stage entry must be a mapping with keys {', '.join(_STAGE_KEYS)}")
        _check_keys(src, keys, entry, _STAGE_KEYS, "stage key")
        for key in ("id", "stage"):
            if key not in entry:
                raise src.error(keys, f"stage entry without {key!r}")
        stage_id, name = entry["id"], entry["stage"]
        if not isinstance(stage_id, str) or not _ID.match(stage_id):
            raise src.error(keys + ("id",), f"invalid stage id {stage_id!r} (letters, digits, _ and -)")
        if stage_id in specs:
            raise src.error(keys + ("id",), f"duplicate stage id {stage_id!r} "
                            f"(first at line {src.line(('stages', specs[stage_id][0]))})")
        if not isinstance(name, str) or name not in STAGES:
            raise src.error(keys + ("stage",), f"stage {stage_id!r}: unknown stage {name!r} "
                            f"(valid: {', '.join(sorted(STAGES))})")
        specs[stage_id] = (i, STAGES[name])

    nodes, params = [], {}
    for stage_id, (i, spec) in specs.items():
        keys, entry = ("stages", i), entries[i]
        params[stage_id] = _check_params(src, keys + ("params",), stage_id, spec, entry.get("params", {}))
        raw = entry.get("inputs", {})
        if not isinstance(raw, dict):
            raise src.error(keys + ("inputs",), f"{_label(stage_id, spec)}: 'inputs' must be a mapping")
        inputs = {}
        for name in raw:
            if name not in spec.inputs:
                raise src.error(keys + ("inputs", name), f"{_label(stage_id, spec)}: unknown input "
                                f"{name!r} (valid: {', '.join(spec.inputs) or 'none'})")
        for name, kind in spec.inputs.items():
            if name not in raw:
                raise src.error(keys, f"{_label(stage_id, spec)}: missing required input {name!r} "
                                f"(kind {kind!r})")
            line = src.line(keys + ("inputs", name))
            prefix = f"{src.path}:{line}: {_label(stage_id, spec)}: input {name!r}"
            inputs[name] = _resolve_input(prefix, raw[name], name, kind, {k: v[1] for k, v in specs.items()})
        nodes.append(StageNode(stage_id, spec, inputs, src.line(keys)))
    return nodes, params


def _resolve_input(prefix: str, ref: Any, name: str, kind: str,
                   specs: dict[str, StageSpec]) -> tuple[str, str]:
    """``ref`` ("<id>" or "<id>.<output>") -> (upstream id, output name), checked against ``specs``."""
    if not isinstance(ref, str):
        raise InputError(f"{prefix}: expected '<stage id>' or '<stage id>.<output>', got {ref!r}")
    up_id, _, output = ref.partition(".")
    if up_id not in specs:
        raise InputError(f"{prefix} refers to unknown stage id {up_id!r} (ids: {', '.join(specs)})")
    outs = specs[up_id].outputs
    if not output:
        if name in outs or len(outs) == 1:
            output = name if name in outs else next(iter(outs))
        else:
            raise InputError(f"{prefix}: stage {up_id!r} has no single output to take, name one: "
                             + ", ".join(f"{up_id}.{o}" for o in outs))
    if output not in outs:
        raise InputError(f"{prefix} refers to unknown output {ref!r} "
                         f"(valid: {', '.join(f'{up_id}.{o}' for o in outs) or 'none'})")
    if "any" not in (kind, outs[output]) and kind != outs[output]:
        raise InputError(f"{prefix} expects kind {kind!r} but {up_id}.{output} is {outs[output]!r}")
    return up_id, output


def _run_order(src: _Source, nodes: list[StageNode]) -> list[StageNode]:
    """Dependencies first, ties in file order; InputError naming the stages of a cycle."""
    order: list[StageNode] = []
    done: set[str] = set()
    pending = list(nodes)
    while pending:
        ready = next((n for n in pending if all(u in done for u, _ in n.inputs.values())), None)
        if ready is None:
            # every pending node waits on another pending one: walking back from any finds a cycle
            waits = {n.id: next(u for u, _ in n.inputs.values() if u not in done) for n in pending}
            path = [pending[0].id]
            while waits[path[-1]] not in path:
                path.append(waits[path[-1]])
            flow = path[path.index(waits[path[-1]]):][::-1]  # upstream first: "a -> b" = b reads a
            first = next(n for n in nodes if n.id in flow)
            raise InputError(f"{src.path}:{first.line}: cycle between stages: "
                             + " -> ".join(flow + flow[:1]))
        order.append(ready)
        done.add(ready.id)
        pending.remove(ready)
    return order


def _parse_overrides(overrides: Sequence[str], by_id: dict[str, StageNode]) -> dict[str, dict]:
    forced: dict[str, dict] = {}
    for text in overrides:
        target, eq, value_text = text.partition("=")
        stage_id, dot, name = target.strip().partition(".")
        if not (eq and dot and stage_id and name):
            raise InputError(f"--set {text}: expected STAGE_ID.PARAM=VALUE")
        if stage_id not in by_id:
            raise InputError(f"--set {text}: unknown stage id {stage_id!r} (valid: {', '.join(by_id)})")
        try:
            value = yaml.safe_load(value_text)
        except yaml.YAMLError:
            raise InputError(f"--set {text}: the value is not valid YAML") from None
        spec = by_id[stage_id].spec
        try:
            forced.setdefault(stage_id, {})[name] = coerce_param(spec, name, value, Path.cwd())
        except InputError as exc:
            raise InputError(f"--set {text}: {_label(stage_id, spec)}: {exc}") from None
    return forced


def _parse_scene(src: _Source, i: int, entry: Any, by_id: dict[str, StageNode],
                 workdir: Path) -> tuple[str, Path, dict[str, dict], tuple]:
    keys = ("scenes", i)
    if not isinstance(entry, dict):
        raise src.error(keys, f"a scene must be a mapping with keys {', '.join(_SCENE_KEYS)}")
    _check_keys(src, keys, entry, _SCENE_KEYS, "scene key")
    name = entry.get("name")
    if not isinstance(name, str) or not _ID.match(name):
        raise src.error(keys + ("name",), f"scene needs a 'name' of letters, digits, _ and -, got {name!r}")
    raw = entry.get("params", {})
    if not isinstance(raw, dict):
        raise src.error(keys + ("params",), f"scene {name!r}: 'params' must be a mapping stage id -> params")
    params = {}
    for stage_id, values in raw.items():
        if stage_id not in by_id:
            raise src.error(keys + ("params", stage_id), f"scene {name!r}: unknown stage id {stage_id!r} "
                            f"(valid: {', '.join(by_id)})")
        spec = by_id[stage_id].spec
        params[stage_id] = _check_params(src, keys + ("params", stage_id), stage_id, spec, values)
    return name, workdir / name, params, keys


def _run_scene(pipeline: Pipeline, scene: ScenePlan, result: SceneResult, report: Callable[[str], None]) -> None:
    """Run or load each stage in order, recording progress in ``result`` (updated even on failure)."""
    check_output_dir(scene.workdir)
    cache.remove_stale(scene.workdir / ".cache")
    read = {u for n in pipeline.nodes for u, _ in n.inputs.values()}
    folders: dict[str, Path] = {}
    keys: dict[str, str] = {}
    values: dict[str, dict[str, Any]] = {}

    def outputs_of(stage_id: str) -> dict[str, Any]:
        if stage_id not in values:
            values[stage_id] = cache.load_outputs(folders[stage_id])
        return values[stage_id]

    bar = tqdm(total=len(pipeline.nodes), desc=scene.name, unit="stage", disable=not sys.stderr.isatty())
    with bar:
        for node in pipeline.nodes:
            params = scene.params[node.id]
            keys[node.id] = cache.cache_key(node.spec.name, node.spec.version, params,
                                            {n: [keys[u], o] for n, (u, o) in sorted(node.inputs.items())})
            folders[node.id] = scene.workdir / ".cache" / f"{node.id}-{keys[node.id]}"
            visible = scene.workdir / node.id
            if cache.is_complete(folders[node.id]):
                result.cached.append(node.id)
                done = "reused from cache"
            else:
                try:
                    inputs = {n: outputs_of(u)[o] for n, (u, o) in node.inputs.items()}
                    start = time.perf_counter()
                    values[node.id] = _execute(node, params, inputs, folders[node.id], scene.name, bar)
                except BaseException:
                    result.failed_stage = node.id
                    raise
                result.ran.append(node.id)
                done = f"ran in {time.perf_counter() - start:.1f} s"
            result.folders[node.id] = _link(visible, folders[node.id])
            report(f"{scene.name}: {node.id} ({node.spec.name}) {done} -> {result.folders[node.id]}")
            bar.update()
    result.outputs = {n.id: outputs_of(n.id) for n in pipeline.nodes if n.id not in read}
    last = pipeline.nodes[-1]
    if "summary" in last.spec.outputs:
        result.summary = dict(outputs_of(last.id)["summary"])


def _execute(node: StageNode, params: Any, inputs: dict[str, Any], folder: Path, scene: str,
             bar: tqdm) -> dict[str, Any]:
    def progress(fraction: float, message: str = "") -> None:
        bar.set_postfix_str(f"{node.id} {fraction:.0%} {message}".rstrip())

    with cache.staging(folder) as tmp:
        stage_log = logging.getLogger(f"rrd_pipeline.stage.{node.spec.name}")
        ctx = StageContext(node.id, scene, tmp, progress, stage_log)
        outputs = node.spec.func(ctx, params, **inputs)
        if not isinstance(outputs, Mapping) or set(outputs) != set(node.spec.outputs):
            got = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
            raise TypeError(f"{_label(node.id, node.spec)} returned {got}, declared outputs "
                            f"{sorted(node.spec.outputs)}")
        return cache.commit(tmp, folder, outputs)


def _link(visible: Path, folder: Path) -> Path:
    """Point the link ``visible`` at the stage folder ``folder``; returns where the files are to be seen.

    A file or folder of the user's at ``visible`` is left alone, and the stage folder itself is returned.
    """
    if visible.exists() and not visible.is_symlink():
        return folder
    tmp = visible.with_name(f".{visible.name}.link-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(folder, visible.parent), target_is_directory=True)
    os.replace(tmp, visible)
    return visible
