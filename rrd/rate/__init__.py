"""Differentiable rate models: estimates of the bits a real codec spends on an atlas.

One model per codec family of :data:`rrd.codec.CODEC_SPECS` (registry :data:`RATE_MODELS`, keys "jpeg",
"hevc", "vvc"):

>>> import torch
>>> model = get_rate_model("hevc")
>>> tiles = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
>>> bits = model.bits(tiles, 32)          # tiles (T, H, W, 3) float in [0, 1]; a scalar tensor
>>> bits.backward()                       # d bits / d tiles
>>> bits.item() > 0, tiles.grad.shape
(True, torch.Size([1, 64, 64, 3]))

``calibrate(model, codec, [atlas_u8], [32])`` refits ``scale`` on a real encoder (a :class:`rrd.codec.Codec`).

See :mod:`rrd.rate.base` for the interface, :mod:`rrd.rate.jpeg` and :mod:`rrd.rate.video` for what
each model mimics and how its constants were fitted.
"""

from rrd.rate.base import (
    RATE_MODELS,
    CoefficientCost,
    RateModel,
    banded_bits,
    calibrate,
    coefficient_bits,
    coefficient_bits_and_slope,
    get_rate_model,
    register_rate_model,
    soft_nonzero,
)
from rrd.rate.jpeg import JpegRateModel
from rrd.rate.video import HevcRateModel, VideoRateModel, VvcRateModel

__all__ = [
    "RATE_MODELS",
    "CoefficientCost",
    "HevcRateModel",
    "JpegRateModel",
    "RateModel",
    "banded_bits",
    "calibrate",
    "coefficient_bits",
    "coefficient_bits_and_slope",
    "get_rate_model",
    "register_rate_model",
    "soft_nonzero",
    "VideoRateModel",
    "VvcRateModel",
]
