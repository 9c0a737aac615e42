# Two commands do everything on a fresh machine: `make run` and `make test`.
# Each first installs what it needs into .venv (idempotent: a stamp file skips the work
# when pyproject.toml and requirements.lock have not changed).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch 2.13.0 is installed first, on its own, so nothing ever resolves a CUDA build.
# Elsewhere, point pip at the CPU wheels: make TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
# uv does not read pip's PIP_FIND_LINKS; hand it the same folder when there is one.
UV_FIND_LINKS := $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS),)
TARGETS := kubeflow vertex
IMAGE_REGISTRY ?= us-docker.pkg.dev/PROJECT/textclf
# Rows per bench-scale dataset; set here, not in $(or ...), whose commas split its arguments.
SIZES ?= 100000,300000,1000000
STORAGE_SIZES ?= 100000,400000
IMAGE_TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo dev)

.PHONY: install run test test-fast compile serve bench bench-train bench-serve bench-coldstart bench-agreement bench-scale bench-storage bench-imdb-cpu bench-train-scaling bench-gpu bench-tasks bench-tune monitor-demo soak images pin-images security lint lock clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv==0.13.9
	$(PY) -m pip install -q torch==2.13.0 $(TORCH_PIP_ARGS)
	$(VENV)/bin/uv pip install -q --python $(PY) $(UV_FIND_LINKS) -r requirements.lock
	$(VENV)/bin/uv pip install -q --python $(PY) $(UV_FIND_LINKS) --no-deps -r requirements-nodeps.txt
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	touch $(STAMP)

# Every lock in one command (after changing pyproject.toml, serving/requirements.in or
# security/requirements.in): the dev lock `make install` uses, the hashed production locks the images
# install with --require-hashes (CPU torch from the local or PyTorch CPU wheel, CUDA torch from PyPI),
# the server's own hashed locks (constrained to the production ones) and make security's.
UV := $(VENV)/bin/uv
HASHED := --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28
# The production locks take the dev lock's versions (what the tests ran with), torch aside.
lock: install
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 $(UV_FIND_LINKS) -o requirements.lock
	mkdir -p build && grep -v '^torch==' requirements.lock > build/tested-versions.txt
	$(UV) pip compile pyproject.toml -c build/tested-versions.txt $(HASHED) $(UV_FIND_LINKS) -o requirements-prod.lock
	$(UV) pip compile pyproject.toml -c build/tested-versions.txt $(HASHED) -o requirements-prod-gpu.lock
	$(UV) pip compile serving/requirements.in -c requirements-prod.lock $(HASHED) $(UV_FIND_LINKS) -o serving/requirements.lock
	$(UV) pip compile serving/requirements.in -c requirements-prod-gpu.lock $(HASHED) -o serving/requirements-gpu.lock
	$(UV) pip compile security/requirements.in $(HASHED) -o security/requirements.txt

# checkov (every rendered manifest, the deploy step's InferenceService in both modes, infra/) and
# bandit (the Python packages) from their own hashed environment; fails on any finding that
# security/skips.yaml does not list with its reason (docs/security.md).
SECURITY_VENV := .venv-security
$(SECURITY_VENV)/.installed: security/requirements.txt
	test -x $(SECURITY_VENV)/bin/python || $(PYTHON) -m venv $(SECURITY_VENV)
	$(SECURITY_VENV)/bin/python -m pip install -q --require-hashes --no-deps -r security/requirements.txt
	touch $@

security: install $(SECURITY_VENV)/.installed
	$(PY) -m security.render build/security/manifests
	$(PY) -m security.check --checkov $(SECURITY_VENV)/bin/checkov --bandit $(SECURITY_VENV)/bin/bandit \
	  --manifests build/security/manifests

# ruff (lint rules and import order, then the formatter's check) over the repository and mypy over the core
# package, configured in pyproject.toml; every check runs, and the target fails if any of them failed.
lint: install
	@status=0; \
	  $(VENV)/bin/ruff check . || status=1; \
	  $(VENV)/bin/ruff format --check . || status=1; \
	  $(VENV)/bin/mypy || status=1; \
	  exit $$status

run: install
	$(PY) -m pipelines run

test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not integration"

compile: install
	$(foreach t,$(TARGETS),$(PY) -m pipelines compile --target $(t) && $(PY) -m pipelines compile --target $(t) --tune &&) true

serve: install
	model=$$($(PY) -m pipelines latest-model) && \
	  $(PY) -m serving --model_dir "$$model" --model_name textclf --host 127.0.0.1 --http_port 8080

bench: bench-train bench-serve

bench-train: install
	$(PY) bench/train.py --data $(or $(DATA),../shared/data/imdb)

