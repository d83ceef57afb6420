"""The rendering distortion: quadratic form == rendering every view, gradients == finite differences."""

from __future__ import annotations

import pytest
import torch

from rrd.distortion import build_distortion, seam_free_weights
from rrd.errors import InputError
from rrd.occupancy import texel_coverage
from rrd.quadratic import QuadraticAccumulator
from rrd.render import face_tiles, rasterize_views, view_taps
from rrd.sample import bilinear_taps, gather


@pytest.fixture(scope="module")
def problem(small_demo):
    scene = small_demo
    T, H, W, C = scene.atlas.tiles.shape
    views = rasterize_views(scene.mesh, scene.atlas, scene.cameras, "cpu")
    used = torch.from_numpy(texel_coverage(scene.mesh.local_uv(), face_tiles(scene.mesh, scene.atlas), T, H, W, 0.5))
    original = torch.from_numpy(scene.atlas.tiles).double().reshape(-1, C)
    photos = [torch.from_numpy(p.reshape(-1, 3) / 255.0) for p in scene.photos]
    return views, (T, H, W), original, used.reshape(-1), photos


def test_quadratic_form_matches_direct_sum_on_random_taps():
    g = torch.Generator().manual_seed(0)
    T, H, W, C = 2, 6, 7, 3
    acc = QuadraticAccumulator(T * H * W, W, C)
    parts = []
    for _ in range(3):
        # Some UVs outside [0, 1] so clamped (repeated) taps are folded too.
        uv = torch.rand(300, 2, generator=g, dtype=torch.float64) * 1.2 - 0.1
        taps = bilinear_taps(uv, torch.randint(0, T, (300,), generator=g), H, W)
        ref = torch.rand(300, C, generator=g, dtype=torch.float64)
        w = torch.rand(300, generator=g, dtype=torch.float64)
        acc.add(taps, ref, w)
        parts.append((taps, ref, w))
    form = acc.form()
    x = torch.rand(T * H * W, C, generator=g, dtype=torch.float64, requires_grad=True)
    direct = sum((w[:, None] * (gather(x, t) - r) ** 2).sum() for t, r, w in parts)
    (grad,) = torch.autograd.grad(direct, x)
    assert float(form.value(x.detach())) == pytest.approx(float(direct.detach()), rel=1e-12)
    torch.testing.assert_close(form.gradient(x.detach()), grad, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("reference", ["renders", "photos"])
def test_quadratic_and_rendered_paths_agree_on_the_demo(problem, reference):
    views, shape, original, used, photos = problem
    fast = build_distortion(views, shape, original, used, reference, photos, mode="quadratic")
    slow = build_distortion(views, shape, original, used, reference, photos, mode="rendered")
    g = torch.Generator().manual_seed(1)
    x = (original + 0.05 * torch.randn(original.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    vf, gf = fast.value_and_gradient(x)
    vs, gs = slow.value_and_gradient(x)
    assert vf == pytest.approx(vs, rel=1e-9)
    torch.testing.assert_close(gf, gs, rtol=1e-8, atol=1e-8 * float(gs.abs().max()))
    torch.testing.assert_close(fast.hessian_diagonal, slow.hessian_diagonal)
    assert fast.scale == slow.scale


def test_gradient_matches_finite_differences(problem):
    views, shape, original, used, photos = problem
    dist = build_distortion(views, shape, original, used, "photos", photos)
    x = original.clone()
    _, grad = dist.value_and_gradient(x)
    seen = torch.nonzero(dist.hessian_diagonal > 0).squeeze(1)
    g = torch.Generator().manual_seed(2)
    for i in seen[torch.randint(0, len(seen), (5,), generator=g)].tolist():
        for c in range(3):
            e = torch.zeros_like(x)
            e[i, c] = 1e-4
            fd = (dist.value_and_gradient(x + e)[0] - dist.value_and_gradient(x - e)[0]) / 2e-4
            assert fd == pytest.approx(float(grad[i, c]), rel=1e-5, abs=1e-6 * dist.scale)


def test_asset_reference_is_minimised_by_the_original_and_excludes_seams(problem):
    views, shape, original, used, photos = problem
    dist = build_distortion(views, shape, original, used, "renders")
    value, grad = dist.value_and_gradient(original)
    assert value == pytest.approx(0.0, abs=1e-6 * dist.scale)
    assert float(grad.abs().max()) < 1e-9 * dist.scale
    # Pixels whose taps read a texel no triangle covers are left out; interior pixels are kept.
    taps = view_taps(views[0], shape)
    w = seam_free_weights(taps, used)
    assert 0.5 < float(w.mean()) < 1.0
    touches = ((taps.weight > 0) & ~used[taps.index]).any(1)
    assert bool((w[touches] == 0).all()) and bool((w[~touches] == 1).all())


@pytest.mark.parametrize("reference", ["renders", "photos"])
def test_float32_value_near_the_original_keeps_float64_accuracy(problem, reference):
    # The optimiser works in float32 a small step away from the original: there the uncentred form's
    # value is a difference of sums as large as the references' squared norm and cancels to noise.
    views, shape, original, used, photos = problem
    exact = build_distortion(views, shape, original, used, reference, photos)
    fast = exact.to("cpu", torch.float32)
    g = torch.Generator().manual_seed(3)
    x = (original + 1e-3 * torch.randn(original.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    v64, g64 = exact.value_and_gradient(x)
    v32, g32 = fast.value_and_gradient(x.float())
    change = v64 - exact.value_and_gradient(original)[0]
    assert abs(v32 - v64) < 1e-3 * abs(change)
    torch.testing.assert_close(g32.double(), g64, rtol=1e-4, atol=1e-4 * float(g64.abs().max()))


def test_prior_keeps_used_but_unseen_texels(problem):
    views, shape, original, used, photos = problem
    dist = build_distortion(views[:1], shape, original, used, "photos", photos[:1], prior=0.05)
    h = dist.hessian_diagonal
    seen_by_views = build_distortion(views[:1], shape, original, used, "photos", photos[:1], prior=0.0).hessian_diagonal > 0
    unseen_used = used & ~seen_by_views
    assert int(unseen_used.sum()) > 100  # one view sees only part of the object
    assert bool((h[unseen_used] > 0).all()), "every used texel is held by the prior"
    assert bool((h[~used & ~seen_by_views] == 0).all()), "free gutter texels are not"


def test_bad_reference_names_the_choices(problem):
    views, shape, original, used, photos = problem
    with pytest.raises(InputError, match="choose one of renders, photos"):
        build_distortion(views, shape, original, used, "orbit")
    with pytest.raises(InputError, match="one photo per view"):
        build_distortion(views, shape, original, used, "photos", photos[:1])
