"""Speech-to-text: the ``STTProvider`` base (``providers.stt.base``) and one module per vendor."""
