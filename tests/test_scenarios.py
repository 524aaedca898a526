"""Scenario files: the library validates; bad files get one message per problem with file,
line, field and what is allowed."""

import pytest

from avrobust.core.errors import ConfigError
from avrobust.scenario.library import load_scenario, scenario_names, validate_files
from avrobust.scenario.loader import ScenarioError

GOOD = """\
name: mini
map: {kind: straight, length: 100}
signs:
  - {name: s1, type: stop, s: 40}
surfaces:
  - {name: face, kind: sign_face, object: s1}
targets:
  - {object: s1, expect: stop}
"""


def _write(tmp_path, text, name="s.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_library_has_the_promised_scenarios():
    names = set(scenario_names())
    assert {
        "urban_stop",
        "rural_speed_limit",
        "intersection",
        "lead_vehicle",
        "parked_vehicle",
        "pedestrian_crossing",
        "highway",
        "urban_stop_night",
        "rural_speed_limit_fog",
    } <= names
    for name in names:
        sc = load_scenario(name)
        assert sc.name == name


def test_good_file_loads(tmp_path):
    sc = load_scenario(_write(tmp_path, GOOD))
    assert sc.signs[0].type == "stop" and sc.surfaces[0].object == "s1"
    assert sc.sensors.camera.to_spec().width == 640


def test_wrong_type_names_file_line_and_field(tmp_path):
    text = GOOD.replace("s: 40", "s: forty")
    p = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(p)
    assert err.value.problems == [
        f"{p}:4: signs[0].s: Input should be a valid number, unable to parse string as a number"
    ]


def test_unknown_field_lists_allowed_fields(tmp_path):
    p = _write(
        tmp_path,
        GOOD.replace("map: {kind: straight, length: 100}", "map: {kind: straight, lenght: 100}"),
    )
    with pytest.raises(ScenarioError) as err:
        load_scenario(p)
    (msg,) = err.value.problems
    assert msg.startswith(f"{p}:2: map.lenght: unknown field (allowed: kind, length,")


def test_every_problem_is_reported_once(tmp_path):
    text = GOOD.replace("type: stop", "type: stopp").replace("kind: straight", "kind: spiral")
    p = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(p)
    problems = err.value.problems
    assert len(problems) == 2
    assert any("map.kind" in m and "'straight', 'curve' or 'intersection'" in m for m in problems)
    assert any(f"{p}:4: signs[0].type" in m and "'stop'" in m for m in problems)


def test_dangling_reference_is_explained(tmp_path):
    p = _write(tmp_path, GOOD.replace("object: s1}\ntargets", "object: s2}\ntargets"))
    with pytest.raises(ScenarioError, match=r"surfaces\[0\]\.object: no sign named 's2'"):
        load_scenario(p)


def test_bad_yaml_and_missing_file(tmp_path):
    p = _write(tmp_path, "name: x\nsigns: [\n")
    with pytest.raises(ConfigError, match=rf"{p}:\d+: not valid YAML"):
        load_scenario(p)
    with pytest.raises(ConfigError, match=r"no such file|no scenario named"):
        load_scenario(tmp_path / "nothing.yaml")
    with pytest.raises(ConfigError, match="no scenario named 'nothing'"):
        load_scenario("nothing")


def test_unknown_weather_preset(tmp_path):
    p = _write(tmp_path, GOOD + "weather: {preset: Sunny}\n")
    with pytest.raises(ScenarioError, match=r"weather\.preset: unknown preset 'Sunny'"):
        load_scenario(p)


def test_validate_files_reports_each(tmp_path):
    good = _write(tmp_path, GOOD, "good.yaml")
    bad = _write(tmp_path, GOOD.replace("s: 40", "s: -4"), "bad.yaml")
    res = validate_files([good, bad])
    assert res[good] is None
    assert "signs[0].s" in res[bad] and "greater than or equal to 0" in res[bad]


def test_field_reference_is_current():
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parents[1] / "tools" / "gen_scenario_reference.py"
    proc = subprocess.run([sys.executable, str(tool), "--check"], timeout=120)
    assert proc.returncode == 0, "run: python tools/gen_scenario_reference.py"
