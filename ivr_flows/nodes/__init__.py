"""The node types of the flow language: one module each, and the explicit `NODE_TYPES` table.

A later node type (e.g. `ask_ai`) is a `Node` subclass in its own module; pass
`node_types={**NODE_TYPES, "ask_ai": AskAiNode}` to the loader, and put the services it needs in
`FlowContext.extensions`.
"""

from __future__ import annotations

from ivr_flows.nodes.ask_ai import AskAiNode
from ivr_flows.nodes.base import Edge, LoadEnv, Node, NodeProblem, Prompt
from ivr_flows.nodes.branch import BranchNode
from ivr_flows.nodes.business_hours import BusinessHoursNode
from ivr_flows.nodes.collect import CollectNode
from ivr_flows.nodes.goto_flow import GotoFlowNode
from ivr_flows.nodes.hangup import HangupNode
from ivr_flows.nodes.menu import MenuNode
from ivr_flows.nodes.pause import PauseNode
from ivr_flows.nodes.play import PlayNode
from ivr_flows.nodes.record import RecordNode
from ivr_flows.nodes.say import SayNode
from ivr_flows.nodes.set_vars import SetNode
from ivr_flows.nodes.transfer import TransferNode
from ivr_flows.nodes.webhook import WebhookNode

NODE_TYPES: dict[str, type[Node]] = {
    "say": SayNode,
    "play": PlayNode,
    "pause": PauseNode,
    "menu": MenuNode,
    "collect": CollectNode,
    "record": RecordNode,
    "transfer": TransferNode,
    "hangup": HangupNode,
    "business_hours": BusinessHoursNode,
    "set": SetNode,
    "branch": BranchNode,
    "goto_flow": GotoFlowNode,
    "webhook": WebhookNode,
    "ask_ai": AskAiNode,
}

__all__ = ["NODE_TYPES", "Edge", "LoadEnv", "Node", "NodeProblem", "Prompt"]
