"""Weights files that hold no code but the wrong things: each is one ModelError naming the
file and the field, never a KeyError or a traceback from deep in a loader."""

import pytest
import torch

from avrobust.core.errors import ModelError
from avrobust.models.adapters import load_classifier
from avrobust.models.weights import FORMAT, load_weights

GOOD_STATE = {"w": torch.zeros(2)}
CASES = [
    ("not a dict", [1, 2, 3], "format"),
    ("another format", {"format": "x", "kind": "sign-classifier"}, "format"),
    ("another kind", {"format": FORMAT, "kind": "camera-detector"}, "kind"),
    ("state dict a list", {"format": FORMAT, "kind": "sign-classifier", "state_dict": [1],
                           "meta": "{}"}, "state_dict"),
    ("state dict of numbers", {"format": FORMAT, "kind": "sign-classifier",
                               "state_dict": {"w": 3}, "meta": "{}"}, "state_dict"),
    ("meta not JSON", {"format": FORMAT, "kind": "sign-classifier", "state_dict": GOOD_STATE,
                       "meta": "{oops"}, "meta"),
    ("meta a list", {"format": FORMAT, "kind": "sign-classifier", "state_dict": GOOD_STATE,
                     "meta": "[1]"}, "meta"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "payload", "field"), CASES, ids=[c[0] for c in CASES])
def test_a_malformed_weights_file_is_one_clear_error(tmp_path, case, payload, field):
    path = tmp_path / "w.pt"
    torch.save(payload, path)
    with pytest.raises(ModelError, match=rf"w\.pt: {field}"):
        load_weights(path, "sign-classifier")


def test_metadata_a_loader_needs_is_named_when_missing(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(
        {"format": FORMAT, "kind": "sign-classifier", "state_dict": GOOD_STATE, "meta": "{}"}, path
    )
    with pytest.raises(ModelError, match=r"w\.pt: meta\.classes: the metadata lacks a field"):
        load_classifier(path)
    torch.save(
        {"format": FORMAT, "kind": "sign-classifier", "state_dict": GOOD_STATE,
         "meta": '{"classes": ["stop", "yield"]}'},
        path,
    )  # fmt: skip
    with pytest.raises(ModelError, match=r"w\.pt: weights do not fit the sign classifier"):
        load_classifier(path)
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelError, match=r"not a readable weights file"):
        load_weights(path, "sign-classifier")
