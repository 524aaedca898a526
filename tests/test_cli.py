"""The CLI as a user meets it: help, version, doctor, and clean errors."""

import os
import socket
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import avrobust
from avrobust.cli import app

runner = CliRunner()
AVROBUST = [sys.executable, "-m", "avrobust.cli"]


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "doctor" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"avrobust {avrobust.__version__}"


def test_doctor_reports_core_libraries_and_device():
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    for name in ("torch", "kornia", "open3d", "opencv", "carla", "device auto"):
        assert name in result.output
    assert "cpu" in result.output or "cuda" in result.output


def test_bad_carla_address_prints_one_clean_line_and_exits_2():
    proc = subprocess.run(
        [*AVROBUST, "doctor", "--carla", "nonsense"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error: --carla: expected HOST:PORT")


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "avrobust"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and avrobust.__version__ in proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_doctor_with_no_carla_server_says_so_and_names_its_timeout():
    """The probe gives up after the timeout asked for (the message says so); a hang would hit
    the generous subprocess limit, not a wall-time assert."""
    port = _free_port()
    proc = subprocess.run(
        [*AVROBUST, "doctor", "--carla", f"127.0.0.1:{port}", "--carla-timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 1
    assert f"no CARLA server answered at 127.0.0.1:{port} within 1 s" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_scenario_list_and_render(tmp_path):
    result = runner.invoke(app, ["scenario", "list"])
    assert result.exit_code == 0 and "urban_stop" in result.output
    out = tmp_path / "render"
    result = runner.invoke(
        app,
        [
            "scenario",
            "render",
            "urban_stop",
            "--out",
            str(out),
            "--width",
            "160",
            "--height",
            "96",
            "--time",
            "3",
            "--kitti",
        ],
    )
    assert result.exit_code == 0, result.output
    from avrobust.core.images import load_png

    for name in ("camera", "camera_boxes", "lidar_on_camera"):
        assert load_png(out / f"{name}.png").shape == (3, 96, 160)
    assert load_png(out / "bev.png").shape[0] == 3
    assert (out / "points.ply").stat().st_size > 1000
    assert (out / "kitti" / "label_2" / "000000.txt").exists()


def test_scenario_render_unknown_scene_is_a_clean_error(tmp_path):
    proc = subprocess.run(
        [*AVROBUST, "scenario", "render", "atlantis", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "no scenario named 'atlantis'" in proc.stderr and "Traceback" not in proc.stderr


def test_scenario_validate_exit_codes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsigns:\n  - {name: a, type: stop, s: 1, colour: 3}\n")
    result = runner.invoke(app, ["scenario", "validate", str(bad)])
    assert result.exit_code == 2
    assert "signs[0].colour: unknown field" in result.output
    from avrobust.scenario.library import library_dir

    result = runner.invoke(app, ["scenario", "validate", *map(str, library_dir().glob("*.yaml"))])
    assert result.exit_code == 0, result.output


def test_unavailable_backend_stops_before_any_job(tmp_path):
    from avrobust.scenario.library import library_dir

    campaign = library_dir() / "campaigns" / "smoke.yaml"
    out = tmp_path / "run"
    proc = subprocess.run(
        [*AVROBUST, "run", str(campaign), "--out", str(out), "--backend", "carla"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "no CARLA server answers at localhost:2000" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_export_and_printer_commands(tmp_path):
    chart = tmp_path / "chart.png"
    assert runner.invoke(app, ["export", "chart", "--out", str(chart)]).exit_code == 0
    result = runner.invoke(app, ["printer", "fit", str(chart), "--out", str(tmp_path / "p.json")])
    assert result.exit_code == 0, result.output
    assert "RMS error 0.00" in " ".join(result.output.split())  # rich wraps long lines
    from avrobust.models.weights import ASSETS

    patch = ASSETS.parent / "patches" / "stop_to_80.patch"
    result = runner.invoke(
        app,
        [
            "export",
            "patch",
            str(patch),
            "--out",
            str(tmp_path / "s.png"),
            "--width-cm",
            "10",
            "--dpi",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "10.00 x 10.00 cm at 100 dpi" in " ".join(result.output.split())


def test_attack_patch_optimises_saves_and_evaluates(tmp_path):
    from avrobust.core.patch import Patch

    out = tmp_path / "hide.patch"
    args = ["attack", "patch", "--out", str(out), "--steps", "2", "--batch", "1"]
    args += ["--distances", "10", "--weathers", "ClearNoon", "--laterals", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    patch = Patch.load(out)
    assert patch.size_m == (1.4, 0.6) and patch.provenance["goal"] == "hide"
    assert "hide success" in result.output
    from avrobust.core.errors import ConfigError

    bad = runner.invoke(app, ["attack", "patch", "--out", str(out), "--surface", "nope"])
    assert isinstance(bad.exception, ConfigError) and "no surface 'nope'" in str(bad.exception)


def test_campaign_components_lists_every_registered_name():
    from typer.testing import CliRunner

    from avrobust.campaign.registry import names
    from avrobust.cli import app

    result = CliRunner().invoke(app, ["campaign", "components"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for kind in ("model", "attack", "defence"):
        for name in names(kind):
            assert name in result.output


def test_an_output_path_that_is_a_file_is_one_line_not_a_traceback(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    proc = subprocess.run(
        [*AVROBUST, "run", "scenarios/campaigns/smoke.yaml", "--out", str(taken)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"error: {taken}: File exists" in " ".join(proc.stderr.split())
    assert taken.read_text() == "a file, not a folder"  # nothing overwritten
