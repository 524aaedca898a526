import pytest
import torch

from avrobust.core import DataError, Patch


def _patch() -> Patch:
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(1, 32, 48)
    mask[:, 8:24, 10:40] = 1
    return Patch(
        torch.rand(3, 32, 48, generator=g),
        mask,
        (0.254, 0.17),
        "sticker",
        torch.eye(3),
        {"attack": "rp2", "seed": 7},
    )


def test_save_and_load_round_trip(tmp_path):
    p = _patch()
    path = p.save(tmp_path / "p.patch")
    q = Patch.load(path)
    assert torch.equal(p.texture, q.texture) and torch.equal(p.mask, q.mask)
    assert q.size_m == pytest.approx((0.254, 0.17))
    assert q.provenance == {"attack": "rp2", "seed": 7}
    assert q.sha256() == p.sha256()
    assert q.coverage == pytest.approx(16 * 30 / (32 * 48))


def test_hash_changes_with_texture():
    p = _patch()
    q = Patch(p.texture.clone(), p.mask, p.size_m)
    q.texture[0, 0, 0] = 1 - q.texture[0, 0, 0]
    assert q.sha256() != p.sha256()


def test_bad_files_give_data_errors(tmp_path):
    with pytest.raises(DataError, match="no such patch file"):
        Patch.load(tmp_path / "missing.patch")
    bad = tmp_path / "bad.patch"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=r"bad\.patch: not a readable patch file"):
        Patch.load(bad)
    other = tmp_path / "other.patch"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(DataError, match="format"):
        Patch.load(other)


def test_shape_validation():
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        Patch(torch.rand(4, 8, 8), torch.ones(1, 8, 8), (0.1, 0.1))
    with pytest.raises(ValueError, match="mask"):
        Patch(torch.rand(3, 8, 8), torch.ones(1, 4, 8), (0.1, 0.1))
    with pytest.raises(ValueError, match="positive"):
        Patch(torch.rand(3, 8, 8), torch.ones(8, 8), (0.0, 0.1))
