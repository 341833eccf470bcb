"""Every CLI command is documented in the README, and the README's first section holds the two commands."""
from __future__ import annotations

import re
from pathlib import Path

from sheetsync.cli import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(sub.choices)


def test_every_command_is_in_the_readme():
    missing = [c for c in commands() if f"`sheetsync {c}" not in README]
    assert missing == []


def test_every_snapshots_action_is_in_the_readme():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    snapshots = sub.choices["snapshots"]
    actions = next(a for a in snapshots._actions if a.__class__.__name__ == "_SubParsersAction")
    listed = re.search(r"`sheetsync snapshots ([a-z/]+)`", README).group(1).split("/")
    assert sorted(actions.choices) == sorted(listed)
    assert "`sheetsync snapshots keygen" in README and "python -c" not in README


def test_first_section_has_exactly_two_commands():
    first = README.split("\n## ", 2)[1]
    block = re.search(r"```sh\n(.*?)```", first, re.S).group(1)
    lines = [l for l in block.splitlines() if l.strip()]
    assert len(lines) == 2 and "sheetsync demo" in lines[0] and "pytest" in lines[1]
