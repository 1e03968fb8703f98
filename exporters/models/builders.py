"""Torch builders named by the variant registry (``VariantSpec.builder``)."""

from __future__ import annotations

from .sam_model import SamModel, sam_model
from .sam_vit import ImageEncoderViT, vit_encoder


def sam_vit_b() -> SamModel:
    return sam_model(vit_encoder("vit_b"))


def sam_vit_l() -> SamModel:
    return sam_model(vit_encoder("vit_l"))


def sam_vit_h() -> SamModel:
    return sam_model(vit_encoder("vit_h"))


def mobile_sam() -> SamModel:
    from .tiny_vit import TinyViT

    return sam_model(TinyViT())


tinysam = mobile_sam  # TinySAM: MobileSAM's architecture, its own weights


def _slimsam(embed_dim: int, mlp_dim: int) -> SamModel:
    """SlimSAM uniform checkpoints: SAM ViT-B with pruned width (12 heads, explicit MLP dim)."""
    return sam_model(ImageEncoderViT(embed_dim=embed_dim, depth=12, num_heads=12,
                                     global_attn_indexes=(2, 5, 8, 11), mlp_dims=[mlp_dim] * 12))


def slimsam_50() -> SamModel:
    return _slimsam(384, 1536)


def slimsam_77() -> SamModel:
    return _slimsam(168, 696)


def nanosam() -> SamModel:
    from .nanosam import NanoSamEncoder

    return sam_model(NanoSamEncoder())


def edge_sam() -> SamModel:
    """EdgeSAM (and EdgeSAM-3x: same architecture): RepViT-m1 + FPN, bicubic upsampling."""
    from .rep_vit import edge_sam_encoder

    return sam_model(edge_sam_encoder(), decoder_proj_order="qvk")


edge_sam_3x = edge_sam


def repvit_sam() -> SamModel:
    from .rep_vit import repvit_sam_encoder

    return sam_model(repvit_sam_encoder())


def _efficientvit_sam(size: str) -> SamModel:
    from .efficientvit import efficientvit_sam_encoder

    return sam_model(efficientvit_sam_encoder(size), decoder_norm_eps=1e-6)


def efficientvit_sam_l0() -> SamModel:
    return _efficientvit_sam("l0")


def efficientvit_sam_l1() -> SamModel:
    return _efficientvit_sam("l1")


def efficientvit_sam_l2() -> SamModel:
    return _efficientvit_sam("l2")


def efficientvit_sam_xl0() -> SamModel:
    return _efficientvit_sam("xl0")


def efficientvit_sam_xl1() -> SamModel:
    return _efficientvit_sam("xl1")
