"""The codec interface of the core: what a real image codec is to the optimiser and the evaluation.

The encoder runners themselves (Pillow for JPEG, the FFmpeg binary for HEVC and VVC) live at the edge,
in :mod:`rrd_pipeline.codecs`; the core sees a :class:`Codec` passed in as an argument (the codec in the
optimiser's loop, rate-model calibration, the evaluation's coding) and never runs an encoder itself.

Every codec codes an ``(H, W, 3)`` uint8 RGB image at one integer parameter and returns a
:class:`Coded`: the exact bitstream, its size, and the decoded ``(H, W, 3)`` uint8 RGB image of the
same size. The parameter conventions of each codec family are core knowledge (the rate models need
them) and live here, in :data:`CODEC_SPECS`:

=======  ============  =======  ============================  ==================================
name     param_name    range    default_points                better quality when the param is
=======  ============  =======  ============================  ==================================
jpeg     quality       1..100   30, 40, 50, 60, 70, 80, 90    higher (``higher_is_better=True``)
hevc     qp            0..51    22, 27, 32, 37, 42            lower (``higher_is_better=False``)
vvc      qp            0..63    22, 27, 32, 37, 42            lower (``higher_is_better=False``)
=======  ============  =======  ============================  ==================================

>>> spec = CODEC_SPECS["hevc"]
>>> spec.ordered([22, 42, 32])          # lowest to highest quality (ascending bits)
[42, 32, 22]
>>> spec.middle_point
32
>>> spec.check_param(52)
Traceback (most recent call last):
...
rrd.errors.InputError: hevc qp 52 is out of range; valid: 0..51

What is counted: JPEG, the whole JFIF file (markers and tables included: about 630 bytes of fixed
overhead a user stores too); HEVC / VVC, the raw Annex-B elementary stream (parameter sets and one IDR
picture), no container. An atlas is coded tile by tile, each tile its own image (:func:`code_atlas`).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rrd.errors import InputError
from rrd.registry import Registry

__all__ = ["CODEC_SPECS", "CodecSpec", "Codec", "Coded", "CodedAtlas", "atlas_codes", "code_atlas"]


@dataclass(frozen=True)
class CodecSpec:
    """The parameter conventions of one codec family.

    Attributes:
        name: registry key ("jpeg", "hevc", "vvc").
        param_name: what the parameter is ("quality" or "qp").
        param_range: inclusive (lowest, highest) valid parameter.
        default_points: the parameters of a standard rate sweep, ascending.
        higher_is_better: True when a higher parameter gives higher quality and more bits (JPEG
            quality), False when a lower one does (QP).
    """

    name: str
    param_name: str
    param_range: tuple[int, int]
    default_points: tuple[int, ...]
    higher_is_better: bool

    def check_param(self, param: int) -> int:
        """``param`` as an int, or InputError naming the valid range."""
        lo, hi = self.param_range
        if isinstance(param, (bool, np.bool_)) or not isinstance(param, (int, np.integer)):
            raise InputError(f"{self.name} {self.param_name} must be an integer in {lo}..{hi}, got {param!r}")
        value = int(param)
        if not lo <= value <= hi:
            raise InputError(f"{self.name} {self.param_name} {value} is out of range; valid: {lo}..{hi}")
        return value

    def ordered(self, points: Iterable[int]) -> list[int]:
        """``points`` sorted from the lowest to the highest quality (ascending bits)."""
        return sorted(points, reverse=not self.higher_is_better)

    @property
    def middle_point(self) -> int:
        """The middle of :attr:`default_points`: the operating point a command uses when none is given."""
        return self.default_points[len(self.default_points) // 2]


CODEC_SPECS: Registry[CodecSpec] = Registry("codec")
for _spec in (CodecSpec("jpeg", "quality", (1, 100), (30, 40, 50, 60, 70, 80, 90), True),
              CodecSpec("hevc", "qp", (0, 51), (22, 27, 32, 37, 42), False),
              CodecSpec("vvc", "qp", (0, 63), (22, 27, 32, 37, 42), False)):
    CODEC_SPECS.add(_spec.name, _spec)


@dataclass(frozen=True, eq=False)
class _Sized:
    """A coded result: its size in bytes and what the decoder returns.

    Attributes:
        nbytes: size of the bitstream(s) in bytes.
        decoded: (..., 3) decoded samples; every axis but the last counts a pixel (texel).
    """

    nbytes: int
    decoded: np.ndarray

    @property
    def bits(self) -> int:
        """Size in bits, ``8 * nbytes``."""
        return 8 * self.nbytes

    @property
    def bpp(self) -> float:
        """Bits per pixel (per texel of the whole atlas), ``bits / (number of pixels)``."""
        return self.bits / float(np.prod(self.decoded.shape[:-1]))


@dataclass(frozen=True, eq=False)
class Coded(_Sized):
    """One coded image: ``decoded`` is (H, W, 3) uint8 RGB, ``bitstream`` the exact bytes (a JFIF
    file for JPEG, a raw Annex-B stream for HEVC/VVC)."""

    bitstream: bytes


class Codec(abc.ABC):
    """A real image codec coding (H, W, 3) uint8 RGB at one integer parameter.

    Class attribute ``spec``: the family's :class:`CodecSpec`; ``name``, ``param_name``,
    ``param_range``, ``default_points`` and ``higher_is_better`` read from it.
    """

    spec: ClassVar[CodecSpec]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def param_name(self) -> str:
        return self.spec.param_name

    @property
    def param_range(self) -> tuple[int, int]:
        return self.spec.param_range

    @property
    def default_points(self) -> tuple[int, ...]:
        return self.spec.default_points

    @property
    def higher_is_better(self) -> bool:
        return self.spec.higher_is_better

    @property
    @abc.abstractmethod
    def options(self) -> dict[str, object]:
        """The keyword options this codec was built with."""

    @abc.abstractmethod
    def _encode(self, rgb: np.ndarray, param: int) -> Coded:
        """Code a validated contiguous (H, W, 3) uint8 image at a validated parameter."""

    def encode(self, image: np.ndarray, param: int) -> Coded:
        """Encode and decode one image.

        Args:
            image: (H, W, 3) uint8 RGB, H, W >= 1.
            param: integer in ``param_range`` (JPEG quality or QP).
        Returns:
            :class:`Coded` with the bitstream, its size and the decoded (H, W, 3) uint8 RGB image.
        Raises:
            InputError: the image is not (H, W, 3) uint8 or ``param`` is not an integer in range.
            RuntimeError: the encoder or decoder failed (with the tail of its error output).
        """
        return self._encode(_check_image(image), self.check_param(param))

    def check_param(self, param: int) -> int:
        """``param`` as an int, or InputError naming the valid range."""
        return self.spec.check_param(param)

    def ordered(self, points: Iterable[int]) -> list[int]:
        """``points`` sorted from the lowest to the highest quality (ascending bits)."""
        return self.spec.ordered(points)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({args})"


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        desc = (f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray)
                else type(image).__name__)
        raise InputError(f"image to encode must be an (H, W, 3) uint8 RGB array, got {desc}")
    return np.ascontiguousarray(image)


@dataclass(frozen=True, eq=False)
class CodedAtlas(_Sized):
    """An atlas coded at one operating point, each page its own image.

    Attributes:
        nbytes: total size of the pages' bitstreams in bytes.
        decoded: (T, H, W, 3) float32 decoded texels in [0, 1] (decoded 8-bit codes / 255), on the canvas
            of the atlas (0 around pages smaller than it).
        bitstreams: one bitstream per page, in page order.
        seconds: wall-clock time of the codec calls (encode + decode).
        texels: texels of all pages; ``bpp`` is ``8 * nbytes / texels``, per texel of the whole atlas.
    """

    bitstreams: tuple[bytes, ...]
    seconds: float
    texels: int

    @property
    def bpp(self) -> float:
        return self.bits / float(self.texels)


def atlas_codes(tiles: np.ndarray) -> np.ndarray:
    """(..., 3) float texels in [0, 1] -> uint8 codes ``round(255 x)``, clipped to 0..255.

    >>> atlas_codes(np.array([[0.0, 0.5, 1.2]])).tolist()
    [[0, 128, 255]]
    """
    return np.clip(np.rint(np.asarray(tiles, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def code_atlas(codec: Codec, tiles: np.ndarray, param: int,
               sizes: Sequence[tuple[int, int]] | None = None) -> CodedAtlas:
    """Code every page of an atlas as its own image at one operating point.

    Args:
        codec: the codec (built at the edge, e.g. ``rrd_pipeline.codecs.get_codec``).
        tiles: (T, H, W, 3) float texels in [0, 1]; coded as their 8-bit codes (:func:`atlas_codes`).
        param: the codec parameter (JPEG quality or QP).
        sizes: each page's (height, width) on the canvas (``Atlas.sizes``); default: the whole tiles.
    """
    tiles = np.asarray(tiles)
    if tiles.ndim != 4 or tiles.shape[-1] != 3:
        raise InputError(f"atlas tiles have shape {tiles.shape}, expected (T, H, W, 3)")
    sizes = [tuple(tiles.shape[1:3])] * len(tiles) if sizes is None else [tuple(s) for s in sizes]
    start = time.perf_counter()
    coded = [codec.encode(np.ascontiguousarray(codes[:h, :w]), param)
             for codes, (h, w) in zip(atlas_codes(tiles), sizes)]
    seconds = time.perf_counter() - start
    decoded = np.zeros(tiles.shape, dtype=np.float32)
    for t, c in enumerate(coded):
        decoded[t, :c.decoded.shape[0], :c.decoded.shape[1]] = c.decoded.astype(np.float32) / np.float32(255.0)
    return CodedAtlas(sum(c.nbytes for c in coded), decoded, tuple(c.bitstream for c in coded), seconds,
                      sum(h * w for h, w in sizes))
