"""avrobust as a package: importing it changes nothing in the process, and a built wheel alone
(not the source checkout) carries the shipped weights, palettes, patches and scenarios and runs
from an unrelated directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Some libraries set variables of their own on import (Open3D TCM_ENABLE, OpenCV
# LD_LIBRARY_PATH, torchmetrics TORCHINDUCTOR_CACHE_DIR): they are imported before the snapshot.
IMPORT_EVERYTHING = """
import json, os, sys
import torch, open3d, cv2, torchmetrics, kornia, matplotlib
env, mods = dict(os.environ), set(sys.modules)
import avrobust, avrobust.core, avrobust.scenario.library, avrobust.campaign.run
import avrobust.evaluation.sign_attack, avrobust.report.build, avrobust.training.classifier
import avrobust.cli.commands
stand_ins = [n for n, m in sys.modules.items() if vars(m).get("_avrobust_stand_in")]
foreign = [n for n in set(sys.modules) - mods
           if n.startswith("avrobust") and not hasattr(sys.modules[n], "__spec__")]
print(json.dumps({"env_changed": dict(os.environ) != env, "stand_ins": stand_ins,
                  "foreign": foreign, "plotly_module": "open3d.visualization.draw_plotly"
                  in sys.modules and "plotly" not in sys.modules}))
"""


def test_importing_avrobust_changes_nothing_in_the_process():
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, timeout=300,
        env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "env_changed": False, "stand_ins": [], "foreign": [], "plotly_module": False
    }  # fmt: skip


def test_runtime_apply_is_the_one_place_that_tunes_the_process():
    code = (
        "import os, sys, avrobust.runtime as r; s = r.apply(); "
        "print(s['openmp_spin'], os.environ.get('GOMP_SPINCOUNT'), s['lazy_plotly'], "
        "'open3d.visualization.draw_plotly' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOMP_", "AVROBUST_NO_"))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    from avrobust.runtime import SPIN_COUNT

    assert out.stdout.split() == ["True", SPIN_COUNT, "True", "True"]


CAMPAIGN = """
name: from_anywhere
scenarios: [urban_stop]
sweep: {weather: [ClearNoon], distance: [20]}
models: [{name: sign-classifier}]
attacks:
  - {name: none}
  - {name: patch, params: {file: assets/patches/stop_to_80.patch, surface: stop_sign}}
episode: {frames: 3, rate: 10}
sensors: {camera: {width: 320, height: 240, fov: 60}, lidar: null}
seed: 3
"""


@pytest.mark.slow
def test_the_wheel_carries_the_shipped_files_and_runs_from_anywhere(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("avrobust-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in (
        "avrobust/assets/models/sign_classifier.pt",
        "avrobust/assets/models/sign_classifier.md",
        "avrobust/assets/palettes/printer30.csv",
        "avrobust/assets/patches/stop_to_80.patch",
        "avrobust/assets/objects/hide_lead_carrier.obj",
        "avrobust/scenarios/urban_stop.yaml",
        "avrobust/scenarios/campaigns/demo.yaml",
        "avrobust/cli/__main__.py",
        "avrobust/__main__.py",
    ):
        assert shipped in names, shipped
    assert not any(n.startswith(("tests/", "tools/", "docs/")) for n in names)

    # The wheel alone, installed into its own folder, run from an unrelated directory.
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "campaign.yaml").write_text(CAMPAIGN)
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "400"}
    env.pop("AVROBUST_SCENARIOS", None)

    def avrobust(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "avrobust", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip

    where = subprocess.run([sys.executable, "-c", "import avrobust; print(avrobust.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True)  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(site)
    doctor = avrobust("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "shipped data" in doctor.stdout and str(site) in doctor.stdout
    listed = avrobust("scenario", "list")
    assert listed.returncode == 0 and "urban_stop" in listed.stdout
    run = avrobust("run", "campaign.yaml", "--out", "run")
    assert run.returncode == 0, run.stdout + run.stderr
    from avrobust.campaign.store import ResultsStore

    store = ResultsStore(elsewhere / "run", create=False)
    assert store.query("SELECT COUNT(*) FROM jobs WHERE status = 'done'")[0][0] == 2
