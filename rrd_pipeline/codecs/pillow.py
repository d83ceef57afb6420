"""JPEG through Pillow (libjpeg-turbo), baseline sequential with the standard Huffman tables.

JPEG colour path (Pillow 10+, libjpeg-turbo; the JPEG rate model must mimic this)
---------------------------------------------------------------------------------
* RGB -> Y'CbCr: libjpeg's JFIF transform, BT.601 coefficients, **full range** (Y in 0..255,
  Cb/Cr = 128 + ...), in 16-bit fixed point rounded to integers; i.e. for ``rgb`` in [0, 1]
  ``255 * rrd.color.rgb_to_ycbcr(rgb, "bt601") + (0, 128, 128)``, rounded.
* Chroma: ``subsampling="4:2:0"`` (default) keeps one Cb and one Cr per 2x2 block, the mean of the
  four (libjpeg ``h2v2_downsample``: integer mean with alternating rounding bias 1, 2), i.e. chroma
  sited at the centre of the 2x2 block; ``"4:4:4"`` keeps full-resolution chroma.
* Quantisation: the IJG example tables (ITU-T T.81 Annex K) scaled by libjpeg's
  ``jpeg_set_quality(quality, force_baseline=True)`` (scale ``5000/q`` below 50, ``200 - 2q`` from
  50, clamped to 1..255); baseline sequential, the standard (not optimised) Huffman tables,
  integer ("islow") DCT. Partial 8x8 / 16x16 blocks at the right and bottom edges are filled by
  edge replication inside libjpeg.
* Decoding: Pillow's defaults: islow IDCT, "fancy" upsampling of 4:2:0 chroma (triangular filter,
  weights 3/4 and 1/4, centre-sited, edge replicated), inverse JFIF transform, rounding and clipping.

"""

from __future__ import annotations

import io
from typing import ClassVar

import numpy as np
from PIL import Image

from rrd.codec import CODEC_SPECS, Codec, Coded
from rrd_pipeline.codecs import check_choice, register_codec

__all__ = ["JpegCodec"]


@register_codec
class JpegCodec(Codec):
    """Baseline JPEG through Pillow (libjpeg-turbo); see the module docstring for the exact path.

    Args:
        subsampling: "4:2:0" (default: 2x2 chroma means) or "4:4:4" (no chroma subsampling).
    """

    spec = CODEC_SPECS["jpeg"]
    SUBSAMPLINGS: ClassVar[dict[str, int]] = {"4:2:0": 2, "4:4:4": 0}  # Pillow's subsampling codes

    def __init__(self, subsampling: str = "4:2:0") -> None:
        check_choice(self.name, "subsampling", subsampling, self.SUBSAMPLINGS)
        self.subsampling = subsampling

    @property
    def options(self) -> dict[str, object]:
        return {"subsampling": self.subsampling}

    def _encode(self, rgb: np.ndarray, param: int) -> Coded:
        buffer = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buffer, format="JPEG", quality=param,
                                         subsampling=self.SUBSAMPLINGS[self.subsampling],
                                         optimize=False, progressive=False)
        bitstream = buffer.getvalue()
        with Image.open(io.BytesIO(bitstream)) as decoded:
            decoded_rgb = np.asarray(decoded.convert("RGB"), dtype=np.uint8)
        return Coded(nbytes=len(bitstream), decoded=decoded_rgb, bitstream=bitstream)
