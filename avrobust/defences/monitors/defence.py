"""The ``sign-monitor`` campaign defence: a runtime monitor on the sign classifier of a sign
stack (the detector-plus-classifier pipeline, or the classifier on true boxes), raising
``doubted_sign`` alarms at a threshold calibrated beforehand with ``avrobust defend monitors``,
and carrying the fail-safe the closed loop applies to them. ``unreadable`` also raises an
``unreadable_sign`` alarm for every judged sign the classifier calls background; off by default,
since the classifier rightly calls the back of a sign background (a sign facing the other way
would be taken as a stop)."""

from __future__ import annotations

from pathlib import Path

from avrobust.core.components import CampaignModel, DefenceBase, Perception
from avrobust.core.errors import ConfigError
from avrobust.core.fail_safe import FailSafe


class SignMonitor(DefenceBase):
    name = "sign-monitor"
    raises_alarms = True

    def __init__(
        self,
        threshold: float | None = None,
        method: str = "odin",
        fit: str | None = None,
        file: str | None = None,
        unreadable: bool = False,
        fail_safe: dict | None = None,
        min_px: float = 12.0,
    ) -> None:
        from avrobust.defences.monitors.classifier import FITTED, MONITORS

        self.threshold = None if threshold is None else float(threshold)
        self.fit = None if fit is None else Path(fit)
        self.file = None if file is None else Path(file)
        self.unreadable, self.min_px = bool(unreadable), float(min_px)
        self._fail_safe = FailSafe.from_params(fail_safe)
        self.method: str | None = method
        if self.file is not None:  # the file names the monitor and its threshold
            if self.fit is not None:
                raise ConfigError("give either file or fit, not both", field="fit")
            self.method = None
            return
        if self.threshold is None:
            raise ConfigError("a threshold is needed (or a monitor file)", field="threshold")
        if method not in MONITORS:
            raise ConfigError(
                f"unknown monitor {method!r}", field="method", allowed=", ".join(MONITORS)
            )
        if method in FITTED and fit is None:
            raise ConfigError(
                f"monitor {method} is fitted on clean crops: give fit (a dataset folder) or "
                "file (a monitor file from avrobust defend monitors --save)",
                field="fit",
            )

    def wrap(self, model: CampaignModel) -> Perception:
        from avrobust.defences.monitors.classifier import fit_on_folder, monitor_named
        from avrobust.defences.monitors.wrapper import monitored
        from avrobust.models.victims import SignClassifierOnTruth, SignRecognitionPipeline

        if not isinstance(model, SignRecognitionPipeline | SignClassifierOnTruth):
            raise ConfigError(
                f"the sign monitor watches a sign classifier; model {model.name!r} has none",
                field="defences",
                allowed="sign-pipeline, sign-classifier",
            )
        classifier = model.classifier
        if self.file is not None:
            from avrobust.defences.monitors.state import load_monitor

            monitor, threshold, _ = load_monitor(self.file, classifier, _sha256(model))
            if self.threshold is not None:  # a stated threshold overrides the file's
                threshold = self.threshold
            return monitored(model, monitor, threshold, self.unreadable, self.min_px)
        monitor = monitor_named(classifier, str(self.method))
        if self.fit is not None:
            from avrobust.core.resources import resolve_user_path

            fit_on_folder(monitor, classifier.classes, resolve_user_path(self.fit))
        return monitored(model, monitor, float(self.threshold), self.unreadable, self.min_px)

    def fail_safe(self) -> FailSafe | None:
        return self._fail_safe

    def provenance(self) -> dict:
        fs = self._fail_safe
        return {
            "method": self.method,
            "threshold": self.threshold,
            "unreadable": self.unreadable,
            "min_px": self.min_px,
            "fit": None if self.fit is None else str(self.fit),
            "file": None if self.file is None else str(self.file),
            "fail_safe": None if fs is None else fs.__dict__,
        }


def _sha256(model) -> str | None:
    """The SHA-256 of the classifier weights a sign stack loaded, when it says."""
    from avrobust.models.weights import file_sha256

    path = getattr(model, "weights", {}).get("classifier")
    return None if path is None else file_sha256(path)
