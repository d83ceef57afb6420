"""The Meshroom node (meshroom_node/meshroom/rrdNodes/RRDOptimize.py).

Always: the module parses and every flag it puts on the command line is an option of the real ``rrd``
CLI, every choice one that rrd accepts. With ``MESHROOM_SOURCE`` pointing at a Meshroom checkout
(github.com/alicevision/Meshroom, 2025.x; ``meshroom.core`` needs only psutil): Meshroom discovers the
node through ``MESHROOM_PLUGINS_PATH`` and ``MESHROOM_NODES_PATH`` with its own loaders, builds its
command line in a real graph, and computes it on the Meshroom sample. Meshroom runs in a subprocess
(its own interpreter state, as in Meshroom), never in the test process.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
import typer.main

from conftest import shared_path
from rrd_pipeline.codecs import CODECS
from rrd.padding import PADDING_METHODS
from rrd.settings import DEFAULT_SETTINGS
from rrd.rasterize import rasterize
from rrd.render import make_view, render, texel_vector, view_taps
from rrd_pipeline.cli import app
from rrd_pipeline.loaders.meshroom import read_meshroom_obj, read_sfm, write_sfm
from rrd_pipeline.stages.optimize import OptimizeParams
from rrd_pipeline.writers import write_image

REPO = Path(__file__).resolve().parents[1]
PLUGIN_ROOT = REPO / "meshroom_node"
NODES_FOLDER = PLUGIN_ROOT / "meshroom"
NODE_FILE = NODES_FOLDER / "rrdNodes" / "RRDOptimize.py"
# Flags of the main `rrd optimize` parameters, which the node must expose.
MAIN_FLAGS = {"--sfm", "--mesh", "--images", "--out", "--codec", "--param", "--lambda", "--lambda-scale",
              "--iterations", "--reference", "--init", "--scale", "--device", "--backend", "--coded-distortion"}


def _node_class() -> ast.ClassDef:
    tree = ast.parse(NODE_FILE.read_text(), filename=str(NODE_FILE))
    version = [n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__version__"]
    assert version and isinstance(ast.literal_eval(version[0].value), str)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RRDOptimize"]
    assert len(classes) == 1 and ast.unparse(classes[0].bases[0]) == "desc.CommandLineNode"
    return classes[0]


def _switches() -> dict[str, str]:
    """The node's BoolParams written as bare switches: attribute name -> flag."""
    tree = ast.parse(NODE_FILE.read_text(), filename=str(NODE_FILE))
    return next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "_SWITCHES")


def _class_value(cls: ast.ClassDef, name: str) -> ast.expr:
    return next(n.value for n in cls.body if isinstance(n, ast.Assign) and n.targets[0].id == name)


def _attributes(cls: ast.ClassDef, which: str) -> dict[str, dict[str, typing.Any]]:
    """name -> {"type": desc class, keyword: literal value (or the source text when not a literal)}."""
    out = {}
    for call in _class_value(cls, which).elts:
        kwargs = {"type": ast.unparse(call.func)}
        for kw in call.keywords:
            try:
                kwargs[kw.arg] = ast.literal_eval(kw.value)
            except ValueError:
                kwargs[kw.arg] = ast.unparse(kw.value)
        out[kwargs["name"]] = kwargs
    return out


def _node_flags() -> tuple[list[str], list[str]]:
    """(flags before the command word, flags after it) that the node's command line can hold."""
    cls = _node_class()
    words = ast.literal_eval(_class_value(cls, "commandLine")).split()
    assert words[0] == "rrd" and "optimize" in words and words[-1].endswith("{allParams}")
    cut = words.index("optimize")
    # Meshroom writes each attribute of the "allParams" group (the default group) as --<name> <value>.
    grouped = [f"--{n}" for n, a in _attributes(cls, "inputs").items() if a.get("group", "allParams") == "allParams"]
    switches = _switches()
    inputs = _attributes(cls, "inputs")
    assert all(inputs[n]["type"] == "desc.BoolParam" and inputs[n]["group"] is None for n in switches)
    return ([w for w in words[:cut] if w.startswith("--")],
            [w for w in words[cut:] if w.startswith("--")] + grouped + list(switches.values()))


