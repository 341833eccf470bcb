"""The command line: demo, check, sync, status, history (and the commands later issues add).

Exit codes (STYLE.md): 0 ok, 1 data problems found, 2 layout or usage error, 3 source busy or
deferred (try later), 4 internal error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from .. import __version__
from ..errors import LayoutError, SheetsyncError, SourceBusy, UsageError
from ..model import EXIT_FOR_OUTCOME
from .layouts import _expand, _store_for_dir, layouts_dir, resolve_layouts

#: the reader of our output went away (`sheetsync status | head -1`): what a shell reports for a
#: process that SIGPIPE ended (128 + 13), as git does; said quietly, since nothing went wrong here
EXIT_READER_GONE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a closed output pipe ends it quietly instead of as an internal error.

    SIGPIPE stays ignored (Python's default), so a webhook or socket write elsewhere can never
    kill a sync half-way; the broken pipe surfaces here as BrokenPipeError instead.
    """
    from .output import escaped_output
    try:
        try:
            with escaped_output():  # cell text with ESC/BEL is shown, never obeyed, by the terminal
                return _main(argv)
        finally:
            sys.stdout.flush()  # buffered output meets the closed pipe here, not at interpreter exit
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """Point stdout at /dev/null so the interpreter's last flush cannot complain either."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (an in-process caller)
        pass
    return EXIT_READER_GONE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..logs import apply_logging_options
    apply_logging_options(args)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except LayoutError as exc:
        from ..layout_load import format_issue
        for issue in exc.issues:
            print(format_issue(issue), file=sys.stderr)
        if not exc.issues:
            print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except SheetsyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 3
    except BrokenPipeError:
        raise  # main() ends the command quietly
    except Exception as exc:  # a bug: say so plainly; the traceback on request
        if os.environ.get("SHEETSYNC_DEBUG"):
            raise
        print(f"internal error: {exc!r}\n  hint: this is a bug in sheetsync; run again with "
              "SHEETSYNC_DEBUG=1 for the traceback and report it", file=sys.stderr)
        return 4


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sheetsync", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"sheetsync {__version__}")
    from ..logs import add_logging_options
    add_logging_options(p)
    sub = p.add_subparsers(metavar="COMMAND")

    def cmd(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=func)
        return sp

    sp = cmd("demo", cmd_demo, "copy the bundled messy workbook and its layout into a folder and sync it")
    sp.add_argument("--dir", default="sheetsync-demo", help="work folder (default ./sheetsync-demo)")
    sp.add_argument("--json", action="store_true", help="print the run as JSON")

    sp = cmd("check", cmd_check, "validate layouts; prints file:line: key: message per mistake")
    sp.add_argument("paths", nargs="*", help="layout files or folders (default ./layouts)")
    sp.add_argument("--schema", action="store_true", help="print the layout JSON Schema for editors")

    sp = cmd("sync", cmd_sync, "run one sync per layout")
    sp.add_argument("--full", action="store_true", help="compare every row even if the source looks unchanged")
    sp.add_argument("--allow-mass-delete", action="store_true",
                    help="confirm deleting more rows than the layout's max_delete (default: half the rows)")
    sp.add_argument("layouts", nargs="*", help="layout files, or names in the layouts folder")
    sp.add_argument("--all", action="store_true", help="every layout in the layouts folder")
    sp.add_argument("--layouts-dir", default=None, help="layouts folder (default ./layouts or $SHEETSYNC_LAYOUTS)")
    sp.add_argument("--json", action="store_true", help="print one JSON object per run")

    sp = cmd("status", cmd_status, "last run of each layout, open problems, pending write-back")
    sp.add_argument("layouts", nargs="*", help="layout files or names (default: every layout)")
    sp.add_argument("--layouts-dir", default=None, help="layouts folder (default ./layouts or $SHEETSYNC_LAYOUTS)")
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")

    from .duplicates import add_duplicates_command
    from .run import add_run_command
    from .snapshots import add_snapshot_commands
    from .report import add_report_commands
    add_duplicates_command(sub)
    add_snapshot_commands(sub)
    add_run_command(sub)
    add_report_commands(sub)

    sp = cmd("history", cmd_history, "every field change of one record")
    sp.add_argument("table", help="store table (the layout's `table:`)")
    sp.add_argument("key", help="the record's key")
    sp.add_argument("--db", default=None, help="store file (default: the layouts' store or $SHEETSYNC_DB)")
    sp.add_argument("--layouts-dir", default=None, help="layouts folder (default ./layouts or $SHEETSYNC_LAYOUTS)")
    sp.add_argument("--json", action="store_true", help="print the changes as JSON")

    sp = cmd("emulator", cmd_emulator, "serve the local Google Sheets API emulator on loopback")
    sp.add_argument("--port", type=int, default=8765, help="loopback port to listen on (default 8765)")
    sp.add_argument("--data", default=None, help="seed from a JSON file or an .xlsx workbook")
    return p


# -- commands ------------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo
    return run_demo(Path(args.dir), as_json=args.json)


def cmd_check(args: argparse.Namespace) -> int:
    from ..layout_load import check_paths, format_issue, layout_schema
    if args.schema:
        print(json.dumps(layout_schema(), indent=2, ensure_ascii=False))
        return 0
    paths = [Path(p) for p in args.paths] or [layouts_dir(None)]
    issues = check_paths(paths)
    for issue in issues:
        print(format_issue(issue))
    if issues:
        return 2
    print(f"ok: {len(_expand(paths))} layout(s) valid")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from ..engine import sync_once
    from ..report import summary_text
    paths = resolve_layouts(args.layouts, args.all, args.layouts_dir)
    worst = 0
    for path in paths:
        try:
            result = sync_once(path, full=args.full, allow_mass_delete=args.allow_mass_delete)
        except SheetsyncError as exc:
            if not isinstance(exc, SourceBusy):
                _alerts(path)
            if args.json:
                print(json.dumps({"layout": path.stem, "outcome": "failed", "message": str(exc)},
                                 ensure_ascii=False))
            else:
                print(f"{path.stem}: failed\n  {exc}", file=sys.stderr)
            worst = max(worst, exc.exit_code)
            continue
        print(json.dumps(result.to_json(), ensure_ascii=False) if args.json else summary_text(result))
        worst = max(worst, EXIT_FOR_OUTCOME[result.outcome])
        _alerts(path)
    return worst


def _alerts(path: Path) -> None:
    """cron's `sheetsync sync --all` alerts like `sheetsync run` does (failure, partial streaks,
    invalid share); an alert that cannot be evaluated never fails the sync."""
    from ..alerts import check_layout
    from ..layout import store_path
    from ..layout_load import load_layout
    from ..store import Store
    try:
        loaded = load_layout(path)
        with Store(store_path(loaded)) as store:
            check_layout(loaded, store)
    except Exception as exc:
        print(f"{path.stem}: alerts not evaluated: {exc}", file=sys.stderr)


def cmd_status(args: argparse.Namespace) -> int:
    from ..status import layout_status, status_text
    paths = resolve_layouts(args.layouts, True, args.layouts_dir) if not args.layouts else \
        resolve_layouts(args.layouts, False, args.layouts_dir)
    states = [layout_status(p) for p in paths]
    if args.json:
        print(json.dumps(states, ensure_ascii=False, indent=2))
    else:
        print("\n".join(status_text(s) for s in states))
    return max((s["exit_code"] for s in states), default=0)


def cmd_history(args: argparse.Namespace) -> int:
    from ..store import Store
    db = Path(args.db) if args.db else _store_for_dir(args.layouts_dir)
    if not db.exists():
        raise UsageError(f"no store at {db}", hint="pass --db FILE or run a sync first")
    with Store(db) as store:
        rows = store.history(args.table, args.key)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(f"no history for {args.table} {args.key}")
        return 1
    for h in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(h["at"]))
        where = f"{h['layout'] or '-'}[{h['sheet'] or '-'}] row {h['row'] or '-'}"
        field = h["field"] or "(record)"
        print(f"{when}  {h['action']:<8} {field:<14} {h['old']!s:>20} -> {h['new']!s:<20} run {h['run_id']}  {where}")
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    try:
        from ..testing.sheets_emulator import serve
    except ImportError as exc:
        raise UsageError(f"the emulator needs an optional dependency ({exc.name})",
                         hint="pip install 'sheetsync[gsheets]'") from None
    serve(args.port, Path(args.data) if args.data else None)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
