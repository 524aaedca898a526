"""A small multi-object tracker for the temporal check: constant-velocity prediction, greedy
association (2D: IoU of the predicted box; 3D: BEV centre distance within a gate), per-track
class votes. Written here rather than taken from a tracking library because the check needs
its internals (streaks, votes, coasting) and the detections are a handful per frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torchvision.ops import box_iou


@dataclass
class Track:
    """One object followed across frames. ``box`` is the last measured box (``[4]`` xyxy or
    ``[7]`` x y z l w h yaw); ``velocity`` its change per second; ``votes`` the decayed sum of
    detection scores per label."""

    id: int
    box: torch.Tensor
    time: float
    score: float
    velocity: torch.Tensor
    votes: dict[int, float] = field(default_factory=dict)
    hits: int = 1
    streak: int = 1  # consecutive frames with a detection
    longest: int = 1
    misses: int = 0
    confirmed: bool = False
    before: int | None = None  # the voted label before the last detection was counted

    def predict(self, t: float) -> torch.Tensor:
        return self.box + self.velocity * (t - self.time)

    @property
    def label(self) -> int:
        return max(self.votes, key=self.votes.get)


def similarity(kind: str, predicted: torch.Tensor, boxes: torch.Tensor, gate_m: float):
    """``[T, D]`` association scores, zero where the pair may not be associated: 2D IoU; 3D
    ``1 - distance / gate_m`` of BEV centres."""
    if len(predicted) == 0 or len(boxes) == 0:
        return torch.zeros(len(predicted), len(boxes))
    if kind == "2d":
        return box_iou(predicted, boxes)
    d = torch.cdist(predicted[:, :2], boxes[:, :2])
    return (1 - d / gate_m).clamp(min=0)


def greedy_match(sim: torch.Tensor, minimum: float) -> list[tuple[int, int]]:
    """Pairs (track, detection) taken best first while their score is at least ``minimum``."""
    pairs, sim = [], sim.clone()
    while sim.numel():
        best = int(torch.argmax(sim))
        t, d = divmod(best, sim.shape[1])
        if float(sim[t, d]) < minimum or float(sim[t, d]) <= 0:
            break
        pairs.append((t, d))
        sim[t, :] = -1
        sim[:, d] = -1
    return pairs


class Tracker:
    """Tracks of one job's detections. ``update`` returns, per detection, its track, and the
    tracks that found no detection this frame."""

    def __init__(self, kind: str, iou: float = 0.2, gate_m: float = 2.5, decay: float = 0.8):
        self.kind, self.iou, self.gate_m, self.decay = kind, iou, gate_m, decay
        self.tracks: list[Track] = []
        self.frames = 0  # frames seen
        self._next = 0

    def update(
        self, t: float, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor
    ) -> tuple[list[Track], list[Track], list[bool]]:
        """Associate this frame's detections. Returns each detection's track, the tracks left
        without a detection, and for each detection whether its track is new."""
        self.frames += 1
        live = self.tracks
        predicted = (
            torch.stack([tr.predict(t) for tr in live]) if live else torch.zeros(0, boxes.shape[1])
        )
        sim = similarity(self.kind, predicted, boxes, self.gate_m)
        minimum = self.iou if self.kind == "2d" else 1e-6
        pairs = greedy_match(sim, minimum)
        owner: list[Track | None] = [None] * len(boxes)
        new = [False] * len(boxes)
        for ti, di in pairs:
            tr = live[ti]
            dt = max(t - tr.time, 1e-3)
            measured = (boxes[di] - tr.box) / dt
            if self.kind == "3d":
                measured[6] = 0.0  # yaw is not extrapolated
            tr.velocity = measured if tr.hits == 1 else 0.5 * (tr.velocity + measured)
            tr.hits += 1
            tr.box, tr.time, tr.score = boxes[di].clone(), t, float(scores[di])
            tr.streak += 1
            tr.longest = max(tr.longest, tr.streak)
            tr.misses = 0
            self._vote(tr, int(labels[di]), float(scores[di]))
            owner[di] = tr
        matched = {id(tr) for tr in owner if tr is not None}
        missing = [tr for tr in live if id(tr) not in matched]
        for tr in missing:
            tr.streak = 0
            tr.misses += 1
        for di in range(len(boxes)):
            if owner[di] is None:
                tr = Track(
                    self._next, boxes[di].clone(), t, float(scores[di]), torch.zeros_like(boxes[di])
                )
                self._next += 1
                self._vote(tr, int(labels[di]), float(scores[di]))
                self.tracks.append(tr)
                owner[di], new[di] = tr, True
        return owner, missing, new

    def drop(self, tracks: list[Track]) -> None:
        gone = {id(tr) for tr in tracks}
        self.tracks = [tr for tr in self.tracks if id(tr) not in gone]

    def _vote(self, tr: Track, label: int, score: float) -> None:
        tr.before = tr.label if tr.votes else None
        for k in tr.votes:
            tr.votes[k] *= self.decay
        tr.votes[label] = tr.votes.get(label, 0.0) + score
