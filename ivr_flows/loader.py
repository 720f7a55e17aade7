"""Loading and validating flow files: YAML → located checks → `Flow`, or every error at once.

`load_flow_text(text, source)` / `load_flow_file(path)` return a `Flow` or raise
`FlowValidationError` whose `.errors` lists every `FlowIssue` found in the file: invalid YAML,
unknown or misspelt keys and node types (with a "did you mean"), wrong types, bad templates,
missing targets, outcomes with no edge, unreachable nodes, loops with no caller input, prompt
files that do not exist or escape the prompt folder, URLs on hosts the tenant may not use.
`validate_paths(paths)` checks files and folders (their `*.yaml`/`*.yml`) and returns the issues.

Nothing a flow file holds makes the loader raise anything but `FlowValidationError`: text that is
not UTF-8 (the line and column of the first bad byte), YAML over the limits of `ivr_flows.limits`
(size, nesting, alias expansion, tags), too many nodes, a node too large, a template too costly.

Optional tenant knowledge sharpens the checks: `prompt_dir` (prompt files must exist there),
`allowed_url_hosts` (URL prompts and webhooks), `known_flows` (goto_flow targets), and
`node_types` (the table of node types, to add later ones such as `ask_ai`).
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ivr_flows.errors import FlowIssue, FlowValidationError, YamlSyntaxError
from ivr_flows.flow import NODE_ID_RE, Flow, FlowHeader
from ivr_flows.flow_graph import check_graph
from ivr_flows.limits import FlowLimits, flow_limits
from ivr_flows.nodes import NODE_TYPES
from ivr_flows.nodes.base import LoadEnv, Node, did_you_mean
from ivr_flows.yaml_source import Mark, YamlDocument, parse_yaml

_TYPE_WORDS = {
    "string_type": "expected a text",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "none_required": "expected nothing (null)",
}


def _strip_annotation(annotation: Any) -> Any:
    """The model, dict or list type inside Optional/Union/Annotated, if any."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            inner = _strip_annotation(arg)
            if (isinstance(inner, type) and issubclass(inner, BaseModel)) or typing.get_origin(inner) in (
                dict,
                list,
            ):
                return inner
    return annotation


