"""Pictures of a flow: Mermaid text, and a self-made SVG (no Graphviz or other system package).

Both come from one `FlowDiagram`: a box per node (id and type), a pill per outcome that ends
the flow without an edge (`transferred`, `hangup`, …), and arrows labelled with the outcomes
that take them (outcomes going to the same node share one arrow).

SVG layout: layers by BFS depth from the start node (unreachable nodes last); arrows to a lower
layer are straight; arrows back up run down into the gap under their node, out to a lane on the
right and back in above their target (dashed), so they never cross a box. End outcomes are
written inside the box ("ends: transferred").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from ivr_flows.flow import Flow


@dataclass(slots=True)
class Box:
    key: str
    title: str
    subtitle: str
    end: bool = False  # an end-of-flow pill
    layer: int = 0
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0


@dataclass(slots=True)
class Arrow:
    source: str
    target: str
    label: str


@dataclass(slots=True)
class FlowDiagram:
    start: str
    boxes: dict[str, Box] = field(default_factory=dict)
    arrows: list[Arrow] = field(default_factory=list)


def build_diagram(flow: Flow) -> FlowDiagram:
    diagram = FlowDiagram(start=flow.start)
    for node_id, node in flow.nodes.items():
        diagram.boxes[node_id] = Box(node_id, node_id, node.TYPE)
    for node_id, node in flow.nodes.items():
        by_target: dict[str, list[str]] = {}
        for edge in node.edges():
            by_target.setdefault(edge.target, []).append(edge.outcome)
        for target, outcomes in by_target.items():
            diagram.arrows.append(Arrow(node_id, target, ", ".join(dict.fromkeys(outcomes))))
        covered = set(node.edge_map())
        for outcome in node.outcomes():
            if outcome in node.terminal_outcomes() and outcome not in covered:
                key = f"{node_id}::{outcome}"
                diagram.boxes[key] = Box(key, outcome, "end", end=True)
                diagram.arrows.append(Arrow(node_id, key, ""))
    return diagram


# -- Mermaid ------------------------------------------------------------------------------------
def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(flow: Flow) -> str:
    diagram = build_diagram(flow)
    ids = {key: f"n{i}" for i, key in enumerate(diagram.boxes)}
    lines = ["flowchart TD", "    start((start))"]
    for key, box in diagram.boxes.items():
        if box.end:
            lines.append(f'    {ids[key]}(["{_mermaid_text(box.title)}"])')
        else:
            lines.append(f'    {ids[key]}["{_mermaid_text(box.title)}<br/><i>{_mermaid_text(box.subtitle)}</i>"]')
    lines.append(f"    start --> {ids[diagram.start]}")
    for arrow in diagram.arrows:
        label = f'|"{_mermaid_text(arrow.label)}"|' if arrow.label else ""
        lines.append(f"    {ids[arrow.source]} -->{label} {ids[arrow.target]}")
    return "\n".join(lines) + "\n"


# -- SVG ----------------------------------------------------------------------------------------
CHAR_W = 7.2
BOX_H = 44.0
ENDS_H = 14.0
LAYER_GAP = 110.0
H_GAP = 36.0
MARGIN = 40.0
LANE_GAP = 12.0


def _layout(diagram: FlowDiagram) -> tuple[dict[str, Box], float]:
    """Place the node boxes (not the end pills) in BFS layers; return them and the content width."""
    successors: dict[str, list[str]] = {}
    for arrow in diagram.arrows:
        if not diagram.boxes[arrow.target].end:
            successors.setdefault(arrow.source, []).append(arrow.target)
    depth = {diagram.start: 0}
    order = [diagram.start]
    queue = deque([diagram.start])
    while queue:
        current = queue.popleft()
        for target in successors.get(current, []):
            if target not in depth:
                depth[target] = depth[current] + 1
                order.append(target)
                queue.append(target)
    nodes = {key: box for key, box in diagram.boxes.items() if not box.end}
    last = max(depth.values(), default=0) + 1
    order += [key for key in nodes if key not in depth]
    layers: dict[int, list[Box]] = {}
    for key in order:
        box = nodes[key]
        box.layer = depth.get(key, last)
        box.width = max(len(box.title), len(box.subtitle) + 2) * CHAR_W + 28
        layers.setdefault(box.layer, []).append(box)
    widths = {layer: sum(b.width for b in boxes) + H_GAP * (len(boxes) - 1) for layer, boxes in layers.items()}
    content = max(widths.values(), default=100.0)
    for layer, boxes in layers.items():
        x = MARGIN + (content - widths[layer]) / 2
        for box in boxes:
            box.x = x
            box.y = MARGIN + 40 + layer * (BOX_H + ENDS_H + LAYER_GAP)
            x += box.width + H_GAP
    return nodes, content


def _label(x: float, y: float, text: str) -> list[str]:
    if not text:
        return []
    width = len(text) * 6.2 + 8
    return [
        f'<rect x="{x - width / 2:.1f}" y="{y - 9:.1f}" width="{width:.1f}" height="16" rx="3" '
        'fill="#ffffff" fill-opacity="0.9"/>',
        f'<text x="{x:.1f}" y="{y + 3:.1f}" text-anchor="middle" class="label">{escape(text)}</text>',
    ]


def _line(points: list[tuple[float, float]], *, dashed: bool) -> str:
    d = " ".join(f"{'M' if i == 0 else 'L'} {x:.1f} {y:.1f}" for i, (x, y) in enumerate(points))
    style = 'stroke="#777" stroke-width="1.2" stroke-dasharray="5 3"' if dashed else 'stroke="#444" stroke-width="1.4"'
    return f'<path d="{d}" fill="none" {style} marker-end="url(#arrow)"/>'


def to_svg(flow: Flow) -> str:
    """An SVG picture: boxes in BFS layers, straight arrows down, routed arrows back up."""
    diagram = build_diagram(flow)
    boxes, content = _layout(diagram)
    ends: dict[str, list[str]] = {}
    arrows: list[Arrow] = []
    for arrow in diagram.arrows:
        target = diagram.boxes[arrow.target]
        if target.end:
            ends.setdefault(arrow.source, []).append(target.title)
        else:
            arrows.append(arrow)
    backward = [a for a in arrows if boxes[a.target].layer <= boxes[a.source].layer]
    lanes_right = MARGIN + content + 30
    width = lanes_right + LANE_GAP * len(backward) + MARGIN
    height = max((b.y for b in boxes.values()), default=0) + BOX_H + ENDS_H + MARGIN * 2
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif">',
        f"<title>{escape(flow.name)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444"/>'
        "</marker></defs>",
        "<style>.label{font-size:11px;fill:#333}.title{font-size:13px;font-weight:bold;fill:#111}"
        ".sub{font-size:11px;fill:#555;font-style:italic}.end{font-size:10px;fill:#a33}</style>",
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="#fafafa"/>',
        f'<text x="{MARGIN}" y="{MARGIN - 12}" class="title">{escape(flow.name)}</text>',
    ]
    first = boxes[diagram.start]
    sx = first.x + first.width / 2
    out.append(f'<circle cx="{sx:.1f}" cy="{first.y - 34:.1f}" r="8" fill="#333"/>')
    out.append(_line([(sx, first.y - 26), (sx, first.y)], dashed=False))
    labels: list[str] = []
    outgoing: dict[str, list[Arrow]] = {}
    for arrow in arrows:
        outgoing.setdefault(arrow.source, []).append(arrow)
    for source_key, group in outgoing.items():
        source = boxes[source_key]
        bottom = source.y + BOX_H + ENDS_H
        slots = len(group) + 1
        for slot, arrow in enumerate(group, start=1):
            target = boxes[arrow.target]
            x1 = source.x + source.width * slot / slots
            if arrow not in backward:
                x2 = target.x + target.width / 2
                out.append(_line([(x1, bottom), (x2, target.y)], dashed=False))
                labels += _label(x1 + (x2 - x1) * 0.4, bottom + (target.y - bottom) * 0.4, arrow.label)
                continue
            k = backward.index(arrow)
            below = bottom + 16 + 5 * (k % 8)
            x2 = target.x + target.width * (0.75 if target is not source else 0.9)
            if target.layer == source.layer:
                points = [(x1, bottom), (x1, below), (x2, below), (x2, target.y + BOX_H + ENDS_H)]
                labels += _label((x1 + x2) / 2, below, arrow.label)
            else:
                lane = lanes_right + LANE_GAP * k
                above = target.y - 18 - 5 * (k % 8)
                points = [(x1, bottom), (x1, below), (lane, below), (lane, above), (x2, above), (x2, target.y)]
                labels += _label(lane, (below + above) / 2, arrow.label)
            out.append(_line(points, dashed=True))
    for key, box in boxes.items():
        out.append(
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{BOX_H + ENDS_H}" rx="6" '
            'fill="#e8f0fe" stroke="#3b6fd6" stroke-width="1.4"/>'
        )
        center = box.x + box.width / 2
        out.append(
            f'<text x="{center:.1f}" y="{box.y + 19:.1f}" text-anchor="middle" class="title">{escape(box.title)}</text>'
        )
        out.append(
            f'<text x="{center:.1f}" y="{box.y + 34:.1f}" text-anchor="middle" class="sub">'
            f"{escape(box.subtitle)}</text>"
        )
        if key in ends:
            out.append(
                f'<text x="{center:.1f}" y="{box.y + 50:.1f}" text-anchor="middle" class="end">'
                f"ends: {escape(', '.join(ends[key]))}</text>"
            )
    out += labels
    out.append("</svg>")
    return "\n".join(out) + "\n"