def test_node_flags_are_options_of_the_rrd_cli():
    group = typer.main.get_command(app)
    top_options = {o for p in group.params for o in p.opts}
    optimize_options = {o for p in group.commands["optimize"].params for o in p.opts}
    before, after = _node_flags()
    assert set(before) <= top_options, f"rrd has no option {sorted(set(before) - top_options)}"
    assert set(after) <= optimize_options, f"rrd optimize has no option {sorted(set(after) - optimize_options)}"
    assert MAIN_FLAGS <= set(after) and len(after) == len(set(after))


def test_node_choices_are_accepted_by_rrd():
    inputs = _attributes(_node_class(), "inputs")
    assert set(inputs["codec"]["values"]) == set(CODECS)
    assert set(inputs["init"]["values"]) == set(PADDING_METHODS)
    # the node's defaults are the tuned ones (rrd.settings)
    assert inputs["iterations"]["value"] == DEFAULT_SETTINGS.iterations
    assert inputs["lambdaScale"]["value"] == DEFAULT_SETTINGS.lambda_scale
    assert inputs["init"]["value"] == DEFAULT_SETTINGS.init
    for name in ("reference", "device", "backend"):
        assert inputs[name]["values"] == list(typing.get_args(typing.get_type_hints(OptimizeParams)[name]))
    # the two optional flags are only written when their attribute is enabled by a toggle
    assert "defaultOperatingPoint" in inputs["param"]["enabled"]
    assert "explicitLambda" in inputs["lambda"]["enabled"]
    outputs = _attributes(_node_class(), "outputs")
    assert outputs["output"]["value"] == "{nodeCacheFolder}"
    assert outputs["outputRecord"]["value"] == "{nodeCacheFolder}/optimize.json"


# ----------------------------------------------------------------------------------------------
# With a Meshroom checkout


def _meshroom_source() -> Path:
    source = os.environ.get("MESHROOM_SOURCE")
    if not source:
        pytest.skip("MESHROOM_SOURCE is not set (a checkout of github.com/alicevision/Meshroom, 2025.x)")
    if not (Path(source) / "meshroom" / "core" / "plugins.py").is_file():
        pytest.skip(f"MESHROOM_SOURCE={source} is not a Meshroom 2025.x checkout (no meshroom/core/plugins.py)")
    pytest.importorskip("psutil", reason="meshroom.core needs psutil")
    return Path(source)


# Runs in a fresh interpreter: load the nodes as Meshroom does, put one RRDOptimize in a graph saved
# under argv[1], set the attributes given as JSON in argv[2], optionally compute it, print a JSON report.
_SCRIPT = textwrap.dedent("""
    import json, sys
    import meshroom.core
    from meshroom.core.graph import Graph, executeGraph
    meshroom.core.initPlugins()
    meshroom.core.initNodes()
    nodePlugin = meshroom.core.pluginManager.getRegisteredNodePlugin("RRDOptimize")
    graph = Graph("rrd")
    graph.save(sys.argv[1])
    settings = json.loads(sys.argv[2])
    node = graph.addNewNode("RRDOptimize")
    for name, value in settings["attributes"].items():
        node.attribute(name).value = value
    error = None
    if settings["compute"]:
        try:
            executeGraph(graph, toNodes=[node])
        except RuntimeError as exc:  # a failed node: the test shows the node's log
            error = str(exc)[-2000:]
    env = nodePlugin.runtimeEnv
    print(json.dumps({
        "status": nodePlugin.status.name, "errors": nodePlugin.errors, "plugin": nodePlugin.plugin.name,
        "path": nodePlugin.path, "version": meshroom.core.nodeVersion(node.nodeDesc), "category": node.nodeDesc.category,
        "commandLine": node.nodeDesc.buildCommandLine(node.chunks[0]),
        "cacheFolder": node.internalFolder, "PATH": env["PATH"] if env else None,
        "chunkStatus": node.chunks[0].status.status.name, "logFile": node.chunks[0].logFile,
        "ranCommandLine": node.chunks[0].status.commandLine, "error": error,
        "outputs": {a.name: a.value for a in node.attributes if a.isOutput},
    }))
""")


