"""rrd: rate-rendering distortion optimised preprocessing of texture atlases.

The core library: pure functions and small dataclasses on arrays and tensors. File I/O, the YAML
stage graph and the CLI live in :mod:`rrd_pipeline`.
"""

__version__ = "0.1.0"
