"""The WhatsApp channel assembled for a test: a migrated SQLite database, tenants with their documents,
accounts at the loopback Twilio stub, the real web service on 127.0.0.1, and real huey workers.

`Channel(tmp_path, twilio, queue_url=…)` is what `ivr web` and `ivr whatsapp worker` wire up in
production (`whatsapp.runtime`), with short retry delays and leases so tests do not wait long.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests
from twilio_stub import TwilioStub, inbound_fields

from rag.ingest import Ingester
from rag.services import tenant_embeddings
from rag.settings import RagSettings, open_index
from schema.database import make_engine, make_session_factory
from schema.migrate import upgrade
from schema.store import TenantStore
from schema.tenants import add_tenant
from whatsapp.account_settings import AccountSettings
from whatsapp.runtime import Runtime, Worker, web_app, worker
from whatsapp.settings import ChannelSettings
from whatsapp.store import WhatsAppStore
from whatsapp.web import serve

ROOT = Path(__file__).resolve().parents[2]
KNOWLEDGE = ROOT / "examples" / "knowledge"


@dataclass(frozen=True)
class Account:
    id: int
    tenant_id: int
    sid: str
    token: str
    number: str        # whatsapp:+1…


def test_settings(twilio: TwilioStub, queue_url: str, **overrides: Any) -> ChannelSettings:
    base = ChannelSettings(queue_url=queue_url, twilio_api_base=twilio.api_url, media_hosts=("localhost",),
                           backoff_base=0.05, backoff_max=0.5, lease_seconds=2.0, sweep_every=0.5,
                           requeue_after=1.0, twilio_timeout=2.0, handoff_timeout=2.0, max_attempts=4)
    return replace(base, **overrides)


class Channel:
    def __init__(self, tmp_path: Path, twilio: TwilioStub, *, queue_url: str | None = None,
                 **settings: Any) -> None:
        import uuid

        settings.setdefault("queue_name", f"ivr-test-{uuid.uuid4().hex[:10]}")
        self.tmp = tmp_path
        self.twilio = twilio
        self.url = f"sqlite:///{tmp_path / 'ivr.db'}"
        upgrade(self.url)
        self.engine = make_engine(self.url)
        self.sessions = make_session_factory(self.engine)
        self.settings = test_settings(twilio, queue_url or f"sqlite:///{tmp_path / 'queue.db'}", **settings)
        from whatsapp.queue import MessageQueue

        self.runtime = Runtime(self.settings, self.engine, WhatsAppStore(self.sessions),
                               MessageQueue(self.settings.queue_url, name=self.settings.queue_name))
        self.store = self.runtime.store
        self.queue = self.runtime.queue
        self.server: Any = None
        self.workers: list[Worker] = []
        self._numbers = 0

    # ---- tenants and accounts ----------------------------------------------------------------------

    def tenant(self, name: str, *, docs: Sequence[Path] = (KNOWLEDGE,),
               llm: Sequence[tuple[str, dict[str, Any], dict[str, str]]] = ()) -> TenantStore:
        info = add_tenant(self.sessions, name, time_zone="America/New_York")
        store = TenantStore(self.sessions, info.id)
        for position, (provider, settings, secrets) in enumerate(llm):
            store.set_provider("llm", provider, position=position, settings=settings, secrets=secrets)
        if docs:
            rag = RagSettings.from_env()
            reports = Ingester(store, open_index(rag, store.tenant_id, self.engine), tenant_embeddings(store),
                               rag).ingest(list(docs))
            assert reports and all(r.status == "added" for r in reports), reports
        return store

    def account(self, tenant: TenantStore, **settings: Any) -> Account:
        token = f"token-{tenant.tenant_id}-{self._numbers}"
        sid = self.twilio.add_account(token)
        self._numbers += 1
        number = f"whatsapp:+1555000{self._numbers:04d}"
        handoff_secret = "handoff-secret" if settings.get("handoff_url") else None
        info = self.store.add_account(tenant.tenant_id, sid, number, auth_token=token, handoff_secret=handoff_secret,
                                      settings=AccountSettings.model_validate(settings))
        return Account(info.id, tenant.tenant_id, sid, token, number)

    # ---- the web service ---------------------------------------------------------------------------

    def serve(self, *, public: bool = False, **options: Any) -> str:
        """The web service on a free loopback port; with `public`, that URL is also the configured
        public URL (where Twilio's status callbacks go)."""
        port = 0
        if public:
            import socket

            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            self.runtime.settings = replace(self.runtime.settings, public_base_url=f"http://127.0.0.1:{port}")
        self.server = serve(web_app(self.runtime, **options), "127.0.0.1", port)
        return self.base_url

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def post(self, account: Account, sender: str, body: str = "", *, media: Sequence[tuple[str, str]] = (),
             message_sid: str | None = None, token: str | None = None, fields: dict[str, str] | None = None,
             signed_url: str | None = None, headers: dict[str, str] | None = None) -> requests.Response:
        """What Twilio posts for one inbound message, signed with the account's token."""
        url = f"{self.base_url}/twilio/whatsapp"
        form = fields if fields is not None else inbound_fields(account.sid, account.number, sender, body,
                                                                media=list(media), message_sid=message_sid)
        signature = TwilioStub.signed_form(signed_url or url, form, token or account.token)
        return requests.post(url, data=form, headers={**signature, **(headers or {})}, timeout=10)

    # ---- workers -----------------------------------------------------------------------------------

    def start_workers(self, count: int = 4) -> Worker:
        w = worker(self.runtime, workers=count)
        w.start()
        self.workers.append(w)
        return w

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        if self.server is not None:
            self.server.stop(timeout=2)
        self.queue.flush()          # this test's queue only (its huey name is its own)
        self.engine.dispose()


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0, every: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy (returns it); fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {predicate}")
        time.sleep(every)


def ogg_opus(text: str) -> bytes:
    """`text` spoken by piper (the caller voice of the RAG tests: no random variation), encoded with
    PyAV as WhatsApp sends voice notes: Opus in an OGG container, 48 kHz mono."""
    import io

    import av
    from rag_harness import caller_voice

    clip = caller_voice().synthesize(text).resample(48000)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000, layout="mono")
        stream.bit_rate = 24000
        frame = av.AudioFrame.from_ndarray(clip.samples().reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buffer.getvalue()
