"""Measuring LiDAR attacks on still frames of a scenario, per frame and per victim.

Spoofing: for each frame and each phantom distance, the phantom's place must be empty in the
clean sweep (no detection of its class within 2 m; otherwise the case is skipped and counted),
and the attack succeeds when the victim reports an object of that class centred within 2 m of
the phantom. Removal: the target is the scenario's first target (a vehicle), found by the victim
in the clean sweep (otherwise skipped); the attack succeeds when no detection of any class
overlaps its box at all in bird's-eye view (a shifted or misnamed detection would still make a
planner brake, so any overlap, not IoU 0.5 with the right class, is the bar).

Every attacked sweep is checked against the threat model before it is judged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from avrobust.attacks.lidar.adaptive import spoof_past_free_space
from avrobust.attacks.lidar.objective import FrameObjective, Victim, found_near, overlaps
from avrobust.attacks.lidar.remove import RemovalResult, remove
from avrobust.attacks.lidar.spoof import PHANTOM_SIZE, SpoofResult, frustum_phantom, spoof
from avrobust.attacks.lidar.sweep import LidarSweep
from avrobust.attacks.lidar.threat import LidarThreat, angle_window
from avrobust.core.boxes import Box3D
from avrobust.core.sensors import LidarSpec
from avrobust.core.stats import Rate, rate_of, strongest
from avrobust.core.thresholds import PHANTOM_RADIUS_M
from avrobust.evaluation.viewpoints import SweepFrames

# Called for each spoofing case: the attack's result, the victim's detections on the attacked
# sweep, the phantom's class index, its centre (x, y), and whether the attack succeeded.
OnCase = Callable[..., None]


@dataclass
class LidarAttackRow:
    """One attack on one frame."""

    victim: str
    attack: str  # spoof or remove
    method: str
    budget: int
    distance: float  # metres from the LiDAR: the phantom's rear face; the target's centre
    weather: str
    lateral: float
    frame: int
    success: bool
    score: float  # the victim's score for the phantom / target after the attack
    changed: int  # rays changed
    seconds: float


@dataclass
class LidarAttackRun:
    threat: dict
    rows: list[LidarAttackRow] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def success_rate(self, **match) -> tuple[float, int]:
        """Share of successful rows among those matching ``match`` (field=value), and their
        number."""
        rows = [r for r in self.rows if _matches(r, match)]
        return (sum(r.success for r in rows) / len(rows) if rows else float("nan")), len(rows)

    def rate(self, **match) -> Rate:
        """:class:`Rate` (with its 95% Wilson interval) of the rows matching ``match``. Each
        row is one frame and phantom (or target): the still frames are rendered independently,
        so they are the trials."""
        return rate_of([r.success for r in self.rows if _matches(r, match)])

    def effects(self) -> dict[str, dict]:
        """For each victim, budget and method other than the control (``random``: the same
        budget in the same window, not optimised), the method's rate, the control's on the
        same cases and McNemar's paired p-value; keyed ``victim/method/budget``."""
        out = {}
        keys = dict.fromkeys((r.victim, r.method, r.budget) for r in self.rows)
        for victim, method, budget in keys:
            if method == CONTROL:
                continue
            mine = _outcomes(self.rows, victim, method, budget)
            ctrl = _outcomes(self.rows, victim, CONTROL, budget)
            both = sorted(set(mine) & set(ctrl))
            if not both:
                continue
            a, c = [mine[k] for k in both], [ctrl[k] for k in both]
            eff = strongest(rate_of(a), {CONTROL: rate_of(c)}, {CONTROL: (a, c)})
            out[f"{victim}/{method}/{budget}"] = eff.to_dict()
        return out

    def to_dict(self) -> dict:
        return {
            "threat": self.threat,
            "skipped": self.skipped,
            "effects": self.effects(),
            "rows": [asdict(r) for r in self.rows],
        }


# The matched control of every LiDAR attack: the random method (spoofing: random rays through
# the phantom, random ranges in its box; removal: the target's reachable returns at random),
# with the same budget and window as the optimised methods.
CONTROL = "random"


def _matches(row: LidarAttackRow, match: dict) -> bool:
    return all(getattr(row, k) == v for k, v in match.items())


def _outcomes(rows, victim: str, method: str, budget: int) -> dict[tuple, bool]:
    """Case -> success for one victim, method and budget; a case is a frame and a distance."""
    return {
        (r.frame, r.distance, r.attack): r.success
        for r in rows
        if (r.victim, r.method, r.budget) == (victim, method, budget)
    }


