"""`webhook`: an HTTP request whose JSON answer sets variables, with timeout, retries and a signature.

```yaml
lookup:
  type: webhook
  url: "https://crm.example.com/api/accounts/{{ vars.account }}"
  method: POST                       # GET, POST, PUT, PATCH, DELETE
  headers: {X-Tenant: "{{ call.domain_name }}"}
  body: {account: "{{ vars.account }}", caller: "{{ caller.number }}"}   # sent as JSON
  timeout: 3s                        # per attempt (connect and read)
  retries: 2                         # after the first attempt; waits backoff, 2×backoff, …
  backoff: 500ms
  sign_with: crm                     # name of a tenant secret: X-IVR-Timestamp + X-IVR-Signature
  save: {customer: name, balance: account.balance, first_order: orders.0.id}
  status_var: lookup_status
  next: {ok: route, error: operator}
```
Retried: connection errors, timeouts, 408, 429 and 5xx. Not retried: other 4xx, redirects (not
followed), an answer that is not JSON when `save` needs fields, a field `save` names that is
missing. The host must be in the tenant's allowed URL hosts, and its address public unless an
operator allowed the network (`ivr_flows.url_policy`; checked on the connected socket). Requests go through `requests`
(cooperative under gevent's patched sockets: the hub is never blocked beyond a socket wait).
Outcomes: `ok`, `error`. Bodies and answers are never logged.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

import requests
from pydantic import Field, field_validator, model_validator

from ivr_flows.durations import Duration
from ivr_flows.errors import WebhookError
from ivr_flows.nodes.base import LoadEnv, Node, NodeProblem, VarName
from ivr_flows.prompt_paths import url_problem
from ivr_flows.templating import Template
from ivr_flows.webhook_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext

MAX_ANSWER_BYTES = 1_000_000
RETRYABLE_STATUS = frozenset({408, 429})
_MISSING = object()


def _compile_body(value: Any) -> Any:
    if isinstance(value, str):
        return Template(value)
    if isinstance(value, dict):
        return {str(k): _compile_body(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compile_body(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    raise ValueError(f"a webhook body holds texts, numbers, booleans, lists and mappings, not {value!r}")


def _render_body(ctx: FlowContext, value: Any) -> Any:
    if isinstance(value, Template):
        return ctx.render(value)
    if isinstance(value, dict):
        return {k: _render_body(ctx, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_body(ctx, v) for v in value]
    return value


def json_field(document: Any, path: str) -> Any:
    """`a.b.0.c` in a JSON document, or _MISSING."""
    current = document
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _session_for(ctx: FlowContext) -> requests.Session:
    """A session that checks every address it connects to against the tenant's URL policy."""
    from ivr_flows.url_policy import UrlPolicy

    policy = ctx.allowed_url_hosts
    return policy.session() if isinstance(policy, UrlPolicy) else requests.Session()


class WebhookNode(Node):
    """Call an HTTP API."""

    TYPE: ClassVar[str] = "webhook"
    OUTCOMES: ClassVar[tuple[str, ...]] = ("ok",)

    type: Literal["webhook"]
    url: Template
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, Template] = Field(default_factory=dict)
    body: Any = None
    timeout: Duration = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=5)
    backoff: Duration = Field(default=0.5, ge=0, le=30)
    sign_with: str | None = None
    save: dict[VarName, str] = Field(default_factory=dict)
    status_var: VarName | None = None

    @field_validator("body", mode="before")
    @classmethod
    def _body(cls, value: Any) -> Any:
        return _compile_body(value)

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, Template]) -> dict[str, Template]:
        for name in value:
            if not name or any(c in name for c in " :\r\n") or name.lower() in ("x-ivr-signature", "x-ivr-timestamp"):
                raise ValueError(f"header name {name!r} is not allowed")
        return value

    @model_validator(mode="after")
    def _no_get_body(self) -> WebhookNode:
        if self.method == "GET" and self.body is not None:
            raise ValueError("a GET webhook takes no body")
        return self

    def check(self, env: LoadEnv) -> list[NodeProblem]:
        problems = super().check(env)
        if self.url.is_static:
            problem = url_problem(self.url.source, env.allowed_url_hosts)
            if problem:
                problems.append(NodeProblem(("url",), problem))
        return problems

    # -- call time -----------------------------------------------------------------------------
    def _request(
        self, ctx: FlowContext, session: requests.Session, url: str, body: bytes | None, headers: dict[str, str]
    ) -> requests.Response:
        if self.sign_with is not None:
            secret = ctx.secrets.get(self.sign_with)
            if secret is None:
                raise WebhookError(f"the tenant has no secret named {self.sign_with!r}")
            timestamp = str(int(ctx.clock().timestamp()))
            headers = {**headers, TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body or b"")}
        try:
            response = session.request(
                self.method, url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except (requests.Timeout, requests.ConnectionError) as e:
            raise WebhookError(f"{type(e).__name__}", retryable=True) from e
        except requests.RequestException as e:
            raise WebhookError(f"{type(e).__name__}") from e
        status = response.status_code
        if status in RETRYABLE_STATUS or status >= 500:
            raise WebhookError(f"HTTP {status}", status=status, retryable=True)
        if status >= 300:
            raise WebhookError(f"HTTP {status}", status=status)
        return response

    def _save(self, ctx: FlowContext, response: requests.Response) -> None:
        if not self.save:
            return
        if len(response.content) > MAX_ANSWER_BYTES:
            raise WebhookError("the answer is too large")
        try:
            document = response.json()
        except ValueError as e:
            raise WebhookError("the answer is not JSON", status=response.status_code) from e
        values: dict[str, Any] = {}
        for var, path in self.save.items():
            value = json_field(document, path)
            if value is _MISSING:
                raise WebhookError(f"the answer has no field {path!r}", status=response.status_code)
            values[var] = value
        ctx.vars.update(values)

    def run(self, ctx: FlowContext) -> str:
        url = ctx.render(self.url)
        problem = url_problem(url, ctx.allowed_url_hosts)
        if problem:
            ctx.log.warning("flow.webhook_refused", node=ctx.node_id, reason=problem)
            return "error"
        headers = {name: ctx.render(value) for name, value in self.headers.items()}
        body: bytes | None = None
        if self.body is not None:
            body = json.dumps(_render_body(ctx, self.body), separators=(",", ":"), ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json")
        headers.setdefault("Accept", "application/json")
        host = urlsplit(url).hostname
        session = ctx.http_session or _session_for(ctx)
        try:
            for attempt in range(self.retries + 1):
                if attempt:
                    ctx.sleep(self.backoff * 2 ** (attempt - 1))
                try:
                    response = self._request(ctx, session, url, body, headers)
                    self._save(ctx, response)
                except WebhookError as e:
                    ctx.log.warning(
                        "flow.webhook_failed",
                        node=ctx.node_id,
                        host=host,
                        attempt=attempt + 1,
                        error=str(e),
                        retryable=e.retryable,
                    )
                    if self.status_var and e.status is not None:
                        ctx.vars[self.status_var] = e.status
                    if e.retryable and attempt < self.retries:
                        continue
                    ctx.note(attempts=attempt + 1, status=e.status)
                    return "error"
                if self.status_var:
                    ctx.vars[self.status_var] = response.status_code
                ctx.note(attempts=attempt + 1, status=response.status_code)
                return "ok"
        finally:
            if ctx.http_session is None:
                session.close()
        return "error"  # pragma: no cover - the loop always returns
