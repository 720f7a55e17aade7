"""boto3 clients for the AWS providers (Polly TTS, Bedrock LLM).

Credentials come from the tenant's secrets (``aws_access_key_id``,
``aws_secret_access_key``, optional ``aws_session_token``), never from the controller's own
environment, so one tenant cannot use another's (or the host's) AWS account. botocore's
own retries are off (``total_max_attempts=1``): retries live in our base class. ``endpoint_url``
points at a VPC endpoint, a proxy, or a loopback stub in tests. Errors are mapped by
``providers.sdk_errors``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from providers.base import ProviderSettings
from providers.errors import ProviderConfigError


class AWSConnection(ProviderSettings):
    region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    endpoint_url: str | None = Field(None, pattern=r"^https?://")


def aws_client(service: str, settings: Any, secrets: dict[str, str], provider: str) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:
        raise ProviderConfigError("boto3 is not installed (extra 'cloud')", provider=provider) from e
    try:
        session = boto3.session.Session(aws_access_key_id=secrets["aws_access_key_id"],
                                        aws_secret_access_key=secrets["aws_secret_access_key"],
                                        aws_session_token=secrets.get("aws_session_token"),
                                        region_name=settings.region)
    except KeyError as e:
        raise ProviderConfigError(f"missing secret {e.args[0]!r}", provider=provider) from None
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=min(5.0, settings.timeout),
                    read_timeout=settings.timeout)
    return session.client(service, endpoint_url=settings.endpoint_url, config=config)
