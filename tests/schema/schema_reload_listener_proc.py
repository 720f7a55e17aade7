"""Helper process for the reload-bus tests: a controller-like process running a `ReloadListener`.

Usage: python schema_reload_listener_proc.py URL RUN_DIR MODE OUT_FILE
MODE "ok" answers ok; "fail" answers with a validation error text.  Prints "ready" once listening,
appends each request's tenant to OUT_FILE, exits on SIGTERM (or by itself after 60 s).
"""

from gevent import monkey

monkey.patch_all()  # before anything imports psycopg

import json  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

from schema.reload_bus import ReloadListener  # noqa: E402

FAILURE = "demo.yaml:3:5: node 'menu': unknown target 'nowhere'; kept the previous configuration"


def main() -> int:
    url, run_dir, mode, out_path = sys.argv[1:5]

    def callback(tenant: str | None) -> str:
        with open(out_path, "a") as f:
            f.write(json.dumps({"tenant": tenant}) + "\n")
        return FAILURE if mode == "fail" else "ok"

    listener = ReloadListener(url, callback, run_dir=run_dir or None, poll_timeout=0.5)
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    listener.start()
    if not listener.wait_ready(20):
        print("not ready", flush=True)
        return 2
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not stop.wait(0.5) and time.monotonic() < deadline:
        pass
    listener.stop(timeout=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
