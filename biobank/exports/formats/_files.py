"""Writing a target's text to disk: one file, or a folder of named files (UTF-8, parents created)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def write_file(path: str | Path, content: str) -> Path:
    """Write ``content`` to ``path`` (creating its folder); return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(content, encoding="utf-8")
    return out


def write_folder(folder: str | Path, files: Mapping[str, str]) -> list[Path]:
    """Write each ``{file name: content}`` into ``folder`` (creating it); return the paths in that order."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_name, content in files.items():
        p = out / file_name
        p.write_text(content, encoding="utf-8")
        paths.append(p)
    return paths
