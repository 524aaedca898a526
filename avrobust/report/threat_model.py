"""The threat model of each attack in a run, in the terms of NIST AI 100-2 (Adversarial Machine
Learning: a taxonomy and terminology): the attack class, the attacker's goal, knowledge and
capability, read from what the run recorded (a patch's own provenance, the victim weights it
was optimised against, the LiDAR budget).

Knowledge is judged per evaluated model: white-box when the patch was optimised against the
very weights evaluated (same SHA-256), grey-box when against a component of the evaluated model
(a fusion model's camera detector), black-box transfer otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from avrobust.report.run_data import RunData

# Which shipped model an attack kind optimises against, for patches that predate recording it.
_ATTACKED_MODEL = {"sign-sticker": "sign-classifier", "detector-patch": "camera-detector"}


@dataclass
class Threat:
    attack: str
    attack_class: str
    goal: str
    knowledge: dict[str, str]  # evaluated model -> white-box / grey-box / black-box, with why
    capability: str
    position: str


def _shas(provenance: dict) -> set[str]:
    out = set()
    for rec in (provenance.get("weights") or {}).values():
        out.add(rec.get("sha256"))
    for k, v in (provenance.get("bases") or {}).items():
        if k.endswith("_sha256"):
            out.add(v)
    return out - {None}


def _trigger_threat(label: str, prov: dict, made: dict, models: dict[str, dict]) -> Threat:
    """A backdoor trigger: the attack happened at training time; the sticker only opens it."""
    w, h = prov.get("size_m", [0, 0])
    return Threat(
        label,
        "poisoning, backdoor (training data): a printed trigger "
        f"({made.get('design', '?')}, {made.get('side_m', '?')} m) opens a behaviour planted "
        "through poisoned training samples; the sticker itself is not optimised",
        f"targeted misclassification: {made.get('true_class', '?')} wearing the trigger read as "
        f"{made.get('target', '?')} (integrity violation)",
        {
            m: "training-data control: the backdoor is in the model only if it was trained on "
            "the poisoned data (a clean model is the control)"
            for m in models
        },
        f"supplies part of the training data (NIST: training-data control) and prints a sticker "
        f"on a {w * 100:.0f} x {h * 100:.0f} cm area at test time",
        f"surface {prov.get('surface', '?')} (scenario {made.get('scenario', '?')})",
    )


def _patch_threat(label: str, prov: dict, models: dict[str, dict]) -> Threat:
    made = prov.get("made_by", {})
    kind = str(made.get("attack", "patch"))
    if kind == "backdoor-trigger":
        return _trigger_threat(label, prov, made, models)
    w, h = prov.get("size_m", [0, 0])
    cover = prov.get("coverage", 1.0)
    shape = "stickers" if cover < 0.95 else "a full patch"
    capability = (
        f"prints {shape} on a {w * 100:.0f} x {h * 100:.0f} cm area ({cover:.0%} covered), "
        f"colours limited to the {made.get('palette', 'unrecorded')} printable palette; "
        "no access to the vehicle, its sensors or its software (NIST: testing-data control only)"
    )
    if kind.startswith("sign-sticker"):
        goal = (
            f"targeted misclassification: {made.get('true_class', '?')} read as "
            f"{made.get('target') or 'anything else'} (integrity violation)"
        )
    elif made.get("goal") == "appear":
        goal = f"object creation: a phantom {made.get('category', '?')} (integrity violation)"
    else:
        goal = (
            f"object vanishing: the {made.get('category', 'target')} it is on goes undetected "
            "(integrity violation)"
        )
    victim = made.get("victim") or {}
    victim_shas = {r.get("sha256") for k, r in victim.items() if isinstance(r, dict)} - {None}
    victim_model = victim.get("model") or next(
        (v for k, v in _ATTACKED_MODEL.items() if kind.startswith(k)), "unknown"
    )
    knowledge = {}
    for model, mprov in models.items():
        shas = _shas(mprov)
        weights = (mprov.get("weights") or {}).values()
        own = {r.get("sha256") for r in weights}
        if victim_shas and victim_shas == own:
            knowledge[model] = "white-box (optimised against these weights, gradients used)"
        elif victim_shas and victim_shas & shas:
            knowledge[model] = (
                f"grey-box (optimised against {victim_model}, a component of this model)"
            )
        elif not victim_shas and model == victim_model:
            knowledge[model] = "white-box (assumed: the patch does not record its victim's hash)"
        else:
            knowledge[model] = f"black-box transfer (optimised against {victim_model})"
    eot = made.get("eot", "?")
    return Threat(
        label,
        f"evasion, physical (camera); optimised with {made.get('steps', '?')} steps under "
        f"expectation over transformation ({eot})",
        goal,
        knowledge,
        capability,
        f"surface {prov.get('surface', '?')} (scenario {made.get('scenario', '?')})",
    )


def _knowledge(method: str, models: dict[str, dict]) -> dict[str, str]:
    return {
        m: (
            "white-box (the evaluated model's gradients choose the returns)"
            if method == "white-box"
            else "black-box (the evaluated model's scores, queried)"
            if method == "black-box"
            else "no knowledge (random returns in the window)"
        )
        for m in models
    }


def _spoof_threat(label: str, prov: dict, models: dict[str, dict]) -> Threat:
    category = prov.get("category", "car")
    return Threat(
        label,
        "evasion, physical signal injection (LiDAR): spoofed returns replace genuine ones along "
        "the victim's own rays",
        f"object creation: a phantom {category} {prov.get('distance', 7.5)} m ahead of the ego "
        "(integrity violation)",
        _knowledge(prov.get("method", "white-box"), models),
        f"at most {prov.get('points', '?')} spoofed returns per sweep, within a window around "
        "the phantom (Cao et al. 2019's budget)",
        "a spoofer riding ahead of the ego, aimed at its LiDAR (no contact with the vehicle)",
    )


def _object_threat(label: str, prov: dict, models: dict[str, dict]) -> Threat:
    made = prov.get("made_by") or {}
    against = made.get("optimised_against", "unrecorded")
    knowledge = {}
    for m in models:
        if m == against:
            knowledge[m] = "white-box (its shape optimised against this model's gradients)"
        elif m.startswith(("fusion", "camera")):
            knowledge[m] = (
                f"grey-box (texture optimised against the camera detector, shape against {against})"
            )
        else:
            knowledge[m] = f"black-box transfer (shape optimised against {against})"
    size = prov.get("extent_m")
    dims = " x ".join(f"{hi - lo:.1f}" for lo, hi in size) + " m" if size else "unrecorded size"
    texture = "with a printed texture" if prov.get("textured", True) else "unpainted"
    return Threat(
        label,
        "evasion, physical object (camera and LiDAR at once, MSF-ADV): a fabricated shape "
        "mounted on the target",
        "object vanishing: the vehicle carrying it goes undetected or is misplaced "
        "(integrity violation)",
        knowledge,
        f"fabricates an object of {dims} (length x width x height) {texture} and mounts it "
        f"on the vehicle ({prov.get('mount', '?')}); no access to the ego or its software",
        f"on the target vehicle ({prov.get('host') or 'the first target'})",
    )


def _lidar_threat(label: str, prov: dict, models: dict[str, dict]) -> Threat:
    return Threat(
        label,
        "evasion, physical signal injection (LiDAR): returns removed from the sweep in flight",
        "object vanishing: the target's returns are suppressed so it goes undetected "
        "(integrity violation)",
        _knowledge(prov.get("method", "white-box"), models),
        f"at most {prov.get('points', '?')} returns per sweep, only within the target's "
        f"angular window plus {prov.get('margin_deg', '?')} degrees (a PRA-style budget)",
        "the sensor's line of sight to the target (no contact with the vehicle)",
    )


def threats(data: RunData) -> list[Threat]:
    models: dict[str, dict] = {}
    by_attack: dict[str, dict] = {}
    for job in data.done:
        comp = data.components.get(job.id, {})
        if job.model != "none":
            models.setdefault(job.model, comp.get("model", {}).get("provenance", {}))
        if job.attack != "none":
            by_attack.setdefault(job.attack, {**comp.get("attack", {}), "ref": job.attack_ref})
    out = []
    for label, comp in by_attack.items():
        prov = comp.get("provenance", {})
        name = comp["ref"]["name"]
        if name == "patch":
            out.append(_patch_threat(label, prov, models))
        elif name == "lidar-spoof":
            out.append(_spoof_threat(label, {**comp["ref"].get("params", {}), **prov}, models))
        elif name == "adversarial-object":
            out.append(_object_threat(label, prov, models))
        elif name.startswith("lidar"):
            out.append(_lidar_threat(label, {**comp["ref"].get("params", {}), **prov}, models))
        else:
            out.append(
                Threat(label, "not described by this version", "-", {}, str(comp["ref"]), "-")
            )
    return out
