"""Test session set-up: gevent monkey-patching happens here, before anything imports psycopg
(psycopg 3 picks its wait function at import time) or opens a socket."""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import sys  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "esl"))
