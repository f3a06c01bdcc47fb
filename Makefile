# One file for every set-up and run step. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
DEPLOY_VENV ?= .venv-deploy
DEPLOY_PY   := $(DEPLOY_VENV)/bin/python
HOST     ?= 127.0.0.1
PORT     ?= 5001

SYSTEM_STAMP := $(VENV)/.system-deps
VENV_STAMP   := $(VENV)/.installed
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed

.PHONY: help setup deploy-setup test test-main test-deploy lint serve demo demo-mic bench clean \
        serve-whisper test-cloud bench-scoring bench-wer

help:  ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- set-up
$(SYSTEM_STAMP): scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	@mkdir -p $(VENV) && touch $@

$(VENV_STAMP): $(SYSTEM_STAMP) requirements-cloud.txt requirements-edge.txt requirements-train.txt \
		requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing requirements-dev.txt into $(VENV) (a few minutes the first time)"
	$(PY) -m pip install -qq --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -qq --disable-pip-version-check --no-deps -e .
	@touch $@

setup: $(VENV_STAMP)  ## system packages + .venv with everything (cloud, edge, trainer, tests)

# ---------------------------------------------------------------- tests
test: test-main test-deploy  ## set everything up and run all tests (what CI runs)

test-main: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest --ignore=tests/deploy

lint: setup  ## ruff
	$(VENV)/bin/ruff check .

# ---------------------------------------------------------------- cloud: scoring service
# Settings are environment variables (see README "Cloud: the scoring service"); on make's
# command line they reach the server too: make serve MODEL_NAME_OR_PATH=/path/to/model
# The service's bounded threaded worker (scoring-func/scoring/server.py GUNICORN_CMD_ARGS): with
# azmlinfsrv's default sync worker one idle connection blocks every request. A GUNICORN_CMD_ARGS
# of your own (environment or make's command line) wins.
SCORING_GUNICORN_ARGS := --worker-class scoring.server.BoundedThreadWorker --threads 64
GUNICORN_CMD_ARGS ?= $(SCORING_GUNICORN_ARGS)

serve: setup  ## serve scoring-func/score_audio.py locally on http://$(HOST):$(PORT)/score
	GUNICORN_CMD_ARGS="$(GUNICORN_CMD_ARGS)" \
	  $(VENV)/bin/azmlinfsrv --entry_script scoring-func/score_audio.py --port $(PORT)

serve-whisper: setup  ## serve the offline Whisper tiny.en (no Hub needed) on port $(PORT)
	MODEL_NAME_OR_PATH="$$($(PY) -m scoring.models --offline-whisper-path)" \
	  GUNICORN_CMD_ARGS="$(GUNICORN_CMD_ARGS)" \
	  $(VENV)/bin/azmlinfsrv --entry_script scoring-func/score_audio.py --port $(PORT)

test-cloud: setup  ## only the scoring service tests (tests/cloud)
	$(PY) -m pytest tests/cloud

# ---------------------------------------------------------------- edge app
EDGE_ARGS ?=
LABEL ?= fixed
.PHONY: run-edge edge-devices test-edge bench-edge bench-fleet bench-attack bench-endpointing bench-probe \
        test-keyword-models

run-edge: setup  ## the device app on the microphone (EDGE_ARGS="--device USB --endpoint URL ...")
	$(VENV)/bin/edgeml $(EDGE_ARGS)

edge-devices: setup  ## list the audio input devices the edge app can use
	$(VENV)/bin/edgeml --list-devices

test-edge: setup  ## the edge app's tests only
	$(PY) -m pytest tests/edge

bench-fleet: setup  ## many devices, an outage, the return: arrivals/s, nothing lost, p95 latency
	$(PY) bench/fleet.py

bench-probe: setup  ## held-out adversarial probe (real server, app, HTTP, rogue .eim): bench/results/probe-$(LABEL).json
	$(PY) bench/probe.py --label $(LABEL)

bench-attack: setup  ## scoring service latency with 50 slow connections open; JSON body memory
	$(PY) bench/scoring_attack.py

bench-edge: setup  ## listening-loop CPU, keyword-to-recording latency, sentence coverage
	$(PY) bench/edge_listen.py

bench-endpointing: setup  ## end of speech in real noise: VADs, silence curve, old vs new, latency
	$(PY) bench/endpointing.py

test-keyword-models: setup  ## rebuild tests/edge/models/hello_world.eim (a two-word keyword) with kwtrain
	$(VENV)/bin/kwtrain build --frontend mfcc --keyword "hello world" --out $(KWS_WORK)/hello_world --epochs 10 \
		--name hello-world --eim tests/edge/models/hello_world.eim

# ---------------------------------------------------------------- the device side on arm64
ARM64_ROOT ?= build/arm64-root
.PHONY: arm64-check arm64-clean
arm64-check: setup  ## edge app installed + tested on Debian bookworm arm64 under qemu (root; ~11 min cold, ~3 warm)
	ARM64_ROOT=$(ARM64_ROOT) bash scripts/arm64_check.sh

