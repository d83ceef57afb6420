"""Real image codecs behind one interface: JPEG (Pillow), HEVC and VVC all-intra (FFmpeg).

Every codec codes an ``(H, W, 3)`` uint8 RGB image at one integer parameter and returns a
:class:`Coded`: the exact bitstream, its size, and the decoded ``(H, W, 3)`` uint8 RGB image of the
same size. Codecs are registered by name in :data:`CODECS` and built with :func:`get_codec`::

    codec = get_codec("hevc", bit_depth=10)
    coded = codec.encode(atlas_u8, 32)        # coded.nbytes, coded.bits, coded.bpp, coded.decoded

Parameters and their direction
------------------------------
=======  ============  =======  ============================  ==================================
name     param_name    range    default_points                better quality when the param is
=======  ============  =======  ============================  ==================================
jpeg     quality       1..100   30, 40, 50, 60, 70, 80, 90    higher (``higher_is_better=True``)
hevc     qp            0..51    22, 27, 32, 37, 42            lower (``higher_is_better=False``)
vvc      qp            0..63    22, 27, 32, 37, 42            lower (``higher_is_better=False``)
=======  ============  =======  ============================  ==================================

:meth:`Codec.ordered` sorts points from the lowest to the highest quality (ascending rate).

What is counted
---------------
* JPEG: the whole JFIF file as Pillow writes it (SOI, APP0, quantisation and Huffman tables, SOF,
  SOS, entropy-coded data, EOI). A JPEG has no container apart from these markers and the headers
  are what a user stores, so they are counted (about 630 bytes of fixed overhead).
* HEVC / VVC: the raw Annex-B elementary stream (``.265`` / ``.266``: parameter sets + one
  IDR picture), no container (no MP4/HEIF box). Encoder information SEI is switched off.

JPEG colour path (Pillow 10+, libjpeg-turbo; the JPEG rate model must mimic this)
---------------------------------------------------------------------------------
* RGB -> Y'CbCr: libjpeg's JFIF transform, BT.601 coefficients, **full range** (Y in 0..255,
  Cb/Cr = 128 + ...), in 16-bit fixed point rounded to integers; i.e. for ``rgb`` in [0, 1]
  ``255 * rrd.color.rgb_to_ycbcr(rgb, "bt601") + (0, 128, 128)``, rounded.
* Chroma: ``subsampling="4:2:0"`` (default) keeps one Cb and one Cr per 2x2 block, the mean of the
  four (libjpeg ``h2v2_downsample``: integer mean with alternating rounding bias 1, 2), i.e. chroma
  sited at the centre of the 2x2 block; ``"4:4:4"`` keeps full-resolution chroma.
* Quantisation: the IJG example tables (ITU-T T.81 Annex K) scaled by libjpeg's
  ``jpeg_set_quality(quality, force_baseline=True)`` (scale ``5000/q`` below 50, ``200 - 2q`` from
  50, clamped to 1..255); baseline sequential, the standard (not optimised) Huffman tables,
  integer ("islow") DCT. Partial 8x8 / 16x16 blocks at the right and bottom edges are filled by
  edge replication inside libjpeg.
* Decoding: Pillow's defaults: islow IDCT, "fancy" upsampling of 4:2:0 chroma (triangular filter,
  weights 3/4 and 1/4, centre-sited, edge replicated), inverse JFIF transform, rounding and clipping.

HEVC / VVC colour path (done here, identically for both; the video rate models must mimic it)
---------------------------------------------------------------------------------------------
1. Edge-replicate the RGB image right and down to a multiple of 8 in both directions (whole 8x8
   minimum coding blocks, even 4:2:0 chroma); the decoded image is cropped back afterwards.
2. :func:`rgb_to_yuv420`: ``rgb / 255`` -> full-range BT.709 Y'CbCr (:func:`rrd.color.rgb_to_ycbcr`)
   in float64; Cb and Cr are averaged over each 2x2 block (chroma sited at the block centre,
   MPEG-1/JPEG style, HEVC/VVC ``chroma_sample_loc_type`` 1).
3. :func:`to_limited_range`: **limited ("tv") range**, the range video encoders are normally fed:
   ``Y' = (16 + 219 Y) * 2^(b-8)``, ``C' = (128 + 224 C) * 2^(b-8)`` for bit depth ``b``, then
   rounded half to even and clipped to ``0 .. 2^b - 1``.
4. Planar ``yuv420p`` (8-bit) or ``yuv420p10le`` (10-bit) raw frame -> FFmpeg. The stream's VUI
   signals limited range, BT.709 matrix and primaries and the sRGB transfer (checked by decoding);
   chroma location type 1 is requested from the encoders (x265 ``chromaloc=1``, vvenc
   ``ChromaSampleLocType=1``) but FFmpeg does not report it back.
5. The stream is decoded by FFmpeg's native decoder to the same raw format (no FFmpeg colour
   conversion on either side); :func:`from_limited_range` and :func:`yuv420_to_rgb` invert 3 and 2:
   chroma is upsampled bilinearly at the centre siting (weights 3/4, 1/4, edge replicated, exactly
   ``torch.nn.functional.interpolate(mode="bilinear", scale_factor=2, align_corners=False)``);
   RGB is rounded half to even and clipped to 0..255.

Encoder settings
----------------
* HEVC: libx265 (preset medium), constant QP (``-qp``) with ``ipratio=1`` (otherwise x265 codes the
  I picture 3 QP below the requested QP), ``aq-mode=0`` (no adaptive per-CU QP), ``psy-rd=0`` and
  ``psy-rdoq=0`` (decisions by plain rate-distortion, as the HM reference encoder does), ``info=0``.
  One picture is coded, necessarily an IDR; ``keyint=1`` is not passed because with it x265 marks
  the stream with an RExt intra profile that plain Main/Main10 decoders refuse; without it the
  stream is Main (8-bit) or Main 10 (10-bit) and the slice data are byte-identical.
* VVC: libvvenc, 10-bit only, constant QP (``-qp``), ``-qpa 0`` (no perceptual QP adaptation),
  all-intra configuration ``IntraPeriod=1`` and ``IntraQPOffset=0`` (otherwise vvenc codes the
  picture 3 QP below the requested QP); speed preset selectable.
"""

