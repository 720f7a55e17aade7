"""``X-Twilio-Signature``: checked with twilio's `RequestValidator` over every posted field, against
the URL Twilio signed.

Which URL: the configured public base URL plus the request's path and query (the usual deployment:
Twilio posts to ``https://ivr.example.com/twilio/whatsapp`` through a TLS proxy); with none
configured, ``X-Forwarded-Proto``/``X-Forwarded-Host`` are believed only when the peer is one of
the trusted proxies; otherwise the URL as this server saw it. Anything missing or wrong fails
closed: the caller answers 403 with no detail.
"""

from __future__ import annotations

import ipaddress

from twilio.request_validator import RequestValidator, get_signature_algorithm

from whatsapp.settings import ChannelSettings


def _first(value: str | None) -> str:
    return (value or "").split(",")[0].strip()


def trusted(peer: str | None, settings: ChannelSettings) -> bool:
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:
        return False
    return any(address in net for net in settings.trusted_proxies)


def signed_url(*, scheme: str, host: str, path: str, query: str, peer: str | None,
               forwarded_proto: str | None, forwarded_host: str | None, settings: ChannelSettings) -> str:
    """The URL Twilio computed its signature over (see the module docstring)."""
    suffix = path + (f"?{query}" if query else "")
    if settings.public_base_url:
        return settings.public_base_url + suffix
    if trusted(peer, settings):
        return f"{_first(forwarded_proto) or scheme}://{_first(forwarded_host) or host}{suffix}"
    return f"{scheme}://{host}{suffix}"


def valid(auth_token: str, url: str, fields: object, signature: str | None,
          settings_header: str | None = None) -> bool:
    """True when `signature` is Twilio's for `url` and every posted field (a MultiDict keeps repeats)."""
    if not signature or not auth_token:
        return False
    try:
        return bool(RequestValidator(auth_token).validate(url, fields, signature,
                                                          algorithm=get_signature_algorithm(settings_header)))
    except (ValueError, TypeError):
        return False
