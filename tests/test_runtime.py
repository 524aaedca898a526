"""Process start-up: Open3D's Plotly drawing is imported only when used."""

import subprocess
import sys

CODE = """
import sys
import avrobust, open3d
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
    code = "import sys, avrobust, open3d; print('dash' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
