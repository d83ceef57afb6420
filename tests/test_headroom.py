"""The headroom model: render weights of the DCT basis, coefficients, and the three coders' curves."""

from __future__ import annotations

import math

import pytest
import torch

from research.headroom import (PLANE_GAINS, anchor_curve, basis_weights, bd_rate_of, block_coefficients, jpeg_theta,
                          preprocessed_curve, qp_theta, weighted_curve)
from rrd.quadratic import QuadraticAccumulator
from rrd.rate.transform import dct_matrix
from rrd.sample import bilinear_taps


def random_form(T: int, H: int, W: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    acc = QuadraticAccumulator(T * H * W, W, 1)
    for _ in range(3):
        uv = torch.rand(2000, 2, generator=g, dtype=torch.float64)
        acc.add(bilinear_taps(uv, torch.randint(0, T, (2000,), generator=g), H, W),
                torch.rand(2000, 1, generator=g, dtype=torch.float64), torch.rand(2000, generator=g, dtype=torch.float64))
    return acc.form()


def test_basis_weights_are_the_quadratic_part_on_each_basis_function():
    T, H, W, n = 2, 16, 24, 8
    form = random_form(T, H, W)
    weights = basis_weights(form, (T, H, W), n)
    assert weights.shape == (T, H // n, W // n, n * n)
    d = dct_matrix(n, torch.float64)
    for t, i, j, u, v in [(0, 0, 0, 0, 0), (1, 1, 2, 3, 5), (0, 1, 1, 7, 7), (1, 0, 2, 0, 6)]:
        image = torch.zeros(T, H, W, dtype=torch.float64)
        image[t, i * n:(i + 1) * n, j * n:(j + 1) * n] = torch.outer(d[u], d[v])
        x = image.reshape(-1, 1)
        expected = float((x * form.half_gradient_of_quadratic(x)).sum())
        assert float(weights[t, i, j, u * n + v]) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_basis_weights_reject_partial_blocks():
    with pytest.raises(ValueError, match="8x8 blocks"):
        basis_weights(random_form(1, 12, 16), (1, 12, 16), 8)


def test_block_coefficients_of_a_flat_atlas_are_its_first_dc():
    tiles = torch.full((1, 16, 16, 3), 0.5, dtype=torch.float64)
    c = block_coefficients(tiles, 8)
    assert c.shape == (1, 2, 2, 64, 3)
    # JPEG's DC is 8 x the block mean; Y = 127.5, Cb = Cr = 0 in 8-bit units; later columns predict it exactly.
    torch.testing.assert_close(c[:, :, 0, 0, 0], torch.full((1, 2), 8 * 127.5, dtype=torch.float64))
    c[:, :, 0, 0, 0] = 0
    assert float(c.abs().max()) < 1e-9


def test_plane_gains_are_the_rgb_error_of_unit_ycbcr_errors():
    # JFIF inverse: R = Y + 1.402 Cr, G = Y - 0.344136 Cb - 0.714136 Cr, B = Y + 1.772 Cb.
    assert PLANE_GAINS == pytest.approx((3.0, 0.344136 ** 2 + 1.772 ** 2, 1.402 ** 2 + 0.714136 ** 2), rel=1e-4)


def test_jpeg_theta_is_the_table_step_noise():
    theta = jpeg_theta(50)
    assert theta.shape == (64, 3)
    assert float(theta[0, 0]) == pytest.approx(16 ** 2 / 12)  # luma DC step 16 at quality 50
    assert float(theta[0, 1]) == pytest.approx(17 ** 2 / 12)  # chroma DC step 17
    assert qp_theta(28) == pytest.approx(16 ** 2 / 6)  # Qstep 16 at QP 28


def laplacian_coefficients(blocks: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = 40.0 * torch.exp(-0.35 * torch.arange(64, dtype=torch.float64))[None, :, None]
    u = torch.rand(blocks, 64, 3, generator=g, dtype=torch.float64) - 0.5
    return scale * torch.sign(u) * -torch.log1p(-2 * u.abs())


THETAS = [qp_theta(q) for q in (22, 27, 32, 37, 42)]
LEVELS = [qp_theta(q) * 3 for q in range(10, 56, 2)]


def test_even_weights_leave_no_headroom():
    coeffs = laplacian_coefficients(500)
    weights = torch.ones(500, 64, dtype=torch.float64)
    base = anchor_curve(coeffs, weights, THETAS)
    samples = coeffs.shape[0] * 64
    assert abs(bd_rate_of(base, weighted_curve(coeffs, weights, LEVELS), samples)) < 1.0
    assert abs(bd_rate_of(base, preprocessed_curve(coeffs, weights, THETAS), samples)) < 1.0


def test_uneven_weights_give_headroom_and_preprocessing_gets_part_of_it():
    coeffs = laplacian_coefficients(500)
    g = torch.Generator().manual_seed(3)
    weights = torch.exp(1.0 * torch.randn(500, 64, generator=g, dtype=torch.float64))
    base = anchor_curve(coeffs, weights, THETAS)
    samples = coeffs.shape[0] * 64
    ideal = bd_rate_of(base, weighted_curve(coeffs, weights, LEVELS), samples)
    pre = bd_rate_of(base, preprocessed_curve(coeffs, weights, [qp_theta(q) for q in range(16, 49, 2)]), samples)
    assert ideal < pre < -1.0


def test_jpeg_anchor_skips_below_half_a_step():
    coeffs = torch.zeros(1, 64, 3, dtype=torch.float64)
    coeffs[0, 1, 0] = 10.9 / 2  # luma step at (0, 1) is 11 at quality 50: rounds to zero
    coeffs[0, 2, 0] = 10.0 / 2 + 0.1  # step 10: survives
    weights = torch.ones(1, 64, dtype=torch.float64)
    curve = anchor_curve(coeffs, weights, [jpeg_theta(50)], survive=3.0)
    assert curve.bits[0] == pytest.approx(0.5 * math.log2(5.1 ** 2 / (100 / 12)))
    assert curve.distortion[0] == pytest.approx(PLANE_GAINS[0] * (5.45 ** 2 + 100 / 12))
