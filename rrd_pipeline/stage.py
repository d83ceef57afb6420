"""Stage declarations and the stage registry.

A stage is a plain function registered under a name with :func:`stage`. It declares its inputs,
outputs and parameters, and :mod:`rrd_pipeline.graph` checks a pipeline against these declarations
before anything runs:

>>> @dataclass(frozen=True)
... class BrightenParams:
...     gain: float = 1.5                        # factor on every texel
...     clip: Literal["yes", "no"] = "yes"       # clip to [0, 1]
>>> @stage("brighten", params=BrightenParams, inputs={"scene": "scene"}, outputs={"scene": "scene"})
... def brighten(ctx: StageContext, params: BrightenParams, scene):
...     return {"scene": scene}
>>> spec = STAGES["brighten"]
>>> spec.inputs, spec.outputs, spec.param_types["gain"]
({'scene': 'scene'}, {'scene': 'scene'}, <class 'float'>)
>>> coerce_param(spec, "clip", "maybe", Path("."))
Traceback (most recent call last):
...
rrd.errors.InputError: parameter 'clip': invalid choice 'maybe' (valid: yes, no)
>>> del STAGES["brighten"]

The function is called as ``func(ctx, params, **inputs)`` and returns a dict with exactly the
declared output names. ``inputs`` and ``outputs`` map a name to a *kind* label ("scene", "atlas",
...); the graph only connects an output to an input of the same kind, and the kind "any" matches
every kind. ``version`` is the stage's code version: bump it when the function's results change,
so that cached results of the old code are not reused.

Parameter types a params dataclass may use: ``int``, ``float`` (an int, or a string that ``float()``
parses, is accepted, because YAML reads ``1e-3`` as a string), ``str``, ``bool``,
``Literal[...]`` choices, ``list[T]``, ``tuple[T, ...]``, ``Path`` (relative paths are taken
relative to a base folder: the pipeline file's folder for YAML values, the working directory for
``--set`` values) and ``Optional[T]`` / ``T | None``. Fields without a default are required.
"""

from __future__ import annotations

import inspect
import logging
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from rrd.errors import InputError
from rrd.registry import Registry

