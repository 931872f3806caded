"""B-mode-like full frames for the synthetic cohort: speckled liver with one lesion.

A frame is simulated the way a scanner forms it: complex Gaussian scatterers weighted by a
tissue echogenicity map are blurred by an anisotropic point-spread function in (depth, line)
beam coordinates, enveloped (Rayleigh speckle), attenuated along each beam (cumulative, so
cysts show posterior enhancement) with time-gain compensation, log-compressed and finally
scan-converted into a convex (sector) or linear (rectangular) field of view.

The lesion's look is a blend, set by ``image_signal`` in [0, 1], between a class-neutral
random pattern and its subtype's pattern (hemangioma hyperechoic and sharp; HCC hypo/iso,
mosaic, with a hypoechoic halo; metastasis target-like; cyst anechoic with posterior
enhancement; FNH near-isoechoic with a central scar; ...). Both patterns are random per
lesion, so echo distributions overlap at any signal; at 0 the image says nothing about the label.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import sparse
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.special import expit

from liver_mm.synth.looks import LesionLook, draw_look
from liver_mm.synth.site import Scanner

#: probes: (kind, half-angle of the sector in degrees, apex distance above the field / H)
PROBES = {"convex": ("sector", 34.0, 0.45), "convex_deep": ("sector", 26.0, 0.7), "linear": ("linear", 0.0, 0.0)}
_PROBE_P = (0.55, 0.25, 0.2)
_TOP, _BOTTOM = 0.04, 0.97  # field of view rows, as fractions of H
_DB_FLOOR, _DB_SPAN = -22.0, 55.0  # log-compression window (dB) mapped to gray 0..255
_ATTEN_DB = 60.0  # round-trip attenuation over the full depth before TGC (dB)
_NET_DARKENING_DB = 8.0  # what TGC leaves of it at the bottom (dB)


@dataclass(frozen=True)
class SynthFrame:
    """One simulated frame: ``pixels`` uint8 (H, W); boxes (x0, y0, x1, y1), x1/y1 exclusive."""

    pixels: np.ndarray
    bbox: tuple[int, int, int, int]
    bbox2: tuple[int, int, int, int]
    probe: str


@dataclass(frozen=True)
class _Geometry:
    bx: np.ndarray  # (Nd, Nl) frame x of each beam sample
    by: np.ndarray  # (Nd, Nl) frame y of each beam sample
    coords: np.ndarray  # (2, H, W) beam (depth, line) coordinates of each pixel
    inside: np.ndarray  # (H, W) bool: pixel inside the field of view
    scan: sparse.csr_matrix  # (H*W, Nd*Nl) bilinear scan conversion, zero outside the field

    def beam_window(self, x0: float, y0: float, x1: float, y1: float) -> tuple[slice, slice]:
        """Beam-grid (depth, line) slices covering the frame box [x0, x1) x [y0, y1)."""
        h, w = self.inside.shape
        ys = slice(int(np.clip(np.floor(y0), 0, h)), int(np.clip(np.ceil(y1), 0, h)))
        xs = slice(int(np.clip(np.floor(x0), 0, w)), int(np.clip(np.ceil(x1), 0, w)))
        di, li = self.coords[0, ys, xs], self.coords[1, ys, xs]
        ok = self.inside[ys, xs]
        if not ok.any():
            return slice(0, 0), slice(0, 0)
        nd, nl = self.bx.shape
        return (slice(max(int(di[ok].min()) - 2, 0), min(int(di[ok].max()) + 3, nd)),
                slice(max(int(li[ok].min()) - 2, 0), min(int(li[ok].max()) + 3, nl)))


@lru_cache(maxsize=16)
def _geometry(probe: str, height: int, width: int) -> _Geometry:
    kind, half_deg, apex = PROBES[probe]
    top, bottom = _TOP * height, _BOTTOM * height
    nd, nl = int(round(bottom - top)), width
    yy, xx = (g + 0.5 for g in np.mgrid[0:height, 0:width].astype(np.float32))  # pixel centres
    if kind == "linear":
        x_left, x_right = 0.08 * width, 0.92 * width
        lines = np.linspace(x_left, x_right, nl, dtype=np.float32)
        depths = np.linspace(top, bottom, nd, dtype=np.float32)
        by, bx = np.meshgrid(depths, lines, indexing="ij")
        di, li = (yy - top) / (depths[1] - depths[0]), (xx - x_left) / (lines[1] - lines[0])
    else:
        r0 = apex * height
        xa, ya = width / 2.0, top - r0
        half = min(np.deg2rad(half_deg), np.arcsin(min(1.0, (width / 2.0 - 2.0) / (r0 + bottom - top))))
        radii = np.linspace(r0, r0 + bottom - top, nd, dtype=np.float32)
        angles = np.linspace(-half, half, nl, dtype=np.float32)
        bx = xa + radii[:, None] * np.sin(angles)[None, :]
        by = ya + radii[:, None] * np.cos(angles)[None, :]
        di = (np.hypot(xx - xa, yy - ya) - r0) / (radii[1] - radii[0])
        li = (np.arctan2(xx - xa, yy - ya) + half) / (angles[1] - angles[0])
    inside = (di >= 0) & (di <= nd - 1) & (li >= 0) & (li <= nl - 1)
    # bilinear interpolation weights as a sparse matrix: frame = scan @ beam_image
    pix = np.flatnonzero(inside)
    d, ln = di.ravel()[pix], li.ravel()[pix]
    i0, j0 = np.minimum(d.astype(int), nd - 2), np.minimum(ln.astype(int), nl - 2)
    fd, fl = d - i0, ln - j0
    rows = np.tile(pix, 4)
    cols = np.concatenate([i0 * nl + j0, (i0 + 1) * nl + j0, i0 * nl + j0 + 1, (i0 + 1) * nl + j0 + 1])
    vals = np.concatenate([(1 - fd) * (1 - fl), fd * (1 - fl), (1 - fd) * fl, fd * fl]).astype(np.float32)
    scan = sparse.csr_matrix((vals, (rows, cols)), shape=(height * width, nd * nl))
    return _Geometry(bx.astype(np.float32), by.astype(np.float32), np.stack([di, li]), inside, scan)


def _shape_radius(x, y, centre, axes, angle, harmonics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised radius rho (1 on the boundary) and local (u, v) in [-1, 1] of points (x, y)."""
    c, s = np.cos(angle), np.sin(angle)
    u = ((x - centre[0]) * c + (y - centre[1]) * s) / axes[0]
    v = (-(x - centre[0]) * s + (y - centre[1]) * c) / axes[1]
    rho = np.hypot(u, v)
    if harmonics:  # boundary 1 + sum a_k cos(k phi + p_k), with e^{i phi} = (u + iv) / rho
        e = ((u + 1j * v) / np.maximum(rho, 1e-6)).astype(np.complex64)
        coef = {k: a * np.exp(1j * p) for k, a, p in harmonics}
        power, bound = np.ones_like(e), np.ones_like(rho)
        for k in range(1, max(coef) + 1):
            power = power * e
            if k in coef:
                bound += (coef[k] * power).real
        rho = rho / bound
    return rho, u, v


