"""Write a generated table into a README between ``<!-- TAG:begin -->`` and ``<!-- TAG:end -->``."""

from __future__ import annotations

from pathlib import Path


def write_between_markers(readme: Path, tag: str, text: str) -> bool:
    """Replace what stands between ``tag``'s markers in ``readme`` by ``text``; ``False``
    (nothing written) when the README lacks the markers."""
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    content = readme.read_text()
    if begin not in content or end not in content:
        return False
    head, rest = content.split(begin, 1)
    readme.write_text(f"{head}{begin}\n{text}\n{end}{rest.split(end, 1)[1]}")
    return True
