"""Rebuild sheetsync/data/demo/customers.xlsx, the messy workbook `sheetsync demo` ships.

Run from the repository root: python scripts/make_demo_workbook.py. Every mess in it is on
purpose: each row exercises a normaliser, a rule, a duplicate or the protected column.
"""
from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill

HEADER = ["客户编号 Customer ID", "Name 姓名", "Phone 电话", "Email", "City 城市",
          "Signup date", "Tier 等级", "Credit limit", "Notes"]
ROWS = [
    ["C00001", "张伟", "138 0013 8000", "zhang.wei@example.cn", "北京", "2024-01-15", "VIP", 50000, ""],
    ["C00002", "Li Na ", "+86-139-0013-9000", " LiNa@Example.COM ", "Shanghai", 45302, "gold", 20000, ""],
    ["C00003", "王芳", "１３７００１３７０００", "wangfang@example.cn", "广州", "2024/3/5", "金卡", 10000, "full-width phone"],
    ["C00004", "Bob\u00a0Smith", 13600136000.0, "bob@@acme.com", "Shenzhen", "5 Mar 2024", "Standrad", 5000, ""],
    ["C00005", "Alice\u200bJones", "+86 135 0013 5000", "Alice.Jones@ACME.com", "Hangzhou", "2024年3月8日", "Standard", 8000, ""],
    ["c00006", "刘洋", "0086 158 0015 8000", "liu.yang@example.cn", "成都", "2024.04.02", "普通", "1,200", "lower-case id"],
    ["C00007", "张伟", "13800138000", "zw@example.cn", "北京", "2024-05-01", "VIP", 30000, "same phone as C00001"],
    ["C00008", "Li  Na", "139-0013-9000", "lina@example.com", "上海", "2024-05-02", "Gold", 20000, "near duplicate of C00002"],
    ["C00009", "陈静", "12345", "chen.jing@example.cn", "武汉", "2024-06-10", "Standard", 3000, "phone too short"],
    ["C00010", "", "+86 186 0018 6000", "noname@example.cn", "南京", "2024-06-11", "Standard", 1000, "name missing"],
    ["X123", "Wrong Key", "+86 187 0018 7000", "wrong.key@example.cn", "西安", "2024-06-12", "Gold", 1000, "bad customer id"],
    ["C00012", "赵磊", "+86 188 0018 8000", "zhao.lei@example.cn", "重庆", "2024-02-30", "VIP", 40000, "no such date"],
    ["C00013", "Grace Lee", "+86 189 0018 9000", "grace@example.com", "Suzhou", "03/07/2024", "vip ", 15000, ""],
    ["C00014", "孙丽", "+86 177 0017 7000", "sun.li@example.cn", "天津", "2024-07-01", "Platinum", 6000, "unknown tier"],
    ["C00015", "Tom Wang", "+86 176 0017 6000", "tom.wang@example.com", "Xiamen", "2024-07-02", "Gold", -100, "negative limit"],
    ["C00016", "周杰", "+86 175 0017 5000", "zhou.jie@example.cn", "青岛", "2024-07-03", "Standard", 2000,
     "=SUM(1,2) stays text"],
    ["C00017", "吴敏", "+86 (0)21 5888 1234", "wu.min@example.cn", "上海", "2024-07-04", "Gold", 9000, "landline"],
    ["C00018", "Emma Liu", "+86 173 0017 3000", "emma.liu@example", "Ningbo", "2024-07-05", "Standard", 2500, "email lacks a dot"],
    ["C00019", "黄磊", "+86 172 0017 2000", "huang.lei@example.cn", "长沙", "July 6, 2024", "贵宾", 45000, ""],
    ["C00020", "Chris\u3000Zhao", "+86 171 0017 1000", "CHRIS.ZHAO@EXAMPLE.COM", "Dalian", 45480.0, "Gold", 12000, ""],
    ["C00021", "Grace  Lee", "+86 189 0018 9001", "grace.lee@example.com", "Suzhou", "2024-03-07", "VIP", 15000,
     "typed again by a colleague"],
]


def build(path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "Customers"
    ws["A1"] = "Customer list — East sales team (edit freely; sheetsync checks it every hour)"
    ws["A1"].font = Font(bold=True, size=13)
    ws.append(HEADER)
    for cell in ws[2]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
    for values in ROWS:
        ws.append(values)
    for row in ws.iter_rows(min_row=3):
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # "=SUM(1,2)" is text typed by a person, not a formula
    ws["I9"].comment = Comment("Ask Wang whether this is the same person", "Mei")
    widths = [18, 16, 22, 28, 12, 14, 12, 12, 28]
    for index, width in enumerate(widths):
        ws.column_dimensions[chr(65 + index)].width = width
    wb.save(path)


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "sheetsync" / "data" / "demo" / "customers.xlsx"
    build(target)
    print(f"wrote {target}")
