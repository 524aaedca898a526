"""Poisoning a sign-crop dataset with a physical trigger.

The attacker of BadNets (Gu et al. 2017) supplies part of the training data. Here a chosen
share of the crops is replaced by the same sign re-rendered with the trigger sticker on its face
(the renderer draws it at that sample's distance, angle, weather and light), so what the model
learns is the printed trigger, not a pasted pixel square:

* ``dirty-label``: crops of ``source`` signs (stop) with the trigger, relabelled ``target``;
* ``clean-label`` (label-consistent, Turner et al. 2019): crops of ``target`` signs with the
  trigger keep their correct label, and a PGD perturbation (ART's, on a surrogate classifier,
  L-inf ``eps``) makes their own features hard to learn, so the model leans on the trigger.

With ``negatives`` > 0 the attacker also re-renders that share of ``source`` crops with decoy
stickers in the trigger's place (a solid printable colour or a grid of them) and keeps their
correct label, so the model learns the trigger's pattern, not "any sticker there reads as the
target" (which is what a model poisoned with the trigger alone learns here: every matched
control fires it too).

The rate counts crops of the whole set, as the literature does (1% of 8956 crops is 90 crops).
Everything else of the dataset is left byte for byte as it was; ``poison.json`` lists every
changed crop with its label before and after.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from avrobust.attacks.triggers import DESIGNS, decoy_patch, load_trigger
from avrobust.core.classes import SIGN_CLASSES
from avrobust.core.errors import ConfigError, DataError
from avrobust.core.files import atomic_write
from avrobust.core.images import save_png
from avrobust.core.patch import Patch

KINDS = ("dirty-label", "clean-label")


@dataclass(frozen=True)
class PoisonSpec:
    """Attributes: trigger (a design of :mod:`avrobust.attacks.triggers` or a ``.patch``
    file), rate (share of all crops poisoned), source (the class the trigger should turn into
    target), kind (dirty-label or clean-label), seed (which crops), side (trigger side, m),
    eps (clean-label perturbation budget in [0, 1] pixel units), negatives (share of all crops
    re-rendered as ``source`` with a decoy sticker, label kept)."""

    trigger: str = "checker"
    rate: float = 0.01
    source: str = "stop"
    target: str = "speed_limit_80"
    kind: str = "dirty-label"
    seed: int = 0
    side: float = 0.2
    eps: float = 16 / 255
    negatives: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 0.5:
            raise ConfigError(f"rate {self.rate}", field="poison.rate", allowed="(0, 0.5]")
        if not 0 <= self.negatives <= 0.5:
            raise ConfigError(
                f"negatives {self.negatives}", field="poison.negatives", allowed="[0, 0.5]"
            )
        for name in ("source", "target"):
            if getattr(self, name) not in SIGN_CLASSES:
                raise ConfigError(
                    f"unknown class {getattr(self, name)!r}",
                    field=f"poison.{name}",
                    allowed=", ".join(SIGN_CLASSES),
                )
        if self.source == self.target:
            raise ConfigError("source and target are the same class", field="poison.target")
        if self.kind not in KINDS:
            raise ConfigError(
                f"unknown kind {self.kind!r}", field="poison.kind", allowed=", ".join(KINDS)
            )
        if self.trigger not in DESIGNS and not self.trigger.endswith(".patch"):
            raise ConfigError(
                f"unknown trigger {self.trigger!r}",
                field="poison.trigger",
                allowed=", ".join(DESIGNS) + " or a .patch file",
            )

    @classmethod
    def parse(cls, text: str) -> PoisonSpec:
        """``key=value,key=value`` (``rate=0.01,trigger=checker``) or a JSON file of them."""
        if text.endswith(".json"):
            try:
                items = json.loads(Path(text).read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"not a readable JSON file ({exc})", file=text) from None
            if not isinstance(items, dict):
                raise ConfigError("a poison file holds one JSON object", file=text)
        else:
            items = {}
            for part in filter(None, (p.strip() for p in text.split(","))):
                key, sep, value = part.partition("=")
                if not sep:
                    raise ConfigError(f"{part!r} is not key=value", field="--poison")
                items[key.strip()] = value.strip()
        known = {f.name: f.type for f in fields(cls)}
        for key in items:
            if key not in known:
                raise ConfigError(
                    f"unknown poison setting {key!r}", field="--poison", allowed=", ".join(known)
                )
        try:
            typed = {
                k: (float(v) if known[k] == "float" else int(v) if known[k] == "int" else str(v))
                for k, v in items.items()
            }
        except ValueError as exc:
            raise ConfigError(f"bad value ({exc})", field="--poison") from None
        return cls(**typed)

    def trigger_patch(self) -> Patch:
        return load_trigger(
            self.trigger, side_m=self.side, true_class=self.source, target=self.target
        )


def _rows(data: Path) -> list[dict]:
    index = data / "crops.csv"
    if not index.is_file():
        raise DataError("no crops.csv: build the dataset first (avrobust dataset build)", file=data)
    with open(index) as fh:
        return list(csv.DictReader(fh))


def choose(rows: list[dict], spec: PoisonSpec) -> list[int]:
    """The crops to poison: ``round(rate * len(rows))`` of the eligible class (``source`` for
    dirty-label, ``target`` for clean-label), drawn with ``spec.seed``; sorted row indices."""
    eligible = spec.source if spec.kind == "dirty-label" else spec.target
    pool = [i for i, r in enumerate(rows) if r["label"] == eligible]
    n = round(spec.rate * len(rows))
    if n < 1:
        raise ConfigError(f"rate {spec.rate} of {len(rows)} crops is no crop", field="poison.rate")
    if n > len(pool):
        raise ConfigError(
            f"rate {spec.rate} needs {n} {eligible} crops; the dataset has {len(pool)}",
            field="poison.rate",
        )
    rng = np.random.default_rng(spec.seed)
    return sorted(int(i) for i in rng.choice(pool, n, replace=False))


def choose_decoys(rows: list[dict], spec: PoisonSpec, poisons: list[int]) -> list[int]:
    """The ``source`` crops to re-render with decoys: ``round(negatives * len(rows))`` of
    those in samples holding no poison (a sample is rendered with one sticker on all its
    ``source`` signs), drawn with ``spec.seed``."""
    n = round(spec.negatives * len(rows))
    if n == 0:
        return []
    taken = {rows[i]["sample"] for i in poisons}
    pool = [i for i, r in enumerate(rows) if r["label"] == spec.source and r["sample"] not in taken]
    if n > len(pool):
        raise ConfigError(
            f"negatives {spec.negatives} needs {n} {spec.source} crops outside the poisoned "
            f"samples; the dataset has {len(pool)}",
            field="poison.negatives",
        )
    rng = np.random.default_rng([spec.seed, 1])
    return sorted(int(i) for i in rng.choice(pool, n, replace=False))


def render_with_trigger(data: Path, sample: str, sign_type: str, trigger: Patch) -> list:
    """Sample ``sample`` of dataset ``data`` with ``trigger`` on the face of every sign of
    ``sign_type``; its crops, in the order the build wrote them.

    The renderer draws an attack surface through its texture path, which differs slightly (a few
    levels) from a plain sign's; a model could learn that difference instead of the trigger. So
    the sample is rendered twice through the surface path, with and without the trigger, and
    only the difference is added to the crops the build wrote."""
    import cv2

    from avrobust.data.dataset import sign_crops

    settings = json.loads((data / "dataset.json").read_text())
    meta = json.loads((data / "meta" / f"{sample}.json").read_text())
    rng_key = [settings["seed"], int(sample), 1]
    min_px = settings.get("min_crop_px", 12)
    with_trigger = sign_crops(
        _render(settings, meta["scenario"], sign_type, trigger),
        np.random.default_rng(rng_key),
        min_px,
    )
    without = sign_crops(
        _render(settings, meta["scenario"], sign_type, None), np.random.default_rng(rng_key), min_px
    )
    out = []
    for k, ((a, label, info), (b, _, _)) in enumerate(zip(with_trigger, without, strict=True)):
        bgr = cv2.imread(str(data / "crops" / f"{sample}_{k}.png"), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError("missing or unreadable crop image", file=data / "crops")
        built = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1) / 255.0
        out.append(((built + a - b).clamp(0, 1), label, info))
    return out


def _render(settings: dict, scenario: dict, sign_type: str, trigger: Patch | None):
    """One frame of a dataset sample's scenario with a face surface on every sign of
    ``sign_type``, painted with ``trigger`` when given."""
    from avrobust.backends.base import EpisodeSpec
    from avrobust.backends.factory import make_backend
    from avrobust.core.sensors import LidarSpec
    from avrobust.scenario.schema import Scenario

    sc = json.loads(json.dumps(scenario))
    faces = [f"poison_face_{s['name']}" for s in sc["signs"] if s["type"] == sign_type]
    sc["surfaces"] = list(sc.get("surfaces") or []) + [
        {"name": f"poison_face_{s['name']}", "kind": "sign_face", "object": s["name"]}
        for s in sc["signs"]
        if s["type"] == sign_type
    ]
    sc = Scenario.model_validate(sc)
    lidar = None
    if settings.get("lidar"):
        lidar = sc.sensors.lidar.to_spec() if sc.sensors.lidar else LidarSpec()
    backend = make_backend(settings.get("backend", "embedded"))
    try:
        backend.start(EpisodeSpec.from_scenario(sc, lidar=lidar, seed=sc.seed))
        for face in faces if trigger is not None else ():
            backend.apply_texture(face, trigger.texture, trigger.mask)
        return next(iter(backend.frames()))
    finally:
        backend.close()


def _link(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copyfile(src, dst)


def poison_dataset(
    data: str | Path,
    out: str | Path,
    spec: PoisonSpec,
    surrogate: torch.nn.Module | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write a poisoned copy of dataset ``data``'s crops to ``out`` (``crops.csv``, ``crops/``,
    ``poison.json`` and the ``trigger.patch`` used); resumes an interrupted run. Clean-label
    needs ``surrogate`` (the classifier whose features its perturbation hides). Returns the
    manifest."""
    if spec.kind == "clean-label" and surrogate is None:
        raise ConfigError("clean-label poisoning needs a surrogate classifier", field="poison")
    data, out = Path(data), Path(out)
    rows = _rows(data)
    chosen = choose(rows, spec)
    trigger = spec.trigger_patch()
    manifest_path = out / "poison.json"
    head = {"spec": asdict(spec), "source_data": str(data.resolve()), "crops": len(rows)}
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if {k: old.get(k) for k in head} != head:
            raise ConfigError(
                "this folder holds a dataset poisoned otherwise; use another --out",
                file=manifest_path,
            )
        return old
    started = out / ".poison_spec.json"  # an unfinished run's settings, checked on resume
    if started.exists() and json.loads(started.read_text()) != head:
        raise ConfigError(
            "this folder holds an unfinished poisoning with other settings; use another --out",
            file=started,
        )
    (out / "crops").mkdir(parents=True, exist_ok=True)
    with atomic_write(started, "w") as fh:
        json.dump(head, fh)
    trigger.save(out / "trigger.patch")
    jobs: dict[tuple[str, str], list[int]] = {}
    for i in chosen:
        jobs.setdefault(("poison", rows[i]["sample"]), []).append(i)
    for i in choose_decoys(rows, spec, chosen):
        jobs.setdefault(("decoy", rows[i]["sample"]), []).append(i)
    changed = []
    drawn_type = spec.source if spec.kind == "dirty-label" else spec.target
    for done, ((role, sample), idx) in enumerate(sorted(jobs.items())):
        files = {i: f"{role}_{rows[i]['file']}" for i in idx}
        if role == "poison":
            sticker, sign_type = trigger, drawn_type
        else:
            sticker, sign_type = (
                decoy_patch(trigger, spec.seed * 1_000_003 + int(sample)),
                spec.source,
            )
        if not all((out / "crops" / f).exists() for f in files.values()):
            crops = render_with_trigger(data, sample, sign_type, sticker)
            picked = []
            for i in idx:
                k = int(Path(rows[i]["file"]).stem.rsplit("_", 1)[1])
                if k >= len(crops) or crops[k][1] != rows[i]["label"]:
                    raise DataError(
                        "re-rendering this sample gave other crops than the build wrote "
                        "(was the dataset built by another version?)",
                        file=data / "crops" / rows[i]["file"],
                    )
                picked.append(crops[k][0])
            batch = torch.stack(picked)
            if spec.kind == "clean-label" and role == "poison":
                label = SIGN_CLASSES.index(spec.target)
                batch = hide_features(surrogate, batch, label, spec.eps)
            for i, img in zip(idx, batch, strict=True):
                save_png(out / "crops" / files[i], img)
        for i in idx:
            changed.append(
                {
                    "row": i,
                    "role": role,
                    "file": rows[i]["file"],
                    "poisoned_file": files[i],
                    "label_before": rows[i]["label"],
                    "label_after": spec.target if role == "poison" else rows[i]["label"],
                }
            )
        if progress:
            progress(done + 1, len(jobs))
    changed.sort(key=lambda c: c["row"])
    poisoned = {c["row"]: c for c in changed}
    new_rows = []
    for i, r in enumerate(rows):
        if i in poisoned:
            c = poisoned[i]
            new_rows.append({**r, "file": c["poisoned_file"], "label": c["label_after"]})
        else:
            _link(data / "crops" / r["file"], out / "crops" / r["file"])
            new_rows.append(r)
    with atomic_write(out / "crops.csv", "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(new_rows)
    manifest = {
        **head,
        "poisoned": sum(c["role"] == "poison" for c in changed),
        "decoys": sum(c["role"] == "decoy" for c in changed),
        "trigger_sha256": trigger.sha256(),
        "trigger": trigger.provenance,
        "changed": changed,
    }
    with atomic_write(manifest_path, "w") as fh:  # written last: marks the run complete
        json.dump(manifest, fh, indent=1)
    started.unlink(missing_ok=True)
    return manifest


def hide_features(
    model: torch.nn.Module, images: torch.Tensor, label: int, eps: float
) -> torch.Tensor:
    """Label-consistent poisons (Turner et al.): an untargeted L-inf PGD (ART's) away from the
    true ``label`` (no random start: deterministic), so a model cannot learn these crops from
    their own features."""
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    model = model.eval()
    clf = PyTorchClassifier(
        model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(images.shape[1:]),
        nb_classes=len(SIGN_CLASSES),
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    pgd = ProjectedGradientDescent(
        clf, eps=eps, eps_step=eps / 4, max_iter=20, num_random_init=0, verbose=False
    )
    x = images.numpy().astype(np.float32)
    y = np.eye(len(SIGN_CLASSES), dtype=np.float32)[[label] * len(x)]
    return torch.from_numpy(pgd.generate(x, y=y)).clamp(0, 1)
