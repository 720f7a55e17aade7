"""How much a flow may weigh and cost: the bounds the loader and the templates enforce.

A flow is written by a tenant's admin and runs in a process every tenant shares, so nothing in
it may cost more than a bounded amount of time or memory, at load or at call time:

=======================  ==============================  ==========================================
limit                    default (environment variable)  what it bounds
=======================  ==============================  ==========================================
``max_flow_bytes``       1 MiB (``IVR_FLOW_MAX_BYTES``)   the YAML text of one flow
``max_nodes``            1000 (``IVR_FLOW_MAX_NODES``)    nodes in one flow
``max_yaml_values``      100000 (``IVR_FLOW_MAX_VALUES``) scalars, mappings and lists once YAML
                                                          aliases are expanded (alias bombs)
``max_depth``            32 (``IVR_FLOW_MAX_DEPTH``)      nesting of mappings and lists
``max_node_bytes``       64 KiB (``IVR_FLOW_MAX_NODE_BYTES``)  one node's data
``max_template_chars``   4096 (``IVR_TEMPLATE_MAX_CHARS``)  the source of one template or condition
``template_steps``       2000 (``IVR_TEMPLATE_STEPS``)    operations of one render: loop iterations,
                                                          calls, filters, operators
``template_value_chars`` 65536 (``IVR_TEMPLATE_VALUE_CHARS``)  any text or list a render builds, and
                                                          its output
``template_int_bits``    4096 (``IVR_TEMPLATE_INT_BITS``)  any integer a template computes (~1233
                                                          digits), at load (constant folding) and
                                                          at call time
``load_seconds``         30 (``IVR_FLOW_LOAD_SECONDS``)   validating one flow in the loader process
``load_memory_mb``       1024 (``IVR_FLOW_LOAD_MEMORY_MB``)  the loader process's address space
=======================  ==============================  ==========================================

`flow_limits()` reads the environment once per process; tests pass their own `FlowLimits`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache


@dataclass(frozen=True, slots=True)
class FlowLimits:
    max_flow_bytes: int = 1024 * 1024
    max_nodes: int = 1000
    max_yaml_values: int = 100_000
    max_depth: int = 32
    max_node_bytes: int = 64 * 1024
    max_template_chars: int = 4096
    template_steps: int = 2_000
    template_value_chars: int = 65_536
    template_int_bits: int = 4096
    load_seconds: float = 30.0
    load_memory_mb: int = 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FlowLimits:
        """Defaults, overridden by the ``IVR_…`` variables of the table above."""
        source = os.environ if env is None else env
        values: dict[str, float | int] = {}
        for item in fields(cls):
            raw = source.get(ENV_NAMES[item.name], "").strip()
            if not raw:
                continue
            kind = float if item.type in (float, "float") else int
            try:
                value = kind(raw)
            except ValueError as e:
                raise ValueError(f"{ENV_NAMES[item.name]}={raw!r} is not a number") from e
            if value <= 0:
                raise ValueError(f"{ENV_NAMES[item.name]} must be positive, got {raw!r}")
            values[item.name] = value
        return cls(**values)  # type: ignore[arg-type]


ENV_NAMES = {
    "max_flow_bytes": "IVR_FLOW_MAX_BYTES",
    "max_nodes": "IVR_FLOW_MAX_NODES",
    "max_yaml_values": "IVR_FLOW_MAX_VALUES",
    "max_depth": "IVR_FLOW_MAX_DEPTH",
    "max_node_bytes": "IVR_FLOW_MAX_NODE_BYTES",
    "max_template_chars": "IVR_TEMPLATE_MAX_CHARS",
    "template_steps": "IVR_TEMPLATE_STEPS",
    "template_value_chars": "IVR_TEMPLATE_VALUE_CHARS",
    "template_int_bits": "IVR_TEMPLATE_INT_BITS",
    "load_seconds": "IVR_FLOW_LOAD_SECONDS",
    "load_memory_mb": "IVR_FLOW_LOAD_MEMORY_MB",
}


@cache
def flow_limits() -> FlowLimits:
    """This process's limits (environment read once)."""
    return FlowLimits.from_env()
