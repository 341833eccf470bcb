"""Reading layout YAML: a safe loader with line numbers and an alias-bomb guard, and every mistake
(schema or cross-key) as (file, line, key, message) so `sheetsync check` prints file:line: key: message.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from .errors import LayoutError
from .layout import Alerts, AlertsFile, Layout, LoadedLayout
from .layout_checks import Path_, _did_you_mean, backup_key_issues, semantic_issues

Issue = tuple[str, int, str, str]  # (file, line, dotted.key, message)
#: a layout expands to at most this many YAML nodes (aliases counted each time they are used)
MAX_NODES = 10_000


# -- loading: YAML with line numbers, every mistake as (file, line, key, message) ---------------

class _Loader(yaml.SafeLoader):
    """Safe loader (no tags beyond plain YAML) that counts nodes before building anything.

    Aliases are allowed (`<<: *defaults` shares column settings) but a document that expands to
    more than MAX_NODES nodes is refused, so an alias bomb costs milliseconds, not memory.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        _count_nodes(node)
        return super().construct_document(node)


def _count_nodes(root: yaml.Node) -> None:
    seen, stack = 0, [root]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise LayoutError(
                f"the layout expands to more than {MAX_NODES} YAML nodes (aliases counted each use)",
                hint="a layout is a few hundred keys; remove the repeated &anchor/*alias use")
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _lines(node: yaml.Node, path: Path_, out: dict[Path_, int]) -> None:
    """Record the 1-based line of every key and item (after the node count made this safe)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                sub = path + (key_node.value,)
                out.setdefault(sub, key_node.start_mark.line + 1)
                _lines(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.setdefault(path + (i,), item.start_mark.line + 1)
            _lines(item, path + (i,), out)


def _read_yaml(path: Path) -> tuple[Any, dict[Path_, int]]:
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LayoutError("layout file not found", where=where, issues=[(where, 0, "", "file not found")],
                          hint="check the path; layouts live in layouts/*.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LayoutError(f"cannot read layout: {exc}", where=where, issues=[(where, 0, "", str(exc))],
                          hint="save the layout as UTF-8 text") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        message = f"YAML syntax error: {exc.problem or exc}"
        raise LayoutError(message, where=f"{where}:{line}", issues=[(where, line, "", message)],
                          hint="fix the YAML syntax (indentation, quotes, colons)") from None
    except yaml.YAMLError as exc:
        raise LayoutError(f"YAML error: {exc}", where=where, issues=[(where, 0, "", str(exc))],
                          hint="fix the YAML syntax") from None
    except LayoutError as exc:
        raise LayoutError(exc.message, where=where, hint=exc.hint,
                          issues=[(where, 1, "", exc.message)]) from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    if node is not None:
        lines[()] = 1
        _lines(node, (), lines)
    return data, lines


def load_layout(path: str | Path) -> LoadedLayout:
    """Read and validate one layout file; raise LayoutError listing every mistake found."""
    path = Path(path)
    data, lines = _read_yaml(path)
    issues = layout_issues(str(path), data, lines)
    if issues:
        first = format_issue(issues[0])
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        raise LayoutError(f"invalid layout: {first}{more}", where=str(path), issues=issues,
                          hint="fix the keys listed; `sheetsync check` prints every mistake")
    layout = Layout.model_validate(data)
    return LoadedLayout(layout=layout, path=path.resolve(), name=layout.name or path.stem)


def layout_issues(file: str, data: Any, lines: dict[Path_, int]) -> list[Issue]:
    """Every mistake in a parsed layout: schema errors, then cross-references between keys."""
    if not isinstance(data, dict):
        return [(file, 1, "", "a layout must be a mapping of keys (table, source, columns, ...)")]
    found = _schema_issues(Layout, data, lines)
    for path, message in semantic_issues(data):
        found.setdefault((_dotted(path), message), _line(lines, path))
    issues = [(file, line, key, msg) for (key, msg), line in found.items()]
    return _merge_unions(sorted(issues, key=lambda i: (i[1], i[2])))


def _schema_issues(model: Any, data: dict, lines: dict[Path_, int]) -> dict[tuple[str, str], int]:
    """(dotted key, message) -> line of every pydantic error of `data` against `model`."""
    found: dict[tuple[str, str], int] = {}
    try:
        model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            path, key = _data_path(err["loc"], data, err["type"])
            found.setdefault((key, _message(err, path)), _line(lines, path))
    return found


def load_alerts_file(path: str | Path) -> Alerts:
    """Read the global alerts file (top key `alerts:`, as in a layout) with file:line:key errors."""
    path = Path(path)
    data, lines = _read_yaml(path)
    file = str(path)
    if not isinstance(data, dict):
        issues: list[Issue] = [(file, 1, "", "an alerts file is a mapping with one key, alerts:")]
    else:
        found = _schema_issues(AlertsFile, data, lines)
        issues = sorted(((file, line, key, msg) for (key, msg), line in found.items()),
                        key=lambda i: (i[1], i[2]))
    if issues:
        raise LayoutError(f"invalid alerts file: {format_issue(issues[0])}", where=file, issues=issues,
                          hint="fix the keys listed; the alerts section is described in docs/scheduling.md")
    return AlertsFile.model_validate(data).alerts


def _merge_unions(issues: list[Issue]) -> list[Issue]:
    """A union (`key: str | list`) fails once per member: report one wrong-type line per key."""
    out: list[Issue] = []
    for issue in issues:
        prev = out[-1] if out else None
        if prev and prev[1:3] == issue[1:3] and "wrong type" in prev[3] and "wrong type" in issue[3]:
            out[-1] = (*prev[:3], prev[3].split(" (got")[0] + " or " +
                       issue[3].removeprefix("wrong type: "))
        else:
            out.append(issue)
    return out


def _data_path(loc: Iterable[Any], data: Any, kind: str) -> tuple[Path_, str]:
    """The loc parts that exist in the data (union member tags dropped), and the dotted key."""
    path: list[Union[str, int]] = []
    node = data
    parts = list(loc)
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
        elif kind == "missing" and i == len(parts) - 1:
            return tuple(path), _dotted(tuple(path) + (part,))
    return tuple(path), _dotted(tuple(path))


def _dotted(path: Path_) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")


def _line(lines: dict[Path_, int], path: Path_) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _message(err: Any, path: Path_) -> str:
    kind, got = err["type"], err.get("input")
    if kind == "extra_forbidden":
        return "unknown key" + _did_you_mean(str(path[-1]) if path else "", _known_keys(path))
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        known = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", "")) or \
            [err.get("ctx", {}).get("expected", "")]
        fields = [p for p in path if isinstance(p, str)]
        what = "rule" if fields and fields[-1] in ("type", "normalise") else "value"
        return (f"unknown {what} {got!r}; known: {', '.join(known)}"
                + _did_you_mean(str(got), known, always=False))
    text = str(err["msg"]).removeprefix("Value error, ")
    if kind == "value_error" or kind.startswith("assertion"):
        return text
    return f"wrong type: {text.replace('Input should be ', 'expected ')} (got {_short(got)})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."



def _known_keys(path: Path_) -> list[str]:
    """Field names of the model the key at `path` sits in (for did-you-mean)."""
    model: Any = Layout
    for part in path[:-1]:
        model = _step(model, part)
        if model is None:
            return []
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _step(model: Any, part: Any) -> Any:
    if isinstance(model, type) and issubclass(model, BaseModel):
        field = model.model_fields.get(part) if isinstance(part, str) else None
        return _unwrap(field.annotation) if field else None
    if get_origin(model) in (dict, list):
        return _unwrap(get_args(model)[-1])
    return None


def _unwrap(annotation: Any) -> Any:
    """Optional[X] / X | None -> X; a union of a model and other things -> the model."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, getattr(__import__("types"), "UnionType", Union)):
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        containers = [a for a in args if get_origin(a) in (dict, list)]
        return (models or containers or args or [None])[0]
    return annotation



