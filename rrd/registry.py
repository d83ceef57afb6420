"""One registry helper for every named family: codecs, padding methods, rate models, evaluation methods, stages.

A :class:`Registry` is a plain ``dict`` from name to entry that knows what kind of thing it holds, so
that a lookup of an unknown name is one :class:`rrd.errors.InputError` listing the valid choices, and a
name registered twice is a programming error (ValueError)::

    >>> SHAPES = Registry("shape")
    >>> @SHAPES.register("square")
    ... def square(side):
    ...     return side * side
    >>> SHAPES.lookup("square")(3)
    9
    >>> SHAPES.choices
    ('square',)
    >>> SHAPES.lookup("circle")
    Traceback (most recent call last):
    ...
    rrd.errors.InputError: unknown shape 'circle'; choose one of: square

Everything that offers a choice to the user (CLI options, pipeline parameters, the Meshroom node)
derives its list from the registry, so a new entry appears everywhere at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Literal, TypeVar

from rrd.errors import InputError

__all__ = ["Registry", "choice_type"]

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """Name -> entry, in registration order.

    Args:
        kind: what an entry is, in words ("codec", "padding method"): the messages use it.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; ValueError if the name is taken. Returns ``entry``."""
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda entry: self.add(name, entry)

    def lookup(self, name: str) -> T:
        """The entry registered as ``name``, or InputError naming it and the valid choices."""
        if not isinstance(name, str) or name not in self:
            raise InputError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self)}")
        return self[name]

    @property
    def choices(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self)


def choice_type(names: tuple[str, ...]) -> object:
    """``Literal[names...]``: a parameter type (pipeline stages) whose valid values are ``names``.

    >>> choice_type(("a", "b"))
    typing.Literal['a', 'b']
    """
    return Literal[names]  # type: ignore[valid-type]
