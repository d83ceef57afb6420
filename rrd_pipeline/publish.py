"""Publishing a textured mesh with its pages as the codec's image files: what people put online.

``OUT`` ending in ``.glb`` or ``.gltf`` is a glTF 2.0 asset with the pages embedded
(:mod:`rrd_pipeline.writers.gltf`); any other ``OUT`` is a folder holding the mesh in the input's own
format where it can be kept (an OpenMVS ``.ply`` or an ``.obj`` + ``.mtl``, copied with the texture
names changed), else an OBJ + MTL, and each page as an image file named after the input page
(``texture_1001.png`` -> ``texture_1001.jpg``). The image bytes are exactly what the codec produced:
nothing is decoded or re-encoded on the way out.
"""

from __future__ import annotations

from pathlib import Path

from rrd.codec import CodedAtlas
from rrd.errors import InputError
from rrd.scene import Atlas, Scene
from rrd_pipeline.outputs import copy_mesh_file
from rrd_pipeline.writers import atomic_write, write_obj

__all__ = ["IMAGE_TYPES", "GLTF_SUFFIXES", "check_publishable", "publish_asset", "page_file_names"]

IMAGE_TYPES: dict[str, tuple[str, str]] = {"jpeg": ("image/jpeg", ".jpg")}
"""Codec name -> (MIME type, file ending) of the codecs whose bitstream is an image file a mesh can name.
HEVC and VVC streams are not: a viewer cannot open them as textures."""

GLTF_SUFFIXES = (".glb", ".gltf")


def check_publishable(codec: str, out: Path) -> None:
    """InputError unless ``codec`` writes images a mesh can reference (checked before any work)."""
    if codec not in IMAGE_TYPES:
        raise InputError(f"codec {codec!r} writes no image file a mesh can reference; publish with one of: "
                         f"{', '.join(IMAGE_TYPES)} ({out})")


def page_file_names(atlas: Atlas, codec: str) -> tuple[str, ...]:
    """The published page files: each input page's name with the codec's file ending."""
    suffix = IMAGE_TYPES[codec][1]
    return tuple(Path(name).stem + suffix for name in atlas.names)


def publish_asset(out: Path, scene: Scene, coded: CodedAtlas, codec: str) -> list[Path]:
    """Write ``scene``'s mesh with the coded pages (see the module docstring).

    Args:
        out: a ``.glb`` / ``.gltf`` file, or a folder (created).
        scene: the mesh and its atlas layout (names, page sizes).
        coded: the pages coded by the codec named ``codec``, in page order.
    Returns:
        The written files: the asset (glTF), or the mesh file(s) then the pages (folder).
    """
    check_publishable(codec, out)
    mime, _ = IMAGE_TYPES[codec]
    if out.suffix.lower() in GLTF_SUFFIXES:
        from rrd_pipeline.writers.gltf import write_gltf

        return [write_gltf(out, scene.mesh, scene.atlas, [(b, mime) for b in coded.bitstreams])]
    out.mkdir(parents=True, exist_ok=True)
    names = page_file_names(scene.atlas, codec)
    pages = []
    for name, data in zip(names, coded.bitstreams):
        with atomic_write(out / name) as tmp:
            tmp.write_bytes(data)
        pages.append(out / name)
    renamed = Atlas(scene.atlas.tiles, scene.atlas.udims, names, scene.atlas.sizes)
    if scene.mesh_file is not None and Path(scene.mesh_file).suffix.lower() in (".ply", ".obj"):
        meshes = copy_mesh_file(out, scene, dict(zip(scene.atlas.names, names)))
    else:
        mesh_path = write_obj(out / "texturedMesh.obj", scene.mesh, renamed, convention="legacy",
                              write_textures=False)
        meshes = [mesh_path, mesh_path.with_suffix(".mtl")]
    return meshes + pages
