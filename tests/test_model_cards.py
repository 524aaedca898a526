"""Each shipped model card is what tools/model_card.py writes from the shipped metrics and
weights: no number in a card was edited by hand or left behind by newer weights."""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import re
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "model_card.py"
spec = importlib.util.spec_from_file_location("model_card", TOOL)
model_card = importlib.util.module_from_spec(spec)
spec.loader.exec_module(model_card)


def _regenerated(stem: str, card_of) -> tuple[str, str]:
    assets = model_card.ASSETS
    shipped = (assets / f"{stem}.md").read_text(encoding="utf-8")
    metrics = json.loads((assets / f"{stem}.metrics.json").read_text(encoding="utf-8"))
    weights = assets / f"{stem}.pt"
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    data_cmd, val_cmd = re.findall(r"^    (avrobust dataset build .*)$", shipped, re.M)[:2]
    return shipped, card_of(metrics, data_cmd, val_cmd, sha, weights.stat().st_size)


@pytest.mark.parametrize("kind", sorted(model_card.CARDS))
def test_the_shipped_card_is_what_the_tool_writes_from_the_shipped_metrics(kind):
    stem, card_of = model_card.CARDS[kind]
    shipped, regenerated = _regenerated(stem, card_of)
    added = [
        line
        for tag, _i1, _i2, j1, j2 in difflib.SequenceMatcher(
            None, regenerated.splitlines(), shipped.splitlines()
        ).get_opcodes()
        if tag != "equal"
        for line in shipped.splitlines()[j1:j2]
        if line.strip()
    ]
    # The one thing a card may add is the tool's --note, inserted as the tool inserts it.
    assert len(added) <= 1, f"{stem}.md differs from the tool's card: {added}"
    if added:
        note = added[0]
        regenerated = regenerated.replace(
            "\n## Held-out results", f"\n{note}\n\n## Held-out results", 1
        )
    assert shipped == regenerated