# The whole pipeline on all of IMDB on this machine's CPUs: step times, accuracy. The recipe recorded in
# docs/benchmarks.md: 1 epoch at 352 tokens (head_tail), 48 min on 2 cores (92.3%).
# Extra flags (the last of a repeated flag wins): make bench-imdb-cpu ARGS="--max_length 256 --epochs 2"
bench-imdb-cpu: install
	$(PY) bench/imdb.py pipeline --data $(or $(DATA),../shared/data/imdb) --epochs 1 --max_length 352 $(ARGS)

# Any task with only `source` set: TREC-6 (its own train/test files), SMS spam and an IMDB sample through
# `python -m pipelines run`: accuracy, macro F1, suites, gate verdict, minutes (docs/benchmarks.md).
bench-tasks: install
	$(PY) bench/tasks.py --data $(or $(DATA),../shared/data) --output docs/benchmarks.md $(ARGS)

# samples/s of the train step with 1 and 2 data-parallel CPU processes (gloo).
bench-train-scaling: install
	$(PY) bench/imdb.py scaling --data $(or $(DATA),../shared/data/imdb) --train_size 2000 --validation_size 200 --test_size 200 --max_steps 30 $(ARGS)

# IMDB at max_length 512, 3 epochs, on one GPU and then on all GPUs: accuracy, samples/s, MFU.
bench-gpu: install
	PYTHON=$(PY) DATA=$(or $(DATA),../shared/data/imdb) bench/gpu_imdb.sh $(ARGS)

# The pipeline with the default training settings, then the tune pipeline (default search space,
# 12 trials), on TREC-6: test accuracy of both, side by side (docs/benchmarks-tune.md). Quiet machine.
# A quick check of the script: make bench-tune DATA=sample:300 ARGS="--n_trials 2 --param max_length=32 --param epochs=1 --tune_param trial_max_steps=3"
bench-tune: install
	$(PY) bench/tune.py --data $(or $(DATA),../shared/data/trec6) --param max_length=64 $(ARGS)

# Ingest, tokenize, a short train and evaluate at N = 100k, 300k, 1M rows (memory and time per step).
bench-scale: install
	$(PY) bench/scale.py --data $(or $(DATA),../shared/data/imdb) --sizes $(SIZES)

# The same export ingested from local disk, s3:// (moto) and gs:// (gcp-storage-emulator): time and peak
# memory side by side, as ratios to local (issue 21: remote shards are streamed, never downloaded whole).
bench-storage: install
	$(PY) bench/storage.py --data $(or $(DATA),../shared/data/imdb) --sizes $(STORAGE_SIZES) \
	  --output docs/benchmarks-storage.md

bench-serve: install
	model=$(or $(MODEL_DIR),$$($(PY) -m pipelines latest-model)) && \
	  $(PY) bench/serve.py --data $(or $(DATA),../shared/data/imdb/test.csv.gz) --model_dir "$$model"

# Process start to /v2/health/ready with an empty cache, before (BASE, default main) and after, beside
# `python -c 'import kserve'`. MODEL_DIR: an optimize step's output (default: the newest `make run` model).
bench-coldstart: install
	model=$(or $(MODEL_DIR),$$($(PY) -m pipelines latest-model)) && \
	  $(PY) bench/coldstart.py --model_dir "$$model" --base $(or $(BASE),cbcf098^1) $(ARGS)

# Each serving backend against fp32 PyTorch on a test set (default: all 25,000 IMDB test reviews):
# label flips, probability change, accuracy. MODEL_DIR: an optimize step's output (the IMDB model).
bench-agreement: install
	model=$(or $(MODEL_DIR),$$($(PY) -m pipelines latest-model)) && \
	  $(PY) bench/agreement.py --model_dir "$$model" --data $(or $(DATA),../shared/data/imdb/test.csv.gz) $(ARGS)

# Model server + drift monitor on loopback: in-distribution traffic, then shifted traffic.
# Without the shared data: make monitor-demo DATA=sample: SHIFTED=gibberish
monitor-demo: install
	$(PY) bench/monitor_demo.py --in_distribution $(or $(DATA),../shared/data/imdb/test.csv.gz) --shifted $(or $(SHIFTED),../shared/data/sms_spam/sms_spam.csv.gz)

# Hostile traffic (good, bad, huge, anonymous admin calls) against the model server and the drift
# monitor at concurrency 16 for DURATION seconds; checks the targets of issue 11 (exit 1 if missed).
# MODEL_DIR defaults to the newest `make run` model whose gate passed; SOAK_ARGS adds flags.
soak: install
	$(PY) bench/soak.py --duration $(or $(DURATION),120) $(if $(MODEL_DIR),--model_dir "$(MODEL_DIR)") $(SOAK_ARGS)

# Builds and pushes the four images, then names each by its digest in build/images.env.
images:
	./infra/build-images.sh $(IMAGE_REGISTRY) $(IMAGE_TAG)

# Where a registry is reachable: record the digest of every third-party image (infra/base-images.lock)
# and write it into the manifests that run it. Review and commit the result.
pin-images:
	./infra/pin-images.sh

clean:
	rm -rf build runs .pytest_cache
