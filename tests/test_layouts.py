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
    """Equal keys, shapes and order, less the prefixes the variant declares unused by
    inference (``CheckpointSpec.ignore``: SAM 2's video-only modules)."""
    spec = get_variant(variant)
    with torch.device("meta"):
        model = spec.build_model()
    ours = [(k, tuple(t.shape)) for k, t in model.state_dict().items()]
    ignore = spec.checkpoint.ignore
    assert ours == [(k, s) for k, s in read_layout(variant) if not (ignore and k.startswith(ignore))]


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_pass_is_finite(variant: str, models: dict) -> None:
    from edge_sam_sdk.exporters.export import graph_modules

    spec = get_variant(variant)
    mods = graph_modules(get_model(models, variant))
    specs = graph_specs(spec)
    outputs: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name in ("encoder", "decoder"):
            feed = {k: torch.from_numpy(v) for k, v in sample_feed(specs[name], batch=1).items()}
            if name == "decoder":  # the encoder's own outputs, as the predictor feeds them
                feed.update({k: v for k, v in outputs.items() if k in feed})
            result = mods[name](*(feed[n] for n in specs[name].input_names))
            result = result if isinstance(result, tuple) else (result,)
            outputs = dict(zip(specs[name].output_names, result, strict=True))
            for t in specs[name].outputs:
                expected = tuple(1 if isinstance(d, str) else d for d in t.shape)
                assert tuple(outputs[t.name].shape) == expected, (name, t.name)
                assert torch.isfinite(outputs[t.name]).all(), (name, t.name)


@pytest.mark.parametrize("variant", VARIANTS)
def test_onnx_export_parity(variant: str, onnx_bundles: dict) -> None:
    manifest = json.loads((get_bundle(onnx_bundles, variant) / "manifest.json").read_text())
    for name, figures in manifest["export_parity"].items():
        assert figures["ok"], (name, figures)
        assert all(np.isfinite(f["rel_l2"]) for f in figures["outputs"].values())
