"""The host-owned memory bank of one object and the official slot-selection rule (numpy).

Per object the bank holds, per frame, what the official predictor stores
(``cond_frame_outputs`` / ``non_cond_frame_outputs``): the 256x256 low-res logits, the object
pointer (256), the object score and the memory features (``64x64x64``, kept as bfloat16 bits in
``uint16``: 512 KiB per frame). :func:`select_memory` picks what the memory-attention graph
reads for frame ``f`` (``SAM2Base._prepare_memory_conditioned_features``):

* spatial memories: every conditioning frame (or the ``max_cond`` closest ones) with temporal
  index 6, then ``t_rel = 6 .. 1`` frames before ``f`` (after it in reverse) from the
  non-conditioning outputs, index ``t_rel - 1``; missing frames are skipped;
* object pointers: the conditioning frames not after ``f`` (not before it in reverse) at
  position ``|f - t|``, then ``t_diff = 1 .. max_ptrs - 1`` frames back (ahead in reverse) at
  position ``t_diff``, stopping at the video's ends; ``max_ptrs = min(num_frames, 16)``.

:func:`pad_slots` turns a selection into the fixed-size arrays of a static graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (``uint16``), rounding to nearest even (as torch)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) >> 16).astype(np.uint16)


def from_bf16_bits(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (``uint16``) -> float32 (exact)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


@dataclass
class FrameOutput:
    """What the bank keeps of one object on one frame.

    ``low_res``: ``1x1x256x256`` float32 logits (as returned); ``obj_ptr``: ``256`` float32;
    ``score``: the object score logit; ``maskmem``: ``64x64x64`` bfloat16 bits or ``None``
    until the memory encoder has run (prompted frames wait for the next propagation).
    """

    low_res: np.ndarray
    obj_ptr: np.ndarray
    score: float
    maskmem: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        mem = 0 if self.maskmem is None else self.maskmem.nbytes
        return self.low_res.nbytes + self.obj_ptr.nbytes + mem


@dataclass
class ObjectBank:
    """One object's memory: conditioning and non-conditioning outputs by frame, the outputs of
    prompts not yet encoded into memory (``pending``), its prompts and which frames it was
    tracked on (with the direction)."""

    cond: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    pending_cond: dict[int, FrameOutput] = field(default_factory=dict)
    pending_non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    points: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)  #: frame -> tracked in reverse

    def output(self, frame: int) -> FrameOutput | None:
        """The most recent output on ``frame`` (pending first, as the official lookup)."""
        for d in (self.pending_cond, self.pending_non_cond, self.cond, self.non_cond):
            if frame in d:
                return d[frame]
        return None

    @property
    def nbytes(self) -> int:
        dicts = (self.cond, self.non_cond, self.pending_cond, self.pending_non_cond)
        return sum(o.nbytes for d in dicts for o in d.values())


@dataclass(frozen=True)
class MemorySelection:
    """The memory of one frame: ``spatial`` ``[(frame, tpos_index, output)]`` and ``pointers``
    ``[(frame, position, output)]``, in the official concatenation order; ``max_ptrs`` is the
    pointer-position normaliser plus one."""

    spatial: list[tuple[int, int, FrameOutput]]
    pointers: list[tuple[int, int, FrameOutput]]
    max_ptrs: int


def closest_cond_frames(frame: int, cond: dict[int, FrameOutput], max_cond: int) -> list[int]:
    """``select_closest_cond_frames``: all when ``max_cond`` is -1 or enough; else the closest
    before, the closest at/after, then the temporally closest, up to ``max_cond``."""
    if max_cond == -1 or len(cond) <= max_cond:
        return list(cond)
    chosen: list[int] = []
    before = [t for t in cond if t < frame]
    after = [t for t in cond if t >= frame]
    if before:
        chosen.append(max(before))
    if after:
        chosen.append(min(after))
    rest = sorted((t for t in cond if t not in chosen), key=lambda t: abs(t - frame))
    return chosen + rest[: max_cond - len(chosen)]


def select_memory(bank: ObjectBank, frame: int, reverse: bool, num_frames: int | None,
                  num_maskmem: int = 7, max_obj_ptrs: int = 16, max_cond: int = -1) -> MemorySelection:
    """The official memory of ``frame`` (module docstring). ``num_frames`` None: a stream of
    unknown length (pointer positions normalised by ``max_obj_ptrs - 1``)."""
    selected = closest_cond_frames(frame, bank.cond, max_cond)
    unselected = {t: o for t, o in bank.cond.items() if t not in selected}
    spatial = [(t, num_maskmem - 1, bank.cond[t]) for t in selected]
    for t_pos in range(1, num_maskmem):
        t_rel = num_maskmem - t_pos
        prev = frame + t_rel if reverse else frame - t_rel
        out = bank.non_cond.get(prev, unselected.get(prev))
        if out is not None:
            spatial.append((prev, t_rel - 1, out))
    max_ptrs = max_obj_ptrs if num_frames is None else min(num_frames, max_obj_ptrs)
    pointers = [(t, abs(frame - t), bank.cond[t]) for t in selected
                if (t >= frame if reverse else t <= frame)]
    for t_diff in range(1, max_ptrs):
        t = frame + t_diff if reverse else frame - t_diff
        if t < 0 or (num_frames is not None and t >= num_frames):
            break
        out = bank.non_cond.get(t, unselected.get(t))
        if out is not None:
            pointers.append((t, t_diff, out))
    return MemorySelection(spatial, pointers, max_ptrs)


def memory_feed(sel: MemorySelection, spatial_slots: int | None = None,
                ptr_slots: int | None = None) -> dict[str, np.ndarray]:
    """The memory-attention graph's memory inputs for ``sel``.

    Without slot counts the arrays hold exactly the selected entries (a graph of any size);
    with them they are padded with empty slots (``*_valid`` 0), as a static graph needs.
    ``memory_features`` ``Sx64x64x64`` float32, ``memory_tpos`` ``S`` int64, ``memory_valid``
    ``S``, ``obj_ptrs`` ``Px256``, ``obj_ptr_pos`` ``P`` (position / (max_ptrs - 1)),
    ``obj_ptr_valid`` ``P``. At least one pointer slot is always present.
    """
    s_used, p_used = len(sel.spatial), len(sel.pointers)
    s = s_used if spatial_slots is None else spatial_slots
    p = max(p_used, 1) if ptr_slots is None else ptr_slots
    if s_used > s or p_used > p or s_used == 0:
        raise ValueError(f"memory of {s_used} frames and {p_used} pointers does not fit {s} / {p} slots")
    shape = sel.spatial[0][2].maskmem.shape  # type: ignore[union-attr]
    feats = np.zeros((s, *shape), np.float32)
    tpos = np.zeros(s, np.int64)
    valid = np.zeros(s, np.float32)
    for i, (_, idx, out) in enumerate(sel.spatial):
        assert out.maskmem is not None, "a memory frame without encoded memory"
        feats[i], tpos[i], valid[i] = from_bf16_bits(out.maskmem), idx, 1.0
    ptrs = np.zeros((p, sel.spatial[0][2].obj_ptr.shape[-1]), np.float32)
    pos = np.zeros(p, np.float32)
    pvalid = np.zeros(p, np.float32)
    denom = np.float32(max(sel.max_ptrs - 1, 1))
    for i, (_, position, out) in enumerate(sel.pointers):
        ptrs[i], pos[i], pvalid[i] = out.obj_ptr, np.float32(position) / denom, 1.0
    return {"memory_features": feats, "memory_tpos": tpos, "memory_valid": valid,
            "obj_ptrs": ptrs, "obj_ptr_pos": pos, "obj_ptr_valid": pvalid}
