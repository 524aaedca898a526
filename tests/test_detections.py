import pytest
import torch

from avrobust.core import Detections

NAMES = ("car", "pedestrian", "traffic_sign")


def _dets(n: int, offset: float = 0.0) -> Detections:
    boxes = torch.arange(n * 4, dtype=torch.float32).reshape(n, 4) + offset
    boxes[:, 2:] += 10
    return Detections(boxes, torch.linspace(0.1, 0.9, n), torch.arange(n) % 3, "2d", NAMES)


def test_batch_and_unbatch_round_trip_with_empty_items():
    items = [_dets(3), Detections.empty("2d", NAMES), _dets(2, offset=100)]
    batched = Detections.batch(items)
    assert len(batched) == 5
    assert batched.batch_size == 3
    assert batched.batch_index.tolist() == [0, 0, 0, 2, 2]
    back = batched.unbatch()
    assert [len(d) for d in back] == [3, 0, 2]
    for a, b in zip(items, back, strict=True):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.labels, b.labels)


def test_filter_keeps_batch_index():
    batched = Detections.batch([_dets(3), _dets(2)])
    high = batched.above(0.5)
    assert high.batch_size == 2
    assert high.batch_index.tolist() == [0, 0, 1]
    assert [len(d) for d in high.unbatch()] == [2, 1]


def test_of_class_and_unknown_class():
    d = _dets(6)
    assert d.of_class("pedestrian").labels.tolist() == [1, 1]
    with pytest.raises(KeyError, match="unknown class"):
        d.of_class("bicycle")


def test_batching_refuses_mixed_kinds():
    three_d = Detections(torch.zeros(1, 7), torch.ones(1), torch.zeros(1), "3d", NAMES)
    with pytest.raises(ValueError, match="share kind"):
        Detections.batch([_dets(1), three_d])


def test_shape_checks():
    with pytest.raises(ValueError, match="one score and label"):
        Detections(torch.zeros(2, 4), torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="kind"):
        Detections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), "4d")


def test_3d_detections_give_box3d():
    boxes = torch.tensor([[10.0, 1.0, 0.5, 4.0, 2.0, 1.5, 0.3]])
    d = Detections(boxes, torch.ones(1), torch.zeros(1), "3d", NAMES)
    b = d.box3d()
    assert b.center[0].tolist() == pytest.approx([10.0, 1.0, 0.5])
    assert b.yaw.item() == pytest.approx(0.3)
    with pytest.raises(TypeError):
        d.to_torchmetrics()


def test_torchmetrics_format_is_accepted_by_mean_average_precision():
    from torchmetrics.detection import MeanAveragePrecision

    pred = Detections.batch([_dets(2)])
    target = [{"boxes": pred.boxes.clone(), "labels": pred.labels.clone()}]
    metric = MeanAveragePrecision(iou_type="bbox", backend="pycocotools")
    metric.update(pred.to_torchmetrics(), target)
    assert metric.compute()["map_50"].item() == pytest.approx(1.0)
