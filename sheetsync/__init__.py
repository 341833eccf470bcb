"""sheetsync: keep editing the spreadsheet; a validated, deduplicated, audited SQLite store behind it."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Store", "__version__", "load_layout", "read_table", "sync_once"]

#: public name -> module that defines it; imported on first use, so that `import sheetsync.model`
#: (every module imports this package first) loads no engine, store or pydantic
_LAZY = {"sync_once": "sheetsync.engine", "load_layout": "sheetsync.layout_load",
         "Store": "sheetsync.store", "read_table": "sheetsync.export"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sheetsync' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
