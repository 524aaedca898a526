"""Benchmarks behind docs/benchmarks.md. Run with `make bench` (all) or
`python tools/bench.py --only sim`. Results go to docs/benchmarks.json (one entry per benchmark,
kept across runs) and docs/benchmarks.md is regenerated from it."""

from __future__ import annotations

# The process settings (allocator, OpenMP spin) first: they must precede torch's loading,
# so the imports below follow a call.
# ruff: noqa: E402
# isort: off
import avrobust.runtime

avrobust.runtime.apply()
# isort: on

import argparse
import datetime as dt
import json
import math
import platform
import statistics
import time
from pathlib import Path

import open3d as o3d
import torch

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "open3d": o3d.__version__,
        "python": platform.python_version(),
        "date": dt.date.today().isoformat(),
    }


def bench_sim(frames: int = 30) -> dict:
    """Embedded simulator: 640x480 camera + 32-channel LiDAR at 1024 columns, urban_stop scene."""
    from avrobust.backends.embedded import resolve_scene
    from avrobust.core.sensors import CameraSpec, LidarSpec
    from avrobust.core.weather import PRESETS
    from avrobust.sim.simulator import Simulator

    cam = CameraSpec(640, 480, math.radians(90))
    lidar = LidarSpec(channels=32, points_per_second=32 * 1024 * 10, rotation_frequency=10.0)
    sim = Simulator(resolve_scene("urban_stop"), cam, lidar, PRESETS["ClearNoon"], seed=0)
    times = [0.1 * i for i in range(frames)]
    sim.render(0.0, truth=False)  # warm-up

    # The bare Open3D work of the same frames: build the scene and make every Open3D call the
    # renderer makes, with the same rays grouped into calls the same way (camera and LiDAR
    # rays in one cast, shadow rays in one occlusion test), recorded from a render of each.
    scene_cls = o3d.t.geometry.RaycastingScene
    originals = {name: getattr(scene_cls, name) for name in ("cast_rays", "test_occlusions")}
    log: list = []

    def recorder(name):
        def call(self, rays, *args, **kwargs):
            log.append((name, rays.numpy().copy(), args, kwargs))
            return originals[name](self, rays, *args, **kwargs)

        return call

    bare_calls = []
    try:
        for name in originals:
            setattr(scene_cls, name, recorder(name))
        for i, t in enumerate(times):
            log.clear()
            sim.render(t, i, truth=False)
            bare_calls.append((t, list(log)))
    finally:
        for name, fn in originals.items():
            setattr(scene_cls, name, fn)

    def run_bare_frame(t, calls) -> float:
        start = time.perf_counter()
        scene = sim.world.geometry_at(t).scene
        for name, rays, args, kwargs in calls:
            getattr(scene, name)(o3d.core.Tensor.from_numpy(rays), *args, **kwargs)
        return time.perf_counter() - start

    def timed(i: int, truth: bool) -> float:
        start = time.perf_counter()
        sim.render(times[i], i, truth=truth)
        return time.perf_counter() - start

    # Interleave the three measurements frame by frame, five passes, so that the noise of a
    # shared machine hits them alike; keep each pass's median and report the best pass.
    passes = {"full": [], "truth": [], "bare": []}
    for _ in range(5):
        rows = {"full": [], "truth": [], "bare": []}
        for i in range(frames):
            rows["full"].append(timed(i, False))
            rows["bare"].append(run_bare_frame(*bare_calls[i]))
            rows["truth"].append(timed(i, True))
        for k, v in rows.items():
            passes[k].append(statistics.median(v))
    full, with_truth, bare = (min(passes[k]) for k in ("full", "truth", "bare"))
    ratio = min(f / b for f, b in zip(passes["full"], passes["bare"], strict=True))
    return {
        "name": "sim",
        "title": "Embedded simulator frame rate",
        "setup": "urban_stop scene, ClearNoon, 640x480 camera (90 deg) + 32-channel LiDAR at "
        f"1024 columns, {frames} frames along the route; median time per frame, best of "
        "five interleaved passes",
        "rows": [
            [
                "frame (camera + LiDAR, no ground truth)",
                f"{1000 * full:.1f} ms",
                f"{1 / full:.1f} fps",
            ],
            [
                "frame with ground truth and surface views",
                f"{1000 * with_truth:.1f} ms",
                f"{1 / with_truth:.1f} fps",
            ],
            [
                "bare Open3D ray casting of the same rays (scene build; camera and LiDAR rays, "
                "shadow rays: the renderer's own calls)",
                f"{1000 * bare:.1f} ms",
                f"{1 / bare:.1f} fps",
            ],
            ["ratio frame / bare ray casting (same pass)", f"{ratio:.2f}", ""],
        ],
        "goals": "at least 15 fps; ratio at most 2.0",
    }


