"""Entry point of one benchmark server process: ``python server_process.py KIND [options]``.

KIND is ``ours`` (EslServer + CallSession), ``controller`` (the full CallController),
``greenswitch`` (raw OutboundESLServer) or ``lean`` (hand-written StreamServer).  Like
``ivr serve`` it monkey-patches first and configures structlog (JSON lines to stderr, at
``--log-level``).  It prints ``READY <host> <port> <pid>`` once listening on 127.0.0.1, and
on SIGTERM (or when its parent dies) prints ``STATS <json>`` (the `CallCounters` and its own
``getrusage``) and exits.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
for _path in (str(HERE.parents[1]), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import gevent  # noqa: E402
from gevent.event import Event as GEvent  # noqa: E402
from server_settings import CallCounters, ServerSettings  # noqa: E402

from esl_controller.call_log import configure_logging  # noqa: E402

KINDS = {"ours": "server_ours", "controller": "server_controller", "greenswitch": "server_greenswitch",
         "lean": "server_lean"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--prompt-dir", default=None, help="where the prompt files are (default: a temp dir)")
    parser.add_argument("--max-calls", type=int, default=20000)
    parser.add_argument("--nice", type=int, default=None, help="scheduling priority (negative needs root)")
    parser.add_argument("--cpus", default="", help="comma-separated CPUs to run on (default: any)")
    args = parser.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    if args.nice is not None:       # the runner starts us in our own session, hence our own autogroup
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(args.nice))
        except OSError as exc:
            print(f"server: cannot set the autogroup's nice: {exc}", file=sys.stderr)

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    configure_logging(json_lines=True, level=args.log_level)
    prompt_dir = Path(args.prompt_dir or tempfile.mkdtemp(prefix="bench-calls-prompts-"))
    settings = ServerSettings(play_path=str(prompt_dir / "bench_prompt.wav"),
                              menu_path=str(prompt_dir / "bench_menu.wav"), max_calls=args.max_calls)
    counters = CallCounters()
    module = importlib.import_module(KINDS[args.kind])
    host, port = module.serve(settings, counters)

    stop = GEvent()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    parent = os.getppid()

    def watch_parent() -> None:
        while os.getppid() == parent:
            gevent.sleep(1.0)
        stop.set()

    gevent.spawn(watch_parent)
    print(f"READY {host} {port} {os.getpid()}", flush=True)
    stop.wait()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = counters.as_dict()
    stats["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    stats["max_rss_kb"] = usage.ru_maxrss
    print("STATS " + json.dumps(stats), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
