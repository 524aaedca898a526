"""``avrobust drive`` and the campaign-side drive: references on the command line, which
categories a model gives the policy, the files a drive writes."""

import json

import pytest
from typer.testing import CliRunner

from avrobust.campaign import registry
from avrobust.campaign.closed_loop import perceived_categories
from avrobust.cli import app
from avrobust.cli.drive import parse_ref
from avrobust.core.errors import ConfigError


def test_component_references_on_the_command_line():
    assert parse_ref("sign-pipeline", "model") == {"name": "sign-pipeline"}
    ref = parse_ref("patch:file=a.patch,surface=stop_sign,strength=0.5", "attack")
    assert ref == {"name": "patch", "params": {"file": "a.patch", "surface": "stop_sign",
                                                "strength": 0.5}}  # fmt: skip
    with pytest.raises(ConfigError):
        parse_ref("patch:file", "attack")


@pytest.mark.parametrize(
    ("model", "cats"),
    [
        ("sign-pipeline", ("traffic_sign",)),
        ("sign-classifier", ("traffic_sign",)),
        ("camera-detector", ("car", "pedestrian")),  # names no sign types: signs from truth
        ("lidar-detector", ("car", "pedestrian")),
        ("none", ()),
    ],
)
def test_what_each_model_tells_the_policy(model, cats):
    registry.load_builtin_components()
    assert perceived_categories(registry.create("model", {"name": model})) == cats


def test_drive_writes_its_trace_and_pictures(tmp_path):
    out = tmp_path / "d"
    res = CliRunner().invoke(app, ["drive", "stop_cross_traffic", "--oracle", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "stopped" in res.output and "driving score" in res.output
    doc = json.loads((out / "trace.json").read_text())
    assert doc["oracle"] is True and doc["result"]["stops"][0]["stopped"] is True
    assert doc["result"]["driving_score"] == 1.0
    for png in ("top_down.png", "timeline.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_drive_refuses_an_unknown_component(tmp_path):
    # (the console entry point turns a ConfigError into one line and exit 2)
    res = CliRunner().invoke(app, ["drive", "empty_road", "--model", "nope", "-o", str(tmp_path)])
    assert isinstance(res.exception, ConfigError) and "unknown model 'nope'" in str(res.exception)
    assert not (tmp_path / "trace.json").exists()
