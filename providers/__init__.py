"""Per-tenant speech and AI providers: STT, TTS, LLM and embeddings, with fallback.

Layout (each module's docstring says what it owns):

- ``errors``: the exception family; ``base``: settings, deadlines, retries, ``Attempt``;
  ``audio``: ``AudioClip``, WAV I/O and resampling; ``registry``: alias table, ``build``,
  ``validate_settings``; ``fallback``: chains of providers; ``tenant_set``: a tenant's
  providers built once per configuration version; ``check``: what ``ivr providers test`` runs.
- ``stt/``, ``tts/``, ``llm/``, ``embeddings/``: one base per capability, one module per vendor;
  ``tts/cache`` (per-tenant prompt cache), ``tts/render`` (text → playable WAV or
  ``SpeakInstead``), ``tts/sentences`` (streamed answers spoken sentence by sentence).
- ``offload`` (thread pool for GIL-releasing inference), ``process_pool`` (worker
  processes for GIL-holding inference), ``local_models`` (load once per process),
  ``model_paths`` (models shipped by PyPI packages), ``http``, ``sdk_errors``,
  ``openai_sdk`` and ``aws_sdk`` (the vendor boundary).

This package imports nothing else of the project, never monkey-patches, and never blocks
the gevent hub: CPU-bound inference runs in a thread or a worker process, every wait has a
timeout.
"""
