"""connectors/__init__.py on its own: the Connector protocol is the whole contract (every kind
implements all of it, the engine needs no getattr), and the registry builds each kind from a
layout's `source:` through the class's own `from_source`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sheetsync.connectors import REGISTRY, Connector, connector_class, from_source
from sheetsync.connectors.memory import MemoryBook
from sheetsync.layout import Source

#: what the engine, archive and backup use of a connector; nothing else may be looked up
PROTOCOL = {"capabilities", "path", "from_source", "read", "apply", "snapshot", "unchanged_since",
            "call_counts"}


def test_every_registered_kind_implements_the_whole_protocol() -> None:
    # before, unchanged_since, call counts and path were looked up with getattr/hasattr
    missing = {kind: sorted(PROTOCOL - set(dir(connector_class(kind)))) for kind in REGISTRY}
    assert missing == {kind: [] for kind in REGISTRY}


def test_from_source_builds_each_kind_through_its_class(tmp_path: Path) -> None:
    xlsx = from_source(Source(kind="xlsx", path="book.xlsx", sheet="People", header_row=2, totals_row=True),
                       tmp_path)
    assert (type(xlsx).__name__, xlsx.path, xlsx.sheet, xlsx.header_row, xlsx.totals_row) == (
        "XlsxConnector", tmp_path / "book.xlsx", "People", 2, True)
    csv = from_source(Source(kind="csv", path="/data/people.csv", encoding="gb18030", delimiter=";"), tmp_path)
    assert (csv.path, csv.encoding, csv.delimiter) == (Path("/data/people.csv"), "gb18030", ";")
    MemoryBook(header=["id"], rows=[["C1"]], name="connectors-test").register()
    memory = from_source(Source(kind="memory", name="connectors-test"), tmp_path)
    assert isinstance(memory, Connector) and memory.read().rows[0].values == ("C1",)
    sheets = from_source(Source(kind="gsheets", spreadsheet_id="abc", credentials="sa.json",
                                endpoint="http://127.0.0.1:1"), tmp_path)
    assert (sheets.spreadsheet_id, sheets.credentials, sheets.endpoint) == ("abc", tmp_path / "sa.json",
                                                                          "http://127.0.0.1:1")


def test_defaults_say_local_sources_count_no_calls_and_remote_ones_do(tmp_path: Path) -> None:
    MemoryBook(header=["id"], rows=[["C1"]], name="connectors-defaults").register()
    memory = from_source(Source(kind="memory", name="connectors-defaults"), tmp_path)
    assert (memory.path, memory.call_counts(), memory.unchanged_since("v0")) == (None, None, False)
    sheets = from_source(Source(kind="gsheets", spreadsheet_id="abc", endpoint="http://127.0.0.1:1"), tmp_path)
    assert sheets.call_counts() == (0, 0) and sheets.path is None


def test_a_missing_extra_names_the_pip_install() -> None:
    code = ("import sys; sys.modules['gspread'] = None\n"
            "from sheetsync.connectors import connector_class\n"
            "from sheetsync.errors import MissingExtra\n"
            "try:\n    connector_class('gsheets')\n"
            "except MissingExtra as e:\n    print(e.hint)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'sheetsync[gsheets]'" in out
