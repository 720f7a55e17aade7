"""The WhatsApp channel under load, everything on loopback with the local providers.

1. **Inbound → reply** (sequential, one message at a time): a text question, and a voice note (OGG/Opus
   made with PyAV from piper speech), each from its webhook POST to the reply's create request at the
   Twilio stub; p50/p99.
2. **Webhook acknowledgement at `--rate` requests/s for `--seconds`** while the workers answer: every
   POST signed like Twilio's, open loop (each request leaves at its scheduled time, whatever the
   previous ones did); p50/p99 of the time to the 200, then the queue drained and every message checked
   answered exactly once ("nothing lost").
3. **Worker throughput and memory**: answered messages per second while draining, CPU seconds per
   message, the worker process's RSS.
4. **The baseline**, measured in the same run at the same rate: Flask on gevent's WSGI server with
   nothing of ours (`bare_server.py`: no signature, database or queue).

Processes: the web service (`ivr web`), one worker process (`ivr whatsapp worker`), the Twilio stub
(`twilio_process.py`) and this load generator, each its own process, all on 127.0.0.1.

    .venv/bin/python benchmarks/whatsapp/run.py                      # ~4 min on 2 cores
    .venv/bin/python benchmarks/whatsapp/run.py --rate 200 --seconds 60 --workers 16 --queue redis --json out.json
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks" / "calls"), str(ROOT / "tests" / "whatsapp"),
                str(ROOT / "tests" / "rag")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
import requests  # noqa: E402
from proc_stats import cpu_seconds, percentile, rss_kb  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

QUESTIONS = ["When are you open on Saturday?", "How much is a cleaning?", "Is there parking near the clinic?",
             "Do you take new patients?", "What happens if I miss an appointment?"]
VOICE_QUESTIONS = ["When are you open on Saturday?", "How much does a cleaning cost?"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"n": len(ordered), "p50": round(percentile(ordered, 50), 2), "p99": round(percentile(ordered, 99), 2),
            "max": round(ordered[-1], 2) if ordered else float("nan")}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="ivr-wa-bench-"))
        self.procs: list[subprocess.Popen[Any]] = []
        self.sid, self.token, self.number = "AC" + uuid.uuid4().hex, uuid.uuid4().hex, "whatsapp:+15550001000"
        from cryptography.fernet import Fernet

        queue = (os.environ.get("IVR_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0") if args.queue == "redis" \
            else f"sqlite:///{self.tmp / 'queue.db'}"
        self.pg_database: str | None = None
        database = f"sqlite:///{self.tmp / 'ivr.db'}"
        if args.database == "postgres":
            database = self.fresh_postgres()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "IVR_SECRET_KEYS": Fernet.generate_key().decode(),
                    "IVR_DATABASE_URL": database, "IVR_RAG_DIR": str(self.tmp / "rag"),
                    "IVR_WHATSAPP_QUEUE": queue, "IVR_WHATSAPP_QUEUE_NAME": f"bench-{uuid.uuid4().hex[:8]}",
                    "IVR_TWILIO_MEDIA_HOSTS": "localhost", "IVR_WHATSAPP_TENANT_RATE": "1000000/minute",
                    "IVR_WARM_PROVIDERS": "0", "IVR_LOG_FORMAT": "json"}
        os.environ.update(self.env)

    # ---- set-up -------------------------------------------------------------------------------------

    def fresh_postgres(self) -> str:
        """A new database on the PostgreSQL of IVR_TEST_PG_URL (dropped at the end)."""
        import psycopg

        from schema.database import libpq_conninfo, normalize_url

        admin = os.environ.get("IVR_TEST_PG_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        self.pg_admin = admin
        self.pg_database = f"ivr_wa_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(libpq_conninfo(admin), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{self.pg_database}"')
        return normalize_url(admin).set(database=self.pg_database).render_as_string(hide_password=False)

    def start(self, name: str, *argv: str, prefix: list[str] | None = None) -> subprocess.Popen[Any]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen([*(prefix or []), sys.executable, *argv], cwd=ROOT, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def setup(self, *, worker: bool = True) -> None:
        from rag.ingest import Ingester
        from rag.services import tenant_embeddings
        from rag.settings import RagSettings, open_index
        from schema.database import make_engine, make_session_factory
        from schema.migrate import upgrade
        from schema.store import TenantStore
        from schema.tenants import add_tenant
        from whatsapp.store import WhatsAppStore

        url = self.env["IVR_DATABASE_URL"]
        upgrade(url)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        tenant = TenantStore(sessions, add_tenant(sessions, "dental.example", time_zone="America/New_York").id)
        rag = RagSettings.from_env()
        Ingester(tenant, open_index(rag, tenant.tenant_id, engine), tenant_embeddings(tenant), rag).ingest(
            [ROOT / "examples" / "knowledge"])
        WhatsAppStore(sessions).add_account(tenant.tenant_id, self.sid, self.number, auth_token=self.token)
        engine.dispose()

        stub = subprocess.Popen([sys.executable, str(ROOT / "benchmarks/whatsapp/twilio_process.py"), self.sid,
                                 self.token], cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stdin=subprocess.PIPE)
        self.procs.append(stub)
        while True:                                  # its first JSON line (log lines may come first)
            line = stub.stdout.readline()               # type: ignore[union-attr]
            if not line:
                raise RuntimeError("the Twilio stub did not start")
            if line.startswith(b'{"api"'):
                urls = json.loads(line)
                break
        self.stub_url = urls["api"]
        self.env["IVR_TWILIO_API_BASE"] = self.stub_url
        self.web_port = free_port()
        self.web = self.start("web", "-m", "scripts.cli", "--log-format", "json", "web", "--port", str(self.web_port))
        if worker:
            self.start_worker()
        self.url = f"http://127.0.0.1:{self.web_port}/twilio/whatsapp"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{self.web_port}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the web service did not start")
            time.sleep(0.2)

    def start_worker(self) -> None:
        nice = ["nice", "-n", str(self.args.worker_nice)] if self.args.worker_nice else []
        self.worker = self.start("worker", "-m", "scripts.cli", "--log-format", "json", "whatsapp", "worker",
                                 "--workers", str(self.args.workers), prefix=nice)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.pg_database:
            import psycopg

            from schema.database import libpq_conninfo

            with psycopg.connect(libpq_conninfo(self.pg_admin), autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_database}" WITH (FORCE)')

    # ---- helpers ------------------------------------------------------------------------------------

    def fields(self, sender: str, body: str = "", media: tuple[str, str] | None = None) -> dict[str, str]:
        from twilio_stub import inbound_fields

        return inbound_fields(self.sid, self.number, sender, body, media=[media] if media else [])

    def post(self, session: requests.Session, fields: dict[str, str], url: str | None = None) -> tuple[int, float]:
        target = url or self.url
        signed_for = target                        # the bare baseline ignores it; ours checks it
        headers = {"X-Twilio-Signature": RequestValidator(self.token).compute_signature(signed_for, fields)}
        started = time.perf_counter()
        response = session.post(target, data=fields, headers=headers, timeout=30)
        return response.status_code, (time.perf_counter() - started) * 1000

    def sent(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.stub_url}/_stub/sent", timeout=30).json()

    def wait_reply(self, to: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in self.sent() if r["to"] == to]
            if found:
                return found[0]
            time.sleep(0.01)
        raise RuntimeError(f"no reply within {timeout} s")

    # ---- phases -------------------------------------------------------------------------------------

    def warm_up(self) -> None:
        with requests.Session() as session:
            for i in range(3):
                sender = f"whatsapp:+1999000000{i}"
                self.post(session, self.fields(sender, QUESTIONS[i]))
                self.wait_reply(sender, timeout=180)

    def reply_latency(self) -> dict[str, Any]:
        from whatsapp_harness import ogg_opus

        out: dict[str, Any] = {}
        with requests.Session() as session:
            text, ack = [], []
            for i in range(self.args.latency_messages):
                sender = f"whatsapp:+1888{i:07d}"
                sent_at = time.time()
                _status, ms = self.post(session, self.fields(sender, QUESTIONS[i % len(QUESTIONS)]))
                ack.append(ms)
                text.append((self.wait_reply(sender)["created"] - sent_at) * 1000)
            out["text_reply_ms"], out["idle_ack_ms"] = summary(text), summary(ack)
            notes = [ogg_opus(q) for q in VOICE_QUESTIONS]
            voice = []
            for i in range(self.args.voice_notes):
                media = requests.post(f"{self.stub_url}/_stub/media", params={"account": self.sid, "type": "audio/ogg"},
                                      data=notes[i % len(notes)], timeout=10).json()["url"]
                sender = f"whatsapp:+1777{i:07d}"
                sent_at = time.time()
                self.post(session, self.fields(sender, "", (media, "audio/ogg")))
                voice.append((self.wait_reply(sender)["created"] - sent_at) * 1000)
            out["voice_reply_ms"] = summary(voice)
        return out

    def load(self, url: str, rate: float, seconds: float, prefix: str) -> dict[str, Any]:
        total = int(rate * seconds)
        forms = [self.fields(f"whatsapp:+1{prefix}{i % 3000:06d}", QUESTIONS[i % len(QUESTIONS)])
                 for i in range(total)]
        sessions: gevent.queue.Queue = gevent.queue.Queue()
        for _ in range(64):
            sessions.put(requests.Session())
        acks: list[float] = []
        statuses: dict[int, int] = {}
        late: list[float] = []
        pool = gevent.pool.Pool(2000)

        def one(i: int, at: float) -> None:
            session = sessions.get()
            try:
                late.append(max(0.0, time.perf_counter() - at) * 1000)
                status, ms = self.post(session, forms[i], url)
                acks.append(ms)
                statuses[status] = statuses.get(status, 0) + 1
            except requests.RequestException as e:
                statuses[-1] = statuses.get(-1, 0) + 1
                print(f"request failed: {type(e).__name__}", file=sys.stderr)
            finally:
                sessions.put(session)

        start = time.perf_counter() + 0.5
        for i in range(total):
            at = start + i / rate
            delay = at - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            pool.spawn(one, i, at)
        pool.join(timeout=120)
        return {"requests": total, "statuses": statuses, "ack_ms": summary(acks), "send_lateness_ms": summary(late),
                "elapsed_s": round(time.perf_counter() - start, 1)}

    def drain(self, expected: int, since: int) -> dict[str, Any]:
        started = time.monotonic()
        cpu0 = cpu_seconds(self.worker.pid)
        rss = []
        while True:
            sent = self.sent()
            rss.append(rss_kb(self.worker.pid))
            if len(sent) - since >= expected or time.monotonic() - started > self.args.drain_timeout:
                break
            time.sleep(1.0)
        return {"sent": sent, "drain_s": round(time.monotonic() - started, 1),
                "drain_cpu_s": round(cpu_seconds(self.worker.pid) - cpu0, 1), "worker_rss_mb_max": max(rss) // 1024}

    def run(self) -> dict[str, Any]:
        results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "rate": self.args.rate,
                                   "seconds": self.args.seconds, "workers": self.args.workers, "queue": self.args.queue,
                                   "worker_nice": self.args.worker_nice, "database": self.args.database}
        # The baseline first, alone on the machine like ours is below (with its workers).
        bare_port = free_port()
        bare = self.start("bare", str(ROOT / "benchmarks/whatsapp/bare_server.py"), str(bare_port))
        time.sleep(1.5)
        results["baseline"] = self.load(f"http://127.0.0.1:{bare_port}/twilio/whatsapp", self.args.rate,
                                        self.args.seconds, "3")
        bare.terminate()
        print("baseline", json.dumps(results["baseline"]), flush=True)

        if self.args.web_only:   # the webhook alone: no worker answers (the queue just fills)
            self.setup(worker=False)
            results["ours_web_only"] = self.load(self.url, self.args.rate, self.args.seconds, "2")
            results["ack_p99_ratio_vs_baseline"] = round(results["ours_web_only"]["ack_ms"]["p99"] /
                                                         results["baseline"]["ack_ms"]["p99"], 2)
            print("ours, web only", json.dumps(results["ours_web_only"]), flush=True)
            return results
        self.setup()
        self.warm_up()
        results.update(self.reply_latency())
        print("latency", json.dumps({k: v for k, v in results.items() if k.endswith("_ms")}), flush=True)

        before = len(self.sent())
        rss0 = rss_kb(self.worker.pid) // 1024
        cpu0 = cpu_seconds(self.worker.pid)
        load_started = time.monotonic()
        results["ours"] = self.load(self.url, self.args.rate, self.args.seconds, "2")
        accepted = results["ours"]["statuses"].get(200, 0)
        drained = self.drain(accepted, before)
        new = drained.pop("sent")[before:]
        wall = time.monotonic() - load_started
        answered = len(new)
        unique = len({r["to"] + "|" + str(r["created"]) for r in new})
        results["ours"].update({
            "accepted": accepted, "replies": answered, "unique_replies": unique,
            "nothing_lost": answered == accepted, "drain_after_load_s": drained["drain_s"],
            "throughput_msgs_per_s": round(answered / wall, 1),
            "worker_cpu_s_per_msg": round((cpu_seconds(self.worker.pid) - cpu0) / max(1, answered), 4),
            "worker_rss_mb_before": rss0, "worker_rss_mb_max": drained["worker_rss_mb_max"],
            "web_rss_mb": rss_kb(self.web.pid) // 1024})
        results["ack_p50_ratio_vs_baseline"] = round(results["ours"]["ack_ms"]["p50"] /
                                                     results["baseline"]["ack_ms"]["p50"], 2)
        results["ack_p99_ratio_vs_baseline"] = round(results["ours"]["ack_ms"]["p99"] /
                                                     results["baseline"]["ack_ms"]["p99"], 2)
        print("ours", json.dumps(results["ours"]), flush=True)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--queue", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite",
                        help="postgres: a fresh database on IVR_TEST_PG_URL's server")
    parser.add_argument("--worker-nice", type=int, default=0,
                        help="run the worker process at this niceness (the webhook first on a shared machine)")
    parser.add_argument("--web-only", action="store_true", help="only the webhook under load, no worker")
    parser.add_argument("--latency-messages", type=int, default=30)
    parser.add_argument("--voice-notes", type=int, default=20)
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    bench = Bench(args)
    try:
        results = bench.run()
    finally:
        bench.close()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
