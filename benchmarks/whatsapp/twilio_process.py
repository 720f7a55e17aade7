"""The loopback Twilio stub of the tests (`tests/whatsapp/twilio_stub.py`) in a process of its own, so the
benchmark's load generator and the stub do not share a CPU budget. Prints its API and CDN URLs, then
serves until it is terminated.

    python benchmarks/whatsapp/twilio_process.py ACCOUNT_SID AUTH_TOKEN
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "whatsapp"))

import gevent  # noqa: E402
import gevent.event  # noqa: E402
from twilio_stub import TwilioStub  # noqa: E402


def main() -> None:
    stub = TwilioStub()
    stub.tokens[sys.argv[1]] = sys.argv[2]
    print(json.dumps({"api": stub.api_url, "cdn": stub.cdn_url}), flush=True)
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    stopping.wait()
    stub.close()


if __name__ == "__main__":
    main()
