"""The temporal consistency check: objects persist, keep their class and move as physics
allows, so a perception output that contradicts its own recent past is suspect. In the spirit
of 3D-TC2 (You et al. 2021, temporal consistency against LiDAR spoofing) and of the tracking
that every deployed stack runs after its detector.

A tracker follows the model's detections across the job's frames and the check
- *confirms* an object only after ``confirm`` consecutive detections (a phantom that flickers
  into one frame is not reported),
- *coasts* a confirmed object for up to ``coast`` frames after it vanishes (at its predicted
  position), so a brief hiding attack does not make it disappear,
- *votes* the class over the track's history (scores decayed by ``decay`` per frame), so a
  reading that flips for a few frames is outvoted,
and raises alarms: ``vanished`` (a steady object, seen in ``min_track`` frames, lost in the
middle of the view), ``appeared`` (a new object already close, ahead: real ones are seen
coming; never on the first frame), ``class_flip`` (a steady object read as another class),
``implausible_motion`` (3D: a speed relative to the ego above ``max_speed``).

Its limit is plain: an attack that is there from the first frame and in every frame (a printed
sticker, a persistent laser) is consistent over time and passes; what the check catches is an
attack that starts, stops or flickers.
"""

from __future__ import annotations

import torch

from avrobust.core.components import DefenceBase
from avrobust.core.detections import Detections
from avrobust.core.errors import ConfigError
from avrobust.defences.defended import Alarm, Defended
from avrobust.defences.tracking import Tracker


class TemporalCheck(DefenceBase):
    name = "temporal-check"
    raises_alarms = True

    def __init__(
        self,
        confirm: int = 2,
        coast: int = 3,
        vote: bool = True,
        decay: float = 0.8,
        min_track: int = 5,
        appear_px: float = 80.0,
        appear_m: float = 12.0,
        range_m: float = 40.0,
        margin_px: float = 8.0,
        max_speed: float = 70.0,
        iou: float = 0.2,
        gate_m: float = 2.5,
    ) -> None:
        if confirm < 1 or coast < 0 or min_track < 1:
            raise ConfigError(
                f"confirm and min_track must be >= 1 and coast >= 0, got {confirm}, "
                f"{min_track}, {coast}",
                field="confirm",
            )
        if not 0 < decay <= 1:
            raise ConfigError(f"decay must be in (0, 1], got {decay}", field="decay")
        self.confirm, self.coast, self.vote, self.decay = confirm, coast, vote, decay
        self.min_track, self.appear_px, self.appear_m = min_track, appear_px, appear_m
        self.range_m, self.margin_px, self.max_speed = range_m, margin_px, max_speed
        self.iou, self.gate_m = iou, gate_m

    def provenance(self) -> dict:
        return {
            k: getattr(self, k)
            for k in ("confirm", "coast", "vote", "decay", "min_track", "appear_px", "appear_m")
        }

    def wrap(self, model) -> Defended:
        trackers: dict[str, Tracker] = {}

        def step(frame, dets):
            if dets is None:
                return dets, []
            tracker = trackers.setdefault(
                dets.kind, Tracker(dets.kind, self.iou, self.gate_m, self.decay)
            )
            return self._step(frame, dets, tracker)

        return Defended(model, step)

    # --- one frame --------------------------------------------------------------------------
    def _step(self, frame, dets: Detections, tracker: Tracker):
        t = float(frame.timestamp)
        names = dets.class_names
        seen = tracker.frames > 0  # on the first frame everything is new
        owners, missing, new = tracker.update(t, dets.boxes, dets.scores, dets.labels)
        alarms: list[Alarm] = []
        boxes, scores, labels = [], [], []
        for i, tr in enumerate(owners):
            if tr.streak >= self.confirm:
                tr.confirmed = True
            label = int(dets.labels[i])
            if new[i] and seen and self._close(dets.kind, dets.boxes[i], frame):
                alarms.append(Alarm("appeared", f"{_name(names, label)} first seen close"))
            # A box cut by the image border is a truncated view, often misread: not a flip.
            if (
                not new[i]
                and tr.hits > self.min_track
                and tr.before != label
                and self._in_view(dets.kind, dets.boxes[i], frame)
            ):
                alarms.append(
                    Alarm(
                        "class_flip",
                        f"track {tr.id}: {_name(names, tr.before)} -> {_name(names, label)}",
                    )
                )
            if dets.kind == "3d" and float(torch.linalg.vector_norm(tr.velocity[:2])) > (
                self.max_speed
            ):
                alarms.append(Alarm("implausible_motion", f"track {tr.id}"))
            if tr.confirmed:
                boxes.append(dets.boxes[i])
                scores.append(dets.scores[i])
                labels.append(tr.label if self.vote else label)
        for tr in missing:
            if tr.confirmed and tr.misses == 1 and tr.longest >= self.min_track:
                if self._in_view(dets.kind, tr.predict(t), frame):
                    alarms.append(Alarm("vanished", f"{_name(names, tr.label)} track {tr.id}"))
            if tr.confirmed and tr.misses <= self.coast:
                boxes.append(tr.predict(t))
                scores.append(torch.tensor(tr.score * self.decay**tr.misses))
                labels.append(tr.label)
        tracker.drop([tr for tr in missing if tr.misses > max(self.coast, 2)])
        width = dets.boxes.shape[1]
        out = Detections(
            torch.stack(boxes) if boxes else torch.zeros(0, width),
            torch.stack([torch.as_tensor(s) for s in scores]) if scores else torch.zeros(0),
            torch.tensor(labels, dtype=torch.int64),
            dets.kind,
            names,
        )
        return out, alarms

    def _close(self, kind: str, box: torch.Tensor, frame) -> bool:
        """A new object already near: large in the image away from its border (2D), or within
        ``appear_m`` (3D)."""
        if kind == "3d":  # ahead: a car overtaking appears beside the ego, near, legitimately
            ahead = float(box[0]) > 0 and abs(float(box[1])) < 0.4 * float(box[0])
            return ahead and float(torch.linalg.vector_norm(box[:2])) < self.appear_m
        return float(box[3] - box[1]) >= self.appear_px and self._in_view(kind, box, frame)

    def _in_view(self, kind: str, box: torch.Tensor, frame) -> bool:
        """Where a real object could not just leave the sensor's view: inside the image with a
        margin (2D), ahead within ``range_m`` (3D)."""
        if kind == "3d":
            return 0 < float(box[0]) and float(torch.linalg.vector_norm(box[:2])) < self.range_m
        k = frame.calibration.intrinsics
        m = self.margin_px
        return bool(box[0] > m and box[1] > m and box[2] < k.width - m and box[3] < k.height - m)


def _name(names: tuple[str, ...], label: int | None) -> str:
    if label is None:
        return "?"
    return names[label] if 0 <= label < len(names) else str(label)