def _place(look: LesionLook, geo: _Geometry, height: int, rng: np.random.Generator):
    """Centre, semi-axes, angle and boundary harmonics of a lesion fully inside the field."""
    aspect = rng.uniform(0.75, 1.35)
    angle = rng.uniform(0.0, np.pi)
    harmonics = [(k, look.irregularity * rng.normal() / k * 2.0, rng.uniform(0, 2 * np.pi)) for k in range(2, 6)]
    radius = max(look.diameter * height / 2.0, 4.0)
    nd, nl = geo.bx.shape
    for attempt in range(12):
        if attempt < 10:
            i, j = int(rng.uniform(0.22, 0.75) * (nd - 1)), int(rng.uniform(0.2, 0.8) * (nl - 1))
        else:  # fall back to the middle of the field, shrinking
            i, j = nd // 2, nl // 2
        centre = (float(geo.bx[i, j]), float(geo.by[i, j]))
        axes = (radius * np.sqrt(aspect), radius / np.sqrt(aspect))
        reach = 1.6 * max(axes)
        y0, y1 = int(max(centre[1] - reach, 0)), int(min(centre[1] + reach + 1, height))
        x0, x1 = int(max(centre[0] - reach, 0)), int(min(centre[0] + reach + 1, geo.inside.shape[1]))
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        rho, _, _ = _shape_radius(xx + 0.5, yy + 0.5, centre, axes, angle, harmonics)
        mask = rho <= 1.0
        rows, cols = np.nonzero(mask)
        box = (x0 + cols.min(), y0 + rows.min(), x0 + cols.max() + 1, y0 + rows.max() + 1) if rows.size else None
        window = geo.inside[y0:y1, x0:x1]
        edge_free = box is not None and box[0] > 1 and box[1] > 1 and box[2] < geo.inside.shape[1] - 1
        if box is not None and edge_free and box[3] < height - 1 and window[mask].all() and rows.size >= 12:
            return centre, axes, angle, harmonics, box
        if attempt >= 4:
            radius = max(radius * 0.85, 3.0)
    raise RuntimeError("could not place a lesion inside the field of view; the frame is too small")