BENCH_CAMPAIGN = """\
name: bench
scenarios: [urban_stop, rural_speed_limit]
sweep:
  weather: [ClearNoon, CloudyNoon, Fog, HardRainNoon]
  distance: [20, 30, 40]
episode: {frames: 30, rate: 10}
sensors:
  camera: {width: 320, height: 240, fov: 60}
  lidar: {channels: 16, points_per_second: 163840}
seed: 5
"""


def bench_campaign() -> dict:
    """Campaign throughput: 24 jobs of 30 frames, 1 and 2 workers, local pool and Ray."""
    import tempfile

    from avrobust.campaign.run import run_campaign

    rows, rates = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(BENCH_CAMPAIGN)
        for executor in ("local", "ray"):
            for workers in (1, 2):
                marks: list[float] = []
                start = time.perf_counter()
                summary = run_campaign(
                    path,
                    Path(tmp) / f"{executor}{workers}",
                    executor,
                    workers,
                    on_outcome=lambda o, j, m=marks: m.append(time.perf_counter()),
                )
                end = time.perf_counter()
                n = summary.done
                total = n / (end - start) * 60
                steady = (n - 1) / (marks[-1] - marks[0]) * 60 if n > 1 else float("nan")
                rates[(executor, workers)] = (total, steady)
                rows.append(
                    [
                        f"{executor}, {workers} worker{'s' if workers > 1 else ''}",
                        f"{total:.1f} jobs/min ({end - start:.1f} s for {n} jobs)",
                        f"{steady:.1f} jobs/min after start-up",
                    ]
                )
    for executor in ("local", "ray"):
        one, two = rates[(executor, 1)], rates[(executor, 2)]
        rows.append(
            [
                f"{executor}: 2 workers / 1 worker",
                f"{two[0] / one[0]:.2f}x",
                f"{two[1] / one[1]:.2f}x after start-up",
            ]
        )
    return {
        "name": "campaign",
        "title": "Campaign throughput",
        "setup": "24 jobs (2 scenarios x 4 weathers x 3 distances), 30 frames each, 320x240 "
        "camera + 16-channel LiDAR, no model; wall time from the call to the last stored job "
        "(start-up of process pools and Ray included), and the rate between the first and the "
        "last finished job",
        "rows": rows,
        "goals": "2 workers reach at least 1.7 times the throughput of 1",
    }


CLOSED_LOOP_CAMPAIGN = """
name: bench_closed_loop
scenarios: [stop_cross_traffic]
closed_loop: {closed}
sweep: {{weather: [ClearNoon, CloudyNoon, WetNoon, Dusk]}}
models: [{{name: sign-pipeline}}]
sensors: {{camera: {{width: 640, height: 480}}, lidar: null}}
"""


