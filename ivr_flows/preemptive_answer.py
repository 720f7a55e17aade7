"""One answer of the virtual secretary from its question to audio ready to play, startable before
the caller has surely finished speaking.

`PreparedAnswer(ctx, question, make_plan, …)` starts at once, in greenlets: `make_plan` (the
retrieval and the `AnswerPlan`), then the LLM stream (`ivr_flows.turn_answer.answer_turn`) and
the synthesis of its sentences (`ivr_flows.speech_answer.Synthesis`). Nothing is played: the node
plays the audio with ``speak_answer`` once it `commit`s.

Why before: `ivr_flows.speech_listen.listen` transcribes speculatively at the caller's first
pause. When that transcript is ready while the caller is still silent, `listen` asks the node to
prepare the answer to it; if end of speech is then confirmed with the same transcript, the
answer's retrieval, first LLM tokens and first synthesized sentence were computed during the
end-of-speech silence instead of after it. If the caller speaks again, the preparation is
`cancel`led (its greenlets killed) and another starts at the next pause.

What must not happen for a question the caller had not finished asking cannot: nothing plays
before `commit`, and the plan's webhook tools wait for it (`AnswerPlan.commit`). What can be
wasted is compute (and, with a cloud LLM, the tokens of an answer that is dropped); a node can
turn preparation off (`ask_ai`'s ``preemptive: false``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import gevent
from gevent.event import Event
from gevent.queue import Queue

from ivr_flows.call import CallEnded
from ivr_flows.speech_answer import Synthesis
from ivr_flows.turn_answer import AnswerPlan, Decision, answer_turn

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext


class PreparedAnswer:
    """An answer being prepared (see the module docstring)."""

    def __init__(self, ctx: FlowContext, question: str, make_plan: Callable[[], AnswerPlan], *,
                 voice: str | None, tts_timeout: float, deadline: float) -> None:
        self.ctx = ctx
        self.question = question
        self.started_at = time.monotonic()
        self.committed_at: float | None = None
        self.commit_event = Event()
        self.events: Queue = Queue()
        self.answer_job: gevent.Greenlet | None = None
        self.cancelled = False
        self.synthesis = Synthesis(ctx, self.events, voice=voice, tts_timeout=tts_timeout, deadline=deadline)
        self.setup = gevent.spawn(self._start, make_plan)

    def _start(self, make_plan: Callable[[], AnswerPlan]) -> None:
        try:
            plan = make_plan()
        except CallEnded:
            raise
        except Exception as e:
            self.ctx.log.error("flow.ask_ai_prepare_failed", node=self.ctx.node_id, error=type(e).__name__,
                               exc_info=True)
            self.events.put(("done", Decision("error", reason=f"{type(e).__name__}: {e}"[:300])))
            return
        if self.cancelled:
            return
        plan.commit = self.commit_event
        self.answer_job = gevent.spawn(answer_turn, self.ctx, plan, self.events)

    def commit(self) -> None:
        """The caller has finished: this answer is the one (its webhooks may run)."""
        self.committed_at = time.monotonic()
        self.commit_event.set()

    def decision(self) -> Decision | None:
        """The answer greenlet's decision, when it has one."""
        job = self.answer_job
        if job is not None and job.ready() and job.successful() and isinstance(job.value, Decision):
            return job.value
        return None

    def cancel(self) -> None:
        """Drop it: kill whatever still runs (nothing was played)."""
        self.cancelled = True
        self.setup.kill(block=False)
        if self.answer_job is not None:
            self.answer_job.kill(block=False)
        self.synthesis.kill()
