"""TFLite / LiteRT backend (extra ``tflite``): ``ai_edge_litert`` first, ``tflite_runtime`` fallback.

A ``.tflite`` graph of this SDK holds one or more *signatures* with static shapes (written
by ``edge_sam_sdk.exporters.targets.tflite.export``): the encoder one, the decoder one per prompt
point count ``N`` (``points_0`` .. ``points_16`` by default), each with batch 1. ``run``
picks the signature whose input shapes equal the feed's; a feed with a prompt batch
``B > 1`` runs the matching batch-1 signature once per row (inputs whose leading dimension
is ``B``; ``image_embeddings`` ``1x...`` is shared) and concatenates the outputs along
axis 0. Prompts of one batch never interact in the decoder, so this is exact. A feed no
signature takes raises ``InputError`` listing the shapes the model accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .protocol import check_feed


def interpreter_module() -> Any:
    """``ai_edge_litert.interpreter``, else ``tflite_runtime.interpreter``; ImportError if neither."""
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        from tflite_runtime import interpreter  # type: ignore[no-redef]
    return interpreter


class _Signature:
    """One signature: its runner, input shapes by name and output names in graph order."""

    def __init__(self, key: str, runner: Any):
        self.key = key
        self.runner = runner
        details = runner.get_input_details()
        ordered = sorted(details.items(), key=lambda kv: kv[1]["index"])
        self.inputs = [name for name, _ in ordered]
        self.shapes = {name: tuple(int(s) for s in d["shape"]) for name, d in ordered}
        self.dtypes = {name: np.dtype(d["dtype"]) for name, d in ordered}
        outs = runner.get_output_details()
        self.outputs = [name for name, _ in sorted(outs.items(), key=lambda kv: kv[1]["index"])]

    def accepts(self, shapes: dict[str, tuple[int, ...]], batch: int) -> bool:
        """Whether this signature runs ``shapes`` (``batch > 1``: one row at a time)."""
        for name, want in self.shapes.items():
            got = shapes[name]
            if got == want:
                continue
            if not (batch > 1 and got[:1] == (batch,) and want[:1] == (1,) and got[1:] == want[1:]):
                return False
        return True

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = {n: np.ascontiguousarray(feed[n], dtype=self.dtypes[n]) for n in self.inputs}
        out = self.runner(**args)
        return {n: np.asarray(out[n]) for n in self.outputs}


class TfliteBackend:
    """Run a ``.tflite`` graph with the LiteRT interpreter.

    Args:
        path: the ``.tflite`` file.
        threads: interpreter threads (``None``: the interpreter's default).
        xnnpack: apply the XNNPACK CPU delegate (LiteRT's default); ``False`` runs the
            builtin kernels only.
    """

    name = "tflite"

    def __init__(self, path: str | Path, threads: int | None = None, xnnpack: bool = True):
        module = interpreter_module()
        self.path = Path(path)
        if not self.path.is_file():
            from edge_sam_sdk.errors import BundleError

            raise BundleError(f"tflite graph not found: {self.path}")
        kwargs: dict[str, Any] = {"model_path": str(self.path)}
        if threads:
            kwargs["num_threads"] = int(threads)
        if not xnnpack:
            kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = module.Interpreter(**kwargs)
        except (ValueError, RuntimeError) as exc:
            from edge_sam_sdk.errors import BundleError

            reason = " ".join(str(exc).split())[:300]
            raise BundleError(f"{self.path.name} is not a loadable TFLite model: {reason}") from None
        self.signatures = [_Signature(k, self.interpreter.get_signature_runner(k))
                           for k in self.interpreter.get_signature_list()]
        if not self.signatures:
            from edge_sam_sdk.errors import BundleError

            raise BundleError(f"{self.path.name} has no signatures; re-export it with edgesam")
        first = self.signatures[0]
        odd = [s.key for s in self.signatures if (s.inputs, s.outputs) != (first.inputs, first.outputs)]
        if odd:
            from edge_sam_sdk.errors import BundleError

            raise BundleError(f"{self.path.name}: signatures {odd} have other inputs/outputs than "
                              f"{first.key!r}; it was not written by edgesam")
        self.inputs: list[str] = list(first.inputs)
        self.outputs: list[str] = list(first.outputs)
        self.threads = threads
        self.xnnpack = xnnpack

    def signature_for(self, feed: dict[str, np.ndarray]) -> tuple[_Signature, int]:
        """The signature that runs ``feed`` and the number of rows to run it for."""
        shapes = {n: tuple(int(s) for s in np.shape(feed[n])) for n in self.inputs}
        batch = max((s[0] for s in shapes.values() if s), default=1)
        for sig in self.signatures:
            if sig.accepts(shapes, 0):
                return sig, 1
        for sig in self.signatures if batch > 1 else []:
            if sig.accepts(shapes, batch):
                return sig, batch
        from edge_sam_sdk.errors import InputError

        raise InputError(f"{self.path.name}: no signature takes this feed ({self._describe(shapes)}); "
                         f"{self.accepted()}")

    def accepted(self) -> str:
        """Human-readable input shapes the model's signatures take (batch 1; rows batch up)."""
        varying = []
        for name in self.inputs:
            shapes = sorted({sig.shapes[name] for sig in self.signatures})
            if len(shapes) == 1:
                continue
            axes = [i for i in range(len(shapes[0])) if len({s[i] for s in shapes}) > 1]
            if len(axes) == 1 and all(len(s) == len(shapes[0]) for s in shapes):
                values = sorted({s[axes[0]] for s in shapes})
                span = (f"{values[0]}..{values[-1]}" if values == list(range(values[0], values[-1] + 1))
                        else ",".join(map(str, values)))
                varying.append(f"{name} dim {axes[0]} in {span}")
            else:
                varying.append(f"{name} one of {', '.join('x'.join(map(str, s)) for s in shapes)}")
        fixed = {n: self.signatures[0].shapes[n] for n in self.inputs}
        text = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in fixed.items())
        if varying:
            text = ("it takes " + "; ".join(varying) + " (prompt points: a box counts as 2, plus the "
                    "padding point the variant adds; re-export with a wider --decoder-points range)")
        else:
            text = f"it takes {text}"
        return text + "; a leading batch dimension B > 1 runs row by row"

    @staticmethod
    def _describe(shapes: dict[str, tuple[int, ...]]) -> str:
        return ", ".join(f"{n} {'x'.join(map(str, s)) or 'scalar'}" for n, s in shapes.items())

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feed(self, feed)
        sig, rows = self.signature_for(feed)
        if rows == 1:
            return sig.run(feed)
        parts: list[dict[str, np.ndarray]] = []
        for r in range(rows):
            row = {n: (v[r:r + 1] if np.shape(v)[:1] == (rows,) and sig.shapes[n][:1] == (1,) else v)
                   for n, v in feed.items()}
            parts.append(sig.run(row))
        return {n: np.concatenate([p[n] for p in parts], axis=0) for n in sig.outputs}
