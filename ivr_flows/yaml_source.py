"""Flow YAML read with ruamel.yaml: plain Python data plus the line/column of every key and value.

`parse_yaml(text)` returns a `YamlDocument`: `data` holds plain dicts, lists, str, int, float,
bool and None (YAML dates become ISO strings, mapping keys become strings), and
`key_mark(path)` / `value_mark(path)` give the 1-based position of the key or value at a path
like `("nodes", "menu", "options", "1", "next")` — or of the deepest part of the path that
exists, so an error about a missing key points at the mapping that lacks it.

Invalid YAML raises `ivr_flows.errors.YamlSyntaxError` with ruamel's own line, column and message.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ivr_flows.errors import YamlSyntaxError

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based line and column."""

    line: int
    column: int


@dataclass(slots=True)
class YamlDocument:
    data: Any
    keys: dict[Path, Mark] = field(default_factory=dict)
    values: dict[Path, Mark] = field(default_factory=dict)

    def _deepest(self, table: dict[Path, Mark], path: Path) -> Mark:
        normalized = tuple(str(p) if not isinstance(p, int) else p for p in path)
        for end in range(len(normalized), 0, -1):
            mark = table.get(normalized[:end])
            if mark is not None:
                return mark
        return Mark(1, 1)

    def key_mark(self, path: Path) -> Mark:
        """Where the key at `path` is written (its nearest existing ancestor if absent)."""
        return self._deepest(self.keys, path)

    def value_mark(self, path: Path) -> Mark:
        """Where the value at `path` starts (its nearest existing ancestor's key if absent)."""
        normalized = tuple(str(p) if not isinstance(p, int) else p for p in path)
        if normalized in self.values:
            return self.values[normalized]
        return self._deepest(self.keys, path)


def _plain_scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _convert(node: Any, path: Path, doc: YamlDocument) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            name = str(_plain_scalar(key))
            child = (*path, name)
            line, column = node.lc.key(key)
            doc.keys[child] = Mark(line + 1, column + 1)
            vline, vcolumn = node.lc.value(key)
            if isinstance(value, CommentedMap | CommentedSeq) and value.lc.line is not None:
                vline, vcolumn = value.lc.line, value.lc.col
            doc.values[child] = Mark(vline + 1, vcolumn + 1)
            out[name] = _convert(value, child, doc)
        return out
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, value in enumerate(node):
            child = (*path, index)
            line, column = node.lc.item(index)
            doc.keys[child] = Mark(line + 1, column + 1)
            doc.values[child] = Mark(line + 1, column + 1)
            items.append(_convert(value, child, doc))
        return items
    return _plain_scalar(node)


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document with positions; raise YamlSyntaxError when it is not YAML."""
    yaml = YAML(typ="rt")
    try:
        raw = yaml.load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = e.problem or e.context or "invalid YAML"
        if e.context and e.problem:
            context = e.context
            started = e.context_mark
            if started is not None and (started.line, started.column) != (mark.line if mark else -1, -1):
                context = f"{context} that starts at line {started.line + 1}, column {started.column + 1}"
            problem = f"{e.problem} ({context})"
        raise YamlSyntaxError(f"invalid YAML: {problem}", line, column) from e
    except YAMLError as e:
        raise YamlSyntaxError(f"invalid YAML: {e}", 1, 1) from e
    doc = YamlDocument(data=None)
    doc.data = _convert(raw, (), doc)
    return doc