def _second_observer(box, look: LesionLook, size: tuple[int, int], rng) -> tuple[int, int, int, int]:
    """Re-annotated box: a few pixels off, more on blurry (and lateral) edges."""
    h, w = size
    extent = max(box[2] - box[0], box[3] - box[1])
    sd_x = 0.8 + 0.5 * look.edge_px + 0.02 * extent
    sd_y = 0.6 + 0.35 * look.edge_px + 0.015 * extent
    dx0, dx1 = np.round(rng.normal(0, sd_x, 2)).astype(int)
    dy0, dy1 = np.round(rng.normal(0, sd_y, 2)).astype(int)
    x0, x1 = int(np.clip(box[0] + dx0, 0, w - 2)), int(np.clip(box[2] + dx1, 0, w))
    y0, y1 = int(np.clip(box[1] + dy0, 0, h - 2)), int(np.clip(box[3] + dy1, 0, h))
    return x0, y0, max(x1, x0 + 2), max(y1, y0 + 2)


def _smooth_noise(u: np.ndarray, v: np.ndarray, rng: np.random.Generator, cells: int = 7) -> np.ndarray:
    """Low-frequency unit-scale noise at lesion-local coordinates ``u, v`` in [-1, 1]."""
    grid = rng.normal(size=(cells, cells))
    coords = np.stack([(np.clip(t, -1.2, 1.2) + 1.2) / 2.4 * (cells - 1) for t in (u, v)])
    return map_coordinates(grid, coords, order=1, mode="nearest")


