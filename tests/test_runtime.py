"""Process start-up: Open3D's Plotly drawing is imported only when used; OpenMP threads spin
briefly, unless the user chose otherwise or torch was loaded first."""

import subprocess
import sys

APPLY = "import avrobust.runtime as r; r.apply()"

CODE = """
import sys
import avrobust.runtime
avrobust.runtime.apply()
import open3d
print('dash' in sys.modules, 'plotly' in sys.modules)
fig = open3d.visualization.get_plotly_fig([open3d.geometry.TriangleMesh.create_box()])
print(type(fig).__name__, 'dash' in sys.modules)
"""


def test_open3d_starts_without_dash_and_still_draws_with_plotly():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "Figure", "True"]


def test_the_deferral_can_be_switched_off():
    env = {"AVROBUST_NO_LAZY_PLOTLY": "1", "PATH": ""}
    code = (
        "import sys, avrobust.runtime as r; r.apply(); import open3d; print('dash' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def _spin_setting(code: str, **env: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code + "; import os; print(os.environ.get('GOMP_SPINCOUNT'))"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "", **env},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_openmp_threads_spin_briefly_when_avrobust_comes_first():
    from avrobust.runtime import SPIN_COUNT

    assert _spin_setting(APPLY) == SPIN_COUNT
    # Too late once torch (and libgomp with it) is loaded: nothing is pretended.
    assert _spin_setting("import torch; " + APPLY) == "None"
    # A user's own value and the switch are respected.
    assert _spin_setting(APPLY, GOMP_SPINCOUNT="5") == "5"
    assert _spin_setting(APPLY, AVROBUST_NO_SPIN_TUNING="1") == "None"
