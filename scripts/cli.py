"""The ``ivr`` command line: the entry point that wires every package together.

gevent monkey-patching happens here, first, before anything imports psycopg (psycopg 3 picks
its wait function at import time) or opens a socket.
"""

from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402
import importlib  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402
import gevent  # noqa: E402

from esl_controller.call_log import configure_logging  # noqa: E402


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-format", type=click.Choice(["console", "json"]),
              default=os.environ.get("IVR_LOG_FORMAT", "console"), show_default=True,
              help="Log lines for people or JSON lines for collectors (env IVR_LOG_FORMAT).")
@click.option("--log-level", default=os.environ.get("IVR_LOG_LEVEL", "INFO"), show_default=True)
@click.option("--log-pii/--no-log-pii", default=None,
              help="Show phone numbers and transcripts in logs (default: redacted; env IVR_LOG_PII=1).")
def cli(log_format: str, log_level: str, log_pii: bool | None) -> None:
    """Voice AI IVR controller for FreeSWITCH."""
    configure_logging(json_lines=log_format == "json", level=log_level, show_pii=log_pii)


@cli.command()
@click.option("--host", envvar="IVR_HOST", default="127.0.0.1", show_default=True,
              help="Listen address (env IVR_HOST).")
@click.option("--port", envvar="IVR_PORT", default=8084, show_default=True, type=int,
              help="Listen port (env IVR_PORT).")
@click.option("--flows-dir", envvar="IVR_FLOWS_DIR", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Serve the YAML flows of this folder (one tenant) instead of the database "
                                 "(env IVR_FLOWS_DIR).")
@click.option("--default-flow", envvar="IVR_DEFAULT_FLOW", default="demo-main", show_default=True,
              help="With --flows-dir: the flow every number reaches.")
@click.option("--database-url", envvar="IVR_DATABASE_URL", default=None,
              help="Tenants, flows and call records (env IVR_DATABASE_URL; default sqlite:///var/ivr.db).")
@click.option("--max-calls", envvar="IVR_MAX_CALLS", default=2000, show_default=True, type=int,
              help="Calls this process runs at once; more are handed back to the dialplan's fallback.")
@click.option("--metrics-port", envvar="IVR_METRICS_PORT", default=0, type=int,
              help="Serve Prometheus metrics on 127.0.0.1:PORT (0: off).")
@click.option("--drain-seconds", default=30.0, show_default=True, help="On SIGTERM, how long live calls may finish.")
@click.option("--deadman-seconds", envvar="IVR_DEADMAN_SECONDS", default=10, show_default=True, type=int,
              help="FreeSWITCH moves a caller to the fallback this long after a hung controller stops re-arming "
                   "its dead-man's switch (0: off; env IVR_DEADMAN_SECONDS).")
@click.option("--deadman-every", envvar="IVR_DEADMAN_EVERY", default=4.0, show_default=True, type=float,
              help="How often every live call's dead-man's switch is re-armed (env IVR_DEADMAN_EVERY).")
@click.option("--transfer-context", envvar="IVR_TRANSFER_CONTEXT", default=None,
              help="With --flows-dir: the dialplan context transfers go to (default: the context the call is in; "
                   "database tenants: the tenant setting transfer_context).")
def serve(host: str, port: int, flows_dir: Path | None, default_flow: str, database_url: str | None, max_calls: int,
          metrics_port: int, drain_seconds: float, deadman_seconds: int, deadman_every: float,
          transfer_context: str | None) -> None:
    """Run the outbound Event Socket server FreeSWITCH's `socket` application dials into."""
    from esl_controller.controller import ControllerSettings
    from esl_controller.service import build_service

    if deadman_seconds and deadman_every >= deadman_seconds:
        raise click.BadParameter("must be shorter than --deadman-seconds", param_hint="--deadman-every")
    if flows_dir is None:
        _require_migrated(database_url)
    settings = ControllerSettings(deadman_seconds=deadman_seconds, deadman_every=deadman_every)
    service = build_service(host=host, port=port, flows_dir=flows_dir, default_flow=default_flow,
                            database_url=database_url, max_calls=max_calls, settings=settings,
                            transfer_context=transfer_context)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    service.start()
    # Everything loaded so far lives as long as the process: keep it out of the collector's
    # generations, which shortens full collections at thousands of live calls (measured in benchmarks/).
    gc.collect()
    gc.freeze()
    click.echo(f"ivr: listening on {service.server.address[0]}:{service.server.address[1]} "
               f"(max {max_calls} calls); Ctrl-C or SIGTERM to stop", err=True)
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    stopping.wait()
    click.echo("ivr: draining live calls…", err=True)
    service.stop(drain_seconds)