from __future__ import annotations

import abc
import functools
import inspect
import io
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from rrd.color import rgb_to_ycbcr, ycbcr_to_rgb
from rrd.errors import InputError

__all__ = [
    "CODECS",
    "Codec",
    "Coded",
    "HevcCodec",
    "JpegCodec",
    "VvcCodec",
    "from_limited_range",
    "get_codec",
    "register_codec",
    "rgb_to_yuv420",
    "to_limited_range",
    "yuv420_to_rgb",
]

# Matrix of the HEVC/VVC colour path (the JPEG path uses libjpeg's own BT.601 transform).
_VIDEO_MATRIX = "bt709"
# Both image sides are padded to a multiple of this for the video codecs (8x8 minimum CUs).
_VIDEO_BLOCK = 8
# Characters of FFmpeg's stderr quoted in a RuntimeError.
_STDERR_TAIL_CHARS = 2000

_Plane = TypeVar("_Plane", np.ndarray, torch.Tensor)


@dataclass(frozen=True, eq=False)
class Coded:
    """One coded image.

    Attributes:
        nbytes: size of ``bitstream`` in bytes (see the module docstring for what it includes).
        decoded: (H, W, 3) uint8 RGB, the decoder's output, same size as the input image.
        bitstream: the exact bytes (a JFIF file for JPEG, a raw Annex-B stream for HEVC/VVC).
    """

    nbytes: int
    decoded: np.ndarray
    bitstream: bytes

    @property
    def bits(self) -> int:
        """Size in bits, ``8 * nbytes``."""
        return 8 * self.nbytes

    @property
    def bpp(self) -> float:
        """Bits per pixel of the (unpadded) image, ``bits / (H * W)``."""
        return self.bits / (self.decoded.shape[0] * self.decoded.shape[1])