def bench_closed_loop() -> dict:
    """Closed-loop against open-loop jobs on the same campaign (one worker)."""
    import tempfile

    from avrobust.campaign.run import run_campaign
    from avrobust.campaign.store import ResultsStore

    rows, rates = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for closed in ("false", "true"):
            path = Path(tmp) / f"{closed}.yaml"
            path.write_text(CLOSED_LOOP_CAMPAIGN.format(closed=closed))
            out = Path(tmp) / closed
            start = time.perf_counter()
            summary = run_campaign(path, out)
            wall = time.perf_counter() - start
            with ResultsStore(out, create=False) as store:
                frames = sum(j.frames or 0 for j in store.jobs("done"))
            label = "closed loop" if closed == "true" else "open loop"
            rates[closed] = (summary.done / wall * 60, frames / wall)
            rows.append(
                [
                    label,
                    f"{rates[closed][0]:.1f} jobs/min ({wall:.0f} s for {summary.done} jobs)",
                    f"{rates[closed][1]:.1f} frames/s ({frames} frames)",
                ]
            )
    rows.append(
        [
            "closed / open",
            f"{rates['true'][0] / rates['false'][0]:.2f}x jobs/min",
            f"{rates['true'][1] / rates['false'][1]:.2f}x frames/s",
        ]
    )
    return {
        "name": "closed_loop",
        "title": "Closed-loop against open-loop jobs",
        "setup": "stop_cross_traffic under 4 weathers, the sign pipeline on a 640x480 camera "
        "(no LiDAR), one worker; open loop renders the scenario's 80 frames, closed loop drives "
        "until the goal (110 m) or the time limit, a frame per 0.1 s step",
        "rows": rows,
        "goals": "closed-loop frames cost no more than open-loop ones (the policy and criteria "
        "add little to rendering and perception); a closed-loop job renders as many frames as "
        "the drive takes",
    }


def bench_attack() -> dict:
    """Sign sticker attack: optimisation throughput and steps to 90% success on the sweep."""
    from avrobust.attacks.masks import sticker_mask
    from avrobust.attacks.sign_sticker import StickerAttack
    from avrobust.core.sensors import CameraSpec
    from avrobust.evaluation.sign_attack import Sweep, run_sign_attack
    from avrobust.models.adapters import load_classifier
    from avrobust.models.weights import ASSETS

    clf = load_classifier(ASSETS / "sign_classifier.pt")
    cam = CameraSpec(640, 480, math.radians(90))
    sweep = Sweep((5.0, 10.0, 15.0, 20.0, 25.0), (0.0, 15.0, 30.0), ("ClearNoon", "Dusk"), (0.0,))
    marks: list[tuple[float, float]] = []
    start = [0.0]

    def on_step(step: int, loss: float, rate: float) -> None:
        if step == 0:
            start[0] = time.perf_counter()
        marks.append((time.perf_counter(), rate))

    steps, batch, draws = 300, 8, 2
    t0 = time.perf_counter()
    run_sign_attack(
        "urban_stop",
        "stop_sign",
        StickerAttack(clf, "stop", "speed_limit_80", steps=steps, batch=batch, eot_draws=draws),
        sticker_mask("rp2_bars"),
        sweep,
        cam,
        on_step=on_step,
    )
    total = time.perf_counter() - t0
    opt_time = marks[-1][0] - start[0]
    per_s = (steps - 1) * batch * draws / opt_time
    # 90% success: the first step after which the mean over the last 20 steps reaches 0.9.
    reached = None
    for i in range(19, len(marks)):
        if sum(r for _, r in marks[i - 19 : i + 1]) / 20 >= 0.9:
            reached = (i + 1, marks[i][0] - start[0])
            break
    rows = [
        [
            "crops through the classifier per second (EOT included)",
            f"{per_s:.0f}",
            f"{opt_time / (steps - 1) * 1000:.0f} ms per step of {batch} views x {draws} draws",
        ],
        [
            "time to 90% success on the training sweep (20-step mean)",
            "not reached" if reached is None else f"{reached[1]:.0f} s",
            "" if reached is None else f"step {reached[0]}",
        ],
        ["whole run (30 views rendered, 300 steps)", f"{total:.0f} s", ""],
    ]
    return {
        "name": "attack",
        "title": "Sign sticker attack optimisation",
        "setup": "urban_stop stop sign, targeted to speed_limit_80, rp2_bars mask, standard "
        "EOT, 30 training views (5-25 m, 0/15/30 degrees, ClearNoon and Dusk), 640x480 camera",
        "rows": rows,
        "goals": "none set; reported for comparison",
    }