def layout_files(paths: Iterable[Path]) -> list[Path]:
    """Files to check: a directory means every *.yaml / *.yml directly in it."""
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            out.append(path)
    return out


def check_paths(paths: list[Path]) -> list[Issue]:
    """Load every layout named (files or directories) and return all their issues."""
    issues: list[Issue] = []
    for path in layout_files(paths):
        try:
            loaded = load_layout(path)
        except LayoutError as exc:
            issues += exc.issues or [(str(path), 0, "", exc.message)]
            continue
        issues += _workbook_issues(path, loaded)
        data, lines = _read_yaml(path)
        issues += [(str(path), _line(lines, at), _dotted(at), message)
                   for at, message in backup_key_issues(data, path.resolve().parent, os.environ)]
    return issues


def _workbook_issues(path: Path, loaded: LoadedLayout) -> list[Issue]:
    """An existing xlsx source that sheetsync could read but not write (.xlsb or Strict Open XML
    content under any name): refused by `check`, as the run refuses it before reading rows."""
    source = loaded.layout.source
    file = loaded.resolve(source.path) if source.kind == "xlsx" and source.path else None
    if file is None or not file.is_file():
        return []
    from .connectors.xlsx.guard import open_zip, unwritable_format
    try:
        kind = unwritable_format(open_zip(file.read_bytes(), str(file)))
    except Exception:  # not a zip, unreadable: the run says so with its own message
        return []
    if not kind:
        return []
    _, lines = _read_yaml(path)
    return [(str(path), _line(lines, ("source", "path")), "source.path",
             f"{source.path} is {kind}: sheetsync can read it but not write corrections back; "
             "open it in Excel and save it as an Excel Workbook (.xlsx)")]


def format_issue(issue: Issue) -> str:
    file, line, key, message = issue
    return f"{file}:{line}: {key}: {message}" if key else f"{file}:{line}: {message}"


def layout_schema() -> dict[str, Any]:
    """JSON Schema of a layout file, for editor autocompletion (`sheetsync check --schema`)."""
    schema = Layout.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "sheetsync layout", **{k: v for k, v in schema.items() if k != "title"}}
