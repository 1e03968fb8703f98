"""``VideoPredictor``: the official ``SAM2VideoPredictor``'s API and semantics, host-side.

Usage (logits are ``N x 1 x H x W`` float32 at the video's size, one row per object in the
order objects were first prompted; threshold at > 0)::

    predictor = VideoPredictor.from_torch("sam2_1_hiera_tiny", "sam2.1_hiera_tiny.pt")
    state = predictor.init_state("frames/")          # folder of 00000.jpg.., a video file, frames
    predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=[[504, 378]], labels=[1])
    for frame_idx, obj_ids, logits in predictor.propagate_in_video(state):
        masks = logits[:, 0] > 0

Per object the predictor keeps an :class:`~.bank.ObjectBank`; frames are decoded with the
four stateless graphs of :class:`~.engine.VideoEngine`. As officially: a prompt on a frame the
object was not tracked on is an initial conditioning frame (decoded without memory); a prompt
on a tracked frame is a correction (decoded with memory and the frame's previous logits),
kept as a conditioning frame only with ``add_all_frames_to_correct_as_cond=True``; memories of
prompted frames are encoded when the next propagation starts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import resize as R
from ..errors import InputError
from .bank import FrameOutput, ObjectBank
from .engine import NO_OBJ_SCORE, FrameFeatures, VideoEngine
from .frames import frame_files, iter_frames, model_input, read_image


@dataclass
class VideoState:
    """One video's session: its frames (paths, read on demand, or decoded frames), size, the
    objects' banks in prompt order, and a small cache of frame features."""

    frames: list[Any]
    video_hw: tuple[int, int]
    banks: dict[int, ObjectBank] = field(default_factory=dict)
    cache: OrderedDict[int, FrameFeatures] = field(default_factory=OrderedDict)
    #: per object, the non-conditioning frames that had prompts (see ``reuse_prompted_frames``)
    prompted: dict[int, set[int]] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def obj_ids(self) -> list[int]:
        return list(self.banks)

    def frame(self, idx: int) -> np.ndarray:
        item = self.frames[idx]
        return read_image(item) if isinstance(item, Path) else item

    def memory_bytes(self) -> dict[int, int]:
        """Bytes held by each object's bank."""
        return {obj: bank.nbytes for obj, bank in self.banks.items()}


def check_obj_id(obj_id: Any) -> int:
    if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)):
        raise InputError(f"obj_id must be an int, got {obj_id!r}")
    return int(obj_id)


