"""Problem messages by stable code, in English and Chinese, rendered from a Problem's params.

Codes never change (they are stored with open problems); wording may. A missing or odd param
never raises: the message shows `?` in its place, so a report is always produced.
"""
from __future__ import annotations

import string
from typing import Any, Literal, Mapping

Lang = Literal["en", "zh"]
LANGS: tuple[str, ...] = ("en", "zh")
MAX_VALUE_CHARS = 80

#: code -> (title_en, title_zh, template_en, template_zh)
TEMPLATES: dict[str, tuple[str, str, str, str]] = {
    "required": ("Required value missing", "缺少必填值",
                 "{field} is required", "{field}：必填，不能为空"),
    "required_if": ("Required value missing", "缺少必填值",
                    "{field} is required because {other} is `{other_value}`",
                    "{field}：因为 {other} 为 `{other_value}`，此项必填"),
    "type.string": ("Not text", "不是文本",
                    "{field}: `{value}` is not text", "{field}：`{value}` 不是文本"),
    "type.integer": ("Not a whole number", "不是整数",
                     "{field}: `{value}` is not a whole number", "{field}：`{value}` 不是整数"),
    "type.number": ("Not a number", "不是数字",
                    "{field}: `{value}` is not a number", "{field}：`{value}` 不是数字"),
    "type.decimal": ("Not a decimal number", "不是有效的小数",
                     "{field}: `{value}` is not a decimal number",
                     "{field}：`{value}` 不是有效的小数"),
    "type.boolean": ("Not yes/no", "不是是/否",
                     "{field}: `{value}` is not yes/no (true/false)",
                     "{field}：`{value}` 不是“是/否”值"),
    "type.date": ("Not a date", "不是日期",
                  "{field}: `{value}` is not a valid date (expected YYYY-MM-DD)",
                  "{field}：`{value}` 不是有效的日期（应为 YYYY-MM-DD）"),
    "type.datetime": ("Not a date and time", "不是日期时间",
                      "{field}: `{value}` is not a valid date and time (expected YYYY-MM-DD HH:MM:SS)",
                      "{field}：`{value}` 不是有效的日期时间（应为 YYYY-MM-DD HH:MM:SS）"),
    "date_ambiguous": ("Ambiguous date", "日期有歧义",
                       "{field}: `{value}` could be {day_first} (day first) or {month_first} (month first); "
                       "please type it as YYYY-MM-DD",
                       "{field}：`{value}` 可能是 {day_first}（日在前），也可能是 {month_first}（月在前），"
                       "请写成 YYYY-MM-DD 格式"),
    "date_order": ("Date in the other order", "日期顺序不符",
                   "{field}: `{value}` is not a date in this column's order {order}; please type it as YYYY-MM-DD",
                   "{field}：`{value}` 不符合本列的日期顺序 {order}，请写成 YYYY-MM-DD 格式"),
    "type.enum": ("Not an allowed value", "不是允许的值",
                  "{field}: `{value}` is not one of {expected}",
                  "{field}：`{value}` 不是允许的值（{expected}）"),
    "type.email": ("Invalid email", "邮箱无效",
                   "{field}: `{value}` is not a valid address", "{field}：`{value}` 不是有效的地址"),
    "type.phone": ("Invalid phone number", "电话号码无效",
                   "{field}: `{value}` is not a valid phone number (region {region})",
                   "{field}：`{value}` 不是有效的电话号码（地区 {region}）"),
    "type.url": ("Invalid web address", "网址无效",
                 "{field}: `{value}` is not a valid web address (http or https)",
                 "{field}：`{value}` 不是有效的网址（http 或 https）"),
    "pattern": ("Wrong format", "格式不符",
                "{field}: `{value}` does not match the pattern `{pattern}`",
                "{field}：`{value}` 不符合格式 `{pattern}`"),
    "min": ("Below the minimum", "低于最小值",
            "{field}: `{value}` is below the minimum {limit}", "{field}：`{value}` 小于最小值 {limit}"),
    "max": ("Above the maximum", "超过最大值",
            "{field}: `{value}` is above the maximum {limit}", "{field}：`{value}` 大于最大值 {limit}"),
    "min_date": ("Date too early", "日期过早",
                 "{field}: `{value}` is before the earliest allowed date {limit}",
                 "{field}：`{value}` 早于允许的最早日期 {limit}"),
    "max_date": ("Date too late", "日期过晚",
                 "{field}: `{value}` is after the latest allowed date {limit}",
                 "{field}：`{value}` 晚于允许的最晚日期 {limit}"),
    "min_length": ("Too short", "太短",
                   "{field}: `{value}` is too short ({length} characters, at least {limit})",
                   "{field}：`{value}` 太短（{length} 个字符，至少 {limit} 个）"),
    "max_length": ("Too long", "太长",
                   "{field}: `{value}` is too long ({length} characters, at most {limit})",
                   "{field}：`{value}` 太长（{length} 个字符，最多 {limit} 个）"),
    "one_of": ("Not an allowed value", "不是允许的值",
               "{field}: `{value}` is not one of {expected}",
               "{field}：`{value}` 不是允许的值（{expected}）"),
    "too_long_cell": ("Too long for one cell", "超出单元格长度",
                      "{field}: this text has {length} characters, more than one cell of this sheet can hold "
                      "({limit}); the saved value is kept until the text is shortened",
                      "{field}：这段文字有 {length} 个字符，超过本表一个单元格能容纳的 {limit} 个；"
                      "缩短之前保留已保存的值"),
    "too_long_stored": ("Saved value too long for this sheet", "已保存的值超出单元格长度",
                        "{field}: the saved value has {length} characters, more than one cell of this sheet "
                        "can hold ({limit}); sheetsync keeps it and leaves this cell as it is",
                        "{field}：已保存的值有 {length} 个字符，超过本表一个单元格能容纳的 {limit} 个；"
                        "sheetsync 保留该值，此单元格保持不变"),
    "unique": ("Value already used", "值重复",
               "{field}: `{value}` is already used by {other}", "{field}：`{value}` 已被 {other} 使用"),
    "compare": ("Fields disagree", "字段不一致",
                "{left} `{left_value}` must be {op} {right} `{right_value}`",
                "{left} `{left_value}` 必须 {op} {right} `{right_value}`"),
    "corrected": ("Corrected", "已更正",
                  "changed from `{old}` to `{new}` by sheetsync (rule: {rule})",
                  "sheetsync 已将 `{old}` 改为 `{new}`（规则：{rule}）"),
    "corrected_hidden": ("Hidden characters removed", "已删除看不见的字符",
                         "removed {count} hidden character(s) (invisible spaces or marks); "
                         "the text you see is unchanged",
                         "sheetsync 已删除 {count} 个看不见的字符（隐藏的空格或控制符），看到的文字没有变化"),
    "controls_removed": ("Hidden characters removed", "已删除隐藏字符",
                         "{field}: sheetsync removed {count} hidden control character(s) (such as ESC or "
                         "BEL, often pasted in from another program): a sheet cannot show or keep them. "
                         "The text is now `{new}`",
                         "{field}：sheetsync 删除了 {count} 个隐藏的控制字符（例如 ESC、BEL，多为从其他程序粘贴"
                         "而来），表格无法显示或保存这些字符。现在的内容为 `{new}`"),
    "duplicate": ("Possible duplicate", "可能重复",
                  "possible duplicate of row {other_row} ({other_key}): {reason}",
                  "可能与第 {other_row} 行（{other_key}）重复：{reason}"),
    "conflict": ("Conflicting edits", "编辑冲突",
                 "{field} was changed in the sheet to `{sheet_value}` and in the store to "
                 "`{store_value}` (was `{base_value}`); policy {policy} kept `{kept}`",
                 "{field} 在表格中改为 `{sheet_value}`，在数据库中改为 `{store_value}`"
                 "（原为 `{base_value}`）；按策略 {policy} 保留 `{kept}`"),
    "conflict_row": ("Conflicting edits", "编辑冲突",
                     "row {row} ({key}) has conflicting edits in {fields}",
                     "第 {row} 行（{key}）的 {fields} 有冲突的编辑"),
    "protected": ("Protected field", "受保护字段",
                  "{field} is protected: the edit `{attempted}` was reverted to `{value}`",
                  "{field} 受保护：修改 `{attempted}` 已恢复为 `{value}`"),
    "pushed": ("Updated from the store", "已从数据库更新",
               "updated from the store ({source}): was `{old}`",
               "已从数据库更新（{source}）：原为 `{old}`"),
    "deleted": ("Row deleted", "行已删除",
                "row {row} ({key}) was deleted from the sheet; the record is kept as deleted",
                "第 {row} 行（{key}）已从表格删除；记录已标记为删除并保留"),
    "merged_away": ("Merged into another record", "已合并到另一条记录",
                    "this row ({key}) was merged into {other_key}, which keeps its details; sheetsync "
                    "removes this row at its next sync. If the row stays, please delete it by hand",
                    "此行（{key}）已合并到 {other_key}，其信息已保存在 {other_key} 中；sheetsync 会在下次同步时"
                    "删除此行。如果此行仍在，请手动删除"),
    "merged_edited": ("Merged row was edited", "已合并的行被修改",
                      "this row ({key}) was merged into {other_key}, so changes typed here are not saved. "
                      "Copy anything you still need into the row of {other_key}, then delete this row",
                      "此行（{key}）已合并到 {other_key}，在此处的修改不会保存。请把仍需要的内容复制到 "
                      "{other_key} 那一行，然后删除此行"),
    "held_back": ("Row held back", "行未入库",
                  "row {row} ({key}) is held back (not saved) until these are fixed: {fields}",
                  "第 {row} 行（{key}）在修正 {fields} 之前不会保存"),
    "key_taken": ("Key already in use", "编号已被占用",
                  "key {key} already belongs to row {other_row}: this row is not saved until its key is "
                  "changed back or to a new one",
                  "编号 {key} 已属于第 {other_row} 行：本行在改回原编号或改为新编号之前不会保存"),
    "key_missing": ("Key missing", "缺少编号",
                    "the key {key} was removed from this row: it is not saved until the key is typed back",
                    "本行的编号 {key} 被删除：在重新填写编号之前本行不会保存"),
    "cell_error": ("Formula error", "公式错误",
                   "{field}: the cell shows the error `{value}`; the stored value is kept until it is fixed",
                   "{field}：单元格显示错误 `{value}`；修正之前保留已存储的值"),
    "formula_uncalculated": ("Formula without a result", "公式没有计算结果",
                             "{field}: the formula `{value}` has no result saved in the file (a program other "
                             "than Excel wrote it); open the file in Excel and save it. Until then the stored "
                             "value is kept",
                             "{field}：公式 `{value}` 在文件中没有保存计算结果（文件由 Excel 以外的程序写入）；"
                             "请用 Excel 打开并保存该文件。在此之前保留已存储的值"),
    "column_missing": ("Column not found", "找不到列",
                       "the column {header} is not in this sheet any more (renamed or deleted), so sheetsync "
                       "kept the values it had stored for it and changed none of them. Rename the column "
                       "back to {header}, or ask the admin to set its new name in the layout",
                       "本表中找不到列 {header}（可能被改名或删除），sheetsync 保留了该列已存储的值，"
                       "没有做任何改动。请把列名改回 {header}，或请管理员在布局中设置新的列名"),
    "mass_delete": ("Rows not deleted", "未删除行",
                    "{gone} of the {rows} rows are gone from this sheet, more than the {limit} that "
                    "sheetsync deletes at once, so it deleted none of them. If rows were removed by "
                    "mistake, put them back; if they are meant to go, ask the admin to confirm the deletion",
                    "本表 {rows} 行中有 {gone} 行已不在表中，超过 sheetsync 一次最多删除的 {limit} 行，"
                    "因此一行也没有删除。如果是误删，请把这些行恢复；如果确实要删除，请联系管理员确认"),
    "formula_cell": ("Computed cell", "公式单元格",
                     "{field}: this cell is computed by a formula, so sheetsync left it as it is. "
                     "Please fix the cells it is computed from.",
                     "{field}：此单元格由公式计算，sheetsync 没有改动它。请修正公式引用的单元格。"),
    "row_scope": ("Outside this sheet's rows", "超出本表范围",
                  "this sheet may only create and edit rows with {scope_field} {scope}: "
                  "the edit `{attempted}` was reverted to `{value}`",
                  "本表只能新增和修改 {scope_field} 为 {scope} 的行：修改 `{attempted}` 已恢复为 `{value}`"),
    "row_scope_new": ("Row outside this sheet's scope", "新行超出本表范围",
                      "row {row} ({key}) is not saved: this sheet may only create rows with {scope_field} {scope}",
                      "第 {row} 行（{key}）未保存：本表只能新增 {scope_field} 为 {scope} 的行"),
    "read_only": ("Read-only sheet", "只读表格",
                  "this sheet is read-only: the edit `{attempted}` was reverted to `{value}`",
                  "本表只读：修改 `{attempted}` 已恢复为 `{value}`"),
    "read_only_new": ("Read-only sheet", "只读表格",
                      "row {row} ({key}) is not saved: this sheet is read-only",
                      "第 {row} 行（{key}）未保存：本表只读"),
}

