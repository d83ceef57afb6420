"""Rasterization of a textured mesh into one camera: coverage, face, UVs and their derivatives.

One interface, three backends (``"auto"`` takes the first available):

- ``"nvdiffrast"``: nvdiffrast's CUDA rasterizer, when CUDA and nvdiffrast are present;
- ``"embree"``: Embree ray casting through a pixel centre each (the ``embreex`` package), on any CPU;
- ``"cpu"``: a vectorised scanline z-buffer rasterizer in torch (float64 edge functions), needing nothing else.

All sample coverage at pixel centres (``(j + 0.5, i + 0.5)``, see :mod:`rrd.scene`), resolve occlusion
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

__all__ = ["BACKENDS", "Fragments", "rasterize", "available_backends"]

BACKENDS = ("auto", "nvdiffrast", "embree", "cpu")
"""The rasterizer choices: "auto" takes the first of :func:`available_backends`."""

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
def _embree_ok() -> bool:
    try:
        import embreex.rtcore_scene  # noqa: F401
    except ImportError:
        return False
    return True


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
    return (["nvdiffrast"] if _nvdiffrast_ok() else []) + (["embree"] if _embree_ok() else []) + ["cpu"]


def rasterize(mesh: TexturedMesh, camera: Camera, backend: str = "auto", near: float = 1e-6) -> Fragments:
    """Rasterize ``mesh`` into ``camera`` at its full image size.

    Args:
        mesh: the textured mesh (world coordinates, per-corner UVs).
        camera: the view; the output has ``(camera.height, camera.width)`` pixels.
        backend: "auto" (the first of :func:`available_backends`), "nvdiffrast", "embree" or "cpu".
        near: faces with a vertex at camera z <= near are skipped (world units).
    Returns:
        :class:`Fragments` on the CPU (the nvdiffrast backend's results are moved back).
    """
    if backend == "auto":
        backend = available_backends()[0]
    if backend == "cpu":
        return _rasterize_cpu(mesh, camera, near)
    if backend == "embree":
        if not _embree_ok():
            raise InputError("backend 'embree' needs the embreex package (pip install embreex); use backend 'cpu'")
        return _rasterize_embree(mesh, camera, near)
    if backend == "nvdiffrast":
        if not _nvdiffrast_ok():
            raise InputError("backend 'nvdiffrast' needs CUDA and the nvdiffrast package "
                             "(pip install 'rrd[gpu]'); use backend 'cpu'")
        return _rasterize_nvdiffrast(mesh, camera, near)
    raise InputError(f"unknown rasterizer backend {backend!r}; choose one of: {', '.join(BACKENDS)}")


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


def _expand(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For counts (N,): (owner index, position within owner) of every one of the sum(counts) items."""
    owner = torch.repeat_interleave(torch.arange(len(counts)), counts)
    return owner, torch.arange(len(owner)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)


def _spans(fxy, area, ids, y0, rows, W):
    """Covered pixel spans of faces ``ids`` on their bounding-box rows (scanline coverage).

    On row i, each edge's function is affine in x, so "pixel centre (j + 0.5, i + 0.5) is inside"
    is an interval of j per edge; a span is the intersection of the three intervals.
    Returns (index into ``ids``, row, first column, pixel count) per (face, row) with a non-empty span.
    """
    owner, k = _expand(rows)
    f = ids[owner]
    y = y0[owner] + k
    cy = y.double() + 0.5
    p = fxy[f]
    s = torch.sign(area[f])
    lo = torch.zeros_like(y)
    hi = torch.full_like(y, W - 1)
    for a, b in ((1, 2), (2, 0), (0, 1)):
        ax, ay, bx, by = p[:, a, 0], p[:, a, 1], p[:, b, 0], p[:, b, 1]
        alpha = -(by - ay) * s  # edge function = alpha * x + beta >= 0 inside
        beta = ((bx - ax) * (cy - ay) + (by - ay) * ax) * s
        with torch.no_grad():
            root = -beta / alpha - 0.5
        rising, falling = alpha > 0, alpha < 0
        lo = torch.where(rising, torch.maximum(lo, torch.ceil(root).clamp(-1, W).long()), lo)
        hi = torch.where(falling, torch.minimum(hi, torch.floor(root).clamp(-1, W).long()), hi)
        hi = torch.where((alpha == 0) & (beta < 0), -1, hi)
    count = (hi - lo + 1).clamp_min(0)
    keep = count > 0
    return owner[keep], y[keep], lo[keep], count[keep]


def _rasterize_cpu(mesh: TexturedMesh, camera: Camera, near: float) -> Fragments:
    H, W = camera.height, camera.width
    xy, z = _screen(mesh, camera)
    faces = torch.from_numpy(mesh.faces)
    fxy = xy[faces]  # (F, 3, 2)
    fz = z[faces]  # (F, 3)
    area = _edge(fxy[:, 0, 0], fxy[:, 0, 1], fxy[:, 1, 0], fxy[:, 1, 1], fxy[:, 2, 0], fxy[:, 2, 1])
    # Row i is a candidate when its centre i + 0.5 lies inside the face's vertical extent.
    y0 = torch.ceil(fxy[:, :, 1].amin(1) - 0.5).clamp(0, H)
    y1 = torch.floor(fxy[:, :, 1].amax(1) - 0.5).clamp(-1, H - 1)
    x_in = (fxy[:, :, 0].amax(1) >= 0) & (fxy[:, :, 0].amin(1) <= W)
    visible = (fz > near).all(1) & (area != 0) & torch.isfinite(fxy).all(2).all(1) & (y1 >= y0) & x_in
    ids = torch.nonzero(visible).squeeze(1)
    y0, rows = y0[ids].long(), (y1[ids] - y0[ids] + 1).long()
    widths = (fxy[ids, :, 0].amax(1).clamp(0, W) - fxy[ids, :, 0].amin(1).clamp(0, W)).long() + 2
    # 1/z is affine in screen space: 1/z = sum_i l_i / z_i with l_i the screen barycentrics.
    inv_z_plane = _inverse_depth_planes(fxy[ids], fz[ids], area[ids])

    zbuf = torch.full((H * W,), torch.iinfo(torch.int64).max, dtype=torch.int64)
    for sel in _chunks(rows * widths, _CHUNK):
        local, y, x0, count = _spans(fxy, area, ids[sel], y0[sel], rows[sel], W)
        local = local + sel.start
        f = ids[local]
        for part in _chunks(count, _CHUNK):
            owner, k = _expand(count[part])
            x = x0[part][owner] + k
            yy = y[part][owner]
            plane = inv_z_plane[local[part][owner]]
            inv_depth = plane[:, 0] * (x.double() + 0.5) + plane[:, 1] * (yy.double() + 0.5) + plane[:, 2]
            # Positive float32 bit patterns order like the floats: depth in the high word, face id breaks ties.
            depth_bits = (1.0 / inv_depth).float().view(torch.int32).long()
            zbuf.scatter_reduce_(0, yy * W + x, (depth_bits << 32) | f[part][owner], reduce="amin")

    covered = zbuf != torch.iinfo(torch.int64).max
    pix = torch.nonzero(covered).squeeze(1)
    f = zbuf[pix] & 0xFFFFFFFF
    face = torch.full((H * W,), -1, dtype=torch.int64)
    face[pix] = f
    bary, uv, uv_dx, uv_dy, depth = _interpolate(fxy[f], fz[f], torch.from_numpy(mesh.uv).double()[f],
                                                 (pix % W).double() + 0.5, (pix // W).double() + 0.5)
    return _assemble(H, W, pix, face, bary, depth, uv, uv_dx, uv_dy)


def _chunks(sizes: torch.Tensor, budget: int):
    """Consecutive slices of ``sizes`` whose sums stay under ``budget`` (at least one item each)."""
    ends = torch.cumsum(sizes, 0)
    start = 0
    while start < len(sizes):
        base = int(ends[start - 1]) if start > 0 else 0
        stop = max(int(torch.searchsorted(ends, base + budget, right=True)), start + 1)
        yield slice(start, stop)
        start = stop


def _inverse_depth_planes(p, zf, area):
    """(N, 3) coefficients (a, b, c) with 1/z = a x + b y + c over each face's screen plane."""
    nxt, prv = [1, 2, 0], [2, 0, 1]
    ax, ay = p[:, nxt, 0], p[:, nxt, 1]
    bx, by = p[:, prv, 0], p[:, prv, 1]
    dl_dx = -(by - ay) / area[:, None]
    dl_dy = (bx - ax) / area[:, None]
    l0 = _edge(ax, ay, bx, by, torch.zeros_like(ax), torch.zeros_like(ay)) / area[:, None]
    return torch.stack([(dl_dx / zf).sum(1), (dl_dy / zf).sum(1), (l0 / zf).sum(1)], dim=1)


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


def _rasterize_embree(mesh: TexturedMesh, camera: Camera, near: float) -> Fragments:
    from embreex import rtcore_scene
    from embreex.mesh_construction import TriangleMesh

    H, W = camera.height, camera.width
    scene = rtcore_scene.EmbreeScene()
    TriangleMesh(scene, mesh.vertices[mesh.faces])
    # One ray per pixel centre; its camera-space direction K^-1 (x, y, 1) has z = 1, so the hit
    # distance along it is the camera depth.
    xs = np.arange(W, dtype=np.float64) + 0.5
    inv_k = np.linalg.inv(camera.K)
    face = np.full(H * W, -1, dtype=np.int64)
    rows_per_chunk = max(1, (1 << 20) // W)
    origin = camera.center.astype(np.float32)
    for r0 in range(0, H, rows_per_chunk):
        ys = np.arange(r0, min(H, r0 + rows_per_chunk), dtype=np.float64) + 0.5
        pix = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None], 1.0), axis=-1).reshape(-1, 3)
        dirs = ((pix @ inv_k.T) @ camera.R).astype(np.float32)
        hit = scene.run(np.broadcast_to(origin, dirs.shape).copy(), dirs, output=1)
        prim = hit["primID"].astype(np.int64)
        prim[hit["tfar"] <= near] = -1
        face[r0 * W: r0 * W + len(prim)] = prim
    face_t = torch.from_numpy(face)
    pix = torch.nonzero(face_t >= 0).squeeze(1)
    f = face_t[pix]
    xy, z = _screen(mesh, camera)
    faces = torch.from_numpy(mesh.faces)
    # Attributes from the shared exact formulas, as for nvdiffrast: backends differ only in coverage and visibility.
    bary, uv, uv_dx, uv_dy, depth = _interpolate(xy[faces[f]], z[faces[f]], torch.from_numpy(mesh.uv).double()[f],
                                                 (pix % W).double() + 0.5, (pix // W).double() + 0.5)
    return _assemble(H, W, pix, face_t, bary, depth, uv, uv_dx, uv_dy)


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
