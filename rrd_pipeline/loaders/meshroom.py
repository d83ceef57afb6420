"""Meshroom / AliceVision: the Texturing node's OBJ + MTL + UDIM tiles, and ``.sfm`` camera files.

OBJ written by the Texturing node (checked in AliceVision's ``mesh/Texturing.cpp`` history):
    * before 3.0 (Meshroom <= 2021.1): its own writer; ``usemtl TextureAtlas_<udim>``; vertices in
      the SfM frame.
    * 3.0 and 3.1 (Meshroom 2023.1): written through Assimp; materials named ``<udim>``; vertices
      stored as ``(x, -y, -z)`` of the SfM frame (commit 3623b2c5d, "I/O in opengl frame").
    * 3.2 on (Meshroom 2023.2 and later): as 3.0, materials named ``material_<udim>``.
    Each material's ``map_Kd`` is ``texture_<udim>.<ext>``. With UDIMs enabled (the default) the
    ``vt`` are UDIM-global: the writer adds ``(k % 10, k // 10)`` to a chart's [0, 1] UVs for atlas
    ``k = udim - 1001``; without UDIMs every tile's UVs are local to [0, 1]. The loader accepts both,
    per face: a face whose UVs fall in tile 1001 while its material names another tile is shifted
    into that tile. UVs are v up, as in :mod:`rrd.scene`.

``vertex_frame`` says how stored vertices relate to the SfM frame of the cameras: ``"sfm"`` (as
stored), ``"yz_flipped"`` (stored as (x, -y, -z); converted back), or ``"auto"``: from the material
names (``TextureAtlas_*`` -> sfm; ``material_*`` or bare numbers -> yz_flipped).

``.sfm`` (JSON, every scalar a string): views (viewId, poseId, intrinsicId, path, width, height),
intrinsics, poses with ``pose.transform.rotation`` (9 numbers, column-major, world-to-camera R) and
``pose.transform.center`` (camera centre C): ``x_cam = R (X - C)``, so ``t = -R C``. Intrinsics by
file ``version`` (as AliceVision's ``sfmDataIO/jsonIO.cpp`` loads them; w = width, sw = sensorWidth
in mm, f = focalLength in mm, r = pixelRatio):

    ==================  ==========================================================
    < 1.2.0             fx = fy = pxFocalLength (pixels)
    1.2.0 .. 1.2.1      (fx, fy) = pxFocalLength (pixels)
    1.2.2 .. 1.2.4      fx = f w / sw, fy = fx / r   (r stored the focal ratio)
    1.2.5 .. 1.2.10     fx = f w / sw, fy = f r w / sw
    >= 1.2.11           fy = f w / sw, fx = fy / r
    ==================  ==========================================================

    principalPoint is an offset from the image centre, ``cx = w / 2 + pp[0]``, ``cy = h / 2 + pp[1]``,
    from version 1.2.1 on; before, it is absolute. A file without ``version`` is read as the oldest.

Pixel centres: AliceVision's image centre for a zero principal-point offset is (w / 2, h / 2), the
geometric centre when pixel centres lie at +0.5, and its own COLMAP exporter copies the principal
point without a shift; so K is taken over unchanged into the convention of :mod:`rrd.scene`.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rrd.errors import InputError
from rrd.scene import Atlas, Camera, Scene, TexturedMesh, udim_of
from rrd_pipeline.loaders._camera import checked_camera
from rrd_pipeline.loaders._mesh import finish_mesh
from rrd_pipeline.loaders.images import IMAGE_SUFFIXES, load_photos, read_atlas
from rrd_pipeline.loaders.obj import local_reference
from rrd_pipeline.writers import atomic_write

__all__ = ["VERTEX_FRAMES", "SfmView", "read_meshroom_obj", "read_sfm_views", "read_sfm", "write_sfm",
           "load_meshroom_scene"]

VERTEX_FRAMES = ("auto", "sfm", "yz_flipped")
"""Choices of ``vertex_frame`` (see the module docstring)."""

_YZ_FLIP = np.array([1.0, -1.0, -1.0])
_MATERIAL_FRAMES = (
    (re.compile(r"^TextureAtlas_(\d+)$"), "sfm"),
    (re.compile(r"^material_(\d+)$"), "yz_flipped"),
    (re.compile(r"^(\d{4,})$"), "yz_flipped"),
)
# Intrinsic types whose projection is not a pinhole at all, whatever the distortion parameters.
_NON_PINHOLE_TYPES = ("equidistant", "equidistant_r3", "equirectangular")


# A map_Kd option and its arguments (numbers, on/off, a channel letter), before the file name.
_MAP_OPTION = re.compile(r"\s*-(?:blendu|blendv|cc|clamp|imfchan|texres|type|bm|boost|mm|o|s|t)"
                         r"(?:\s+(?:-?[\d.]+(?:e-?\d+)?|on|off|[rgbmlz]))*(?=\s)", re.IGNORECASE)


def _parse_mtl(path: Path) -> dict[str, str]:
    """Material name -> texture file of its ``map_Kd`` (options skipped, spaces kept; relative to the MTL)."""
    if not path.is_file():
        raise InputError(f"{path}: material library not found")
    textures, current = {}, None
    for line in path.read_text(errors="replace").splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "newmtl" and len(words) > 1:
            current = line.split(None, 1)[1].strip()
            textures.setdefault(current, "")
        elif words[0] == "map_Kd" and current is not None and len(words) > 1:
            rest = line.split(None, 1)[1]
            while (option := _MAP_OPTION.match(rest)) is not None:
                rest = rest[option.end():]
            textures[current] = rest.strip()
    return textures


def is_meshroom_obj(path: str | Path) -> bool:
    """Whether an OBJ is the Texturing node's: it uses materials, each named as that node names them
    (``TextureAtlas_<udim>``, ``material_<udim>`` or ``<udim>``, udim >= 1001). Every other OBJ is read by
    :func:`rrd_pipeline.loaders.obj.read_obj`."""
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    names = {n.strip() for n in re.findall(r"^[ \t]*usemtl[ \t]+(.+)$", text, re.M)}
    tiles = [next((int(m.group(1)) for p, _ in _MATERIAL_FRAMES if (m := p.match(n))), None) for n in names]
    return bool(tiles) and all(t is not None and t >= 1001 for t in tiles)


def _material_tile(name: str, texture: str) -> tuple[int | None, str | None]:
    """(UDIM tile, vertex frame) a material name implies; tile from the texture name as fallback."""
    for pattern, frame in _MATERIAL_FRAMES:
        if m := pattern.match(name):
            return int(m.group(1)), frame
    m = re.search(r"[_.](\d{4})$", Path(texture).stem)
    return (int(m.group(1)) if m else None), None


def read_meshroom_obj(path: str | Path, vertex_frame: str = "auto") -> tuple[TexturedMesh, Atlas]:
    """Read the Texturing node's ``texturedMesh.obj`` with its ``.mtl`` and UDIM texture tiles.

    Args:
        path: the ``.obj`` file (``v``, ``vt``, ``f`` with ``v/vt`` or ``v/vt/vn`` corners, ``usemtl``,
            ``mtllib``); polygons are split into triangle fans; normals, groups and smoothing are ignored.
        vertex_frame: one of :data:`VERTEX_FRAMES`; the returned vertices are in the SfM frame.
    Returns:
        (mesh, atlas): UDIM-global UVs (v up) and one tile per material used, ascending UDIM, named
        after the texture files. Degenerate faces are dropped with a warning.
    Raises:
        InputError: missing or malformed files, corners without UVs, a material without texture, an
            undetectable frame or tile, UVs outside their tile, tiles of different sizes.
    """
    path = Path(path)
    if vertex_frame not in VERTEX_FRAMES:
        raise InputError(f"vertex_frame {vertex_frame!r} is unknown; expected one of {', '.join(VERTEX_FRAMES)}")
    if not path.is_file():
        raise InputError(f"{path}: OBJ file not found")
    v_rows, vt_rows, mtllibs, materials = [], [], [], []
    face_v, face_vt, face_mat = [], [], []
    current = -1
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        key = words[0]
        try:
            if key == "v":
                v_rows.append([float(w) for w in words[1:4]])
                if len(v_rows[-1]) != 3:
                    raise ValueError
            elif key == "vt":
                vt_rows.append([float(w) for w in words[1:3]])
                if len(vt_rows[-1]) != 2:
                    raise ValueError
            elif key == "f":
                vi, ti = [], []
                for corner in words[1:]:
                    parts = corner.split("/")
                    if len(parts) < 2 or not parts[1]:
                        raise InputError(f"{path}:{number}: face corner {corner!r} has no texture coordinate; "
                                         "the mesh has no UVs (texture it first)")
                    a, b = int(parts[0]), int(parts[1])
                    # Negative OBJ indices count back from the last vertex defined so far.
                    vi.append(a - 1 if a > 0 else len(v_rows) + a)
                    ti.append(b - 1 if b > 0 else len(vt_rows) + b)
                if len(vi) < 3:
                    raise ValueError
                for k in range(1, len(vi) - 1):
                    face_v.append((vi[0], vi[k], vi[k + 1]))
                    face_vt.append((ti[0], ti[k], ti[k + 1]))
                    face_mat.append(current)
            elif key == "usemtl":
                name = line.split(None, 1)[1].strip()
                if name not in materials:
                    materials.append(name)
                current = materials.index(name)
            elif key == "mtllib":
                mtllibs.append(line.split(None, 1)[1].strip())
        except InputError:
            raise
        except (ValueError, IndexError):
            raise InputError(f"{path}:{number}: malformed line {line.strip()[:80]!r}") from None
    if not face_v:
        raise InputError(f"{path}: the OBJ has no faces")
    if not mtllibs:
        raise InputError(f"{path}: no 'mtllib' line; cannot find the textures")
    textures: dict[str, str] = {}
    for lib in mtllibs:
        textures.update(_parse_mtl(path.parent / lib))

    face_mat = np.asarray(face_mat)
    if (face_mat < 0).any():
        if len(textures) != 1:
            raise InputError(f"{path}: {int((face_mat < 0).sum())} faces come before any 'usemtl' line")
        materials.append(next(iter(textures)))
        face_mat[face_mat < 0] = len(materials) - 1
    tiles, frames = [], set()
    for name in materials:
        if not textures.get(name):
            raise InputError(f"{path}: material {name!r} has no texture (no map_Kd in {', '.join(mtllibs)})")
        tile, frame = _material_tile(name, textures[name])
        if tile is None or tile < 1001:
            raise InputError(f"{path}: cannot tell the UDIM tile of material {name!r} (texture {textures[name]}); "
                             "an OBJ of another texturer is read by read_obj")
        tiles.append(tile)
        frames.add(frame)
    if len(set(tiles)) != len(tiles):
        raise InputError(f"{path}: several materials use the same UDIM tile ({tiles})")
    if vertex_frame == "auto":
        if len(frames) != 1 or None in frames:
            raise InputError(f"{path}: cannot tell the vertex frame from the material names {materials}; "
                             "choose it with --vertex-frame sfm or yz_flipped (pipelines: vertex_frame)")
        vertex_frame = frames.pop()

    vertices = np.asarray(v_rows, dtype=np.float64).reshape(-1, 3)
    uv_rows = np.asarray(vt_rows, dtype=np.float64).reshape(-1, 2)
    try:
        faces, uv_ids = np.asarray(face_v, dtype=np.int64), np.asarray(face_vt, dtype=np.int64)
    except OverflowError:  # an index beyond 64 bits, which no file can have as many vertices
        raise InputError(f"{path}: a face index is beyond any vertex or texture coordinate count") from None
    if (uv_ids < 0).any() or (uv_ids >= len(uv_rows)).any():
        raise InputError(f"{path}: faces reference texture coordinates outside 1..{len(uv_rows)}")
    if vertex_frame == "yz_flipped":
        vertices = vertices * _YZ_FLIP
    uv = uv_rows[uv_ids]
    material_tile = np.asarray(tiles)[face_mat]
    found = udim_of(uv.mean(axis=1))
    local = (found == 1001) & (material_tile != 1001)  # written without UDIMs: shift into the tile
    offset = material_tile - 1001
    uv[local, :, 0] += (offset[local] % 10)[:, None]
    uv[local, :, 1] += (offset[local] // 10)[:, None]
    wrong = udim_of(uv.mean(axis=1)) != material_tile
    if wrong.any():
        face = int(np.flatnonzero(wrong)[0])
        raise InputError(f"{path}: {int(wrong.sum())} faces have UVs outside the tile of their material "
                         f"(face {face}: material {materials[face_mat[face]]!r}, uv {np.round(uv[face], 4).tolist()})")
    order = np.argsort(tiles)
    atlas = read_atlas([local_reference(path, textures[materials[i]], f"texture {textures[materials[i]]!r}")[0]
                        for i in order], [tiles[i] for i in order])
    return finish_mesh(vertices, faces, uv, path, atlas.udims), atlas


@dataclass(frozen=True)
class SfmView:
    """A posed view of an ``.sfm`` file: its camera and what the loader needs to find its photo."""

    camera: Camera
    view_id: str
    distortion: str  # empty when the camera is an undistorted pinhole, else a description


def _version(data: dict) -> tuple[int, int, int]:
    raw = data.get("version", [0, 0, 0])
    return tuple(int(x) for x in raw)  # type: ignore[return-value]


def _intrinsic_K(intr: dict, version: tuple[int, int, int]) -> np.ndarray:
    width, height = float(intr["width"]), float(intr["height"])
    if version < (1, 2, 0):
        fx = fy = float(intr["pxFocalLength"])
    elif version < (1, 2, 2):
        fx, fy = (float(x) for x in intr["pxFocalLength"])
    else:
        f_mm, ratio = float(intr["focalLength"]), float(intr.get("pixelRatio", 1.0))
        sensor_mm = float(intr.get("sensorWidth", 36.0))
        if not (ratio > 0 and sensor_mm > 0):  # divisors below; NaN fails the test too
            raise ValueError(f"intrinsic {intr.get('intrinsicId')!r} has pixelRatio {ratio:g} and sensorWidth "
                             f"{sensor_mm:g}; both must be positive")
        px_per_mm = width / sensor_mm
        if version < (1, 2, 5):
            fx = f_mm * px_per_mm
            fy = fx / ratio
        elif version < (1, 2, 11):
            fx, fy = f_mm * px_per_mm, f_mm * ratio * px_per_mm
        else:
            fy = f_mm * px_per_mm
            fx = fy / ratio
    cx, cy = (float(x) for x in intr["principalPoint"])
    if version >= (1, 2, 1):
        cx, cy = cx + width / 2.0, cy + height / 2.0
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _distortion(intr: dict) -> str:
    kind = str(intr.get("type", "pinhole"))
    if kind in _NON_PINHOLE_TYPES:
        return f"projection {kind!r}"
    params = [float(x) for x in list(intr.get("distortionParams", [])) + list(intr.get("undistortionParams", []))]
    if any(p != 0.0 for p in params):
        model = intr.get("distortionType", kind)
        return f"distortion {model!r} {params}"
    return ""


def read_sfm_views(path: str | Path) -> list[SfmView]:
    """Read the posed views of an AliceVision ``.sfm`` file (see the module docstring).

    Returns:
        One :class:`SfmView` per view with a pose, in file order; camera ``name`` = the basename of
        the view's ``path``. Views without a pose and views in a rig are skipped with a warning.
    Raises:
        InputError: missing file, bad JSON, missing fields, duplicate photo names.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: .sfm file not found")
    try:
        data = json.loads(path.read_text(errors="replace"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    try:
        version = _version(data)
        intrinsics = {str(i["intrinsicId"]): i for i in data.get("intrinsics", [])}
        poses = {str(p["poseId"]): p["pose"]["transform"] for p in data.get("poses", [])}
        views, unposed, in_rig = [], [], []
        for view in data.get("views", []):
            name = Path(str(view["path"]).replace("\\", "/")).name
            if "rigId" in view:  # AliceVision writes rigId only for views that belong to a rig
                in_rig.append(name)
                continue
            pose = poses.get(str(view.get("poseId", "")))
            if pose is None:
                unposed.append(name)
                continue
            intr = intrinsics.get(str(view.get("intrinsicId", "")))
            if intr is None:
                raise InputError(f"{path}: view {name!r} uses intrinsic {view.get('intrinsicId')!r}, "
                                 "which is not defined")
            R = np.asarray([float(x) for x in pose["rotation"]]).reshape(3, 3, order="F")
            C = np.asarray([float(x) for x in pose["center"]])
            width, height = int(intr["width"]), int(intr["height"])
            if (int(view.get("width", width)), int(view.get("height", height))) != (width, height):
                raise InputError(f"{path}: view {name!r} is {view['width']!r}x{view['height']!r} but its intrinsic is "
                                 f"{width}x{height}")
            with np.errstate(all="ignore"):  # a huge centre overflows; checked_camera refuses it
                t = -R @ C
            camera = checked_camera(path, _intrinsic_K(intr, version), R, t, width, height, name)
            views.append(SfmView(camera, str(view.get("viewId", "")), _distortion(intr)))
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, ArithmeticError) as err:
        # ArithmeticError: a zero sensorWidth or pixelRatio divides by zero in _intrinsic_K.
        raise InputError(f"{path}: malformed .sfm content ({type(err).__name__}: {err})") from None
    if unposed:
        warnings.warn(f"{path}: skipped {len(unposed)} views without a pose: {', '.join(unposed)}", stacklevel=2)
    if in_rig:
        warnings.warn(f"{path}: skipped {len(in_rig)} views in a camera rig (not supported): {', '.join(in_rig)}",
                      stacklevel=2)
    names = [v.camera.name for v in views]
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"{path}: several views have the photo name {', '.join(map(repr, duplicates))}")
    if not views:
        raise InputError(f"{path}: no view has a pose")
    return views


