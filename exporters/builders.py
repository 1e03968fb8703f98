"""Torch builders named by the variant registry (``VariantSpec.builder``)."""

from __future__ import annotations

from .model import SamModel, sam_model
from .sam_vit import vit_encoder


def sam_vit_b() -> SamModel:
    return sam_model(vit_encoder("vit_b"))


def sam_vit_l() -> SamModel:
    return sam_model(vit_encoder("vit_l"))


def sam_vit_h() -> SamModel:
    return sam_model(vit_encoder("vit_h"))


def mobile_sam() -> SamModel:
    from .tiny_vit import TinyViT

    return sam_model(TinyViT())
