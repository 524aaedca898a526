"""Hostile and malformed scenario and campaign files: each is refused with one line that names
the file (and the line or field), never a traceback, a hang or gigabytes of memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from avrobust.core.errors import ConfigError
from avrobust.scenario.library import load_scenario
from avrobust.scenario.loader import MAX_BYTES, read_yaml

SCENARIO = (Path(__file__).resolve().parents[1] / "avrobust/scenarios/urban_stop.yaml").read_text()


def _bomb(levels: int = 9) -> str:
    """The billion-laughs document: nine aliases of nine aliases of ..., about 500 bytes."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


# (case, text or bytes, what the one-line message must say)
CASES = [
    ("alias bomb", _bomb(), "expands to more than"),
    ("duplicate key", SCENARIO.replace("seed: 11", "seed: 11\nseed: 12"), "given twice"),
    ("duplicate nested key", SCENARIO.replace("kind: straight", "kind: straight\n  kind: curve"),
     "key 'kind' given twice"),
    ("deep flow nesting", "name: x\nmap: " + "[" * 2000 + "]" * 2000 + "\n", "nested deeper"),
    ("deep block nesting", "".join(f"{'  ' * i}k{i}:\n" for i in range(100)) + "  " * 100 + "v\n",
     "nested deeper"),
    ("not UTF-8", SCENARIO.encode("utf-8").replace(b"urban_stop", b"urban_\xff\xfe"), "not UTF-8"),
    ("NaN speed", SCENARIO.replace("speed: 8.0}", "speed: .nan}"), "ego.speed"),
    ("infinite sign position", SCENARIO.replace("s: 60,", "s: .inf,"), "signs[0].s"),
    ("infinite weather",
     SCENARIO.replace("{preset: ClearNoon}", "{preset: ClearNoon, fog_density: -.inf}"),
     "weather.fog_density"),
    ("NaN frame rate", SCENARIO.replace("rate: 10}", "rate: .NaN}"), "episode.rate"),
    ("tab indentation", SCENARIO.replace("  kind: straight", "\tkind: straight"), "not valid YAML"),
    ("unclosed flow", SCENARIO.replace("{lane: -1, start: 0, speed: 8.0}", "{lane: -1"),
     "not valid YAML"),
    ("python tag", SCENARIO + "x: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ("not a mapping", "- a\n- b\n", "must hold a mapping"),
    ("absurd image size", SCENARIO.replace("seed: 11", "sensors: {camera: {width: 100000}}"),
     "sensors.camera.width"),
    ("absurd LiDAR sweep",
     SCENARIO.replace("seed: 11", "sensors: {lidar: {channels: 1, rotation_frequency: 0.001}}"),
     "columns per sweep"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "content", "says"), CASES, ids=[c[0] for c in CASES])
def test_a_malformed_scenario_is_one_clear_error(tmp_path, case, content, says):
    path = tmp_path / "bad.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    message = str(err.value)
    assert says in message, message
    assert str(path) in message
    assert "\n" not in message or message.count(str(path)) >= 1


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: big\n# " + "x" * MAX_BYTES + "\n")
    with pytest.raises(ConfigError, match=r"big\.yaml: the file is \d+ bytes"):
        read_yaml(path)


def test_aliases_that_stay_small_still_load_with_their_lines(tmp_path):
    """Anchors and aliases are ordinary YAML: a reused block is fine, and fields keep lines."""
    path = tmp_path / "ok.yaml"
    path.write_text("a: &w {preset: Fog}\nb: *w\nc:\n  - 1\n  - 2\n")
    data, lines = read_yaml(path)
    assert data["b"] == {"preset": "Fog"} and lines[("c", 1)] == 5


@pytest.mark.parametrize("command", [["scenario", "validate"], ["campaign", "plan"]])
def test_the_cli_exits_2_with_one_line_on_an_alias_bomb(tmp_path, command):
    """In a fresh process, with a deadline: before the fix this grew to 5 GB in a minute."""
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    proc = subprocess.run(
        [sys.executable, "-m", "avrobust", *command, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr  # validate reports on stdout, other commands on stderr
    assert proc.returncode == 2, out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and "bomb.yaml" in lines[0] and "Traceback" not in out


def test_campaign_files_get_the_same_checks(tmp_path):
    from avrobust.scenario.campaign import load_campaign

    path = tmp_path / "c.yaml"
    path.write_text("name: c\nscenarios: [urban_stop]\nseed: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:4: key 'seed' given twice"):
        load_campaign(path)
    path.write_text("name: c\nscenarios: [urban_stop]\ntimeout: .inf\n")
    with pytest.raises(ConfigError, match="timeout"):
        load_campaign(path)


@pytest.mark.parametrize("field", ["models", "attacks", "defences", "scenarios"])
def test_an_empty_component_list_is_refused_not_a_zero_job_run(tmp_path, field):
    from avrobust.scenario.campaign import load_campaign

    path = tmp_path / "c.yaml"
    text = "name: c\nscenarios: [urban_stop]\n"
    path.write_text(text.replace("scenarios: [urban_stop]\n", "") + f"{field}: []\n"
                    + ("scenarios: [urban_stop]\n" if field != "scenarios" else ""))  # fmt: skip
    with pytest.raises(ConfigError, match=rf"c\.yaml:\d+: {field}: List should have at least 1"):
        load_campaign(path)
