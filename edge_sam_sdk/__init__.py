"""edgesam: efficient Segment Anything variants on device, with identical results everywhere."""

from __future__ import annotations

__version__ = "0.1.0"
