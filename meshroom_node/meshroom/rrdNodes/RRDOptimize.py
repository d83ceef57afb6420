__version__ = "1.0"

import os

from meshroom.core import desc
from meshroom.core.utils import VERBOSE_LEVEL


def _cacheFile(attr, suffix: str, default: str) -> str:
    """'{nodeCacheFolder}/<input mesh stem><suffix>': rrd keeps the names of the mesh files it copies."""
    stem = os.path.splitext(os.path.basename(attr.node.inputMesh.value))[0]
    return "{nodeCacheFolder}/" + (stem + suffix if stem else default)


# rrd's on/off options are switches ("--coded-distortion"), which Meshroom's "--<name> <value>" cannot
# write: these BoolParams stay out of the command-line groups and add their switch when on.
_SWITCHES = {"codedDistortion": "--coded-distortion"}


class RRDOptimize(desc.CommandLineNode):
    # Attributes in the "allParams" group are named after the `rrd optimize` flags they feed
    # (Meshroom writes them as `--<name> <value>`); the others appear by value in the template, because
    # Meshroom names cannot hold "-" and Meshroom's usual names are kept for the inputs.
    commandLine = ('rrd --log-level {verboseLevelValue} optimize --sfm "{inputValue}" --mesh "{inputMeshValue}" '
                   '--images "{imagesFolderValue}" --out "{outputValue}" --lambda-scale {lambdaScaleValue}'
                   '{allParams}')
    cpu = desc.Level.INTENSIVE
    gpu = desc.Level.NORMAL
    ram = desc.Level.INTENSIVE

    def buildCommandLine(self, chunk) -> str:
        line = super().buildCommandLine(chunk)
        return line + "".join(" " + flag for name, flag in _SWITCHES.items() if chunk.node.attribute(name).value)

    category = "Dense Reconstruction"
    documentation = """
Rewrites the texture atlas of a textured mesh so that the codec that will store it (JPEG, HEVC or VVC)
codes it with fewer bits for the same rendered quality: gradient descent on
estimated codec bits + lambda x rendering distortion, the distortion measured on renders of the mesh
from the SfM cameras (rrd, "Rate-Rendering Distortion Optimized Preprocessing for Texture Map
Compression of 3D Reconstructed Scenes", TCSVT 2024).

Connect the Texturing node's output mesh, the cameras as an .sfm JSON file (StructureFromMotion's
"Views And Poses" cameras.sfm, or ConvertSfMFormat with the .sfm extension: .abc is not read) and the
undistorted images of PrepareDenseScene (<viewId>.exr). The output is a copy of the mesh and its
material file with the optimised texture tiles, under the same names, written losslessly (a JPEG tile
becomes PNG); the mesh geometry and UVs are unchanged. Code the tiles with the chosen codec afterwards.

Runs the `rrd` command line, which must be on the PATH of Meshroom's processes (see rrd's
meshroom_node/README.md). Uses CUDA when available (Device), the CPU otherwise.
"""

    inputs = [
        desc.File(
            name="input",
            label="SfMData",
            description="Cameras: an AliceVision .sfm (JSON) file, e.g. StructureFromMotion's cameras.sfm.\n"
                        "Alembic (.abc) is not read: convert it with ConvertSfMFormat (.sfm) first.\n"
                        "Poses in the SfM frame (scene units), intrinsics in pixels / mm.",
            value="",
            group="",
        ),
        desc.File(
            name="inputMesh",
            label="Textured Mesh",
            description="The Texturing node's output mesh (texturedMesh.obj), with its .mtl and\n"
                        "texture_<UDIM>.<ext> tiles beside it (EXR, PNG, TIFF or JPEG).",
            value="",
            group="",
        ),
        desc.File(
            name="imagesFolder",
            label="Images Folder",
            description="Undistorted images of PrepareDenseScene, named <viewId>.<ext> (pixels; EXR read as\n"
                        "linear light). Every image needs a posed view in SfMData and every view an image.",
            value="",
            group="",
        ),
        desc.ChoiceParam(
            name="codec",
            label="Codec",
            description="Codec that will store the atlas: its rate model estimates the bits.\n"
                        " - jpeg: JPEG (baseline, 4:2:0).\n"
                        " - hevc: HEVC all-intra.\n"
                        " - vvc: VVC all-intra.",
            value="jpeg",
            values=["jpeg", "hevc", "vvc"],
        ),
        desc.BoolParam(
            name="defaultOperatingPoint",
            label="Default Operating Point",
            description="Use the middle of the codec's standard sweep: JPEG quality 60, HEVC/VVC QP 32.",
            value=True,
            group=None,
        ),
        desc.IntParam(
            name="param",
            label="Operating Point",
            description="Codec parameter the atlas is optimised for (unitless integer):\n"
                        "JPEG quality 1-100 (higher is better), HEVC QP 0-51 or VVC QP 0-63 (lower is better).",
            value=60,
            range=(0, 100, 1),
            enabled=lambda node: not node.defaultOperatingPoint.value,
        ),
        desc.FloatParam(
            name="lambdaScale",
            label="Lambda Scale",
            description="Multiplier (unitless) of the lambda tied to the operating point: above 1 favours\n"
                        "rendering quality, below 1 favours fewer bits. Ignored with an explicit lambda.",
            value=2.0,
            range=(0.05, 20.0, 0.05),
            group="",
        ),
        desc.BoolParam(
            name="explicitLambda",
            label="Explicit Lambda",
            description="Set lambda directly instead of deriving it from the operating point.",
            value=False,
            group=None,
            advanced=True,
        ),
        desc.FloatParam(
            name="lambda",
            label="Lambda",
            description="Weight of the rendering distortion, in bits per unit of 8-bit squared error\n"
                        "(rendered pixel values 0-255).",
            value=0.1,
            range=(0.001, 10.0, 0.001),
            enabled=lambda node: node.explicitLambda.value,
            advanced=True,
        ),
        desc.IntParam(
            name="iterations",
            label="Iterations",
            description="Number of gradient steps.",
            value=50,
            range=(1, 1000, 1),
        ),
        desc.BoolParam(
            name="codedDistortion",
            label="Codec In The Loop",
            description="Code the atlas with the real codec at the operating point on every iteration and measure\n"
                        "the rendering distortion on the decoded atlas (one encode and decode per iteration: slower,\n"
                        "better on some scenes, worse on others; see rrd's README).",
            value=False,
            group=None,
            advanced=True,
        ),
        desc.ChoiceParam(
            name="reference",
            label="Distortion Reference",
            description="What the renders of the new atlas are compared with:\n"
                        " - renders: renders of the original atlas (keeps the look of the Texturing result).\n"
                        " - photos: the undistorted images.",
            value="renders",
            values=["renders", "photos"],
        ),
        desc.ChoiceParam(
            name="init",
            label="Padding Init",
            description="Padding method that fills the unused texels (gutters) of the starting atlas:\n"
                        "spp (smoothed push-pull), pushpull, hbf, vdmc, dilate, sparse, extend, or none (black).",
            value="spp",
            values=["spp", "pushpull", "hbf", "vdmc", "dilate", "sparse", "extend", "none"],
            advanced=True,
        ),
        desc.FloatParam(
            name="scale",
            label="Image Scale",
            description="Resize factor (0-1] of the images and cameras used for the rendering distortion.\n"
                        "Lower is faster and uses less memory; the atlas keeps its size. The default matches\n"
                        "Texturing's default Texture Downscale (2), the image resolution the atlas was made at.",
            value=0.5,
            range=(0.05, 1.0, 0.05),
        ),
        desc.ChoiceParam(
            name="device",
            label="Device",
            description="Where the optimisation runs: auto (CUDA when available), cpu or cuda.",
            value="auto",
            values=["auto", "cpu", "cuda"],
            invalidate=False,
        ),
        desc.ChoiceParam(
            name="backend",
            label="Rasterizer",
            description="Rasterizer of the views: auto (nvdiffrast with CUDA, else Embree), nvdiffrast, embree "
                        "(CPU ray casting) or cpu (pure torch).",
            value="auto",
            values=["auto", "nvdiffrast", "embree", "cpu"],
            invalidate=False,
            advanced=True,
        ),
        desc.ChoiceParam(
            name="verboseLevel",
            label="Verbose Level",
            description="Verbosity level (fatal, error, warning, info, debug, trace).",
            values=VERBOSE_LEVEL,
            value="info",
            group="",
            invalidate=False,
        ),
    ]

    outputs = [
        desc.File(
            name="output",
            label="Folder",
            description="Folder of the output mesh, material, texture and record files.",
            value="{nodeCacheFolder}",
            group="",
        ),
        desc.File(
            name="outputMesh",
            label="Mesh",
            description="Copy of the input mesh (same name) that uses the optimised textures.",
            value=lambda attr: _cacheFile(attr, ".obj", "texturedMesh.obj"),
            group="",
        ),
        desc.File(
            name="outputMaterial",
            label="Material",
            description="Copy of the mesh's material file, naming the optimised textures.",
            value=lambda attr: _cacheFile(attr, ".mtl", "texturedMesh.mtl"),
            group="",
        ),
        desc.File(
            name="outputTextures",
            label="Textures",
            description="Optimised texture tiles: the input tiles' names and pixel sizes, written losslessly\n"
                        "(a JPEG tile becomes PNG; EXR stays float32).",
            value="{nodeCacheFolder}/texture_*",
            group="",
        ),
        desc.File(
            name="outputRecord",
            label="Record",
            description="optimize.json: settings, estimated bits (start, final) and distortion history.",
            value="{nodeCacheFolder}/optimize.json",
            group="",
        ),
    ]
