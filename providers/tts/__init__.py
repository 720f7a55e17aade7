"""Text-to-speech: the ``TTSProvider`` base, the on-disk prompt cache, WAV rendering for
FreeSWITCH, and one module per vendor."""