def _field_names_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys a mapping at `loc` (inside `model`) may have, for "did you mean"."""
    current: Any = model
    for part in loc:
        current = _strip_annotation(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            by_alias = {(f.alias or name): f for name, f in current.model_fields.items()}
            field = current.model_fields.get(str(part)) or by_alias.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        elif typing.get_origin(current) in (list, tuple):
            current = typing.get_args(current)[0]
        else:
            return []
    current = _strip_annotation(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [(f.alias or name) for name, f in current.model_fields.items()]
    return []


def _real_loc(loc: tuple[Any, ...], raw: Any) -> tuple[tuple[Any, ...], bool]:
    """The part of a pydantic `loc` that exists in the raw data, and whether union tags were cut."""
    real: list[Any] = []
    current = raw
    for index, part in enumerate(loc):
        if part == "[key]":
            return tuple(real), False
        if isinstance(current, dict) and str(part) in current:
            current = current[str(part)]
            real.append(str(part))
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
            real.append(part)
        elif index == len(loc) - 1 and isinstance(current, dict):
            real.append(part)  # a missing key or an extra key's name
        else:
            return tuple(real), True
    return tuple(real), False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(error: Mapping[str, Any], field_names: list[str]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        return f"unknown key '{key}'{did_you_mean(key, field_names)}"
    if kind == "missing":
        return f"missing required key '{error['loc'][-1]}'"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "literal_error":
        return f"expected one of {error.get('ctx', {}).get('expected', '')}, got {_short(error.get('input'))}"
    if kind in _TYPE_WORDS:
        return f"{_TYPE_WORDS[kind]}, got {_short(error.get('input'))}"
    message = str(error["msg"])
    return message[:1].lower() + message[1:]


def _pydantic_issues(
    error: ValidationError,
    model: type[BaseModel],
    raw: Any,
    prefix: tuple[Any, ...],
    node: str | None,
    doc: YamlDocument,
    source: str,
) -> list[FlowIssue]:
    grouped: dict[tuple[Any, ...], list[tuple[Mapping[str, Any], bool]]] = {}
    for item in error.errors(include_url=False):
        real, tagged = _real_loc(tuple(item["loc"]), raw)
        grouped.setdefault(real, []).append((item, tagged))
    issues: list[FlowIssue] = []
    for real, items in grouped.items():
        first = items[0][0]
        kind = first["type"]
        where = ".".join(str(p) for p in real)
        if kind == "extra_forbidden":
            mark = doc.key_mark((*prefix, *real))
            message = _describe(first, _field_names_at(model, real[:-1]))
            parent = ".".join(str(p) for p in real[:-1])
            message = f"{parent}: {message}" if parent else message
        elif kind == "missing":
            mark = doc.key_mark((*prefix, *real[:-1])) if real[:-1] else doc.key_mark(prefix)
            parent = ".".join(str(p) for p in real[:-1])
            message = _describe(first, [])
            message = f"{parent}: {message}" if parent else message
        elif "[key]" in first["loc"]:
            mark = doc.key_mark((*prefix, *real))
            message = f"{where}: {_describe(first, [])}"
        else:
            mark = doc.value_mark((*prefix, *real)) if real else doc.key_mark(prefix)
            if len(items) > 1 or items[0][1]:
                if real and real[-1] == "next":
                    detail = f"expected a node id or a mapping of outcome: node id, got {_short(first.get('input'))}"
                elif not prefix and real[:1] == ("vars",):
                    detail = f"expected a text, a number, true/false or null, got {_short(first.get('input'))}"
                else:
                    described = list(dict.fromkeys(_describe(i, []).split(", got")[0] for i, _ in items))
                    detail = " or ".join(described) + f", got {_short(first.get('input'))}"
            else:
                detail = _describe(first, [])
            message = f"{where}: {detail}" if where else detail
        if node is None and not prefix and kind == "missing" and not real[:-1]:
            mark = Mark(1, 1)
        issues.append(FlowIssue(source, mark.line, mark.column, node, message))
    return issues


def _node_issues(
    node_id: str,
    raw: Any,
    node_types: Mapping[str, type[Node]],
    env: LoadEnv,
    doc: YamlDocument,
    source: str,
) -> tuple[Node | None, list[FlowIssue]]:
    path = ("nodes", node_id)

    def at(mark: Mark, message: str) -> FlowIssue:
        return FlowIssue(source, mark.line, mark.column, node_id, message)

    issues: list[FlowIssue] = []
    if not NODE_ID_RE.match(node_id):
        issues.append(at(doc.key_mark(path), "a node id is letters, digits, '_' or '-', starting with a letter or '_'"))
    if not isinstance(raw, dict):
        issues.append(at(doc.value_mark(path), f"a node is a mapping with a 'type', got {_short(raw)}"))
        return None, issues
    if "type" not in raw:
        issues.append(at(doc.key_mark(path), f"missing required key 'type' (one of {', '.join(node_types)})"))
        return None, issues
    node_type = raw["type"]
    cls = node_types.get(str(node_type)) if isinstance(node_type, str) else None
    if cls is None:
        issues.append(
            at(
                doc.value_mark((*path, "type")),
                f"unknown node type {_short(node_type)}{did_you_mean(str(node_type), node_types)}; "
                f"known types: {', '.join(node_types)}",
            )
        )
        return None, issues
    try:
        node = cls.model_validate(raw)
    except ValidationError as e:
        issues += _pydantic_issues(e, cls, raw, path, node_id, doc, source)
        return None, issues
    except (RecursionError, MemoryError, OverflowError, TypeError, ValueError) as e:
        # Not a pydantic error: something in the node's values our validators did not expect.
        issues.append(at(doc.key_mark(path), f"cannot validate this node: {type(e).__name__}: {str(e)[:200]}"))
        return None, issues
    for problem in node.check(env):
        where = ".".join(str(p) for p in problem.loc)
        message = f"{where}: {problem.message}" if where else problem.message
        issues.append(at(doc.value_mark((*path, *problem.loc)), message))
    return node, issues


def load_flow_text(
    text: str,
    source: str,
    *,
    prompt_dir: Path | str | None = None,
    allowed_url_hosts: Iterable[str] | None = None,
    known_flows: Iterable[str] | None = None,
    node_types: Mapping[str, type[Node]] | None = None,
    limits: FlowLimits | None = None,
) -> Flow:
    """Validate a flow's YAML text; `source` names it in errors (a path, or `db:tenant/flow@v3`)."""
    return _load(text, source, prompt_dir=prompt_dir, allowed_url_hosts=allowed_url_hosts,
                 known_flows=known_flows, node_types=node_types, limits=limits)[0]


