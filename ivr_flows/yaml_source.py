"""Flow YAML read with ruamel.yaml: plain Python data plus the line/column of every key and value.

`parse_yaml(text)` returns a `YamlDocument`: `data` holds plain dicts, lists, str, int, float,
bool and None (YAML dates become ISO strings, mapping keys become strings), and
`key_mark(path)` / `value_mark(path)` give the 1-based position of the key or value at a path
like `("nodes", "menu", "options", "1", "next")` — or of the deepest part of the path that
exists, so an error about a missing key points at the mapping that lacks it.

Invalid YAML raises `ivr_flows.errors.YamlSyntaxError` with ruamel's own line, column and message.
So does YAML that is too big for a flow (`ivr_flows.limits`): text longer than ``max_flow_bytes``,
nesting deeper than ``max_depth``, more than ``max_yaml_values`` values once aliases are expanded
(a 600-byte "billion laughs" alias bomb is refused at the first value over the budget, not after
gigabytes), and tags other than YAML's plain types (``!!python/object/apply:…``, ``!!binary``,
``!custom``): a flow is plain data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

from ivr_flows.errors import YamlSyntaxError
from ivr_flows.limits import FlowLimits, flow_limits

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


_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq"))


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
    raise _Refused(f"a {type(value).__name__} value is not allowed in a flow (only texts, numbers, "
                   "true/false, null, mappings and lists)")


class _Refused(Exception):
    """A value a flow may not hold (message only; the caller adds where)."""


class _Converter:
    """ruamel's round-trip tree → plain data with marks, within the limits."""

    def __init__(self, doc: YamlDocument, limits: FlowLimits) -> None:
        self.doc = doc
        self.limits = limits
        self.values = 0

    def _count(self, mark: Mark) -> None:
        self.values += 1
        if self.values > self.limits.max_yaml_values:
            raise YamlSyntaxError(
                f"the flow holds more than {self.limits.max_yaml_values} values once YAML aliases are "
                "expanded (an alias bomb?); see docs/limits.md", mark.line, mark.column)

    @staticmethod
    def _tag(node: Any) -> str | None:
        tag = getattr(node, "tag", None)
        value = getattr(tag, "value", None) if tag is not None else None
        return value if isinstance(value, str) and value not in _PLAIN_TAGS else None

    def convert(self, node: Any, path: Path, mark: Mark, depth: int) -> Any:
        self._count(mark)
        if depth > self.limits.max_depth:
            raise YamlSyntaxError(f"mappings and lists nested deeper than {self.limits.max_depth} levels",
                                  mark.line, mark.column)
        tag = self._tag(node)
        if tag is not None:
            raise YamlSyntaxError(f"YAML tag {tag.replace('tag:yaml.org,2002:', '!!')!r} is not allowed "
                                  "in a flow (a flow is plain data)", mark.line, mark.column)
        if isinstance(node, CommentedMap):
            return self._mapping(node, path, depth)
        if isinstance(node, CommentedSeq):
            return self._sequence(node, path, depth)
        if isinstance(node, TaggedScalar):
            node = node.value
        try:
            return _plain_scalar(node)
        except _Refused as e:
            raise YamlSyntaxError(str(e), mark.line, mark.column) from None

    def _mapping(self, node: CommentedMap, path: Path, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        doc = self.doc
        for key, value in node.items():
            key_mark = _lc(node.lc.key(key), node)
            if isinstance(key, CommentedMap | CommentedSeq):
                raise YamlSyntaxError("a mapping key must be a text or a number", key_mark.line, key_mark.column)
            try:
                name = str(_plain_scalar(key.value if isinstance(key, TaggedScalar) else key))
            except _Refused as e:
                raise YamlSyntaxError(str(e), key_mark.line, key_mark.column) from None
            child = (*path, name)
            doc.keys[child] = key_mark
            value_mark = _lc(node.lc.value(key), node)
            if isinstance(value, CommentedMap | CommentedSeq) and value.lc.line is not None:
                value_mark = Mark(value.lc.line + 1, value.lc.col + 1)
            doc.values[child] = value_mark
            out[name] = self.convert(value, child, value_mark, depth + 1)
        return out

    def _sequence(self, node: CommentedSeq, path: Path, depth: int) -> list[Any]:
        items: list[Any] = []
        for index, value in enumerate(node):
            child = (*path, index)
            mark = _lc(node.lc.item(index), node)
            self.doc.keys[child] = mark
            self.doc.values[child] = mark
            items.append(self.convert(value, child, mark, depth + 1))
        return items


def _lc(position: Any, parent: Any) -> Mark:
    """A 1-based mark from ruamel's (line, column), or the parent's when ruamel has none."""
    if isinstance(position, tuple | list) and len(position) >= 2 and position[0] is not None:
        return Mark(int(position[0]) + 1, int(position[1]) + 1)
    lc = getattr(parent, "lc", None)
    line = getattr(lc, "line", None)
    return Mark(line + 1, (getattr(lc, "col", 0) or 0) + 1) if line is not None else Mark(1, 1)


def _too_deep(text: str, limits: FlowLimits) -> YamlSyntaxError:
    """Where the nesting first exceeds the limit (ruamel's composer recursed too deep)."""
    depth = 0
    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > limits.max_depth:
                    mark = event.start_mark
                    return YamlSyntaxError(f"mappings and lists nested deeper than {limits.max_depth} levels",
                                           mark.line + 1, mark.column + 1)
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except (YAMLError, RecursionError):
        pass
    return YamlSyntaxError(f"mappings and lists nested deeper than {limits.max_depth} levels", 1, 1)


def parse_yaml(text: str, limits: FlowLimits | None = None) -> YamlDocument:
    """Parse one YAML document with positions; raise YamlSyntaxError when it is not YAML or is over
    the flow limits."""
    limits = limits or flow_limits()
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > limits.max_flow_bytes:
        raise YamlSyntaxError(f"the flow is {size} bytes; the limit is {limits.max_flow_bytes} "
                              "(IVR_FLOW_MAX_BYTES, see docs/limits.md)", 1, 1)
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
    except RecursionError:
        raise _too_deep(text, limits) from None
    except YAMLError as e:
        raise YamlSyntaxError(f"invalid YAML: {e}", 1, 1) from e
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        # ruamel constructing something odd (a tag it half-knows): still the text's fault.
        raise YamlSyntaxError(f"invalid YAML: {type(e).__name__}: {str(e)[:200]}", 1, 1) from e
    doc = YamlDocument(data=None)
    doc.data = _Converter(doc, limits).convert(raw, (), Mark(1, 1), 0)
    return doc
