"""The one exception type that means "the user's input is wrong".

Everything in ``rrd`` and ``rrd_pipeline`` that rejects input (a missing file, a camera whose size
does not match its photo, a mistyped YAML parameter) raises :class:`InputError` with one line that
names the file or value and the problem. The CLI prints that line and exits with code 2; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad user input: the message is one line naming the file or value and what is wrong."""
