"""Texture sampling: reference values (grid_sample), gradients (gradcheck), gutter gradients, mipmaps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rrd.errors import InputError
from rrd.sample import bilinear_taps, gather, mip_levels, mip_texels, texture, trilinear_taps


def grid_sample_reference(tiles: torch.Tensor, uv: torch.Tensor, tile: torch.Tensor) -> torch.Tensor:
    """torch's grid_sample with the documented alignment: grid = (2u - 1, 1 - 2v), align_corners=False, border."""
    out = torch.empty(len(uv), tiles.shape[-1], dtype=tiles.dtype)
    for t in range(tiles.shape[0]):
        sel = tile == t
        grid = torch.stack([2 * uv[sel, 0] - 1, 1 - 2 * uv[sel, 1]], dim=1)[None, None]
        image = tiles[t].permute(2, 0, 1)[None]
        out[sel] = F.grid_sample(image, grid, mode="bilinear", align_corners=False, padding_mode="border")[0, :, 0].T
    return out


def test_bilinear_matches_grid_sample():
    g = torch.Generator().manual_seed(0)
    tiles = torch.rand(3, 17, 23, 3, generator=g)
    uv = torch.rand(2000, 2, generator=g) * 1.1 - 0.05  # a little outside the tile: clamp to edge
    tile = torch.randint(0, 3, (2000,), generator=g)
    torch.testing.assert_close(texture(tiles, uv, tile), grid_sample_reference(tiles, uv, tile), atol=1e-5, rtol=0)


def test_bilinear_worked_example():
    # W = H = 4, u = 0.3 -> x = 0.7: 30 % of column 0, 70 % of column 1 (row: v = 0.875 -> row 0 centre).
    tiles = torch.zeros(1, 4, 4, 1)
    tiles[0, 0, 0, 0], tiles[0, 0, 1, 0] = 10.0, 20.0
    out = texture(tiles, torch.tensor([[0.3, 0.875]]), torch.tensor([0]))
    assert out.item() == pytest.approx(0.3 * 10 + 0.7 * 20)


def test_gradcheck_in_texels_and_uv():
    g = torch.Generator().manual_seed(1)
    tiles = torch.rand(2, 5, 6, 2, generator=g, dtype=torch.float64, requires_grad=True)
    # Keep the points off texel-centre lines, where bilinear weights have kinks.
    uv = (torch.rand(12, 2, generator=g, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    tile = torch.randint(0, 2, (12,), generator=g)
    assert torch.autograd.gradcheck(lambda t, u: texture(t, u, tile), (tiles, uv))
    dx = torch.full((12, 2), 0.3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: texture(t, uv.detach(), tile, "trilinear", dx, dx), (tiles,))


def test_gutter_texel_next_to_a_chart_border_receives_gradient():
    """A sample inside a chart but near its border taps the gutter texel beside it: that texel gets gradient."""
    tiles = torch.zeros(1, 8, 8, 3, requires_grad=True)
    # Chart = columns 0..3; the sample sits at x = 3.7 texels (between column 3 and gutter column 4).
    uv = torch.tensor([[3.7 / 8 + 0.5 / 8, 1 - 2.5 / 8]])
    texture(tiles, uv, torch.tensor([0])).sum().backward()
    grad = tiles.grad[0, :, :, 0]
    assert grad[2, 4] == pytest.approx(0.7) and grad[2, 3] == pytest.approx(0.3)
    assert grad.sum() == pytest.approx(1.0)


def test_mip_chain_and_trilinear_levels():
    g = torch.Generator().manual_seed(2)
    tiles = torch.rand(2, 16, 8, 3, generator=g)
    assert mip_levels(16, 8) == [(16, 8), (8, 4), (4, 2), (2, 1), (1, 1)]
    texels = mip_texels(tiles)
    assert texels.shape[0] == 2 * (128 + 32 + 8 + 2 + 1)
    torch.testing.assert_close(texels[-2:], tiles.mean(dim=(1, 2)))  # the 1x1 level is the tile mean
    uv = torch.rand(50, 2, generator=g) * 0.9 + 0.05
    tile = torch.randint(0, 2, (50,), generator=g)
    # A footprint of exactly one texel is level 0 = plain bilinear.
    one = torch.tensor([1 / 8, 0.0]).expand(50, 2)
    torch.testing.assert_close(gather(texels, trilinear_taps(uv, tile, one, one * 0, 2, 16, 8)), texture(tiles, uv, tile))
    # A footprint of two texels is level 1: bilinear sampling of the 2x2-averaged tiles.
    two = torch.tensor([2 / 8, 0.0]).expand(50, 2)
    half = F.avg_pool2d(tiles.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    torch.testing.assert_close(gather(texels, trilinear_taps(uv, tile, two, two * 0, 2, 16, 8)), texture(half, uv, tile))
    # In between, the two levels blend (sqrt(2) texels -> halfway).
    mid = torch.tensor([2 ** 0.5 / 8, 0.0]).expand(50, 2)
    torch.testing.assert_close(gather(texels, trilinear_taps(uv, tile, mid, mid * 0, 2, 16, 8)),
                               0.5 * texture(tiles, uv, tile) + 0.5 * texture(half, uv, tile), atol=1e-5, rtol=0)


def test_taps_rows_sum_to_one_and_bad_input_is_named():
    uv = torch.rand(10, 2)
    taps = bilinear_taps(uv, torch.zeros(10, dtype=torch.long), 4, 4)
    torch.testing.assert_close(taps.weight.sum(1), torch.ones(10))
    with pytest.raises(InputError, match="uv has shape"):
        bilinear_taps(torch.rand(10, 3), torch.zeros(10, dtype=torch.long), 4, 4)
    with pytest.raises(InputError, match="unknown texture filter 'nearest'"):
        texture(torch.rand(1, 4, 4, 3), uv, torch.zeros(10, dtype=torch.long), "nearest")
    with pytest.raises(InputError, match="needs the screen-space UV derivatives"):
        texture(torch.rand(1, 4, 4, 3), uv, torch.zeros(10, dtype=torch.long), "trilinear")
