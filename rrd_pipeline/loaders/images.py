"""Reading photos and texture tiles from disk.

Pixel values:
    8-bit PNG / JPEG / TIFF / BMP -> ``uint8`` (H, W, 3) RGB, values as stored.
    16-bit PNG / TIFF             -> ``float32`` (H, W, 3), ``value / 65535``.
    float TIFF                    -> ``float32`` (H, W, 3), values as stored.
    OpenEXR                       -> ``float32`` (H, W, 3), values as stored (no transfer curve is
                                     applied or removed here; AliceVision writes EXR textures and
                                     PrepareDenseScene images as linear light, see :func:`load_photos`).
Grey images are repeated to three channels; alpha is dropped. EXIF orientation is ignored, as COLMAP
and AliceVision ignore it when they calibrate (the stored pixel grid is the one the cameras describe).
Image conventions (row 0 at the top, pixel centres at +0.5) are those of :mod:`rrd.scene`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from rrd.errors import InputError
from rrd.scene import Atlas, Camera
from rrd_pipeline.writers import to_uint8

__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "read_image", "read_atlas", "resize_image", "srgb_encode",
           "load_photos"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".exr")
"""File name endings (lower case) that :func:`read_image` reads and :func:`load_photos` lists."""

# Photos with tens of megapixels are normal; Pillow's decompression-bomb guard would reject them.
Image.MAX_IMAGE_PIXELS = None

MAX_PIXELS = 1 << 30
"""Largest image :func:`read_image` decodes (a 32768 x 32768 page, 3 GiB as 8-bit RGB): Pillow allocates
the whole image from the header's size before decoding, so a damaged header claiming 10^5 x 10^5 pixels
would exhaust memory instead of being refused."""


def _read_exr(path: Path) -> np.ndarray:
    import OpenEXR  # imported here: only EXR users pay for the module

    try:
        with OpenEXR.File(str(path), separate_channels=True) as exr:
            channels = {name: part.pixels for name, part in exr.channels().items()}
    except Exception as err:  # OpenEXR raises bare RuntimeError/OSError with its own text
        raise InputError(f"{path}: cannot read the OpenEXR file ({err})") from None
    if all(c in channels for c in "RGB"):
        planes = [channels[c] for c in "RGB"]
    elif "Y" in channels:
        planes = [channels["Y"]] * 3
    else:
        raise InputError(f"{path}: OpenEXR file has channels {sorted(channels)}, expected R, G, B or Y")
    return np.stack(planes, axis=-1).astype(np.float32)


def _rawmode(img: Image.Image) -> str:
    """The pixel layout Pillow decodes from (e.g. ``RGB;16B`` for a 16-bit PNG), or ''."""
    if not img.tile:
        return ""
    args = img.tile[0].args
    return args if isinstance(args, str) else str(args[0]) if args else ""


def _read_rgb16(path: Path, width: int, height: int) -> np.ndarray:
    """Decode a 16-bit colour PNG/TIFF with FFmpeg: Pillow keeps only the high byte of such files."""
    import subprocess

    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo",
           "-pix_fmt", "rgb48le", "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    expected_nbytes = width * height * 6
    if proc.returncode != 0 or len(proc.stdout) != expected_nbytes:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(f"{path}: cannot decode the 16-bit image ({detail[-1] if detail else 'short output'})")
    arr = np.frombuffer(proc.stdout, dtype="<u2").reshape(height, width, 3)
    return arr.astype(np.float32) / 65535.0


def read_image(path: str | Path) -> np.ndarray:
    """Read a photo or texture tile.

    Args:
        path: an image file (see :data:`IMAGE_SUFFIXES`).
    Returns:
        (H, W, 3) ``uint8`` for 8-bit files; ``float32`` for 16-bit files (divided by 65535), float
        TIFF and OpenEXR (values as stored). Row 0 is the top of the image.
    Raises:
        InputError: the file is missing or cannot be decoded, or has more than :data:`MAX_PIXELS` pixels.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: image file not found")
    if path.suffix.lower() == ".exr":
        return _read_exr(path)
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise InputError(f"{path}: the image claims {img.width}x{img.height} pixels; rrd reads at most "
                                 f"{MAX_PIXELS} (32768 x 32768)")
            if img.mode in ("RGB", "RGBA") and ";16" in _rawmode(img):
                return _read_rgb16(path, img.width, img.height)
            img.load()
            if img.mode.startswith("I"):
                # 16-bit grey PNG/TIFF open as integer modes; their full scale is 65535.
                grey = np.asarray(img, dtype=np.float32) / 65535.0
            elif img.mode == "F":
                grey = np.asarray(img, dtype=np.float32)
            else:
                return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
            return np.repeat(grey[..., None], 3, axis=-1)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{path}: cannot decode the image ({err})") from None
    except MemoryError:
        raise InputError(f"{path}: the image is too large to decode in this machine's memory") from None


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resample an image to ``width`` x ``height`` pixels with a Lanczos filter (antialiased).

    The image corners map onto the new corners, which is the resampling :meth:`rrd.scene.Camera.scaled`
    assumes (a continuous pixel coordinate x becomes ``x * width / old_width``).

    Args:
        image: (H, W, 3) ``uint8`` or ``float32``.
    Returns:
        (height, width, 3) array of the same dtype (``uint8`` results are rounded and clipped).
    """
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    if image.dtype == np.uint8:
        return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))
    # Pillow resizes float images one 32-bit channel at a time.
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32))
                         .resize((width, height), Image.Resampling.LANCZOS)) for c in range(image.shape[2])]
    return np.stack(planes, axis=-1)


def read_atlas(paths: Sequence[str | Path], udims: Sequence[int] | None = None) -> Atlas:
    """Read texture tiles into an :class:`rrd.scene.Atlas`.

    Args:
        paths: one image file per tile.
        udims: the tiles' UDIM numbers, ascending and one per path; default ``1001, 1002, ...``.
    Returns:
        Atlas with ``tiles`` (T, H, W, 3) ``float32``: 8-bit files divided by 255 (so
        ``round(255 x)`` restores them exactly), 16-bit files by 65535, float files as stored;
        ``names`` are the files' base names.
    Raises:
        InputError: a file is missing or unreadable, or ``udims`` does not match ``paths``. Pages may
            differ in size (:class:`rrd.scene.Atlas` keeps each at its own).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("read_atlas: no texture files given")
    udims = tuple(range(1001, 1001 + len(paths))) if udims is None else tuple(int(u) for u in udims)
    if len(udims) != len(paths):
        raise InputError(f"read_atlas: {len(paths)} texture files but {len(udims)} UDIM numbers")
    if list(udims) != sorted(set(udims)):
        raise InputError(f"read_atlas: UDIM numbers {list(udims)} are not strictly ascending")
    tiles = []
    for path in paths:
        img = read_image(path)
        tiles.append(img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32))
    return Atlas.from_pages(tiles, udims, tuple(p.name for p in paths))


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values in [0, 1] (IEC 61966-2-1 transfer curve).

    Args:
        linear: any shape, float; values are clipped to [0, 1] first.
    Returns:
        float32 array of the same shape; e.g. 0.0031308 -> 0.04045, 0.5 -> 0.7354, 1 -> 1.
    """
    x = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    encoded = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return encoded.astype(np.float32)


def load_photos(cameras: Sequence[Camera], images_dir: str | Path, scale: float = 1.0,
                exr_is_linear: bool = True) -> tuple[list[Camera], list[np.ndarray]]:
    """Load the photo of every camera and optionally downscale photos and cameras together.

    Camera ``name`` is the photo's path relative to ``images_dir`` (COLMAP image names, AliceVision
    view file names). Every camera needs a photo and every image file in ``images_dir`` (top level)
    needs a camera.

    Args:
        cameras: the source cameras; their ``width``/``height`` must equal the photos' sizes.
        images_dir: the folder holding the photos.
        scale: resize factor in (0, 1]; photos are resampled with :func:`resize_image` to
            ``Camera.scaled(scale)``'s size and the cameras replaced by the scaled ones.
        exr_is_linear: OpenEXR photos hold linear light (AliceVision's PrepareDenseScene reads the
            photos as linear and writes them so); encode them with :func:`srgb_encode` so they match
            8-bit photos and textures. False: quantise them as stored.
    Returns:
        (cameras, photos): the (possibly scaled) cameras and one (height, width, 3) ``uint8`` photo
        each, in the order of ``cameras``. Float photos (16-bit, EXR) become ``round(255 x)``.
    Raises:
        InputError: the folder is missing, photos and cameras do not pair up (the message names the
            unpaired ones), a photo's size differs from its camera's, or ``scale`` is out of range.
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise InputError(f"{images_dir}: images folder not found")
    if not 0.0 < scale <= 1.0:
        raise InputError(f"photo scale {scale} is out of range; expected 0 < scale <= 1")
    no_photo = [c.name for c in cameras if not (images_dir / c.name).is_file()]
    named = {Path(c.name).as_posix() for c in cameras}
    no_camera = sorted(p.name for p in images_dir.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and p.name not in named)
    if no_photo or no_camera:
        parts = []
        if no_photo:
            parts.append(f"cameras without a photo: {', '.join(no_photo)}")
        if no_camera:
            parts.append(f"photos without a camera: {', '.join(no_camera)}")
        raise InputError(f"{images_dir}: {len(cameras)} cameras do not pair up with the photos; "
                         + "; ".join(parts))
    out_cameras, photos = [], []
    for cam in cameras:
        path = images_dir / cam.name
        photo = read_image(path)
        if exr_is_linear and path.suffix.lower() == ".exr":
            photo = srgb_encode(photo)
        photo = to_uint8(photo)
        if photo.shape[:2] != (cam.height, cam.width):
            raise InputError(f"{path}: photo is {photo.shape[1]}x{photo.shape[0]} but its camera is "
                             f"{cam.width}x{cam.height}")
        if scale != 1.0:
            cam = cam.scaled(scale)
            photo = resize_image(photo, cam.width, cam.height)
        out_cameras.append(cam)
        photos.append(photo)
    return out_cameras, photos
