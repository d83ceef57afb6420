"""Tests of rrd_pipeline.codecs (and rrd.codec, rrd.color's video path): the real JPEG (Pillow), HEVC (libx265) and VVC (libvvenc) paths."""

from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rrd.codec import Codec, Coded
from rrd.color import from_limited_range, rgb_to_ycbcr, rgb_to_yuv420, to_limited_range, yuv420_to_rgb
from rrd_pipeline.codecs import CODECS, get_codec
from rrd_pipeline.codecs.ffmpeg import _require_ffmpeg, _run_ffmpeg
from rrd.errors import InputError
from rrd.metrics import psnr

CONFIGS = [("jpeg", {}), ("jpeg", {"subsampling": "4:4:4"}), ("hevc", {}), ("hevc", {"bit_depth": 10}),
           ("vvc", {})]
# Three well-separated points per codec, from low to high quality.
SWEEPS = {"jpeg": (20, 50, 90), "hevc": (42, 32, 22), "vvc": (42, 32, 22)}


def make_image(height: int, width: int, colourful: bool = False) -> np.ndarray:
    """(H, W, 3) uint8: smooth colour gradients plus a sinusoidal texture.

    The texture is shared by the three channels (luma detail only) unless ``colourful``, where each
    channel gets its own pattern (chroma detail, which 4:2:0 subsampling loses).
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = xx / width, yy / height
    base = 40 + 170 * np.stack([u, v, 1 - 0.5 * (u + v)], axis=-1)
    if colourful:
        texture = np.stack([30 * np.sin(1.3 * xx) * np.cos(0.9 * yy), 30 * np.sin(0.7 * xx + 2.1 * yy),
                            30 * np.cos(1.9 * xx - 0.6 * yy)], axis=-1)
    else:
        texture = (12 * np.sin(0.9 * xx) * np.cos(0.7 * yy) + 6 * np.sin(0.31 * (xx + 2 * yy)))[..., None]
    return np.clip(np.rint(base + texture), 0, 255).astype(np.uint8)


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    return psnr(a / 255.0, b / 255.0)


IMAGE = make_image(48, 64)


# --- registry and interface ---------------------------------------------------------------------


def test_registry_and_parameters() -> None:
    assert set(CODECS) == {"jpeg", "hevc", "vvc"}
    jpeg, hevc, vvc = get_codec("jpeg"), get_codec("hevc"), get_codec("vvc")
    assert all(isinstance(c, Codec) for c in (jpeg, hevc, vvc))
    assert (jpeg.param_name, jpeg.param_range, jpeg.higher_is_better) == ("quality", (1, 100), True)
    assert jpeg.default_points == (30, 40, 50, 60, 70, 80, 90)
    assert (hevc.param_name, hevc.param_range, hevc.higher_is_better) == ("qp", (0, 51), False)
    assert (vvc.param_name, vvc.param_range, vvc.higher_is_better) == ("qp", (0, 63), False)
    assert hevc.default_points == vvc.default_points == (22, 27, 32, 37, 42)
    # ordered(): lowest quality first, whichever way the parameter runs.
    assert jpeg.ordered([90, 30, 60]) == [30, 60, 90]
    assert hevc.ordered([22, 42, 32]) == [42, 32, 22]
    assert jpeg.options == {"subsampling": "4:2:0"} and hevc.options == {"bit_depth": 8}
    assert vvc.options == {"preset": "faster"}
    assert repr(get_codec("hevc", bit_depth=10)) == "HevcCodec(bit_depth=10)"


def test_coded_units() -> None:
    coded = get_codec("jpeg").encode(IMAGE, 50)
    assert isinstance(coded, Coded)
    assert coded.nbytes == len(coded.bitstream) > 0
    assert coded.bits == 8 * coded.nbytes
    assert coded.bpp == pytest.approx(coded.bits / (48 * 64))


# --- behaviour of every codec -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "options"), CONFIGS)
def test_quality_rises_with_parameter(name: str, options: dict) -> None:
    codec = get_codec(name, **options)
    sweep = [codec.encode(IMAGE, p) for p in SWEEPS[name]]
    for coded in sweep:
        assert coded.nbytes == len(coded.bitstream) > 0
        assert coded.decoded.shape == IMAGE.shape and coded.decoded.dtype == np.uint8
    psnrs = [psnr_db(IMAGE, c.decoded) for c in sweep]
    sizes = [c.nbytes for c in sweep]
    assert psnrs[0] < psnrs[1] < psnrs[2], psnrs
    assert sizes[0] < sizes[1] < sizes[2], sizes
    assert psnrs[0] > 25, psnrs  # even the lowest point resembles the input


@pytest.mark.parametrize(("name", "options"), CONFIGS)
def test_odd_size_is_cropped_back_in_place(name: str, options: dict) -> None:
    image = make_image(29, 37)
    coded = get_codec(name, **options).encode(image, SWEEPS[name][2])
    assert coded.decoded.shape == (29, 37, 3)
    # Measured 41.6-43.3 dB; the same result shifted by one pixel scores about 32 dB.
    assert psnr_db(image, coded.decoded) > 37


@pytest.mark.parametrize(("name", "magic"), [("jpeg", b"\xff\xd8\xff"), ("hevc", b"\x00\x00\x00\x01"),
                                             ("vvc", b"\x00\x00\x00\x01")])
def test_bitstream_is_raw_and_deterministic(name: str, magic: bytes) -> None:
    codec = get_codec(name)
    first, second = codec.encode(IMAGE, SWEEPS[name][1]), codec.encode(IMAGE, SWEEPS[name][1])
    assert first.bitstream.startswith(magic)  # JPEG SOI marker / Annex-B start code, no container
    assert first.bitstream == second.bitstream
    np.testing.assert_array_equal(first.decoded, second.decoded)


@pytest.mark.parametrize(("name", "options", "pix_fmt"), [("hevc", {}, "yuv420p"),
                                                          ("hevc", {"bit_depth": 10}, "yuv420p10le"),
                                                          ("vvc", {}, "yuv420p10le")])
def test_video_stream_signals_format_range_and_matrix(tmp_path, name: str, options: dict,
                                                       pix_fmt: str) -> None:
    stream = tmp_path / f"coded.{name}"
    stream.write_bytes(get_codec(name, **options).encode(IMAGE, 32).bitstream)
    # FFmpeg prints the stream description, then fails for want of an output file.
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-f", name, "-i", str(stream)],
                           capture_output=True, text=True, check=False)
    assert f"{pix_fmt}(tv, bt709/bt709/iec61966-2-1)" in probe.stderr, probe.stderr
    assert "64x48" in probe.stderr


def test_hevc_first_nal_is_a_vps() -> None:
    # HEVC NAL header: type in bits 1..6 of the first byte; 32 = VPS, the raw stream's first unit.
    stream = get_codec("hevc").encode(IMAGE, 32).bitstream
    assert (stream[4] >> 1) & 0x3F == 32


def test_jpeg_444_is_a_larger_stream_than_420_on_a_colourful_image() -> None:
    image = make_image(48, 64, colourful=True)
    s420 = get_codec("jpeg").encode(image, 75)
    s444 = get_codec("jpeg", subsampling="4:4:4").encode(image, 75)
    assert s444.bitstream != s420.bitstream
    assert s444.nbytes > 1.2 * s420.nbytes, (s444.nbytes, s420.nbytes)
    assert psnr_db(image, s444.decoded) > psnr_db(image, s420.decoded) + 2  # measured +3.6 dB


@pytest.mark.parametrize(("name", "options", "param"), [("jpeg", {"subsampling": "4:4:4"}, 100),
                                                        ("hevc", {}, 0), ("hevc", {"bit_depth": 10}, 0),
                                                        ("vvc", {}, 0)])
def test_colour_round_trip_at_highest_quality(name: str, options: dict, param: int) -> None:
    # What remains is the 8/10-bit Y'CbCr rounding, the finest quantiser and (video) 4:2:0 of the
    # smooth chroma. Measured on this image: 50.5-53.1 dB, mean |error| 0.26-0.47, max 4-5 levels.
    # Tolerance: PSNR > 47 dB, mean |error| < 0.75 and max |error| <= 6 levels of 255.
    coded = get_codec(name, **options).encode(IMAGE, param)
    error = np.abs(coded.decoded.astype(int) - IMAGE.astype(int))
    assert psnr_db(IMAGE, coded.decoded) > 47
    assert error.mean() < 0.75
    assert error.max() <= 6


# --- the video colour path ----------------------------------------------------------------------


def test_rgb_to_yuv420_averages_chroma_over_2x2_blocks() -> None:
    rgb = torch.rand(2, 6, 8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y, cb, cr = rgb_to_yuv420(rgb)
    ycc = rgb_to_ycbcr(rgb, "bt709")
    assert y.shape == (2, 6, 8) and cb.shape == cr.shape == (2, 3, 4)
    torch.testing.assert_close(y, ycc[..., 0])
    torch.testing.assert_close(cb[1, 2, 3], ycc[1, 4:6, 6:8, 1].mean())
    torch.testing.assert_close(cr[0, 0, 0], ycc[0, 0:2, 0:2, 2].mean())


def test_yuv420_to_rgb_upsamples_chroma_bilinearly_at_the_centre() -> None:
    # Worked example: coarse chroma row [0, 1] -> fine row [0, 1/4, 3/4, 1] (3/4-1/4 weights,
    # edges replicated), identical to bilinear interpolation with align_corners=False.
    y = torch.full((2, 4), 0.5, dtype=torch.float64)
    cb = torch.tensor([[0.0, 0.4]], dtype=torch.float64)
    cr = torch.zeros_like(cb)
    rgb = yuv420_to_rgb(y, cb, cr)
    back = rgb_to_ycbcr(rgb, "bt709")
    expected_row = torch.tensor([0.0, 0.1, 0.3, 0.4], dtype=torch.float64)
    torch.testing.assert_close(back[..., 1], expected_row.expand(2, 4))
    torch.testing.assert_close(back[..., 0], y)
    reference = F.interpolate(cb[None, None], scale_factor=2, mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(back[..., 1], reference)


def test_colour_path_is_exact_where_chroma_is_constant() -> None:
    rgb = torch.rand(4, 6, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.5
    rgb = rgb + torch.tensor([0.3, 0.1, 0.2], dtype=torch.float64)  # grey variation + one hue
    torch.testing.assert_close(yuv420_to_rgb(*rgb_to_yuv420(rgb)), rgb)


def test_limited_range_levels() -> None:
    y, cb, cr = np.array([0.0, 1.0]), np.array([-0.5, 0.5]), np.array([0.0, 0.5])
    for bit_depth, expected in ((8, ([16, 235], [16, 240], [128, 240])),
                                (10, ([64, 940], [64, 960], [512, 960]))):
        codes = to_limited_range(y, cb, cr, bit_depth)
        for got, want in zip(codes, expected):
            np.testing.assert_allclose(got, want)
        for got, want in zip(from_limited_range(*codes, bit_depth), (y, cb, cr)):
            np.testing.assert_allclose(got, want, atol=1e-12)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "options", "names_in_message"), [
    ("webp", {}, ["'webp'", "jpeg, hevc, vvc"]),
    ("jpeg", {"quality": 50}, ["quality", "subsampling"]),
    ("hevc", {"preset": "fast"}, ["preset", "bit_depth"]),
    ("jpeg", {"subsampling": "4:1:1"}, ["4:1:1", "4:2:0", "4:4:4"]),
    ("hevc", {"bit_depth": 12}, ["12", "[8, 10]"]),
    ("hevc", {"bit_depth": 10.0}, ["10.0", "[8, 10]"]),
    ("vvc", {"preset": "ultrafast"}, ["ultrafast", "faster", "slower"]),
])
def test_bad_codec_or_option_names_the_choices(name: str, options: dict, names_in_message: list) -> None:
    with pytest.raises(InputError) as info:
        get_codec(name, **options)
    assert all(s in str(info.value) for s in names_in_message), str(info.value)


@pytest.mark.parametrize(("name", "param", "valid"), [("jpeg", 0, "1..100"), ("jpeg", 101, "1..100"),
                                                      ("hevc", 52, "0..51"), ("hevc", -1, "0..51"),
                                                      ("vvc", 64, "0..63"), ("jpeg", 50.5, "1..100"),
                                                      ("hevc", True, "0..51")])
def test_parameter_out_of_range_names_the_range(name: str, param: object, valid: str) -> None:
    codec = get_codec(name)
    with pytest.raises(InputError, match=codec.param_name) as info:
        codec.encode(IMAGE, param)
    assert valid in str(info.value)


@pytest.mark.parametrize("image", [IMAGE.astype(np.float32), IMAGE[..., 0], IMAGE[..., :2],
                                   np.zeros((0, 4, 3), np.uint8), IMAGE.tolist()])
def test_bad_image_is_rejected(image: object) -> None:
    with pytest.raises(InputError, match=r"\(H, W, 3\) uint8"):
        get_codec("jpeg").encode(image, 50)


def test_missing_ffmpeg_component_is_an_input_error() -> None:
    with pytest.raises(InputError, match="encoder 'libnosuchcodec'"):
        _require_ffmpeg("vvc", encoders="libnosuchcodec")


def test_ffmpeg_failure_quotes_its_stderr(tmp_path) -> None:
    missing = tmp_path / "missing.266"
    with pytest.raises(RuntimeError, match="No such file"):
        _run_ffmpeg(["-f", "vvc", "-i", str(missing), "-f", "null", "-"], what="decoding")
