"""Research models that the product does not import: measured by ``benchmarks/``, tested in ``tests/``."""
