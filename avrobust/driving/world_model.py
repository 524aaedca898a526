"""What the reference policy remembers between frames: road users tracked in the world frame
(nearest-neighbour association, velocity by an alpha-beta filter) and the signs it has read,
each acted on only after ``confirm`` consecutive sightings (as a deployed traffic-sign
recogniser confirms before it acts)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from avrobust.core.signs import SIGN_TYPES
from avrobust.driving.percepts import Percept

STANDING_WINDOW = 15  # measurements (1.5 s at 10 Hz) the standing test fits
STILL, MOVING = 0.8, 2.0  # m/s: the fitted speed that makes a track standing, and moving again


@dataclass
class TrackedObject:
    """A road user followed across frames: world position and velocity (m/s), footprint, the
    last percept that updated it; ``history``: its last measured positions ``(t, x, y)``.

    ``standing``: whether it stands still, judged from the straight-line fit of its measured
    positions over up to ``STANDING_WINDOW`` frames (at least half a second) and kept until
    the fit says it moves (``STILL`` and ``MOVING`` m/s): the filter's velocity jitters by
    half a metre per second on a parked car (LiDAR boxes, monocular ranges), and a parked
    car flickering between standing and moving flickers the ego's path round it."""

    id: int
    category: str
    x: float
    y: float
    vx: float
    vy: float
    length: float
    width: float
    last: Percept
    seen: float
    hits: int = 1
    standing: bool = False
    history: deque = field(default_factory=lambda: deque(maxlen=STANDING_WINDOW), repr=False)

    @property
    def speed(self) -> float:
        return math.hypot(self.vx, self.vy)

    def at(self, dt: float) -> tuple[float, float]:
        return self.x + self.vx * dt, self.y + self.vy * dt

    def measured(self, t: float, x: float, y: float) -> None:
        self.history.append((t, x, y))
        fit = _fitted_speed(self.history)
        if fit is None:
            return
        if fit < STILL:
            self.standing = True
        elif fit > MOVING:
            self.standing = False


def _fitted_speed(history: deque) -> float | None:
    """The speed of the least-squares line through ``(t, x, y)`` points; None under 0.5 s."""
    if len(history) < 3 or history[-1][0] - history[0][0] < 0.5:
        return None
    n = len(history)
    tm = sum(h[0] for h in history) / n
    xm = sum(h[1] for h in history) / n
    ym = sum(h[2] for h in history) / n
    stt = sum((h[0] - tm) ** 2 for h in history)
    vx = sum((h[0] - tm) * (h[1] - xm) for h in history) / stt
    vy = sum((h[0] - tm) * (h[2] - ym) for h in history) / stt
    return math.hypot(vx, vy)


@dataclass(frozen=True)
class Sighting:
    """One ranged sighting of a sign: the sensor's world position, the unit vector and horizontal
    range to the sign, the range's 1-sigma error and the size it was ranged with (None: not
    ranged by size, e.g. ground truth, which is never re-ranged)."""

    ox: float
    oy: float
    ux: float
    uy: float
    range: float
    sigma: float
    size: float | None

    def at(self, size: float | None) -> tuple[float, float, float]:
        """``(x, y, sigma)`` ranged as a sign of ``size`` (range scales with the size)."""
        k = 1.0 if size is None or self.size is None else size / self.size
        r = self.range * k
        return self.ox + self.ux * r, self.oy + self.uy * r, max(self.sigma * k, SIGMA_FLOOR)

    @classmethod
    def of(cls, p: Percept) -> Sighting:
        ox, oy = p.origin if p.origin is not None else (p.x, p.y)
        r = math.hypot(p.x - ox, p.y - oy)
        ux, uy = ((p.x - ox) / r, (p.y - oy) / r) if r > 1e-9 else (1.0, 0.0)
        return cls(ox, oy, ux, uy, r, p.range_sigma, p.ranged_size)


SIGMA_FLOOR = 0.2  # metres: no sighting places a sign better than this
BEARING_SIGMA = 0.01  # radians: a box centre's bearing error (a few pixels)


