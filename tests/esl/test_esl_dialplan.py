"""`ivr dialplan` prints the safe dialplan shape of FREESWITCH-SAFETY.md."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from esl_controller.dialplan import DialplanSpec, render_dialplan
from scripts.cli import cli


def _actions(xml: str) -> list[list[tuple[str, str | None]]]:
    root = ET.fromstring(xml)          # the file as printed is one well-formed <include> document
    assert root.tag == "include"
    return [[(a.get("application"), a.get("data")) for a in ext.iter("action")] for ext in root.iter("extension")]


@pytest.mark.parametrize(("layout", "context", "expected"), [("plain", "default", "default"),
                                                           ("plain", "public", "public"),
                                                           ("fusionpbx", "default", "tenant-a.example")])
def test_dialplan_shape_is_safe(layout, context, expected):
    xml = render_dialplan(DialplanSpec(domain_uuid="11111111-1111-1111-1111-111111111111",
                                       domain_name="tenant-a.example", number="5000",
                                       hosts=("127.0.0.1:8084", "127.0.0.1:8085"), layout=layout, context=context))
    main, fallback = _actions(xml)
    apps = [a for a, _ in main]
    assert ("set", "socket_resume=true") in main
    assert ("set", "domain_uuid=11111111-1111-1111-1111-111111111111") in main
    assert apps.index("sched_transfer") < apps.index("socket") < apps.index("transfer")
    assert dict(main)["sched_transfer"] == f"+15 ivr_fallback XML {expected}"
    assert dict(main)["socket"] == "127.0.0.1:8084|127.0.0.1:8085 async full"
    assert dict(main)["transfer"] == f"ivr_fallback XML {expected}"
    fb = [a for a, _ in fallback]
    assert fb[:3] == ["unset", "sched_cancel", "answer"]
    assert "bridge" in fb and "park" not in fb


def test_fusionpbx_layout_is_one_context_named_after_the_domain():
    xml = render_dialplan(DialplanSpec("u", "acme.example", "5000", layout="fusionpbx"))
    contexts = ET.fromstring(xml).findall("context")
    assert [c.get("name") for c in contexts] == ["acme.example"]
    assert len(contexts[0].findall("extension")) == 2


def test_bad_layout_and_context_are_refused():
    with pytest.raises(ValueError, match="layout"):
        render_dialplan(DialplanSpec("u", "d", "5000", layout="flat"))
    with pytest.raises(ValueError, match="context"):
        render_dialplan(DialplanSpec("u", "d", "5000", context="a b"))


@pytest.mark.parametrize("hosts", [("127.0.0.1",), ("127.0.0.1:8084", "10.0.0.2")])
def test_every_host_needs_its_port(hosts):
    with pytest.raises(ValueError, match="host:port"):
        render_dialplan(DialplanSpec("u", "d", "5000", hosts=hosts))


def test_fallback_must_not_park():
    with pytest.raises(ValueError, match="not park"):
        render_dialplan(DialplanSpec("u", "d", "5000", fallback_bridge="park"))


def test_cli_prints_the_dialplan_and_refuses_bad_hosts():
    runner = CliRunner()
    ok = runner.invoke(cli, ["dialplan", "--domain-uuid", "u-1", "--domain-name", "acme.example", "--number", "5000",
                             "--controller", "127.0.0.1:8084", "--controller", "127.0.0.1:8085"])
    assert ok.exit_code == 0, ok.output
    assert 'data="127.0.0.1:8084|127.0.0.1:8085 async full"' in ok.output
    bad = runner.invoke(cli, ["dialplan", "--domain-uuid", "u", "--domain-name", "d", "--number", "5000",
                              "--controller", "127.0.0.1"])
    assert bad.exit_code != 0 and "host:port" in bad.output
