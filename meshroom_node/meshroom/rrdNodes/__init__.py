"""Meshroom nodes of rrd (rate-rendering distortion optimised texture atlases).

Meshroom finds this package through ``MESHROOM_PLUGINS_PATH=<repo>/meshroom_node`` (plugin root) or
``MESHROOM_NODES_PATH=<repo>/meshroom_node/meshroom`` (folder of node packages); see ../../README.md.
The nodes only describe command lines, so Meshroom never imports rrd or torch. The package is not
named ``rrd``: Meshroom imports node packages by name, and one named like the library would shadow it
(or be shadowed by it) in any process that imports both.
"""
