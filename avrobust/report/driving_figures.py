"""Pictures of a closed-loop drive: the top-down view (the ego's path, the other road users'
paths, the stop lines, where it should have stopped, where it hit something) and the timeline
(speed, distance to the hazard, what perception reported, the moment the decision went
wrong)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from avrobust.driving.criteria import DriveResult, footprint, hazard_gaps
from avrobust.driving.trace import Trace

COLOURS = {"car": "#1f77b4", "pedestrian": "#d62728", "traffic_sign": "#9467bd"}


def _paths(trace: Trace) -> dict[int, tuple[str, str, list[tuple[float, float]]]]:
    out: dict[int, tuple[str, str, list]] = {}
    for step in trace.actors:
        for a in step:
            out.setdefault(a.id, (a.name or str(a.id), a.category, []))[2].append((a.x, a.y))
    return out


def _save(fig, path: Path | None) -> bytes:
    """The figure as PNG bytes, also written to ``path`` when given."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        from avrobust.core.files import atomic_write

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as fh:
            fh.write(data)
    return data


def top_down(trace: Trace, result: DriveResult, path: Path | None = None, title: str = "") -> bytes:
    """The drive seen from above, as PNG bytes (and written to ``path``)."""
    ego = np.array([(s.x, s.y) for s in trace.steps])
    fig, ax = plt.subplots(figsize=(10, 4.2), dpi=120)
    r = trace.route.points
    ax.plot(r[:, 0], r[:, 1], color="#bbbbbb", lw=8, solid_capstyle="butt", zorder=0)
    ax.plot(ego[:, 0], ego[:, 1], color="black", lw=1.5, label="ego path")
    lim = trace.limits
    for k in range(0, len(trace.steps), max(1, round(1.0 / trace.dt))):  # one box a second
        s = trace.steps[k]
        box = footprint(s.x, s.y, s.yaw, lim.length, lim.width)
        ax.fill(box[:, 0], box[:, 1], fc="none", ec="black", lw=0.5, alpha=0.5)
    lo, hi = ego.min(0) - 15, ego.max(0) + 15
    for name, cat, pts in _paths(trace).values():
        p = np.array(pts)
        if not ((p >= lo) & (p <= hi)).all(1).any():
            continue
        colour = COLOURS.get(cat, "grey")
        if cat == "traffic_sign":
            ax.scatter(p[0, 0], p[0, 1], marker="8", color=colour, s=60, zorder=3)
            ax.annotate(name, p[0], textcoords="offset points", xytext=(4, -10), fontsize=7)
            continue
        ax.plot(p[:, 0], p[:, 1], color=colour, lw=1, alpha=0.8)
        ax.scatter(p[-1, 0], p[-1, 1], color=colour, s=12)
        ax.annotate(name, p[-1], textcoords="offset points", xytext=(4, 4), fontsize=7)
    for stop in result.stops:
        signs = [pts for n, c, pts in _paths(trace).values() if n == stop.sign]
        if signs:
            sx, sy = signs[0][0]
            s_line, _ = trace.route.project(sx, sy)
            x, y, h = trace.route.at(s_line)
            nx, ny = -math.sin(h), math.cos(h)
            colour = "green" if stop.stopped else "red"
            ax.plot([x - 2 * nx, x + 2 * nx], [y - 2 * ny, y + 2 * ny], color=colour, lw=3)
            word = "stopped" if stop.stopped else f"ran it at {stop.min_speed * 3.6:.0f} km/h"
            ax.annotate(f"stop line: {word}", (x, y), textcoords="offset points", xytext=(-30, 14),
                        fontsize=8, color=colour)  # fmt: skip
    for c in result.collisions:
        k = min(range(len(trace.steps)), key=lambda i: abs(trace.steps[i].t - c.t))
        s = trace.steps[k]
        ax.scatter(s.x, s.y, marker="X", color="red", s=120, zorder=5)
        ax.annotate(f"collision with {c.actor} at {c.relative_speed * 3.6:.0f} km/h",
                    (s.x, s.y), textcoords="offset points", xytext=(8, -14), color="red",
                    fontsize=8)  # fmt: skip
    ax.set_aspect("equal")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(min(lo[1], -15), max(hi[1], 15))
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title or "closed-loop drive, seen from above", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def timeline(trace: Trace, result: DriveResult, path: Path | None = None, title: str = "") -> bytes:
    """Speed, acceleration and the policy's manoeuvres over time, with the moments it went
    wrong (passing a stop line without stopping, a collision), as PNG bytes (and written to
    ``path``)."""
    t = np.array([s.t for s in trace.steps])
    v = np.array([s.speed for s in trace.steps]) * 3.6
    a = np.array([s.accel for s in trace.steps])
    target = np.array([s.target_speed for s in trace.steps]) * 3.6
    fig, (ax1, axd, ax2, ax3) = plt.subplots(
        4, 1, figsize=(10, 7), dpi=120, sharex=True, gridspec_kw={"height_ratios": [3, 2, 2, 1]}
    )
    ax1.plot(t, v, color="black", label="speed")
    ax1.plot(t, target, color="grey", ls="--", lw=1, label="speed aimed for")
    ax1.set_ylabel("km/h")
    ax1.set_ylim(0, max(float(v.max()), float(target.max()), 1.0) * 1.15)
    ax1.legend(fontsize=7, loc="lower left")
    # The hazard as it was and as the policy believed it: the gap between the two is what
    # perception (or an attack) got wrong.
    true_gap = np.array([np.nan if g is None else g for g in hazard_gaps(trace)])
    seen = np.array([np.nan if s.cause_gap is None else s.cause_gap for s in trace.steps])
    axd.plot(t, true_gap, color="black", label="nearest hazard (truth)")
    axd.plot(t, seen, color="#d62728", ls="none", marker=".", ms=3,
             label="what the decision was about (perceived)")  # fmt: skip
    axd.set_ylabel("m ahead")
    axd.set_ylim(bottom=0)
    axd.legend(fontsize=7, loc="lower left")
    ax2.plot(t, a, color="#1f77b4")
    ax2.axhline(0, color="grey", lw=0.5)
    ax2.set_ylabel("m/s²")
    # At least +-1 m/s^2 shown: a steady drive is a flat line, not magnified rounding noise.
    ax2.set_ylim(min(float(a.min()), -1.0) - 0.3, max(float(a.max()), 1.0) + 0.3)
    manoeuvres = sorted({s.manoeuvre for s in trace.steps})
    cmap = plt.get_cmap("tab10")
    for i, m in enumerate(manoeuvres):
        on = np.array([s.manoeuvre == m for s in trace.steps])
        ax3.fill_between(t, 0, 1, where=on, color=cmap(i % 10), step="mid", label=m)
    ax3.set_yticks([])
    ax3.set_xlabel("time (s)")
    for c in result.collisions:
        for ax in (ax1, axd, ax2, ax3):
            ax.axvline(c.t, color="red", lw=1.5)
        ax1.annotate(f"collision: {c.actor}", (c.t, v.max() * 0.9), color="red", fontsize=8,
                     xytext=(4, 0), textcoords="offset points")  # fmt: skip
    for st in result.stops:
        if not st.stopped and st.passed_t is not None:
            for ax in (ax1, axd, ax2, ax3):
                ax.axvline(st.passed_t, color="red", ls="--", lw=1.2)
            ax1.annotate(
                f"passed the stop line at {st.passed_speed * 3.6:.0f} km/h",
                (st.passed_t, max(v.max(), 1.0) * 0.6), color="red", fontsize=8,
                xytext=(4, 0), textcoords="offset points",
            )  # fmt: skip
    # What perception caused: the steps whose decision came from the model's report.
    src = np.array([s.cause_source == "model" for s in trace.steps])
    if src.any():
        ax3.scatter(t[src], np.full(src.sum(), 0.5), marker="|", color="black", s=20,
                    label="caused by a model report")  # fmt: skip
    ax3.legend(fontsize=7, ncol=min(len(manoeuvres) + 1, 7), loc="upper center",
               bbox_to_anchor=(0.5, -0.9))  # fmt: skip
    ax1.set_title(title or "closed-loop drive over time", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
