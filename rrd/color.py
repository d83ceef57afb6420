"""Colour transforms shared by the codecs, the rate models and the YUV metrics.

All transforms are full-range ("pc") Y'CbCr on gamma-encoded values in [0, 1]: ``Y`` in [0, 1],
``Cb``, ``Cr`` in [-0.5, 0.5]. Full range keeps the 8-bit round trip of the codec paths close to
lossless at high quality; the codec modules state where they differ (e.g. limited-range video).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from rrd.errors import InputError

__all__ = ["MATRICES", "VIDEO_MATRIX", "from_limited_range", "rgb_to_ycbcr", "rgb_to_yuv420", "to_limited_range",
           "ycbcr_to_rgb", "yuv420_to_rgb"]

# (Kr, Kb) luma coefficients of each standard.
MATRICES: dict[str, tuple[float, float]] = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
VIDEO_MATRIX = "bt709"
"""Matrix of the HEVC/VVC colour path (the JPEG path uses libjpeg's own BT.601 transform)."""

_Plane = TypeVar("_Plane", np.ndarray, torch.Tensor)


def _forward(matrix: str) -> torch.Tensor:
    if matrix not in MATRICES:
        raise ValueError(f"unknown colour matrix {matrix!r}; choose one of {sorted(MATRICES)}")
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    return torch.tensor([
        [kr, kg, kb],
        [-0.5 * kr / (1 - kb), -0.5 * kg / (1 - kb), 0.5],
        [0.5, -0.5 * kg / (1 - kr), -0.5 * kb / (1 - kr)],
    ], dtype=torch.float64)


def rgb_to_ycbcr(rgb: torch.Tensor, matrix: str = "bt709") -> torch.Tensor:
    """RGB to full-range Y'CbCr.

    Args:
        rgb: (*, 3) values in [0, 1] (channels last).
        matrix: "bt709" (HEVC/VVC paths, MPEG metrics) or "bt601" (JPEG/JFIF).
    Returns:
        (*, 3) tensor (Y in [0, 1], Cb and Cr in [-0.5, 0.5]), same dtype as ``rgb``.
    """
    m = _forward(matrix).to(rgb)
    return rgb @ m.T


def ycbcr_to_rgb(ycc: torch.Tensor, matrix: str = "bt709") -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (no clamping). ``ycc``: (*, 3) channels last."""
    m = torch.linalg.inv(_forward(matrix)).to(ycc)
    return ycc @ m.T


# The HEVC/VVC colour path (differentiable; the FFmpeg codec runners and the tests of the video rate models
# call the same functions, see rrd_pipeline.codecs.ffmpeg).


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
    ycc = rgb_to_ycbcr(rgb, VIDEO_MATRIX)
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
    return ycbcr_to_rgb(torch.cat([y[..., None], chroma], dim=-1), VIDEO_MATRIX)


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