def _load(
    text: str,
    source: str,
    *,
    prompt_dir: Path | str | None,
    allowed_url_hosts: Iterable[str] | None,
    known_flows: Iterable[str] | None,
    node_types: Mapping[str, type[Node]] | None,
    limits: FlowLimits | None,
) -> tuple[Flow, dict[str, Any]]:
    limits = limits or flow_limits()
    types_table = dict(node_types) if node_types is not None else NODE_TYPES
    try:
        doc = parse_yaml(text, limits)
    except YamlSyntaxError as e:
        raise FlowValidationError([FlowIssue(source, e.line, e.column, None, e.message)]) from e
    data = doc.data
    if not isinstance(data, dict):
        raise FlowValidationError(
            [FlowIssue(source, 1, 1, None, "a flow file is a mapping with 'flow', 'start' and 'nodes'")]
        )
    size_issues = _size_issues(data, doc, source, limits)
    if size_issues:
        raise FlowValidationError(size_issues)
    issues: list[FlowIssue] = []
    header: FlowHeader | None = None
    try:
        header = FlowHeader.model_validate(data)
    except ValidationError as e:
        issues += _pydantic_issues(e, FlowHeader, data, (), None, doc, source)
    raw_nodes = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
    timezone = data.get("timezone") if isinstance(data.get("timezone"), str) else None
    env = LoadEnv(
        prompt_dir=Path(prompt_dir) if prompt_dir is not None else None,
        allowed_url_hosts=frozenset(allowed_url_hosts) if allowed_url_hosts is not None else None,
        known_flows=frozenset(known_flows) if known_flows is not None else None,
        flow_timezone=timezone,
    )
    nodes: dict[str, Node] = {}
    for node_id, raw in raw_nodes.items():
        node, node_issues = _node_issues(node_id, raw, types_table, env, doc, source)
        issues += node_issues
        if node is not None:
            nodes[node_id] = node
    start = data.get("start") if isinstance(data.get("start"), str) else None
    for problem in check_graph(nodes, raw_nodes, start):
        mark = doc.key_mark(problem.path) if problem.at_key else doc.value_mark(problem.path)
        issues.append(FlowIssue(source, mark.line, mark.column, problem.node, problem.message))
    if issues or header is None:
        raise FlowValidationError(_dedupe(issues))
    flow = Flow(
        name=header.flow,
        start=header.start,
        nodes=nodes,
        source=source,
        description=header.description,
        language=header.language,
        timezone=header.timezone,
        vars=header.vars,
    )
    return flow, data


@dataclass(frozen=True, slots=True)
class ValidatedParts:
    """A flow that passed validation, as plain data: what a worker process hands back (picklable),
    for `rebuild_flow` to turn into a `Flow` node by node (see `esl_controller.flow_loading`)."""

    source: str
    header: dict[str, Any]                      # the top-level keys but `nodes`
    nodes: tuple[tuple[str, bytes], ...]        # (node id, the node's data pickled)


def validate_to_parts(text: str, source: str, options: Mapping[str, Any]) -> ValidatedParts | list[FlowIssue]:
    """Validate like `load_flow_text`; the flow's plain data when valid, else its issues."""
    import pickle

    given = dict(options)
    try:
        _, data = _load(text, source, prompt_dir=given.get("prompt_dir"),
                        allowed_url_hosts=given.get("allowed_url_hosts"), known_flows=given.get("known_flows"),
                        node_types=given.get("node_types"), limits=given.get("limits"))
    except FlowValidationError as e:
        return e.errors
    header = {k: v for k, v in data.items() if k != "nodes"}
    nodes = tuple((node_id, pickle.dumps(raw, protocol=pickle.HIGHEST_PROTOCOL))
                  for node_id, raw in data["nodes"].items())
    return ValidatedParts(source, header, nodes)