def spoof_frames(
    victims: dict[str, Victim],
    frames: SweepFrames,
    spec: LidarSpec,
    distances: tuple[float, ...] = (5.0, 7.5, 10.0),
    methods: tuple[str, ...] = ("random", "black-box", "white-box"),
    points: int = 60,
    steps: int = 60,
    category: str = "car",
    progress: Callable[[int], None] | None = None,
    on_case: OnCase | None = None,
    surrogate: Victim | None = None,
) -> LidarAttackRun:
    """Spoof a phantom ``category`` straight ahead in every frame, its rear face at each of
    ``distances`` metres from the LiDAR (where the victim would report the obstacle).
    ``on_case(result, detections, class, x, y, success, frame)`` sees every attacked sweep
    with the victim's detections on it. Method ``transfer``: the white-box attack made
    against ``surrogate`` (the undefended model: a defence's non-adaptive number), judged by
    each victim."""
    half_length = PHANTOM_SIZE[category][0] / 2

    def phantoms(frame) -> list[tuple[float, float, float] | None]:
        return [(d + half_length, 0.0, d) for d in distances]  # rear face d m ahead

    run = LidarAttackRun(
        _threat_record(LidarThreat(points=points), "the phantom's bearing +- its half width + 3")
    )
    _spoof_cases(
        run, "spoof", phantoms, victims, frames, spec, methods, points, steps, category, progress,
        on_case, surrogate,
    )  # fmt: skip
    return run


def removal_frames(
    victims: dict[str, Victim],
    frames: SweepFrames,
    spec: LidarSpec,
    budgets: tuple[int, ...] = (60, 120, 250),
    methods: tuple[str, ...] = ("random", "white-box"),
    category: str = "car",
    progress: Callable[[int], None] | None = None,
    surrogate: Victim | None = None,
) -> LidarAttackRun:
    """Hide each frame's first target (the nearest object of ``category`` ahead). Method
    ``transfer``: the white-box removal made against ``surrogate``, judged by each victim."""
    run = LidarAttackRun(
        _threat_record(
            LidarThreat(points=max(budgets), mode="remove"),
            "the target's bearing +- its half diagonal + 3",
        )
        | {"points": list(budgets)}
    )
    for name, victim in victims.items():
        cls = victim.classes.index(category)
        for k, (vp, frame) in enumerate(zip(frames.viewpoints, frames.frames, strict=True)):
            box = target_box(frame, category)
            obj = FrameObjective(victim, frame)
            sweep = LidarSweep.from_frame(frame, spec)
            if box is None or not overlaps(obj.detect(sweep.points), cls, box):  # not found
                run.skipped[name] = run.skipped.get(name, 0) + 1
                continue
            x, y = float(box.center[0, 0]), float(box.center[0, 1])
            half = float(box.size[0, :2].norm()) / 2
            for budget in budgets:
                threat = LidarThreat(
                    points=budget, azimuth=angle_window(x, y, half, 3.0), mode="remove"
                )
                for m in methods:
                    t0 = time.monotonic()
                    if m == "transfer":
                        made = remove(
                            _objective(surrogate, frame), sweep, spec, threat, box, "white-box"
                        )
                        with torch.no_grad():
                            score = float(
                                obj.score(made.sweep.points, x, y, None, radius=half + 0.5)
                            )
                        res = RemovalResult(made.sweep, made.removed, score, made.history)
                    else:
                        res = remove(obj, sweep, spec, threat, box, m)
                    ok = not overlaps(obj.detect(res.sweep.points), None, box)
                    run.rows.append(
                        LidarAttackRow(
                            **_where(name, vp, k),
                            attack="remove",
                            method=m,
                            budget=budget,
                            distance=round(x, 1),
                            success=ok,
                            score=res.score,
                            changed=len(res.removed),
                            seconds=time.monotonic() - t0,
                        )
                    )
                    if progress:
                        progress(1)
    return run


def frustum_frames(
    victims: dict[str, Victim],
    frames: SweepFrames,
    spec: LidarSpec,
    shifts: tuple[float, ...] = (-5.0,),
    methods: tuple[str, ...] = ("black-box", "white-box"),
    points: int = 60,
    steps: int = 60,
    category: str = "car",
    progress: Callable[[int], None] | None = None,
    on_case: OnCase | None = None,
) -> LidarAttackRun:
    """The frustum attack: a phantom ``category`` inside the camera frustum of each frame's
    first target, ``shift`` metres off its true range. Success: the victim reports a
    ``category`` within 2 m of the phantom (an obstacle at the wrong depth). A row's
    ``distance`` is the phantom's range; its ``budget`` the spoofed returns."""

    def phantoms(frame) -> list[tuple[float, float, float] | None]:
        box = target_box(frame, category)
        if box is None:
            return [None] * len(shifts)
        out = []
        for shift in shifts:
            x, y = frustum_phantom(box, shift)
            out.append((x, y, round((x * x + y * y) ** 0.5, 1)))
        return out

    run = LidarAttackRun(
        _threat_record(LidarThreat(points=points), "the phantom's bearing +- its half width + 3")
        | {"shifts": list(shifts)}
    )
    _spoof_cases(
        run, "frustum", phantoms, victims, frames, spec, methods, points, steps, category, progress,
        on_case,
    )  # fmt: skip
    return run


