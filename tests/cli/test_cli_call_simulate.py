"""`ivr call simulate` against an in-process controller serving the example flows."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from scripts.cli import cli

FLOWS = Path(__file__).resolve().parents[2] / "examples" / "flows"


def test_simulate_prints_every_command_and_the_outcome():
    result = CliRunner().invoke(cli, ["call", "simulate", "--flows-dir", str(FLOWS), "--press", "1",
                                      "--speed", "40", "--timeout", "60"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    received = [line.split("FreeSWITCH received: ", 1)[1] for line in lines if "FreeSWITCH received: " in line]
    assert received[:4] == ["connect", "sendmsg execute sched_cancel", "myevents", "linger 30"]
    assert "sendmsg execute transfer 1001 XML default" in received
    assert any(line.startswith("outcome: transferred") and "1001" in line for line in lines)


def test_simulate_hangup_after_is_an_outcome():
    result = CliRunner().invoke(cli, ["call", "simulate", "--flows-dir", str(FLOWS), "--hangup-after", "0.5",
                                      "--speed", "40"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "outcome: caller_hangup" in result.output
