"""Checks on the graph of a flow: edges, targets, reachability, loops with no caller input.

Works on the nodes that validated, plus the raw `next`-like values of the ones that did not (so
one broken node does not make everything after it "unreachable"). Returns located problems as
(path in the YAML, use the key's position?, node id, message) for the loader to place.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ivr_flows.nodes.base import Loc, Node, did_you_mean


@dataclass(frozen=True, slots=True)
class GraphProblem:
    path: Loc  # from the document root
    at_key: bool
    node: str | None
    message: str


def raw_targets(raw: Any) -> list[tuple[Loc, str]]:
    """(where, node id) that a node which failed validation seems to point at (best effort)."""
    if not isinstance(raw, dict):
        return []
    found: list[tuple[Loc, str]] = []
    nxt = raw.get("next")
    if isinstance(nxt, str):
        found.append((("next",), nxt))
    elif isinstance(nxt, dict):
        found += [(("next", str(k)), v) for k, v in nxt.items() if isinstance(v, str)]
    options = raw.get("options")
    if isinstance(options, dict):
        for key, option in options.items():
            if isinstance(option, str):
                found.append((("options", str(key)), option))
            elif isinstance(option, dict) and isinstance(option.get("next"), str):
                found.append((("options", str(key), "next"), option["next"]))
    conditions = raw.get("conditions")
    if isinstance(conditions, list):
        found += [
            (("conditions", i, "next"), c["next"])
            for i, c in enumerate(conditions)
            if isinstance(c, dict) and isinstance(c.get("next"), str)
        ]
    if isinstance(raw.get("default"), str):
        found.append((("default",), raw["default"]))
    return found


def _edge_problems(node_id: str, node: Node, declared: Iterable[str]) -> Iterator[GraphProblem]:
    base: Loc = ("nodes", node_id)
    declared = list(declared)
    outcomes = node.outcomes()
    own = {e.outcome: e for e in node.own_edges()}
    seen_targets: set[tuple[Loc, str]] = set()
    if isinstance(node.next, dict):
        for outcome in node.next:
            if outcome not in outcomes:
                yield GraphProblem(
                    (*base, "next", outcome),
                    True,
                    node_id,
                    f"'{outcome}' is not an outcome of a {node.TYPE} node{did_you_mean(outcome, outcomes)}; "
                    f"its outcomes are {', '.join(outcomes)}",
                )
            elif outcome in own:
                where = ".".join(str(p) for p in own[outcome].loc)
                yield GraphProblem(
                    (*base, "next", outcome),
                    True,
                    node_id,
                    f"outcome '{outcome}' has two edges ('{where}' and 'next.{outcome}')",
                )
    edges = node.edges()
    for edge in edges:
        if edge.target not in declared and (edge.loc, edge.target) not in seen_targets:
            seen_targets.add((edge.loc, edge.target))
            yield GraphProblem(
                (*base, *edge.loc),
                False,
                node_id,
                f"outcome '{edge.outcome}' goes to node '{edge.target}', which does not exist"
                f"{did_you_mean(edge.target, declared)}",
            )
    if isinstance(node.next, str) and not any(e.loc == ("next",) for e in edges):
        yield GraphProblem(
            (*base, "next"),
            False,
            node_id,
            f"a {node.TYPE} node has no outcome for a plain 'next' to follow (it ends the flow); "
            "map 'error' explicitly if needed: next: {error: <node>}",
        )
    covered = {e.outcome for e in edges}
    for outcome in outcomes:
        if outcome not in covered and outcome not in node.optional_outcomes():
            yield GraphProblem(
                base,
                True,
                node_id,
                f"outcome '{outcome}' has no edge (add it under 'next', e.g. next: {{{outcome}: <node>}})",
            )


def _successors(nodes: Mapping[str, Node], raw_nodes: Mapping[str, Any], node_id: str) -> list[str]:
    node = nodes.get(node_id)
    if node is not None:
        return [e.target for e in node.edges()]
    return [target for _, target in raw_targets(raw_nodes.get(node_id))]


def _input_free_cycles(nodes: Mapping[str, Node], order: list[str]) -> list[list[str]]:
    """Strongly connected parts (Tarjan) of the graph of valid nodes that never wait for input."""
    quiet = [n for n in order if n in nodes and not nodes[n].WAITS_FOR_INPUT]
    quiet_set = set(quiet)
    graph = {n: [t for t in dict.fromkeys(e.target for e in nodes[n].edges()) if t in quiet_set] for n in quiet}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                result.append(sorted(component, key=order.index))

    for v in quiet:
        if v not in index:
            visit(v)
    # report the cycle as a path: walk inside the component from its first node back to it
    cycles = []
    for component in sorted(result, key=lambda c: order.index(c[0])):
        members = set(component)
        first = component[0]
        parent: dict[str, str] = {}
        queue = [first]
        while queue and first not in parent:
            current = queue.pop(0)
            for target in graph[current]:
                if target in members and target not in parent:
                    parent[target] = current
                    queue.append(target)
        path = [first]
        cursor = parent.get(first, first)
        while cursor != first:
            path.insert(1, cursor)
            cursor = parent[cursor]
        cycles.append(path)
    return cycles


def check_graph(nodes: Mapping[str, Node], raw_nodes: Mapping[str, Any], start: str | None) -> list[GraphProblem]:
    problems: list[GraphProblem] = []
    declared = list(raw_nodes)
    for node_id, raw in raw_nodes.items():
        node = nodes.get(node_id)
        if node is not None:
            problems += list(_edge_problems(node_id, node, declared))
            continue
        for loc, target in dict.fromkeys(raw_targets(raw)):
            if target not in raw_nodes:
                problems.append(
                    GraphProblem(
                        ("nodes", node_id, *loc),
                        False,
                        node_id,
                        f"goes to node '{target}', which does not exist{did_you_mean(target, declared)}",
                    )
                )
    if start is not None and start not in raw_nodes:
        problems.append(
            GraphProblem(("start",), False, None, f"start node '{start}' does not exist{did_you_mean(start, declared)}")
        )
    elif start is not None:
        reached = {start}
        todo = [start]
        while todo:
            for target in _successors(nodes, raw_nodes, todo.pop()):
                if target in raw_nodes and target not in reached:
                    reached.add(target)
                    todo.append(target)
        for node_id in declared:
            if node_id not in reached:
                problems.append(
                    GraphProblem(
                        ("nodes", node_id), True, node_id, f"unreachable: no path from start node '{start}' leads here"
                    )
                )
    for cycle in _input_free_cycles(nodes, declared):
        ring = " → ".join([*cycle, cycle[0]])
        problems.append(
            GraphProblem(
                ("nodes", cycle[0]),
                True,
                cycle[0],
                f"loop with no caller input: {ring} can repeat forever; "
                "a loop must pass through a node that waits for the caller (menu, collect, record)",
            )
        )
    return problems
