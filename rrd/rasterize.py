"""Rasterization of a textured mesh into one camera: coverage, face, UVs and their derivatives.

One interface, two backends:

- ``"cpu"``: a vectorised z-buffer rasterizer in torch (float64 edge functions), on any machine;
- ``"nvdiffrast"``: nvdiffrast's CUDA rasterizer, used by ``"auto"`` when CUDA and nvdiffrast are present.

Both sample coverage at pixel centres (``(j + 0.5, i + 0.5)``, see :mod:`rrd.scene`), resolve occlusion
with a depth test, and interpolate UVs perspective-correctly. Faces are drawn double-sided: a
reconstructed mesh's winding is not reliable. Faces with a vertex behind the near plane are skipped
(photogrammetry cameras look at the surface from outside; clipping would only matter for geometry
crossing the camera).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from rrd.errors import InputError
from rrd.scene import Camera, TexturedMesh

__all__ = ["Fragments", "rasterize", "available_backends"]

_CHUNK = 1 << 22  # candidate (pixel, face) pairs per chunk: bounds peak memory to a few hundred MB


@dataclass(frozen=True)
class Fragments:
    """What one camera sees of the mesh, per pixel (row 0 at the top).

    Attributes:
        face: (H, W) int64 index of the visible face, -1 where the mesh does not cover the pixel centre.
        bary: (H, W, 3) float32 perspective-correct barycentrics of the pixel centre in that face (0 if uncovered).
        depth: (H, W) float32 camera-space z of the visible surface (inf if uncovered).
        uv: (H, W, 2) float32 UDIM-global texture coordinates (v up; 0 if uncovered).
        uv_dx, uv_dy: (H, W, 2) float32 derivatives of ``uv`` per pixel step to the right / down.
    """

    face: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor
    uv: torch.Tensor
    uv_dx: torch.Tensor
    uv_dy: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """(H, W) bool: True where the mesh covers the pixel centre."""
        return self.face >= 0

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.face.shape[0]), int(self.face.shape[1])


@lru_cache(maxsize=1)
def _nvdiffrast_ok() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import nvdiffrast.torch  # noqa: F401
    except ImportError:
        return False
    return True


def available_backends() -> list[str]:
    """The backends usable on this machine, in the order ``"auto"`` prefers them."""
    return (["nvdiffrast"] if _nvdiffrast_ok() else []) + ["cpu"]


def rasterize(mesh: TexturedMesh, camera: Camera, backend: str = "auto", near: float = 1e-6) -> Fragments:
    """Rasterize ``mesh`` into ``camera`` at its full image size.

    Args:
        mesh: the textured mesh (world coordinates, per-corner UVs).
        camera: the view; the output has ``(camera.height, camera.width)`` pixels.
        backend: "auto" (nvdiffrast if usable, else cpu), "cpu" or "nvdiffrast".
        near: faces with a vertex at camera z <= near are skipped (world units).
    Returns:
        :class:`Fragments` on the CPU (the nvdiffrast backend's results are moved back).
    """
    if backend == "auto":
        backend = available_backends()[0]
    if backend == "cpu":
        return _rasterize_cpu(mesh, camera, near)
    if backend == "nvdiffrast":
        if not _nvdiffrast_ok():
            raise InputError("backend 'nvdiffrast' needs CUDA and the nvdiffrast package "
                             "(pip install 'rrd[gpu]'); use backend 'cpu'")
        return _rasterize_nvdiffrast(mesh, camera, near)
    raise InputError(f"unknown rasterizer backend {backend!r}; choose one of auto, cpu, nvdiffrast")


def _screen(mesh: TexturedMesh, camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """(V, 2) float64 pixel coordinates and (V,) camera z of the mesh vertices."""
    v = torch.from_numpy(mesh.vertices).double()
    cam = v @ torch.from_numpy(camera.R).T + torch.from_numpy(camera.t)
    z = cam[:, 2]
    xy = (cam @ torch.from_numpy(camera.K).T)[:, :2] / z.clamp_min(1e-300)[:, None]
    return xy, z


def _edge(ax, ay, bx, by, px, py):
    """Twice the signed area of (a, b, p); positive when p is left of a->b in a y-down frame."""
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


def _rasterize_cpu(mesh: TexturedMesh, camera: Camera, near: float) -> Fragments:
    H, W = camera.height, camera.width
    xy, z = _screen(mesh, camera)
    faces = torch.from_numpy(mesh.faces)
    fxy = xy[faces]  # (F, 3, 2)
    fz = z[faces]  # (F, 3)
    area = _edge(fxy[:, 0, 0], fxy[:, 0, 1], fxy[:, 1, 0], fxy[:, 1, 1], fxy[:, 2, 0], fxy[:, 2, 1])
    # Pixel j is a candidate when its centre j + 0.5 lies inside the face's bounding box.
    lo = torch.ceil(fxy.amin(1) - 0.5)
    hi = torch.floor(fxy.amax(1) - 0.5)
    visible = (fz > near).all(1) & (area != 0) & torch.isfinite(fxy).all(2).all(1)
    lo[:, 0].clamp_(0, W)
    lo[:, 1].clamp_(0, H)
    hi[:, 0].clamp_(-1, W - 1)
    hi[:, 1].clamp_(-1, H - 1)
    visible &= (hi >= lo).all(1)
    ids = torch.nonzero(visible).squeeze(1)
    x0, y0 = lo[ids, 0].long(), lo[ids, 1].long()
    bw = (hi[ids, 0].long() - x0 + 1)
    count = bw * (hi[ids, 1].long() - y0 + 1)

    zbuf = torch.full((H * W,), torch.iinfo(torch.int64).max, dtype=torch.int64)
    ends = torch.cumsum(count, 0)
    start = 0
    while start < len(ids):
        # Take faces until the chunk holds _CHUNK candidates (at least one face).
        base = ends[start - 1] if start > 0 else torch.tensor(0)
        stop = int(torch.searchsorted(ends, base + _CHUNK, right=True))
        stop = max(stop, start + 1)
        sel = slice(start, stop)
        n = count[sel]
        local_face = torch.repeat_interleave(torch.arange(stop - start), n)
        offset = torch.arange(int(n.sum())) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
        px = x0[sel][local_face] + offset % bw[sel][local_face]
        py = y0[sel][local_face] + offset // bw[sel][local_face]
        f = ids[sel][local_face]
        cx, cy = px.double() + 0.5, py.double() + 0.5
        p = fxy[f]
        s = torch.sign(area[f])
        w0 = _edge(p[:, 1, 0], p[:, 1, 1], p[:, 2, 0], p[:, 2, 1], cx, cy) * s
        w1 = _edge(p[:, 2, 0], p[:, 2, 1], p[:, 0, 0], p[:, 0, 1], cx, cy) * s
        w2 = _edge(p[:, 0, 0], p[:, 0, 1], p[:, 1, 0], p[:, 1, 1], cx, cy) * s
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        f, w0, w1, w2 = f[inside], w0[inside], w1[inside], w2[inside]
        pix = (py * W + px)[inside]
        zf = fz[f]
        inv_depth = (w0 / zf[:, 0] + w1 / zf[:, 1] + w2 / zf[:, 2]) / (w0 + w1 + w2)
        # Positive float32 bit patterns order like the floats: depth in the high word, face id breaks ties.
        depth_bits = (1.0 / inv_depth).float().view(torch.int32).long()
        zbuf.scatter_reduce_(0, pix, (depth_bits << 32) | f, reduce="amin")
        start = stop

    covered = zbuf != torch.iinfo(torch.int64).max
    pix = torch.nonzero(covered).squeeze(1)
    f = zbuf[pix] & 0xFFFFFFFF
    face = torch.full((H * W,), -1, dtype=torch.int64)
    face[pix] = f
    bary, uv, uv_dx, uv_dy, depth = _interpolate(fxy[f], fz[f], torch.from_numpy(mesh.uv).double()[f],
                                                 (pix % W).double() + 0.5, (pix // W).double() + 0.5)
    return _assemble(H, W, pix, face, bary, depth, uv, uv_dx, uv_dy)


def _interpolate(p, zf, uvf, cx, cy):
    """Perspective-correct barycentrics, depth, UVs and analytic UV derivatives at pixel centres.

    p: (N, 3, 2) screen vertices, zf: (N, 3) camera z, uvf: (N, 3, 2) corner UVs, cx, cy: (N,) points.
    Screen-space barycentrics l_i are affine in (x, y); the perspective-correct value of an attribute a
    is (sum l_i a_i / z_i) / (sum l_i / z_i), differentiated with the quotient rule.
    """
    area = _edge(p[:, 0, 0], p[:, 0, 1], p[:, 1, 0], p[:, 1, 1], p[:, 2, 0], p[:, 2, 1])
    nxt, prv = [1, 2, 0], [2, 0, 1]
    ax, ay = p[:, nxt, 0], p[:, nxt, 1]  # edge i runs from vertex i+1 to vertex i+2
    bx, by = p[:, prv, 0], p[:, prv, 1]
    lam = _edge(ax, ay, bx, by, cx[:, None], cy[:, None]) / area[:, None]  # (N, 3)
    dlam_dx = -(by - ay) / area[:, None]
    dlam_dy = (bx - ax) / area[:, None]
    q = lam / zf
    den = q.sum(1, keepdim=True)
    bary = q / den
    uv = (bary[:, :, None] * uvf).sum(1)

    def derivative(dlam):
        dq = dlam / zf
        dnum = (dq[:, :, None] * uvf).sum(1)
        return (dnum - uv * dq.sum(1, keepdim=True)) / den

    return bary, uv, derivative(dlam_dx), derivative(dlam_dy), 1.0 / den.squeeze(1)


def _assemble(H, W, pix, face, bary, depth, uv, uv_dx, uv_dy) -> Fragments:
    def dense(values, fill, channels):
        out = torch.full((H * W, channels) if channels else (H * W,), fill, dtype=torch.float32)
        out[pix] = values.float()
        return out.reshape((H, W, channels) if channels else (H, W))

    return Fragments(face=face.reshape(H, W), bary=dense(bary, 0.0, 3), depth=dense(depth, float("inf"), 0),
                     uv=dense(uv, 0.0, 2), uv_dx=dense(uv_dx, 0.0, 2), uv_dy=dense(uv_dy, 0.0, 2))


@lru_cache(maxsize=1)
def _glctx():
    import nvdiffrast.torch as dr

    return dr.RasterizeCudaContext()


def _rasterize_nvdiffrast(mesh: TexturedMesh, camera: Camera, near: float) -> Fragments:
    import nvdiffrast.torch as dr

    H, W = camera.height, camera.width
    dev = torch.device("cuda")
    xy, z = _screen(mesh, camera)
    faces = torch.from_numpy(mesh.faces)
    # Clip space chosen so that NDC y = -1 is image row 0 (nvdiffrast writes row 0 first) and pixel
    # centres land where the CPU backend samples them: x_ndc = 2 x_pix / W - 1.
    far = float(z.max()) * 2.0 + 1.0
    zc = z.clamp_min(near)
    clip = torch.stack([(2 * xy[:, 0] / W - 1) * zc, (2 * xy[:, 1] / H - 1) * zc,
                        ((far + near) * zc - 2 * far * near) / (far - near), zc], dim=1)
    keep = (z[faces] > near).all(1)
    face_ids = torch.nonzero(keep).squeeze(1)
    tri = faces[face_ids].to(torch.int32)
    rast, _ = dr.rasterize(_glctx(), clip.float().to(dev)[None].contiguous(), tri.to(dev).contiguous(),
                           resolution=[H, W])
    rast = rast[0].cpu()
    tri_id = rast[..., 3].round().long().reshape(-1) - 1
    pix = torch.nonzero(tri_id >= 0).squeeze(1)
    f = face_ids[tri_id[pix]]
    face = torch.full((H * W,), -1, dtype=torch.int64)
    face[pix] = f
    # Recompute the attributes with the shared exact formulas from nvdiffrast's face choice, so both
    # backends interpolate identically and differ only where they resolve coverage or depth differently.
    bary, uv, uv_dx, uv_dy, depth = _interpolate(xy[faces[f]], z[faces[f]], torch.from_numpy(mesh.uv).double()[f],
                                                 (pix % W).double() + 0.5, (pix // W).double() + 0.5)
    return _assemble(H, W, pix, face, bary, depth, uv, uv_dx, uv_dy)
