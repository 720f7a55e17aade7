"""RAG and virtual-secretary benchmarks (see the "RAG and the virtual secretary" section of
benchmarks/README.md).

    .venv/bin/python benchmarks/rag/run.py                 # everything (~6-8 min on 2 cores)
    .venv/bin/python benchmarks/rag/run.py --only retrieval --sizes 1000,10000
    .venv/bin/python benchmarks/rag/run.py --json out.json

Sections:
- ``retrieval``: p50/p99 of one query at 1k, 10k and 100k chunks per tenant (random unit vectors,
  384 dimensions) — raw ``faiss.IndexFlatIP.search`` vs our `FaissIndex.search` (thread-pool hop,
  manifest check) vs our whole `Retriever.retrieve` (+ chunk lookup in SQLite, LRU cache) with a
  precomputed query vector, all in the same run on the same index;
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


def bench_retrieval(sizes: list[int], queries: int, work: Path) -> dict[str, Any]:
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


def bench_calls(calls: int, work: Path) -> dict[str, Any]:
    from rag_harness import KNOWLEDGE, SecretaryRig, caller_wav, make_database

    from esl_controller.simulator import CallerScript, Speak, Wait, WaitForApp
    from providers.tenant_set import TenantProviderConfig, TenantProviders
    from rag.ingest import Ingester
    from rag.services import secretary_services

    folder = work / "calls"
    folder.mkdir()
    providers = TenantProviders(TenantProviderConfig(tenant="dental", tts_cache_dir=folder / "tts"))
    providers.warm_up(180)
    _engine, stores = make_database(folder, "dental.example")
    store = stores["dental.example"]
    index = FaissIndex(folder / "rag", store.tenant_id)
    Ingester(store, index, providers.embeddings).ingest([KNOWLEDGE])
    retriever = Retriever(store, index, providers.embeddings)
    voice = providers.tts.providers[0]
    wavs = [caller_wav(voice, q, folder / "voice") for q in QUESTIONS]
    # Warm every model once (first inferences are slow) and clear the answer cache between calls
    # so each answer is synthesized, as a new question would be.
    providers.embeddings.embed(["warm up"], purpose="query")
    services = secretary_services(providers, retriever)
    rig = SecretaryRig(folder, lambda: services, speed=1.0)
    turns: list[dict[str, Any]] = []
    try:
        for i in range(calls + 1):
            for cached in (folder / "tts").rglob("*.wav"):
                cached.unlink()
            script = CallerScript([WaitForApp("record"), Speak(wavs[i % len(wavs)]), Wait(25)])
            _call, _outcome, record = rig.call(script, timeout=120)
            rig.records.clear()
            first = record.turns[0] if record and record.turns else None
            if i == 0 or first is None or first.get("outcome") != "answer":
                continue                                   # call 0 warms the pipeline
            turns.append(first)
            lat = first["latency_ms"]
            print(f"call {i}: {first['caller']!r} v2v {lat.get('end_of_speech_ms', 0) + lat['answer_start_ms']:.0f} ms "
                  f"{json.dumps(lat)}", flush=True)
    finally:
        rig.stop()
        providers.close()
    if not turns:
        return {"error": "no answered turn"}
    v2v = [t["latency_ms"]["end_of_speech_ms"] + t["latency_ms"]["answer_start_ms"] for t in turns]
    stages = {k: summary([t["latency_ms"].get(k, 0.0) for t in turns])
              for k in ("end_of_speech_ms", "stt_ms", "retrieval_ms", "embed_ms", "search_ms", "llm_ms",
                        "llm_first_token_ms", "tts_ms", "tts_first_audio_ms", "answer_start_ms")}
    overhead = [t["latency_ms"]["answer_start_ms"] - t["latency_ms"].get("stt_ms", 0) - t["latency_ms"]["retrieval_ms"]
                - t["latency_ms"].get("llm_ms", 0) - t["latency_ms"].get("tts_ms", 0) for t in turns]
    result = {"turns": len(turns), "voice_to_voice_ms": summary(v2v), "controller_overhead_ms": summary(overhead),
              "stages": stages}
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
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    wanted = args.only or ["retrieval", "ingest", "calls"]
    out: dict[str, Any] = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="ivr-rag-bench-") as tmp:
        work = Path(tmp)
        if "retrieval" in wanted:
            out["retrieval"] = bench_retrieval([int(s) for s in args.sizes.split(",")], args.queries, work)
        if "ingest" in wanted:
            out["ingest"] = bench_ingest(args.documents, work)
        if "calls" in wanted:
            out["calls"] = bench_calls(args.calls, work)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    os._exit(0)   # model thread pools and worker processes: do not wait for them


if __name__ == "__main__":
    main()
