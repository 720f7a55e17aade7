"""Downloading a message's media from Twilio, and nothing else.

A ``MediaUrl{N}`` must be on Twilio's API host (``IVR_TWILIO_API_BASE``'s host, normally
``api.twilio.com``) under the account's own path (``/2010-04-01/Accounts/<AccountSid>/``): only
then is it fetched, with the account's basic auth. Twilio answers with a redirect to its CDN; the
redirect is followed by hand, at most three hops, each to a host of ``IVR_TWILIO_MEDIA_HOSTS``
(``*.twiliocdn.com``) and *without* the credentials. HTTPS is required except for loopback hosts
(tests). The body is read in chunks and refused past 16 MB, and the whole download has a deadline.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import gevent
import requests

from whatsapp.errors import MediaRefused, MediaUnusable, Retryable
from whatsapp.settings import ChannelSettings
from whatsapp.store import AccountRoute

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_REDIRECTS = 3


@dataclass(frozen=True, slots=True)
class Media:
    data: bytes
    content_type: str


def _scheme_ok(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK)


def _api_url_ok(url: str, route: AccountRoute, settings: ChannelSettings) -> bool:
    parts = urlsplit(url)
    return (_scheme_ok(url) and parts.netloc.lower() == settings.api_host
            and parts.path.startswith(f"/2010-04-01/Accounts/{route.account.account_sid}/"))


def _cdn_ok(url: str, settings: ChannelSettings) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return _scheme_ok(url) and any(fnmatch.fnmatchcase(host, pattern) for pattern in settings.media_hosts)


def fetch_media(url: str, route: AccountRoute, settings: ChannelSettings,
                session: requests.Session | None = None) -> Media:
    """The media at `url` (see the module docstring); `MediaRefused` or `Retryable` otherwise."""
    if not _api_url_ok(url, route, settings):
        raise MediaRefused("the media URL is not this account's on Twilio's API host")
    own = session is None
    session = session or requests.Session()
    try:
        with gevent.Timeout(settings.media_timeout, Retryable("the media download took too long",
                                                              error_class="MediaTimeout")):
            return _download(session, url, route, settings)
    finally:
        if own:
            session.close()


def _download(session: requests.Session, url: str, route: AccountRoute, settings: ChannelSettings) -> Media:
    auth: tuple[str, str] | None = (route.account.account_sid, route.auth_token.reveal())
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            response = session.get(url, auth=auth, allow_redirects=False, stream=True,
                                   timeout=(5.0, settings.media_timeout))
        except requests.RequestException as e:
            raise Retryable("the media could not be downloaded", error_class="MediaUnreachable") from e
        with response:
            if response.is_redirect:
                target = urljoin(url, response.headers.get("Location", ""))
                if not _cdn_ok(target, settings):
                    raise MediaRefused("the media redirect leads outside Twilio's media hosts")
                url, auth = target, None      # never send the account's credentials to the CDN
                continue
            if response.status_code == 429 or response.status_code >= 500:
                raise Retryable(f"the media host answered {response.status_code}", error_class="MediaServerError")
            if response.status_code != 200:
                raise MediaRefused(f"the media host answered {response.status_code}")
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > settings.max_media_bytes:
                raise MediaUnusable("the media is larger than 16 MB")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > settings.max_media_bytes:
                    raise MediaUnusable("the media is larger than 16 MB")
                chunks.append(chunk)
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            return Media(b"".join(chunks), content_type)
    raise MediaRefused("too many media redirects")
