"""`Flow`: a validated flow, ready to run; and `FlowHeader`, the model of a flow file's top level.

A `Flow` is immutable: the runner reads it, many calls share it, and a reload builds a new one
(so a call keeps the version it started with).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, field_validator

from ivr_flows.nodes.base import Node, VarName
from ivr_flows.nodes.business_hours import TimeZoneName

_FLOW_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
NODE_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")

VarValue = StrictBool | StrictInt | StrictFloat | str | None


class FlowHeader(BaseModel):
    """The top-level keys of a flow file (`nodes` is validated node by node by the loader)."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    flow: str = Field(description="the flow's name, unique in its tenant (goto_flow uses it)")
    description: str = ""
    language: str = Field(default="en-US", description="BCP 47 tag, e.g. en-US, pt-BR")
    timezone: TimeZoneName | None = Field(
        default=None, description="IANA time zone for `now` in templates and for business_hours"
    )
    start: str = Field(description="the id of the first node")
    vars: dict[VarName, VarValue] = Field(default_factory=dict, description="initial flow variables")
    nodes: dict[str, Any]

    @field_validator("flow")
    @classmethod
    def _flow_name(cls, value: str) -> str:
        if not _FLOW_NAME_RE.match(value):
            raise ValueError(f"flow name {value!r} must be letters, digits, '.', '_' or '-'")
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        if not _LANGUAGE_RE.match(value):
            raise ValueError(f"language {value!r} is not a language tag like en-US")
        return value

    @field_validator("nodes")
    @classmethod
    def _some_nodes(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("a flow needs at least one node")
        return value


@dataclass(frozen=True)
class Flow:
    """A validated flow."""

    name: str
    start: str
    nodes: Mapping[str, Node]
    source: str = "<flow>"
    description: str = ""
    language: str = "en-US"
    timezone: str | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", MappingProxyType(dict(self.nodes)))
        object.__setattr__(self, "vars", MappingProxyType(dict(self.vars)))

    def next_node(self, node_id: str, outcome: str) -> str | None:
        """Where `outcome` of `node_id` leads, or None (the run ends with that outcome)."""
        return self.nodes[node_id].edge_map().get(outcome)
