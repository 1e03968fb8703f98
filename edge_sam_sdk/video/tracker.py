"""``Tracker``: streaming video object tracking with constant memory per object.

Frames arrive one at a time (a camera); prompts apply to the next frame passed to
:meth:`Tracker.track`::

    tracker = Tracker(engine)
    tracker.add_prompt(1, points=[[504, 378]], labels=[1])
    for frame in camera:                   # HxWx3 uint8 RGB
        masks = tracker.track(frame)       # {obj_id: HxW bool}

Each frame is decoded as the official predictor would while propagating forward: a prompted
frame is an initial conditioning frame (no memory; its memory is encoded at once, from the
binarized mask), every other frame is tracked with memory. The bank keeps only what later
frames can read: the ``max_cond`` most recent conditioning frames, memories of the last
``num_maskmem - 1`` frames and pointers of the last ``max_obj_ptrs - 1`` frames; pointer
positions are normalised by ``max_obj_ptrs - 1`` (the official rule for videos of 16+ frames).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from .bank import ObjectBank
from .engine import VideoEngine
from .frames import check_frame, model_input
from .predictor import check_obj_id, model_prompt, to_video_res


class Tracker:
    """Streaming tracker over a :class:`VideoEngine`; ``max_cond`` conditioning frames are
    kept per object (the most recent ones)."""

    def __init__(self, engine: VideoEngine, max_cond: int = 4):
        if max_cond < 1:
            raise InputError(f"max_cond must be >= 1, got {max_cond}")
        self.engine = engine
        self.max_cond = max_cond
        self.banks: dict[int, ObjectBank] = {}
        self.prompts: dict[int, tuple[Any, Any, Any]] = {}
        self.frame_index = 0  #: index of the next frame
        self.video_hw: tuple[int, int] | None = None

    def add_prompt(self, obj_id: int, points: Any = None, labels: Any = None, box: Any = None,
                   frame_idx: int | None = None) -> None:
        """Prompt ``obj_id`` (new or tracked) on the next frame, in that frame's pixels.
        ``frame_idx``, if given, must be that next frame's index."""
        obj_id = check_obj_id(obj_id)
        if frame_idx is not None and frame_idx != self.frame_index:
            raise InputError(f"frame {frame_idx} is not loaded: the tracker's next frame is "
                             f"{self.frame_index}; prompts apply to the next frame passed to track()")
        model_prompt(points, labels, box, self.video_hw or (1, 1))  # validates now
        self.prompts[obj_id] = (points, labels, box)

    def remove(self, obj_id: int) -> None:
        obj_id = check_obj_id(obj_id)
        if obj_id not in self.banks and obj_id not in self.prompts:
            known = sorted(set(self.banks) | set(self.prompts))
            raise InputError(f"unknown obj_id {obj_id}; objects: {known}")
        self.banks.pop(obj_id, None)
        self.prompts.pop(obj_id, None)

    def memory_bytes(self) -> dict[int, int]:
        """Bytes of each object's bank (bounded: see the module docstring)."""
        return {obj: bank.nbytes for obj, bank in self.banks.items()}

    def track(self, frame: Any) -> dict[int, np.ndarray]:
        """Track every object on ``frame`` (``HxWx3`` uint8 RGB) -> ``{obj_id: HxW bool}``."""
        frame = check_frame(frame)
        hw = (int(frame.shape[0]), int(frame.shape[1]))
        if self.video_hw is None:
            self.video_hw = hw
        elif hw != self.video_hw:
            raise InputError(f"frame size {hw} differs from the stream's {self.video_hw}")
        if not self.banks and not self.prompts:
            raise InputError("no object to track: call add_prompt(obj_id, ...) first")
        size = self.engine.config.image_size
        prompts = {obj: model_prompt(*raw, hw, size) for obj, raw in self.prompts.items()}
        t = self.frame_index
        feats = self.engine.encode_frame(model_input(frame, self.engine.config.image_size))
        for obj in prompts:
            self.banks.setdefault(obj, ObjectBank())
        result: dict[int, np.ndarray] = {}
        for obj, bank in self.banks.items():
            if obj in prompts:
                out = self.engine.track_step(feats, bank, t, is_init_cond=True, points=prompts[obj],
                                             mask_logits=None, reverse=False, num_frames=None,
                                             run_mem_encoder=False)
                out.maskmem = self.engine.memory_encode(feats, out.low_res, out.score, from_points=True)
                bank.cond[t] = out
            else:
                out = self.engine.track_step(feats, bank, t, is_init_cond=False, points=None,
                                             mask_logits=None, reverse=False, num_frames=None,
                                             run_mem_encoder=True)
                bank.non_cond[t] = out
            result[obj] = to_video_res(out.low_res, hw)[0, 0] > 0
            self._prune(bank, t)
        self.prompts.clear()
        self.frame_index += 1
        return result

    def _prune(self, bank: ObjectBank, t: int) -> None:
        """Drop what frame ``t + 1`` onwards cannot read; low-res logits are not memory."""
        c = self.engine.config
        for frame in sorted(bank.cond)[:-self.max_cond]:
            del bank.cond[frame]
        for frame in [f for f in bank.non_cond if f <= t - (c.max_obj_ptrs - 1)]:
            del bank.non_cond[frame]
        for frame, out in list(bank.non_cond.items()) + list(bank.cond.items()):
            out.low_res = out.low_res[:0]
            if frame in bank.non_cond and frame <= t - (c.num_maskmem - 1):
                out.maskmem = None
