"""Masks learnt by RP2's L1 stage, the coarse texture grid, and the mask names the command
line takes."""

import cv2
import numpy as np
import pytest
import torch

from avrobust.attacks.grid import coarse_grid
from avrobust.attacks.learnt_mask import (
    LearntMaskSpec,
    learn_mask,
    top_blobs,
    visible_region,
)
from avrobust.attacks.masks import mask_from_spec
from avrobust.core.errors import ConfigError


class _Target:
    """An attack whose loss falls when the texture turns blue inside one square: the L1 stage
    must put the mask there."""

    eot = "none"
    batch = 1

    def victims(self):
        return ()

    def objective(self, views, texture, mask, eot, step):
        blue = (texture[2, 40:56, 8:24] - texture[0, 40:56, 8:24]).mean()
        return -4 * blue, torch.tensor([bool(blue > 0.5)])


def test_the_l1_stage_puts_the_mask_where_the_objective_is():
    base = torch.full((3, 64, 64), 0.5)
    region = torch.zeros(1, 64, 64)
    region[:, 4:60, 4:60] = 1
    spec = LearntMaskSpec(coverage=0.07, steps=60, l1_weight=0.05, blob=1 / 16)
    mask, info = learn_mask(_Target(), [object()], base, spec, region=region)
    assert mask.shape == (1, 64, 64)
    assert (mask <= region).all()  # never outside the face
    assert info["coverage_of_face"] == pytest.approx(0.07, abs=0.01)
    # The mask (smaller than the square) lies on the square the objective rewards.
    assert mask[:, 40:56, 8:24].sum() / mask.sum() > 0.95


def test_top_blobs_keeps_the_coverage_inside_the_region():
    sal = torch.rand(32, 32)
    region = torch.zeros(1, 32, 32)
    region[:, :, :16] = 1
    m = top_blobs(sal, region, 0.25, 3)
    assert (m <= region).all() and m.sum() == pytest.approx(0.25 * 512, abs=3)


def test_visible_region_maps_the_views_back_onto_the_texture():
    from types import SimpleNamespace

    from avrobust.core.surface import SurfaceView

    # The texture fills the image square [10, 74) x [20, 84); only its left half is visible.
    vis = torch.zeros(100, 100)
    vis[20:84, 10:42] = 1
    sv = SurfaceView(
        "s", 1, [[10, 20], [74, 20], [74, 84], [10, 84]], vis, [1, 1, 1], [0, 0, 0], (1, 1), 5, 0
    )
    view = SimpleNamespace(frame=SimpleNamespace(surfaces={"s": sv}), surface="s")
    region = visible_region([view], (64, 64))
    assert region[0, :, :31].mean() == 1 and region[0, :, 33:].sum() == 0


def test_mask_names_files_and_learnt_specs(tmp_path):
    assert mask_from_spec("whole") is None
    assert mask_from_spec("rp2_bars").shape == (1, 256, 256)
    spec = mask_from_spec("learnt:0.2", 40)
    assert spec == LearntMaskSpec(0.2, 40)
    img = np.zeros((50, 80), np.uint8)
    img[10:20, 30:60] = 255
    cv2.imwrite(str(tmp_path / "m.png"), img)
    m = mask_from_spec(str(tmp_path / "m.png"))
    assert m.shape == (1, 50, 80) and m.sum() == 300
    cv2.imwrite(str(tmp_path / "black.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(ConfigError, match="all black"):
        mask_from_spec(str(tmp_path / "black.png"))
    with pytest.raises(ConfigError, match="no mask image"):
        mask_from_spec(str(tmp_path / "missing.png"))
    with pytest.raises(ConfigError, match="unknown mask 'smiley'"):
        mask_from_spec("smiley")
    with pytest.raises(ConfigError, match="coverage"):
        mask_from_spec("learnt:1.5")
    with pytest.raises(ConfigError, match="bad learnt mask"):
        mask_from_spec("learnt:lots")


def test_the_coarse_grid_is_smooth_and_passes_gradients():
    tex = torch.rand(3, 256, 192)
    grid = coarse_grid(tex, 32)
    assert grid.cells == (32, 24)
    values = grid.down(tex).requires_grad_(True)
    up = grid.up(values)
    assert up.shape == tex.shape
    up.sum().backward()
    assert values.grad is not None and (values.grad > 0).all()
    # Neighbouring texels of the upsampled texture differ far less than random ones.
    assert (up[:, :, 1:] - up[:, :, :-1]).abs().mean() < 0.1 * (
        tex[:, :, 1:] - tex[:, :, :-1]
    ).abs().mean()
    assert coarse_grid(tex, None).cells == (256, 192) and coarse_grid(tex, 512).cells == (256, 192)
