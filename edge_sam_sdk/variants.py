"""Built-in variant registrations (pure data; torch models are named by ``builder``)."""

from __future__ import annotations

import dataclasses
import functools

from .processing import ProcessingSpec
from .registry import CheckpointPart, CheckpointSpec, VariantSpec, VideoSpec, register_variant

_SAM_URL = "https://github.com/facebookresearch/segment-anything#model-checkpoints"
_MOBILE_SAM_PT = "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt"


#: sha256 of the official files as published (cross-checked against several public sources).
_SHA256 = {
    "sam_vit_b_01ec64.pth": "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
    "sam_vit_l_0b3195.pth": "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
    "sam_vit_h_4b8939.pth": "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
    "mobile_sam.pt": "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
    "sam2.1_hiera_tiny.pt": "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
    "sam2.1_hiera_small.pt": "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",
    "sam2.1_hiera_base_plus.pt": "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",
    "sam2.1_hiera_large.pt": "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",
}

#: Byte counts of the official files (same sources; the fetcher checks them before hashing).
_SIZE = {
    "sam_vit_b_01ec64.pth": 375_042_383,
    "sam_vit_l_0b3195.pth": 1_249_524_607,
    "sam_vit_h_4b8939.pth": 2_564_550_879,
    "mobile_sam.pt": 40_728_226,
    "sam2.1_hiera_tiny.pt": 156_008_466,
    "sam2.1_hiera_small.pt": 184_416_285,
    "sam2.1_hiera_base_plus.pt": 323_606_802,
    "sam2.1_hiera_large.pt": 898_083_611,
}


def _official_sha256(file: str) -> dict[str, str]:
    return {file: _SHA256[file]} if file in _SHA256 else {}


def _official_size(file: str) -> dict[str, int]:
    return {file: _SIZE[file]} if file in _SIZE else {}


