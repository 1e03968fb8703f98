"""Core ML fp16 policy: which MIL ops stay in fp32 under ``--precision fp16``, and why.

coremltools' ``FP16ComputePrecision(op_selector=...)`` asks, op by op in program order,
whether to run it in fp16; :class:`Fp16Selector` answers no for

- *seeds*, ops known to overflow or lose too much in fp16 in these encoders and decoders
  (:data:`FP32_OP_TYPES`): normalizations (LayerNorm, and the reductions, squares and
  roots of hand-written norms such as LayerNorm2d and GroupNorm(1): squares of activations
  above ~256 exceed fp16's 65504), softmax, the prompt encoder's sin/cos Fourier features,
  and every ``matmul`` of two activations (attention scores ``q @ k^T`` and ``attn @ v``,
  EfficientViT's ReLU linear attention ``(v @ relu(k)^T) @ relu(q)`` with its sums over
  H*W positions and its 1e-15 normalizer, the decoder's hypernetwork x upscaled product);
- elementwise and layout ops (:data:`FOLLOWERS`) that take a kept op's output, so the chain
  between seeds stays fp32 (score scaling and biases before softmax, ``x - mean`` and
  ``+ eps`` inside norms, the linear attention's division);
- the prompt coordinates' region (:data:`FP32_INPUTS`): ops whose every non-constant input
  derives from ``point_coords`` (coordinates up to 1024, where fp16's spacing is 0.5-1 px,
  feed the random Fourier features).

Convolutions, linear layers, GELU and the residual stream run in fp16. Graph inputs and
outputs stay float32 either way.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

#: Seed op types kept in fp32, with the reason (docs/targets/coreml.md lists this table).
FP32_OP_TYPES: dict[str, str] = {
    "layer_norm": "normalization: variance of activations overflows fp16",
    "instance_norm": "normalization: variance of activations overflows fp16",
    "l2_norm": "normalization: sum of squares overflows fp16",
    "reduce_mean": "statistics of hand-written norms (LayerNorm2d, GroupNorm(1)) and spatial means",
    "reduce_sum": "statistics of hand-written norms, sums over large maps",
    "reduce_sum_square": "sum of squares overflows fp16",
    "reduce_l2_norm": "sum of squares overflows fp16",
    "pow": "squares inside norms overflow fp16",
    "square": "squares inside norms overflow fp16",
    "sqrt": "root of a variance kept in fp32",
    "rsqrt": "root of a variance kept in fp32",
    "softmax": "attention probabilities",
    "sin": "prompt Fourier features: arguments of tens of radians lose ~1e-2 in fp16",
    "cos": "prompt Fourier features: arguments of tens of radians lose ~1e-2 in fp16",
}

#: Ops that stay fp32 when any non-constant input comes from a kept op.
FOLLOWERS = frozenset({
    "add", "sub", "mul", "real_div", "maximum", "minimum", "relu", "select", "clip",
    "reshape", "transpose", "slice_by_index", "slice_by_size", "concat", "squeeze",
    "expand_dims", "split", "tile", "matmul",
})

#: Graph inputs whose region stays fp32 (every op fed only by them, constants and that region).
FP32_INPUTS = frozenset({"point_coords"})

#: Ops that never start or carry an fp32 region (weight-heavy compute stays fp16).
_NEVER_REGION = frozenset({"conv", "conv_transpose", "shape"})


class Fp16Selector:
    """``op_selector`` for ``FP16ComputePrecision``: ``True`` runs the op in fp16.

    Decisions are remembered by op name (the pass visits ops in program order, so an op's
    producers are decided first); ``kept`` counts the fp32 decisions per op type.
    """

    def __init__(self) -> None:
        self._kept: set[str] = set()
        self._region: set[str] = set()
        self.kept: Counter[str] = Counter()

    def _sources(self, op: Any) -> tuple[list[bool], list[bool]]:
        """Per non-constant float input: (from a kept op, from the coordinates' region).

        Integer and boolean inputs (shapes, masks) carry no precision and are skipped.
        """
        from coremltools.converters.mil.mil import types

        kept, region = [], []
        for value in op.inputs.values():
            for var in value if isinstance(value, (list, tuple)) else [value]:
                if not types.is_float(getattr(var, "dtype", None)):
                    continue
                producer = getattr(var, "op", None)
                if producer is None:  # a graph input
                    name = getattr(var, "name", "")
                    kept.append(False)
                    region.append(name in FP32_INPUTS)
                elif producer.op_type == "const":
                    continue
                else:
                    kept.append(producer.name in self._kept)
                    region.append(producer.name in self._region)
        return kept, region

    def keep_fp32(self, op: Any) -> bool:
        """Decide (and remember) whether ``op`` stays in fp32."""
        kind = op.op_type
        if kind in ("const", "cast"):
            return False
        kept, region = self._sources(op)
        in_region = bool(region) and all(region) and kind not in _NEVER_REGION
        keep = (kind in FP32_OP_TYPES
                or (kind == "matmul" and len(kept) == 2)
                or (kind in FOLLOWERS and any(kept))
                or in_region)
        if in_region:
            self._region.add(op.name)
        if keep:
            self._kept.add(op.name)
            self.kept[kind] += 1
        return keep

    def __call__(self, op: Any) -> bool:
        return not self.keep_fp32(op)


_FLOAT_TYPES = {"FLOAT32": "fp32", "FLOAT16": "fp16"}
_BOOKKEEPING = frozenset({"const", "cast", "shape", "gather", "range_1d"})


def op_precisions(spec: Any) -> dict[str, dict[str, int]]:
    """Count the saved mlprogram's compute ops by output precision: ``{"fp32": {type: n}, "fp16": ...}``.

    ``spec`` is ``MLModel.get_spec()``; constants and casts are left out.
    """
    from coremltools.proto import MIL_pb2

    counts: dict[str, Counter[str]] = {"fp32": Counter(), "fp16": Counter()}
    names = {v: k for k, v in MIL_pb2.DataType.items()}
    for function in spec.mlProgram.functions.values():
        block = function.block_specializations[function.opset]
        for op in block.operations:
            if op.type in _BOOKKEEPING or op.type.startswith("constexpr_") or not op.outputs:
                continue
            value = op.outputs[0].type
            if not value.HasField("tensorType"):
                continue
            kind = _FLOAT_TYPES.get(names.get(value.tensorType.dataType, ""))
            if kind:
                counts[kind][op.type] += 1
    return {k: dict(sorted(v.items())) for k, v in counts.items()}
