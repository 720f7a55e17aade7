"""Each account's secretary: the tenant's own providers and documents, with the account's settings.

`SecretaryBook.for_account(route)` builds (and keeps for `ttl` seconds, so a new index or provider
configuration is picked up) the `rag.secretary.Secretary` of an account: the tenant's provider set
(`rag.services.tenant_providers`, shared per configuration version like a controller's), its
retriever, and settings from the account's ``assistant_flow`` (``FLOW[:NODE]``: the ask_ai node
the tenant's callers reach, so calls and chats answer alike) or the ask_ai defaults, with the
account's own overrides. The channel's wording is ``chat``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from rag.secretary import Secretary, SecretarySettings
from rag.services import tenant_providers, tenant_secretary
from schema.database import make_session_factory
from schema.store import TenantStore
from whatsapp.store import AccountRoute

if TYPE_CHECKING:
    from providers.tenant_set import TenantProviders


@dataclass(frozen=True, slots=True)
class AccountSecretary:
    secretary: Secretary
    providers: TenantProviders
    built_at: float


def account_secretary_settings(store: TenantStore, route: AccountRoute) -> SecretarySettings:
    s = route.account.settings
    settings = SecretarySettings()
    if s.assistant_flow:
        from ivr_flows.nodes.ask_ai import secretary_settings_of_text

        name, _, node = s.assistant_flow.partition(":")
        settings = secretary_settings_of_text(store.published_version(name).yaml_text, f"{name}.yaml", node or None)
    return settings.overridden(instructions=s.instructions, min_score=s.min_score, top_k=s.top_k, channel="chat")


class SecretaryBook:
    def __init__(self, engine: Engine, *, ttl: float = 30.0) -> None:
        self.engine = engine
        self.sessions = make_session_factory(engine)
        self.ttl = ttl
        self._built: dict[int, AccountSecretary] = {}

    def for_account(self, route: AccountRoute) -> AccountSecretary:
        key = route.account.id
        current = self._built.get(key)
        if current is not None and time.monotonic() - current.built_at < self.ttl:
            return current
        store = TenantStore(self.sessions, route.account.tenant_id)
        providers = tenant_providers(store)
        secretary = tenant_secretary(self.engine, store, account_secretary_settings(store, route),
                                     providers=providers)
        built = AccountSecretary(secretary, providers, time.monotonic())
        self._built[key] = built
        return built