class Codec(abc.ABC):
    """A real image codec coding (H, W, 3) uint8 RGB at one integer parameter.

    Class attributes:
        name: registry key (``"jpeg"``, ``"hevc"``, ``"vvc"``).
        param_name: what the parameter is (``"quality"`` or ``"qp"``).
        param_range: inclusive (lowest, highest) valid parameter.
        default_points: the parameters of a standard rate sweep, ascending.
        higher_is_better: True when a higher parameter gives higher quality and more bits
            (JPEG quality), False when lower does (HEVC/VVC QP).
    """

    name: ClassVar[str]
    param_name: ClassVar[str]
    param_range: ClassVar[tuple[int, int]]
    default_points: ClassVar[tuple[int, ...]]
    higher_is_better: ClassVar[bool]

    @property
    @abc.abstractmethod
    def options(self) -> dict[str, object]:
        """The keyword options this codec was built with (as :func:`get_codec` takes them)."""

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
        lo, hi = self.param_range
        if isinstance(param, bool) or not isinstance(param, (int, np.integer)):
            raise InputError(f"{self.name} {self.param_name} must be an integer in {lo}..{hi}, got {param!r}")
        value = int(param)
        if not lo <= value <= hi:
            raise InputError(f"{self.name} {self.param_name} {value} is out of range; valid: {lo}..{hi}")
        return value

    def ordered(self, points: Iterable[int]) -> list[int]:
        """``points`` sorted from the lowest to the highest quality (ascending bits)."""
        return sorted(points, reverse=not self.higher_is_better)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({args})"


CODECS: dict[str, type[Codec]] = {}


def register_codec(cls: type[Codec]) -> type[Codec]:
    """Class decorator: add a :class:`Codec` subclass to :data:`CODECS` under ``cls.name``."""
    if cls.name in CODECS:
        raise ValueError(f"codec name {cls.name!r} is already registered by {CODECS[cls.name].__name__}")
    CODECS[cls.name] = cls
    return cls


def get_codec(name: str, **options: object) -> Codec:
    """Build the codec registered as ``name`` with keyword ``options``.

    Options: ``jpeg``: ``subsampling`` ("4:2:0" | "4:4:4"); ``hevc``: ``bit_depth`` (8 | 10);
    ``vvc``: ``preset`` ("faster" | "fast" | "medium" | "slow" | "slower").

    Raises:
        InputError: unknown name, unknown option or invalid option value (the message lists the
            valid choices), or the FFmpeg binary lacks the encoder/decoder the codec needs.
    """
    if name not in CODECS:
        raise InputError(f"unknown codec {name!r}; choose one of {sorted(CODECS)}")
    cls = CODECS[name]
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise InputError(f"unknown option(s) {unknown} for codec {name!r}; valid options: {valid}")
    return cls(**options)


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        desc = (f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray)
                else type(image).__name__)
        raise InputError(f"image to encode must be an (H, W, 3) uint8 RGB array, got {desc}")
    return np.ascontiguousarray(image)


def _check_choice(codec: str, option: str, value: object, choices: Iterable[object]) -> None:
    choices = list(choices)
    # Exact type too: 10.0 or True must not pass for the bit depth 10 or 1.
    if not any(value == c and type(value) is type(c) for c in choices):
        raise InputError(f"{codec} option {option}={value!r} is not supported; choose one of {choices}")


# --------------------------------------------------------------------------------------------------
# JPEG


@register_codec
class JpegCodec(Codec):
    """Baseline JPEG through Pillow (libjpeg-turbo); see the module docstring for the exact path.

    Args:
        subsampling: "4:2:0" (default: 2x2 chroma means) or "4:4:4" (no chroma subsampling).
    """

    name = "jpeg"
    param_name = "quality"
    param_range = (1, 100)
    default_points = (30, 40, 50, 60, 70, 80, 90)
    higher_is_better = True
    SUBSAMPLINGS: ClassVar[dict[str, int]] = {"4:2:0": 2, "4:4:4": 0}  # Pillow's subsampling codes

    def __init__(self, subsampling: str = "4:2:0") -> None:
        _check_choice(self.name, "subsampling", subsampling, self.SUBSAMPLINGS)
        self.subsampling = subsampling

    @property
    def options(self) -> dict[str, object]:
        return {"subsampling": self.subsampling}

    def _encode(self, rgb: np.ndarray, param: int) -> Coded:
        buffer = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buffer, format="JPEG", quality=param,
                                         subsampling=self.SUBSAMPLINGS[self.subsampling],
                                         optimize=False, progressive=False)
        bitstream = buffer.getvalue()
        with Image.open(io.BytesIO(bitstream)) as decoded:
            decoded_rgb = np.asarray(decoded.convert("RGB"), dtype=np.uint8)
        return Coded(nbytes=len(bitstream), decoded=decoded_rgb, bitstream=bitstream)


