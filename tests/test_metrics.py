"""Tests for rrd.metrics: masked MSE/PSNR, MPEG YUV PSNR, BD-rate and BD-PSNR."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from rrd.errors import InputError
from rrd.metrics import BDRateUndefined, bd_psnr, bd_rate, mean_psnr, mse, psnr, psnr_yuv

# JCTVC-E137 data as used in Netflix vmaf's BD-rate test (REFERENCE.md §2), (rate, PSNR dB).
CURVE_A = [(108048.8736, 43.6471), (61279.976, 40.3953), (33905.6656, 37.247), (18883.6928, 34.2911)]
CURVE_B = [(108061.2784, 43.6768), (61299.9936, 40.4232), (33928.7472, 37.2761), (18910.912, 34.3147)]
RATE_A, PSNR_A = (list(v) for v in zip(*CURVE_A))
RATE_B, PSNR_B = (list(v) for v in zip(*CURVE_B))
# vmaf states -0.00465215420752807 as a fraction; REFERENCE.md gives -0.464415 % for VCEG-M33.
BD_RATE_B_VS_A = {"pchip": -0.465215420752807, "cubic": -0.464415}


@pytest.fixture
def bjontegaard():
    return pytest.importorskip("bjontegaard", reason="the bjontegaard package is the second reference")


def _random_curve(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A concave, increasing PSNR(log rate) sweep like a codec's, points shuffled."""
    log_rate = np.sort(rng.uniform(3.0, 6.0, n))
    psnr_db = 20.0 + rng.uniform(2.0, 4.0) * 3.0 * np.log1p(log_rate - 2.5) + rng.uniform(0, 0.01, n).cumsum()
    order = rng.permutation(n)
    return 10.0 ** log_rate[order], psnr_db[order]


# ---------------------------------------------------------------------------------------------
# mse / psnr
# ---------------------------------------------------------------------------------------------

def test_psnr_of_a_uniform_error_is_analytic():
    a = np.zeros((4, 5, 3))
    b = np.full((4, 5, 3), 0.1)
    assert mse(a, b) == pytest.approx(0.01, rel=1e-12)
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-9)
    assert psnr(a, b, peak=255.0) == pytest.approx(20.0 + 20.0 * math.log10(255.0), abs=1e-9)


def test_identical_images_have_infinite_psnr():
    a = np.random.default_rng(0).random((6, 7, 3))
    assert mse(a, a) == 0.0
    assert psnr(a, a) == math.inf
    assert psnr_yuv(a, a) == {"y": math.inf, "u": math.inf, "v": math.inf, "yuv": math.inf}


def test_numpy_and_torch_inputs_agree_in_float64():
    rng = np.random.default_rng(1)
    a = rng.random((8, 9, 3)).astype(np.float32)
    b = rng.random((8, 9, 3)).astype(np.float32)
    mask = rng.random((8, 9)) > 0.5
    expected = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2)[mask].mean())
    got_np = mse(a, b, mask)
    got_torch = mse(torch.from_numpy(a).requires_grad_(), torch.from_numpy(b), torch.from_numpy(mask))
    assert got_np == pytest.approx(expected, rel=1e-12)
    assert got_torch == pytest.approx(expected, rel=1e-12)
    assert isinstance(got_torch, float)


def test_mask_ignores_pixels_outside_it():
    rng = np.random.default_rng(2)
    a = rng.random((10, 10, 3))
    b = a.copy()
    b[:5] += 0.05  # error only in the top half
    b[5:] = rng.random((5, 10, 3))  # garbage in the bottom half, masked out
    mask = np.zeros((10, 10), dtype=bool)
    mask[:5] = True
    assert mse(a, b, mask) == pytest.approx(0.0025, rel=1e-9)
    assert psnr(a, b, mask) == pytest.approx(-10.0 * math.log10(0.0025), abs=1e-9)
    assert psnr(a, b) < psnr(a, b, mask)


def _shape_pattern(shape: tuple[int, ...]) -> str:
    return r"\(" + r", ".join(str(s) for s in shape) + r"\)"


@pytest.mark.parametrize("b_shape", [(4, 5, 3), (5, 4, 3), (4, 4, 1)])
def test_shape_mismatch_names_both_shapes(b_shape):
    with pytest.raises(InputError, match=rf"\(4, 4, 3\).*{_shape_pattern(b_shape)}"):
        mse(np.zeros((4, 4, 3)), np.zeros(b_shape))


@pytest.mark.parametrize(("mask", "match"), [
    (np.zeros((4, 4), dtype=bool), "no pixel"),
    (np.ones((4, 5), dtype=bool), r"mask shape \(4, 5\)"),
    (np.ones((4, 4), dtype=np.uint8), "not bool"),
])
def test_bad_masks_raise(mask, match):
    with pytest.raises(InputError, match=match):
        psnr(np.zeros((4, 4, 3)), np.ones((4, 4, 3)), mask)