def read_sfm(path: str | Path, allow_distortion: bool = False) -> list[Camera]:
    """Cameras of the posed views of an AliceVision ``.sfm`` file, in file order.

    Args:
        path: the ``.sfm`` JSON file.
        allow_distortion: accept intrinsics with non-zero distortion (their K is returned as is; it
            fits the undistorted images of Meshroom's PrepareDenseScene node, not the raw photos).
    Returns:
        One :class:`Camera` per posed view, ``name`` = the photo's basename.
    Raises:
        InputError: see :func:`read_sfm_views`; a distorted intrinsic unless ``allow_distortion``.
    """
    views = read_sfm_views(path)
    if not allow_distortion:
        for view in views:
            if view.distortion:
                raise InputError(f"{path}: view {view.camera.name} has {view.distortion}; only undistorted pinhole "
                                 "cameras are rendered directly; use the undistorted images of Meshroom's "
                                 "PrepareDenseScene node (load_meshroom_scene finds them by view id)")
    return [v.camera for v in views]


def write_sfm(path: str | Path, cameras: list[Camera], images_dir: str | Path | None = None,
              sensor_width_mm: float = 36.0) -> Path:
    """Write cameras as an AliceVision ``.sfm`` file, version 1.2.11, every scalar a string.

    One pinhole intrinsic (no distortion) and one pose per camera; view, intrinsic and pose ids are
    1, 2, ...; ``focalLength = fy * sensor_width_mm / width`` (mm), ``pixelRatio = fy / fx``,
    ``principalPoint = (cx - width / 2, cy - height / 2)``.

    Args:
        path: the ``.sfm`` file, written atomically.
        cameras: the cameras; ``name`` becomes the view's photo file name.
        images_dir: folder prefixed to each photo name in the views' ``path``.
        sensor_width_mm: sensor width recorded for every intrinsic.
    Returns:
        ``path``.
    """
    path = Path(path)
    views, intrinsics, poses = [], [], []
    for i, cam in enumerate(cameras, start=1):
        fx, fy, cx, cy = cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2]
        photo = str(Path(images_dir) / cam.name) if images_dir is not None else cam.name
        views.append({"viewId": str(i), "poseId": str(i), "intrinsicId": str(i), "path": photo,
                      "width": str(cam.width), "height": str(cam.height), "metadata": {}})
        intrinsics.append({
            "intrinsicId": str(i), "width": str(cam.width), "height": str(cam.height),
            "sensorWidth": repr(float(sensor_width_mm)),
            "sensorHeight": repr(float(sensor_width_mm) * cam.height / cam.width),
            "serialNumber": "", "type": "pinhole", "distortionType": "none", "undistortionType": "none",
            "initializationMode": "unknown",
            "initialFocalLength": repr(float(fy * sensor_width_mm / cam.width)),
            "focalLength": repr(float(fy * sensor_width_mm / cam.width)), "pixelRatio": repr(float(fy / fx)),
            "pixelRatioLocked": "true", "offsetLocked": "false", "scaleLocked": "false",
            "principalPoint": [repr(float(cx - cam.width / 2)), repr(float(cy - cam.height / 2))],
            "distortionLocked": "false", "distortionInitializationMode": "none",
            "distortionParams": [], "undistortionOffset": ["0", "0"], "undistortionParams": [],
            "locked": "false",
        })
        poses.append({"poseId": str(i), "pose": {"transform": {
            "rotation": [repr(float(x)) for x in cam.R.flatten(order="F")],
            "center": [repr(float(x)) for x in cam.center]}, "locked": "false"}})
    data = {"version": ["1", "2", "11"], "featuresFolders": [], "matchesFolders": [],
            "views": views, "intrinsics": intrinsics, "poses": poses}
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=4))
    return path


