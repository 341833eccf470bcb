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


def test_the_readme_python_api_example_runs(tmp_path, monkeypatch, capsys):
    """The README's Python API block, exec'd as written in an empty folder: it makes its own
    workbook and layout, syncs, and prints what its comments say; the store and sheet agree."""
    import sqlite3

    import openpyxl

    import sheetsync
    assert sorted(sheetsync.__all__) == ["Store", "__version__", "load_layout", "read_table", "sync_once"]
    code = re.search(r"```python\n(.*?)```", README.split("## Python API", 1)[1], re.S).group(1)
    expected = [line.split("# ", 1)[1] for line in code.splitlines()
                if line.strip().startswith("print(") and "# " in line] + [code.rstrip().splitlines()[-1][2:]]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHEETSYNC_DB", raising=False)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == expected
    with sqlite3.connect(tmp_path / "sheetsync.db") as db:
        assert db.execute("SELECT COUNT(*) FROM people").fetchone() == (1,)
    sheet = openpyxl.load_workbook(tmp_path / "people.xlsx")["People"]
    assert [c.value for c in sheet[2]] == ["P1", "Li Wei", "+86 138 0013 8000"]  # corrected in place


def readme_modules() -> set[str]:
    """Files the README's architecture table names, relative to sheetsync/: a cell lists
    `name.py` files, or `package/` followed by the package's module names."""
    section = README.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    listed: set[str] = set()
    for row in re.findall(r"^\| (.*?) \| .* \|$", section, re.M)[2:]:  # skip header and rule
        package = ""
        for token in re.findall(r"`([^`]+)`", row):
            if token.endswith("/"):
                package = token
            else:
                listed.add(token if token.endswith(".py") else f"{package}{token}.py")
    return listed


def test_the_readme_module_table_matches_the_tree():
    package = Path(__file__).resolve().parents[1] / "sheetsync"
    tree = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    listed = readme_modules()
    assert sorted(tree - listed) == [], "modules missing from the README's architecture table"
    assert sorted(listed - tree) == [], "the README's architecture table lists modules that do not exist"


def _walk(parser, path=("sheetsync",)):
    """(command path, parser) for the top parser and every command and subcommand under it."""
    yield path, parser
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


def test_every_command_and_subcommand_has_help():
    parser = build_parser()
    missing = []
    for path, p in _walk(parser):
        for action in p._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                helped = {a.dest for a in action._choices_actions if a.help}
                missing += [" ".join((*path, name)) for name in action.choices if name not in helped]
    assert missing == []


def test_every_argument_of_every_command_has_help():
    missing = [f"{' '.join(path)} {a.option_strings[0] if a.option_strings else a.dest}"
               for path, p in _walk(build_parser()) for a in p._actions
               if a.__class__.__name__ not in ("_HelpAction", "_SubParsersAction") and not (a.help or "").strip()]
    assert missing == []


def test_the_walk_reaches_every_snapshots_action():
    paths = {" ".join(path) for path, _ in _walk(build_parser())}
    assert {"sheetsync snapshots restore", "sheetsync snapshots keygen", "sheetsync duplicates"} <= paths
    assert len(paths) > len(commands()) + 10
