"""COLMAP sparse models (text or binary) through pycolmap, and whole COLMAP-posed scenes.

COLMAP's camera convention is the one of :mod:`rrd.scene` (world-to-camera ``x = R X + t``, +Y down,
+Z forward, pixel centres at +0.5), so K, R and t are taken over unchanged. Only undistorted pinhole
models can be rendered: run ``colmap image_undistorter`` (or ``pycolmap.undistort_images``) first
and point the loader at the undistorted workspace (its ``sparse/`` and ``images/``).
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rrd.errors import InputError
from rrd.scene import Camera, Scene
from rrd_pipeline.loaders._camera import checked_camera

__all__ = ["PINHOLE_MODELS", "read_colmap_cameras", "load_colmap_scene"]

PINHOLE_MODELS = ("PINHOLE", "SIMPLE_PINHOLE")
"""COLMAP camera models without lens distortion, the only ones rendered directly."""


# Parameters per camera model id, as COLMAP's camera_models.h numbers them (ids are never reused).
_NUM_PARAMS = {0: 3, 1: 4, 2: 4, 3: 5, 4: 8, 5: 8, 6: 12, 7: 5, 8: 4, 9: 5, 10: 12, 11: 16, 12: 4, 13: 5,
               14: 3, 15: 4, 16: 6, 17: 2}


class _Cursor:
    """Walks the records of a COLMAP ``.bin`` file, refusing any that would run past its end."""

    def __init__(self, path: Path) -> None:
        self.path, self.raw, self.pos = path, path.read_bytes(), 0

    def skip(self, nbytes: int) -> None:
        if nbytes > len(self.raw) - self.pos:
            raise InputError(f"{self.path}: file is truncated or corrupt (a record of {nbytes} bytes at byte "
                             f"{self.pos} runs past its end at {len(self.raw)})")
        self.pos += nbytes

    def read(self, fmt: str) -> int:
        """One little-endian integer of struct format ``fmt``."""
        self.skip(struct.calcsize(fmt))
        return struct.unpack_from("<" + fmt, self.raw, self.pos - struct.calcsize(fmt))[0]

    def count(self, fmt: str, record_bytes: int) -> int:
        """A record count, refused when that many records of at least ``record_bytes`` cannot fit."""
        at = self.pos
        n = self.read(fmt)
        if n * record_bytes > len(self.raw) - self.pos:
            raise InputError(f"{self.path}: file is truncated or corrupt (the count at byte {at} declares {n} "
                             f"records of at least {record_bytes} bytes; {len(self.raw) - self.pos} bytes remain)")
        return n


def _check_binary_model(model_dir: Path) -> None:
    """Walk the binary model files of ``model_dir`` (those present) and refuse a truncated or corrupt one.

    COLMAP's binary readers do not test for the end of the file: past it they keep reading counts
    from garbage, and an image name without its terminating zero is read forever, so a damaged
    ``.bin`` file would hang the reader instead of failing. The layouts are those of COLMAP's
    ``reconstruction_io_binary.cc`` (little-endian; counts are uint64 unless noted).
    """
    if (path := model_dir / "rigs.bin").is_file():
        c = _Cursor(path)
        for _ in range(c.count("Q", 8)):
            c.skip(4)  # rig id
            sensors = c.read("I")
            if sensors > 0:
                c.skip(8)  # reference sensor (type, id)
            for _ in range(max(sensors - 1, 0)):
                c.skip(8)  # sensor (type, id)
                if c.read("B"):
                    c.skip(56)  # sensor_from_rig: quaternion and translation
    if (path := model_dir / "cameras.bin").is_file():
        c = _Cursor(path)
        for _ in range(c.count("Q", 24)):
            c.skip(4)  # camera id
            model = struct.unpack("<i", struct.pack("<I", c.read("I")))[0]
            if model not in _NUM_PARAMS:
                raise InputError(f"{path}: unknown camera model id {model} (file corrupt, or from a newer COLMAP)")
            c.skip(16 + 8 * _NUM_PARAMS[model])  # width, height, parameters
    if (path := model_dir / "frames.bin").is_file():
        c = _Cursor(path)
        for _ in range(c.count("Q", 68)):
            c.skip(64)  # frame id, rig id, rig_from_world
            c.skip(16 * c.count("I", 16))  # data ids: sensor type, sensor id, uint64 id
    if (path := model_dir / "images.bin").is_file():
        c = _Cursor(path)
        for _ in range(c.count("Q", 73)):
            c.skip(64)  # image id, cam_from_world, camera id
            end = c.raw.find(b"\0", c.pos)
            if end < 0:
                raise InputError(f"{path}: file is truncated or corrupt (an image name at byte {c.pos} never ends)")
            c.pos = end + 1
            c.skip(24 * c.count("Q", 24))  # points2D: x, y, point3D id
    if (path := model_dir / "points3D.bin").is_file():
        c = _Cursor(path)
        for _ in range(c.count("Q", 51)):
            c.skip(43)  # id, xyz, rgb, error
            c.skip(8 * c.count("Q", 8))  # track: image id, point2D index (uint32 each)


def _model_name(camera) -> str:
    model = getattr(camera, "model", None)
    # pycolmap >= 0.5 has an enum `model`; older releases had a string `model_name`.
    name = getattr(model, "name", None)
    return str(name if name is not None else camera.model_name)


def _cam_from_world(image):
    pose = image.cam_from_world
    # A method in pycolmap >= 3.12 and 4.x, a property in <= 3.11.
    return pose() if callable(pose) else pose


def read_colmap_cameras(model_dir: str | Path) -> list[Camera]:
    """Read the posed images of a COLMAP sparse model.

    Args:
        model_dir: folder with ``cameras``/``images``/``points3D`` as ``.txt`` or ``.bin``.
    Returns:
        One :class:`Camera` per image with a pose, sorted by image name; ``name`` is COLMAP's image
        name (the photo's path relative to the images folder). Images without a pose are skipped
        with a warning.
    Raises:
        InputError: missing, unreadable, truncated or corrupt model (binary files are walked first: COLMAP's
            reader would hang on them), a camera model with lens distortion, a camera with impossible
            values (:func:`rrd_pipeline.loaders._camera.checked_camera`), no posed image.
    """
    import pycolmap  # heavy import, only for COLMAP users

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: COLMAP model folder not found")
    for stem in ("cameras", "images"):
        if not any((model_dir / f"{stem}{ext}").is_file() for ext in (".bin", ".txt")):
            raise InputError(f"{model_dir}: not a COLMAP sparse model (no {stem}.bin or {stem}.txt)")
    _check_binary_model(model_dir)
    try:
        rec = pycolmap.Reconstruction(str(model_dir))
    except Exception as err:  # pycolmap raises ValueError/RuntimeError with COLMAP's own text
        raise InputError(f"{model_dir}: cannot read the COLMAP model ({str(err).strip().splitlines()[-1]})") from None

    distorted = sorted({_model_name(c) for c in rec.cameras.values()} - set(PINHOLE_MODELS))
    if distorted:
        raise InputError(f"{model_dir}: camera model {', '.join(distorted)} has lens distortion; only "
                         f"PINHOLE/SIMPLE_PINHOLE are rendered directly; undistort the workspace first, e.g. "
                         f"`colmap image_undistorter` or `pycolmap.undistort_images`")
    cameras, unposed = [], []
    try:
        images = sorted(rec.images.values(), key=lambda im: im.name)
    except UnicodeDecodeError as err:  # pycolmap decodes the names as UTF-8 only when asked for them
        raise InputError(f"{model_dir}: an image name in the COLMAP model is not UTF-8 ({err.reason} at byte "
                         f"{err.start})") from None
    for image in images:
        if not image.has_pose:
            unposed.append(image.name)
            continue
        pose = _cam_from_world(image)
        cam = rec.cameras[image.camera_id]
        cameras.append(checked_camera(model_dir, np.asarray(cam.calibration_matrix()),
                                      np.asarray(pose.rotation.matrix()), np.asarray(pose.translation),
                                      int(cam.width), int(cam.height), image.name))
    if unposed:
        warnings.warn(f"{model_dir}: skipped {len(unposed)} images without a pose: {', '.join(unposed)}",
                      stacklevel=2)
    if not cameras:
        raise InputError(f"{model_dir}: the COLMAP model has no posed image")
    return cameras


def load_colmap_scene(model_dir: str | Path, images_dir: str | Path, mesh_path: str | Path,
                      texture_paths: Sequence[str | Path] | None = None, scale: float = 1.0,
                      name: str | None = None, vertex_frame: str = "auto") -> Scene:
    """Load a scene posed by COLMAP: cameras, photos, textured mesh and atlas.

    Args:
        model_dir: the (undistorted) sparse model, see :func:`read_colmap_cameras`.
        images_dir: the folder of the (undistorted) photos named as in the model.
        mesh_path: an OpenMVS textured ``.ply`` or a Meshroom/AliceVision ``.obj``, in the model's
            world frame (see :func:`rrd_pipeline.loaders.read_textured_mesh`).
        texture_paths: for a ``.ply``, texture files overriding its ``TextureFile`` comments
            (tile 1001 + k for the k-th).
        scale: photo resize factor in (0, 1]; photos and cameras are scaled together.
        name: scene label; default the mesh file's stem.
        vertex_frame: of a Meshroom ``.obj`` mesh (:func:`rrd_pipeline.loaders.read_textured_mesh`).
    Returns:
        The :class:`Scene`, cameras sorted by image name, photos ``uint8``.
    Raises:
        InputError: any problem with the inputs, naming the file.
    """
    # Imported here: the package module imports this one and defines the mesh dispatcher.
    from rrd_pipeline.loaders import read_textured_mesh
    from rrd_pipeline.loaders.images import load_photos

    mesh, atlas = read_textured_mesh(mesh_path, texture_paths, vertex_frame)
    cameras, photos = load_photos(read_colmap_cameras(model_dir), images_dir, scale)
    return Scene(mesh, atlas, cameras, photos, name or Path(mesh_path).stem, [c.name for c in cameras])
