"""The JSON Schema of the flow format, built from the same pydantic models the loader uses.

Editors use it for completion and checks (VS Code's YAML extension reads the
`# yaml-language-server: $schema=…` line at the top of a flow file). `docs/flow.schema.json` is
this function's output, committed; a test keeps the two equal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Union

from pydantic import Field, create_model

from ivr_flows.flow import FlowHeader
from ivr_flows.nodes import NODE_TYPES
from ivr_flows.nodes.base import Node

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def flow_json_schema(node_types: Mapping[str, type[Node]] | None = None) -> dict[str, Any]:
    table = dict(node_types) if node_types is not None else NODE_TYPES
    members = tuple(table.values())
    node_union: Any = Annotated[Union[members], Field(discriminator="type")]  # noqa: UP007
    document = create_model(
        "Flow",
        __base__=FlowHeader,
        __doc__="An IVR flow: a start node and a graph of nodes joined by outcomes.",
        nodes=(dict[str, node_union], Field(description="node id → node")),
    )
    schema = document.model_json_schema(mode="validation")
    return {"$schema": SCHEMA_DIALECT, "title": "IVR flow", **{k: v for k, v in schema.items() if k != "title"}}


def flow_json_schema_text(node_types: Mapping[str, type[Node]] | None = None) -> str:
    return json.dumps(flow_json_schema(node_types), indent=2, ensure_ascii=False) + "\n"
