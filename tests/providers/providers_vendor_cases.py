"""The cloud vendors under test: for each, its stub route, a success answer and error
bodies in the vendor's documented shape, the call to make and what the request must hold."""

from __future__ import annotations

import base64
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from providers_stub_server import Recorded, Reply

from providers.audio import AudioClip
from providers.base import Provider
from providers.llm.base import ChatMessage

SPEECH = AudioClip.from_samples(0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000), 8000)
PCM16K = AudioClip.from_samples(0.2 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000), 16000).pcm
MESSAGES = [ChatMessage("system", "You are Acme's receptionist."), ChatMessage("user", "When do you open?")]
AWS_SECRETS = {"aws_access_key_id": "AKIDTEST", "aws_secret_access_key": "secret-test"}


@dataclass
class Vendor:
    id: str
    kind: str
    name: str
    path: str
    settings: Callable[[str], dict[str, Any]]
    secrets: dict[str, str]
    ok: Reply
    error: Callable[[int], Reply]
    malformed: Reply
    check: Callable[[Any, Recorded], None]

    def call(self, provider: Provider) -> Any:
        if self.kind == "stt":
            return provider.transcribe(SPEECH, language="en-US", hints=["sales", "support"])  # type: ignore[attr-defined]
        if self.kind == "tts":
            return provider.synthesize("Hello there")  # type: ignore[attr-defined]
        if self.kind == "llm":
            return provider.complete(MESSAGES)  # type: ignore[attr-defined]
        return provider.embed(["opening hours", "refund policy"])  # type: ignore[attr-defined]


# -- vendor-shaped error bodies ------------------------------------------------------

def openai_error(status: int) -> Reply:
    kind = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status, "server_error")
    headers = {"retry-after": "0"} if status == 429 else {}
    return Reply(status, json={"error": {"message": f"error {status}", "type": kind, "param": None, "code": kind}},
                 headers=headers)


