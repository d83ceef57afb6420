"""The encoder runners: real codecs behind the core's :class:`rrd.codec.Codec` interface.

JPEG runs through Pillow (libjpeg-turbo, :mod:`rrd_pipeline.codecs.pillow`), HEVC and VVC all-intra
through the FFmpeg binary of ``imageio-ffmpeg`` (:mod:`rrd_pipeline.codecs.ffmpeg`). They are registered
by name in :data:`CODECS` (the names of :data:`rrd.codec.CODEC_SPECS`) and built with :func:`get_codec`:

>>> codec = get_codec("jpeg", subsampling="4:4:4")
>>> codec
JpegCodec(subsampling='4:4:4')
>>> coded = codec.encode(np.full((16, 16, 3), 128, np.uint8), 90)
>>> coded.decoded.shape, coded.bits == 8 * coded.nbytes
((16, 16, 3), True)
>>> get_codec("png")
Traceback (most recent call last):
...
rrd.errors.InputError: unknown codec 'png'; choose one of: jpeg, hevc, vvc

Options: ``jpeg``: ``subsampling`` ("4:2:0" | "4:4:4"); ``hevc``: ``bit_depth`` (8 | 10);
``vvc``: ``preset`` ("faster" | "fast" | "medium" | "slow" | "slower").
"""

from __future__ import annotations

import inspect

import numpy as np  # noqa: F401  (the doctest above)

from rrd.codec import Codec
from rrd.errors import InputError
from rrd.registry import Registry

__all__ = ["CODECS", "get_codec", "register_codec", "check_choice"]

CODECS: Registry[type[Codec]] = Registry("codec")


def register_codec(cls: type[Codec]) -> type[Codec]:
    """Class decorator: add a :class:`Codec` subclass to :data:`CODECS` under its spec's name."""
    return CODECS.add(cls.spec.name, cls)


def get_codec(name: str, **options: object) -> Codec:
    """Build the codec registered as ``name`` with keyword ``options``.

    Raises:
        InputError: unknown name, unknown option or invalid option value (the message lists the
            valid choices), or the FFmpeg binary lacks the encoder/decoder the codec needs.
    """
    cls = CODECS.lookup(name)
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise InputError(f"unknown option(s) {unknown} for codec {name!r}; valid options: {valid}")
    return cls(**options)


def check_choice(codec: str, option: str, value: object, choices: Iterable[object]) -> None:
    choices = list(choices)
    # Exact type too: 10.0 or True must not pass for the bit depth 10 or 1.
    if not any(value == c and type(value) is type(c) for c in choices):
        raise InputError(f"{codec} option {option}={value!r} is not supported; choose one of {choices}")


# Registration, in the order of rrd.codec.CODEC_SPECS.
from rrd_pipeline.codecs import pillow, ffmpeg  # noqa: E402,F401