def _sam_vit(size: str, file: str, description: str) -> VariantSpec:
    return VariantSpec(
        name=f"sam_vit_{size}",
        family="sam",
        checkpoint=CheckpointSpec(files=(file,), url=_SAM_URL, sha256=_official_sha256(file),
                                  size=_official_size(file),
                                  downloads={file: f"https://dl.fbaipublicfiles.com/segment_anything/{file}"}),
        license="Apache-2.0",
        builder=f"edge_sam_sdk.exporters.models.builders:sam_vit_{size}",
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


def _slimsam(ratio: int, dims: str) -> VariantSpec:
    return VariantSpec(
        name=f"slimsam_{ratio}",
        family="slimsam",
        # Published on Google Drive only (no direct download): fetched by hand.
        checkpoint=CheckpointSpec(files=(f"SlimSAM-{ratio}-uniform.pth",),
                                  url="https://github.com/czg1225/SlimSAM#model-checkpoints"),
        license="Apache-2.0",
        builder=f"edge_sam_sdk.exporters.models.builders:slimsam_{ratio}",
        description=f"SlimSAM-{ratio} (uniform): SAM ViT-B pruned to {dims}",
    )


@register_variant
def slimsam_50() -> VariantSpec:
    return _slimsam(50, "embed 384, MLP 1536")


@register_variant
def slimsam_77() -> VariantSpec:
    return _slimsam(77, "embed 168, MLP 696")


@register_variant
def tinysam() -> VariantSpec:
    return VariantSpec(
        name="tinysam",
        family="tinysam",
        checkpoint=CheckpointSpec(
            files=("tinysam_42.3.pth", "tinysam.pth"), url="https://github.com/xinghaochen/TinySAM",
            downloads={f: f"https://github.com/xinghaochen/TinySAM/releases/download/{tag}/{f}"
                       for f, tag in (("tinysam_42.3.pth", "3.0"), ("tinysam.pth", "1.0"))}),
        license="Apache-2.0",
        builder="edge_sam_sdk.exporters.models.builders:tinysam",
        description="TinySAM: TinyViT-5M (MobileSAM's architecture), full-stage distillation; "
                    "always returns 3 masks",
        single_mask_tokens=(1, 2, 3),
    )


@register_variant
def mobile_sam() -> VariantSpec:
    return VariantSpec(
        name="mobile_sam",
        family="mobile_sam",
        checkpoint=CheckpointSpec(
            files=("mobile_sam.pt",),
            url="https://github.com/ChaoningZhang/MobileSAM/tree/master/weights",
            downloads={"mobile_sam.pt": _MOBILE_SAM_PT}, sha256=_official_sha256("mobile_sam.pt"),
            size=_official_size("mobile_sam.pt"),
        ),
        license="Apache-2.0",
        builder="edge_sam_sdk.exporters.models.builders:mobile_sam",
        description="MobileSAM: TinyViT-5M encoder distilled from SAM ViT-H, SAM decoder",
    )


@register_variant
def nanosam() -> VariantSpec:
    return VariantSpec(
        name="nanosam",
        family="nanosam",
        checkpoint=CheckpointSpec(
            files=("checkpoint.pth", "mobile_sam.pt"),
            url="https://github.com/NVIDIA-AI-IOT/nanosam (encoder: tools/train.py output; "
                "decoder: MobileSAM's mobile_sam.pt)",
            # NVIDIA publishes the encoder as ONNX only: checkpoint.pth has no download.
            downloads={"mobile_sam.pt": _MOBILE_SAM_PT}, sha256=_official_sha256("mobile_sam.pt"),
            size=_official_size("mobile_sam.pt"),
            parts=(CheckpointPart("checkpoint.pth", wrapper="model", prefix="image_encoder."),
                   CheckpointPart("mobile_sam.pt", keep=("prompt_encoder.", "mask_decoder."))),
        ),
        license="Apache-2.0",
        builder="edge_sam_sdk.exporters.models.builders:nanosam",
        description="NanoSAM: ResNet-18 encoder distilled from MobileSAM, MobileSAM decoder; "
                    "returns all 4 masks, no padding point",
        processing=ProcessingSpec(resize="longest_side_floor", interpolation="pil_bicubic",
                                  pad_point="never", postprocess="crop_low_res"),
        multimask_tokens=(0, 1, 2, 3),
    )


def _edge_sam(name: str, file: str, description: str) -> VariantSpec:
    return VariantSpec(
        name=name,
        family="edge_sam",
        checkpoint=CheckpointSpec(
            files=(file,),
            url="https://github.com/chongzhou96/EdgeSAM#checkpoints",
            downloads={file: f"https://huggingface.co/spaces/chongzhou/EdgeSAM/resolve/main/weights/{file}"},
            ignore=("fpn.", "rpn_head."),  # only in RPN builds; the official loader is non-strict
        ),
        license="NTU S-Lab License 1.0",
        builder=f"edge_sam_sdk.exporters.models.builders:{name}",
        description=description,
    )


@register_variant
def edge_sam() -> VariantSpec:
    return _edge_sam("edge_sam", "edge_sam.pth",
                     "EdgeSAM: RepViT-m1 + FPN encoder (bicubic fusion), prompt-in-the-loop distilled; "
                     "rank masks with use_stability_score=True")


@register_variant
def edge_sam_3x() -> VariantSpec:
    return _edge_sam("edge_sam_3x", "edge_sam_3x.pth",
                     "EdgeSAM-3x: EdgeSAM trained on 3x the images (same architecture)")


@register_variant
def repvit_sam() -> VariantSpec:
    return VariantSpec(
        name="repvit_sam",
        family="repvit_sam",
        checkpoint=CheckpointSpec(
            files=("repvit_sam.pt",), url="https://github.com/THU-MIG/RepViT/tree/main/sam",
            downloads={"repvit_sam.pt": "https://github.com/THU-MIG/RepViT/releases/download/v1.0/repvit_sam.pt"}),
        license="Apache-2.0",
        builder="edge_sam_sdk.exporters.models.builders:repvit_sam",
        description="RepViT-SAM: RepViT-m2.3 encoder (stride 16), SAM decoder",
    )


def _efficientvit_sam(size: str, input_size: int, description: str) -> VariantSpec:
    file = f"efficientvit_sam_{size}.pt"
    return VariantSpec(
        name=f"efficientvit_sam_{size}",
        family="efficientvit_sam",
        checkpoint=CheckpointSpec(
            files=(file,), url="https://huggingface.co/mit-han-lab/efficientvit-sam",
            downloads={file: f"https://huggingface.co/mit-han-lab/efficientvit-sam/resolve/main/{file}"},
            wrapper="state_dict", wrapper_optional=True,
        ),
        license="Apache-2.0",
        builder=f"edge_sam_sdk.exporters.models.builders:efficientvit_sam_{size}",
        description=description,
        # L-series encoders see 512 px; prompts and post-processing stay in SAM's 1024 frame.
        processing=ProcessingSpec(input_size=input_size, prompt_frame=1024),
    )


#: EfficientViT-SAM sizes: encoder input and description (one registration each).
_EFFICIENTVIT_SAM = {
    "l0": (512, "EfficientViT-SAM-L0: EfficientViT-L0 (ReLU linear attention), 512 px; prompts in the "
                "1024 frame"),
    "l1": (512, "EfficientViT-SAM-L1: EfficientViT-L1, 512 px"),
    "l2": (512, "EfficientViT-SAM-L2: EfficientViT-L2, 512 px"),
    "xl0": (1024, "EfficientViT-SAM-XL0: EfficientViT-XL0, 1024 px"),
    "xl1": (1024, "EfficientViT-SAM-XL1: EfficientViT-XL1, 1024 px"),
}
for _size, (_px, _text) in _EFFICIENTVIT_SAM.items():
    register_variant(functools.partial(_efficientvit_sam, _size, _px, _text))


_EFFICIENT_SAM_RAW = "https://github.com/yformer/EfficientSAM/raw/main/weights"


def _efficient_sam(size: str, description: str) -> VariantSpec:
    file = f"efficient_sam_vit{size}.pt"
    zipped = (file,) if size == "s" else ()  # over GitHub's 100 MB limit: the repository holds a zip
    return VariantSpec(
        name=f"efficient_sam_vit{size}",
        family="efficient_sam",
        checkpoint=CheckpointSpec(files=(file,), wrapper="model",
                                  url="https://github.com/yformer/EfficientSAM/tree/main/weights "
                                      "(efficient_sam_vits.pt ships zipped: unzip it first)",
                                  downloads={file: f"{_EFFICIENT_SAM_RAW}/{file}" + ".zip" * len(zipped)},
                                  zipped=zipped),
        license="Apache-2.0",
        builder=f"edge_sam_sdk.exporters.models.efficient_sam:efficient_sam_vit{size}",
        description=description,
        decoder_kind="efficient_sam",
        # Stretch to 1024x1024 with torch bilinear (no antialias) on the float image; exactly
        # 6 prompt points, padded with (-1, -1) labelled -1; no mask input; bicubic upscaling.
        processing=ProcessingSpec(resize="stretch", interpolation="torch_bilinear", pad_point="never",
                                  max_points=6, pad_coord=-1.0, postprocess="resize",
                                  mask_interpolation="torch_bicubic"),
    )


@register_variant
def efficient_sam_vitt() -> VariantSpec:
    return _efficient_sam("t", "EfficientSAM ViT-Ti: SAMI-pretrained plain ViT (10M), no mask prompt")


@register_variant
def efficient_sam_vits() -> VariantSpec:
    return _efficient_sam("s", "EfficientSAM ViT-S: SAMI-pretrained plain ViT (26M), no mask prompt")


def _sam2(size: str, description: str) -> VariantSpec:
    file = f"sam2.1_hiera_{size}.pt"
    return VariantSpec(
        name=f"sam2_1_hiera_{size}",
        family="sam2",
        checkpoint=CheckpointSpec(files=(file,), wrapper="model", sha256=_official_sha256(file),
                                  size=_official_size(file),
                                  url="https://github.com/facebookresearch/sam2#download-checkpoints",
                                  downloads={file: f"https://dl.fbaipublicfiles.com/segment_anything_2/092824/{file}"}),
        license="Apache-2.0",
        builder=f"edge_sam_sdk.exporters.models.sam2:sam2_1_hiera_{size}",
        description=description,
        decoder_kind="sam2",
        # SAM2ImagePredictor: stretch with antialiased bilinear on the float image, box corners
        # first and a padding point always, masks resized straight from 256x256, returned
        # low-res logits clamped to [-32, 32].
        processing=ProcessingSpec(resize="stretch", interpolation="torch_bilinear_aa", pad_point="always",
                                  box_first=True, postprocess="resize", low_res_clamp=32.0),
        video=VideoSpec(),
    )


#: SAM 2.1 sizes (image mode), one registration each.
_SAM2_SIZES = {
    "tiny": "SAM 2.1 Hiera-T (image mode): multi-scale Hiera + FPN, high-res decoder features",
    "small": "SAM 2.1 Hiera-S (image mode)",
    "base_plus": "SAM 2.1 Hiera-B+ (image mode)",
    "large": "SAM 2.1 Hiera-L (image mode)",
}
for _size, _text in _SAM2_SIZES.items():
    register_variant(functools.partial(_sam2, _size, _text))


@register_variant
def edgetam() -> VariantSpec:
    """EdgeTAM (image mode): SAM 2's decoder and processing on a timm RepViT-M1 trunk."""
    base = _sam2("tiny", "")
    return dataclasses.replace(
        base, name="edgetam",
        checkpoint=CheckpointSpec(files=("edgetam.pt",), wrapper="model",
                                  url="https://github.com/facebookresearch/EdgeTAM/tree/main/checkpoints/edgetam.pt"),
        builder="edge_sam_sdk.exporters.models.edgetam:edgetam",
        video=VideoSpec(memory_shape=(512, 64), reuse_prompted_frames=True,
                        unused_inputs=("obj_ptr_pos", "object_score_logits"),
                        graphs="edge_sam_sdk.exporters.models.edgetam:video_graphs"),
        description="EdgeTAM (image mode): RepViT-M1 trunk + FPN, SAM 2 decoder with high-res features")
