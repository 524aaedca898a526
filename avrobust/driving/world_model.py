"""What the reference policy remembers between frames: road users tracked in the world frame
(nearest-neighbour association, velocity by an alpha-beta filter) and the signs it has read,
each acted on only after ``confirm`` consecutive sightings (as a deployed traffic-sign
recogniser confirms before it acts)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from avrobust.driving.percepts import Percept


@dataclass
class TrackedObject:
    """A road user followed across frames: world position and velocity (m/s), footprint, the
    last percept that updated it."""

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

    @property
    def speed(self) -> float:
        return math.hypot(self.vx, self.vy)

    def at(self, dt: float) -> tuple[float, float]:
        return self.x + self.vx * dt, self.y + self.vy * dt


@dataclass
class ReadSign:
    """A sign at one place: ``reading`` (the type of the latest sighting) and ``streak`` (its
    consecutive agreeing sightings); ``kind`` is the type the policy acts on, set once a reading
    has ``confirm`` sightings in a row (None before), and replaced only the same way."""

    reading: str
    x: float
    y: float
    streak: int
    seen: float
    last: Percept
    kind: str | None = None


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
                self.tracks.append(
                    TrackedObject(
                        self._next, p.category, p.x, p.y, 0.0, 0.0, p.length, p.width, p, t
                    )
                )
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
        self.tracks = [tr for tr in self.tracks if t - tr.seen <= self.coast + 1e-9]

    def _update_signs(self, percepts: list[Percept], t: float) -> None:
        seen = set()
        for p in percepts:
            near = [s for s in self.signs if math.hypot(s.x - p.x, s.y - p.y) <= self.sign_gate]
            if not near:
                self.signs.append(ReadSign(p.kind, p.x, p.y, 1, t, p))
                seen.add(id(self.signs[-1]))
                continue
            s = min(near, key=lambda q: math.hypot(q.x - p.x, q.y - p.y))
            if id(s) in seen:
                continue
            seen.add(id(s))
            # A different reading restarts the count: the recogniser wants agreement.
            s.streak = s.streak + 1 if s.reading == p.kind else 1
            s.reading, s.last, s.seen = p.kind, p, t
            # Ranging improves as the sign nears: keep the latest estimate.
            s.x, s.y = p.x, p.y
            if s.streak >= self.confirm:
                s.kind = s.reading
        for s in self.signs:
            if id(s) not in seen:
                s.streak = 0
