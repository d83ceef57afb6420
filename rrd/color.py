"""Colour transforms shared by the codecs, the rate models and the YUV metrics.

All transforms are full-range ("pc") Y'CbCr on gamma-encoded values in [0, 1]: ``Y`` in [0, 1],
``Cb``, ``Cr`` in [-0.5, 0.5]. Full range keeps the 8-bit round trip of the codec paths close to
lossless at high quality; the codec modules state where they differ (e.g. limited-range video).
"""

from __future__ import annotations

import torch

__all__ = ["MATRICES", "rgb_to_ycbcr", "ycbcr_to_rgb"]

# (Kr, Kb) luma coefficients of each standard.
MATRICES: dict[str, tuple[float, float]] = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


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
