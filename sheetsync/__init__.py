"""sheetsync: keep editing the spreadsheet; a validated, deduplicated, audited SQLite store behind it."""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
