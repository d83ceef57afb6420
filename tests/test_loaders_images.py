"""Image and atlas reading: bit depths, EXR, errors, photo pairing and resizing."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rrd.errors import InputError
from rrd.scene import Camera
from rrd_pipeline.loaders.images import load_photos, read_atlas, read_image, resize_image


def _png16(path: Path, rgb16: np.ndarray) -> Path:
    """Write a 16-bit RGB PNG by hand (zlib + chunks), independent of the reader under test."""
    height, width, _ = rgb16.shape
    rows = rgb16.astype(">u2")
    raw = b"".join(b"\x00" + rows[i].tobytes() for i in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def _exr(path: Path, rgb: np.ndarray) -> Path:
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    channels = {c: np.ascontiguousarray(rgb[..., i]) for i, c in enumerate("RGB")}
    with OpenEXR.File(header, channels) as exr:
        exr.write(str(path))
    return path


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_8bit_lossless_formats_round_trip(tmp_path, suffix):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / f"a{suffix}")
    out = read_image(tmp_path / f"a{suffix}")
    assert out.dtype == np.uint8 and np.array_equal(out, rgb)


def test_jpeg_grey_and_alpha_become_rgb_uint8(tmp_path):
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tmp_path / "a.jpg", quality=95)
    assert np.abs(read_image(tmp_path / "a.jpg").astype(int) - 90).max() <= 2
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(tmp_path / "g.png")
    grey = read_image(tmp_path / "g.png")
    assert grey.shape == (3, 4, 3) and np.array_equal(grey[..., 1], np.arange(12).reshape(3, 4))
    Image.fromarray(np.full((2, 2, 4), 7, np.uint8)).save(tmp_path / "rgba.png")
    assert read_image(tmp_path / "rgba.png").shape == (2, 2, 3)


def test_16bit_png_keeps_its_precision(tmp_path):
    rgb16 = np.random.default_rng(1).integers(0, 65536, (4, 6, 3)).astype(np.uint16)
    out = read_image(_png16(tmp_path / "deep.png", rgb16))
    assert out.dtype == np.float32
    assert np.allclose(out * 65535.0, rgb16, atol=1e-2)
    Image.fromarray(rgb16[..., 0]).save(tmp_path / "grey16.png")  # Pillow writes mode I;16 as 16-bit grey
    grey = read_image(tmp_path / "grey16.png")
    assert grey.dtype == np.float32 and np.allclose(grey[..., 2] * 65535.0, rgb16[..., 0], atol=1e-2)


def test_exr_is_float_and_unchanged(tmp_path):
    rgb = np.random.default_rng(2).random((3, 5, 3)).astype(np.float32) * 1.5
    out = read_image(_exr(tmp_path / "a.exr", rgb))
    assert out.dtype == np.float32 and np.array_equal(out, rgb)


def test_missing_and_corrupt_images(tmp_path):
    with pytest.raises(InputError, match=r"nope\.png: image file not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(InputError, match=r"bad\.png: cannot decode the image"):
        read_image(tmp_path / "bad.png")
    (tmp_path / "bad.exr").write_bytes(b"not an exr")
    with pytest.raises(InputError, match=r"bad\.exr: cannot read the OpenEXR file"):
        read_image(tmp_path / "bad.exr")


def test_read_atlas(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    Image.fromarray(rgb[0]).save(tmp_path / "texture_1001.png")
    Image.fromarray(rgb[1]).save(tmp_path / "texture_1002.png")
    atlas = read_atlas([tmp_path / "texture_1001.png", tmp_path / "texture_1002.png"], [1001, 1002])
    assert atlas.tiles.dtype == np.float32 and atlas.udims == (1001, 1002)
    assert atlas.names == ("texture_1001.png", "texture_1002.png")
    assert np.array_equal(np.rint(atlas.tiles * 255).astype(np.uint8), rgb)
    Image.fromarray(rgb[0, :2]).save(tmp_path / "small.png")
    pages = read_atlas([tmp_path / "texture_1001.png", tmp_path / "small.png"])  # pages of their own sizes
    assert pages.sizes == ((4, 4), (2, 4)) and np.array_equal(np.rint(pages.page(1) * 255).astype(np.uint8), rgb[0, :2])
    with pytest.raises(InputError, match="2 texture files but 1 UDIM numbers"):
        read_atlas([tmp_path / "texture_1001.png", tmp_path / "texture_1002.png"], [1001])


def test_resize_image_preserves_flat_colour_and_size():
    flat = np.full((40, 60, 3), 123, np.uint8)
    out = resize_image(flat, 15, 10)
    assert out.shape == (10, 15, 3) and out.dtype == np.uint8 and np.all(out == 123)
    ramp = np.broadcast_to(np.linspace(0, 1, 60, dtype=np.float32)[None, :, None], (40, 60, 3))
    half = resize_image(np.ascontiguousarray(ramp), 30, 20)
    # Corner-aligned resampling: new pixel j covers old pixels 2j, 2j+1, whose mean ramp value it keeps.
    assert half.dtype == np.float32 and np.allclose(half[5, 10:20, 0], ramp[0, 20:40:2, 0] + 0.5 / 59, atol=1e-3)


def test_load_photos_converts_float_photos_and_scales(tmp_path):
    K = np.array([[40.0, 0, 16], [0, 40, 12], [0, 0, 1]])
    cam = Camera(K, np.eye(3), np.zeros(3), 32, 24, "deep.png")
    _png16(tmp_path / "deep.png", np.full((24, 32, 3), 40000, np.uint16))  # round(255 * 40000 / 65535) = 156
    cams, photos = load_photos([cam], tmp_path, scale=0.5)
    assert photos[0].dtype == np.uint8 and photos[0].shape == (12, 16, 3) and np.all(photos[0] == 156)
    assert np.allclose(cams[0].K, [[20, 0, 8], [0, 20, 6], [0, 0, 1]])
    with pytest.raises(InputError, match="photo scale 1.5 is out of range"):
        load_photos([cam], tmp_path, scale=1.5)
    with pytest.raises(InputError, match="images folder not found"):
        load_photos([cam], tmp_path / "nowhere")