def render_frame(
    subtype: str, rng: np.random.Generator, image_signal: float, frame_size: tuple[int, int] = (256, 320),
    echo_shift_db: float = 0.0, scanner: Scanner | None = None,
) -> SynthFrame:
    """Simulate one full B-mode frame of shape ``frame_size`` = (H, W) holding one lesion; ``echo_shift_db``:
    the lab-dependent echo shift of :func:`liver_mm.synth.looks.interaction_echo_db` (0: none); ``scanner``:
    another site's gain, dynamic range and speckle (:mod:`liver_mm.synth.site`; None: the home scanner, same
    bytes as before sites existed). The scanner draws no random numbers."""
    height, width = frame_size
    probe = list(PROBES)[rng.choice(len(PROBES), p=_PROBE_P)]
    geo = _geometry(probe, height, width)
    look = draw_look(subtype, rng, image_signal, echo_shift_db)
    centre, axes, angle, harmonics, box = _place(look, geo, height, rng)
    nd, nl = geo.bx.shape
    radius = float(np.sqrt(axes[0] * axes[1]))

    # tissue echogenicity (dB) on the beam grid: near-field layers, liver capsule, vessels, lesion
    depth = np.arange(nd, dtype=np.float32) / nd
    layers = np.interp(depth, [0, 0.02, 0.03, 0.06, 0.07, 0.09, 0.1, 0.11, 1], [8, 8, -5, -5, 3, 3, 9, 0, 0])
    db = np.repeat(layers[:, None].astype(np.float32), nl, axis=1) + rng.normal(0, 1.5)
    if rng.random() < 0.5:  # diaphragm: a bright curved line deep in the field
        curve = rng.uniform(0.86, 0.94) + 0.03 * np.sin(np.linspace(0, np.pi, nl) + rng.uniform(0, np.pi))
        deep = int(0.8 * nd)
        dist = depth[deep:, None] - curve[None, :]
        db[deep:] += np.where(np.abs(dist) < 0.012, 12.0, np.where(dist > 0.012, -8.0, 0.0))
    for _ in range(rng.integers(0, 4)):  # anechoic vessels away from the lesion
        vi, vj = int(rng.uniform(0.15, 0.85) * nd), int(rng.uniform(0.1, 0.9) * nl)
        vc = (float(geo.bx[vi, vj]), float(geo.by[vi, vj]))
        vaxes = (rng.uniform(8, 30) * height / 256, rng.uniform(2.5, 7) * height / 256)
        vangle = rng.uniform(0, np.pi)
        if np.hypot(vc[0] - centre[0], vc[1] - centre[1]) > radius * 1.3 + vaxes[0] + 4:
            r = 1.3 * vaxes[0]
            win = geo.beam_window(vc[0] - r, vc[1] - r, vc[0] + r, vc[1] + r)
            rho_v, _, _ = _shape_radius(geo.bx[win], geo.by[win], vc, vaxes, vangle, [])
            db[win] -= 30.0 * expit((1.0 - rho_v) * vaxes[1] / 0.7)
    r = 1.7 * max(axes)
    win = geo.beam_window(centre[0] - r, centre[1] - r, centre[0] + r, centre[1] + r)
    rho, u, v = _shape_radius(geo.bx[win], geo.by[win], centre, axes, angle, harmonics)
    inside = expit((1.0 - rho) * radius / look.edge_px)
    centre_w = expit((0.45 - rho) * radius / max(look.edge_px, 1.0))
    rim_w = expit((rho - (1.0 - look.rim_width)) * radius / max(0.5 * look.edge_px, 0.5))
    mosaic = _smooth_noise(u, v, rng)
    mosaic -= mosaic[rho < 1.0].mean() if (rho < 1.0).any() else 0.0  # heterogeneity, not a level shift
    lesion_db = (look.echo_db * (1 - rim_w) + look.rim_db * rim_w + look.centre_db * centre_w
                 + look.mosaic_db * mosaic)
    db[win] += inside * lesion_db

    # scatterers -> PSF -> envelope -> attenuation + TGC -> log compression
    amp = np.exp(db * np.float32(np.log(10.0) / 20.0))
    sig_axial, sig_lateral = (0.8, 1.6) if scanner is None else (float(v) for v in scanner.psf)
    scale = np.sqrt(4 * np.pi * sig_axial * sig_lateral)  # keeps unit speckle power
    re, im = (gaussian_filter(amp * rng.standard_normal((nd, nl), dtype=np.float32), (sig_axial, sig_lateral),
                              truncate=3.0) for _ in range(2))
    power = re * re + im * im + np.float32(2e-5 / scale**2)  # + electronic noise floor (-50 dB)
    env_db = 10.0 * np.log10(power) + np.float32(10 * np.log10(scale**2 / 2))
    # depth gain: uniform attenuation minus TGC, plus the lesion's extra (or missing) attenuation below it
    per_sample = _ATTEN_DB / nd
    offset = -_NET_DARKENING_DB * depth + rng.normal(0, 2.0) - _DB_FLOOR
    span = _DB_SPAN
    if scanner is not None:  # (the home scanner adds nothing: same floats as before sites existed)
        offset = offset + scanner.gain_db
        span = float(scanner.dynamic_range_db)
    extra = np.zeros((nd - win[0].start, win[1].stop - win[1].start), dtype=np.float32)
    extra[: win[0].stop - win[0].start] = per_sample * inside * (look.attenuation - 1.0)
    env_db[win[0].start:, win[1]] -= np.cumsum(extra, axis=0)
    gray = (env_db + offset[:, None].astype(np.float32)) * np.float32(255.0 / span)

    frame = np.rint(geo.scan @ np.clip(gray, 0, 255).ravel()).reshape(height, width).astype(np.uint8)
    return SynthFrame(frame, box, _second_observer(box, look, frame_size, rng), probe)