def bench_lidar_attack(repeats: int = 20) -> dict:
    """LiDAR attacks: one optimisation step (forward and backward through the victim's score on
    the attack's crop) and one whole-victim detection, per victim, median of ``repeats``."""
    import statistics

    import torch

    from avrobust.attacks.lidar.objective import FrameObjective
    from avrobust.attacks.lidar.sweep import LidarSweep
    from avrobust.core.sensors import LidarSpec
    from avrobust.evaluation.lidar_attack import VICTIMS, load_victims
    from avrobust.evaluation.viewpoints import Sweep, render_sweep
    from avrobust.scenario.library import load_scenario

    spec = LidarSpec()
    camera = load_scenario("lead_vehicle").sensors.camera.to_spec()
    frame = render_sweep(
        "lead_vehicle", Sweep((15.0,), (0.0,), ("ClearNoon",), (0.0,)), camera, lidar=spec
    ).frames[0]
    sweep = LidarSweep.from_frame(frame, spec)
    n = len(sweep)
    rows = []
    for name, victim in load_victims(VICTIMS).items():
        obj = FrameObjective(victim, frame)
        step, det = [], []
        for _ in range(repeats):
            pts = sweep.points.clone().requires_grad_(True)
            t0 = time.perf_counter()
            obj.score(pts, 7.5, 0.0, "car").backward()
            step.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with torch.no_grad():
                obj.detect(sweep.points)
            det.append(time.perf_counter() - t0)
        s, d = statistics.median(step), statistics.median(det)
        rows.append([f"{name}: optimisation step", f"{s * 1000:.0f} ms", f"{n / s:,.0f} points/s"])
        rows.append(
            [f"{name}: whole-victim detection", f"{d * 1000:.0f} ms", f"{n / d:,.0f} points/s"]
        )
    return {
        "name": "lidar_attack",
        "title": "LiDAR attack optimisation",
        "setup": f"lead_vehicle at 15 m, ClearNoon, 640x480 camera + 32-channel LiDAR at 1024 "
        f"columns ({n} returns); a step is the forward and backward pass of the victim's score "
        "for a phantom at 7.5 m on a 25.6 m crop of the pillar grid (camera detections of the "
        "fusion victims computed once per frame); detection is the whole victim on the whole "
        f"sweep (the camera detector included for the fusion victims); median of {repeats}",
        "rows": rows,
        "goals": "none set; reported for comparison",
    }


def _monitored(model, name: str):
    """The sign pipeline watched by monitor ``name`` (fitted on random crops of every class:
    the time does not depend on what it learnt), every sign judged."""
    import torch

    from avrobust.defences.monitors.classifier import monitor_named
    from avrobust.defences.monitors.wrapper import monitored

    mon = monitor_named(model.classifier, name)
    g = torch.Generator().manual_seed(0)
    n = len(model.classifier.classes)
    mon.fit(torch.rand(60 * n, 3, 64, 64, generator=g), torch.arange(n).repeat(60))
    return monitored(model, mon, threshold=float("inf"), unreadable=True, min_px=0.0)