def anthropic_error(status: int) -> Reply:
    kind = {401: "authentication_error", 429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
    headers = {"retry-after": "0"} if status == 429 else {}
    return Reply(status, json={"type": "error", "error": {"type": kind, "message": f"error {status}"}},
                 headers=headers)


def google_error(status: int) -> Reply:
    text = {401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}.get(status, "UNAVAILABLE")
    return Reply(status, json={"error": {"code": status, "message": f"error {status}", "status": text}})


def azure_error(status: int) -> Reply:
    if status == 401:
        return Reply(401, json={"error": {"code": "401", "message": "Access denied due to invalid subscription key."}})
    return Reply(status, body=b"", headers={"Retry-After": "0"} if status == 429 else {})


def deepgram_error(status: int) -> Reply:
    code = {401: "INVALID_AUTH", 429: "TOO_MANY_REQUESTS"}.get(status, "INTERNAL_SERVER_ERROR")
    return Reply(status, json={"err_code": code, "err_msg": f"error {status}", "request_id": "r-1"})


def elevenlabs_error(status: int) -> Reply:
    return Reply(status, json={"detail": {"status": "invalid_api_key" if status == 401 else "error",
                                          "message": f"error {status}"}})


def cohere_error(status: int) -> Reply:
    return Reply(status, json={"message": f"error {status}"})


def voyage_error(status: int) -> Reply:
    return Reply(status, json={"detail": f"error {status}"})


def aws_error(status: int) -> Reply:
    code = {401: "UnrecognizedClientException", 403: "UnrecognizedClientException",
            429: "ThrottlingException"}.get(status, "InternalServerException")
    return Reply(status, json={"message": f"error {status}"}, content_type="application/json",
                 headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.coral/"})


BAD_JSON = Reply(200, body=b'{"not": json', content_type="application/json")
ODD_AUDIO = Reply(200, body=b"\x01\x02\x03", content_type="audio/pcm")


# -- checks: the result and the request's shape ----------------------------------------

def check_openai_stt(result: Any, req: Recorded) -> None:
    assert result.text == "sales please" and result.provider == "stt:openai"
    assert req.header("authorization") == "Bearer sk-test"
    assert req.header("content-type").startswith("multipart/form-data")
    assert b'name="model"' in req.body and b"whisper-1" in req.body and b"RIFF" in req.body
    assert b"sales, support" in req.body          # hints as the prompt


def check_deepgram(result: Any, req: Recorded) -> None:
    assert result.text == "sales please" and result.confidence == 0.93
    assert req.header("authorization") == "Token dg-key"
    assert req.query["model"] == ["nova-3"] and req.query["keyterm"] == ["sales", "support"]
    assert req.query["language"] == ["en-US"]
    assert req.header("content-type") == "audio/wav" and req.body[:4] == b"RIFF"


def check_azure_stt(result: Any, req: Recorded) -> None:
    assert result.text == "Sales please." and result.confidence == 0.91
    assert req.header("ocp-apim-subscription-key") == "az-key"
    assert req.query == {"language": ["en-US"], "format": ["detailed"]}
    assert "samplerate=16000" in req.header("content-type")
    assert AudioClip.from_wav_bytes(req.body).sample_rate == 16000


def check_google_stt(result: Any, req: Recorded) -> None:
    assert result.text == "sales please" and result.confidence == 0.9
    assert req.header("x-goog-api-key") == "g-key"
    body = req.json()
    assert body["config"]["encoding"] == "LINEAR16" and body["config"]["sampleRateHertz"] == 8000
    assert body["config"]["speechContexts"][0]["phrases"] == ["sales", "support"]
    assert base64.b64decode(body["audio"]["content"]) == SPEECH.pcm


def check_openai_tts(result: Any, req: Recorded) -> None:
    assert result.sample_rate == 24000 and result.pcm == PCM16K and result.provider == "tts:openai"
    body = req.json()
    assert body["input"] == "Hello there" and body["voice"] == "alloy" and body["response_format"] == "pcm"
    assert req.header("authorization") == "Bearer sk-test"


def check_elevenlabs(result: Any, req: Recorded) -> None:
    assert result.sample_rate == 16000 and result.pcm == PCM16K
    assert req.query["output_format"] == ["pcm_16000"] and req.header("xi-api-key") == "el-key"
    assert req.json() == {"text": "Hello there", "model_id": "eleven_flash_v2_5"}


def check_azure_tts(result: Any, req: Recorded) -> None:
    assert result.sample_rate == 8000 and result.duration > 0.5
    assert req.header("x-microsoft-outputformat") == "riff-8khz-16bit-mono-pcm"
    assert req.header("content-type") == "application/ssml+xml"
    assert b'<voice name="en-US-JennyNeural">Hello there</voice>' in req.body


def check_google_tts(result: Any, req: Recorded) -> None:
    assert result.sample_rate == 8000 and result.duration > 0.5
    body = req.json()
    assert body["input"] == {"text": "Hello there"}
    assert body["audioConfig"] == {"audioEncoding": "LINEAR16", "sampleRateHertz": 8000}


def check_polly(result: Any, req: Recorded) -> None:
    assert result.sample_rate == 8000 and result.pcm == PCM16K
    assert req.header("authorization").startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
    body = req.json()
    assert body["OutputFormat"] == "pcm" and body["SampleRate"] == "8000" and body["VoiceId"] == "Joanna"
    assert body["Text"] == "Hello there"


def check_openai_chat(result: Any, req: Recorded) -> None:
    assert result.text == "We open at nine." and result.tool_calls == []
    body = req.json()
    assert body["messages"][0] == {"role": "system", "content": "You are Acme's receptionist."}
    assert body["messages"][1] == {"role": "user", "content": "When do you open?"}


def check_openai_llm(result: Any, req: Recorded) -> None:
    check_openai_chat(result, req)
    assert req.header("authorization") == "Bearer sk-test" and req.json()["model"] == "gpt-4o-mini"


def check_compatible_llm(result: Any, req: Recorded) -> None:
    check_openai_chat(result, req)
    assert req.json()["model"] == "llama3.2" and result.provider == "llm:openai_compatible"


def check_azure_openai(result: Any, req: Recorded) -> None:
    check_openai_chat(result, req)
    assert req.header("api-key") == "az-key" and req.query["api-version"] == ["2024-10-21"]


def check_anthropic(result: Any, req: Recorded) -> None:
    assert result.text == "We open at nine." and result.finish_reason == "end_turn"
    # SDK versions differ: older ones send x-api-key, 2.x sends the key as a Bearer token.
    assert req.header("x-api-key") == "ant-key" or req.header("authorization") == "Bearer ant-key"
    assert req.header("anthropic-version")
    body = req.json()
    assert body["system"] == "You are Acme's receptionist."
    assert body["messages"] == [{"role": "user", "content": "When do you open?"}]


def check_gemini(result: Any, req: Recorded) -> None:
    assert result.text == "We open at nine."
    assert req.header("x-goog-api-key") == "g-key"
    body = req.json()
    assert body["systemInstruction"] == {"parts": [{"text": "You are Acme's receptionist."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "When do you open?"}]}]


def check_bedrock(result: Any, req: Recorded) -> None:
    assert result.text == "We open at nine." and result.finish_reason == "end_turn"
    assert req.header("authorization").startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
    body = req.json()
    assert body["system"] == [{"text": "You are Acme's receptionist."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "When do you open?"}]}]


