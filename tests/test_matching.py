"""One rule for which detection reports a target, and the runner's component protocols."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from avrobust.core.boxes import Box3D
from avrobust.core.components import AttackBase, DefenceBase, ModelBase, Perception
from avrobust.core.detections import Detections
from avrobust.core.thresholds import MATCH_IOU
from avrobust.models.matching import best_match

NAMES = ("car", "pedestrian", "traffic_sign")


def _dets(boxes, scores, labels) -> Detections:
    return Detections(
        torch.tensor(boxes, dtype=torch.float32),
        torch.tensor(scores),
        torch.tensor(labels),
        class_names=NAMES,
    )


def test_the_most_overlapping_or_the_most_confident_detection_reports_the_target():
    target = torch.tensor([0.0, 0.0, 10.0, 10.0])
    # 0: exact but unsure; 1: overlaps 0.64 and sure; 2: sure but beside the target.
    dets = _dets([[0, 0, 10, 10], [0, 0, 8, 8], [20, 20, 30, 30]], [0.4, 0.9, 0.99], [2, 0, 2])
    assert best_match(dets, target).index == 0
    by_score = best_match(dets, target, by="score")
    assert (by_score.index, by_score.name) == (1, "car") and by_score.score == pytest.approx(0.9)
    assert best_match(dets, target, category="traffic_sign", by="score").index == 0
    assert best_match(dets, target, category="pedestrian") is None
    assert best_match(dets, torch.tensor([50.0, 50.0, 60.0, 60.0])) is None
    assert best_match(dets, torch.tensor([5.0, 5.0, 5.0, 9.0])) is None  # not in the image
    assert best_match(None, target) is None


def test_the_overlap_needed_is_the_named_threshold():
    target = torch.tensor([0.0, 0.0, 10.0, 10.0])
    half = _dets([[0, 0, 10, 5]], [0.9], [0])  # IoU exactly 0.5
    assert MATCH_IOU == 0.5 and best_match(half, target) is not None
    assert best_match(half, target, iou=0.51) is None


def test_3d_detections_match_on_their_footprint():
    truth = Box3D(torch.tensor([[10.0, 0.0, 0.8]]), torch.tensor([[4.0, 2.0, 1.5]]), torch.zeros(1))
    boxes = torch.tensor(
        [[10.5, 0.0, 0.8, 4.0, 2.0, 1.5, 0.0], [10.0, 6.0, 0.8, 4.0, 2.0, 1.5, 0.0]]
    )
    dets = Detections(
        boxes, torch.tensor([0.5, 0.9]), torch.tensor([0, 0]), kind="3d", class_names=NAMES
    )
    assert best_match(dets, box3d=truth).index == 0


def test_the_bases_supply_the_parts_a_component_leaves_out():
    class Blind(ModelBase):
        name = "blind"

        def __call__(self, frame):
            return None

    model = Blind()
    perceive = DefenceBase().wrap(model)
    assert isinstance(perceive, Perception) and perceive.take_alarms() == []
    attack = AttackBase()
    assert attack.attachments(None) == () and attack.made_targets(None) == []
    assert attack.perturb("frame", model) == "frame" and attack.provenance() == {}
    assert model.categories is None and model.label_level == "class"


def test_the_runner_calls_methods_and_never_probes_components():
    import avrobust.campaign.runner as runner

    tree = ast.parse(Path(runner.__file__).read_text(encoding="utf-8"))
    probes = [
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Name)
        and n.func.id in ("getattr", "hasattr")
    ]
    assert probes == []


def test_a_component_missing_a_protocol_method_is_refused_when_built():
    from avrobust.campaign import registry
    from avrobust.core.errors import ConfigError

    class Half:
        name = "half"

        def wrap(self, model):
            return model

    registry.register("defence", "test-half", "a defence without the protocol's other parts")(Half)
    with pytest.raises(
        ConfigError, match=r"lacks raises_alarms, fail_safe, provenance.*DefenceBase"
    ):
        registry.create("defence", {"name": "test-half"})

    class Mute(ModelBase):  # the base gives everything but the call itself
        name = "mute"

    registry.register("model", "test-mute", "a model that never perceives")(Mute)
    with pytest.raises(ConfigError, match=r"lacks __call__.*ModelBase"):
        registry.create("model", {"name": "test-mute"})
