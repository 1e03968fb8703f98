"""The backend protocol: numpy in, numpy out. No framework is imported here."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Backend(Protocol):
    """One loaded graph.

    ``inputs``/``outputs`` are the graph's tensor names in order; ``run`` takes a feed of
    every input (numpy arrays of the declared dtype) and returns every output by name.
    """

    name: str
    inputs: list[str]
    outputs: list[str]

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def check_feed(backend: Backend, feed: dict[str, np.ndarray]) -> None:
    """Raise ``InputError`` when ``feed`` lacks an input or carries an unknown one."""
    from edge_sam_sdk.errors import InputError

    missing = [n for n in backend.inputs if n not in feed]
    extra = [n for n in feed if n not in backend.inputs]
    if missing or extra:
        raise InputError(f"{backend.name}: feed mismatch: missing {missing}, unexpected {extra}; "
                         f"inputs are {backend.inputs}")