arm64-clean:  ## remove the arm64 root of arm64-check (unmounting what is mounted inside first)
	ARM64_ROOT=$(ARM64_ROOT) bash scripts/arm64_check.sh --clean

# ---------------------------------------------------------------- keyword model
KWS_WORK     ?= build/kws
KWS_CHANNELS ?= 8,16
.PHONY: keyword-model keyword-model-mfcc stop-model bench-kws bench-kws-real bench-kws-threshold bench-kws-syllables bench-kws-negatives test-kws bench-e2e
keyword-model: setup  ## rebuild edgeml/models/listen.eim (+ report): speech embedding, no recordings
	$(VENV)/bin/kwtrain build --keyword listen --out $(KWS_WORK)/listen-embedding \
		--consecutive 3 --hard-negative-rounds 1 --name listen \
		--eim edgeml/models/listen.eim

keyword-model-mfcc: setup  ## the MFCC+CNN listen model (Edge Impulse's block), to $(KWS_WORK)/listen
	$(VENV)/bin/kwtrain build --frontend mfcc --keyword listen --out $(KWS_WORK)/listen \
		--fresh-data --holdout default --channels $(KWS_CHANNELS) --name listen \
		--eim $(KWS_WORK)/listen/listen.eim

bench-e2e: setup  ## THE product figure: real people, keyword + sentence, through the app, old vs new (needs ../shared/data/speech; ~40 min)
	$(PY) bench/e2e.py

bench-kws-real: setup  ## real people (kw_real): REPORT keywords, then TUNE (tuned on), old vs new recipe (needs ../shared)
	$(PY) bench/kws_real.py

bench-kws-threshold: setup  ## the stated threshold, tail model alone vs capped, on real people (after bench-kws-real)
	$(PY) bench/kws_threshold.py

bench-kws-syllables: setup  ## miss rate against syllables from the kws result files (no training; copy into kwtrain/keywordlength.py)
	$(PY) bench/kws_syllables.py

bench-kws-negatives: setup  ## false wakes per hour (95 % bound) on 2.4 h of unseen real audio, trained models (after bench-kws-real)
	nice $(PY) bench/kws_negatives_long.py

stop-model: setup  ## real speech: "stop" model, held-out speakers (needs ../shared/data/speech)
	$(PY) bench/kws_stop.py

bench-kws: setup  ## keyword model: CPU of the .eim per audio second through the SDK (vs round 1, MFCC)
	$(PY) bench/kws_speed.py

test-kws: setup  ## the keyword model's tests only
	$(PY) -m pytest tests/kws


# ---------------------------------------------------------------- deployment
.PHONY: deploy-dry-run deploy
$(DEPLOY_STAMP): cloudml/requirements-deploy.txt pyproject.toml
	@test -x $(DEPLOY_PY) || $(PYTHON) -m venv $(DEPLOY_VENV)
	@echo "Installing cloudml/requirements-deploy.txt into $(DEPLOY_VENV)"
	$(DEPLOY_PY) -m pip install -qq --disable-pip-version-check -r cloudml/requirements-deploy.txt
	$(DEPLOY_PY) -m pip install -qq --disable-pip-version-check --no-deps -e .
	@touch $@

deploy-setup: $(DEPLOY_STAMP)  ## .venv-deploy with azure-ai-ml (apart: it breaks the server's pins)

test-deploy: deploy-setup  ## deployment tests (YAML, deploy.py) in .venv-deploy
	$(DEPLOY_PY) -m pytest tests/deploy

deploy-dry-run: deploy-setup  ## offline: validate every cloudml/ YAML + file reference, print the plan
	$(DEPLOY_PY) cloudml/deploy.py --dry-run

deploy: deploy-setup  ## deploy to Azure ML (managed endpoint; ARGS="--target kubernetes ...")
	$(DEPLOY_PY) cloudml/deploy.py $(ARGS)

# ---------------------------------------------------------------- demo
demo: setup  ## the whole system on this machine: demo recording -> edge app -> local service -> text
	@$(PY) -m devkit.demo --port $(PORT)

demo-mic: setup  ## the same, listening on the real microphone (EDGE_ARGS="--device USB"), Ctrl-C ends
	@$(PY) -m devkit.demo --mic --port $(PORT) $(EDGE_ARGS)

# ---------------------------------------------------------------- benchmarks
bench-scoring: setup  ## seed entry script vs the service (fp32, int8) + memory vs length, ~25 min
	$(PY) bench/scoring_bench.py
	$(PY) bench/scoring_memory.py

bench-wer: setup  ## served vs direct WER of Whisper tiny.en on ../shared/data/speech/utt
	$(PY) bench/served_wer.py

clean:  ## remove virtual environments and caches
	rm -rf $(VENV) $(DEPLOY_VENV) .pytest_cache .ruff_cache
