"""Which URLs a tenant's flow may fetch (webhooks, URL prompts), and a session that keeps to it.

A `UrlPolicy` is the tenant's host allow-list (patterns like ``crm.example.com`` or
``*.example.org``; it *is* a frozenset of them, so it goes wherever an allow-list went) plus the
networks an operator explicitly allows (``10.1.2.0/24``). Without such a network, an address that
is private, loopback, link-local, multicast, reserved or unspecified is refused even when its host
name is allowed: a flow must not reach the controller's own machine or its LAN (the metadata
service, the database, FreeSWITCH's event socket…) because a tenant's admin wrote a URL.

- `problem(url)`: the host must match a pattern; a literal IP address, and (``resolve=True``)
  every address the name resolves to, must be public or in an allowed network.
- `session()`: a ``requests`` session whose connections check the address they actually connected
  to, before anything is sent, so a name that resolves to a public address at check time and to
  127.0.0.1 at request time (DNS rebinding) is still refused. Redirects are not followed by the
  nodes anyway.

URL prompts are fetched by FreeSWITCH (``http_cache://``), not by us: for them the check is
`problem(url, resolve=True)` right before the prompt plays.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

HOSTS_SETTING = "url_hosts"
NETWORKS_SETTING = "url_networks"


class UrlPolicy(frozenset[str]):
    """Host patterns (the set itself) and the non-public networks an operator allows."""

    networks: tuple[IPNetwork, ...]

    def __new__(cls, hosts: Iterable[str] = (), networks: Iterable[str | IPNetwork] = ()) -> UrlPolicy:
        policy = super().__new__(cls, (h.strip().lower() for h in hosts if h and h.strip()))
        policy.networks = tuple(n if isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network)
                                else ipaddress.ip_network(str(n).strip(), strict=False) for n in networks)
        return policy

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> UrlPolicy:
        """From a tenant's settings: ``url_hosts`` and ``url_networks`` (lists of strings)."""
        hosts = settings.get(HOSTS_SETTING) or []
        networks = settings.get(NETWORKS_SETTING) or []
        if isinstance(hosts, str):
            hosts = [h for h in hosts.split(",")]
        if isinstance(networks, str):
            networks = [n for n in networks.split(",") if n.strip()]
        return cls([str(h) for h in hosts], [str(n) for n in networks])

    def __reduce__(self) -> tuple[Any, ...]:
        return (UrlPolicy, (sorted(self), [str(n) for n in self.networks]))

    def __repr__(self) -> str:
        return f"UrlPolicy({sorted(self)!r}, networks={[str(n) for n in self.networks]!r})"

    # ------------------------------------------------------------------ checks

    def address_problem(self, address: str) -> str | None:
        """Why the flow may not connect to this IP address, or None."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return f"{address!r} is not an IP address"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.networks):
            return None
        if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
            return (f"address {ip} is private, loopback or otherwise not public; an operator may allow "
                    "its network for this tenant (ivr tenants update TENANT --allow-network CIDR)")
        return None

    def problem(self, url: str, *, resolve: bool = False, timeout: float = 3.0) -> str | None:
        """Why the flow may not fetch `url`, or None (see the module doc)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"{url!r} is not an http(s) URL"
        host = parts.hostname.lower()
        if not any(fnmatch.fnmatchcase(host, pattern) for pattern in self):
            return f"host {host!r} is not in the tenant's allowed URL hosts"
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            return self.address_problem(str(literal))
        if not resolve:
            return None
        try:
            import gevent

            with gevent.Timeout(timeout, OSError(f"no DNS answer within {timeout:g}s")):
                infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                           type=socket.SOCK_STREAM)
        except OSError as e:
            return f"host {host!r} does not resolve: {e}"
        for info in infos:
            problem = self.address_problem(str(info[4][0]))
            if problem:
                return f"host {host!r}: {problem}"
        return None

    def session(self) -> Any:
        """A ``requests.Session`` whose every connection is checked against this policy."""
        return guarded_session(self)


def guarded_session(policy: UrlPolicy) -> Any:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import NewConnectionError

    class _Checked:
        def _new_conn(self) -> socket.socket:  # type: ignore[misc]
            sock: socket.socket = super()._new_conn()  # type: ignore[misc]
            peer = sock.getpeername()[0]
            problem = policy.address_problem(str(peer))
            if problem:
                sock.close()
                raise NewConnectionError(self, f"refused: {problem}")  # type: ignore[arg-type]
            return sock

    class _HTTP(_Checked, HTTPConnection):
        pass

    class _HTTPS(_Checked, HTTPSConnection):
        pass

    class _HTTPPool(HTTPConnectionPool):
        ConnectionCls = _HTTP

    class _HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = _HTTPS

    class _Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
            self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)

    session = requests.Session()
    session.trust_env = False          # no proxy from the environment: the address checked is the one used
    adapter = _Adapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