@dataclass
class ReadSign:
    """A sign at one place: ``reading`` (the type of the latest sighting) and ``streak`` (its
    consecutive agreeing sightings); ``kind`` is the type the policy acts on, set once a reading
    has ``confirm`` sightings in a row (None before), and replaced only the same way.

    ``x, y`` fuse every sighting (weights 1/sigma^2: monocular range error grows with range
    squared, so near sightings dominate, yet one bad box cannot move a sign), each re-ranged
    with the size of the type the sign is known as: a misread frame still says where the
    sign is, once its range is corrected to the sign's real size. ``sigma``: the fused error."""

    reading: str
    x: float
    y: float
    streak: int
    seen: float
    last: Percept
    kind: str | None = None
    sigma: float = 0.0
    sightings: list[Sighting] = field(default_factory=list, repr=False)

    def add(self, p: Percept) -> None:
        self.sightings.append(Sighting.of(p))
        self.fuse()

    def fuse(self, rounds: int = 4) -> None:
        """Fuse the sightings, ranged as the sign's type (confirmed, else latest reading).

        A box's width measures inverse range with an error that hardly depends on range, so
        each round compares each sighting's 1/range with the estimate's along the same ray and
        moves the estimate to the weighted least-squares fit, linearised there (averaging
        ranges instead would pull towards short ranges, whose errors are smaller); sightings
        more than 3 sigma off (a box cut or doubled) are left out."""
        size = _size(self.kind or self.reading)
        fixed = [sg.at(size) for sg in self.sightings]
        x, y = (self.x, self.y) if len(self.sightings) > 1 else fixed[0][:2]
        sigma = fixed[0][2]
        for _ in range(rounds):
            pts, odd = [], []
            for sg, (px, py, sig) in zip(self.sightings, fixed, strict=True):
                if sg.range < 1e-6:  # not ranged from a sensor: a position as it is
                    pts.append((px, py, sig))
                    continue
                r = math.hypot(px - sg.ox, py - sg.oy)
                r_est = max((x - sg.ox) * sg.ux + (y - sg.oy) * sg.uy, 0.5)
                s_inv = sig / (r * r)
                miss = 1 / r - 1 / r_est
                r_lin = max(r_est - r_est * r_est * miss, 0.5)
                q = (
                    sg.ox + sg.ux * r_lin,
                    sg.oy + sg.uy * r_lin,
                    max(r_est * r_est * s_inv, SIGMA_FLOOR),
                )
                (odd if abs(miss) > 3 * math.hypot(s_inv, sigma / r_est**2) else pts).append(q)
            x, y, sigma = _fuse(pts or odd)
        self.x, self.y, self.sigma = x, y, sigma


def _size(kind: str | None) -> float | None:
    """A sign type's real size, metres; None for no type or one not in the catalogue."""
    return SIGN_TYPES[kind].size if kind in SIGN_TYPES else None


