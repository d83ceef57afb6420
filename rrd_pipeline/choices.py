"""The user's choices, derived from the registries: parameter types of the pipeline stages and the CLI.

Each is a ``Literal`` of the registered names, so pipeline validation rejects a misspelt value with the
list of valid ones, ``rrd <command> --help`` lists them, and a new registry entry appears everywhere at
once:

>>> PaddingChoice
typing.Literal['none', 'dilate', 'pushpull', 'spp', 'vdmc', 'hbf', 'sparse', 'extend']
"""

from __future__ import annotations

from rrd.distortion import REFERENCES
from rrd.evaluate import VIEW_SETS
from rrd.padding import PADDING_METHODS
from rrd.rasterize import BACKENDS
from rrd.registry import choice_type
from rrd.render import FILTERS
from rrd_pipeline.codecs import CODECS
from rrd_pipeline.loaders.meshroom import VERTEX_FRAMES

__all__ = ["DEVICES", "CodecChoice", "ReferenceChoice", "PaddingChoice", "BackendChoice", "DeviceChoice",
           "FilterChoice", "ViewSetChoice", "VertexFrameChoice"]

DEVICES = ("auto", "cpu", "cuda")
"""Where the optimiser runs: "auto" takes CUDA when available."""

CodecChoice = choice_type(CODECS.choices)
ReferenceChoice = choice_type(REFERENCES)
PaddingChoice = choice_type(PADDING_METHODS.choices)
BackendChoice = choice_type(BACKENDS)
DeviceChoice = choice_type(DEVICES)
FilterChoice = choice_type(FILTERS)
ViewSetChoice = choice_type(VIEW_SETS)
VertexFrameChoice = choice_type(VERTEX_FRAMES)
