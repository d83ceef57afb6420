"""The edge of rrd: loaders, writers, pipeline stages, the YAML stage graph and the ``rrd`` CLI."""