def bench_defences(repeats: int = 25) -> dict:
    """Defences: the time each adds to a frame's perception, per model, median of ``repeats``
    (a frame through the defended model minus through the bare one)."""
    import dataclasses
    import statistics

    from avrobust.campaign import registry
    from avrobust.core.sensors import LidarSpec
    from avrobust.evaluation.viewpoints import Sweep, render_sweep
    from avrobust.scenario.library import load_scenario

    camera = load_scenario("urban_stop").sensors.camera.to_spec()
    frame = render_sweep(
        "urban_stop", Sweep((15.0,), (0.0,), ("ClearNoon",), (0.0,)), camera, lidar=LidarSpec()
    ).frames[0]
    plan = {
        "camera-detector": ["none", "jpeg", "median-blur", "local-gradient-smoothing",
                            "cross-modal-check", "temporal-check"],
        "lidar-detector": ["none", "free-space-check", "void-check", "cross-modal-check",
                           "temporal-check", "camera-fallback"],
    }  # fmt: skip
    from avrobust.defences.monitors.classifier import MONITORS

    rows = []
    for model_name, defences in [*plan.items(), ("sign-pipeline", ["none", *MONITORS])]:
        model = registry.create("model", {"name": model_name})
        wrapped = {
            n: _monitored(model, n) if n in MONITORS
            else registry.create("defence", {"name": n}).wrap(model)
            for n in defences
        }  # fmt: skip
        times: dict[str, list[float]] = {n: [] for n in defences}
        # Rounds over all defences in turn, so that a busy moment of the machine is shared.
        for k in range(repeats + 1):  # round 0 warms up (and loads the cross-modal witness)
            f = dataclasses.replace(frame, timestamp=0.1 * k, index=k)
            for name, perceive in wrapped.items():
                t0 = time.perf_counter()
                perceive(f)
                if k:
                    times[name].append(time.perf_counter() - t0)
        base = statistics.median(times["none"])
        rows.append([f"{model_name}: no defence", f"{base * 1000:.0f} ms", "-"])
        for name in defences[1:]:
            t = statistics.median(times[name])
            rows.append([f"{model_name}: {name}", f"{t * 1000:.0f} ms",
                         f"{(t - base) * 1000:+.0f} ms added"])  # fmt: skip
    return {
        "name": "defences",
        "title": "Defence latency",
        "setup": "one urban_stop frame at 15 m, ClearNoon, 640x480 camera + 32-channel LiDAR "
        "at 1024 columns; the shipped camera and LiDAR detectors; each defence with its "
        "defaults; the runtime monitors on the sign pipeline's classifier, judging every "
        "detected sign; time of one defended perception call, "
        f"median of {repeats} rounds over all defences after a warm-up round "
        "(the temporal check sees them as consecutive frames); differences of a few ms are "
        "noise",
        "rows": rows,
        "goals": "none set; reported for comparison",
    }


def bench_backdoor() -> dict:
    """Training-time attack and defences: re-rendering poisoned crops, each data-side scan on a
    training-sized crop set, STRIP per sign crop, beside a poisoned training's own time."""
    import tempfile

    import torch

    from avrobust.data.dataset import DatasetConfig, build_dataset
    from avrobust.defences.monitors.strip import Strip
    from avrobust.defences.poisoned_data import SCANS
    from avrobust.models.adapters import load_classifier
    from avrobust.models.weights import ASSETS
    from avrobust.training.poisoning import PoisonSpec, poison_dataset

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        build_dataset(DatasetConfig(frames=40, seed=3, sign_types=("stop", "yield")), data)
        t0 = time.perf_counter()
        m = poison_dataset(data, Path(tmp) / "p", PoisonSpec(rate=0.1, source="stop"))
        dt = time.perf_counter() - t0
        rows.append(["poisoning (re-render with the trigger)", f"{dt / m['poisoned']:.2f} s",
                     f"per poisoned crop ({m['poisoned']} crops)"])  # fmt: skip
    model = load_classifier(ASSETS / "sign_classifier.pt")
    g = torch.Generator().manual_seed(0)
    n = 9000  # the shipped training set's size
    x = torch.rand(n, 3, 64, 64, generator=g)
    y = torch.randint(0, 8, (n,), generator=g)
    for name, scan in SCANS.items():
        t0 = time.perf_counter()
        scan(model.module, x, y)
        rows.append([f"scan: {name}", f"{time.perf_counter() - t0:.1f} s", f"{n} crops"])
    strip = Strip(model).fit(x[:200], y[:200])
    strip.score(x[:64])  # warm-up
    t0 = time.perf_counter()
    strip.score(x[:256])
    rows.append(["STRIP (16 blends)", f"{(time.perf_counter() - t0) / 256 * 1000:.1f} ms",
                 "per sign crop"])  # fmt: skip
    return {
        "name": "backdoor",
        "title": "Backdoors: poisoning and its defences",
        "setup": "poisoning: a 40-frame stop and yield dataset, 10% of crops re-rendered with "
        "the checker trigger (two renders per sample); scans: 9000 crops (the shipped training "
        "set's size) through the shipped classifier's penultimate layer; STRIP: 256 crops, "
        "16 blends each",
        "rows": rows,
        "goals": "none set; reported for comparison",
        "notes": "A poisoned training is a clean training on the poisoned copy; its time is "
        "measured by the training run itself (see the backdoored model's card).",
    }


