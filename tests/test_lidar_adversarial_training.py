"""LiDAR adversarial training: the attacks it trains on keep to their threat model, and a short
fine-tuning with spoofed phantoms makes the detector report far fewer white-box phantoms than
the same fine-tuning without them."""

import pytest
import torch

from avrobust.models.weights import ASSETS
from avrobust.training.lidar_adversarial import LidarAdvConfig, attack_sample


@pytest.fixture
def tiny(tiny_lidar_set):
    return tiny_lidar_set


def _spec():
    from avrobust.core.sensors import LidarSpec

    return LidarSpec()


def _differ(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Which rows of ``a`` are not rows of ``b``."""
    rows = {tuple(r) for r in b.tolist()}
    return torch.tensor([tuple(r) not in rows for r in a.tolist()], dtype=torch.bool)


def test_lidar_attacks_made_for_training_keep_to_their_threat(tiny):
    from avrobust.attacks.lidar.sweep import ray_index
    from avrobust.models.lidar_data import load_lidar_set
    from avrobust.models.lidar_detector import load_lidar_model

    model = load_lidar_model(ASSETS / "lidar_detector.pt")
    spec = _spec()
    dirs = spec.ray_directions()
    kinds = set()
    for i, s in enumerate(load_lidar_set(tiny)[:4]):
        for spoof_share, optimised in ((1.0, 0.0), (1.0, 1.0), (0.0, 0.0), (0.0, 1.0)):
            cfg = LidarAdvConfig(
                spoof_share=spoof_share,
                remove_share=1.0 - spoof_share,
                optimised=optimised,
                spoof_points=40,
                remove_points=30,
            )
            a = attack_sample(s, model, spec, cfg, torch.Generator().manual_seed(i))
            kinds.add(a.kind)
            before, after = s.points, a.sample.points
            assert torch.equal(a.sample.labels, s.labels)  # a phantom is never labelled
            new, gone = _differ(after, before), _differ(before, after)
            if a.kind == "spoof":
                assert 0 < int(new.sum()) <= 40
                p = after[new, :3]
                # Created returns lie on the victim's rays and replace the return on each.
                rays = ray_index(p, spec)
                r = p.norm(dim=1, keepdim=True)
                assert torch.allclose(p / r, dirs[rays], atol=1e-3)
                assert int(gone.sum()) <= int(new.sum())
                fx, fy = a.focus
                d = torch.hypot(s.boxes.center[:, 0] - fx, s.boxes.center[:, 1] - fy)
                assert len(d) == 0 or float(d.min()) > 6.0 - 2.5  # focus is the phantom centre
            elif a.kind == "remove":
                assert int(new.sum()) == 0 and 0 < int(gone.sum()) <= 30
            else:
                assert torch.equal(after, before)
    assert {"spoof", "remove"} <= kinds


def _phantom_scores(model, data, spec) -> float:
    """Mean score of white-box car phantoms the victim is attacked with, 8 m ahead."""
    from avrobust.attacks.lidar.objective import FrameObjective
    from avrobust.attacks.lidar.spoof import spoof
    from avrobust.attacks.lidar.sweep import LidarSweep, ray_index
    from avrobust.attacks.lidar.threat import LidarThreat

    scores = []
    for s in data:
        sweep = LidarSweep(s.points, ray_index(s.points, spec))
        threat = LidarThreat(points=40)
        res = spoof(FrameObjective(model, None), sweep, spec, threat, 10.25, 0.0, steps=20)
        scores.append(res.score)
    return sum(scores) / len(scores)


@pytest.mark.slow
def test_lidar_adversarial_finetuning_lowers_phantom_scores(tmp_path, tiny):
    from avrobust.models.lidar_data import load_lidar_set
    from avrobust.models.lidar_detector import load_lidar_model
    from avrobust.training.lidar import LidarTrainConfig, train_lidar_detector

    spec = _spec()
    data = load_lidar_set(tiny)
    found = {}
    for name, adv in (
        ("plain", None),
        ("adv", LidarAdvConfig(spoof_share=1.0, remove_share=0.0, optimised=1.0, spoof_points=40)),
    ):
        cfg = LidarTrainConfig(
            str(tiny),
            str(tmp_path / name),
            epochs=8,
            batch=8,
            crop=64,
            lr=5e-4,
            device="cpu",
            init=str(ASSETS / "lidar_detector.pt"),
            adversarial=adv,
        )
        metrics = train_lidar_detector(cfg)
        if adv is not None:
            assert sum(h["attacked_sweeps"].get("spoof", 0) for h in metrics["history"]) > 30
        found[name] = _phantom_scores(
            load_lidar_model(tmp_path / name / "lidar_detector.pt"), data, spec
        )
    adv, plain = found["adv"], found["plain"]
    print(f"white-box phantom score: adversarially fine-tuned {adv:.3f}, plainly {plain:.3f}")
    assert found["adv"] < 0.5 * found["plain"]
