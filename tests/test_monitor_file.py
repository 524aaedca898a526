"""A calibrated monitor file: a fitted monitor saved and loaded scores exactly as it did, with
its threshold; a file that is not one, a classifier it was not fitted on, or a file too large
is refused with the file and the field named; the sign-monitor defence deploys it."""

from __future__ import annotations

import pytest
import torch

from avrobust.core.classes import SIGN_TYPES
from avrobust.core.errors import ConfigError, ModelError
from avrobust.defences.monitors import state
from avrobust.defences.monitors.classifier import monitor_named
from avrobust.models.adapters import load_classifier
from avrobust.models.weights import ASSETS, file_sha256
from tests.test_monitors import _background, _sign_crops

SHA = file_sha256(ASSETS / "sign_classifier.pt")


@pytest.fixture(scope="module")
def data():
    model = load_classifier(ASSETS / "sign_classifier.pt")
    x = torch.cat([_sign_crops(SIGN_TYPES, 8, 0), _background(24, 1)])
    y = torch.tensor([i for i in range(len(SIGN_TYPES)) for _ in range(8)] + [7] * 24)
    probe = torch.cat([_sign_crops(SIGN_TYPES, 2, 2), torch.rand(4, 3, 64, 64)])
    return model, x, y, probe


@pytest.mark.parametrize("name", ["mahalanobis", "knn", "odin_mahalanobis", "odin", "strip"])
def test_a_saved_monitor_scores_as_it_did(tmp_path, data, name):
    model, x, y, probe = data
    m = monitor_named(model, name)
    if name == "knn":
        m.k = 5
    m.fit(x, y)
    path = state.save_monitor(tmp_path / f"{name}.monitor", m, 1.25, SHA, {"fit": "here"})
    loaded, threshold, meta = state.load_monitor(path, model, SHA)
    torch.testing.assert_close(loaded.score(probe), m.score(probe))
    assert (loaded.name, threshold, meta) == (name, 1.25, {"fit": "here"})


def test_bad_monitor_files_are_refused_naming_the_field(tmp_path, data, monkeypatch):
    model, x, y, _ = data
    m = monitor_named(model, "mahalanobis").fit(x, y)
    good = state.save_monitor(tmp_path / "m.monitor", m, 2.0, SHA)
    with pytest.raises(ModelError, match="classifier_sha256"):
        state.load_monitor(good, model, "0" * 64)

    junk = tmp_path / "junk.monitor"
    junk.write_bytes(b"not a torch file at all")
    with pytest.raises(ModelError, match="not a readable monitor file"):
        state.load_monitor(junk, model)

    class Evil:  # a pickled object would run code on load: weights_only refuses it
        def __reduce__(self):
            return (print, ("ran",))

    evil = tmp_path / "evil.monitor"
    torch.save({"format": state.FORMAT, "name": "mahalanobis", "x": Evil()}, evil)
    with pytest.raises(ModelError, match="not a readable monitor file"):
        state.load_monitor(evil, model)

    payload = torch.load(good, weights_only=True)
    payload["state"]["precision.0"] = torch.eye(3)  # not the classifier's feature size
    bad = tmp_path / "bad.monitor"
    torch.save(payload, bad)
    with pytest.raises(ModelError, match=r"bad\.monitor: state: does not fit"):
        state.load_monitor(bad, model)
    del payload["state"]["precision.0"]
    torch.save(payload, bad)
    with pytest.raises(ModelError, match=r"state\.precision\.0"):
        state.load_monitor(bad, model)

    monkeypatch.setattr(state, "MAX_BYTES", 100)
    with pytest.raises(ModelError, match="at most 100"):
        state.load_monitor(good, model)


def test_the_sign_monitor_defence_deploys_a_monitor_file(tmp_path, data):
    from avrobust.defences.monitors.defence import SignMonitor
    from avrobust.models.victims import SignClassifierOnTruth

    model, x, y, _ = data
    m = monitor_named(model, "odin_mahalanobis").fit(x, y)
    path = state.save_monitor(tmp_path / "u.monitor", m, 1.5, SHA)
    defended = SignMonitor(file=str(path)).wrap(SignClassifierOnTruth())
    assert callable(defended)
    assert SignMonitor(file=str(path)).provenance()["file"] == str(path)
    with pytest.raises(ConfigError, match="either file or fit"):
        SignMonitor(file=str(path), fit="data/x")
    with pytest.raises(ConfigError, match="threshold"):
        SignMonitor(method="odin")
