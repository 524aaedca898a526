"""The unseen sign types (real signs the classifier never trained on): drawn by the simulator,
placed by scenarios, and drawn by dataset builds only when asked for."""

from __future__ import annotations

import numpy as np
import pytest

from avrobust.core.classes import SIGN_CLASSES, SIGN_TYPES, UNSEEN_SIGN_TYPES
from avrobust.core.errors import ConfigError
from avrobust.data.dataset import DatasetConfig, parse_sign_types, random_scenario
from avrobust.sim.signs import draw_face


def test_unseen_types_are_not_classifier_classes():
    assert len(UNSEEN_SIGN_TYPES) >= 5
    assert not set(UNSEEN_SIGN_TYPES) & set(SIGN_CLASSES)


def test_every_unseen_face_is_drawn_and_differs_from_every_trained_one():
    trained = [draw_face(t, 64) for t in SIGN_TYPES]
    for t in UNSEEN_SIGN_TYPES:
        face = draw_face(t, 64)
        assert face.shape == (3, 64, 64) and 0 <= face.min() and face.max() <= 1
        assert min(float(np.abs(face - f).mean()) for f in trained) > 0.01, t


def test_dataset_builds_draw_trained_signs_unless_told():
    default = DatasetConfig(frames=1)
    assert default.sign_types == SIGN_TYPES
    cfg = DatasetConfig(frames=1, sign_types=parse_sign_types("unseen"))
    types = {s.type for i in range(20) for s in random_scenario(cfg, i)[0].signs}
    assert types and types <= set(UNSEEN_SIGN_TYPES)
    assert parse_sign_types("trained,priority_road") == (*SIGN_TYPES, "priority_road")
    with pytest.raises(ConfigError, match="sign-types"):
        DatasetConfig(frames=1, sign_types=("no_such_sign",))


def test_an_unseen_sign_renders_with_its_type_in_the_truth():
    from avrobust.backends.base import EpisodeSpec
    from avrobust.backends.embedded import EmbeddedBackend
    from avrobust.scenario.library import load_scenario

    sc = load_scenario("urban_stop")
    signs = [s.model_copy(update={"type": "priority_road"}) for s in sc.signs]
    sc = sc.model_copy(update={"signs": signs, "targets": []})
    with EmbeddedBackend() as backend:
        backend.start(EpisodeSpec.from_scenario(sc, frames=1))
        frame = next(iter(backend.frames()))
    assert "priority_road" in frame.truth.subclasses
