"""Segment everything: automatic mask generation over any bundle (numpy only).

:class:`AutomaticMaskGenerator` (:mod:`.generator`) re-implements segment-anything's
``SamAutomaticMaskGenerator``; :mod:`.mask_ops` holds its mask operations (RLE, boxes, NMS,
stability score, small-region removal).
"""

from .generator import AutomaticMaskGenerator

__all__ = ["AutomaticMaskGenerator"]