# --------------------------------------------------------------------------------------------------
# The HEVC/VVC colour path (torch, differentiable: the video rate models call the same functions)


def rgb_to_yuv420(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RGB to full-range BT.709 Y'CbCr 4:2:0 planes, as the HEVC/VVC codecs do it.

    Args:
        rgb: (*, H, W, 3) floating tensor, values in [0, 1], H and W even.
    Returns:
        y: (*, H, W) in [0, 1]; cb, cr: (*, H/2, W/2) in [-0.5, 0.5], each the mean of its 2x2
        block (chroma sited at the block centre). Same dtype as ``rgb``; differentiable.
    """
    height, width = rgb.shape[-3], rgb.shape[-2]
    if height % 2 or width % 2:
        raise InputError(f"4:2:0 needs even image sides, got {height}x{width}")
    ycc = rgb_to_ycbcr(rgb, _VIDEO_MATRIX)
    lead = ycc.shape[:-3]
    chroma = ycc[..., 1:].movedim(-1, -3).reshape(-1, 2, height, width)
    chroma = F.avg_pool2d(chroma, 2).reshape(*lead, 2, height // 2, width // 2)
    return ycc[..., 0], chroma[..., 0, :, :], chroma[..., 1, :, :]


def yuv420_to_rgb(y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_yuv420` up to the chroma subsampling (no rounding or clipping).

    Chroma is upsampled 2x bilinearly at the centre siting: each output sample mixes its own
    coarse sample (weight 3/4) with the nearer neighbour in each direction (1/4), edges replicated.

    Args:
        y: (*, H, W); cb, cr: (*, H/2, W/2); floating, full-range values as returned by
            :func:`rgb_to_yuv420`.
    Returns:
        (*, H, W, 3) RGB in about [0, 1] (not clipped), same dtype as ``y``; differentiable.
    """
    height, width = y.shape[-2], y.shape[-1]
    if cb.shape[-2:] != (height // 2, width // 2) or cr.shape != cb.shape or height % 2 or width % 2:
        raise InputError(f"4:2:0 planes do not match: Y {tuple(y.shape)}, Cb {tuple(cb.shape)}, "
                         f"Cr {tuple(cr.shape)}")
    lead = y.shape[:-2]
    chroma = torch.stack([cb, cr], dim=-3).reshape(-1, 2, height // 2, width // 2)
    chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
    chroma = chroma.reshape(*lead, 2, height, width).movedim(-3, -1)
    return ycbcr_to_rgb(torch.cat([y[..., None], chroma], dim=-1), _VIDEO_MATRIX)


def to_limited_range(y: _Plane, cb: _Plane, cr: _Plane, bit_depth: int) -> tuple[_Plane, _Plane, _Plane]:
    """Full-range Y'CbCr to limited ("tv") range code values, unrounded.

    ``Y' = (16 + 219 y) * 2^(b-8)``, ``C' = (128 + 224 c) * 2^(b-8)``: 8-bit Y' spans 16..235 and
    C' 16..240; 10-bit 64..940 and 64..960. Works on numpy arrays and torch tensors alike.

    Args:
        y, cb, cr: planes of any shape, y in [0, 1], cb and cr in [-0.5, 0.5].
        bit_depth: 8 or 10.
    Returns:
        (y_code, cb_code, cr_code), same types as the inputs; the codecs round them half to even.
    """
    scale = 2.0 ** (bit_depth - 8)
    return (16 + 219 * y) * scale, (128 + 224 * cb) * scale, (128 + 224 * cr) * scale


def from_limited_range(y_code: _Plane, cb_code: _Plane, cr_code: _Plane,
                       bit_depth: int) -> tuple[_Plane, _Plane, _Plane]:
    """Inverse of :func:`to_limited_range`: code values to full-range y, cb, cr (floats)."""
    scale = 2.0 ** (bit_depth - 8)
    return (y_code / scale - 16) / 219, (cb_code / scale - 128) / 224, (cr_code / scale - 128) / 224


def _pad_to_block(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    pad_h, pad_w = -height % _VIDEO_BLOCK, -width % _VIDEO_BLOCK
    return np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else rgb


def _rgb_to_raw_yuv420(rgb: np.ndarray, bit_depth: int) -> bytes:
    """(H, W, 3) uint8 (H, W even) -> planar Y, Cb, Cr codes (uint8, or little-endian uint16)."""
    planes = rgb_to_yuv420(torch.tensor(rgb, dtype=torch.float64) / 255)
    codes = to_limited_range(*planes, bit_depth)
    dtype = np.uint8 if bit_depth == 8 else np.dtype("<u2")
    return b"".join(torch.round(c).clamp(0, 2**bit_depth - 1).numpy().astype(dtype).tobytes()
                    for c in codes)


def _raw_yuv420_to_rgb(raw: bytes, height: int, width: int, bit_depth: int) -> np.ndarray:
    """Inverse of :func:`_rgb_to_raw_yuv420`: (height, width, 3) uint8 RGB, rounded and clipped."""
    dtype = np.uint8 if bit_depth == 8 else np.dtype("<u2")
    luma, chroma = height * width, (height // 2) * (width // 2)
    samples = np.frombuffer(raw, dtype=dtype)
    if samples.size != luma + 2 * chroma:
        raise RuntimeError(f"decoder returned {len(raw)} bytes, expected a {width}x{height} "
                           f"{bit_depth}-bit 4:2:0 frame of {(luma + 2 * chroma) * dtype.itemsize} bytes")
    codes = [torch.from_numpy(p.astype(np.float64)) for p in (
        samples[:luma].reshape(height, width),
        samples[luma:luma + chroma].reshape(height // 2, width // 2),
        samples[luma + chroma:].reshape(height // 2, width // 2))]
    rgb = yuv420_to_rgb(*from_limited_range(*codes, bit_depth))
    return torch.round(rgb * 255).clamp(0, 255).numpy().astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# FFmpeg


@functools.lru_cache(maxsize=None)
def _ffmpeg_exe() -> str:
    import imageio_ffmpeg

    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as err:
        raise InputError(f"no FFmpeg binary found by imageio_ffmpeg: {err}") from None


@functools.lru_cache(maxsize=None)
def _ffmpeg_components(kind: str) -> frozenset[str]:
    """Names FFmpeg lists under ``-encoders``, ``-decoders``, ``-muxers`` or ``-demuxers``."""
    listing = _run_ffmpeg([f"-{kind}"], what=f"ffmpeg -{kind}").decode(errors="replace")
    names, in_table = set(), False
    for line in listing.splitlines():
        tokens = line.split()
        if in_table and len(tokens) >= 2:
            names.add(tokens[1])
        # The table starts after a line of dashes (" ------" / " ---").
        in_table = in_table or (bool(tokens) and set(line.strip()) == {"-"})
    return frozenset(names)


def _require_ffmpeg(codec: str, **needed: str) -> None:
    """InputError unless FFmpeg has each ``kind=name`` (kind: encoders, decoders, muxers, demuxers)."""
    for kind, component in needed.items():
        if component not in _ffmpeg_components(kind):
            raise InputError(f"codec {codec!r} needs the FFmpeg {kind[:-1]} {component!r}, which "
                             f"{_ffmpeg_exe()} lacks; install an FFmpeg build that has it "
                             f"(imageio-ffmpeg 0.8.1 ships one)")


def _run_ffmpeg(args: list[str], what: str) -> bytes:
    """Run the FFmpeg binary quietly; stdout, or RuntimeError with the tail of its stderr."""
    cmd = [_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args]
    result = subprocess.run(cmd, capture_output=True, check=False)
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace")[-_STDERR_TAIL_CHARS:].strip()
        raise RuntimeError(f"{what} failed (exit code {result.returncode}): {tail}")
    return result.stdout


class _FfmpegVideoCodec(Codec):
    """All-intra coding of one 4:2:0 picture through the FFmpeg binary (see the module docstring)."""

    param_name = "qp"
    default_points = (22, 27, 32, 37, 42)
    higher_is_better = False
    encoder: ClassVar[str]  # FFmpeg encoder name
    stream_format: ClassVar[str]  # FFmpeg raw elementary-stream muxer/demuxer and decoder name
    bit_depth: int

    def _require_components(self) -> None:
        _require_ffmpeg(self.name, encoders=self.encoder, decoders=self.stream_format,
                        muxers=self.stream_format, demuxers=self.stream_format)

    @abc.abstractmethod
    def _encoder_args(self, qp: int) -> list[str]:
        """FFmpeg output options selecting and configuring the encoder."""

    def _encode(self, rgb: np.ndarray, param: int) -> Coded:
        height, width = rgb.shape[:2]
        padded = _pad_to_block(rgb)
        pad_h, pad_w = padded.shape[:2]
        pix_fmt = "yuv420p" if self.bit_depth == 8 else "yuv420p10le"
        with tempfile.TemporaryDirectory(prefix="rrd_codec_") as tmp:
            raw_in, raw_out = Path(tmp) / "in.yuv", Path(tmp) / "out.yuv"
            stream = Path(tmp) / f"out.{self.stream_format}"
            raw_in.write_bytes(_rgb_to_raw_yuv420(padded, self.bit_depth))
            _run_ffmpeg(["-f", "rawvideo", "-pix_fmt", pix_fmt, "-video_size", f"{pad_w}x{pad_h}",
                         "-color_range", "tv", "-colorspace", "bt709", "-color_primaries", "bt709",
                         "-color_trc", "iec61966-2-1", "-i", str(raw_in), "-frames:v", "1",
                         *self._encoder_args(param), "-f", self.stream_format, "-y", str(stream)],
                        what=f"{self.encoder} encoding ({self.param_name} {param})")
            _run_ffmpeg(["-f", self.stream_format, "-i", str(stream), "-f", "rawvideo", "-pix_fmt", pix_fmt,
                         "-y", str(raw_out)], what=f"FFmpeg {self.stream_format} decoding")
            bitstream = stream.read_bytes()
            decoded = _raw_yuv420_to_rgb(raw_out.read_bytes(), pad_h, pad_w, self.bit_depth)
        return Coded(nbytes=len(bitstream), decoded=np.ascontiguousarray(decoded[:height, :width]),
                     bitstream=bitstream)


@register_codec
class HevcCodec(_FfmpegVideoCodec):
    """HEVC all-intra, constant QP, through FFmpeg's libx265 and FFmpeg's own HEVC decoder.

    Args:
        bit_depth: 8 (default, Main profile, ``yuv420p``) or 10 (Main 10, ``yuv420p10le``).
    """

    name = "hevc"
    param_range = (0, 51)
    encoder = "libx265"
    stream_format = "hevc"
    BIT_DEPTHS: ClassVar[tuple[int, ...]] = (8, 10)

    def __init__(self, bit_depth: int = 8) -> None:
        _check_choice(self.name, "bit_depth", bit_depth, self.BIT_DEPTHS)
        self.bit_depth = bit_depth
        self._require_components()

    @property
    def options(self) -> dict[str, object]:
        return {"bit_depth": self.bit_depth}

    def _encoder_args(self, qp: int) -> list[str]:
        params = "log-level=error:ipratio=1:aq-mode=0:psy-rd=0:psy-rdoq=0:info=0:chromaloc=1"
        return ["-c:v", self.encoder, "-qp", str(qp), "-x265-params", params]


@register_codec
class VvcCodec(_FfmpegVideoCodec):
    """VVC all-intra, constant QP, 10-bit, through FFmpeg's libvvenc and FFmpeg's own VVC decoder.

    Args:
        preset: vvenc speed preset, "faster" (default), "fast", "medium", "slow" or "slower".
    """

    name = "vvc"
    param_range = (0, 63)
    encoder = "libvvenc"
    stream_format = "vvc"
    bit_depth = 10  # libvvenc takes yuv420p10le only
    PRESETS: ClassVar[tuple[str, ...]] = ("faster", "fast", "medium", "slow", "slower")

    def __init__(self, preset: str = "faster") -> None:
        _check_choice(self.name, "preset", preset, self.PRESETS)
        self.preset = preset
        self._require_components()

    @property
    def options(self) -> dict[str, object]:
        return {"preset": self.preset}

    def _encoder_args(self, qp: int) -> list[str]:
        return ["-c:v", self.encoder, "-preset", self.preset, "-qp", str(qp), "-qpa", "0",
                "-vvenc-params", "IntraPeriod=1:IntraQPOffset=0:ChromaSampleLocType=1"]