#: optional tails appended when the param is present and non-empty
EXTRAS: dict[str, tuple[str, str]] = {
    "suggestions": (" (closest: {suggestions})", "（最接近：{suggestions}）"),
}

#: params each code's message uses, for documentation and the tests
PARAMS: dict[str, tuple[str, ...]] = {
    code: tuple(sorted({f for t in (tpl[2], tpl[3])
                        for _, f, _, _ in string.Formatter().parse(t) if f}))
    for code, tpl in TEMPLATES.items()
}


class _Params(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _short(value: Any) -> Any:
    """Params as shown: lists joined, long cell values cut so a note stays readable."""
    if isinstance(value, (list, tuple, set, frozenset)):
        value = ", ".join(str(v) for v in value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS - 1] + "…"
    return value


def _index(lang: str) -> int:
    return 1 if lang == "zh" else 0


def render(code: str, params: Mapping[str, Any] | None = None, lang: str = "en") -> str:
    """The message for one problem. A `message` param (the layout's own text) wins."""
    params = dict(params or {})
    custom = params.get("message")
    if isinstance(custom, str) and custom.strip():
        return custom
    shown = _Params({k: _short(v) for k, v in params.items()})
    tpl = TEMPLATES.get(code)
    if tpl is None:
        detail = ", ".join(f"{k}={shown[k]}" for k in sorted(shown))
        return f"{code}: {detail}" if detail else code
    i = _index(lang)
    text = _format(tpl[2 + i], shown)
    for key, tails in EXTRAS.items():
        if shown.get(key) not in (None, ""):
            text += _format(tails[i], shown)
    return text


def _format(template: str, params: _Params) -> str:
    try:
        return string.Formatter().vformat(template, (), params)
    except (ValueError, IndexError, KeyError, AttributeError, TypeError):
        return template  # a broken param never breaks a report


def title(code: str, lang: str = "en") -> str:
    """A short name for the problem kind (report tab column, summaries)."""
    tpl = TEMPLATES.get(code)
    return tpl[_index(lang)] if tpl else code
