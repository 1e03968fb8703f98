"""RepViT encoders (EdgeSAM, RepViT-SAM): BatchNorm folding for inference keeps golden parity."""

from __future__ import annotations

import copy

import pytest

from conftest import get_model, golden
from edge_sam_sdk.testing import TAG_ENCODER_INPUT, synthetic_array

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("variant", ["edge_sam", "repvit_sam"])
def test_fused_batchnorm_keeps_parity(variant: str, models: dict) -> None:
    from edge_sam_sdk.exporters.models.rep_vit import fuse_batchnorm

    g = golden(variant)
    encoder = fuse_batchnorm(copy.deepcopy(get_model(models, variant).image_encoder))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.modules())
    x = synthetic_array(TAG_ENCODER_INPUT, (1, 3, 1024, 1024), g.seed, -2.2, 2.7)
    with torch.no_grad():
        out = encoder(torch.from_numpy(x)).numpy()
    cmp = g.compare("encoder.image_embeddings", out)
    assert cmp.ok, str(cmp)