def rebuild_flow(parts: ValidatedParts, *, node_types: Mapping[str, type[Node]] | None = None,
                 between_nodes: Callable[[], None] | None = None) -> Flow:
    """The `Flow` of data that already passed validation (no graph or file checks again); calls
    `between_nodes` after each node, so the rebuilding greenlet can let others run."""
    import pickle

    types_table = dict(node_types) if node_types is not None else NODE_TYPES
    header = FlowHeader.model_validate({**parts.header, "nodes": {node_id: None for node_id, _ in parts.nodes}})
    nodes: dict[str, Node] = {}
    for node_id, blob in parts.nodes:
        raw = pickle.loads(blob)   # our own worker's plain data
        nodes[node_id] = types_table[raw["type"]].model_validate(raw)
        if between_nodes is not None:
            between_nodes()
    return Flow(name=header.flow, start=header.start, nodes=nodes, source=parts.source,
                description=header.description, language=header.language, timezone=header.timezone,
                vars=header.vars)


def _size_issues(data: dict[str, Any], doc: YamlDocument, source: str, limits: FlowLimits) -> list[FlowIssue]:
    """Too many nodes, or a node too large to be rebuilt in one short step (see docs/limits.md)."""
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, dict):
        return []
    if len(raw_nodes) > limits.max_nodes:
        mark = doc.key_mark(("nodes",))
        return [FlowIssue(source, mark.line, mark.column, None,
                          f"the flow has {len(raw_nodes)} nodes; the limit is {limits.max_nodes} "
                          "(IVR_FLOW_MAX_NODES)")]
    issues = []
    for node_id, raw in raw_nodes.items():
        size = len(json.dumps(raw, default=str, ensure_ascii=False))
        if size > limits.max_node_bytes:
            mark = doc.key_mark(("nodes", node_id))
            issues.append(FlowIssue(source, mark.line, mark.column, node_id,
                                    f"the node is {size} bytes of data; the limit is {limits.max_node_bytes} "
                                    "(IVR_FLOW_MAX_NODE_BYTES)"))
    return issues


def _dedupe(issues: list[FlowIssue]) -> list[FlowIssue]:
    return list(dict.fromkeys(issues))


def decode_flow_bytes(data: bytes, source: str) -> str:
    """A flow file's bytes as text: UTF-8 (a BOM is dropped), else a `FlowValidationError` naming the
    line and column of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1:].decode("utf-8", errors="replace")) + 1
        raise FlowValidationError([FlowIssue(
            source, line, column, None,
            f"the file is not UTF-8 text (byte 0x{data[e.start]:02x}); save it as UTF-8")]) from None


def read_flow_file(path: Path | str, limits: FlowLimits | None = None) -> str:
    """A flow file's text, refused (`FlowValidationError`) when it is too large or not UTF-8."""
    limits = limits or flow_limits()
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > limits.max_flow_bytes:
            raise FlowValidationError([FlowIssue(
                str(path), 1, 1, None,
                f"the flow is {size} bytes; the limit is {limits.max_flow_bytes} (IVR_FLOW_MAX_BYTES)")])
        data = file.read_bytes()
    except OSError as e:
        raise FlowValidationError([FlowIssue(str(path), 1, 1, None,
                                             f"cannot read the file: {e}")]) from e
    return decode_flow_bytes(data, str(path))


def load_flow_file(path: Path | str, **options: Any) -> Flow:
    """Read and validate a flow file (options as for `load_flow_text`)."""
    text = read_flow_file(path, options.get("limits"))
    return load_flow_text(text, str(path), **options)


def flow_files(paths: Iterable[Path | str]) -> list[Path]:
    """The files named, and the `*.yaml`/`*.yml` files inside folders named (sorted)."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            found.append(path)
    return found


def validate_paths(paths: Iterable[Path | str], **options: Any) -> list[FlowIssue]:
    """Every issue in the flow files and folders given (empty when all are valid)."""
    issues: list[FlowIssue] = []
    for file in flow_files(paths):
        try:
            load_flow_file(file, **options)
        except FlowValidationError as e:
            issues += e.errors
    return issues
