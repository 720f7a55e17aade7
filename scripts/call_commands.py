"""``ivr call simulate``: one call through the built-in FreeSWITCH simulator, every command shown.

The simulator dials into a running controller (``--host/--port``) or into one started in this
process (``--flows-dir``), plays the caller (digits given with ``--press``, typed on the
keyboard with ``--interactive``, a WAV with ``--speak``, a hangup with ``--hangup-after``) and
prints each command FreeSWITCH received as it arrives, then where the call ended.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
import gevent

DEMO_UUID = "11111111-1111-1111-1111-111111111111"
DEMO_NAME = "tenant-a.example"


@click.group("call")
def call() -> None:
    """Simulated calls."""


def _typed_digits(sim_call: Any, echo: Any) -> None:
    """Read lines from the keyboard without blocking the hub; each line's digits are pressed."""
    from gevent.fileobject import FileObject

    stdin = FileObject(sys.stdin.fileno(), "r", close=False)
    while not sim_call.done:
        line = stdin.readline()
        if not line:
            return
        digits = "".join(c for c in line if c in "0123456789*#ABCD")
        if line.strip().lower() in ("h", "hangup", "q"):
            sim_call.hangup()
            return
        if digits:
            echo(f"  caller presses {digits}")
            sim_call.press(digits)


@call.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="A running controller's address.")
@click.option("--port", default=8084, show_default=True, type=int)
@click.option("--flows-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Start a controller in this process serving these flows instead of dialling --host/--port.")
@click.option("--default-flow", default="demo-main", show_default=True, help="With --flows-dir.")
@click.option("--destination", default="5000", show_default=True, help="The dialled number.")
@click.option("--caller", "caller_number", default="5551234", show_default=True)
@click.option("--domain-uuid", default=DEMO_UUID, show_default=True)
@click.option("--domain-name", default=DEMO_NAME, show_default=True)
@click.option("--press", "digits", default="", help="Digits pressed when the controller first waits for input.")
@click.option("--interactive", is_flag=True, help="Type digits (and Enter) while the call runs; 'h' hangs up.")
@click.option("--speak", "speak_wav", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A WAV the caller says when the controller first records.")
@click.option("--hangup-after", type=float, default=None, help="The caller hangs up after this many seconds.")
@click.option("--speed", type=float, default=1.0, show_default=True, help="Simulated time runs this much faster.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Give up after this many seconds.")
def simulate(host: str, port: int, flows_dir: Path | None, default_flow: str, destination: str, caller_number: str,
             domain_uuid: str, domain_name: str, digits: str, interactive: bool, speak_wav: Path | None,
             hangup_after: float | None, speed: float, timeout: float) -> None:
    """Place one simulated call and print every command FreeSWITCH received, as it happens."""
    from esl_controller.simulator import (
        CallerScript,
        FreeSwitchSimulator,
        Hangup,
        Press,
        Speak,
        Wait,
        WaitForApp,
    )

    service = None
    if flows_dir is not None:
        from esl_controller.service import build_service

        service = build_service(host="127.0.0.1", port=0, flows_dir=flows_dir, default_flow=default_flow)
        service.start()
        host, port = service.server.address

    actions: list[Any] = []
    if speak_wav is not None:
        actions += [WaitForApp("record"), Speak(str(speak_wav))]
    if digits:
        actions += [WaitForApp("play_and_get_digits"), Press(digits)]
    if hangup_after is not None:
        actions = [Wait(hangup_after), Hangup()] if not actions else [*actions, Wait(hangup_after), Hangup()]

    started = time.monotonic()

    def show(cmd: Any) -> None:
        click.echo(f"{time.monotonic() - started:8.3f}s  FreeSWITCH received: {cmd.summary}")

    sim = FreeSwitchSimulator(speed=speed)
    sim_call = sim.place_call(socket_data=f"{host}:{port} async full", destination=destination,
                              caller_number=caller_number, domain_uuid=domain_uuid, domain_name=domain_name,
                              caller=CallerScript(actions), on_command=show)
    typing = gevent.spawn(_typed_digits, sim_call, click.echo) if interactive else None
    try:
        outcome = sim_call.wait(timeout=timeout)
    except Exception as exc:
        raise click.ClickException(f"the simulated call did not end: {exc}") from exc
    finally:
        if typing is not None:
            typing.kill(block=False)
        if service is not None:
            service.stop(2.0)
    heard = sim_call.state.heard_what
    click.echo(f"outcome: {outcome}")
    reasons = [c.partition("ivr_fallback_reason=")[2] for c in sim_call.commands() if "ivr_fallback_reason=" in c]
    if reasons:
        click.echo(f"the controller sent the call to its fallback: {reasons[-1]}"
                   + (f" (no tenant has number {destination} or domain_uuid {domain_uuid}; "
                      "see `ivr tenants list`, `--domain-uuid/--domain-name`)" if reasons[-1] == "unknown_tenant"
                      else ""))
    if heard:
        click.echo("the caller heard: " + " | ".join(heard))
