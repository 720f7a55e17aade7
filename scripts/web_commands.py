"""``ivr web``: the HTTP service — Twilio's WhatsApp webhooks, health and metrics (`whatsapp.web`).

Served by gevent's WSGI server on 127.0.0.1 by default; put a TLS proxy in front and set
``IVR_WHATSAPP_PUBLIC_URL`` (or ``IVR_WHATSAPP_TRUSTED_PROXIES``) so signatures are checked
against the URL Twilio signed. ``--allow-unsigned`` is for development only: it is refused unless
the service listens on a loopback address, and even then it only skips the check for requests
from loopback.
"""

from __future__ import annotations

import gc
import ipaddress
import signal

import click
import gevent
import gevent.event


@click.command("web")
@click.option("--host", envvar="IVR_WEB_HOST", default="127.0.0.1", show_default=True,
              help="Listen address (env IVR_WEB_HOST).")
@click.option("--port", envvar="IVR_WEB_PORT", default=8090, show_default=True, type=int,
              help="Listen port (env IVR_WEB_PORT).")
@click.option("--database-url", envvar="IVR_DATABASE_URL", default=None,
              help="Tenants and WhatsApp accounts (env IVR_DATABASE_URL; default sqlite:///var/ivr.db).")
@click.option("--allow-unsigned", is_flag=True,
              help="Development only: accept unsigned webhooks from loopback (refused on other addresses).")
def web(host: str, port: int, database_url: str | None, allow_unsigned: bool) -> None:
    """Serve the WhatsApp webhooks (POST /twilio/whatsapp, /twilio/status), /healthz and /metrics."""
    from whatsapp.errors import ConfigError
    from whatsapp.runtime import open_runtime, web_app
    from whatsapp.web import serve

    if allow_unsigned:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise click.UsageError("--allow-unsigned only works when --host is a loopback address")
    try:
        runtime = open_runtime(database_url, web=True)
        app = web_app(runtime, allow_unsigned=allow_unsigned)
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    server = serve(app, host, port)
    # What is loaded now lives as long as the process: out of the collector's way (as `ivr serve`).
    gc.collect()
    gc.freeze()
    queue_kind = runtime.settings.queue_url.split(":", 1)[0]    # never the URL: it may hold a password
    click.echo(f"ivr web: listening on http://{host}:{server.server_port} (queue: {queue_kind}); "
               "Ctrl-C or SIGTERM to stop", err=True)
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    stopping.wait()
    server.stop(timeout=5)
    runtime.close()
