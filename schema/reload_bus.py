"""Live reload bus: ``ivr tenants reload [TENANT]`` tells every running controller to reload.

PostgreSQL: controllers ``LISTEN ivr_reload`` (all instances on the database hear one
``NOTIFY``) and answer on ``ivr_reload_reply``; each listener connection carries the
application name ``ivr-reload:<host>:<pid>``, so the publisher knows from ``pg_stat_activity``
how many answers to wait for and who did not answer.

SQLite: each controller binds a Unix socket ``<run_dir>/ivr-<pid>.sock`` (mode 0600; run_dir
is ``$IVR_RUN_DIR`` or ``var/run``); the publisher sends to every socket there, removes stale
ones (connection refused) and collects each controller's answer.

Either way the controller's callback gets the tenant (or None for all) and returns ``"ok"``
or the error text (say, the validation error that kept the old configuration); the publisher
returns one `ReloadReply` per controller.  The listener runs in greenlets and every wait has a
timeout; psycopg must have been imported after ``gevent.monkey.patch_all()`` for the
PostgreSQL listener to cooperate (entry points patch; this module never does).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.server
import gevent.socket
import structlog
from sqlalchemy.engine import URL

from schema.database import is_postgres, is_sqlite, libpq_conninfo, normalize_url
from schema.errors import ReloadError

log = structlog.get_logger(__name__)
CHANNEL = "ivr_reload"
REPLY_CHANNEL = "ivr_reload_reply"
APP_PREFIX = "ivr-reload:"
RUN_DIR_ENV = "IVR_RUN_DIR"
SOCKET_GLOB = "ivr-*.sock"
MAX_LINE = 64 * 1024

ReloadCallback = Callable[[str | None], str]


@dataclass(frozen=True, slots=True)
class ReloadReply:
    controller: str
    ok: bool
    message: str


def _safe(url: str | URL) -> str:
    return normalize_url(url).render_as_string(hide_password=True)


def default_run_dir() -> Path:
    return Path(os.environ.get(RUN_DIR_ENV, "").strip() or "var/run")


def controller_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


def run_callback(callback: ReloadCallback, tenant: str | None) -> tuple[bool, str]:
    """Call the controller's reload callback; any exception becomes error text."""
    try:
        result = callback(tenant)
    except Exception as e:  # the callback is the controller's: report whatever it raised
        log.exception("reload_callback_failed", tenant=tenant)
        return False, f"{type(e).__name__}: {e}"
    text = "ok" if result is None else str(result)
    return text == "ok", text


# ---- publishing ------------------------------------------------------------------------------------


def publish_reload(url: str | URL, tenant: str | None = None, *, run_dir: str | Path | None = None,
                   timeout: float = 10.0) -> list[ReloadReply]:
    """Ask every running controller to reload `tenant` (None: all); one reply per controller."""
    if is_postgres(url):
        return _publish_pg(url, tenant, timeout)
    if is_sqlite(url):
        return _publish_sockets(Path(run_dir) if run_dir else default_run_dir(), tenant, timeout)
    raise ReloadError(f"no reload bus for database URL {_safe(url)}")


def _publish_pg(url: str | URL, tenant: str | None, timeout: float) -> list[ReloadReply]:
    import psycopg  # lazy: psycopg must be imported after gevent patching in controllers

    request_id = uuid.uuid4().hex
    try:
        with psycopg.connect(libpq_conninfo(url), autocommit=True, connect_timeout=max(1, int(timeout)),
                             application_name="ivr-reload-publisher") as conn:
            conn.execute(f"LISTEN {REPLY_CHANNEL}")
            expected = [row[0] for row in conn.execute(
                "SELECT application_name FROM pg_stat_activity "
                "WHERE datname = current_database() AND starts_with(application_name, %s)", (APP_PREFIX,))]
            conn.execute("SELECT pg_notify(%s, %s)",
                         (CHANNEL, json.dumps({"id": request_id, "tenant": tenant})))
            replies = _collect_pg_replies(conn, request_id, len(expected), timeout)
    except psycopg.Error as e:
        raise ReloadError(f"cannot publish the reload on PostgreSQL: {e}") from e
    for name in expected:
        short = name.removeprefix(APP_PREFIX)
        if short not in replies:
            replies[short] = ReloadReply(short, False, f"no answer within {timeout:g}s")
    return sorted(replies.values(), key=lambda r: r.controller)


def _collect_pg_replies(conn: Any, request_id: str, expected: int, timeout: float) -> dict[str, ReloadReply]:
    import time

    replies: dict[str, ReloadReply] = {}
    deadline = time.monotonic() + timeout
    while len(replies) < expected:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        for notify in conn.notifies(timeout=remaining, stop_after=1):
            try:
                data = json.loads(notify.payload)
            except ValueError:
                continue
            if data.get("id") == request_id:
                name = str(data.get("controller"))
                replies[name] = ReloadReply(name, bool(data.get("ok")), str(data.get("message", "")))
    return replies


def _publish_sockets(run_dir: Path, tenant: str | None, timeout: float) -> list[ReloadReply]:
    paths = sorted(run_dir.glob(SOCKET_GLOB)) if run_dir.is_dir() else []
    if not paths:
        return []
    request = (json.dumps({"tenant": tenant}) + "\n").encode()
    with ThreadPoolExecutor(max_workers=min(8, len(paths))) as pool:
        results = list(pool.map(lambda p: _ask_socket(p, request, timeout), paths))
    return [r for r in results if r is not None]


