"""Torch reference backend: runs our torch graph modules (export extra; imported only on request)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .protocol import check_feed


class TorchBackend:
    """Wrap a torch ``nn.Module`` whose ``forward`` takes ``input_names`` positionally."""

    name = "torch"

    def __init__(self, module: Any, input_names: Sequence[str], output_names: Sequence[str],
                 threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.module = module.eval()
        self.inputs: list[str] = list(input_names)
        self.outputs: list[str] = list(output_names)

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        check_feed(self, feed)
        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(feed[n])) for n in self.inputs]
            out = self.module(*args)
        if isinstance(out, torch.Tensor):
            out = (out,)
        return {n: t.numpy() for n, t in zip(self.outputs, out, strict=True)}
