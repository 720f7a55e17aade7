"""`ivr flows …` through click's CliRunner: validate (text and JSON, exit codes), schema (equal to
the committed docs/flow.schema.json, and it accepts the examples), graph (Mermaid and SVG)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from scripts.flows_commands import flows

ROOT = Path(__file__).parent.parent.parent
EXAMPLES = ROOT / "examples" / "flows"
BROKEN = Path(__file__).parent / "broken"
PROMPTS = Path(__file__).parent / "prompts"


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(flows, list(args), catch_exceptions=False)


def test_validate_valid_examples_exits_0() -> None:
    result = invoke(
        "validate", str(EXAMPLES), "--check-goto", "--allow-host", "crm.example.com", "--prompts", str(PROMPTS)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.strip() == "3 files valid"


def test_validate_broken_files_exits_1_with_every_error() -> None:
    target = BROKEN / "unknown_key.yaml"
    result = invoke("validate", str(EXAMPLES / "demo.yaml"), str(target))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{target}:{line}" for line in target.with_suffix(".expect").read_text().splitlines()
    ]
    assert result.stderr.strip() == "3 errors in 1 of 2 files"


def test_validate_json_format() -> None:
    target = BROKEN / "unreachable.yaml"
    result = invoke("validate", "--format", "json", str(target))
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["files"] == [str(target)]
    assert report["errors"][0] == {
        "source": str(target),
        "line": 5,
        "column": 3,
        "node": "orphan",
        "message": "unreachable: no path from start node 'welcome' leads here",
    }
    ok = invoke("validate", "--format", "json", str(EXAMPLES / "demo.yaml"))
    assert ok.exit_code == 0 and json.loads(ok.stdout) == {
        "ok": True,
        "files": [str(EXAMPLES / "demo.yaml")],
        "errors": [],
    }


def test_validate_tenant_options(tmp_path: Path) -> None:
    flow = tmp_path / "f.yaml"
    flow.write_text(
        "flow: f\nstart: p\nnodes:\n  p: {type: play, file: hello.wav, next: j}\n  j: {type: goto_flow, flow: other}\n"
    )
    assert invoke("validate", str(flow)).exit_code == 0
    result = invoke("validate", str(flow), "--prompts", str(PROMPTS), "--check-goto")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{flow}:4:25: node 'p': file: prompt file 'hello.wav' does not exist in the tenant's prompt folder",
        f"{flow}:5:30: node 'j': flow: no flow named 'other'",
    ]


def test_validate_with_no_files_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(flows, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "no flow files found" in result.output


def test_schema_equals_the_committed_file() -> None:
    result = invoke("schema")
    assert result.exit_code == 0
    assert result.stdout == (ROOT / "docs" / "flow.schema.json").read_text(encoding="utf-8")


def test_schema_output_option(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    assert invoke("schema", "--output", str(out)).exit_code == 0
    assert json.loads(out.read_text())["title"] == "IVR flow"


def _yaml(path: Path) -> object:
    return YAML(typ="safe", pure=True).load(path.read_text())


@pytest.mark.parametrize("name", ["demo.yaml", "main.yaml", "account.yaml"])
def test_schema_accepts_the_examples(name: str) -> None:
    schema = json.loads((ROOT / "docs" / "flow.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(_yaml(EXAMPLES / name))]
    assert errors == []


def test_schema_flags_what_editors_should_flag() -> None:
    validator = jsonschema.Draft202012Validator(json.loads((ROOT / "docs" / "flow.schema.json").read_text()))
    messages = [e.message for e in validator.iter_errors(_yaml(BROKEN / "unknown_key.yaml"))]
    assert any("'stat' was unexpected" in m for m in messages)
    bad_type = {"flow": "x", "start": "a", "nodes": {"a": {"type": "sya", "text": "hi"}}}
    assert list(validator.iter_errors(bad_type))


def test_graph_prints_mermaid() -> None:
    result = invoke("graph", str(EXAMPLES / "demo.yaml"))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    assert '    n0["welcome<br/><i>say</i>"]' in lines
    assert "    start --> n0" in lines
    assert '    n1 -->|"1"| n2' in lines  # menu -> sales
    assert '    n1 -->|"failure, error"| n4' in lines  # menu -> operator
    assert "    n5 --> n9" in lines and '    n9(["hangup"])' in lines  # goodbye ends the call


def test_graph_writes_an_svg(tmp_path: Path) -> None:
    out = tmp_path / "main.svg"
    result = invoke("graph", str(EXAMPLES / "main.yaml"), "--svg", str(out))
    assert result.exit_code == 0
    root = ET.fromstring(out.read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for node in ("hours", "welcome", "menu", "voicemail", "goodbye", "open", "closed", "recorded", "empty"):
        assert node in texts
    assert "ends: transferred" in texts
    paths = list(root.iter("{http://www.w3.org/2000/svg}path"))
    assert len(paths) == 1 + 1 + 15  # arrow marker, start arrow, one per (node, target) pair


def test_graph_of_an_invalid_flow_exits_1() -> None:
    result = invoke("graph", str(BROKEN / "unreachable.yaml"))
    assert result.exit_code == 1
    assert "unreachable" in result.stderr
