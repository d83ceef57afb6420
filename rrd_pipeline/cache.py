"""Content-addressed cache folders for stage outputs, written atomically.

A completed stage folder ``<cache root>/<stage id>-<key>/`` holds::

    outputs.json   manifest: output name -> {"pickle": "<file>"} | {"path": p} | {"paths": [p, ...]}
    <name>.pkl     one pickled Python object per non-path output
    done           marker: the folder is complete
    ...            any files the stage wrote itself

Recorded paths are relative to the stage folder when they lie inside it, else absolute. A stage
runs in a temporary sibling folder ``.tmp-<stage id>-<key>-<pid>-*``; its outputs, manifest and ``done``
are written there and the folder is then renamed to its final name in one ``os.replace``, so a final
folder is either complete or absent. An interrupted run leaves no final folder (and a ``.tmp-*``
folder only when the process was killed outright: :func:`remove_stale` removes those whose process is
gone).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

__all__ = ["fingerprint", "cache_key", "is_complete", "load_outputs", "staging", "commit", "relocated",
           "remove_stale"]

_MANIFEST = "outputs.json"
_DONE = "done"


def fingerprint(value: Any) -> Any:
    """A JSON-serialisable stand-in of a parameter value that changes when the value changes.

    Supports None, bool, int, float, str, lists, tuples, mappings with str keys, dataclasses and
    paths. A ``Path`` is its absolute text plus the (size, mtime_ns) of the file, or of every file
    under the folder, so editing an input file changes the fingerprint without reading it.

    Raises:
        TypeError: an unsupported type.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return {"path": str(value.absolute()), "stat": _stat(value)}
    if isinstance(value, (list, tuple)):
        return [fingerprint(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): fingerprint(v) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: fingerprint(getattr(value, f.name)) for f in fields(value)}
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")


def _stat(path: Path) -> Any:
    if path.is_file():
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    if path.is_dir():
        return [[str(p.relative_to(path)), *_stat(p)] for p in sorted(path.rglob("*")) if p.is_file()]
    return None


def cache_key(*parts: Any) -> str:
    """16 hex digits of the SHA-256 of the canonical JSON of ``fingerprint(parts)``."""
    text = json.dumps(fingerprint(parts), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a complete stage folder whose recorded files all still exist."""
    if not (folder / _DONE).is_file():
        return False
    manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    files = [e["pickle"] for e in manifest.values() if "pickle" in e]
    files += [e["path"] for e in manifest.values() if "path" in e]
    files += [p for e in manifest.values() for p in e.get("paths", [])]
    return all((folder / f).exists() for f in files)


def load_outputs(folder: Path) -> dict[str, Any]:
    """The outputs recorded in a complete stage folder: unpickled objects and absolute paths."""
    manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    outputs: dict[str, Any] = {}
    for name, entry in manifest.items():
        if "pickle" in entry:
            with open(folder / entry["pickle"], "rb") as f:
                outputs[name] = pickle.load(f)
        elif "path" in entry:
            outputs[name] = folder / entry["path"]
        else:
            outputs[name] = [folder / p for p in entry["paths"]]
    return outputs


@contextmanager
def staging(final: Path) -> Iterator[Path]:
    """A fresh temporary folder next to ``final``, removed if the block raises (even KeyboardInterrupt)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-{os.getpid()}-", dir=final.parent)).absolute()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale(root: Path) -> list[Path]:
    """Remove the temporary folders under ``root`` left by processes that no longer run; returns them."""
    removed = []
    for tmp in root.glob(".tmp-*") if root.is_dir() else ():
        match = re.search(r"-(\d+)-[^-]*$", tmp.name)
        if tmp.is_dir() and match and not _alive(int(match.group(1))):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def commit(tmp: Path, final: Path, outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Persist ``outputs`` in ``tmp`` and rename it to ``final``.

    ``Path`` values and lists of ``Path`` are recorded (those inside ``tmp`` move with it); every
    other value is pickled. An incomplete ``final`` (see :func:`is_complete`) is replaced; a complete
    one written meanwhile by a concurrent run is kept and ``tmp`` dropped.

    Returns:
        ``outputs`` with the paths that were inside ``tmp`` pointing into ``final``.
    """
    manifest: dict[str, dict[str, Any]] = {}
    for name, value in outputs.items():
        if isinstance(value, Path):
            manifest[name] = {"path": _record(value, tmp)}
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Path) for v in value):
            manifest[name] = {"paths": [_record(v, tmp) for v in value]}
        else:
            manifest[name] = {"pickle": f"{name}.pkl"}
            with open(tmp / f"{name}.pkl", "wb") as f:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
    (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    (tmp / _DONE).touch()
    if final.exists() and not is_complete(final):
        shutil.rmtree(final)
    try:
        os.replace(tmp, final)
    except OSError:
        if not (final / _DONE).is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return relocated(outputs, tmp, final)


def _record(path: Path, tmp: Path) -> str:
    path = path.absolute()
    return str(path.relative_to(tmp)) if path.is_relative_to(tmp) else str(path)


def relocated(outputs: Mapping[str, Any], tmp: Path, final: Path) -> dict[str, Any]:
    """``outputs`` with the paths (and lists of paths) that were inside ``tmp`` pointing into ``final``."""
    return {name: _moved(value, tmp, final) for name, value in outputs.items()}


def _moved(value: Any, tmp: Path, final: Path) -> Any:
    if isinstance(value, Path):
        path = value.absolute()
        return final / path.relative_to(tmp) if path.is_relative_to(tmp) else value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Path) for v in value):
        return type(value)(_moved(v, tmp, final) for v in value)
    return value