def check_embeddings(expected_query: Callable[[Recorded], None]) -> Callable[[Any, Recorded], None]:
    def check(result: Any, req: Recorded) -> None:
        assert result.shape == (2, 4) and result.dtype == np.float32
        assert np.allclose(np.linalg.norm(result, axis=1), 1.0)
        assert np.allclose(result[0], [0.6, 0.8, 0, 0])       # normalised from [3, 4, 0, 0]
        expected_query(req)
    return check


def _openai_emb_req(req: Recorded) -> None:
    body = req.json()
    assert body["input"] == ["opening hours", "refund policy"] and body["dimensions"] == 4
    assert req.header("authorization") == "Bearer sk-test"


def _cohere_req(req: Recorded) -> None:
    body = req.json()
    assert body["texts"] == ["opening hours", "refund policy"] and body["input_type"] == "search_document"
    assert body["embedding_types"] == ["float"] and req.header("authorization") == "Bearer co-key"


def _voyage_req(req: Recorded) -> None:
    body = req.json()
    assert body["input"] == ["opening hours", "refund policy"] and body["input_type"] == "document"
    assert req.header("authorization") == "Bearer vo-key"


def chat_completion(text: str = "We open at nine.") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}


def anthropic_message(content: list[dict[str, Any]], stop: str = "end_turn") -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5", "content": content,
            "stop_reason": stop, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5}}


def converse_answer(content: list[dict[str, Any]], stop: str = "end_turn") -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
            "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}}


