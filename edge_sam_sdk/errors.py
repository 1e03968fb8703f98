"""Exceptions raised by the SDK. Every message names the problem and, where it helps, the fix."""

from __future__ import annotations


class EdgeSamError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class UnknownVariantError(EdgeSamError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(EdgeSamError):
    """A checkpoint cannot be read or does not match the variant's keys and shapes."""


class BundleError(EdgeSamError):
    """A bundle is missing files, corrupt, or of an unknown format version."""


class BackendNotAvailableError(EdgeSamError, ImportError):
    """A runtime backend's package is not installed (the message names the pip extra)."""


class InputError(EdgeSamError, ValueError):
    """Bad user input: wrong shape, dtype, range, or a call out of order."""


class GraphOutputError(EdgeSamError):
    """A graph returned NaN/infinite values or outputs of the wrong shape (a corrupt or
    mis-exported graph, or inputs the graph cannot represent)."""
