"""The small exception tree: an exception means a run cannot go on (data problems are Problems).

Every error carries a `hint` saying what to do, and an `exit_code` from STYLE.md's table:
2 layout or usage error, 3 source busy or deferred (try later), 4 internal error. Transient
errors are worth retrying later; terminal ones need a person.
"""
from __future__ import annotations


class SheetsyncError(Exception):
    """Base class. `where` names the file, sheet, row, column or YAML key involved."""

    exit_code = 4
    transient = False

    def __init__(self, message: str, *, hint: str = "", where: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.where = where

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class LayoutError(SheetsyncError):
    """A layout file is missing, unreadable or invalid. `issues` lists (file, line, key, message)."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str = "", where: str = "",
                 issues: list[tuple[str, int, str, str]] | None = None) -> None:
        super().__init__(message, hint=hint, where=where)
        self.issues = issues or []


class UsageError(SheetsyncError):
    exit_code = 2


class SourceError(SheetsyncError):
    """The source cannot be read as a sheet: missing file, corrupt workbook, missing column."""

    exit_code = 2


class SourceBusy(SheetsyncError):
    """The source is locked (open in Excel/LibreOffice) or another run holds the layout's lease."""

    exit_code = 3
    transient = True


class SourceChanged(SheetsyncError):
    """The source changed between read and write; the outbox is kept for the next run."""

    exit_code = 3
    transient = True


class SourceUnavailable(SheetsyncError):
    """The remote source did not answer in time (429, 5xx, timeouts); try again later.

    `applied` lists patches that did land before the failure, so the outbox stays exact.
    """

    exit_code = 3
    transient = True

    def __init__(self, message: str, *, hint: str = "", where: str = "", applied: tuple = ()) -> None:
        super().__init__(message, hint=hint, where=where)
        self.applied = applied


class FeatureLossError(SheetsyncError):
    """Writing the workbook would drop parts openpyxl cannot keep (images, sparklines, ...)."""

    exit_code = 2


class StoreError(SheetsyncError):
    exit_code = 4


class StoreCorrupt(StoreError):
    """The store file is damaged (not a database, a malformed page): not a bug, and not fixed by
    running again; a person restores it from a snapshot (the hint says how)."""

    exit_code = 2


class MissingExtra(SheetsyncError):
    """An optional dependency is not installed; the hint names the pip extra."""

    exit_code = 2


class BackupError(SheetsyncError):
    """A backup operation cannot go on (missing folder, unknown snapshot, unreadable manifest)."""

    exit_code = 2


class BackupCorrupt(BackupError):
    """An object or manifest does not match its checksum, or is missing. Names the object."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str = "", where: str = "", name: str = "") -> None:
        super().__init__(message, hint=hint or "run `sheetsync snapshots verify --all`; restore "
                         "from another snapshot or an exported copy", where=where)
        self.name = name


class BackupKeyError(BackupError):
    """The snapshot is encrypted and no key, or a different key, was given."""
