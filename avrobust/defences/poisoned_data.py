"""Finding poisoned samples in a training set, from the trained model's features (ART's
implementations, wrapped to our models):

* Spectral Signatures (Tran et al. 2018): within each label, a sample's squared projection on
  the top singular vector of the centred features (ART's scoring function, on features
  extracted once here); the highest ``eps_multiplier * expected_poison`` share of each label is
  flagged (ART's cutoff);
* Activation Clustering (Chen et al. 2018): within each label, features reduced to 10
  dimensions (PCA) and split in two by k-means (ART's); the smaller cluster is flagged when it
  holds under 35% of its label, the paper's relative-size rule (ART's ``smaller`` analysis
  flags the smaller cluster of every label, half of a clean label's samples at worst);
* robust Mahalanobis (the robust-statistics idea of SPECTRE, Hayase et al. 2021, without its
  QUE score): within each label, features reduced to 16 dimensions (PCA) and scored by their
  Mahalanobis distance under a robust covariance (scikit-learn's minimum covariance
  determinant), so that a label's largest natural variation (distance, blur) is whitened away
  and a poison cluster stands out; flagged as Spectral Signatures flags.

All read the penultimate layer, as the papers do (ART's clustering reads its model's last listed
layer, so the model is handed to it with a tap on that layer listed last). Their thresholds are set
without knowledge of the attack: ART's defaults, and for Spectral Signatures an assumed upper
bound of 5% poison per label (ART's default of 33% would flag half of every label).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

#: The shipped sign classifier's penultimate activation (as the runtime monitors read it).
PENULTIMATE = "head.3"


class _Tapped(nn.Module):
    """``model`` with its ``layer``'s output also passed through ``tap``, the last child, so
    ART's "last layer" activations are that layer's."""

    def __init__(self, model: nn.Module, layer: str) -> None:
        super().__init__()
        self.model = model
        self.tap = nn.Identity()
        target = dict(model.named_modules())[layer]
        self.handle = target.register_forward_hook(lambda m, i, o: self.tap(o))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _art_classifier(model: nn.Module, layer: str, n_classes: int, shape: tuple[int, ...]):
    """ART's classifier on the tapped model, and the tap (remove its hook when done)."""
    from art.estimators.classification import PyTorchClassifier

    tapped = _Tapped(model.eval(), layer)
    return tapped, PyTorchClassifier(
        tapped,
        loss=nn.CrossEntropyLoss(),
        input_shape=shape,
        nb_classes=n_classes,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


@dataclass
class PoisonScan:
    """A scan's verdict on every training sample (``flagged``: ``[N]`` bool) and the settings
    it ran with."""

    method: str
    flagged: np.ndarray
    settings: dict = field(default_factory=dict)
    scores: np.ndarray | None = None  # within-label suspicion, where the scan has one

    def judged(self, poisoned: np.ndarray, labels=None) -> dict:
        """Against the truth (``poisoned``: ``[N]`` bool): the share of poisons flagged and of
        clean samples flagged (the data a defender would throw away), 95% Wilson intervals;
        with ``labels``, the threshold-free AUROC of the scores within the poisoned labels."""
        from avrobust.core.stats import rate

        poisoned = np.asarray(poisoned, dtype=bool)
        f = self.flagged
        out = {
            "method": self.method,
            "settings": self.settings,
            "flagged": int(f.sum()),
            "poisons_found": rate(int((f & poisoned).sum()), int(poisoned.sum())).to_dict(),
            "clean_flagged": rate(int((f & ~poisoned).sum()), int((~poisoned).sum())).to_dict(),
            "auroc_in_poisoned_labels": None,
        }
        if self.scores is not None and labels is not None and poisoned.any():
            from sklearn.metrics import roc_auc_score

            # Scores rank samples within a label: judged within the labels poisons carry.
            within = np.isin(np.asarray(labels), np.unique(np.asarray(labels)[poisoned]))
            if (~poisoned[within]).any():
                out["auroc_in_poisoned_labels"] = float(
                    roc_auc_score(poisoned[within], self.scores[within])
                )
        return out


#: A label with fewer samples is not scanned (its samples stay unflagged): ART's PCA and
#: k-means need more samples than dimensions.
MIN_PER_LABEL = 20


def _scannable(labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray, int]:
    """Which samples are scanned (their label has at least :data:`MIN_PER_LABEL`), their
    labels renumbered 0..K-1 and one-hot, and K."""
    lab = labels.numpy()
    values, counts = np.unique(lab, return_counts=True)
    kept = values[counts >= MIN_PER_LABEL]
    keep = np.isin(lab, kept)
    index = {int(v): k for k, v in enumerate(kept)}
    renumbered = np.array([index[int(v)] for v in lab[keep]], dtype=int)
    return keep, np.eye(max(len(kept), 1), dtype=np.float32)[renumbered], len(kept)


def features(model: nn.Module, layer: str, images: torch.Tensor) -> np.ndarray:
    """``[N, D]`` activations of ``layer`` (flattened), in batches without a graph."""
    out: list[torch.Tensor] = []
    handle = dict(model.named_modules())[layer].register_forward_hook(
        lambda m, i, o: out.append(o.detach().flatten(1))
    )
    try:
        with torch.no_grad():
            for i in range(0, images.shape[0], 256):
                model.eval()(images[i : i + 256])
    finally:
        handle.remove()
    return torch.cat(out).numpy()


def _by_label(labels: torch.Tensor, keep: np.ndarray):
    lab = labels.numpy()
    for v in np.unique(lab[keep]):
        yield np.nonzero(keep & (lab == v))[0]


def _top_share(scores: np.ndarray, share: float) -> np.ndarray:
    """Flags of the highest ``share`` of one label's ``scores`` (ART's Spectral Signatures
    rule: at or above the ``1 - share`` quantile)."""
    return scores >= np.quantile(scores, max(1 - share, 0.0))


def spectral_signatures(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    layer: str = PENULTIMATE,
    expected_poison: float = 0.05,
    eps_multiplier: float = 1.5,
) -> PoisonScan:
    """Scan ``images`` (``[N, 3, H, W]`` in [0, 1]) labelled ``labels`` (``[N]`` indices):
    ART's per-label spectral score and its cutoff, on features extracted once (ART's detector
    object would extract them again for the same scores)."""
    from art.defences.detector.poison import SpectralSignatureDefense

    keep = _scannable(labels)[0]
    feats = features(model, layer, images)
    scores, flagged = np.zeros(len(labels)), np.zeros(len(labels), dtype=bool)
    for idx in _by_label(labels, keep):
        scores[idx] = SpectralSignatureDefense.spectral_signature_scores(feats[idx]).reshape(-1)
        flagged[idx] = _top_share(scores[idx], eps_multiplier * expected_poison)
    return PoisonScan(
        "spectral_signatures",
        flagged,
        {"layer": layer, "expected_poison": expected_poison, "eps_multiplier": eps_multiplier},
        scores,
    )


def robust_mahalanobis(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    layer: str = PENULTIMATE,
    expected_poison: float = 0.05,
    eps_multiplier: float = 1.5,
    dims: int = 16,
    seed: int = 0,
) -> PoisonScan:
    """Scan as :func:`spectral_signatures` (the same flagged share per label)."""
    import warnings

    from sklearn.covariance import MinCovDet
    from sklearn.decomposition import PCA

    keep = _scannable(labels)[0]
    feats = features(model, layer, images)
    scores, flagged = np.zeros(len(labels)), np.zeros(len(labels), dtype=bool)
    for idx in _by_label(labels, keep):
        n = min(dims, len(idx) - 1, feats.shape[1])
        z = PCA(n, random_state=seed).fit_transform(feats[idx])
        with warnings.catch_warnings():  # MCD's "determinant has increased" on near-ties
            warnings.simplefilter("ignore", RuntimeWarning)
            d = MinCovDet(random_state=seed).fit(z).mahalanobis(z)
        scores[idx] = d
        flagged[idx] = _top_share(d, eps_multiplier * expected_poison)
    return PoisonScan(
        "robust_mahalanobis",
        flagged,
        {
            "layer": layer,
            "dims": dims,
            "expected_poison": expected_poison,
            "eps_multiplier": eps_multiplier,
        },
        scores,
    )


def activation_clustering(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    layer: str = PENULTIMATE,
    seed: int = 0,
    max_share: float = 0.35,
) -> PoisonScan:
    """Scan as :func:`spectral_signatures`; ``seed`` fixes k-means' start; a cluster under
    ``max_share`` of its label is flagged."""
    from art.defences.detector.poison import ActivationDefence
    from sklearn.cluster import MiniBatchKMeans

    keep, onehot, k = _scannable(labels)
    tapped, clf = _art_classifier(model, layer, k, tuple(images.shape[1:]))
    defence = ActivationDefence(
        clf, images[torch.from_numpy(keep)].numpy().astype(np.float32), onehot
    )
    # ART builds its k-means without a seed; a rerun must reproduce the verdict.
    defence.clusterer = MiniBatchKMeans(n_clusters=2, random_state=seed, n_init=3)
    try:
        _, is_clean = defence.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA")
    finally:
        tapped.handle.remove()
    flagged = ~np.asarray(is_clean, dtype=bool)
    label = onehot.argmax(1)
    for c, clusters in enumerate(defence.clusters_by_class):
        sizes = np.bincount(np.asarray(clusters, dtype=int), minlength=2)
        if sizes.min() >= max_share * sizes.sum():  # two comparable halves: no poison here
            flagged[label == c] = False
    out = np.zeros(keep.shape[0], dtype=bool)
    out[keep] = flagged
    return PoisonScan(
        "activation_clustering",
        out,
        {"layer": layer, "clusters": 2, "dims": 10, "reduce": "PCA", "max_share": max_share},
    )


SCANS = {
    "spectral_signatures": spectral_signatures,
    "activation_clustering": activation_clustering,
    "robust_mahalanobis": robust_mahalanobis,
}
