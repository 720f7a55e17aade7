"""RAG and virtual-secretary benchmarks (see the "RAG and the virtual secretary" section of
benchmarks/README.md).

    .venv/bin/python benchmarks/rag/run.py                 # everything (~6-8 min on 2 cores)
    .venv/bin/python benchmarks/rag/run.py --only retrieval --sizes 1000,10000
    .venv/bin/python benchmarks/rag/run.py --only retrieval --sizes 1000,10000 --backend pgvector   # + pgvector
    .venv/bin/python benchmarks/rag/run.py --json out.json

Sections:
- ``retrieval``: p50/p99 of one query at 1k, 10k and 100k chunks per tenant (random unit vectors,
  384 dimensions) — raw ``faiss.IndexFlatIP.search`` vs our `FaissIndex.search` (thread-pool hop,
  manifest check) vs our whole `Retriever.retrieve` (+ chunk lookup in SQLite, LRU cache) with a
  precomputed query vector, all in the same run on the same index; ``--backend pgvector`` adds the same
  three for PostgreSQL + pgvector on the same vectors and queries (``pgvector_bench.py``);
- ``ingest``: chunks per second of `Ingester.ingest` (read, chunk, embed, SQLite, faiss write) vs raw
  ``SentenceTransformer.encode`` of the same texts with the same batch size;
- ``calls``: AI turns through the FreeSWITCH simulator (speed 1: simulated time is real time) with
  only local providers (pocketsphinx, MiniLM + faiss, extractive, piper): voice-to-voice latency
  (end of the caller's speech → first answer audio) and the controller's own overhead per turn
  (answer start minus the provider stages STT, retrieval, LLM, TTS), from the stored turn records.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, ClassVar  # noqa: E402

import numpy as np  # noqa: E402

os.environ.setdefault("HF_DEACTIVATE_ASYNC_LOAD", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "rag"))
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))

from providers.base import ProviderSettings  # noqa: E402
from providers.embeddings.base import EmbeddingProvider, EmbeddingSettings, Purpose  # noqa: E402
from rag.faiss_index import FaissIndex  # noqa: E402
from rag.retriever import Retriever  # noqa: E402
from schema.store import ChunkInput  # noqa: E402

DIM = 384


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(pct(values, 50), 3), "p99": round(pct(values, 99), 3),
            "mean": round(statistics.mean(values), 3), "n": len(values)}


class QueueEmbeddings(EmbeddingProvider):
    """Hands out precomputed query vectors (the benchmark measures retrieval, not the model)."""

    name: ClassVar[str] = "bench"
    settings_model: ClassVar[type[ProviderSettings]] = EmbeddingSettings
    default_dimension: ClassVar[int | None] = DIM

    def __init__(self, vectors: np.ndarray) -> None:
        super().__init__({"model": "random"})
        self.vectors = vectors
        self.i = 0

    def _embed(self, texts: list[str], *, purpose: Purpose, timeout: float) -> np.ndarray:
        out = self.vectors[self.i % len(self.vectors):][: len(texts)]
        self.i += len(texts)
        return out


def unit(n: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def bench_retrieval(sizes: list[int], queries: int, work: Path, pg_admin: str | None = None) -> dict[str, Any]:
    from rag_harness import make_database

    from rag.embedding_model import model_id

    rng = np.random.default_rng(7)
    results: dict[str, Any] = {}
    for size in sizes:
        folder = work / f"retrieval-{size}"
        folder.mkdir()
        _engine, stores = make_database(folder, f"t{size}.example")
        store = stores[f"t{size}.example"]
        started = time.perf_counter()
        for start in range(0, size, 5000):
            count = min(5000, size - start)
            store.add_document(f"/bench/doc-{start}.md", sha256="0" * 64, title=f"doc {start}", embedding_model="m",
                               chunks=[ChunkInput(f"Chunk {start + i} says something about topic {i}.", i,
                                                  {"heading": "Bench"}) for i in range(count)])
        ids = [c.id for c in store.chunks()]
        vectors = unit(size, rng)
        qv = unit(queries, rng)
        embeddings = QueueEmbeddings(qv)
        index = FaissIndex(folder / "rag", store.tenant_id)
        index.apply(model=model_id(embeddings), dimension=DIM, remove=[], add_ids=ids, add_vectors=vectors)
        build_s = time.perf_counter() - started
        loaded = index.loaded()
        raw, ours_search, ours_full = [], [], []
        for q in qv[:20]:                         # warm caches, threads, the loaded index
            loaded.index.search(q.reshape(1, -1), 4)
            index.search(q, 4, timeout=10)
        for q in qv:
            t = time.perf_counter()
            loaded.index.search(q.reshape(1, -1), 4)
            raw.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            index.search(q, 4, timeout=10)
            ours_search.append((time.perf_counter() - t) * 1000)
        retriever = Retriever(store, index, embeddings, k=4, timeout=10)
        for _ in range(queries):
            t = time.perf_counter()
            retriever.retrieve("bench question")
            ours_full.append((time.perf_counter() - t) * 1000)
        results[str(size)] = {"build_s": round(build_s, 2), "raw_faiss_ms": summary(raw),
                              "ours_search_ms": summary(ours_search), "ours_retrieve_ms": summary(ours_full)}
        print(f"retrieval {size:>6} chunks: raw faiss p50 {pct(raw, 50):.3f} ms p99 {pct(raw, 99):.3f} | "
              f"FaissIndex.search p50 {pct(ours_search, 50):.3f} p99 {pct(ours_search, 99):.3f} | "
              f"Retriever.retrieve p50 {pct(ours_full, 50):.3f} p99 {pct(ours_full, 99):.3f} ms", flush=True)
        if pg_admin:                              # the same vectors and queries in pgvector (pgvector_bench.py)
            from pgvector_bench import bench_pgvector

            pg = results[str(size)]["pgvector"] = bench_pgvector(pg_admin, size, vectors, qv, QueueEmbeddings,
                                                                 summary)
            print(f"retrieval {size:>6} chunks: raw SQL p50 {pg['raw_sql_ms']['p50']:.3f} ms p99 "
                  f"{pg['raw_sql_ms']['p99']:.3f} | PgVectorIndex.search p50 {pg['ours_search_ms']['p50']:.3f} p99 "
                  f"{pg['ours_search_ms']['p99']:.3f} | Retriever.retrieve p50 {pg['ours_retrieve_ms']['p50']:.3f} "
                  f"p99 {pg['ours_retrieve_ms']['p99']:.3f} ms (pgvector; apply {pg['apply_s']} s)", flush=True)
    return results


def bench_ingest(documents: int, work: Path) -> dict[str, Any]:
    from rag_harness import make_database

    from providers.registry import build
    from rag.chunking import chunk_document, embedding_text
    from rag.documents import read_document
    from rag.ingest import Ingester
    from rag.settings import RagSettings

    folder = work / "ingest"
    docs = folder / "docs"
    docs.mkdir(parents=True)
    rng = np.random.default_rng(3)
    words = ["appointment", "clinic", "dentist", "patient", "crown", "filling", "cleaning", "insurance", "payment",
             "parking", "hours", "saturday", "holiday", "emergency", "whitening", "children", "price", "policy",
             "cancel", "visit", "treatment"]
    for d in range(documents):
        sections = []
        for s in range(12):
            sentences = [" ".join(rng.choice(words, 12)).capitalize() + "." for _ in range(8)]
            sections.append(f"## Section {s}\n\n" + " ".join(sentences))
        (docs / f"doc{d}.md").write_text(f"# Document {d}\n\n" + "\n\n".join(sections))
    _engine, stores = make_database(folder, "ingest.example")
    store = stores["ingest.example"]
    embeddings = build("embeddings", "sentence_transformers")
    embeddings.embed(["warm up"])
    settings = RagSettings(index_dir=folder / "rag")
    texts = []
    for path in sorted(docs.glob("*.md")):
        doc = read_document(path)
        texts += [embedding_text(c.text, c.heading, doc.title) for c in chunk_document(doc, settings.chunks)]
    model = embeddings._model()
    t = time.perf_counter()
    for start in range(0, len(texts), settings.embed_batch):
        model.encode(texts[start:start + settings.embed_batch], convert_to_numpy=True, normalize_embeddings=True,
                     show_progress_bar=False)
    raw_s = time.perf_counter() - t
    ingester = Ingester(store, FaissIndex(folder / "rag", store.tenant_id), embeddings, settings)
    t = time.perf_counter()
    reports = ingester.ingest([docs])
    ours_s = time.perf_counter() - t
    chunks = sum(r.chunks for r in reports)
    result = {"chunks": chunks, "documents": documents, "raw_encode_chunks_per_s": round(len(texts) / raw_s, 1),
              "ingest_chunks_per_s": round(chunks / ours_s, 1), "ingest_s": round(ours_s, 2),
              "raw_encode_s": round(raw_s, 2)}
    print(f"ingest {chunks} chunks ({documents} docs): ours {result['ingest_chunks_per_s']} chunks/s "
          f"({ours_s:.1f} s) vs raw encode {result['raw_encode_chunks_per_s']} chunks/s ({raw_s:.1f} s)", flush=True)
    return result


QUESTIONS = ["When are you open on Saturday?", "How much does a crown cost?", "Where can I park my car?",
             "Do you accept insurance?", "How much is teeth whitening?", "What is your address?"]


def heard_by_caller(call: Any) -> float | None:
    """Voice-to-voice as the caller lives it, from the simulator's own timeline (ms): the end of
    the last voiced 20 ms frame of what they said → the controller's first ``playback`` command
    after it (FreeSWITCH starts playing within a frame of receiving it)."""
    if not call.line.segments:
        return None
    segment = call.line.segments[0]
    frames = np.asarray(segment.samples, dtype=np.int32)
    frames = frames[: len(frames) // 160 * 160].reshape(-1, 160)
    voiced = np.nonzero(np.abs(frames).mean(axis=1) >= 200)[0]
    if not len(voiced):
        return None
    speech_end = segment.start + (int(voiced[-1]) + 1) * 0.02
    for command in call.transcript:
        if command.at > speech_end and "playback" in command.summary and "execute" in command.summary:
            return round((command.at - speech_end) * 1000, 1)
    return None


def controller_overhead(turn: dict[str, Any]) -> float:
    """Our own time on the path from the end-of-speech decision to the answer playing: what is left
    of it after the providers' compute that was still to do after the decision (ms)."""
    lat = turn["latency_ms"]
    if turn.get("preemptive"):   # prepared during the silence: what was not ready was only audio
        return lat["answer_start_ms"] - max(0.0, lat.get("tts_first_audio_ms", 0.0))
    return (lat["answer_start_ms"] - lat.get("stt_ms", 0) - lat["retrieval_ms"] - lat.get("llm_ms", 0)
            - lat.get("tts_ms", 0))


