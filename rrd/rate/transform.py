"""Block transforms and edge padding shared by the rate models (torch, differentiable).

Layout convention: a plane is a ``(..., H, W)`` tensor; the ``n x n`` block in block row ``i`` and
block column ``j`` covers rows ``n*i .. n*i + n - 1`` and columns ``n*j .. n*j + n - 1``. Block
coefficients keep the plane's interleaved layout ``(..., H/n, n, W/n, n)`` = ``(i, u, j, v)``, where
``u`` is the vertical and ``v`` the horizontal frequency (``u = v = 0`` is the DC coefficient), so
no permutation of the plane is needed: the transform is two matrix products.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

__all__ = ["block_dct", "block_idct", "color_planes", "color_planes_grad", "dct_matrix", "pad_edge", "pad_edge_grad"]


@functools.lru_cache(maxsize=None)
def _dct_matrix_f64(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)
    basis = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2.0 / n)
    basis[0] /= math.sqrt(2.0)
    return basis


def dct_matrix(n: int, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D`` of size ``n``: ``coefficients = D @ samples``.

    ``D[u, x] = c(u) sqrt(2/n) cos(pi (2x + 1) u / (2n))`` with ``c(0) = 1/sqrt(2)``, else 1; ``D`` is
    orthogonal, so ``D.T`` is the inverse. For ``n = 8`` the 2-D transform ``D X D^T`` is exactly
    JPEG's FDCT (ITU-T T.81 A.3.3): the DC coefficient of a block is 8 x its mean.
    """
    return _dct_matrix_f64(n).to(dtype=dtype, device=device)


def block_dct(plane: torch.Tensor, n: int) -> torch.Tensor:
    """2-D orthonormal DCT-II of every ``n x n`` block of a plane.

    Args:
        plane: (..., H, W) floating tensor, H and W multiples of ``n``.
        n: block size.
    Returns:
        (..., H/n, n, W/n, n) coefficients in the layout ``(i, u, j, v)`` of the module docstring,
        same dtype and device; differentiable.
    """
    *lead, height, width = plane.shape
    d = dct_matrix(n, plane.dtype, plane.device)
    blocks = plane.reshape(*lead, height // n, n, width // n, n)
    # Vertical transform on the u axis (a matmul over the rows of each block row) ...
    rows = d @ blocks.reshape(*lead, height // n, n, width)
    # ... then the horizontal one on the v axis.
    return rows.reshape(*lead, height // n, n, width // n, n) @ d.T


def block_idct(coefficients: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`block_dct` (also its adjoint: the transform is orthonormal).

    Args:
        coefficients: (..., H/n, n, W/n, n) in the layout ``(i, u, j, v)``.
    Returns:
        (..., H, W) plane, same dtype and device.
    """
    *lead, rows, n, cols, _ = coefficients.shape
    d = dct_matrix(n, coefficients.dtype, coefficients.device)
    horizontal = (coefficients @ d).reshape(*lead, rows, n, cols * n)
    return (d.T @ horizontal).reshape(*lead, rows * n, cols * n)


def color_planes(rgb: torch.Tensor, matrix: tuple[tuple[float, float, float], ...],
                 offset: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> torch.Tensor:
    """Channels-last RGB to three channels-first planes: ``plane_k = sum_c matrix[k][c] rgb_c + offset[k]``.

    Args:
        rgb: (H, W, 3) floating tensor.
        matrix: 3 x 3 Python floats (rows = output planes); offset: 3 Python floats.
    Returns:
        (3, H, W) contiguous tensor, same dtype/device; differentiable. (One (3, 3) x (3, H W) product
        writes the planes out channels-first in a single pass; three weighted sums of strided channels
        and a stack take 2.5 times as long on the CPU.)
    """
    m = torch.tensor(matrix, dtype=rgb.dtype, device=rgb.device)
    bias = torch.tensor(offset, dtype=rgb.dtype, device=rgb.device)[:, None]
    return torch.addmm(bias, m, rgb.reshape(-1, 3).T).reshape(3, *rgb.shape[:-1])


def color_planes_grad(planes_grad: torch.Tensor, matrix: tuple[tuple[float, float, float], ...]) -> torch.Tensor:
    """Adjoint of :func:`color_planes`: (3, H, W) gradient of the planes -> (H, W, 3) gradient of the RGB."""
    m = torch.tensor(matrix, dtype=planes_grad.dtype, device=planes_grad.device)
    return (m.T @ planes_grad.reshape(3, -1)).T.reshape(*planes_grad.shape[1:], 3)


def pad_edge(image: torch.Tensor, multiple: int, extra_rows: int = 0) -> torch.Tensor:
    """Replicate the last column (and row) of a channels-first image up to a multiple of a size.

    Args:
        image: (C, H, W) or (N, C, H, W) floating tensor.
        multiple: W is padded up to a multiple of this.
        extra_rows: rows appended at the bottom (copies of the last row), chosen by the caller.
    Returns:
        (..., C, H + extra_rows, W') with ``W' = ceil(W / multiple) * multiple``; ``image`` itself
        when nothing is padded.
    """
    pad_w = -image.shape[-1] % multiple
    if not pad_w and not extra_rows:
        return image
    return F.pad(image, (0, pad_w, 0, extra_rows), mode="replicate")


def pad_edge_grad(grad: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Adjoint of :func:`pad_edge`: fold the gradient of the replicated rows and columns onto the last ones.

    Args:
        grad: (..., H', W') gradient of the padded image.
        height, width: the size before padding (``<= H', W'``).
    Returns:
        (..., height, width) gradient of the image (a view of ``grad`` when nothing was padded).
    """
    if grad.shape[-1] > width:
        folded = grad[..., :width].clone()
        folded[..., width - 1] += grad[..., width:].sum(dim=-1)
        grad = folded
    if grad.shape[-2] > height:
        folded = grad[..., :height, :].clone()
        folded[..., height - 1, :] += grad[..., height:, :].sum(dim=-2)
        grad = folded
    return grad
