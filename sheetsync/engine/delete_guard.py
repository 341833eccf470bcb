"""The mass-delete guard: when more rows vanished from a sheet than the layout's `max_delete`
allows (a CSV replaced by its header line, a filter saved as the sheet), the run deletes nothing.

The rows stay known (base, problems, marks, duplicate index) until an admin confirms with
`sheetsync sync --allow-mass-delete` or raises the limit; a sheet-level problem says why.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..layout import MAX_DELETE_SHARE, MaxDelete
from ..model import Problem

if TYPE_CHECKING:
    from . import RunContext
    from .identify import SheetIndex

#: the ident of problems that belong to the whole sheet, not to one row
SHEET = ""
CODE = "mass_delete"
DEFAULT_SHARE = 0.5      # with no `max_delete`: at most half of the rows...
DEFAULT_FROM_ROWS = 100  # ...of a sheet of more than this many rows
def limit(max_delete: MaxDelete, live: int) -> int | None:
    """How many rows one run may delete from a sheet of `live` rows (None: no limit)."""
    if max_delete is None:
        return math.floor(live * DEFAULT_SHARE) if live > DEFAULT_FROM_ROWS else None
    if isinstance(max_delete, int):
        return max_delete
    m = MAX_DELETE_SHARE.match(max_delete)
    assert m is not None  # checked when the layout was loaded
    return math.floor(live * float(m.group(1)) / 100)


def hold(ctx: "RunContext", sheet: "SheetIndex", deletable: Any) -> None:
    """Step 4's deletions, unless they exceed the limit: then none happen this run (the rows are
    no longer `deleted`, so nothing that follows from a deletion happens either) and the run
    carries a sheet-level problem with the numbers. `deletable(idents)`: those this sheet may delete."""
    if not sheet.deleted or ctx.allow_mass_delete:
        return
    live = len(sheet.base)
    allowed = limit(ctx.layout.max_delete, live)
    gone = len(deletable(sheet.deleted))
    if allowed is None or gone <= allowed:
        return
    params = {"gone": gone, "rows": live, "limit": allowed}
    ctx.held_deletes = Problem(CODE, None, params)
    ctx.result.deletes_held = gone
    ctx.result.message = (f"{gone} of {live} rows are gone from the sheet, more than max_delete allows "
                          f"({allowed}): nothing was deleted; if this is intended, run "
                          f"`sheetsync sync --allow-mass-delete` (or raise max_delete in the layout)")
    sheet.deleted = []


def problems(ctx: "RunContext") -> list[dict[str, Any]]:
    """The sheet-level problem of held deletions, as the store keeps problems (no cell)."""
    p = ctx.held_deletes
    if p is None:
        return []
    return [{"ident": SHEET, "field": None, "code": p.code, "params": dict(p.params), "row": None, "col": None}]
