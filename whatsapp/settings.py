"""The channel's configuration, from the environment (so the web service and every worker agree).

- ``IVR_WHATSAPP_PUBLIC_URL``: the base URL Twilio posts to (``https://ivr.example.com``): the URL
  signatures are checked against, and where status callbacks go;
- ``IVR_WHATSAPP_TRUSTED_PROXIES``: addresses or networks whose ``X-Forwarded-Proto/Host`` are
  believed when no public URL is set (from anyone else they are ignored);
- ``IVR_WHATSAPP_QUEUE``: huey's storage, ``sqlite:///var/whatsapp-queue.db`` (embedded, the
  default) or ``redis://HOST:PORT/DB`` (several machines); ``IVR_WHATSAPP_QUEUE_NAME`` its name;
- ``IVR_WHATSAPP_LIMITS``: where rate-limit counters live, ``memory://`` (default) or ``redis://…``;
- ``IVR_WHATSAPP_SENDER_RATE`` / ``IVR_WHATSAPP_TENANT_RATE``: ``20/minute`` / ``600/minute``;
- ``IVR_WHATSAPP_MAX_ATTEMPTS`` (6): tries of a message before the dead-letter queue;
  ``IVR_WHATSAPP_BACKOFF`` (2 s, doubled per retry) up to ``IVR_WHATSAPP_BACKOFF_MAX`` (300 s);
- ``IVR_WHATSAPP_LEASE`` (30 s): how long a worker holds a message without a heartbeat before
  another may take it (a killed worker); ``IVR_WHATSAPP_SWEEP`` (10 s) how often workers look for
  such messages, ``IVR_WHATSAPP_REQUEUE_AFTER`` (60 s) after which a queued message nobody took is
  queued again;
- ``IVR_TWILIO_API_BASE`` (``https://api.twilio.com``): where the twilio SDK's requests go;
- ``IVR_TWILIO_MEDIA_HOSTS`` (``*.twiliocdn.com``): hosts a media redirect may lead to.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from whatsapp.errors import ConfigError

TWILIO_API = "https://api.twilio.com"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(text: str) -> tuple[Network, ...]:
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError as e:
                raise ConfigError(f"IVR_WHATSAPP_TRUSTED_PROXIES: {part!r} is not an address or network") from e
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    public_base_url: str | None = None
    trusted_proxies: tuple[Network, ...] = ()
    queue_url: str = "sqlite:///var/whatsapp-queue.db"
    queue_name: str = "ivr-whatsapp"     # huey's name: several deployments may share one Redis
    limits_storage: str = "memory://"
    sender_rate: str = "20/minute"
    tenant_rate: str = "600/minute"
    max_attempts: int = 6
    backoff_base: float = 2.0
    backoff_max: float = 300.0
    lease_seconds: float = 30.0
    twilio_api_base: str = TWILIO_API
    media_hosts: tuple[str, ...] = ("*.twiliocdn.com",)
    max_media_bytes: int = 16 * 1024 * 1024
    media_timeout: float = 30.0
    twilio_timeout: float = 10.0
    handoff_timeout: float = 10.0
    max_voice_seconds: float = 300.0
    sweep_every: float = 10.0
    requeue_after: float = 60.0          # a queued message nobody took for this long is queued again
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.public_base_url:
            parts = urlsplit(self.public_base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError("IVR_WHATSAPP_PUBLIC_URL must be an http(s) URL")
        if self.max_attempts < 1:
            raise ConfigError("IVR_WHATSAPP_MAX_ATTEMPTS must be at least 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ChannelSettings:
        e = dict(os.environ if env is None else env)
        d = cls()   # the defaults (a slots dataclass has no class-level values)

        def number(name: str, default: float) -> float:
            try:
                return float(e.get(name) or default)
            except ValueError as err:
                raise ConfigError(f"{name} must be a number") from err

        return cls(
            public_base_url=(e.get("IVR_WHATSAPP_PUBLIC_URL") or "").strip().rstrip("/") or None,
            trusted_proxies=_networks(e.get("IVR_WHATSAPP_TRUSTED_PROXIES", "")),
            queue_url=e.get("IVR_WHATSAPP_QUEUE") or d.queue_url,
            queue_name=e.get("IVR_WHATSAPP_QUEUE_NAME") or d.queue_name,
            limits_storage=e.get("IVR_WHATSAPP_LIMITS") or d.limits_storage,
            sender_rate=e.get("IVR_WHATSAPP_SENDER_RATE") or d.sender_rate,
            tenant_rate=e.get("IVR_WHATSAPP_TENANT_RATE") or d.tenant_rate,
            max_attempts=int(number("IVR_WHATSAPP_MAX_ATTEMPTS", d.max_attempts)),
            backoff_base=number("IVR_WHATSAPP_BACKOFF", d.backoff_base),
            backoff_max=number("IVR_WHATSAPP_BACKOFF_MAX", d.backoff_max),
            lease_seconds=number("IVR_WHATSAPP_LEASE", d.lease_seconds),
            twilio_api_base=(e.get("IVR_TWILIO_API_BASE") or TWILIO_API).rstrip("/"),
            media_hosts=tuple(h.strip().lower() for h in (e.get("IVR_TWILIO_MEDIA_HOSTS") or "*.twiliocdn.com")
                              .split(",") if h.strip()),
            sweep_every=number("IVR_WHATSAPP_SWEEP", d.sweep_every),
            requeue_after=number("IVR_WHATSAPP_REQUEUE_AFTER", d.requeue_after),
        )

    @property
    def api_host(self) -> str:
        return (urlsplit(self.twilio_api_base).netloc or "api.twilio.com").lower()

    def status_callback(self, correlation_id: str) -> str | None:
        """Where Twilio reports a reply's delivery (needs the public URL)."""
        if not self.public_base_url:
            return None
        return f"{self.public_base_url}/twilio/status?cid={correlation_id}"
