"""How a controller loads tenants' flows without holding up anybody's calls.

Parsing and validating a flow is pure Python that holds the GIL (YAML, pydantic, jinja), on text
a tenant's admin wrote: on the hub, one flow could stall every call of every tenant (a flow whose
load took 25 s did). So `load_flow_off_hub(text, source, **options)`

1. validates the text in a worker process (the ``flow-loader`` pool of `providers.process_pool`),
   bounded in time (``load_seconds``: the worker is killed past it) and in memory (the worker's
   address space is capped at ``load_memory_mb``), at a lower CPU priority (nice 10) than the calls;
   a flow over either bound is refused with a `FlowValidationError` like any invalid flow;
2. rebuilds the validated data into a `Flow` on the hub one node at a time, yielding after every
   node and every template compiled, so no step holds the hub more than about a millisecond
   (nodes are at most ``max_node_bytes``, templates ``max_template_chars``; see `ivr_flows.limits`).

Used at start-up, on every reload (`database_routing`, `routing.DirectoryRouting`), and by
``ivr flows validate|publish`` through the same limits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import gevent

from ivr_flows.errors import FlowIssue, FlowValidationError
from ivr_flows.flow import Flow
from ivr_flows.limits import FlowLimits, flow_limits
from ivr_flows.loader import ValidatedParts, rebuild_flow
from ivr_flows.templating import cooperative_compilation

POOL = "flow-loader"
_TARGET = "esl_controller.flow_loading:validate_in_worker"
_memory_capped = False


def validate_in_worker(text: str, source: str, options: Mapping[str, Any],
                       limits: FlowLimits) -> ValidatedParts | list[tuple[str, int, int, str | None, str]]:
    """Runs in the worker: cap the address space (once), validate, hand back plain data."""
    _cap_memory(limits.load_memory_mb)
    from ivr_flows.loader import validate_to_parts

    try:
        result = validate_to_parts(text, source, {**options, "limits": limits})
    except MemoryError:
        return [(source, 1, 1, None, f"validating the flow needs more than {limits.load_memory_mb} MB "
                                     "(IVR_FLOW_LOAD_MEMORY_MB); it was refused")]
    if isinstance(result, ValidatedParts):
        return result
    return [(i.source, i.line, i.column, i.node, i.message) for i in result]


def _cap_memory(megabytes: int) -> None:
    """Once per worker: cap its address space, and lower its priority — validating a tenant's flow
    must not compete on equal terms with the controller's live calls for the CPU."""
    global _memory_capped
    if _memory_capped:
        return
    import resource

    try:
        os.nice(10)
    except OSError:
        pass

    limit = megabytes * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    _memory_capped = True


def _refused(source: str, message: str) -> FlowValidationError:
    return FlowValidationError([FlowIssue(source, 1, 1, None, message)])


def load_flow_off_hub(text: str, source: str, *, limits: FlowLimits | None = None, **options: Any) -> Flow:
    """Validate in the flow-loader process, rebuild here cooperatively (see the module doc)."""
    from providers.errors import ProviderError, ProviderTimeout
    from providers.process_pool import worker_pool

    limits = limits or flow_limits()
    node_types = options.get("node_types")
    pool = worker_pool(POOL, 1)
    try:
        reply = pool.call(_TARGET, text, source, options, limits, timeout=limits.load_seconds)
    except ProviderTimeout:
        raise _refused(source, f"validating the flow took longer than {limits.load_seconds:g} s "
                               "(IVR_FLOW_LOAD_SECONDS); it was refused") from None
    except ProviderError as e:
        raise _refused(source, f"the flow could not be validated: {e.message}") from None
    if not isinstance(reply, ValidatedParts):
        raise FlowValidationError([FlowIssue(*issue) for issue in reply])
    with cooperative_compilation():
        return rebuild_flow(reply, node_types=node_types, between_nodes=lambda: gevent.sleep(0))