def bench_calls(calls: int, work: Path, end_silence: float | None = None, *, baseline: bool = False) -> dict[str, Any]:
    """AI turns through the simulator. `baseline`: the same calls with the pipeline as it was before
    streaming STT and preemptive answers (pocketsphinx ``stream_workers: 0``, ``preemptive: false``:
    the transcript from a whole-clip decode at the pause, everything else after the end of speech)."""
    from rag_harness import FLOWS, KNOWLEDGE, SecretaryRig, caller_voice, caller_wav, make_database

    from esl_controller.simulator import CallerScript, Speak, Wait, WaitForApp
    from providers.tenant_set import ProviderSpec, TenantProviderConfig, TenantProviders
    from rag.ingest import Ingester
    from rag.services import secretary_services

    folder = work / ("calls-baseline" if baseline else "calls")
    folder.mkdir()
    stt = [ProviderSpec(name="pocketsphinx", settings={"stream_workers": 0 if baseline else 2})]
    providers = TenantProviders(TenantProviderConfig(tenant="dental", stt=stt, tts_cache_dir=folder / "tts"))
    providers.warm_up(180)
    _engine, stores = make_database(folder, "dental.example")
    store = stores["dental.example"]
    index = FaissIndex(folder / "rag", store.tenant_id)
    Ingester(store, index, providers.embeddings).ingest([KNOWLEDGE])
    retriever = Retriever(store, index, providers.embeddings)
    voice = caller_voice()
    wavs = [caller_wav(voice, q, folder / "voice") for q in QUESTIONS]
    # Warm every model once (first inferences are slow) and clear the answer cache between calls
    # so each answer is synthesized, as a new question would be.
    providers.embeddings.embed(["warm up"], purpose="query")
    services = secretary_services(providers, retriever)
    flows = FLOWS
    if end_silence is not None or baseline:   # the same flow, another end-of-speech silence / no preparation
        flows = folder / "flows"
        flows.mkdir()
        text = (FLOWS / "secretary.yaml").read_text()
        if end_silence is not None:
            text = re.sub(r"end_silence: [0-9.]+m?s", f"end_silence: {end_silence}s", text)
        if baseline:
            text = text.replace("    type: ask_ai\n", "    type: ask_ai\n    preemptive: false\n")
        (flows / "secretary.yaml").write_text(text)
    rig = SecretaryRig(folder, lambda: services, speed=1.0, flows_dir=flows)
    turns: list[dict[str, Any]] = []
    try:
        for i in range(calls + 1):
            for cached in (folder / "tts").rglob("*.wav"):
                cached.unlink()
            script = CallerScript([WaitForApp("record"), Speak(wavs[i % len(wavs)]), Wait(25)])
            call, _outcome, record = rig.call(script, timeout=120)
            rig.records.clear()
            first = record.turns[0] if record and record.turns else None
            if i == 0 or first is None or first.get("outcome") != "answer":
                continue                                   # call 0 warms the pipeline
            turns.append(first)
            lat = first["latency_ms"]
            lat["caller_v2v_ms"] = heard_by_caller(call)
            flags = {k: first.get(k) for k in ("streamed_stt", "speculative_stt", "preemptive")}
            print(f"call {i}: {first['caller']!r} v2v {lat.get('end_of_speech_ms', 0) + lat['answer_start_ms']:.0f} ms "
                  f"{json.dumps(flags)} {json.dumps(lat)}", flush=True)
    finally:
        rig.stop()
        providers.close()
    if not turns:
        return {"error": "no answered turn"}
    v2v = [t["latency_ms"]["end_of_speech_ms"] + t["latency_ms"]["answer_start_ms"] for t in turns]
    caller_v2v = [t["latency_ms"]["caller_v2v_ms"] for t in turns if t["latency_ms"].get("caller_v2v_ms") is not None]
    stages = {k: summary([t["latency_ms"].get(k, 0.0) for t in turns])
              for k in ("end_of_speech_ms", "stt_ms", "retrieval_ms", "embed_ms", "search_ms", "llm_ms",
                        "llm_first_token_ms", "tts_ms", "tts_first_audio_ms", "answer_start_ms")}
    overhead = [controller_overhead(t) for t in turns]
    result = {"turns": len(turns), "voice_to_voice_ms": summary(v2v), "controller_overhead_ms": summary(overhead),
              "caller_voice_to_voice_ms": summary(caller_v2v) if caller_v2v else None, "stages": stages}
    if caller_v2v:
        print(f"caller-side voice-to-voice p50 {pct(caller_v2v, 50):.0f} ms "
              f"p99 {pct(caller_v2v, 99):.0f} ms", flush=True)
    print(f"voice-to-voice p50 {pct(v2v, 50):.0f} ms p99 {pct(v2v, 99):.0f} ms over {len(turns)} turns; "
          f"controller overhead p50 {pct(overhead, 50):.1f} ms p99 {pct(overhead, 99):.1f} ms", flush=True)
    for name, s in stages.items():
        print(f"  {name:<20} p50 {s['p50']:>8.1f}  p99 {s['p99']:>8.1f}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["retrieval", "ingest", "calls"], action="append")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--backend", choices=["faiss", "pgvector"], default="faiss",
                        help="pgvector: also measure retrieval in PostgreSQL + pgvector, next to faiss")
    parser.add_argument("--pg-url", help="PostgreSQL with pgvector (default: $IVR_TEST_PGVECTOR_URL, else a pgserver)")
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--end-silence", type=float, help="end_silence of the flow in seconds (default: its 0.7)")
    parser.add_argument("--baseline", action="store_true",
                        help="calls: also run them without streaming STT and preemptive answers, for a same-run ratio")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    wanted = args.only or ["retrieval", "ingest", "calls"]
    out: dict[str, Any] = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="ivr-rag-bench-") as tmp:
        work = Path(tmp)
        if "retrieval" in wanted:
            sizes = [int(s) for s in args.sizes.split(",")]
            if args.backend == "pgvector":
                from pgvector_bench import pgvector_server

                with pgvector_server(args.pg_url) as pg_admin:
                    out["retrieval"] = bench_retrieval(sizes, args.queries, work, pg_admin)
            else:
                out["retrieval"] = bench_retrieval(sizes, args.queries, work)
        if "ingest" in wanted:
            out["ingest"] = bench_ingest(args.documents, work)
        if "calls" in wanted:
            out["calls"] = bench_calls(args.calls, work, args.end_silence)
            if args.baseline:
                print("baseline: no streaming STT, no preemptive answers", flush=True)
                out["calls_baseline"] = base = bench_calls(args.calls, work, args.end_silence, baseline=True)
                ours, theirs = out["calls"].get("caller_voice_to_voice_ms"), base.get("caller_voice_to_voice_ms")
                if ours and theirs:
                    out["caller_v2v_ratio"] = round(ours["p50"] / theirs["p50"], 3)
                    print(f"caller-side voice-to-voice p50: ours {ours['p50']:.0f} ms, baseline {theirs['p50']:.0f} ms "
                          f"(ratio {out['caller_v2v_ratio']})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    os._exit(0)   # model thread pools and worker processes: do not wait for them


if __name__ == "__main__":
    main()