def test_read_only_arrays_are_accepted_without_warnings():
    a = np.zeros((4, 4, 3))
    b = np.full((4, 4, 3), 0.1)
    mask = np.ones((4, 4), dtype=bool)
    for array in (a, b, mask):
        array.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert psnr(a, b, mask) == pytest.approx(20.0, abs=1e-9)


def test_integer_images_are_rejected():
    with pytest.raises(InputError, match="uint8.*255"):
        psnr(np.zeros((4, 4, 3), dtype=np.uint8), np.zeros((4, 4, 3)))


def test_psnr_rejects_a_nonpositive_peak():
    with pytest.raises(InputError, match="peak"):
        psnr(np.zeros((2, 2, 3)), np.ones((2, 2, 3)), peak=0.0)


# ---------------------------------------------------------------------------------------------
# psnr_yuv
# ---------------------------------------------------------------------------------------------

def _bt709_full_range(rgb: np.ndarray) -> np.ndarray:
    # Written out from the BT.709 luma coefficients, independently of rrd.color.
    kr, kb = 0.2126, 0.0722
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = kr * r + (1 - kr - kb) * g + kb * b
    return np.stack([y, (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))], axis=-1)


def test_psnr_yuv_matches_an_independent_bt709_reference():
    rng = np.random.default_rng(3)
    a = rng.random((12, 10, 3))
    b = np.clip(a + rng.normal(0, 0.03, a.shape), 0, 1)
    mask = rng.random((12, 10)) > 0.3
    err = ((_bt709_full_range(a) - _bt709_full_range(b)) ** 2)[mask].mean(axis=0)
    got = psnr_yuv(torch.from_numpy(a).float(), b, torch.from_numpy(mask))
    expected_yuv = 10 * math.log10(8 / (6 * err[0] + err[1] + err[2]))
    assert got["y"] == pytest.approx(10 * math.log10(1 / err[0]), abs=1e-5)  # a went through float32
    assert got["u"] == pytest.approx(10 * math.log10(1 / err[1]), abs=1e-5)
    assert got["v"] == pytest.approx(10 * math.log10(1 / err[2]), abs=1e-5)
    assert got["yuv"] == pytest.approx(expected_yuv, abs=1e-5)


def test_psnr_yuv_of_a_grey_shift_is_luma_only():
    a = np.full((4, 4, 3), 0.4)
    b = a + 0.1  # equal shift of R, G, B: Y moves by 0.1, Cb and Cr do not move
    got = psnr_yuv(a, b)
    assert got["y"] == pytest.approx(20.0, abs=1e-9)
    assert got["u"] > 250 and got["v"] > 250  # zero up to float64 rounding of the matrix
    assert got["yuv"] == pytest.approx(10 * math.log10(8 / (6 * 0.01)), abs=1e-9)


def test_psnr_yuv_needs_three_channels():
    with pytest.raises(InputError, match=r"\(3, 3, 4\)"):
        psnr_yuv(np.zeros((3, 3, 4)), np.zeros((3, 3, 4)))


def test_mean_psnr_averages_decibels_not_mse():
    assert mean_psnr([30.0, 40.0]) == pytest.approx(35.0)
    assert mean_psnr([30.0, math.inf]) == math.inf
    with pytest.raises(InputError, match="no per-view"):
        mean_psnr([])


