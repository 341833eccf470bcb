"""`sheetsync run`: the scheduler loop as a command (for a systemd service, a container, a terminal).

Exit 0 after a stop signal; with --max-cycles, the worst run of the last pass (as `sync --all`).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ..errors import UsageError


def add_run_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand on cli/__init__.py's `add_subparsers()` object."""
    help_ = "the scheduler loop: every layout at its own interval (default hourly), until stopped"
    sp = subparsers.add_parser("run", help=help_, description=help_)
    sp.set_defaults(func=cmd_run)
    sp.add_argument("--interval", type=float, default=None, metavar="S",
                    help="run every layout every S seconds (overrides each layout's schedule.every)")
    sp.add_argument("--max-cycles", type=int, default=None, metavar="N",
                    help="stop after N passes over the layouts folder (default: run until stopped)")
    sp.add_argument("--layouts-dir", default=None, help="layouts folder (default ./layouts or $SHEETSYNC_LAYOUTS)")
    sp.add_argument("--alerts", default=None, metavar="FILE",
                    help="global alerts file for layouts without `alerts:` (default $SHEETSYNC_ALERTS)")
    return sp


def cmd_run(args: argparse.Namespace) -> int:
    from .layouts import layouts_dir
    from ..layout_load import load_alerts_file
    from ..scheduler import Runner
    if args.interval is not None and args.interval <= 0:
        raise UsageError(f"--interval must be more than 0 seconds, not {args.interval}")
    if args.max_cycles is not None and args.max_cycles < 1:
        raise UsageError(f"--max-cycles must be at least 1, not {args.max_cycles}")
    alerts = Path(args.alerts) if args.alerts else None
    if alerts:
        load_alerts_file(alerts)  # a mistake in it is a usage error now, not a silent log line later
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    folder = layouts_dir(args.layouts_dir)
    runner = Runner(folder, interval=args.interval, max_cycles=args.max_cycles, alerts_file=alerts)
    logging.getLogger("sheetsync.scheduler").info(
        "sheetsync run: layouts in %s%s", folder, f", every {args.interval:g} s" if args.interval else "")
    return runner.run()
