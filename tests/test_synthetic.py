"""The synthetic-weights spec (shared/SYNTHETIC_WEIGHTS.md): check values and properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import GOLDEN_DIR
from edge_sam_sdk.testing import Golden, synthetic_array, synthetic_state_dict, synthetic_tensor

# Per-variant golden files carry the official state-dict layout and a weight probe;
# task files such as amg_mobile_sam.npz (segment everything) carry neither.
VARIANT_GOLDENS = sorted(p for p in GOLDEN_DIR.glob("*.npz") if not p.stem.startswith("amg_"))


@pytest.mark.parametrize("path", VARIANT_GOLDENS, ids=lambda p: p.stem)
def test_weight_probe_reproduces(path: Path) -> None:
    g = Golden(path)
    shapes = {k: s for k, s, _ in g.state_keys()}
    for key, expected in g.meta["weight_probe"].items():
        got = synthetic_tensor(key, shapes[key], g.seed).astype(np.float64).sum()
        assert got == pytest.approx(expected, rel=1e-9, abs=0), key


def test_rules_by_leaf_name() -> None:
    assert np.all(np.abs(synthetic_tensor("a.bias", (1000,), 0)) <= 0.05)
    rv = synthetic_tensor("bn.running_var", (1000,), 0)
    assert rv.min() >= 0.5 and rv.max() < 1.5
    w = synthetic_tensor("x.weight", (8, 4, 3, 3), 0)
    assert np.abs(w).max() <= np.sqrt(3 / 36)
    assert synthetic_tensor("scalar", (), 0).shape == ()


def test_state_dict_keeps_non_float_entries() -> None:
    torch = pytest.importorskip("torch")
    sd = {"bn.num_batches_tracked": torch.tensor(7), "lin.weight": torch.zeros(3, 2)}
    out = synthetic_state_dict(sd, 1)
    assert int(out["bn.num_batches_tracked"]) == 7
    assert out["lin.weight"].dtype == torch.float32
    np.testing.assert_array_equal(out["lin.weight"].numpy(), synthetic_tensor("lin.weight", (3, 2), 1))


def test_synthetic_array_range_and_determinism() -> None:
    a = synthetic_array(0xE3, (1, 1, 16, 16), 0, -8, 8)
    assert a.dtype == np.float32 and a.min() >= -8 and a.max() < 8
    np.testing.assert_array_equal(a, synthetic_array(0xE3, (1, 1, 16, 16), 0, -8, 8))
