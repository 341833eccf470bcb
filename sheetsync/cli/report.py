"""`sheetsync report` (text summary or a self-contained HTML page) and `sheetsync export`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_report_commands(subparsers: Any) -> None:
    """Register `report` and `export` on the CLI's subparsers."""
    sp = subparsers.add_parser("report", help="per-layout runs, data quality and open problems (text or HTML)",
                               description="per-layout runs, data quality and open problems: a text "
                                           "summary, or with --html a self-contained page for managers")
    sp.add_argument("layouts", nargs="*", help="layout files or names (default: every layout)")
    sp.add_argument("--html", metavar="FILE", default=None, help="write a self-contained HTML page")
    sp.add_argument("--runs", type=int, default=30, help="runs per layout in the charts (default 30)")
    sp.add_argument("--layouts-dir", default=None, help="layouts folder (default ./layouts or $SHEETSYNC_LAYOUTS)")
    sp.set_defaults(func=cmd_report)

    sp = subparsers.add_parser("export", help="export a store table to csv, xlsx, json or parquet",
                               description="export a store table; csv/xlsx cells that a spreadsheet "
                                           "would run as a formula get a ' prefix (json/parquet: as stored)")
    sp.add_argument("table", help="store table (the layout's `table:`)")
    sp.add_argument("--format", choices=("csv", "xlsx", "json", "parquet"), default="csv",
                    help="file format (default csv)")
    sp.add_argument("--out", default=None, help="output file (csv/json default: stdout)")
    sp.add_argument("--db", default=None, help="store file (default: the layouts' store or $SHEETSYNC_DB)")
    sp.add_argument("--include-deleted", action="store_true", help="also records deleted from the sheet")
    sp.add_argument("--internal", action="store_true", help="keep sheetsync's columns (_key, _rev, _deleted, ...)")
    sp.set_defaults(func=cmd_export)


def cmd_report(args: argparse.Namespace) -> int:
    from .layouts import resolve_layouts
    from ..report import collect_reports, reports_text
    paths = resolve_layouts(args.layouts, not args.layouts, args.layouts_dir)
    reports = collect_reports(paths, runs=args.runs)
    if args.html:
        from ..report_html import write_html
        out = write_html(reports, Path(args.html))
        print(f"wrote {out} ({out.stat().st_size:,} bytes, {len(reports)} layout(s))", file=sys.stderr)
    else:
        print(reports_text(reports))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_table
    from .output import data_stdout
    n = export_table(args.table, args.format, args.out or data_stdout(), db=args.db,
                     include_deleted=args.include_deleted, internal=args.internal)  # `| head`: see cli.main()
    if args.out:
        print(f"wrote {n} row(s) of {args.table} to {args.out}", file=sys.stderr)
    return 0
