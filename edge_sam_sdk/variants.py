"""Built-in variant registrations (pure data; torch models are named by ``builder``)."""

from __future__ import annotations

from .processing import ProcessingSpec
from .registry import CheckpointSpec, VariantSpec, register_variant

SAM_PROCESSING = ProcessingSpec()  # 1024 longest side, Pillow bilinear, SAM mean/std
_SAM_URL = "https://github.com/facebookresearch/segment-anything#model-checkpoints"


def _sam_vit(size: str, file: str, description: str) -> VariantSpec:
    return VariantSpec(
        name=f"sam_vit_{size}",
        family="sam",
        processing=SAM_PROCESSING,
        decoder_kind="sam",
        embedding_shape=(256, 64, 64),
        checkpoint=CheckpointSpec(files=(file,), url=_SAM_URL),
        license="Apache-2.0",
        builder=f"edge_sam_sdk.exporters.builders:sam_vit_{size}",
        description=description,
    )


@register_variant
def sam_vit_b() -> VariantSpec:
    return _sam_vit("b", "sam_vit_b_01ec64.pth", "Segment Anything, ViT-B image encoder (91M)")


@register_variant
def sam_vit_l() -> VariantSpec:
    return _sam_vit("l", "sam_vit_l_0b3195.pth", "Segment Anything, ViT-L image encoder (308M)")


@register_variant
def sam_vit_h() -> VariantSpec:
    return _sam_vit("h", "sam_vit_h_4b8939.pth", "Segment Anything, ViT-H image encoder (636M)")


@register_variant
def mobile_sam() -> VariantSpec:
    return VariantSpec(
        name="mobile_sam",
        family="mobile_sam",
        processing=SAM_PROCESSING,
        decoder_kind="sam",
        embedding_shape=(256, 64, 64),
        checkpoint=CheckpointSpec(
            files=("mobile_sam.pt",),
            url="https://github.com/ChaoningZhang/MobileSAM/tree/master/weights",
        ),
        license="Apache-2.0",
        builder="edge_sam_sdk.exporters.builders:mobile_sam",
        description="MobileSAM: TinyViT-5M encoder distilled from SAM ViT-H, SAM decoder",
    )
