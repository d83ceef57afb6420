"""HEVC and VVC all-intra through the FFmpeg binary of ``imageio-ffmpeg`` (libx265, libvvenc).

HEVC / VVC colour path (done here, identically for both; the video rate models must mimic it)
---------------------------------------------------------------------------------------------
1. Edge-replicate the RGB image right and down to a multiple of 8 in both directions (whole 8x8
   minimum coding blocks, even 4:2:0 chroma); the decoded image is cropped back afterwards.
2. :func:`rrd.color.rgb_to_yuv420`: ``rgb / 255`` -> full-range BT.709 Y'CbCr (:func:`rrd.color.rgb_to_ycbcr`)
   in float64; Cb and Cr are averaged over each 2x2 block (chroma sited at the block centre,
   MPEG-1/JPEG style, HEVC/VVC ``chroma_sample_loc_type`` 1).
3. :func:`rrd.color.to_limited_range`: **limited ("tv") range**, the range video encoders are normally fed:
   ``Y' = (16 + 219 Y) * 2^(b-8)``, ``C' = (128 + 224 C) * 2^(b-8)`` for bit depth ``b``, then
   rounded half to even and clipped to ``0 .. 2^b - 1``.
4. Planar ``yuv420p`` (8-bit) or ``yuv420p10le`` (10-bit) raw frame -> FFmpeg. The stream's VUI
   signals limited range, BT.709 matrix and primaries and the sRGB transfer (checked by decoding);
   chroma location type 1 is requested from the encoders (x265 ``chromaloc=1``, vvenc
   ``ChromaSampleLocType=1``) but FFmpeg does not report it back.
5. The stream is decoded by FFmpeg's native decoder to the same raw format (no FFmpeg colour
   conversion on either side); :func:`rrd.color.from_limited_range` and :func:`rrd.color.yuv420_to_rgb` invert 3 and 2:
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
import subprocess
import tempfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from rrd.codec import CODEC_SPECS, Codec, Coded
from rrd.color import from_limited_range, rgb_to_yuv420, to_limited_range, yuv420_to_rgb
from rrd.errors import InputError
from rrd_pipeline.codecs import check_choice, register_codec

__all__ = ["HevcCodec", "VvcCodec"]

# Both image sides are padded to a multiple of this for the video codecs (8x8 minimum CUs).
_VIDEO_BLOCK = 8
# Characters of FFmpeg's stderr quoted in a RuntimeError.
_STDERR_TAIL_CHARS = 2000


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

    spec = CODEC_SPECS["hevc"]
    encoder = "libx265"
    stream_format = "hevc"
    BIT_DEPTHS: ClassVar[tuple[int, ...]] = (8, 10)

    def __init__(self, bit_depth: int = 8) -> None:
        check_choice(self.name, "bit_depth", bit_depth, self.BIT_DEPTHS)
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

    spec = CODEC_SPECS["vvc"]
    encoder = "libvvenc"
    stream_format = "vvc"
    bit_depth = 10  # libvvenc takes yuv420p10le only
    PRESETS: ClassVar[tuple[str, ...]] = ("faster", "fast", "medium", "slow", "slower")

    def __init__(self, preset: str = "faster") -> None:
        check_choice(self.name, "preset", preset, self.PRESETS)
        self.preset = preset
        self._require_components()

    @property
    def options(self) -> dict[str, object]:
        return {"preset": self.preset}

    def _encoder_args(self, qp: int) -> list[str]:
        return ["-c:v", self.encoder, "-preset", self.preset, "-qp", str(qp), "-qpa", "0",
                "-vvenc-params", "IntraPeriod=1:IntraQPOffset=0:ChromaSampleLocType=1"]
