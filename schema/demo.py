"""The demo tenant ``tenant-a.example`` with number 5000 running the demo flow (for `make serve`).

`seed_demo` is idempotent: it migrates, creates the tenant if missing, publishes
``<flows_dir>/demo.yaml`` (no new version when its text did not change) and routes 5000 to the
flow name that file declares (``flow: demo-main`` today).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from schema.database import make_engine, make_session_factory
from schema.errors import AlreadyExists, TenantNotFound
from schema.flow_versions import PublishResult, publish
from schema.migrate import upgrade
from schema.rows import TenantInfo
from schema.store import TenantStore
from schema.tenants import add_tenant, find_tenant

DEMO_DOMAIN_UUID = "11111111-1111-1111-1111-111111111111"
DEMO_DOMAIN_NAME = "tenant-a.example"
DEMO_NUMBER = "5000"
DEMO_FLOW_FILE = "demo.yaml"


@dataclass(frozen=True, slots=True)
class SeedResult:
    tenant: TenantInfo
    tenant_created: bool
    publish: PublishResult


def seed_demo(url: str | URL | None = None, flows_dir: str | Path = "examples/flows", *,
              author: str = "seed-demo") -> SeedResult:
    """Create (if needed) the demo tenant, route 5000 and publish ``demo.yaml`` from `flows_dir`."""
    flow_file = Path(flows_dir) / DEMO_FLOW_FILE
    if not flow_file.is_file():
        raise FileNotFoundError(f"demo flow not found: {flow_file}")
    engine = make_engine(url)
    try:
        upgrade(engine)
        sessions = make_session_factory(engine)
        created = False
        try:
            tenant = find_tenant(sessions, DEMO_DOMAIN_UUID)
        except TenantNotFound:
            try:
                tenant = add_tenant(sessions, DEMO_DOMAIN_NAME, domain_uuid=DEMO_DOMAIN_UUID)
            except AlreadyExists as e:
                raise AlreadyExists(f"{DEMO_DOMAIN_NAME} exists with another domain_uuid than "
                                    f"{DEMO_DOMAIN_UUID}; remove or rename it first") from e
            created = True
        store = TenantStore(sessions, tenant.id)
        result = publish(store, flow_file, author)
        store.set_route(DEMO_NUMBER, result.version.flow_name)
        return SeedResult(tenant=tenant, tenant_created=created, publish=result)
    finally:
        engine.dispose()
