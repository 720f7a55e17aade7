"""LLM ``extractive``: no model at all; it reads the best retrieved passage aloud.

The offline default, and the last fallback when no language model is reachable. It takes
the passages attached to the messages (``ChatMessage.passages``, the most recent message
that has any), picks the best one (highest retrieval score; ties and missing scores by
word overlap with the caller's last question) and returns the run of up to
``max_sentences`` sentences of it that shares the most words with the question. No
passages → empty text with ``finish_reason="no_answer"`` (the flow's ``unsure`` branch).
It never calls tools.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import ClassVar

from pydantic import Field

from providers.base import ProviderSettings
from providers.llm.base import ChatMessage, LLMChunk, LLMProvider, LLMResponse, LLMSettings, Passage, ToolSpec

_STOP = frozenset(
    "a an the and or but if of to in on at for from by with "
    "about as is are was were be been being do does did have has had i "
    "you he she it we they me my your our their this that these those what "
    "which who whom when where why how can could would should will shall may might must "
    "not no yes so than then there here please tell know want need like just any "
    "some"
    .strip()
    .split(" ")
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def _terms(text: str) -> set[str]:
    words = re.findall(r"[^\W_]+", text.lower())
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in _STOP}


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(" ".join(text.split())) if s.strip()]


class ExtractiveSettings(LLMSettings):
    max_sentences: int = Field(2, ge=1, le=10)
    max_chars: int = Field(400, ge=40)
    timeout: float = 5.0
    retries: int = 0


class ExtractiveLLM(LLMProvider):
    name: ClassVar[str] = "extractive"
    settings_model: ClassVar[type[ProviderSettings]] = ExtractiveSettings
    settings: ExtractiveSettings

    def answer(self, messages: list[ChatMessage]) -> str:
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        passages: tuple[Passage, ...] = next((m.passages for m in reversed(messages) if m.passages), ())
        if not passages:
            return ""
        q = _terms(question)
        best = max(passages, key=lambda p: (p.score if p.score is not None else float("-inf"),
                                            len(q & _terms(p.text))))
        sentences = split_sentences(best.text)
        n = min(self.settings.max_sentences, len(sentences))
        windows = [sentences[i:i + n] for i in range(len(sentences) - n + 1)] or [sentences]
        chosen = max(windows, key=lambda w: (len(q & _terms(" ".join(w))), -windows.index(w)))
        text = " ".join(chosen)
        if len(text) > self.settings.max_chars:
            cut = text[: self.settings.max_chars].rsplit(" ", 1)[0]
            text = cut.rstrip(",;:") + "…"
        return text

    def _complete(self, messages: list[ChatMessage], *, tools: list[ToolSpec], timeout: float) -> LLMResponse:
        text = self.answer(messages)
        return LLMResponse(text, [], self.label, "stop" if text else "no_answer")

    def _stream(self, messages: list[ChatMessage], *, tools: list[ToolSpec],
                timeout: float) -> Iterator[LLMChunk]:
        text = self.answer(messages)
        if not text:
            yield LLMChunk(provider=self.label, finish_reason="no_answer")
            return
        parts = split_sentences(text)
        for i, sentence in enumerate(parts):
            last = i == len(parts) - 1
            yield LLMChunk(text=sentence + ("" if last else " "), provider=self.label,
                           finish_reason="stop" if last else None)
