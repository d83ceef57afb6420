"""The embedded default scene: a small, deterministic stand-in for an MVS reconstruction.

It is built to have what matters for atlas compression:

- a reconstructed-looking mesh: a subdivided icosphere displaced by smooth noise into a boulder;
- a highly fragmented atlas: the surface is cut into many small charts (at most a few faces each, as
  MVS texturing makes them when every face picks its own best photo), packed with gutters; every chart
  carries a 2-texel rim of extrapolated colour and the rest of the atlas is black;
- cameras on two rings around the object and photos rendered from the *true* surface colour (a
  procedural 3D field, not the atlas), with a little sensor noise, so mesh and photos line up exactly
  and the atlas is only a sampled approximation of what the photos show.
"""

from __future__ import annotations

import numpy as np
from rrd.rasterize import rasterize
from rrd.scene import Atlas, Camera, Scene, TexturedMesh, look_at

__all__ = ["make_demo_scene", "surface_color", "icosphere"]

_RIM_TEXELS = 2.0
_GUTTER_TEXELS = 4


def icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere: (V, 3) float64 vertices and (F, 3) int64 faces, counter-clockwise seen from outside."""
    t = (1.0 + 5 ** 0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
         (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
         (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
         (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(p, dtype=np.float64) / np.linalg.norm(p) for p in v]
    faces = f
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def mid(a: int, b: int) -> int:
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(verts), np.array(faces, dtype=np.int64)


def _waves(rng: np.random.Generator, n: int, freq: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    dirs = rng.normal(size=(n, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return dirs * rng.uniform(*freq, size=(n, 1)), rng.uniform(0, 2 * np.pi, size=n)


def surface_color(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """The true surface colour of the demo object.

    Args:
        points: (N, 3) world positions.
    Returns:
        (N, 3) float64 RGB in [0, 1]: a smooth base tint, sharp-edged bands (like strata or brick courses)
        and fine detail, so the atlas has edges and texture for the codecs to spend bits on.
    """
    rng = np.random.default_rng(seed + 1000)
    p = np.asarray(points, dtype=np.float64)
    k_lo, ph_lo = _waves(rng, 3, (1.0, 2.0))
    k_hi, ph_hi = _waves(rng, 8, (20.0, 60.0))
    base = 0.5 + 0.25 * np.sin(p @ k_lo.T + ph_lo)  # (N, 3): one slow wave per channel
    bands = np.tanh(4.0 * np.sin(7.0 * p[:, 2] + 2.0 * np.sin(3.0 * p[:, 0])))[:, None]
    detail = np.sin(p @ k_hi.T + ph_hi).mean(axis=1, keepdims=True)
    tint = np.array([[0.55, 0.45, 0.35]])
    rgb = base * (0.75 + 0.25 * tint) + 0.12 * bands * np.array([[1.0, 0.8, 0.5]]) + 0.3 * detail
    return np.clip(rgb, 0.0, 1.0)


def _boulder(subdivisions: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    verts, faces = icosphere(subdivisions)
    rng = np.random.default_rng(seed)
    k, ph = _waves(rng, 6, (1.5, 4.0))
    radius = 1.0 + 0.08 * np.sin(verts @ k.T + ph).sum(axis=1)
    return verts * radius[:, None] * np.array([1.0, 0.8, 0.7]), faces


def _charts(verts: np.ndarray, faces: np.ndarray, max_faces: int, rng: np.random.Generator) -> list[list[int]]:
    """Greedy region growing into small charts of near-coplanar neighbouring faces."""
    n = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    edge_faces: dict[tuple[int, int], list[int]] = {}
    for fi, tri in enumerate(faces):
        for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
            edge_faces.setdefault((min(a, b), max(a, b)), []).append(fi)
    neighbours = [[] for _ in range(len(faces))]
    for fs in edge_faces.values():
        for a in fs:
            neighbours[a] += [b for b in fs if b != a]
    chart_of = -np.ones(len(faces), dtype=np.int64)
    charts = []
    for seed_face in rng.permutation(len(faces)):
        if chart_of[seed_face] >= 0:
            continue
        size = int(rng.integers(1, max_faces + 1))
        chart, frontier = [int(seed_face)], [int(seed_face)]
        chart_of[seed_face] = len(charts)
        while frontier and len(chart) < size:
            f = frontier.pop(0)
            for g in neighbours[f]:
                if chart_of[g] < 0 and len(chart) < size and n[g] @ n[seed_face] > 0.9:
                    chart_of[g] = len(charts)
                    chart.append(g)
                    frontier.append(g)
        charts.append(chart)
    return charts


def _flatten(verts: np.ndarray, faces: np.ndarray, chart: list[int]) -> np.ndarray:
    """(len(chart), 3, 2) planar projection of a chart's faces along its mean normal (world units)."""
    tri = verts[faces[chart]]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).sum(axis=0)
    n /= np.linalg.norm(n)
    a = np.cross(n, [1.0, 0.0, 0.0] if abs(n[0]) < 0.9 else [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(n, a)
    return np.stack([tri @ a, tri @ b], axis=-1)


def _cross2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z component of the cross product of (..., 2) vectors."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _layout(verts, faces, charts, atlas_size: int, fill: float) -> np.ndarray:
    """Pack the charts with shelf packing; returns (F, 3, 2) texel positions (x right, y down)."""
    flats = []
    for chart in charts:
        flat = _flatten(verts, faces, chart)
        # A chart whose projection folds over itself is split into single faces.
        signed = _cross2(flat[:, 1] - flat[:, 0], flat[:, 2] - flat[:, 0])
        if len(chart) > 1 and not ((signed > 0).all() or (signed < 0).all()):
            flats += [(f, _flatten(verts, faces, [f])) for f in chart]
        else:
            flats.append((chart, flat))
    area = sum(abs(_cross2(f[:, 1] - f[:, 0], f[:, 2] - f[:, 0])).sum() / 2 for _, f in flats)
    density = np.sqrt(fill * atlas_size ** 2 / area)  # texels per world unit
    pad = _GUTTER_TEXELS + 2 * _RIM_TEXELS
    while True:
        pos = np.zeros((len(faces), 3, 2))
        order = sorted(range(len(flats)), key=lambda i: -np.ptp(flats[i][1][..., 1]))
        x = y = shelf = 0.0
        ok = True
        for i in order:
            ids, flat = flats[i]
            p = (flat - flat.reshape(-1, 2).min(axis=0)) * density
            w, h = p[..., 0].max(), p[..., 1].max()
            if x + w + pad > atlas_size:
                x, y, shelf = 0.0, y + shelf, 0.0
            if y + h + pad > atlas_size:
                ok = False
                break
            pos[np.atleast_1d(ids)] = p + np.array([x + pad / 2, y + pad / 2])
            x += np.ceil(w + pad)
            shelf = max(shelf, np.ceil(h + pad))
        if ok:
            return pos
        density *= 0.95


def _bake(verts, faces, pos: np.ndarray, atlas_size: int, seed: int) -> np.ndarray:
    """Atlas texels: the surface colour at each texel's point, on and up to _RIM_TEXELS around every face."""
    S = atlas_size
    atlas = np.zeros((S, S, 3))
    best = np.full((S, S), np.inf)  # distance (texels) to the face that owns each texel
    ys, xs = np.mgrid[0:S, 0:S]
    for f in range(len(faces)):
        p = pos[f]
        lo = np.maximum(np.floor(p.min(axis=0) - _RIM_TEXELS - 1), 0).astype(int)
        hi = np.minimum(np.ceil(p.max(axis=0) + _RIM_TEXELS + 1), S - 1).astype(int)
        cx = xs[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] + 0.5
        cy = ys[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] + 0.5
        q = np.stack([cx, cy], axis=-1)
        # Barycentrics (affine, extrapolated outside the face) and the distance to the face.
        m = np.array([p[1] - p[0], p[2] - p[0]]).T
        l12 = (q - p[0]) @ np.linalg.inv(m).T
        bary = np.concatenate([1 - l12.sum(-1, keepdims=True), l12], axis=-1)
        dist = np.full(cx.shape, np.inf)
        inside = (bary >= 0).all(-1)
        dist[inside] = 0.0
        for a, b in ((0, 1), (1, 2), (2, 0)):
            ab = p[b] - p[a]
            t = np.clip(((q - p[a]) @ ab) / (ab @ ab), 0, 1)
            d = np.linalg.norm(q - (p[a] + t[..., None] * ab), axis=-1)
            dist = np.minimum(dist, np.where(inside, 0.0, d))
        win = (dist <= _RIM_TEXELS) & (dist < best[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1])
        if not win.any():
            continue
        point = bary[win] @ verts[faces[f]]
        atlas[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1][win] = surface_color(point, seed)
        best[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1][win] = dist[win]
    return atlas


def _cameras(n_views: int, width: int, height: int) -> list[Camera]:
    K = np.array([[1.1 * width, 0, width / 2], [0, 1.1 * width, height / 2], [0, 0, 1]])
    cams = []
    for i in range(n_views):
        azimuth = 2 * np.pi * i / n_views
        elevation = np.radians(15.0 if i % 2 == 0 else 40.0)
        eye = 3.2 * np.array([np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation),
                              np.sin(elevation)])
        cams.append(look_at(eye, np.zeros(3), np.array([0.0, 0.0, 1.0]), K, width, height, f"view_{i:02d}.png"))
    return cams


def _photo(mesh: TexturedMesh, cam: Camera, seed: int, rng: np.random.Generator) -> np.ndarray:
    frag = rasterize(mesh, cam, "cpu")
    ys = (np.arange(cam.height)[:, None] + 0.5) / cam.height
    sky = np.broadcast_to(np.array([0.55, 0.7, 0.9]) - 0.25 * ys[..., None], (cam.height, cam.width, 3))
    img = sky.copy()
    mask = frag.mask.numpy()
    face = frag.face.numpy()[mask]
    bary = frag.bary.numpy()[mask].astype(np.float64)
    points = np.einsum("nk,nkd->nd", bary, mesh.vertices.astype(np.float64)[mesh.faces[face]])
    img[mask] = surface_color(points, seed)
    img += rng.normal(scale=1.5 / 255, size=img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def make_demo_scene(seed: int = 0, width: int = 384, height: int = 288, n_views: int = 10,
                    atlas_size: int = 512, subdivisions: int = 3, max_chart_faces: int = 6) -> Scene:
    """Build the demo scene (deterministic for a given seed).

    Args:
        seed: random seed of shape, charts and sensor noise.
        width, height: photo size in pixels.
        n_views: number of cameras (alternating 15 and 40 degrees of elevation).
        atlas_size: side of the single square atlas tile (UDIM 1001), texels.
        subdivisions: icosphere subdivisions (3 gives 1280 faces).
        max_chart_faces: the largest chart, in faces.
    """
    rng = np.random.default_rng(seed)
    verts, faces = _boulder(subdivisions, seed)
    charts = _charts(verts, faces, max_chart_faces, rng)
    pos = _layout(verts, faces, charts, atlas_size, fill=0.3)
    uv = np.stack([pos[..., 0] / atlas_size, 1.0 - pos[..., 1] / atlas_size], axis=-1)
    mesh = TexturedMesh(verts, faces, uv)
    atlas = Atlas(_bake(verts, faces, pos, atlas_size, seed), (1001,), ("texture_1001.png",))
    # Quantise the atlas as an 8-bit texture file would be.
    atlas = atlas.with_tiles(np.round(atlas.tiles * 255) / 255)
    cams = _cameras(n_views, width, height)
    photos = [_photo(mesh, cam, seed, rng) for cam in cams]
    return Scene(mesh, atlas, cams, photos, name="demo", photo_names=[c.name for c in cams])
