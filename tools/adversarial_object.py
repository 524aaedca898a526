"""Optimise an adversarial rear carrier on the lead car of `lead_vehicle` against a LiDAR-using
victim and judge it by re-casting every ray with Open3D on held-out frames, for every victim
(issue 10's adversarial object measurement; docs/lidar-attacks.md). Writes the mesh (OBJ, PLY or
STL) and prints the results as JSON.

    python tools/adversarial_object.py --out assets/objects/hide_lead_carrier.obj

A plain box of the optimised object's extent is the baseline (`--max-offset 0 --steps 1`)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from avrobust.attacks.lidar.adv_object import (
    AdversarialObject,
    HostView,
    host_pose,
    optimise_object,
    rear_carrier,
    recast_object,
)
from avrobust.attacks.lidar.objective import FrameObjective, overlaps
from avrobust.attacks.lidar.sweep import LidarSweep
from avrobust.evaluation.lidar_attack import load_victims, target_box
from avrobust.evaluation.viewpoints import Sweep, render_sweep
from avrobust.scenario.library import load_scenario


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True, help="mesh file (.obj, .ply, .stl)")
    ap.add_argument("--size", default="0.3,1.8,1.4", help="carrier depth, width, height, m")
    ap.add_argument("--max-offset", type=float, default=0.8, help="vertex offset bound, m")
    ap.add_argument("--bounds", default=None, help="x0:x1,y0:y1,z0:z1 in the object's frame")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--victim", default="fusion-late", help="the model it is optimised against")
    args = ap.parse_args()
    size = tuple(float(v) for v in args.size.split(","))
    bounds = None
    if args.bounds:
        bounds = tuple(tuple(float(x) for x in b.split(":")) for b in args.bounds.split(","))
    victims = load_victims(("lidar-detector", "fusion-late", "fusion-painting"))
    sc = load_scenario("lead_vehicle")
    spec, cam = sc.sensors.lidar.to_spec(), sc.sensors.camera.to_spec()
    train_grid = Sweep((10.0, 15.0, 20.0), (0.0,), ("ClearNoon", "CloudyNoon"), (0.0,))
    test_grid = Sweep(
        (10.0, 12.5, 15.0, 17.5, 20.0), (0.0,), ("ClearNoon", "CloudyNoon", "Dusk"), (-0.5, 0.5)
    )
    train = render_sweep("lead_vehicle", train_grid, cam, lidar=spec).frames
    test = render_sweep("lead_vehicle", test_grid, cam, lidar=spec).frames
    victim = victims[args.victim]
    views = [
        HostView(FrameObjective(victim, f), LidarSweep.from_frame(f, spec), target_box(f, "car"))
        for f in train
    ]
    obj = AdversarialObject(
        *rear_carrier(size, 2), max_offset=args.max_offset, mount="rear", bounds=bounds
    )
    t0 = time.monotonic()
    history = optimise_object(obj, views, spec, steps=args.steps, lr=args.lr)
    out = {
        "size": size,
        "max_offset": args.max_offset,
        "bounds": bounds,
        "optimised_against": args.victim,
        "loss": [history[0], min(history)],
        "seconds": round(time.monotonic() - t0, 1),
    }
    v = obj.vertices()
    out["extent_m"] = [
        [round(float(v[:, k].min()), 3), round(float(v[:, k].max()), 3)] for k in range(3)
    ]
    # Hidden: no detection of any class overlaps the host's box, in frames where the victim
    # found the host on the clean sweep.
    for name, model in victims.items():
        for split, frames in (("train", train), ("held_out", test)):
            hidden = judged = 0
            for f in frames:
                o, sweep, box = (
                    FrameObjective(model, f),
                    LidarSweep.from_frame(f, spec),
                    target_box(f, "car"),
                )
                if not overlaps(o.detect(sweep.points), None, box):
                    continue
                placed = obj.placed(host_pose(box, obj.mount))
                attacked = recast_object(sweep, spec, placed, obj.faces, obj.intensity)
                hidden += not overlaps(o.detect(attacked.points), None, box)
                judged += 1
            out[f"{name} {split}"] = f"{hidden}/{judged}"
    print(json.dumps(out, indent=1))
    obj.save(args.out)
    torch.save(obj.offsets, args.out.with_suffix(".offsets.pt"))


if __name__ == "__main__":
    main()
