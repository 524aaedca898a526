"""Runtime monitors of the sign classifier: each separates planted out-of-distribution crops
(pixel noise, sign types never trained on) from clean ones; calibrated thresholds keep their
stated clean false-alarm rate and selective risk on fresh splits; gradients flow where the
monitor says they do."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avrobust.core.classes import SIGN_CLASSES, SIGN_TYPES
from avrobust.defences.monitors import conformal, selective
from avrobust.defences.monitors.classifier import MONITORS, classifier_monitors
from avrobust.models.adapters import load_classifier
from avrobust.models.weights import ASSETS
from avrobust.sim.signs import draw_face


def _sign_crops(types, n: int, seed: int) -> torch.Tensor:
    """``n`` crops per type: the face at 60-85% of the crop on a grey-blue backdrop, with
    brightness, offset and sensor noise jittered (roughly what the classifier's crops hold)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for t in types:
        face = torch.from_numpy(draw_face(t, 128))[None]
        for _ in range(n):
            side = int(64 * (0.6 + 0.25 * torch.rand(1, generator=g)))
            f = F.interpolate(face, size=(side, side), mode="area")[0]
            bg = torch.tensor([0.55, 0.6, 0.7]) * (0.7 + 0.5 * torch.rand(1, generator=g))
            img = bg.view(3, 1, 1).expand(3, 64, 64).clone()
            x, y = (int(v) for v in torch.randint(0, 64 - side + 1, (2,), generator=g))
            img[:, y : y + side, x : x + side] = f
            img = img * (0.75 + 0.4 * torch.rand(1, generator=g))
            out.append((img + 0.02 * torch.randn(img.shape, generator=g)).clamp(0, 1))
    return torch.stack(out)


def _background(n: int, seed: int) -> torch.Tensor:
    """Smooth colour fields (sky, road, walls): what the classifier calls background."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g) * 0.6 + 0.2
    return F.interpolate(low, size=(64, 64), mode="bilinear", align_corners=False)


@pytest.fixture(scope="module")
def fitted():
    model = load_classifier(ASSETS / "sign_classifier.pt")
    x = torch.cat([_sign_crops(SIGN_TYPES, 14, 0), _background(40, 1)])
    y = torch.tensor([i for i in range(len(SIGN_TYPES)) for _ in range(14)] + [7] * 40)
    assert SIGN_CLASSES[7] == "background"
    mons = classifier_monitors(model)
    for m in mons:
        if m.name == "knn":
            m.k = 10  # a small fit set
            m.detector = None
        m.fit(x, y)
    clean = torch.cat([_sign_crops(SIGN_TYPES, 6, 2), _background(12, 3)])
    return model, mons, clean


def test_every_monitor_is_built_and_named(fitted):
    _, mons, _ = fitted
    assert [m.name for m in mons] == list(MONITORS)


# Uniform pixel noise: the penultimate features of noise crops fall near the background
# class's, so the single-layer feature distances (mahalanobis, knn) do not flag it on this
# classifier; the logit scores and the multi-layer distance (early layers see the texture) do.
@pytest.mark.parametrize("name", ["msp", "energy", "odin", "mahalanobis_multi"])
def test_monitor_flags_pixel_noise(fitted, name):
    _, mons, clean = fitted
    m = next(m for m in mons if m.name == name)
    noise = torch.rand(30, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    assert selective.auroc(m.score(clean), m.score(noise)) > 0.75


# STRIP looks for inputs whose reading blending cannot change (a trigger), not for novelty.
@pytest.mark.parametrize("name", [m for m in MONITORS if m != "strip"])
def test_monitor_doubts_unseen_signs_more_than_seen_ones(fitted, name):
    _, mons, clean = fitted
    m = next(m for m in mons if m.name == name)
    unseen = _sign_crops(("priority_road", "general_danger", "ahead_only", "no_parking"), 8, 5)
    assert selective.auroc(m.score(clean), m.score(unseen)) > 0.75


def test_mahalanobis_score_is_pytorch_oods_and_differentiable(fitted):
    from pytorch_ood.detector import MultiMahalanobis

    _, mons, clean = fitted
    m = next(m for m in mons if m.name == "mahalanobis_multi")
    _, zs = m.taps(clean)
    ref = MultiMahalanobis([torch.nn.Identity()] * len(zs))
    ref.mu, ref.precision, ref.alpha = m.mu, m.precision, m.alpha
    torch.testing.assert_close(m.score(clean), ref.predict_structured(zs), rtol=1e-4, atol=1e-3)
    x = clean[:3].clone().requires_grad_()
    m.score(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_odin_and_knn_give_the_attacker_a_surrogate_gradient(fitted):
    _, mons, clean = fitted
    for name in ("odin", "knn"):
        m = next(m for m in mons if m.name == name)
        assert not m.differentiable
        x = clean[:2].clone().requires_grad_()
        m.score(x).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
    # Each surrogate's value is the deployed score (KNN: the same distance the search returns;
    # ODIN: its input step taken forward), so the attacker judges the threshold right.
    for name in ("odin", "knn"):
        m = next(m for m in mons if m.name == name)
        deployed = m.score(clean[:5])
        surrogate = m.score(clean[:5].clone().requires_grad_()).detach()
        torch.testing.assert_close(surrogate, deployed, rtol=1e-4, atol=1e-6)


def test_union_alarms_on_whichever_member_is_out_of_range(fitted):
    _, mons, clean = fitted
    union = next(m for m in mons if m.name == "odin_mahalanobis")
    noise = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    x = torch.cat([clean[:8], noise])
    parts = torch.stack(
        [
            (m.score(x).double() - c) / s
            for m, c, s in zip(union.members, union.centre, union.spread, strict=True)
        ]
    )
    torch.testing.assert_close(union.score(x), parts.max(0).values)
    # The attacker's smooth surrogate bounds the deployed max from above, closely.
    soft = union.score(x.clone().requires_grad_()).detach()
    assert (soft >= parts.max(0).values - 1e-9).all()
    assert (soft <= parts.max(0).values + 0.1 * math.log(2) + 1e-9).all()
    assert all(s > 0 for s in union.spread)
    g = x.clone().requires_grad_()
    union.score(g).sum().backward()  # the attacker's gradient, ODIN through BPDA
    assert g.grad is not None and g.grad.abs().sum() > 0


def test_scoring_leaves_the_classifiers_output_unchanged(fitted):
    model, mons, clean = fitted
    with torch.no_grad():
        before = model(clean)
    for m in mons:
        m.score(clean)
    with torch.no_grad():
        torch.testing.assert_close(model(clean), before)
    assert not model.training


def test_coverage_threshold_holds_its_false_alarm_rate_on_fresh_splits():
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(300):
        cal = torch.from_numpy(rng.standard_normal(200))
        t = conformal.coverage_threshold(cal, 0.95)
        rates.append(float((torch.from_numpy(rng.standard_normal(2000)) > t).double().mean()))
    # Conformal: mean false alarm at most 5% (within sampling error), and not far below it.
    assert np.mean(rates) <= 0.05 + 0.003
    assert np.mean(rates) >= 0.035
    assert conformal.coverage_threshold(torch.arange(10.0), 0.95) == float("inf")


def test_selective_risk_threshold_holds_its_bound_on_fresh_splits():
    rng = np.random.default_rng(1)

    def draw(n):  # errors grow with the score: a monitor that helps
        s = rng.uniform(0, 1, n)
        return torch.from_numpy(s), torch.from_numpy(rng.uniform(0, 1, n) < 0.12 * s**3)

    violations, coverages = 0, []
    for _ in range(200):
        cert = conformal.selective_risk_threshold(*draw(1000), risk=0.02, delta=0.1)
        s, e = draw(20000)
        passed = s <= cert.threshold
        coverages.append(float(passed.double().mean()))
        violations += float(e[passed].double().mean()) > 0.02
    # With confidence 90%, at most 10% of calibration splits certify a risk the fresh data break.
    assert violations / 200 <= 0.1 + 0.05
    # And the threshold is useful: the true risk reaches 2% near 72% coverage.
    assert 0.5 < np.median(coverages) < 0.76


def test_risk_coverage_measures():
    s = torch.tensor([0.1, 0.2, 0.3, 0.4])
    e = torch.tensor([0, 0, 1, 1])
    _cov, risk = selective.risk_coverage(s, e)
    torch.testing.assert_close(risk, torch.tensor([0.0, 0.0, 1 / 3, 0.5], dtype=torch.float64))
    assert selective.aurc(s, e) == pytest.approx((1 / 3 + 0.5) / 4)
    assert selective.selective_risk(s, e, 0.5) == 0.0
    assert selective.auroc(torch.tensor([0.0, 0.1]), torch.tensor([0.5, 0.6])) == 1.0
    assert selective.fpr_at_tpr(torch.tensor([0.0, 0.9]), torch.tensor([0.5, 0.6])) == 0.5


def test_a_monitored_model_keeps_its_output_and_raises_alarms_on_doubted_signs(fitted):
    from avrobust.core.detections import Detections
    from avrobust.defences.monitors.wrapper import KIND, monitored

    _, mons, clean = fitted
    msp = mons[0]
    image = torch.full((3, 128, 256), 0.5)
    image[:, 20:84, 10:74] = clean[0]  # a stop sign crop (seen)
    image[:, 20:84, 150:214] = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(9))
    # Boxes whose classifier crops (15% context each side) are the pasted squares.
    boxes = torch.tensor([[17.4, 27.4, 66.6, 76.6], [157.4, 27.4, 206.6, 76.6], [90, 40, 120, 70]])
    dets = Detections(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 4, 7]), "2d",
                      SIGN_CLASSES)  # fmt: skip

    class Frame:  # what the step reads of a frame
        def __init__(self, image):
            self.image = image

    model = monitored(lambda frame: dets, msp, threshold=-0.9)
    out = model(Frame(image))
    assert out is dets  # the model's output, untouched
    alarms = model.take_alarms()
    # The background detection is not a sign; the noise box is doubted, the clean sign is not.
    assert [a.kind for a in alarms] == [KIND]
    assert "x 157-207" in alarms[0].detail
    assert model.take_alarms() == []


def test_the_study_reports_every_number_and_doubts_unreadable_signs_on_request(fitted):
    from avrobust.defences.monitors.classifier import MaxSoftmax
    from avrobust.evaluation.monitor_study import Crops, doubt, study_monitor

    model, _, _ = fitted

    def crops(types, n, seed, weather="ClearNoon"):
        x = _sign_crops(types, n, seed)
        return Crops(x, [t for t in types for _ in range(n)], [weather] * len(x))

    fit = crops(SIGN_TYPES, 10, 10)
    fit = Crops(torch.cat([fit.images, _background(20, 11)]), [*fit.labels, *["background"] * 20],
                fit.weather + ["Fog"] * 20)  # fmt: skip
    cal, test = crops(SIGN_TYPES, 12, 12), crops(SIGN_TYPES, 12, 13, "ClearNight")
    unseen = crops(("priority_road", "ahead_only"), 10, 14)
    stop = _sign_crops(("stop",), 12, 15)
    sticker = {
        "true_class": "stop",
        "target": "speed_limit_80",
        "crops": {"clean": stop, "sticker": torch.rand(12, 3, 64, 64), "grey": stop * 0 + 0.5},
    }
    r = study_monitor(MaxSoftmax(model), model, model.classes, fit, cal, test, unseen,
                      {"s": sticker})  # fmt: skip
    assert r["monitor"] == "msp" and r["clean"]["crops"] == len(test.labels)
    fa = r["clean"]["false_alarms"]["95%"]
    assert fa["stated"] == pytest.approx(0.05) and fa["n"] == len(test.labels)
    assert set(r["conditions"]) == {"night"}
    assert r["unseen"]["crops"] == 20
    assert set(r["unseen"]["per_type"]) == {"priority_road", "ahead_only"}
    assert set(r["stickers"]["s"]["controls_flagged"]) == {"grey"}
    # With the unreadable rule, a crop the classifier calls background is doubted without limit.
    d, pred = doubt(MaxSoftmax(model), model, model.classes, _background(6, 16), unreadable=True)
    assert all(p == "background" for p in pred) and torch.isinf(d).all()
    d, _ = doubt(MaxSoftmax(model), model, model.classes, _background(6, 16))
    assert torch.isfinite(d).all()
    # The printed ranking puts the best AURC first.
    from avrobust.cli.base import console
    from avrobust.cli.monitors import print_monitors

    worse = {**r, "monitor": "worse", "clean": {**r["clean"], "aurc": r["clean"]["aurc"] + 1}}
    with console.capture() as cap:
        print_monitors({"monitors": [worse, r], "sizes": {"unseen": 20}})
    text = cap.get()
    assert text.index("msp") < text.index("worse")