EMB_ROWS = [[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]
WAV8K = AudioClip(PCM16K, 8000).to_wav_bytes()
BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"

VENDORS = [
    Vendor("stt-openai", "stt", "openai", "/v1/audio/transcriptions", lambda u: {"base_url": f"{u}/v1"},
           {"api_key": "sk-test"}, Reply(json={"text": "sales please"}), openai_error, BAD_JSON, check_openai_stt),
    Vendor("stt-deepgram", "stt", "deepgram", "/v1/listen", lambda u: {"base_url": u}, {"api_key": "dg-key"},
           Reply(json={"metadata": {"request_id": "r-1"}, "results": {"channels": [{"alternatives": [
               {"transcript": "sales please", "confidence": 0.93}]}]}}),
           deepgram_error, BAD_JSON, check_deepgram),
    Vendor("stt-azure", "stt", "azure", "/speech/recognition/conversation/cognitiveservices/v1",
           lambda u: {"base_url": u}, {"api_key": "az-key"},
           Reply(json={"RecognitionStatus": "Success", "Offset": 0, "Duration": 10000000,
                       "DisplayText": "Sales please.", "NBest": [{"Confidence": 0.91, "Lexical": "sales please",
                                                                  "Display": "Sales please."}]}),
           azure_error, BAD_JSON, check_azure_stt),
    Vendor("stt-google", "stt", "google", "/v1/speech:recognize", lambda u: {"base_url": u}, {"api_key": "g-key"},
           Reply(json={"results": [{"alternatives": [{"transcript": "sales please", "confidence": 0.9}]}]}),
           google_error, BAD_JSON, check_google_stt),
    Vendor("tts-openai", "tts", "openai", "/v1/audio/speech", lambda u: {"base_url": f"{u}/v1"},
           {"api_key": "sk-test"}, Reply(body=PCM16K, content_type="audio/pcm"), openai_error, ODD_AUDIO,
           check_openai_tts),
    Vendor("tts-elevenlabs", "tts", "elevenlabs", "/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM",
           lambda u: {"base_url": u}, {"api_key": "el-key"}, Reply(body=PCM16K, content_type="audio/pcm"),
           elevenlabs_error, ODD_AUDIO, check_elevenlabs),
    Vendor("tts-azure", "tts", "azure", "/cognitiveservices/v1", lambda u: {"base_url": u}, {"api_key": "az-key"},
           Reply(body=WAV8K, content_type="audio/x-wav"), azure_error,
           Reply(200, body=b"not a wav file", content_type="audio/x-wav"), check_azure_tts),
    Vendor("tts-google", "tts", "google", "/v1/text:synthesize", lambda u: {"base_url": u}, {"api_key": "g-key"},
           Reply(json={"audioContent": base64.b64encode(WAV8K).decode()}), google_error,
           Reply(json={"audioContent": "%%% not base64 %%%"}), check_google_tts),
    Vendor("tts-polly", "tts", "polly", "/v1/speech", lambda u: {"endpoint_url": u}, AWS_SECRETS,
           Reply(body=PCM16K, content_type="audio/pcm"), aws_error, ODD_AUDIO, check_polly),
    Vendor("llm-openai", "llm", "openai", "/v1/chat/completions", lambda u: {"base_url": f"{u}/v1"},
           {"api_key": "sk-test"}, Reply(json=chat_completion()), openai_error, BAD_JSON, check_openai_llm),
    Vendor("llm-openai_compatible", "llm", "openai_compatible", "/v1/chat/completions",
           lambda u: {"base_url": f"{u}/v1", "model": "llama3.2"}, {}, Reply(json=chat_completion()),
           openai_error, BAD_JSON, check_compatible_llm),
    Vendor("llm-azure_openai", "llm", "azure_openai", "/openai/deployments/gpt4o-dep/chat/completions",
           lambda u: {"endpoint": u, "deployment": "gpt4o-dep"}, {"api_key": "az-key"},
           Reply(json=chat_completion()), openai_error, BAD_JSON, check_azure_openai),
    Vendor("llm-anthropic", "llm", "anthropic", "/v1/messages", lambda u: {"base_url": u}, {"api_key": "ant-key"},
           Reply(json=anthropic_message([{"type": "text", "text": "We open at nine."}])), anthropic_error, BAD_JSON,
           check_anthropic),
    Vendor("llm-gemini", "llm", "gemini", "/v1beta/models/gemini-2.0-flash:generateContent",
           lambda u: {"base_url": u}, {"api_key": "g-key"},
           Reply(json={"candidates": [{"content": {"role": "model", "parts": [{"text": "We open at nine."}]},
                                       "finishReason": "STOP"}]}), google_error, BAD_JSON, check_gemini),
    Vendor("llm-bedrock", "llm", "bedrock", f"/model/{BEDROCK_MODEL}/converse", lambda u: {"endpoint_url": u},
           AWS_SECRETS, Reply(json=converse_answer([{"text": "We open at nine."}])), aws_error, BAD_JSON,
           check_bedrock),
    Vendor("emb-openai", "embeddings", "openai", "/v1/embeddings", lambda u: {"base_url": f"{u}/v1", "dimension": 4},
           {"api_key": "sk-test"},
           Reply(json={"object": "list", "model": "text-embedding-3-small",
                       "data": [{"object": "embedding", "index": i, "embedding": r} for i, r in enumerate(EMB_ROWS)],
                       "usage": {"prompt_tokens": 4, "total_tokens": 4}}),
           openai_error, BAD_JSON, check_embeddings(_openai_emb_req)),
    Vendor("emb-cohere", "embeddings", "cohere", "/v2/embed", lambda u: {"base_url": u, "dimension": 4},
           {"api_key": "co-key"},
           Reply(json={"id": "e-1", "embeddings": {"float": EMB_ROWS}, "texts": ["opening hours", "refund policy"],
                       "meta": {"api_version": {"version": "2"}}}),
           cohere_error, BAD_JSON, check_embeddings(_cohere_req)),
    Vendor("emb-voyage", "embeddings", "voyage", "/v1/embeddings", lambda u: {"base_url": u, "dimension": 4},
           {"api_key": "vo-key"},
           Reply(json={"object": "list", "model": "voyage-3.5-lite", "usage": {"total_tokens": 4},
                       "data": [{"object": "embedding", "index": i, "embedding": r}
                                for i, r in enumerate(EMB_ROWS)]}),
           voyage_error, BAD_JSON, check_embeddings(_voyage_req)),
]


HAS_BOTO3 = importlib.util.find_spec("boto3") is not None
NEEDS_BOTO3 = pytest.mark.skipif(not HAS_BOTO3, reason="boto3 is not installed (extra 'cloud')")
AWS_VENDORS = {"tts-polly", "llm-bedrock"}


def vendor_params(vendors: list[Vendor] = VENDORS) -> list[Any]:
    """Vendors as pytest params; the AWS ones skip when boto3 is absent."""
    return [pytest.param(v, id=v.id, marks=[NEEDS_BOTO3] if v.id in AWS_VENDORS else []) for v in vendors]
