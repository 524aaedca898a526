"""Runtime monitors of a classifier's inputs (the sign classifier's crops): the standard
out-of-distribution scores, fitted and computed through pytorch-ood, higher meaning more
doubtful (pytorch-ood's convention).

* ``msp``: the negated maximum softmax probability (Hendrycks and Gimpel 2017), the baseline
  every other score must beat;
* ``energy``: the negated log-sum-exp of the logits (Liu et al. 2020);
* ``odin``: temperature-scaled softmax after a small input step that raises it (Liang et al.
  2018; T = 1000, eps = 0.0014 on the normalised input, the paper's defaults);
* ``mahalanobis``: distance of the penultimate features to the nearest class mean under one
  shared covariance (Lee et al. 2018); ``mahalanobis_multi`` sums it over the stage outputs and
  the penultimate layer, each layer's score divided by its spread on the fit set (Lee et al.
  weight layers by a regression fitted on OOD samples; a monitor must not see its test shift);
* ``knn``: distance to the k-th nearest fit-set feature after L2 normalisation (Sun et al. 2022,
  k = 50);
* ``odin_mahalanobis``: the union of ODIN and Mahalanobis, each score put on a common scale by
  its median and 95th percentile on the fit set and the larger taken, so one threshold alarms
  when either is out of range (the two fail on different stickers).

The monitors take the classifier as an ``nn.Module`` and read inner layers through forward
hooks, so they work on any module whose layer names are given (the shipped classifier's are
the defaults).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

#: The shipped sign classifier's layers the feature monitors read: the four stage outputs
#: (after each pooling) and the penultimate activation.
STAGES = ("features.3", "features.10", "features.17", "features.21")
PENULTIMATE = "head.3"
BATCH = 256
#: Temperature of the union's smooth maximum for an attacker (in units of a member's scale).
SOFT_MAX_TAU = 0.1


class _Taps:
    """Collects the outputs of named submodules during one forward pass."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        modules = dict(model.named_modules())
        # Behind an input adapter (models.adapters.ClassifierAdapter) the layers sit in .module.
        names = [n if n in modules else f"module.{n}" for n in names]
        missing = [n for n in names if n not in modules]
        if missing:
            from avrobust.core.errors import ModelError

            raise ModelError(
                f"the classifier has no layers {missing}",
                field="layers",
                allowed=", ".join(n for n in modules if n) or "(none)",
            )
        self.model, self.names, self.out = model, tuple(names), {}
        self._modules = [modules[n] for n in self.names]

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(logits, [layer outputs, spatially averaged to [B, C]])``."""
        hooks = [
            m.register_forward_hook(lambda _m, _i, o, n=n: self.out.__setitem__(n, o))
            for n, m in zip(self.names, self._modules, strict=True)
        ]
        try:
            logits = self.model(x)
        finally:
            for h in hooks:
                h.remove()
        feats = [self.out.pop(n) for n in self.names]
        return logits, [f.flatten(2).mean(2) if f.dim() > 2 else f for f in feats]


def _features(taps: _Taps, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Each tapped layer's ``[N, C]`` features of ``inputs``, in batches without a graph."""
    with torch.no_grad():
        parts = [taps(inputs[i : i + BATCH])[1] for i in range(0, len(inputs), BATCH)]
    return [torch.cat([p[k] for p in parts]) for k in range(len(taps.names))]


def _batched(fn, x: torch.Tensor) -> torch.Tensor:
    """``fn`` on ``x``: whole and with gradients when ``x`` asks for them (an attacker's
    batch), else in batches without a graph (a graph per batch would hold every activation)."""
    if x.requires_grad:
        return fn(x)
    with torch.no_grad():
        return torch.cat([fn(x[i : i + BATCH]) for i in range(0, x.shape[0], BATCH)])


class _ClassifierMonitor(ABC):
    """The shared parts: the model held in eval mode, batched scoring."""

    name = "monitor"
    differentiable = True

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()

    def fit(
        self, inputs: torch.Tensor, labels: torch.Tensor, judged: torch.Tensor | None = None
    ) -> _ClassifierMonitor:
        """Learn from clean ``inputs``; ``judged`` (a bool mask) marks those like the inputs
        the monitor will judge (crops of signs, not random background), for monitors that
        set a scale from their own scores."""
        return self

    @abstractmethod
    def _score(self, x: torch.Tensor) -> torch.Tensor:
        """``[B]`` doubt of a batch, with gradients when ``x`` has them."""

    def score(self, inputs: torch.Tensor) -> torch.Tensor:
        """``[B]`` doubt of ``[B, 3, H, W]`` inputs in [0, 1]."""
        return _batched(self._score, inputs)


class MaxSoftmax(_ClassifierMonitor):
    name = "msp"

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        from pytorch_ood.detector import MaxSoftmax as Detector

        return Detector.score(self.model(x))


class Energy(_ClassifierMonitor):
    name = "energy"

    def __init__(self, model: nn.Module, temperature: float = 1.0) -> None:
        super().__init__(model)
        self.temperature = temperature

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        from pytorch_ood.detector import EnergyBased

        return EnergyBased.score(self.model(x), self.temperature)


