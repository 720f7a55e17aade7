"""Tenant names follow the domain-name grammar, and every per-tenant folder is named by uuid.

Finding: a tenant named ``../recordings`` got ``var/prompts/../recordings`` as its prompt folder,
so its flow played another tenant's voicemail; ``.`` and ``evil/../../x`` were accepted too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from esl_controller.database_routing import DatabaseRouting
from esl_controller.routing import CallRoute, DirectoryRouting
from ivr_flows.call import CallInfo
from ivr_flows.errors import PromptPathError
from ivr_flows.prompt_paths import resolve_prompt
from schema.errors import InvalidValue
from schema.models import Tenant
from schema.store import TenantStore
from schema.tenant_paths import adopt_legacy_folder, domain_name_problem, tenant_folder
from schema.tenants import add_tenant, update_tenant
from scripts.tenants_commands import tenants

A_UUID = "11111111-1111-4111-8111-111111111111"
EVIL_UUID = "66666666-6666-4666-8666-666666666666"
PLAY = "flow: {name}\nstart: p\nnodes:\n  p: {{type: play, file: {file}, next: h}}\n  h: {{type: hangup}}\n"


@pytest.mark.parametrize("name", ["../recordings", ".", "evil/../../x", "a..b", "-a.example", "a-.example",
                                  "", "a b", "x" * 64 + ".example", "tenant_a.example", "a/b", "..", "ünï.example"])
def test_names_outside_the_domain_grammar_are_refused(sessions: sessionmaker[Session], name: str) -> None:
    assert domain_name_problem(name.strip().lower()) is not None
    with pytest.raises(InvalidValue):
        add_tenant(sessions, name)


@pytest.mark.parametrize("name", ["tenant-a.example", "acme", "192.168.1.10", "Sales.Example.COM", "x" * 63])
def test_domain_names_are_accepted(sessions: sessionmaker[Session], name: str) -> None:
    assert add_tenant(sessions, name).domain_name == name.lower()


def test_a_rename_is_checked_too(sessions: sessionmaker[Session]) -> None:
    add_tenant(sessions, "a.example", domain_uuid=A_UUID)
    with pytest.raises(InvalidValue):
        update_tenant(sessions, "a.example", domain_name="../recordings")
    assert update_tenant(sessions, "a.example", domain_name="b.example").domain_name == "b.example"
    result = CliRunner().invoke(tenants, ["update", "b.example", "--domain-name", "evil/../../x",
                                          "--url", str(sessions.kw["bind"].url)])
    assert result.exit_code == 1 and "is not a domain name" in result.output


def test_folders_are_named_by_uuid_and_stay_inside_their_root(tmp_path: Path) -> None:
    assert tenant_folder(tmp_path, A_UUID.upper()) == tmp_path.resolve() / A_UUID
    with pytest.raises(InvalidValue):
        tenant_folder(tmp_path, "../recordings")
    (tmp_path / "escape").symlink_to("/")
    with pytest.raises(InvalidValue, match="outside"):
        from schema.tenant_paths import inside

        inside(tmp_path, tmp_path / "escape" / "etc")


def test_a_legacy_tenant_named_dot_dot_recordings_cannot_reach_another_tenants_voicemail(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    var = tmp_path / "var"
    voicemail = var / "recordings" / A_UUID / "2026-01-01" / "message.wav"
    voicemail.parent.mkdir(parents=True)
    voicemail.write_bytes(b"RIFF....WAVE")
    add_tenant(sessions, "a.example", domain_uuid=A_UUID)
    with sessions() as s, s.begin():      # a tenant added before names were validated
        s.execute(insert(Tenant).values(domain_uuid=EVIL_UUID, domain_name="../recordings", time_zone="UTC",
                                        language="en-US", settings={}, over_limit_action="reject"))
    evil = TenantStore.open(sessions, EVIL_UUID)
    evil.add_version("steal", PLAY.format(name="steal", file=f"{A_UUID}/2026-01-01/message.wav"), author="x")
    evil.set_route("6000", "steal")
    routing = DatabaseRouting(sessions.kw["bind"], prompt_root=var / "prompts", recordings_root=var / "recordings")
    # The flow no longer validates (the file is not in its own prompt folder): the tenant is refused…
    assert "does not exist" in routing.refused[EVIL_UUID] or "not found" in routing.refused[EVIL_UUID]
    # …and its prompt folder is its own, named by uuid, whatever its name says.
    snapshot_prompts = routing.prompt_dir(type("S", (), {"domain_uuid": EVIL_UUID, "domain_name": "../recordings"}))
    assert snapshot_prompts == (var / "prompts" / EVIL_UUID).resolve()
    with pytest.raises(PromptPathError):
        resolve_prompt(snapshot_prompts, f"../../recordings/{A_UUID}/2026-01-01/message.wav")


def test_a_pre_uuid_prompt_folder_is_adopted_once(tmp_path: Path) -> None:
    legacy = tmp_path / "tenant-a.example"
    legacy.mkdir()
    (legacy / "welcome.wav").write_bytes(b"RIFF")
    folder = adopt_legacy_folder(tmp_path, A_UUID, "tenant-a.example")
    assert folder == tmp_path.resolve() / A_UUID and (folder / "welcome.wav").read_bytes() == b"RIFF"
    assert not legacy.exists()
    assert adopt_legacy_folder(tmp_path, A_UUID, "tenant-a.example") == folder        # idempotent
    # never for a name outside the grammar, nor for a symlink
    (tmp_path / "recordings").mkdir()
    assert adopt_legacy_folder(tmp_path, EVIL_UUID, "../recordings") == tmp_path.resolve() / EVIL_UUID
    assert (tmp_path / "recordings").is_dir() and not (tmp_path / EVIL_UUID).exists()


def test_a_channel_domain_uuid_never_names_a_folder_unless_it_is_a_uuid(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "p.yaml").write_text("flow: demo-main\nstart: h\nnodes:\n  h: {type: hangup}\n")
    routing = DirectoryRouting(flows, prompt_dir=tmp_path / "prompts", recordings_dir=tmp_path / "rec")
    route = routing.route(CallInfo(uuid="c1", domain_uuid="../../etc", domain_name="x"))
    assert route is not None and route.tenant_key == "default"
    route = routing.route(CallInfo(uuid="c2", domain_uuid=A_UUID.upper(), domain_name="x"))
    assert route is not None and route.tenant_key == A_UUID
    with pytest.raises(ValueError, match="cannot name a folder"):
        CallRoute(tenant_key="../x", tenant_name="x", flow=None)
