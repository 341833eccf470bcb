"""The engine's side of backups: after a run that changed something, snapshot the store and the
sheet's values into the layout's backup folder, then apply its retention (forget, then prune)."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sheetsync.backup.crypto import ENV_KEY, ENV_KEY_FILE, load_key
from sheetsync.backup.objects import Manifest
from sheetsync.backup.retention import forget, prune
from sheetsync.backup.snapshot import SheetCopy, snapshot
from sheetsync.errors import UsageError
from sheetsync.layout import LoadedLayout
from sheetsync.model import SheetData, canonical_text, column_letter

ENV_DIR = "SHEETSYNC_BACKUP_DIR"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def backup_dir_for(loaded: LoadedLayout, store_path: Path | str) -> Path:
    """The layout's `backup.dir` (relative to the layout), else $SHEETSYNC_BACKUP_DIR, else
    `backups/` next to the store: a folder that can live on another disk."""
    if loaded.layout.backup.dir:
        return loaded.resolve(loaded.layout.backup.dir)
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    return Path(store_path).parent / "backups"


def key_for(loaded: LoadedLayout, *, required: bool | None = None) -> bytes | None:
    """The backup key: the layout's key_file, else $SHEETSYNC_BACKUP_KEY(_FILE). With
    `backup.encrypt` (or `required=True`) a missing key is a clear error, never a plain backup."""
    cfg = loaded.layout.backup
    key_file = loaded.resolve(cfg.key_file) if cfg.key_file else None
    key = load_key(os.environ, key_file)
    must = cfg.encrypt if required is None else required
    if must and key is None:
        raise UsageError(f"layout {loaded.name!r} sets backup.encrypt but no backup key is given",
                         where=f"{loaded.path}: backup.encrypt",
                         hint=f"set {ENV_KEY} (or {ENV_KEY_FILE}) or backup.key_file; make a key "
                              "with `sheetsync snapshots keygen --out FILE`")
    return key


def sheet_copy(name: str, sheet: SheetData) -> SheetCopy:
    """The sheet's values as canonical text (stable bytes for equal content) and sheetsync's notes."""
    marks = {f"{column_letter(col)}{row}": note for (row, col), note in sorted(sheet.marks.items())}
    return SheetCopy(layout=name, sheet=sheet.sheet, header=list(sheet.header),
                     rows=[[canonical_text(v) for v in r.values] for r in sheet.rows], marks=marks)


def snapshot_after_run(loaded: LoadedLayout, store_path: Path | str, sheet: SheetData | None,
                       run_id: str, changed: bool,
                       clock: Callable[[], datetime] = _utcnow) -> Manifest | None:
    """Step 10: snapshot when the run changed something and backups are enabled; then forget
    this layout's snapshots the retention policy drops and prune unreferenced objects.
    Returns the new manifest, or None when nothing was taken."""
    cfg = loaded.layout.backup
    if not changed or not cfg.enabled:
        return None
    key = key_for(loaded) if cfg.encrypt else None
    folder = backup_dir_for(loaded, store_path)
    sheets = [sheet_copy(loaded.name, sheet)] if sheet is not None else []
    manifest = snapshot(store_path, folder, sheets=sheets, run_id=run_id, layouts=[loaded.name],
                        key=key, clock=clock)
    forget(folder, loaded.layout.retention, now=clock(), layout=loaded.name)
    prune(folder)
    return manifest
