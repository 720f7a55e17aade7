"""The OpenAI SDK clients our OpenAI-family providers share (STT, TTS, LLM, embeddings).

One place decides how a client is made: our retries replace the SDK's (``max_retries=0``),
the per-attempt deadline is passed on each request, and ``base_url`` points anywhere
(OpenAI, an OpenAI-compatible server, a loopback stub in tests). Errors are mapped by
``providers.sdk_errors``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from providers.base import ProviderSettings

OPENAI_URL = "https://api.openai.com/v1"


class OpenAIConnection(ProviderSettings):
    """Connection settings mixed into every OpenAI-family provider's settings."""

    base_url: str = Field(OPENAI_URL, pattern=r"^https?://")
    organization: str | None = None


def openai_client(settings: Any, api_key: str) -> Any:
    import openai

    return openai.OpenAI(api_key=api_key, base_url=settings.base_url, organization=settings.organization,
                         max_retries=0, timeout=settings.timeout)


def azure_openai_client(settings: Any, api_key: str) -> Any:
    import openai

    return openai.AzureOpenAI(api_key=api_key, azure_endpoint=settings.endpoint, api_version=settings.api_version,
                              azure_deployment=settings.deployment, max_retries=0, timeout=settings.timeout)


class OpenAIClientOwner:
    """Mixin for providers that talk through the ``openai`` SDK: one client, made on first use
    (or at warm-up) from the provider's settings and its ``api_key`` secret, closed with the provider."""

    _client: Any = None

    def client(self) -> Any:
        if self._client is None:
            self._client = openai_client(self.settings, self.secret("api_key"))  # type: ignore[attr-defined]
        return self._client

    def warm_up(self) -> None:
        self.client()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
