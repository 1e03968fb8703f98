"""edgesam: efficient Segment Anything variants on device, with identical results everywhere.

    from edge_sam_sdk import load_bundle, SamPredictor
    predictor = SamPredictor(load_bundle("bundles/mobile_sam"))
"""

from __future__ import annotations

from . import variants  # noqa: F401  (registers the built-in variants)
from .bundle import Bundle, load_bundle
from .errors import (
    BackendNotAvailableError,
    BundleError,
    CheckpointError,
    EdgeSamError,
    InputError,
    UnknownVariantError,
)
from .everything import AutomaticMaskGenerator
from .predictor import SamPredictor
from .registry import VariantSpec, get_variant, list_variants, register_variant

__version__ = "0.1.0"

__all__ = [
    "AutomaticMaskGenerator", "BackendNotAvailableError", "Bundle", "BundleError", "CheckpointError",
    "EdgeSamError", "InputError", "SamPredictor", "UnknownVariantError", "VariantSpec", "__version__",
    "get_variant", "list_variants", "load_bundle", "register_variant",
]