# ---------------------------------------------------------------------------------------------
# BD-rate / BD-PSNR
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_reference_vector(method, bjontegaard):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reference curves overlap well: no warning
        got = bd_rate(RATE_A, PSNR_A, RATE_B, PSNR_B, method=method)
    assert abs(got - BD_RATE_B_VS_A[method]) < 1e-6
    assert abs(got - bjontegaard.bd_rate(RATE_A, PSNR_A, RATE_B, PSNR_B, method=method)) < 1e-9


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_psnr_reference_vector_matches_the_package(method, bjontegaard):
    got = bd_psnr(RATE_A, PSNR_A, RATE_B, PSNR_B, method=method)
    assert got > 0  # B has the higher PSNR at nearly the same rate
    assert abs(got - bjontegaard.bd_psnr(RATE_A, PSNR_A, RATE_B, PSNR_B, method=method)) < 1e-9


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_random_curves_match_the_package(seed, method, bjontegaard):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 7))
    rate_a, psnr_a = _random_curve(rng, n)
    rate_t, psnr_t = _random_curve(rng, n)
    # The package needs points ordered along the interpolation axis; ours accepts any order.
    by_rate_a, by_rate_t = np.argsort(rate_a), np.argsort(rate_t)
    ref_args = (rate_a[by_rate_a], psnr_a[by_rate_a], rate_t[by_rate_t], psnr_t[by_rate_t])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the two overlap rules differ; the values do not
        ref_rate = bjontegaard.bd_rate(*ref_args, method=method, min_overlap=0)
        ref_psnr = bjontegaard.bd_psnr(*ref_args, method=method, min_overlap=0)
        got_rate = bd_rate(rate_a, psnr_a, rate_t, psnr_t, method=method)
        got_psnr = bd_psnr(rate_a, psnr_a, rate_t, psnr_t, method=method)
    assert got_rate == pytest.approx(ref_rate, rel=1e-9, abs=1e-9)
    assert got_psnr == pytest.approx(ref_psnr, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_of_a_curve_against_itself_is_zero(method):
    assert bd_rate(RATE_A, PSNR_A, RATE_A, PSNR_A, method=method) == pytest.approx(0.0, abs=1e-10)
    assert bd_psnr(RATE_A, PSNR_A, RATE_A, PSNR_A, method=method) == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_half_the_rate_is_minus_fifty_percent(method):
    half = [r / 2 for r in RATE_A]
    assert bd_rate(RATE_A, PSNR_A, half, PSNR_A, method=method) == pytest.approx(-50.0, abs=1e-9)
    assert bd_rate(half, PSNR_A, RATE_A, PSNR_A, method=method) == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_psnr_of_a_constant_shift(method):
    better = [p + 0.5 for p in PSNR_A]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same rates: full overlap on the rate axis
        assert bd_psnr(RATE_A, PSNR_A, RATE_A, better, method=method) == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_point_order_does_not_matter(method):
    order = [2, 0, 3, 1]
    shuffled = bd_rate([RATE_A[i] for i in order], [PSNR_A[i] for i in order],
                       RATE_B[::-1], PSNR_B[::-1], method=method)
    assert shuffled == pytest.approx(bd_rate(RATE_A, PSNR_A, RATE_B, PSNR_B, method=method), abs=1e-12)


def test_low_overlap_warns_and_names_the_curve():
    rate = [1e3, 2e3, 4e3, 8e3]
    with pytest.warns(UserWarning, match="test curve's PSNR") as record:
        bd_rate(rate, [30.0, 33.0, 36.0, 40.0], rate, [31.0, 36.0, 42.0, 50.0])
    messages = [str(w.message) for w in record]
    assert not any("anchor curve" in m for m in messages)  # 9 dB of the anchor's 10 dB is covered


@pytest.mark.parametrize(("method", "curve", "reason"), [
    ("cubic", (RATE_A[:3], PSNR_A[:3]), "3 point.*cubic needs at least 4"),
    ("pchip", (RATE_A[:1], PSNR_A[:1]), "1 point.*pchip needs at least 2"),
    ("pchip", ([0.0, *RATE_A[1:]], PSNR_A), "not all finite and positive"),
    ("pchip", ([-5.0, *RATE_A[1:]], PSNR_A), "not all finite and positive"),
    ("pchip", (RATE_A, [math.inf, *PSNR_A[1:]]), "not all finite"),
    ("pchip", (RATE_A, [43.6471, 40.3953, 41.0, 34.2911]), "not monotonic in rate after sorting by rate"),
    ("pchip", ([RATE_A[0], RATE_A[0], *RATE_A[2:]], PSNR_A), "share the rate"),
    ("pchip", (RATE_A, [37.25, 37.24, 37.22, 37.2]),
     "PSNR varies by less than 0.1 dB over the sweep.*BD-rate undefined"),
])
def test_degenerate_test_curves_raise_with_the_reason(method, curve, reason):
    with pytest.raises(BDRateUndefined, match=reason) as info:
        bd_rate(RATE_A, PSNR_A, *curve, method=method)
    assert info.value.reason.startswith("test curve") and str(info.value) == info.value.reason
    assert not isinstance(info.value, InputError)


def test_disjoint_psnr_ranges_raise():
    with pytest.raises(BDRateUndefined, match="do not overlap"):
        bd_rate(RATE_A, PSNR_A, RATE_A, [p + 20.0 for p in PSNR_A])


def test_degenerate_anchor_is_named():
    with pytest.raises(BDRateUndefined, match="anchor curve"):
        bd_rate(RATE_A, PSNR_A[::-1], RATE_B, PSNR_B)


def test_bad_arguments_are_input_errors():
    with pytest.raises(InputError, match=r"'akima'.*\['cubic', 'pchip'\]"):
        bd_rate(RATE_A, PSNR_A, RATE_B, PSNR_B, method="akima")
    with pytest.raises(InputError, match="equal length"):
        bd_rate(RATE_A, PSNR_A[:3], RATE_B, PSNR_B)
