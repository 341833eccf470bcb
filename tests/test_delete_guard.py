"""The mass-delete guard's limit and its layout key (the runs themselves: test_faults.py)."""
from __future__ import annotations

import pytest

from conftest import sheetsync_cmd
from sheetsync import messages
from sheetsync.engine.delete_guard import limit
from sheetsync.layout import check_max_delete


@pytest.mark.parametrize("max_delete, live, expected", [
    (None, 100, None), (None, 101, 50), (None, 30000, 15000), (200, 30000, 200), (0, 5, 0),
    ("50%", 10, 5), ("12.5%", 80, 10), ("100%", 7, 7), ("0%", 7, 0)])
def test_limit_by_count_share_and_default(max_delete, live, expected):
    assert limit(max_delete, live) == expected


@pytest.mark.parametrize("value", [-1, "150%", "half", True, 1.5, [50]])
def test_bad_values_are_refused(value):
    with pytest.raises(ValueError):
        check_max_delete(value)


def test_check_names_file_line_and_key(tmp_path):
    layout = tmp_path / "c.yaml"
    layout.write_text("table: c\nsource: {kind: csv, path: c.csv}\nkey: id\ncolumns:\n  id: {}\n"
                      "max_delete: 150%\n", encoding="utf-8")
    proc = sheetsync_cmd("check", str(layout))
    assert proc.returncode == 2 and f"{layout}:6: max_delete: '150%' is neither" in proc.stdout


def test_the_message_names_the_numbers_in_both_languages():
    params = {"gone": 30000, "rows": 30000, "limit": 15000}
    en, zh = messages.render("mass_delete", params, "en"), messages.render("mass_delete", params, "zh")
    assert "30000 of the 30000 rows" in en and "15000" in en
    assert "30000 行中有 30000 行" in zh and "15000" in zh
