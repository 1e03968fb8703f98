"""Atomic file output: write to a temporary sibling, rename into place only on success.

    with atomic_path("out/overlay.png") as tmp:   # tmp: out/.overlay.png.XXXX.png
        save(tmp)
    # out/overlay.png now exists whole, or (on any exception, Ctrl-C included) not at all

The temporary file keeps the target's suffix (libraries that pick a format by suffix, such
as Pillow or ``numpy.savez``, see the right one) and lives in the target's folder, so the
final ``os.replace`` is atomic on POSIX and Windows.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``; renamed to ``path`` when the block ends normally,
    removed when it raises. The folder of ``path`` must exist."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_paths(paths: list[Path]) -> Iterator[list[Path]]:
    """:func:`atomic_path` for several outputs: all are renamed into place only once every
    one was written (none is left when any writer fails)."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(p)) for p in paths]
