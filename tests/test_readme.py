"""The README's Python examples run as written (with fewer optimisation steps)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _example(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- example: {name}[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert found, f"README has no example {name!r}"
    return found.group(1)


@pytest.mark.slow
def test_the_sticker_example_builds_the_attack_calls_it_and_gets_a_patch(tmp_path, monkeypatch):
    from avrobust.core.patch import Patch

    code = _example("sticker")
    assert "steps=200" in code
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code.replace("steps=200", "steps=2"), "README.md", "exec"), scope)
    patch = Patch.load(tmp_path / "stop_to_80.patch")
    assert isinstance(scope["patch"], Patch) and patch.size_m == (0.75, 0.75)
    assert patch.provenance["steps"] == 2 and patch.provenance["target"] == "speed_limit_80"
    assert 0.05 < patch.coverage < 0.3
