"""A damaged store file: SQLite's "malformed" and "not a database" told apart from a busy or full
store, a read-only probe that never changes the file, and the recovery path people are shown."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import StoreCorrupt

#: SQLite's primary result codes for a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB
_DAMAGE_CODES = (11, 26)


def restore_hint(snap_id: str | None = None, layout: str | None = None) -> str:
    """What to type: the newest snapshot's id and the layout when known, else placeholders."""
    command = f"sheetsync snapshots restore {snap_id or 'ID'} --replace --layout {layout or 'NAME'}"
    pick = "(`sheetsync snapshots list` shows the others)" if snap_id else \
        "(`sheetsync snapshots list` shows the IDs)"
    return (f"stop sheetsync for this store, then run `{command}` {pick}: it renames the "
            "damaged file to <file>.damaged-<time> (kept, not deleted) and rebuilds the store "
            "from the snapshot; the next sync takes the edits made in the sheet since")


def damage(exc: BaseException, path: str | Path) -> StoreCorrupt | None:
    """A StoreCorrupt naming `path` when `exc` is SQLite finding the file damaged, else None.
    Only an error that says so counts: a locked or full store is not damaged."""
    if isinstance(exc, StoreCorrupt):
        return exc
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.DatabaseError) or code is None or code & 0xFF not in _DAMAGE_CODES:
        return None
    return StoreCorrupt(f"the store file is damaged ({exc}); nothing more was written to it",
                        where=str(path), hint=restore_hint())


def probe(path: Path) -> str:
    """"" when the file at `path` is a sound SQLite database, else what SQLite found wrong.
    Read-only (no journal change, no migration), so a damaged file stays as it was found."""
    con = None
    try:
        con = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
        found = [row[0] for row in con.execute("PRAGMA quick_check")]
    except sqlite3.Error as exc:  # busy, unreadable: not damage; opening it will say what
        return str(exc) if damage(exc, path) else ""
    finally:
        if con is not None:
            con.close()
    return "" if found == ["ok"] else "; ".join(found[:3])
