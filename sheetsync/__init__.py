"""sheetsync: keep editing the spreadsheet; a validated, deduplicated, audited SQLite store behind it."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "read_table"]

#: public name -> module that defines it; imported on first use so `import sheetsync` stays light
_LAZY = {"read_table": "sheetsync.export"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sheetsync' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