def _spoof_cases(
    run: LidarAttackRun,
    attack: str,
    phantoms: Callable[[object], list[tuple[float, float, float] | None]],
    victims: dict[str, Victim],
    frames: SweepFrames,
    spec: LidarSpec,
    methods: tuple[str, ...],
    points: int,
    steps: int,
    category: str,
    progress: Callable[[int], None] | None,
    on_case: OnCase | None = None,
    surrogate: Victim | None = None,
) -> None:
    """Spoof each of a frame's ``phantoms`` (``(x, y, reported distance)``, ``None`` when the
    frame has no place for one) with each method, for every victim; a phantom whose place the
    clean sweep already fills (a detection of its class within 2 m) is skipped and counted."""
    for name, victim in victims.items():
        cls = victim.classes.index(category)
        for k, (vp, frame) in enumerate(zip(frames.viewpoints, frames.frames, strict=True)):
            obj = FrameObjective(victim, frame)
            sweep = LidarSweep.from_frame(frame, spec)
            clean = obj.detect(sweep.points)
            for place in phantoms(frame):
                if place is None or found_near(clean, cls, place[0], place[1], PHANTOM_RADIUS_M):
                    run.skipped[name] = run.skipped.get(name, 0) + 1
                    continue
                x, y, distance = place
                threat = LidarThreat(points=points, azimuth=angle_window(x, y, 1.5, 3.0))
                for m in methods:
                    t0 = time.monotonic()
                    if m == "adaptive":  # knows the free-space check (attacks/lidar/adaptive)
                        res = spoof_past_free_space(obj, sweep, spec, threat, x, y, category, steps)
                    elif m == "transfer":
                        made = spoof(
                            _objective(surrogate, frame), sweep, spec, threat, x, y, category,
                            "white-box", steps,
                        )  # fmt: skip
                        with torch.no_grad():
                            score = float(obj.score(made.sweep.points, x, y, category))
                        res = SpoofResult(
                            made.sweep, made.rays, made.ranges, made.phantom, score, made.history
                        )
                    else:
                        res = spoof(obj, sweep, spec, threat, x, y, category, m, steps)
                    dets = obj.detect(res.sweep.points)
                    ok = found_near(dets, cls, x, y, PHANTOM_RADIUS_M)
                    if on_case:
                        on_case(res, dets, cls, x, y, ok, frame)
                    run.rows.append(
                        LidarAttackRow(
                            **_where(name, vp, k),
                            attack=attack,
                            method=m,
                            budget=points,
                            distance=distance,
                            success=ok,
                            score=res.score,
                            changed=len(res.rays),
                            seconds=time.monotonic() - t0,
                        )
                    )
                    if progress:
                        progress(1)


def _objective(surrogate: Victim | None, frame) -> FrameObjective:
    """The objective the ``transfer`` method attacks: the surrogate's on this frame."""
    if surrogate is None:
        from avrobust.core.errors import ConfigError

        raise ConfigError("the transfer method needs a surrogate victim", field="surrogate")
    return FrameObjective(surrogate, frame)


def target_box(frame, category: str) -> Box3D | None:
    """The nearest ``category`` object ahead of the LiDAR (within 4 m of its axis)."""
    t = frame.truth
    best = None
    for i, c in enumerate(t.categories):
        cx, cy = float(t.boxes_3d.center[i, 0]), float(t.boxes_3d.center[i, 1])
        if c == category and cx > 0 and abs(cy) < 4.0 and (best is None or cx < best[0]):
            best = (cx, i)
    if best is None:
        return None
    b = t.boxes_3d[best[1] : best[1] + 1]
    return Box3D(b.center.float(), b.size.float(), b.yaw.float())


def _where(victim: str, vp, frame: int) -> dict:
    """The fields of a row that say which victim and which frame."""
    return {"victim": victim, "weather": vp.weather, "lateral": vp.lateral, "frame": frame}


def _threat_record(threat: LidarThreat, window: str) -> dict:
    """The threat as reports print it; the azimuth window follows each case's object."""
    return threat.to_dict() | {"azimuth": f"per case: {window} deg"}


VICTIMS = ("lidar-detector", "fusion-late", "fusion-painting")


def load_victims(names: tuple[str, ...]) -> dict[str, Victim]:
    """The LiDAR-using victims by campaign name, shipped weights unless a name carries its
    own as ``NAME=WEIGHTS`` (``lidar-detector=assets/models/lidar_detector_adv.pt``); the
    dictionary is keyed by the text given."""
    from avrobust.core.errors import ConfigError
    from avrobust.models.fusion_detectors import load_late_fusion, load_painting
    from avrobust.models.lidar_detector import load_lidar_model
    from avrobust.models.weights import ASSETS

    loaders = {
        "lidar-detector": lambda p: load_lidar_model(p or ASSETS / "lidar_detector.pt"),
        "fusion-late": load_late_fusion,
        "fusion-painting": load_painting,
    }
    out = {}
    for text in names:
        n, _, weights = text.partition("=")
        if n not in loaders:
            raise ConfigError(f"unknown victim {n!r}", field="victims", allowed=", ".join(VICTIMS))
        out[text] = loaders[n](weights or None)
    return out
