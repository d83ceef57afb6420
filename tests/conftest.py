"""Shared fixtures: the real sample data folder and a small demo scene."""

from __future__ import annotations

from pathlib import Path

import pytest

# Resolved: ../shared may be a link, and the pipelines' paths are compared with it once resolved.
SHARED_DATA = (Path(__file__).resolve().parents[1].parent / "shared" / "data").resolve()


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, skipping the calling test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample data not found at {path} (the ../shared folder is absent)")
    return path


@pytest.fixture(scope="session")
def small_demo():
    """A small demo scene: 4 views of 96x72, a 256x256 atlas, 320 faces."""
    from rrd.demo_scene import make_demo_scene

    return make_demo_scene(seed=0, width=96, height=72, n_views=4, atlas_size=256, subdivisions=2)


@pytest.fixture(scope="session")
def meshroom_output(small_demo, tmp_path_factory):
    """The small demo saved as a Meshroom output: cameras.sfm, images/, mesh/texturedMesh.obj + its page."""
    from rrd_pipeline.loaders.meshroom import write_sfm
    from rrd_pipeline.writers import write_image, write_obj

    root = tmp_path_factory.mktemp("meshroom")
    for cam, photo in zip(small_demo.cameras, small_demo.photos):
        write_image(root / "images" / cam.name, photo)
    write_sfm(root / "cameras.sfm", small_demo.cameras)
    write_obj(root / "mesh" / "texturedMesh.obj", small_demo.mesh, small_demo.atlas)
    return root
