"""Torch re-implementations of each model family, one file per family, loading official checkpoints.

Shared SAM parts: :mod:`.layers` (small blocks), :mod:`.attention`, :mod:`.sam_decoder`
(prompt encoder, two-way transformer, mask decoder), :mod:`.cross_attention` (its cheaper
export form) and :mod:`.sam_model` (``SamModel`` and the encoder/decoder export graphs).
Image encoders: :mod:`.sam_vit` (SAM ViT-B/L/H, SlimSAM), :mod:`.tiny_vit` (MobileSAM,
TinySAM), :mod:`.rep_vit` (EdgeSAM, RepViT-SAM), :mod:`.efficientvit` (EfficientViT-SAM),
:mod:`.nanosam` (ResNet-18); whole models with their own decoders: :mod:`.efficient_sam`,
:mod:`.sam2` (+ :mod:`.hiera`). :mod:`.builders` holds the builders the registry names.
"""