def load_meshroom_scene(sfm_path: str | Path, mesh_path: str | Path, images_dir: str | Path, scale: float = 1.0,
                        vertex_frame: str = "auto", name: str | None = None) -> Scene:
    """Load a Meshroom scene: ``.sfm`` cameras, ``texturedMesh.obj`` and atlas, photos.

    Photos are matched to views by file name: ``<viewId>.<ext>`` (the undistorted images of the
    PrepareDenseScene node, which Texturing uses) is preferred, else the basename of the view's
    ``path`` (only allowed for cameras without distortion). OpenEXR photos are taken as linear and
    sRGB-encoded (:func:`rrd_pipeline.loaders.images.load_photos`) unless the atlas itself is EXR.

    Args:
        sfm_path: the ``.sfm`` file (e.g. StructureFromMotion's ``cameras.sfm``).
        mesh_path: the Texturing node's ``texturedMesh.obj``.
        images_dir: folder of the photos.
        scale: photo resize factor in (0, 1]; photos and cameras are scaled together.
        vertex_frame: see :func:`read_meshroom_obj`.
        name: scene label; default the mesh folder's name.
    Returns:
        The :class:`Scene`, cameras in ``.sfm`` view order, each named after its photo file.
    Raises:
        InputError: any problem with the inputs, naming the file.
    """
    images_dir = Path(images_dir)
    mesh, atlas = read_meshroom_obj(mesh_path, vertex_frame)
    if not images_dir.is_dir():
        raise InputError(f"{images_dir}: images folder not found")
    files = {p.name for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    cameras = []
    for view in read_sfm_views(sfm_path):
        cam = view.camera
        undistorted = next((f"{view.view_id}{s}" for s in (".exr", ".png", ".jpg", ".tif", ".tiff", ".jpeg")
                            if f"{view.view_id}{s}" in files), None)
        if undistorted is not None:
            cam = Camera(cam.K, cam.R, cam.t, cam.width, cam.height, undistorted)
        elif view.distortion and cam.name in files:
            raise InputError(f"{images_dir / cam.name}: its camera has {view.distortion}; use the undistorted "
                             f"images of Meshroom's PrepareDenseScene node (named <viewId>.exr, here "
                             f"{view.view_id}.exr)")
        cameras.append(cam)
    atlas_is_exr = all(n.lower().endswith(".exr") for n in atlas.names)
    cameras, photos = load_photos(cameras, images_dir, scale, exr_is_linear=not atlas_is_exr)
    return Scene(mesh, atlas, cameras, photos, name or Path(mesh_path).resolve().parent.name,
                 [c.name for c in cameras])
