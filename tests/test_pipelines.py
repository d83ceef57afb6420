"""The example pipelines in pipelines/: each validates, the demo runs end to end, mistakes name their line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import SHARED_DATA, shared_path
from rrd.errors import InputError
from rrd.scene import Camera, look_at
from rrd_pipeline.cli import app
from rrd_pipeline.graph import load_pipeline, run_pipeline
from rrd_pipeline.loaders.meshroom import read_meshroom_obj, read_sfm

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
NASA_CAMERAS = PIPELINES / "meshroom_nasa_cameras.sfm"
# 2 iterations and the cheapest padding: the run checks the wiring, not the optimiser.
FAST = ["optimized.iterations=2", "optimized.init=none", "optimized.device=cpu"]


def nasa_orbit_cameras(vertices: np.ndarray, names: list[str]) -> list[Camera]:
    """The recipe of pipelines/meshroom_nasa_cameras.sfm (the NASA sample published no cameras).

    1600x1200 pinhole cameras (f = 1500 px, principal point at the image centre), the size of the
    sample's photos so that they pair up with them by name, looking at the median vertex from the
    side the photos were taken from (-z in the mesh's SfM frame, image up = -y): one head-on, 8 tilted
    by 20 degrees and the rest tilted by 40 degrees, evenly spread in azimuth, at the distance where
    the sphere holding 95% of the vertices fits the image height.

    Args:
        vertices: (V, 3) mesh vertices in the SfM frame.
        names: photo file names, one camera each, in order.
    """
    centre = np.median(vertices, axis=0)
    radius = np.percentile(np.linalg.norm(vertices - centre, axis=1), 95)
    K = np.array([[1500.0, 0.0, 800.0], [0.0, 1500.0, 600.0], [0.0, 0.0, 1.0]])
    distance = radius / np.sin(np.arctan(600.0 / 1500.0))
    rings = [(0.0, 1), (20.0, 8), (40.0, len(names) - 9)]
    tilts, azimuths = [], []
    for ring, (tilt, count) in enumerate(rings):
        tilts += [np.radians(tilt)] * count
        azimuths += list(2 * np.pi * (np.arange(count) + 0.5 * (ring % 2)) / count)
    cameras = []
    for name, tilt, azimuth in zip(names, tilts, azimuths):
        direction = np.array([np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth), -np.cos(tilt)])
        cameras.append(look_at(centre + distance * direction, centre, [0.0, -1.0, 0.0], K, 1600, 1200, name))
    return cameras


def _example_files() -> list[Path]:
    return sorted(PIPELINES.glob("*.yaml"))


def test_the_examples_are_there():
    assert {p.name for p in _example_files()} >= {"demo.yaml", "colmap_sceaux.yaml", "meshroom_nasa.yaml",
                                                  "batch.yaml"}


@pytest.mark.parametrize("path", _example_files(), ids=lambda p: p.name)
def test_every_example_validates(path):
    pipeline = load_pipeline(path)
    assert pipeline.name == path.stem
    assert pipeline.workdir == (path.parent / "out" / path.stem).absolute()
    assert pipeline.nodes[0].spec.name == "load"
    assert pipeline.nodes[-1].spec.name == "optimize"  # its summary fills the run's table
    # every file a scene reads lies where the YAML's relative path says (relative to the YAML's folder)
    for scene in pipeline.scenes:
        load = scene.params[pipeline.nodes[0].id]
        for name in ("colmap", "sfm", "mesh", "images"):
            value = getattr(load, name)
            if value is not None and SHARED_DATA in value.resolve().parents:
                shared_path(*value.resolve().relative_to(SHARED_DATA).parts)
            elif value is not None:
                assert value.exists(), f"{path.name}: scene {scene.name}: {name} {value} does not exist"


def test_real_data_pipelines_point_at_the_samples():
    sceaux = load_pipeline(PIPELINES / "colmap_sceaux.yaml").scenes[0].params["scene"]
    assert sceaux.colmap.resolve() == SHARED_DATA / "sceaux_castle"
    assert sceaux.mesh.resolve() == SHARED_DATA / "sceaux_castle" / "scene_mesh_texture.ply"
    nasa = load_pipeline(PIPELINES / "meshroom_nasa.yaml")
    load, optimize = (nasa.scenes[0].params[n.id] for n in nasa.nodes)
    assert load.sfm == NASA_CAMERAS and load.mesh.resolve() == SHARED_DATA / "meshroom_nasa" / "texturedMesh.obj"
    assert load.images.resolve() == SHARED_DATA / "meshroom_nasa" / "photos"
    assert optimize.reference == "renders"  # the generated poses are not those of the photos


def test_batch_runs_three_scenes_with_their_own_parameters():
    pipeline = load_pipeline(PIPELINES / "batch.yaml")
    assert pipeline.batch and [s.name for s in pipeline.scenes] == ["demo_seed0", "demo_seed1", "sceaux"]
    loads = [s.params["scene"] for s in pipeline.scenes]
    assert [(p.seed, p.colmap) for p in loads[:2]] == [(0, None), (1, None)]
    assert loads[2].colmap.resolve() == SHARED_DATA / "sceaux_castle"
    assert [s.workdir for s in pipeline.scenes] == [pipeline.workdir / s.name for s in pipeline.scenes]
    # --set applies to every scene, over the file's values
    forced = load_pipeline(PIPELINES / "batch.yaml", ["optimized.codec=hevc"])
    assert {s.params["optimized"].codec for s in forced.scenes} == {"hevc"}


def test_nasa_cameras_follow_their_recipe_and_see_the_mesh():
    photos = shared_path("meshroom_nasa", "photos")
    cameras = read_sfm(NASA_CAMERAS)
    names = sorted(p.name for p in photos.iterdir())
    assert [c.name for c in cameras] == names  # one camera per photo of the sample, same order
    mesh, _ = read_meshroom_obj(SHARED_DATA / "meshroom_nasa" / "texturedMesh.obj")
    for got, want in zip(cameras, nasa_orbit_cameras(mesh.vertices, names)):
        assert (got.width, got.height) == (want.width, want.height) == (1600, 1200)
        for a, b in ((got.K, want.K), (got.R, want.R), (got.t, want.t)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
        xy, depth = got.project(mesh.vertices)
        inside = (depth > 0) & (xy >= 0).all(axis=1) & (xy[:, 0] < 1600) & (xy[:, 1] < 1200)
        assert inside.mean() > 0.95  # the sphere holding 95% of the vertices fits the image


def test_demo_runs_end_to_end_and_resumes(tmp_path):
    demo = tmp_path / "demo.yaml"
    shutil.copy(PIPELINES / "demo.yaml", demo)  # its workdir is relative: the run stays in tmp_path
    result = CliRunner().invoke(app, ["run", str(demo), *(f"--set={s}" for s in FAST)])
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    assert "saving_%" in result.stdout.splitlines()[0]  # the optimize summary heads the table
    assert "demo: optimized (optimize) ran in" in result.stderr
    scene = run_pipeline(demo, FAST)
    assert scene.ok and scene.scenes[0].ran == [] and len(scene.scenes[0].cached) == 3
    summary = scene.scenes[0].summary
    assert summary["kB"] > 0 and summary["start_kB"] > 0
    mesh_file = scene.scenes[0].outputs["optimized"]["mesh"]
    assert mesh_file.parent.parent == tmp_path / "out" / "demo" / ".cache"
    mesh, atlas = read_meshroom_obj(mesh_file)
    assert len(mesh.faces) > 0 and atlas.tiles.shape[1:] == (512, 512, 3)
    assert (tmp_path / "out" / "demo" / ".cache").is_dir()


def test_a_mistake_in_an_example_names_its_line(tmp_path):
    text = (PIPELINES / "demo.yaml").read_text()
    assert "stage: optimize" in text
    bad = tmp_path / "demo.yaml"
    bad.write_text(text.replace("stage: optimize", "stage: optimise"))
    line = 1 + text[:text.index("stage: optimize")].count("\n")
    with pytest.raises(InputError) as err:
        load_pipeline(bad)
    message = str(err.value)
    assert message.startswith(f"{bad}:{line}: ") and "unknown stage 'optimise'" in message and "\n" not in message
    result = CliRunner().invoke(app, ["run", str(bad)])
    assert result.exit_code == 2 and result.output.strip() == f"error: {message}"
    with pytest.raises(InputError, match=r"--set optimized.iteration=2: .*iteration"):
        load_pipeline(PIPELINES / "demo.yaml", ["optimized.iteration=2"])


@pytest.mark.parametrize("params, message", [
    ("{init: sppp}", "parameter 'init': invalid choice 'sppp' (valid: none, dilate, pushpull, spp"),
    ("{iterations: -1}", "iterations -1 is out of range; valid: an integer >= 1"),
    ("{iterations: 0}", "iterations 0 is out of range; valid: an integer >= 1"),
    ("{lambda_scale: -1}", "lambda_scale -1.0 is out of range; valid: a number > 0"),
    ("{codec: hevc, param: 70}", "hevc qp 70 is out of range; valid: 0..51"),
    ("{codec: webp}", "parameter 'codec': invalid choice 'webp' (valid: jpeg, hevc, vvc)"),
    ("{backend: opengl}", "parameter 'backend': invalid choice 'opengl' (valid: auto, nvdiffrast, embree, cpu)"),
])
def test_every_optimize_parameter_is_checked_at_validation(tmp_path, params, message):
    """A misspelt choice or a value out of its range fails when the pipeline is validated, before anything
    runs, with the file, the line and the valid values."""
    bad = tmp_path / "p.yaml"
    bad.write_text(f"stages:\n  - id: scene\n    stage: load\n  - id: optimized\n    stage: optimize\n"
                   f"    inputs: {{scene: scene}}\n    params: {params}\n")
    with pytest.raises(InputError) as err:
        load_pipeline(bad)
    assert str(err.value).startswith(f"{bad}:") and message in str(err.value), str(err.value)
    assert not (tmp_path / "out").exists()
