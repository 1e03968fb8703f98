"""Variants without a golden file (no official outputs to compare with): their key layout
equals the official model definition's (``tests/layouts/<variant>.txt``, provenance in
``tests/layouts/README.md``), a forward pass with synthetic weights is finite and has the
declared shapes, and the ONNX export passes its parity check against torch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import get_bundle, get_model, layout_variants, read_layout
from edge_sam_sdk.graphs import graph_specs, sample_feed
from edge_sam_sdk.registry import get_variant

torch = pytest.importorskip("torch")

VARIANTS = layout_variants()


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_keys_match_official_layout(variant: str) -> None:
    with torch.device("meta"):
        model = get_variant(variant).build_model()
    ours = [(k, tuple(t.shape)) for k, t in model.state_dict().items()]
    assert ours == read_layout(variant)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_pass_is_finite(variant: str, models: dict) -> None:
    from edge_sam_sdk.exporters.export import graph_modules

    spec = get_variant(variant)
    mods = graph_modules(get_model(models, variant))
    specs = graph_specs(spec)
    with torch.no_grad():
        emb = mods["encoder"](torch.from_numpy(sample_feed(specs["encoder"])["image"]))
        assert tuple(emb.shape) == (1,) + tuple(spec.embedding_shape)
        assert torch.isfinite(emb).all()
        feed = {k: torch.from_numpy(v) for k, v in sample_feed(specs["decoder"]).items()}
        masks, iou = mods["decoder"](**feed)
    assert masks.shape[1] == iou.shape[1] == spec.num_mask_tokens
    assert torch.isfinite(masks).all() and torch.isfinite(iou).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_onnx_export_parity(variant: str, onnx_bundles: dict) -> None:
    manifest = json.loads((get_bundle(onnx_bundles, variant) / "manifest.json").read_text())
    for name, figures in manifest["export_parity"].items():
        assert figures["ok"], (name, figures)
        assert all(np.isfinite(f["rel_l2"]) for f in figures["outputs"].values())
