"""The secretary's webhook tools: an HTTP POST of the model's arguments, the answer fed back.

`ToolRunner` is what the engine calls; `HttpWebhookRunner(session, allowed)` is the real one:
``allowed(url)`` is the channel's host policy (the telephone uses the tenant's allowed URL
hosts), redirects are not followed, the answer is cut to `MAX_TOOL_RESULT` characters, and an
HTTP or network error goes back to the model as a small JSON error (never an exception).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

import requests

from rag.secretary.types import WebhookTool

MAX_TOOL_RESULT = 2000


class ToolRunner(Protocol):
    def run(self, hook: WebhookTool, arguments: dict[str, Any]) -> str:
        """The text the model gets back for this call of `hook`."""
        ...


class HttpWebhookRunner:
    """POST JSON to the tool's URL (see the module docstring)."""

    def __init__(self, session: requests.Session | None = None,
                 allowed: Callable[[str], bool] | None = None, *,
                 session_factory: Callable[[], requests.Session] = requests.Session) -> None:
        # ``session_factory``: a session of the channel's URL policy (it checks the addresses it
        # connects to), made per request and closed after it when no session is shared.
        self.session = session
        self.allowed = allowed
        self.session_factory = session_factory

    def run(self, hook: WebhookTool, arguments: dict[str, Any]) -> str:
        if self.allowed is not None and not self.allowed(hook.url):
            return json.dumps({"error": "this tool is not allowed"})
        session = self.session or self.session_factory()
        try:
            response = session.post(hook.url, json=arguments, timeout=hook.timeout, allow_redirects=False)
            if response.status_code >= 300:
                return json.dumps({"error": f"HTTP {response.status_code}"})
            return response.text[:MAX_TOOL_RESULT]
        except requests.RequestException as e:
            return json.dumps({"error": type(e).__name__})
        finally:
            if self.session is None:
                session.close()
