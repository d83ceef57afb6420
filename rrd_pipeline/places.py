"""Output places: checked before the work starts, written whole or not at all, and a failed write told in one line.

A command or pipeline checks its output folder first (:func:`check_output_dir`: creatable, writable, a rough
free-space check), so that a read-only or full disk is found before minutes of computation, not after.
Stages write into a temporary folder that is published into the output folder only when the stage has
finished (:func:`publish`), so a failure leaves no half-written file under a final name. A write that
fails all the same (the disk filled meanwhile) is an ``OSError``; :func:`place_error` turns the ones that
are the place's fault (permission, read-only file system, disk full, quota, a file where a folder should
be) into an :class:`rrd.errors.InputError` of one line naming the path and the cause.

>>> import errno
>>> str(place_error(OSError(errno.ENOSPC, "No space left on device", "out/texture.png")))
'cannot write out/texture.png: No space left on device'
>>> place_error(OSError(errno.ECONNRESET, "Connection reset")) is None
True
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from pathlib import Path

from rrd.errors import InputError

__all__ = ["PLACE_ERRNOS", "check_output_dir", "place_error", "publish"]

PLACE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG,
                          errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ENOTEMPTY})
"""The errors of a write that are the output place's fault, not a bug."""

# A byte is never enough: the check asks for this much room besides the expected output.
_HEADROOM_BYTES = 1 << 20


def place_error(exc: OSError, path: str | Path | None = None) -> InputError | None:
    """The one-line :class:`InputError` for an ``OSError`` that is the place's fault, else None.

    Args:
        exc: the error of a write, a folder creation or a rename.
        path: the path to name when ``exc`` names none.
    """
    if exc.errno not in PLACE_ERRNOS:
        return None
    target = exc.filename if exc.filename is not None else path
    cause = exc.strerror or os.strerror(exc.errno)
    return InputError(f"cannot write {target}: {cause}" if target is not None else f"cannot write: {cause}")


def check_output_dir(path: str | Path, needed_bytes: int = 0) -> Path:
    """Make sure ``path`` is a folder this process can write ``needed_bytes`` into; returns it absolute.

    The folder (and its parents) is created if absent; a probe file is written and removed, which finds
    permission and read-only file systems; the free space must exceed ``needed_bytes`` (a rough estimate
    of the output, 0 to check only that the disk is not full).

    Raises:
        InputError: one line naming the path and the problem.
    """
    folder = Path(path).absolute()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"output folder {folder} is a file, not a folder")
    probe = folder / f".rrd-probe-{secrets.token_hex(4)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        error = place_error(exc, folder)
        if error is None:
            raise
        raise error from None
    finally:
        probe.unlink(missing_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed_bytes + _HEADROOM_BYTES:
        raise InputError(f"output folder {folder} has {free / 1e6:.1f} MB free; this needs about "
                         f"{(needed_bytes + _HEADROOM_BYTES) / 1e6:.1f} MB")
    return folder


def publish(staged: Path, final: Path) -> None:
    """Move every entry of the folder ``staged`` into the folder ``final`` and remove ``staged``.

    An entry of the same name in ``final`` is replaced. Each entry moves by one rename on the same file
    system, so every file under ``final`` is either the old one or the new one, never a part.
    """
    final.mkdir(parents=True, exist_ok=True)
    for entry in sorted(staged.iterdir()):
        target = final / entry.name
        if target.is_dir() and not target.is_symlink() and entry.is_dir():
            # os.replace cannot replace a non-empty folder: move the old one aside, then drop it.
            old = final / f".rrd-old-{secrets.token_hex(4)}-{entry.name}"
            os.replace(target, old)
            os.replace(entry, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(entry, target)
    staged.rmdir()
