"""Server (a'): the full `CallController` (routing → flow runner → call record) on `EslServer`.

It serves the looping benchmark flow ``flows/bench-loop.yaml`` (play → menu → play …) from a
folder, the way ``ivr serve --flows-dir`` does, with the production progress watchdog and the
default call-record sink (a log line, filtered at the benchmark's log level).  Its commands
may differ from the three-way comparison (the run prints each server's sequence): the menu
node also queues ``flush_dtmf`` before each ``play_and_get_digits``, and a call the caller
abandons goes through the controller's full ending (call record, ``exit``).
"""

from __future__ import annotations

import wave
from pathlib import Path

from server_settings import CallCounters, ServerSettings

from esl_controller.call_record import CallRecord, RecordSink, log_sink
from esl_controller.controller import CallController, ControllerSettings
from esl_controller.routing import DirectoryRouting
from esl_controller.server import EslServer
from esl_controller.session import SessionSettings
from esl_controller.watchdog import ProgressWatchdog

FLOWS_DIR = Path(__file__).resolve().parent / "flows"
FLOW_NAME = "bench-loop"
PROMPTS = ("bench_prompt.wav", "bench_menu.wav")


def write_prompts(folder: Path) -> None:
    """Tiny valid WAV files: the flow loader checks that prompt files exist."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in PROMPTS:
        with wave.open(str(folder / name), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\x00\x00" * 800)


def serve(settings: ServerSettings, counters: CallCounters) -> tuple[str, int]:
    prompt_dir = Path(settings.play_path).parent
    write_prompts(prompt_dir)
    routing = DirectoryRouting(FLOWS_DIR, default_flow=FLOW_NAME, prompt_dir=prompt_dir,
                               recordings_dir=prompt_dir.parent / "recordings")
    controller = CallController(
        routing, watchdog=ProgressWatchdog(),
        settings=ControllerSettings(session=SessionSettings(linger_seconds=settings.linger_seconds)),
        record_sink=_counting_sink(counters))
    server = EslServer("127.0.0.1", 0, controller, max_calls=settings.max_calls, backlog=settings.backlog)
    server.start()
    return server.address


def _counting_sink(counters: CallCounters) -> RecordSink:
    def sink(record: CallRecord) -> None:
        counters.accepted += 1
        if record.outcome == "caller_hangup":
            counters.ended += 1
            counters.loops += sum(1 for step in record.path if step.get("type") == "menu")
        else:
            counters.errors[record.outcome] = counters.errors.get(record.outcome, 0) + 1
        log_sink(record)

    return sink
