# Two commands do everything on a fresh machine:
#   make serve   installs into .venv, creates the SQLite database with the demo tenant and flow, serves calls on
#                127.0.0.1:8084 and the WhatsApp webhooks on 127.0.0.1:8090 (with a WhatsApp worker)
#   make test    installs into .venv with the test extras and runs the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
IVR    := $(VENV)/bin/ivr
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: serve test install lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first, pinned: pip then takes the CPU build instead of a multi-GB CUDA one.
$(STAMP): $(PY) setup.cfg pyproject.toml
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[local,docs,cloud,whatsapp,test]'
	@command -v espeak-ng >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -qq espeak-ng >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && \
	   apt-get install -y -qq espeak-ng >/dev/null 2>&1)) || \
	  echo "note: espeak-ng not installed; the speech tests that need it will be skipped"; }
	touch $(STAMP)

install: $(STAMP)

# The ESL server in the foreground, the web service and a WhatsApp worker beside it; Ctrl-C stops all three.
serve: $(STAMP)
	$(IVR) db upgrade
	$(IVR) db seed-demo --flows-dir examples/flows
	@trap 'kill $$web $$worker 2>/dev/null; wait' EXIT INT TERM; \
	  $(IVR) web --host 127.0.0.1 --port 8090 & web=$$!; \
	  $(IVR) whatsapp worker --workers 8 & worker=$$!; \
	  $(IVR) serve --host 127.0.0.1 --port 8084

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/calls/run.py

clean:
	rm -rf $(VENV) var build *.egg-info