def bench_demo() -> dict:
    """``avrobust demo`` end to end in a fresh folder, with the time of each stage."""
    import tempfile

    from avrobust.demo import DemoConfig, Stages, run_demo

    marks: dict[str, list[float]] = {}

    class Clock(Stages):
        def start(self, name, total):
            marks.setdefault(name, [time.perf_counter(), time.perf_counter()])

        def advance(self, name, n=1, info=""):
            marks[name][1] = time.perf_counter()

        def done(self, name, info=""):
            marks[name][1] = time.perf_counter()

    cfg = DemoConfig()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = run_demo(Path(tmp) / "demo", cfg, Clock())
        total = time.perf_counter() - t0
        jobs = len(list((res.run_dir / "pictures").glob("*_window.jpg")))
    rows = [[name, f"{b - a:.0f} s", ""] for name, (a, b) in marks.items()]
    rows.append(["whole demo", f"{total:.0f} s ({total / 60:.1f} min)", f"{jobs} jobs"])
    return {
        "name": "demo",
        "title": "The demo (avrobust demo)",
        "setup": f"defaults: sticker {cfg.sticker_steps} steps, hiding poster {cfg.hide_steps} "
        f"steps, {len(cfg.weathers) * len(cfg.distances) * len(cfg.models) * 3} jobs of "
        f"{cfg.frames} frames at {cfg.camera[0]}x{cfg.camera[1]} with {cfg.workers} workers, "
        "report and print files; a stage's time runs from its first to its last progress "
        "report (rendering the training views is inside 'render views')",
        "rows": rows,
        "goals": "the whole demo within 10 minutes on two CPU cores",
    }


BENCHES = {
    "sim": bench_sim,
    "campaign": bench_campaign,
    "closed_loop": bench_closed_loop,
    "attack": bench_attack,
    "lidar_attack": bench_lidar_attack,
    "demo": bench_demo,
    "defences": bench_defences,
    "backdoor": bench_backdoor,
}


def write_markdown(results: dict, path: Path) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`tools/bench.py`); each section says when and on what "
        "it was measured. Re-run on your machine to compare.",
        "",
    ]
    for entry in results.values():
        m = entry["machine"]
        lines += [
            f"## {entry['title']}",
            "",
            f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores, torch "
            f"{m['torch']} with {m['torch_threads']} threads, Open3D {m['open3d']}, "
            f"Python {m['python']}).",
            "",
            f"Setup: {entry['setup']}.",
            "",
            "| measure | value | rate |",
            "| --- | --- | --- |",
        ]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in entry["rows"]]
        lines += ["", f"Goals: {entry['goals']}.", ""]
        if entry.get("notes"):
            lines += [entry["notes"], ""]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(BENCHES), action="append")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    store = args.out.with_suffix(".json")
    results = json.loads(store.read_text()) if store.exists() else {}
    for name in args.only or sorted(BENCHES):
        print(f"running {name} ...", flush=True)
        entry = BENCHES[name]()
        entry["machine"] = machine()
        if name in results and results[name].get("notes"):
            entry["notes"] = results[name]["notes"]
        results[name] = entry
        for row in entry["rows"]:
            print("  ", " | ".join(row))
    store.write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