__all__ = ["STAGES", "StageContext", "StageSpec", "stage", "coerce_param", "make_params"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NONE = type(None)


@dataclass(frozen=True)
class StageContext:
    """What a running stage gets from the engine besides its inputs and parameters.

    Attributes:
        stage_id: the stage's id in the pipeline file.
        scene: the scene name (the pipeline name when the file has no ``scenes`` batch).
        out_dir: an empty folder that becomes the stage's cache folder once the stage returns. Files
            written here and returned as ``Path`` outputs (or lists of them) are moved with it and
            handed on at their final place; do not keep ``out_dir`` paths inside other objects.
        progress: ``progress(fraction, message="")`` reports this stage's progress, fraction in [0, 1].
        log: the stage's logger, ``rrd_pipeline.stage.<stage name>``.
    """

    stage_id: str
    scene: str
    out_dir: Path
    progress: Callable[..., None]
    log: logging.Logger


@dataclass(frozen=True)
class _NoParams:
    """The parameters of a stage declared without ``params``."""


@dataclass(frozen=True)
class StageSpec:
    """A registered stage.

    Attributes:
        name: registry key, used as ``stage:`` in pipeline files.
        func: ``func(ctx, params, **inputs) -> dict[output name, value]``.
        params: frozen dataclass type of the parameters.
        inputs, outputs: name -> kind label, in declaration order.
        version: code version string, part of every cache key.
        param_types: parameter name -> resolved type annotation.
    """

    name: str
    func: Callable[..., Mapping[str, Any]]
    params: type
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    version: str
    param_types: Mapping[str, Any]

    @property
    def summary(self) -> str:
        """First line of the function's docstring ("" when it has none)."""
        return (inspect.getdoc(self.func) or "").partition("\n")[0]


STAGES: Registry[StageSpec] = Registry("stage")


def stage(name: str, *, params: type | None = None, inputs: Mapping[str, str] | None = None,
          outputs: Mapping[str, str] | None = None, version: str = "1") -> Callable:
    """Register the decorated function as stage ``name`` in :data:`STAGES` (see the module docstring).

    Raises:
        ValueError: ``name`` is taken or a name is not an identifier.
        TypeError: ``params`` is not a frozen dataclass, a field type is unsupported, or the function
            cannot be called as ``func(ctx, params, **inputs)``.
    """
    params = _NoParams if params is None else params
    inputs, outputs = dict(inputs or {}), dict(outputs or {})
    for label in (name, *inputs, *outputs):
        if not _NAME.match(label):
            raise ValueError(f"stage {name!r}: {label!r} is not an identifier")
    if not (is_dataclass(params) and isinstance(params, type) and params.__dataclass_params__.frozen):
        raise TypeError(f"stage {name!r}: params must be a frozen dataclass, got {params!r}")
    param_types = get_type_hints(params)
    param_types = {f.name: param_types[f.name] for f in fields(params)}
    for tp in param_types.values():
        _type_name(tp)  # raises TypeError on an unsupported type

    def register(func: Callable) -> Callable:
        try:
            inspect.signature(func).bind(None, None, **dict.fromkeys(inputs))
        except TypeError:
            raise TypeError(f"stage {name!r}: {func.__qualname__} cannot be called as "
                            f"func(ctx, params, {', '.join(f'{i}=...' for i in inputs)})") from None
        STAGES.add(name, StageSpec(name, func, params, inputs, outputs, version, param_types))
        return func

    return register


def coerce_param(spec: StageSpec, name: str, value: Any, base_dir: Path) -> Any:
    """Check a parameter value from YAML against ``spec`` and convert it to the declared type.

    Args:
        spec: the stage.
        name: parameter name.
        value: the value as ``yaml.safe_load`` gives it.
        base_dir: folder that relative ``Path`` values are relative to.
    Returns:
        The value as the declared type (int -> float, str -> Path, list -> tuple where declared).
    Raises:
        InputError: unknown parameter (listing the valid ones), a value of the wrong type
            (expected vs got) or an invalid choice (listing the choices); the message names no file,
            the caller prefixes the location.
    """
    if name not in spec.param_types:
        valid = ", ".join(spec.param_types) or "none"
        raise InputError(f"unknown parameter {name!r} (valid: {valid})")
    tp = spec.param_types[name]
    try:
        return _coerce(tp, value, base_dir)
    except _Mismatch:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise InputError(f"parameter {name!r}: expected {_type_name(tp)}, got "
                         f"{type(value).__name__} {shown}") from None
    except InputError as exc:
        raise InputError(f"parameter {name!r}: {exc}") from None


def make_params(spec: StageSpec, values: Mapping[str, Any]) -> Any:
    """Build ``spec.params`` from values already checked by :func:`coerce_param`.

    Raises:
        InputError: a required parameter is missing, or the dataclass rejects the values.
    """
    missing = [f.name for f in fields(spec.params)
               if f.name not in values and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise InputError(f"missing required parameter{'s' * (len(missing) > 1)} {', '.join(missing)}")
    return spec.params(**values)


class _Mismatch(Exception):
    """A value does not have the declared type (turned into an expected-vs-got message)."""


def _coerce(tp: Any, value: Any, base_dir: Path) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        if any(type(value) is type(choice) and value == choice for choice in args):
            return value
        raise InputError(f"invalid choice {value!r} (valid: {', '.join(map(str, args))})")
    if origin in (Union, types.UnionType):
        if value is None and _NONE in args:
            return None
        options = [a for a in args if a is not _NONE]
        if len(options) == 1:  # Optional[T]: keep T's own message (e.g. the valid choices)
            return _coerce(options[0], value, base_dir)
        for option in options:
            try:
                return _coerce(option, value, base_dir)
            except (_Mismatch, InputError):
                pass
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        items = [_coerce(args[0], item, base_dir) for item in value]
        return items if origin is list else tuple(items)
    if tp is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise _Mismatch from None
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and type(value) is tp:
        return value
    if tp is Path and isinstance(value, (str, Path)):
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base_dir / path).absolute()
    raise _Mismatch


def _type_name(tp: Any) -> str:
    """How a supported parameter type reads in messages; TypeError for an unsupported one."""
    origin, args = get_origin(tp), get_args(tp)
    if tp in (int, float, str, bool):
        return tp.__name__
    if tp is Path:
        return "path"
    if tp is _NONE:
        return "None"
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is list and len(args) == 1:
        return f"list of {_type_name(args[0])}"
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"list of {_type_name(args[0])}"
    raise TypeError(f"unsupported parameter type {tp!r}")