class Odin(_ClassifierMonitor):
    """Not differentiable as deployed (the input step takes a gradient of its own): the adaptive
    attacker takes the step forward and goes back through it as the identity (BPDA)."""

    name = "odin"
    differentiable = False

    def __init__(self, model: nn.Module, temperature: float = 1000.0, eps: float = 0.0014) -> None:
        super().__init__(model)
        self.temperature, self.eps = temperature, eps
        std = getattr(model, "std", None)
        if std is None:  # behind an input adapter
            std = getattr(getattr(model, "module", None), "std", None)
        # pytorch-ood scales the signed step by the input normalisation, so eps is the paper's.
        self.norm_std = None if std is None else [float(v) for v in std.flatten()]

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        from pytorch_ood.detector import ODIN, MaxSoftmax
        from pytorch_ood.detector.odin import odin_preprocessing

        if x.requires_grad:
            # BPDA: the deployed step taken forward, the identity backward, so the attacker's
            # value is the deployed score (leaving the step out scores 0.6 of the clean spread
            # higher and misjudges the threshold).
            step = odin_preprocessing(
                self.model, x, eps=self.eps, temperature=self.temperature, norm_std=self.norm_std
            )
            x = x + (step - x).detach()
            return MaxSoftmax.score(self.model(x), self.temperature)
        detector = ODIN(
            self.model, eps=self.eps, temperature=self.temperature, norm_std=self.norm_std
        )
        return detector.predict(x).detach()


class Mahalanobis(_ClassifierMonitor):
    """Gaussian class-conditional features (shared covariance) at ``layers``; fitted by
    pytorch-ood, scored here in the same formula with gradients kept (pytorch-ood's scoring
    runs without them)."""

    name = "mahalanobis"

    def __init__(self, model: nn.Module, layers: Sequence[str] = (PENULTIMATE,)) -> None:
        super().__init__(model)
        self.taps = _Taps(model, layers)
        self.layers = tuple(layers)
        if len(self.layers) > 1:
            self.name = "mahalanobis_multi"
        self.mu: list[torch.Tensor] = []
        self.precision: list[torch.Tensor] = []
        self.alpha: list[float] = []

    def fit(
        self, inputs: torch.Tensor, labels: torch.Tensor, judged: torch.Tensor | None = None
    ) -> Mahalanobis:
        from pytorch_ood.detector import MultiMahalanobis

        zs = _features(self.taps, inputs)
        detector = MultiMahalanobis([nn.Identity()] * len(zs)).fit_structured(zs, labels)
        self.mu = list(detector.mu)
        # pytorch-ood inverts the pooled scatter with a 1e-6 ridge; with fewer crops per class
        # than feature dimensions (early layers see many) that matrix is near singular and the
        # distances explode, so shrink it towards its mean variance first (1e-3 of it).
        self.precision = [
            torch.linalg.inv(c + 1e-3 * c.diagonal().mean() * torch.eye(c.shape[0]))
            for c in detector.cov
        ]
        # Each layer's distances live on their own scale: divide by the fit set's spread.
        self.alpha = []
        for k, z in enumerate(zs):
            d = self._layer(z, k)
            self.alpha.append(1.0 / float(d.std().clamp(min=1e-12)))
        return self

    def _layer(self, z: torch.Tensor, k: int) -> torch.Tensor:
        """Half the squared Mahalanobis distance to the nearest class mean (pytorch-ood's)."""
        centred = z[:, None, :] - self.mu[k][None]  # [B, C, D]
        d = 0.5 * torch.einsum("bcd,de,bce->bc", centred, self.precision[k], centred)
        return d.min(1).values

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        if not self.mu:
            raise RuntimeError(f"{self.name} is not fitted (call fit first)")
        _, zs = self.taps(x)
        return sum(
            a * self._layer(z, k) for k, (a, z) in enumerate(zip(self.alpha, zs, strict=True))
        )


class Knn(_ClassifierMonitor):
    """Not differentiable (a neighbour search): the adaptive attacker follows the distance to
    the k nearest fit features computed in torch instead (the same number, with gradients)."""

    name = "knn"
    differentiable = False

    def __init__(self, model: nn.Module, k: int = 50, layer: str = PENULTIMATE) -> None:
        super().__init__(model)
        self.k, self.taps = k, _Taps(model, (layer,))
        self.detector = None
        self.bank: torch.Tensor | None = None

    def fit(
        self, inputs: torch.Tensor, labels: torch.Tensor, judged: torch.Tensor | None = None
    ) -> Knn:
        from pytorch_ood.detector import KNN

        (z,) = _features(self.taps, inputs)
        self.detector = KNN(None, k=self.k).fit_features(z, labels)
        self.bank = z / z.norm(dim=1, keepdim=True).clamp(min=1e-12)
        return self

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        if self.detector is None:
            raise RuntimeError("knn is not fitted (call fit first)")
        z = self.taps(x)[1][0]
        if x.requires_grad:  # the surrogate: the same distance with gradients
            zn = z / z.norm(dim=1, keepdim=True).clamp(min=1e-12)
            return torch.cdist(zn, self.bank).topk(self.k, largest=False).values[:, -1]
        return self.detector.predict_features(z).float()