def _run_meshroom(tmp_path: Path, variable: str, attributes: dict, compute: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MESHROOM_PLUGINS_PATH", "MESHROOM_NODES_PATH")}
    env[variable] = str(PLUGIN_ROOT if variable == "MESHROOM_PLUGINS_PATH" else NODES_FOLDER)
    env["PYTHONPATH"] = os.pathsep.join([str(_meshroom_source()), env.get("PYTHONPATH", "")])
    settings = json.dumps({"attributes": attributes, "compute": compute})
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "project.mg"), settings],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _arguments(command_line: str) -> tuple[list[str], dict[str, str | None]]:
    """(words up to "optimize", {flag: value, or None for a switch} after it) of a command line."""
    words = shlex.split(command_line)
    cut = words.index("optimize") + 1
    switches = set(_switches().values())
    flags: dict[str, str | None] = {}
    rest = iter(words[cut:])
    for flag in rest:
        assert flag.startswith("--") and flag not in flags, command_line
        flags[flag] = None if flag in switches else next(rest)
    return words[:cut], flags


INPUTS = {"input": "/data/sfm/cameras.sfm", "inputMesh": "/data/Texturing/texturedMesh.obj",
          "imagesFolder": "/data/Prepare Dense Scene"}


@pytest.mark.parametrize("variable", ["MESHROOM_PLUGINS_PATH", "MESHROOM_NODES_PATH"])
def test_meshroom_discovers_the_node_and_builds_its_command_line(tmp_path, variable):
    report = _run_meshroom(tmp_path, variable, INPUTS)
    assert report["status"] == "LOADED" and report["errors"] == [] and report["plugin"] == "rrdNodes"
    assert Path(report["path"]) == NODE_FILE and report["version"] == "1.0"
    head, flags = _arguments(report["commandLine"])
    cache = report["cacheFolder"]
    assert head == ["rrd", "--log-level", "info", "optimize"]
    assert flags == {"--sfm": INPUTS["input"], "--mesh": INPUTS["inputMesh"], "--images": INPUTS["imagesFolder"],
                     "--out": cache, "--lambda-scale": "2.0", "--codec": "jpeg", "--iterations": str(DEFAULT_SETTINGS.iterations),
                     "--reference": "renders", "--init": "spp", "--scale": "0.5", "--device": "auto",
                     "--backend": "auto"}
    assert Path(cache).parent.parent == tmp_path / "MeshroomCache"
    assert report["outputs"] == {"output": cache, "outputMesh": f"{cache}/texturedMesh.obj",
                                 "outputMaterial": f"{cache}/texturedMesh.mtl", "outputTextures": f"{cache}/texture_*",
                                 "outputRecord": f"{cache}/optimize.json"}
    if variable == "MESHROOM_PLUGINS_PATH":  # Meshroom puts <plugin root>/bin first on the node's PATH
        assert report["PATH"].split(os.pathsep)[0] == str(PLUGIN_ROOT / "bin")
    else:
        assert report["PATH"] is None  # the node inherits Meshroom's environment