def _ask_socket(path: Path, request: bytes, timeout: float) -> ReloadReply | None:
    name = path.stem.removeprefix("ivr-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)  # the controller that bound it is gone
            log.info("reload_socket_stale_removed", socket=str(path))
            return None
        sock.sendall(request)
        data = _read_line(sock)
    except TimeoutError:
        return ReloadReply(name, False, f"no answer within {timeout:g}s")
    except OSError as e:
        return ReloadReply(name, False, f"cannot reach controller: {e}")
    finally:
        sock.close()
    try:
        reply = json.loads(data)
        return ReloadReply(str(reply["controller"]), bool(reply["ok"]), str(reply["message"]))
    except (ValueError, KeyError, TypeError):
        return ReloadReply(name, False, f"unreadable answer: {data[:200]!r}")


def _read_line(sock: socket.socket) -> bytes:
    buf = b""
    while b"\n" not in buf and len(buf) < MAX_LINE:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\n", 1)[0]


# ---- listening -------------------------------------------------------------------------------------


class ReloadListener:
    """Hears reload requests for this controller and answers with the callback's result."""

    def __init__(self, url: str | URL, callback: ReloadCallback, *, run_dir: str | Path | None = None,
                 poll_timeout: float = 1.0, request_timeout: float = 5.0) -> None:
        if not (is_postgres(url) or is_sqlite(url)):
            raise ReloadError(f"no reload bus for database URL {_safe(url)}")
        self.url = url
        self.callback = callback
        self.name = controller_name()
        self.run_dir = Path(run_dir) if run_dir else default_run_dir()
        self.poll_timeout = poll_timeout
        self.request_timeout = request_timeout
        self.ready = gevent.event.Event()
        self._stopping = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None
        self._server: gevent.server.StreamServer | None = None
        self.socket_path: Path | None = None

    def start(self) -> None:
        if self._greenlet is not None or self._server is not None:
            return
        if is_postgres(self.url):
            self._greenlet = gevent.spawn(self._pg_loop)
        else:
            self._start_socket()

    def wait_ready(self, timeout: float) -> bool:
        return self.ready.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.stop(timeout=timeout)
            self._server = None
        if self.socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            self.socket_path = None
        if self._greenlet is not None:
            self._greenlet.join(timeout=timeout + self.poll_timeout)
            if not self._greenlet.dead:
                self._greenlet.kill(block=True, timeout=timeout)
            self._greenlet = None
        self.ready.clear()

    # ---- SQLite: Unix control socket --------------------------------------------------------------

    def _start_socket(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / f"ivr-{os.getpid()}.sock"
        if len(str(path.absolute()).encode()) > 100:
            raise ReloadError(f"control socket path too long for a Unix socket: {path.absolute()}")
        path.unlink(missing_ok=True)  # a stale file of a dead process that had our pid
        sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old_umask = os.umask(0o177)
            try:
                sock.bind(str(path))
            finally:
                os.umask(old_umask)
            sock.listen(16)
        except OSError as e:
            sock.close()
            raise ReloadError(f"cannot bind the control socket {path}: {e}") from e
        self.socket_path = path
        self._server = gevent.server.StreamServer(sock, self._handle_socket)
        self._server.start()
        self.ready.set()
        log.info("reload_listener_started", bus="socket", socket=str(path))

    def _handle_socket(self, conn: gevent.socket.socket, _address: object) -> None:
        conn.settimeout(self.request_timeout)
        try:
            line = _read_line(conn)
            try:
                tenant = json.loads(line).get("tenant")
            except (ValueError, AttributeError):
                return
            ok, message = run_callback(self.callback, tenant)
            reply = {"controller": self.name, "ok": ok, "message": message}
            conn.sendall((json.dumps(reply) + "\n").encode())
        except OSError as e:
            log.warning("reload_socket_request_failed", error=str(e))
        finally:
            conn.close()

    # ---- PostgreSQL: LISTEN/NOTIFY ----------------------------------------------------------------

    def _pg_loop(self) -> None:
        import psycopg  # lazy, see module docstring

        backoff = 0.5
        app_name = (APP_PREFIX + self.name)[:63]
        while not self._stopping.is_set():
            try:
                with psycopg.connect(libpq_conninfo(self.url), autocommit=True, connect_timeout=5,
                                     application_name=app_name) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.ready.set()
                    backoff = 0.5
                    log.info("reload_listener_started", bus="postgresql", controller=self.name)
                    while not self._stopping.is_set():
                        # drain the generator first: it holds the connection, so answering inside it hangs
                        received = list(conn.notifies(timeout=self.poll_timeout, stop_after=1))
                        for notify in received:
                            self._answer_pg(conn, notify.payload)
            except psycopg.Error as e:
                self.ready.clear()
                log.warning("reload_listener_disconnected", error=str(e), retry_in=backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _answer_pg(self, conn: Any, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            log.warning("reload_bad_payload")
            return
        ok, message = run_callback(self.callback, data.get("tenant"))
        message = message.encode()[:6000].decode(errors="ignore")  # NOTIFY payloads stop at 8000 bytes
        reply = json.dumps({"id": data.get("id"), "controller": self.name, "ok": ok, "message": message})
        conn.execute("SELECT pg_notify(%s, %s)", (REPLY_CHANNEL, reply))