class Union(_ClassifierMonitor):
    """Several monitors as one: each score mapped to ``(s - median) / (q95 - median)`` of its
    scores on the judged fit crops, the largest kept. A threshold on the union alarms when any
    member is out of its range; the attacker must keep every member in range at once (with
    gradients the max is a log-sum-exp, a smooth upper bound; BPDA members go through their
    surrogates).

    The scales come from out-of-fold scores (members fitted on one half of the fit set, scored
    on the other): in-sample a fitted member's distances are small, and it would then dominate
    the union on fresh inputs."""

    def __init__(self, members: Sequence[_ClassifierMonitor], name: str) -> None:
        super().__init__(members[0].model)
        self.members, self.name = list(members), name
        self.differentiable = all(m.differentiable for m in members)
        self.centre: list[float] = []
        self.spread: list[float] = []

    def fit(
        self, inputs: torch.Tensor, labels: torch.Tensor, judged: torch.Tensor | None = None
    ) -> Union:
        n = len(inputs)
        judged = torch.ones(n, dtype=torch.bool) if judged is None else judged.bool()
        halves = torch.randperm(n, generator=torch.Generator().manual_seed(0)).chunk(2)
        oof = torch.zeros(len(self.members), n, dtype=torch.float64)
        for a, b in ((0, 1), (1, 0)):
            fit_on, score_on = halves[a], halves[b]
            for k, m in enumerate(self.members):
                m.fit(inputs[fit_on], labels[fit_on])
                oof[k, score_on] = m.score(inputs[score_on]).double()
        self.centre, self.spread = [], []
        for k, m in enumerate(self.members):
            s = oof[k, judged]
            med, q95 = float(s.quantile(0.5)), float(s.quantile(0.95))
            self.centre.append(med)
            self.spread.append(max(q95 - med, 1e-12))
            m.fit(inputs, labels)  # deployed: fitted on everything
        return self

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        if not self.centre:
            raise RuntimeError(f"{self.name} is not fitted (call fit first)")
        # Members score in float32 on scales as small as 1e-5 (ODIN): rescale in float64.
        parts = [
            (m._score(x).double() - c) / s
            for m, c, s in zip(self.members, self.centre, self.spread, strict=True)
        ]
        stacked = torch.stack(parts)
        if x.requires_grad:
            # The attacker's surrogate: a smooth upper bound of the max (within tau * log of
            # the member count), so every member near its limit pulls at once; the hard max
            # hands the gradient to one member a step and the optimiser zigzags between them.
            return SOFT_MAX_TAU * torch.logsumexp(stacked / SOFT_MAX_TAU, 0)
        return stacked.max(0).values


def classifier_monitors(model: nn.Module) -> list[_ClassifierMonitor]:
    """Every monitor above on ``model`` (unfitted), and STRIP, the backdoor monitor
    (:mod:`.strip`), in the order reports list them."""
    from avrobust.defences.monitors.strip import Strip

    return [
        MaxSoftmax(model),
        Energy(model),
        Odin(model),
        Mahalanobis(model),
        Mahalanobis(model, (*STAGES, PENULTIMATE)),
        Knn(model),
        Union([Odin(model), Mahalanobis(model)], "odin_mahalanobis"),
        Strip(model),
    ]


MONITORS = (
    "msp",
    "energy",
    "odin",
    "mahalanobis",
    "mahalanobis_multi",
    "knn",
    "odin_mahalanobis",
    "strip",
)
#: The monitors that learn from clean crops before they can score.
FITTED = ("mahalanobis", "mahalanobis_multi", "knn", "odin_mahalanobis", "strip")


def monitor_named(model: nn.Module, name: str, field: str = "method") -> _ClassifierMonitor:
    """The monitor ``name`` on ``model`` (unfitted); a :class:`ConfigError` naming ``field``
    for an unknown one."""
    found = [m for m in classifier_monitors(model) if m.name == name]
    if not found:
        from avrobust.core.errors import ConfigError

        raise ConfigError(f"unknown monitor {name!r}", field=field, allowed=", ".join(MONITORS))
    return found[0]


def fit_on_folder(monitor: _ClassifierMonitor, classes: Sequence[str], folder: str | Path):
    """``monitor`` fitted on a dataset build's crops (``crops.csv``), labelled as ``classes``
    (the watched classifier's) name them."""
    from avrobust.models.crops import load_crops

    crops = load_crops(folder)
    labels = [list(classes).index(crops.classes[i]) for i in crops.labels.tolist()]
    signs = crops.distance.isfinite()  # faces and backs; random background has no distance
    return monitor.fit(crops.images.float() / 255, torch.tensor(labels), signs)
