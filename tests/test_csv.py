"""The CSV connector on real files: encodings, BOM, line endings, delimiters, sidecar report."""
from __future__ import annotations

import codecs
import os
import stat

import pytest

from sheetsync.connectors import open_connector
from sheetsync.connectors.csv import CsvConnector
from sheetsync.errors import SourceBusy, SourceChanged, SourceError
from sheetsync.model import Patch, ReportTab


def test_gbk_crlf_round_trip_is_byte_identical_where_unchanged(tmp_path):
    path = tmp_path / "客户.csv"
    text = "姓名,电话,备注\r\n张三,13800138000,\"说明, 带逗号\"\r\n李四,１３８００１３８０００,\r\n"
    path.write_bytes(text.encode("gbk"))
    conn = CsvConnector(path)
    data = conn.read()
    assert data.sheet == "客户.csv"
    assert data.header == ("姓名", "电话", "备注")
    assert data.rows[1].values == ("李四", "１３８００１３８０００", None)
    assert data.meta["encoding"] == "gb18030" and data.meta["newline"] == "\r\n"
    assert data.meta["bom"] is False
    result = conn.apply([Patch(3, 2, "corrected", write=True, value="+8613800138000",
                               expected="１３８００１３８０００", fill="C6EFCE", note="normalised")],
                        expected=data.fingerprint)
    assert len(result.applied) == 1 and result.prior_fills == {}
    want = text.replace("１３８００１３８０００", "+8613800138000").encode("gbk")
    assert path.read_bytes() == want


def test_utf8_bom_lf_semicolon_kept_and_quotes_added_only_when_needed(tmp_path):
    path = tmp_path / "c.csv"
    raw = codecs.BOM_UTF8 + "name;email\n\"Ann\";A@X.CN\nBob;b@x.cn".encode("utf-8")
    path.write_bytes(raw)
    conn = CsvConnector(path)
    data = conn.read()
    assert data.meta["delimiter"] == ";" and data.meta["bom"] is True
    assert data.meta["newline"] == "\n"
    conn.apply([Patch(2, 2, "corrected", write=True, value="a@x.cn"),
                Patch(3, 1, "corrected", write=True, value="Bob; Jr")])
    assert path.read_bytes() == codecs.BOM_UTF8 + "name;email\nAnn;a@x.cn\n\"Bob; Jr\";b@x.cn".encode()