def model_prompt(points: Any, labels: Any, box: Any, video_hw: tuple[int, int],
             image_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Frame-pixel prompts -> model-frame ``Nx2`` float32 coords and ``N`` labels (box
    corners first, labels 2 and 3)."""
    if (points is None) != (labels is None):
        raise InputError("points and labels must be given together")
    if points is None and box is None:
        raise InputError("give points and labels, or a box")
    pts = np.zeros((0, 2), np.float32) if points is None else np.asarray(points, np.float32)
    lab = np.zeros(0, np.float32) if labels is None else np.asarray(labels, np.float32)
    if pts.ndim != 2 or pts.shape[1] != 2 or lab.shape != (pts.shape[0],):
        raise InputError(f"points must be Nx2 with N labels, got {pts.shape} and {lab.shape}")
    if not np.isin(lab, (0, 1)).all():
        raise InputError(f"point labels must be 1 (positive) or 0 (negative), got {lab.tolist()}")
    if box is not None:
        b = np.asarray(box, np.float32)
        if b.shape != (4,):
            raise InputError(f"box must be [x0, y0, x1, y1], got shape {b.shape}")
        pts = np.concatenate([b.reshape(2, 2), pts])
        lab = np.concatenate([np.array([2, 3], np.float32), lab])
    if not np.isfinite(pts).all():
        raise InputError("prompt coordinates must be finite")
    h, w = video_hw
    size = np.float32(image_size)
    return (pts / np.array([w, h], np.float32)) * size, lab


def to_video_res(low_res: np.ndarray, video_hw: tuple[int, int]) -> np.ndarray:
    """``N x 1 x L x L`` logits -> ``N x 1 x H x W`` (bilinear, align_corners False, as torch)."""
    size = low_res.shape[-1]
    ry = R.banded(R.matrix(size, video_hw[0], "torch_bilinear"))
    rx = R.banded(R.matrix(size, video_hw[1], "torch_bilinear"))
    return R.apply_banded(R.apply_banded(np.ascontiguousarray(low_res, np.float32), ry, -2), rx, -1)


class VideoPredictor:
    """Track objects through a video with prompts on any frames (official semantics).

    ``cache_frames``: how many frames' features to keep (the official predictor keeps one and
    recomputes; results do not depend on it).
    """

    def __init__(self, engine: VideoEngine, add_all_frames_to_correct_as_cond: bool = False,
                 cache_frames: int = 2, reuse_prompted_frames: bool | None = None):
        self.engine = engine
        #: the batched legacy predictor (EdgeTAM's): propagation yields a prompted
        #: non-conditioning frame's stored output instead of tracking that frame again
        #: (None: as the engine's video contract says)
        self.reuse_prompted_frames = (engine.config.reuse_prompted_frames if reuse_prompted_frames is None
                                      else reuse_prompted_frames)
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.cache_frames = max(1, int(cache_frames))

    @classmethod
    def from_torch(cls, variant: str = "sam2_1_hiera_tiny", checkpoint: str = "synthetic:0",
                   **kwargs: Any) -> VideoPredictor:
        """On the torch reference backend (``export`` extra) with an official checkpoint path or
        ``synthetic:SEED``."""
        from .reference import torch_engine

        return cls(torch_engine(variant, checkpoint), **kwargs)

    # ------------------------------------------------------------------ state
    def init_state(self, video: Any) -> VideoState:
        """A session on ``video``: a folder of frames named by index (read on demand), a video
        file (``video`` extra), or an iterable of ``HxWx3`` uint8 RGB frames or image paths."""
        frames: list[Any]
        if isinstance(video, (str, Path)) and Path(video).is_dir():
            frames = frame_files(Path(video))
            first = read_image(frames[0])
        else:
            frames = list(iter_frames(video))
            if not frames:
                raise InputError("the video has no frames")
            first = frames[0]
            if any(f.shape != first.shape for f in frames):
                raise InputError("all frames of a video must have the same size")
        return VideoState(frames, (int(first.shape[0]), int(first.shape[1])))

    def reset_state(self, state: VideoState) -> None:
        """Forget every object, prompt and memory (the frames and their features stay)."""
        state.banks.clear()
        state.prompted.clear()

    def remove_object(self, state: VideoState, obj_id: int) -> None:
        obj_id = check_obj_id(obj_id)
        if obj_id not in state.banks:
            raise InputError(f"unknown obj_id {obj_id}; objects: {state.obj_ids}")
        del state.banks[obj_id]
        state.prompted.pop(obj_id, None)

    def features(self, state: VideoState, frame_idx: int) -> FrameFeatures:
        feats = state.cache.get(frame_idx)
        if feats is None:
            image = model_input(state.frame(frame_idx), self.engine.config.image_size)
            feats = self.engine.encode_frame(image)
            state.cache[frame_idx] = feats
            while len(state.cache) > self.cache_frames:
                state.cache.popitem(last=False)
        else:
            state.cache.move_to_end(frame_idx)
        return feats

    def _check_frame(self, state: VideoState, frame_idx: Any) -> int:
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, (int, np.integer)):
            raise InputError(f"frame_idx must be an int, got {frame_idx!r}")
        if not 0 <= int(frame_idx) < state.num_frames:
            raise InputError(f"frame index {frame_idx} out of range: the video has {state.num_frames} "
                             f"frames (0..{state.num_frames - 1})")
        return int(frame_idx)

    # ------------------------------------------------------------------ prompts
    def add_new_points_or_box(self, state: VideoState, frame_idx: int, obj_id: int, points: Any = None,
                              labels: Any = None, clear_old_points: bool = True,
                              box: Any = None) -> tuple[int, list[int], np.ndarray]:
        """Prompt object ``obj_id`` on ``frame_idx`` (pixels of the frame; labels 1/0; box
        ``[x0, y0, x1, y1]``) -> ``(frame_idx, obj_ids, logits N x 1 x H x W)`` of that frame."""
        frame_idx = self._check_frame(state, frame_idx)
        obj_id = check_obj_id(obj_id)
        if box is not None and not clear_old_points:
            raise InputError("a box must come first: use clear_old_points=True with a box")
        coords, labels_arr = model_prompt(points, labels, box, state.video_hw, self.engine.config.image_size)
        bank = state.banks.setdefault(obj_id, ObjectBank())
        if not clear_old_points and frame_idx in bank.points:
            old_c, old_l = bank.points[frame_idx]
            coords, labels_arr = np.concatenate([old_c, coords]), np.concatenate([old_l, labels_arr])
        bank.points[frame_idx] = (coords, labels_arr)
        is_init_cond = frame_idx not in bank.tracked
        reverse = False if is_init_cond else bank.tracked[frame_idx]
        is_cond = is_init_cond or self.add_all_frames_to_correct_as_cond
        pending = bank.pending_cond if is_cond else bank.pending_non_cond
        prev = pending.get(frame_idx) or bank.cond.get(frame_idx) or bank.non_cond.get(frame_idx)
        out = self.engine.track_step(
            self.features(state, frame_idx), bank, frame_idx, is_init_cond=is_init_cond,
            points=(coords, labels_arr), mask_logits=None if prev is None else prev.low_res,
            reverse=reverse, num_frames=state.num_frames, run_mem_encoder=False)
        pending[frame_idx] = out
        rows = []
        for b in state.banks.values():
            found = (b.pending_cond if is_cond else b.pending_non_cond).get(frame_idx)
            found = found or b.cond.get(frame_idx) or b.non_cond.get(frame_idx)
            rows.append(self._low_res(found))
        return frame_idx, state.obj_ids, to_video_res(np.concatenate(rows), state.video_hw)

    @staticmethod
    def _low_res(out: FrameOutput | None) -> np.ndarray:
        return np.full((1, 1, 256, 256), NO_OBJ_SCORE, np.float32) if out is None else out.low_res

    # ------------------------------------------------------------------ propagation
    def _preflight(self, state: VideoState) -> None:
        if not state.banks:
            raise InputError("no object has prompts: call add_new_points_or_box first")
        for obj_id, bank in state.banks.items():
            for pending, target in ((bank.pending_non_cond, bank.non_cond), (bank.pending_cond, bank.cond)):
                for frame_idx, out in pending.items():
                    if pending is bank.pending_non_cond:
                        state.prompted.setdefault(obj_id, set()).add(frame_idx)
                    if out.maskmem is None:
                        out.maskmem = self.engine.memory_encode(self.features(state, frame_idx), out.low_res,
                                                                out.score, from_points=True)
                    target[frame_idx] = out
                pending.clear()
            if not bank.cond:
                raise InputError(f"object {obj_id} has no prompt on a frame it was not tracked on; "
                                 "add points or a box for it first")
            for frame_idx in bank.cond:
                bank.non_cond.pop(frame_idx, None)

    def propagate_in_video(self, state: VideoState, start_frame_idx: int | None = None,
                           max_frame_num_to_track: int | None = None,
                           reverse: bool = False) -> Iterator[tuple[int, list[int], np.ndarray]]:
        """Track every object from ``start_frame_idx`` (default: the earliest conditioning
        frame) to the last frame (the first with ``reverse``); yields ``(frame_idx, obj_ids,
        logits N x 1 x H x W)`` per frame."""
        self._preflight(state)
        n = state.num_frames
        if start_frame_idx is None:
            start = min(t for bank in state.banks.values() for t in bank.cond)
        else:
            start = self._check_frame(state, start_frame_idx)
        count = n if max_frame_num_to_track is None else int(max_frame_num_to_track)
        if reverse:
            order = range(start, max(start - count, 0) - 1, -1) if start > 0 else range(0)
        else:
            order = range(start, min(start + count, n - 1) + 1)
        for frame_idx in order:
            rows = []
            for obj_id, bank in state.banks.items():
                out = bank.cond.get(frame_idx)
                if out is None and self.reuse_prompted_frames and frame_idx in state.prompted.get(obj_id, ()):
                    out = bank.non_cond.get(frame_idx)
                if out is None:
                    out = self.engine.track_step(
                        self.features(state, frame_idx), bank, frame_idx, is_init_cond=False, points=None,
                        mask_logits=None, reverse=reverse, num_frames=n, run_mem_encoder=True)
                    bank.non_cond[frame_idx] = out
                bank.tracked[frame_idx] = reverse
                rows.append(out.low_res)
            yield frame_idx, state.obj_ids, to_video_res(np.concatenate(rows), state.video_hw)
