"""HTTP for REST vendors (Deepgram, ElevenLabs, Azure, Google, Cohere, Voyage, Gemini).

One ``requests.Session`` per provider instance (opened by ``warm_up``), with the vendor's
base URL and auth headers. Failures are mapped here, at the boundary: connection errors
→ ``ProviderUnavailable``, socket timeouts → ``ProviderTimeout``, HTTP statuses through
``providers.errors.error_for_status`` (``Retry-After`` parsed), bodies we cannot read →
``ProviderBadResponse``. Error messages carry a short excerpt of the vendor's body, never
our request headers (they hold the keys).

Under gevent, ``requests`` cooperates once the entry point has monkey-patched sockets.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

import requests

from providers.errors import (
    ProviderBadResponse,
    ProviderTimeout,
    ProviderUnavailable,
    error_for_status,
)

_EXCERPT = 300


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (a number or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _vendor_message(resp: requests.Response) -> str:
    """The vendor's error message if the body is JSON we recognise, else a body excerpt."""
    text = resp.text[:_EXCERPT] if resp.content else ""
    try:
        body = resp.json()
    except ValueError:
        return text.strip()
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            for key in ("message", "detail", "err_msg", "Message"):
                if isinstance(err.get(key), str):
                    return str(err[key])[:_EXCERPT]
        if isinstance(err, str):
            return err[:_EXCERPT]
        for key in ("message", "detail", "err_msg"):
            if isinstance(body.get(key), str):
                return str(body[key])[:_EXCERPT]
    return text.strip()


class HTTPClient:
    """A vendor's base URL, default headers and session, with errors mapped to ours."""

    def __init__(self, base_url: str, *, provider: str, headers: Mapping[str, str] | None = None,
                 params: Mapping[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.provider = provider
        self._headers = dict(headers or {})
        self._params = dict(params or {})
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
            self._session.headers.update(self._headers)
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def request(self, method: str, path: str, *, timeout: float, stream: bool = False,
                params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
                **kwargs: Any) -> requests.Response:
        """Send a request; return the response if 2xx, else raise the mapped error."""
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"
        extra = list(params.items()) if isinstance(params, Mapping) else list(params or [])
        merged = list(self._params.items()) + extra
        try:
            resp = self.session.request(method, url, timeout=timeout, stream=stream,
                                        params=merged or None, **kwargs)
        except requests.Timeout as e:
            raise ProviderTimeout(f"no answer within {timeout:g}s", provider=self.provider) from e
        except requests.ConnectionError as e:
            raise ProviderUnavailable(f"cannot connect: {type(e).__name__}", provider=self.provider) from e
        except requests.RequestException as e:
            raise ProviderUnavailable(f"request failed: {type(e).__name__}", provider=self.provider) from e
        if resp.status_code >= 300:
            try:
                message = _vendor_message(resp)
            finally:
                resp.close()
            raise error_for_status(resp.status_code, message, provider=self.provider,
                                   retry_after=parse_retry_after(resp.headers.get("Retry-After")))
        return resp

    def json(self, method: str, path: str, *, timeout: float, **kwargs: Any) -> Any:
        """Send a request and decode its JSON body."""
        resp = self.request(method, path, timeout=timeout, **kwargs)
        try:
            return resp.json()
        except ValueError as e:
            raise ProviderBadResponse(f"malformed JSON body: {resp.text[:80]!r}",
                                      provider=self.provider) from e

    def content(self, method: str, path: str, *, timeout: float, **kwargs: Any) -> tuple[bytes, str]:
        """Send a request and return its raw body and content type (audio)."""
        resp = self.request(method, path, timeout=timeout, **kwargs)
        try:
            return resp.content, resp.headers.get("Content-Type", "")
        except requests.RequestException as e:
            raise ProviderUnavailable(f"body cut short: {type(e).__name__}", provider=self.provider) from e

    def sse(self, method: str, path: str, *, timeout: float, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Server-sent events as ``(event, decoded JSON data)``; ``[DONE]`` ends the stream."""
        resp = self.request(method, path, timeout=timeout, stream=True, **kwargs)
        event = "message"
        data_lines: list[str] = []
        try:
            for raw in resp.iter_lines(decode_unicode=False):
                line = raw.decode("utf-8", "replace")
                if line == "":
                    if data_lines:
                        data = "\n".join(data_lines)
                        data_lines = []
                        if data.strip() == "[DONE]":
                            return
                        try:
                            yield event, json.loads(data)
                        except ValueError as e:
                            raise ProviderBadResponse(f"malformed SSE data: {data[:80]!r}",
                                                      provider=self.provider) from e
                    event = "message"
                elif line.startswith(":"):
                    continue
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data_lines.append(line[5:].lstrip())
            tail = "\n".join(data_lines).strip()
            if tail and tail != "[DONE]":
                try:
                    yield event, json.loads(tail)
                except ValueError as e:
                    raise ProviderBadResponse(f"malformed SSE data: {tail[:80]!r}",
                                              provider=self.provider) from e
        except requests.Timeout as e:
            raise ProviderTimeout("stream stalled", provider=self.provider) from e
        except requests.RequestException as e:
            raise ProviderUnavailable(f"stream broken: {type(e).__name__}", provider=self.provider) from e
        finally:
            resp.close()


class GoogleKeyHTTP:
    """Mixin for Google REST providers: an `HTTPClient` on ``settings.base_url`` sending the tenant's
    ``api_key`` in ``x-goog-api-key``, opened at warm-up and closed with the provider."""

    http: HTTPClient

    def _configure(self) -> None:
        self.http = HTTPClient(self.settings.base_url, provider=self.label,  # type: ignore[attr-defined]
                               headers={"x-goog-api-key": self.secret("api_key")})  # type: ignore[attr-defined]

    def warm_up(self) -> None:
        _ = self.http.session

    def close(self) -> None:
        self.http.close()
