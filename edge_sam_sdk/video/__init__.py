"""Video object tracking (SAM 2.1): stateless graphs, a host-owned memory bank (numpy).

* :class:`VideoPredictor` -- ``SAM2VideoPredictor``'s API and semantics over a whole video
  (``init_state``, ``add_new_points_or_box``, ``propagate_in_video``, ``reset_state``).
* :class:`Tracker` -- streaming ``track(frame) -> {obj_id: mask}`` with constant memory.
* :class:`VideoEngine` -- one tracking step over the four graphs; :mod:`.bank` -- the memory
  bank and the official slot-selection rule. The contract is documented in ``docs/video.md``.
"""

from __future__ import annotations

from .engine import VideoConfig, VideoEngine
from .predictor import VideoPredictor, VideoState
from .tracker import Tracker

__all__ = ["Tracker", "VideoConfig", "VideoEngine", "VideoPredictor", "VideoState"]