def test_meshroom_writes_the_optional_flags_only_when_enabled(tmp_path):
    report = _run_meshroom(tmp_path, "MESHROOM_PLUGINS_PATH", {
        **INPUTS, "inputMesh": "/data/mesh/scan.obj", "codec": "hevc", "defaultOperatingPoint": False,
        "param": 37, "explicitLambda": True, "lambda": 0.02, "lambdaScale": 2.5, "iterations": 7,
        "reference": "photos", "init": "pushpull", "scale": 0.5, "device": "cpu", "backend": "cpu",
        "verboseLevel": "debug", "codedDistortion": True})
    head, flags = _arguments(report["commandLine"])
    assert head == ["rrd", "--log-level", "debug", "optimize"]
    assert {k: flags[k] for k in ("--codec", "--param", "--lambda", "--lambda-scale", "--iterations",
                                  "--reference", "--init", "--scale", "--device", "--backend")} == {
        "--codec": "hevc", "--param": "37", "--lambda": "0.02", "--lambda-scale": "2.5", "--iterations": "7",
        "--reference": "photos", "--init": "pushpull", "--scale": "0.5", "--device": "cpu", "--backend": "cpu"}
    assert flags["--coded-distortion"] is None
    # rrd keeps the mesh's name: the outputs follow the input mesh
    assert report["outputs"]["outputMesh"] == report["cacheFolder"] + "/scan.obj"
    assert report["outputs"]["outputMaterial"] == report["cacheFolder"] + "/scan.mtl"


def _nasa_fixture(folder: Path) -> tuple[Path, Path, Path]:
    """The Meshroom sample with 3 small cameras (.sfm) and, as PrepareDenseScene names them, one
    image per view, ``<viewId>.png``: renders of the original atlas (the sample has no posed photos)."""
    mesh_file = shared_path("meshroom_nasa", "texturedMesh.obj")
    mesh, atlas = read_meshroom_obj(mesh_file)
    cameras = [c.scaled(0.1) for c in read_sfm(REPO / "pipelines" / "meshroom_nasa_cameras.sfm")[:3]]
    sfm = write_sfm(folder / "cameras.sfm", cameras)
    images = folder / "PrepareDenseScene"
    texels = texel_vector(torch.from_numpy(atlas.tiles))
    for view_id, cam in enumerate(cameras, start=1):  # write_sfm numbers the views 1, 2, ...
        view = make_view(rasterize(mesh, cam, "cpu"), mesh, atlas, cam)
        with torch.no_grad():
            image = render(texels, view_taps(view, atlas.tiles.shape[:3]), view).numpy()
        write_image(images / f"{view_id}.png", image)
    return sfm, mesh_file, images


def test_meshroom_computes_the_node_on_the_meshroom_sample(tmp_path):
    _meshroom_source()
    sfm, mesh_file, images = _nasa_fixture(tmp_path)
    report = _run_meshroom(tmp_path, "MESHROOM_PLUGINS_PATH", {
        "input": str(sfm), "inputMesh": str(mesh_file), "imagesFolder": str(images), "scale": 1.0, "iterations": 1,
        "init": "none", "device": "cpu", "backend": "cpu", "codedDistortion": True}, compute=True)
    assert report["chunkStatus"] == "SUCCESS", report["error"]
    outputs = report["outputs"]
    mesh, atlas = read_meshroom_obj(outputs["outputMesh"])
    original_mesh, original = read_meshroom_obj(mesh_file)
    np.testing.assert_array_equal(mesh.faces, original_mesh.faces)
    assert atlas.names == original.names == ("texture_1001.png",) and atlas.tiles.shape == original.tiles.shape
    assert Path(outputs["outputMaterial"]).is_file() and Path(outputs["outputTextures"].replace("*", "1001.png")).is_file()
    record = json.loads(Path(outputs["outputRecord"]).read_text())
    assert record["codec"] == "jpeg" and record["settings"]["iterations"] == 1 and record["history"][-1]["iteration"] == 1
    assert record["settings"]["coded_distortion"] is True
    assert record["estimated_bits"]["final"] > 0 and record["lambda"] > 0
    assert report["ranCommandLine"] == report["commandLine"]  # what Meshroom ran, recorded in its status file