def _fuse(pts: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """Inverse-variance weighted mean of ``(x, y, sigma)`` points, and its sigma."""
    w = [1.0 / (q[2] * q[2]) for q in pts]
    total = sum(w)
    x = sum(wi * q[0] for wi, q in zip(w, pts, strict=True)) / total
    y = sum(wi * q[1] for wi, q in zip(w, pts, strict=True)) / total
    return x, y, 1.0 / math.sqrt(total)


@dataclass
class WorldModel:
    """``gate``: metres within which a percept continues a track or a read sign; ``coast``:
    seconds a track lives unseen; ``alpha``, ``beta``: the filter's gains."""

    confirm: int = 3
    gate: float = 2.5
    sign_gate: float = 3.0
    coast: float = 0.5
    alpha: float = 0.6
    beta: float = 0.3
    tracks: list[TrackedObject] = field(default_factory=list)
    signs: list[ReadSign] = field(default_factory=list)
    _next: int = 0

    def update(self, percepts: list[Percept], t: float) -> None:
        users = [p for p in percepts if p.category != "traffic_sign"]
        self._update_tracks(users, t)
        self._update_signs([p for p in percepts if p.category == "traffic_sign"], t)

    def _update_tracks(self, percepts: list[Percept], t: float) -> None:
        free = list(self.tracks)
        for p in sorted(percepts, key=lambda q: -q.score):
            best, best_d = None, self.gate
            for tr in free:
                if tr.category != p.category:
                    continue
                px, py = tr.at(t - tr.seen)
                d = math.hypot(p.x - px, p.y - py)
                if d <= best_d:
                    best, best_d = tr, d
            if best is None:
                tr = TrackedObject(
                    self._next, p.category, p.x, p.y, 0.0, 0.0, p.length, p.width, p, t
                )
                tr.measured(t, p.x, p.y)
                self.tracks.append(tr)
                self._next += 1
                continue
            free.remove(best)
            dt = max(t - best.seen, 1e-6)
            px, py = best.at(dt)
            rx, ry = p.x - px, p.y - py
            best.x, best.y = px + self.alpha * rx, py + self.alpha * ry
            best.vx += self.beta * rx / dt
            best.vy += self.beta * ry / dt
            best.length, best.width, best.last, best.seen = p.length, p.width, p, t
            best.hits += 1
            best.measured(t, p.x, p.y)
        self.tracks = [tr for tr in self.tracks if t - tr.seen <= self.coast + 1e-9]

    def _gate(self, sign: ReadSign, p: Percept) -> float | None:
        """How far (in gates) sighting ``p`` is from ``sign``, or None beyond the gate."""
        sg = Sighting.of(p)
        x, y, sigma = sg.at(_size(sign.kind))
        return self._gate_at(sign, sg.ox, sg.oy, x, y, sigma)

    def _gate_at(
        self, sign: ReadSign, ox: float, oy: float, x: float, y: float, sigma: float
    ) -> float | None:
        """How far (in gates) a sign placed at ``(x, y)`` (range error ``sigma``) from a sensor
        at ``(ox, oy)`` is from ``sign``: across the ray within ``sign_gate`` plus 3 bearing
        errors, along it within ``sign_gate`` metres or 3 errors of inverse range (a box's width
        measures 1/range, so a far sign's range errs far more long than short); None beyond.
        Far signs range badly but bear well, so two signs either side of the road stay two
        while far readings of one sign stay one."""
        r = math.hypot(x - ox, y - oy)
        if r < 1e-6:  # not ranged from a sensor: plain distance
            return d if (d := math.hypot(sign.x - x, sign.y - y) / self.sign_gate) <= 1 else None
        ux, uy = (x - ox) / r, (y - oy) / r
        dx, dy = sign.x - ox, sign.y - oy
        r_sign = dx * ux + dy * uy  # the sign's estimate, along this ray
        if r_sign <= 0:
            return None
        across = abs(-dx * uy + dy * ux)
        inv = abs(1 / r_sign - 1 / r) / math.hypot(sigma / r**2, sign.sigma / r_sign**2)
        along = min(abs(r_sign - r) / self.sign_gate, inv / 3)
        g_across = self.sign_gate + 3 * BEARING_SIGMA * max(r, r_sign)
        d = math.hypot(along, across / g_across)
        return d if d <= 1.0 else None

    def _merge_signs(self) -> None:
        """Merge two estimates of one sign (far sightings, a few long ones in a row, can start a
        second before ranges converge): the one with fewer sightings joins the other when most
        of its sightings gate there now and their confirmed types do not disagree."""
        for b in sorted(self.signs, key=lambda q: len(q.sightings)):
            for a in self.signs:
                if a is b or len(a.sightings) < len(b.sightings):
                    continue
                if a.kind and b.kind and a.kind != b.kind:
                    continue
                size = _size(a.kind)
                agree = sum(
                    self._gate_at(a, sg.ox, sg.oy, *sg.at(size)) is not None for sg in b.sightings
                )
                if 2 * agree < len(b.sightings):
                    continue
                a.sightings.extend(b.sightings)
                a.kind = a.kind or b.kind
                a.fuse()
                self.signs.remove(b)
                break

    def _update_signs(self, percepts: list[Percept], t: float) -> None:
        seen = set()
        for p in sorted(percepts, key=lambda q: -q.score):
            gated = [(g, s) for s in self.signs if (g := self._gate(s, p)) is not None]
            if not gated:
                sign = ReadSign(p.kind, p.x, p.y, 1, t, p)
                sign.add(p)
                self.signs.append(sign)
                seen.add(id(sign))
                continue
            _, s = min(gated, key=lambda q: q[0])
            if id(s) in seen:
                continue  # one sighting per sign and frame: the best-scored box
            seen.add(id(s))
            # A different reading restarts the count: the recogniser wants agreement.
            s.streak = s.streak + 1 if s.reading == p.kind else 1
            s.reading, s.last, s.seen = p.kind, p, t
            if s.streak >= self.confirm:
                s.kind = s.reading
            s.add(p)
        for s in self.signs:
            if id(s) not in seen:
                s.streak = 0
        self._merge_signs()