def test_formula_like_value_is_written_verbatim(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    conn = CsvConnector(path)
    conn.apply([Patch(2, 2, "corrected", write=True, value="=1+1"),
                Patch(2, 3, "corrected", write=True, value=5.0)])
    assert path.read_text(encoding="utf-8") == "a,b\n1,=1+1,5\n"
    assert conn.read().rows[0].values == ("1", "=1+1", "5")


def test_title_rows_blank_rows_and_multiline_records_keep_sheet_row_numbers(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text('Report 2024,,\n,,\nname,note,\n"Ann","two\nlines",\n,,\nBob,x,\n', encoding="utf-8")
    data = CsvConnector(path, header_row=3).read()
    assert data.header == ("name", "note")
    assert [(r.number, r.values) for r in data.rows] == [(4, ("Ann", "two\nlines")), (6, ("Bob", "x"))]
    CsvConnector(path, header_row=3).apply([Patch(6, 2, "corrected", write=True, value="y",
                                                  anchor=(1, "Bob"))])
    assert path.read_text(encoding="utf-8").endswith('"Ann","two\nlines",\n,,\nBob,y,\n')


def test_person_edit_defers_patch(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("name,phone\nAnn,1\nBob,2\n", encoding="utf-8")
    conn = CsvConnector(path)
    result = conn.apply([Patch(2, 2, "corrected", write=True, value="9", expected="old"),
                         Patch(3, 2, "corrected", write=True, value="8", anchor=(1, "Robert")),
                         Patch(9, 1, "corrected", write=True, value="x")])
    assert result.applied == () and len(result.deferred) == 3
    assert path.read_text(encoding="utf-8") == "name,phone\nAnn,1\nBob,2\n"


def test_sidecar_report_utf8_sig_and_formula_safe(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("name\nAnn\n", encoding="utf-8")
    conn = open_connector("csv", path=path)
    assert not conn.capabilities.fills and not conn.capabilities.report_tab
    before = path.read_bytes()
    conn.apply([], report=ReportTab("sheetsync", (("报告",), ("A2", "=HYPERLINK(1)"))))
    side = tmp_path / "customers.sheetsync.csv"
    assert side.read_bytes() == codecs.BOM_UTF8 + "报告\r\nA2,'=HYPERLINK(1)\r\n".encode()
    assert path.read_bytes() == before
    conn.apply([], report=ReportTab("sheetsync", (("ok",),)))
    assert side.read_bytes() == codecs.BOM_UTF8 + b"ok\r\n"


def test_lock_fingerprint_and_mode(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("a\n1\n", encoding="utf-8")
    os.chmod(path, 0o600)
    conn = CsvConnector(path)
    patch = Patch(2, 1, "corrected", write=True, value="2")
    with pytest.raises(SourceChanged):
        conn.apply([patch], expected="f" * 64)
    lock = tmp_path / ".~lock.c.csv#"
    lock.write_text("x")
    with pytest.raises(SourceBusy):
        conn.apply([patch], expected=conn.read().fingerprint)
    lock.unlink()
    conn.apply([patch], expected=conn.read().fingerprint)
    assert path.read_text() == "a\n2\n" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_bad_input_gives_source_errors(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        CsvConnector(tmp_path / "none.csv").read()
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="no header"):
        CsvConnector(empty).read()
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name\nJos\xe9\n".encode("latin-1"))
    assert CsvConnector(latin, encoding="latin-1").read().rows[0].values == ("José",)
    with pytest.raises(SourceError) as info:
        CsvConnector(latin, encoding="utf-8").read()
    assert "encoding" in info.value.hint and info.value.where == str(latin)
    with pytest.raises(SourceError, match="cannot be written"):
        CsvConnector(latin, encoding="latin-1").apply([Patch(2, 1, "corrected", write=True, value="张")])
    assert latin.read_bytes() == "name\nJos\xe9\n".encode("latin-1")


def test_a_read_parses_the_same_records_without_keeping_their_text():
    from sheetsync.connectors.csv import parse
    texts = ['a,b\r\n1,"x\r\ny"\r\n2,z', "a;b\n1;2\n\n3;4\n", "a,b\r1,2\r", 'n,note\n"Ann","two\nlines"\n', "", "only"]
    for text in texts:
        data = text.encode("utf-8")
        full, quick = parse(data, None, None, "t.csv"), parse(data, None, None, "t.csv", raw=False)
        assert (quick.records, quick.newline, quick.delimiter, quick.encoding) == \
            (full.records, full.newline, full.delimiter, full.encoding), text
        assert quick.raw == [] and "".join(full.raw) == text
    with pytest.raises(SourceError, match="malformed CSV"):
        parse(b'a\n"' + b"x" * 200_000 + b'"\n', None, None, "t.csv", raw=False)  # past the field size limit


def test_amounts_stay_as_the_person_typed_them(tmp_path):
    """CSV has no types: 880 in a two-decimal column is already 880.00, so it is left as "880"
    (no "880.00" written, no correction); only a rounding that changes the amount is written."""
    from sheetsync.engine import sync_once
    from sheetsync.layout_load import load_layout
    from sheetsync.store import Store
    path = tmp_path / "o.csv"
    path.write_text("ID,Amount\nO1,880\nO2,\"1,200.5\"\nO3,9999.999\n", encoding="utf-8")
    (tmp_path / "o.yaml").write_text("table: o\nsource: {kind: csv, path: o.csv}\nkey: id\ncolumns:\n"
                                     "  id: {header: ID}\n  amount: {header: Amount, type: decimal, decimals: 2}\n")
    store = Store(tmp_path / "sheetsync.db")
    res = sync_once(load_layout(tmp_path / "o.yaml"), store=store)
    assert path.read_text(encoding="utf-8") == "ID,Amount\nO1,880\nO2,\"1,200.5\"\nO3,10000.00\n"
    assert res.corrected == 1
    assert {k: r["amount"] for k, r in store.records("o").items()} == {"O1": "880.00", "O2": "1200.50",
                                                                       "O3": "10000.00"}


def test_rows_are_removed_byte_for_byte_and_a_replay_removes_nothing(tmp_path):
    from sheetsync.model import removal
    path = tmp_path / "c.csv"
    body = "id,name\r\nC1,张三\r\nC2,\"Bob\nSmith\"\r\nC3,Cy\r\nC4,Dee"
    path.write_bytes(body.encode("gb18030"))
    conn = CsvConnector(path)
    data = conn.read()
    gone = [removal(r.number, r.values, (1, r.values[0])) for r in data.rows if r.values[0] in ("C2", "C4")]
    fix = Patch(4, 2, "corrected", write=True, value="CY", expected="Cy", anchor=(1, "C3"))
    applied = conn.apply([*gone, fix], expected=data.fingerprint)
    assert len(applied.applied) == 3 and applied.deferred == ()
    assert path.read_bytes() == "id,name\r\nC1,张三\r\nC3,CY\r\n".encode("gb18030")  # the rest as it was
    again = conn.apply(gone)  # a replay after the rows went: C3 is row 3 now and stays
    assert again.applied == () and len(again.deferred) == 2
    assert path.read_bytes() == "id,name\r\nC1,张三\r\nC3,CY\r\n".encode("gb18030")