def _require_migrated(database_url: str | None) -> None:
    """A database that was never migrated (or is behind this code) is one clear line, not a traceback."""
    from sqlalchemy.engine import make_url

    from schema.database import default_url
    from schema.errors import SchemaError
    from schema.migrate import current_revision, head_revision

    url = database_url or default_url()
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        current = current_revision(url)
    except SchemaError as exc:
        raise click.ClickException(f"cannot read the database at {shown}: {exc}") from exc
    head = head_revision()
    if current != head:
        state = "has no tables yet" if current is None else f"is at schema revision {current}, not {head}"
        raise click.ClickException(f"the database {shown} {state}: run `ivr db upgrade` first")


@cli.command()
@click.option("--domain-uuid", required=True, help="The tenant's domain_uuid.")
@click.option("--domain-name", required=True, help="The tenant's domain_name.")
@click.option("--number", required=True, help="The number that reaches the IVR (destination_number).")
@click.option("--controller", "hosts", multiple=True, default=["127.0.0.1:8084"], show_default=True,
              help="host:port of a controller; repeat for failover, tried in order while the connect fails.")
@click.option("--fallback-bridge", default="user/1000@${domain_name}", show_default=True,
              help="Where the fallback extension bridges the caller (a person or a queue, never park).")
@click.option("--fallback-prompt", default="ivr/ivr-please_hold_while_party_contacted.wav", show_default=True)
@click.option("--watchdog-seconds", default=15, show_default=True, type=int)
@click.option("--layout", type=click.Choice(["plain", "fusionpbx"]), default="plain", show_default=True,
              help="plain: extensions for a context's include folder; fusionpbx: the tenant's own context "
                   "named after --domain-name.")
@click.option("--context", default="default", show_default=True,
              help="plain layout: the context the file is included in (the fallback lives there too).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the file here instead of printing it.")
def dialplan(domain_uuid: str, domain_name: str, number: str, hosts: tuple[str, ...], fallback_bridge: str,
             fallback_prompt: str, watchdog_seconds: int, layout: str, context: str, output: Path | None) -> None:
    """Print the FreeSWITCH dialplan file that hands a tenant's number to the controllers safely."""
    from esl_controller.dialplan import DialplanSpec, render_dialplan

    try:
        xml = render_dialplan(DialplanSpec(domain_uuid=domain_uuid, domain_name=domain_name, number=number,
                                           hosts=tuple(hosts), fallback_bridge=fallback_bridge,
                                           fallback_prompt=fallback_prompt, watchdog_seconds=watchdog_seconds,
                                           layout=layout, context=context))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if output is None:
        click.echo(xml, nl=False)
    else:
        output.write_text(xml)
        click.echo(f"wrote {output}", err=True)


# Command groups owned by each package.
_GROUPS = [
    ("scripts.call_commands", "call"),
    ("scripts.flows_commands", "flows"),
    ("scripts.db_commands", "db"),
    ("scripts.tenants_commands", "tenants"),
    ("scripts.providers_commands", "providers"),
    ("scripts.docs_commands", "docs"),
    ("scripts.calls_commands", "calls"),
    ("scripts.eval_commands", "eval_command"),
    ("scripts.ask_commands", "ask"),
    ("scripts.ask_commands", "chat"),
    ("scripts.web_commands", "web"),
    ("scripts.whatsapp_commands", "whatsapp"),
]
for _module, _name in _GROUPS:
    try:
        cli.add_command(getattr(importlib.import_module(_module), _name))
    except ModuleNotFoundError as _exc:   # a group whose package is not installed
        if _exc.name != _module:
            raise


def main() -> None:
    try:
        cli(prog_name="ivr")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
