"""Which layout files (and which store) a command means: names, --all, --layouts-dir,
$SHEETSYNC_LAYOUTS. Shared by every command module, so it sits below them (no cli <-> cli.* cycle).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError


def layouts_dir(option: str | None) -> Path:
    return Path(option or os.environ.get("SHEETSYNC_LAYOUTS") or "layouts")


def _expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml")))
        else:
            out.append(p)
    return out


def resolve_layouts(names: list[str], all_: bool, directory: str | None) -> list[Path]:
    folder = layouts_dir(directory)
    if all_ or not names:
        found = _expand([folder]) if folder.is_dir() else []
        if not found:
            raise UsageError(f"no layouts found in {folder}",
                             hint="pass a layout file, --layouts-dir DIR, or run `sheetsync demo` to see one")
        return found
    out = []
    for name in names:
        p = Path(name)
        if not p.exists() and (folder / f"{name}.yaml").exists():
            p = folder / f"{name}.yaml"
        if not p.exists():
            raise UsageError(f"layout {name!r} not found", hint=f"looked for {p} and {folder / (name + '.yaml')}")
        out.append(p)
    return out


def _store_for_dir(directory: str | None) -> Path:
    from ..layout import store_path
    from ..layout_load import load_layout
    env = os.environ.get("SHEETSYNC_DB")
    if env:
        return Path(env)
    found = _expand([layouts_dir(directory)]) if layouts_dir(directory).is_dir() else []
    if not found:
        raise UsageError("cannot tell which store to read", hint="pass --db FILE or --layouts-dir DIR")
    return store_path(load_layout(found[0]))
