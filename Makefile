# The two commands of the README: `make demo` (the main job) and `make test` (every test).
IMAGE ?= sagemaker-byo:local
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

AWS_VENV := .venv-aws
AWS3_VENV := .venv-aws3

.PHONY: demo test venv venv-aws venv-aws3 image sbom lock lint fix clean \
	test-unit test-sample test-integration test-examples test-reliability test-container test-sdk test-ecr \
	test-example-forks

demo:
	local_test/demo.sh $(IMAGE)

test: venv venv-aws venv-aws3
	$(PY) -m pytest

# One tier at a time, e.g. `make test-unit`; `make test` runs them all. test-sample is the bundled
# sample's own tests (a fork adapts tests/sample/); every other tier holds whatever a fork changes.
test-unit test-sample test-integration test-examples test-reliability test-container: venv
	$(PY) -m pytest tests/$(@:test-%=%)

# Each examples/*/ applied to a copy of the repository, and the plumbing tiers run there.
test-example-forks: venv
	$(PY) -m pytest tests/example_forks

test-sdk: venv venv-aws venv-aws3
	$(PY) -m pytest tests/sdk

test-ecr: venv venv-aws
	$(PY) -m pytest tests/ecr

venv: $(VENV)/.installed

# The lock files hold every package with its hashes: pip checks each file it fetches against them.
# Hash checking is all or nothing within one install, so the image's lock and the dev lock go in
# together.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --only-binary :all: -r requirements.txt -r requirements-dev.txt
	touch $@

# The SageMaker SDK, moto and the AWS CLI for tests/sdk and tests/ecr (see requirements-aws.txt).
venv-aws: $(AWS_VENV)/.installed

$(AWS_VENV)/.installed: requirements-aws.txt
	$(PYTHON) -m venv $(AWS_VENV)
	$(AWS_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements-aws.txt
	touch $@

# The SageMaker SDK version 3 for tests/sdk's v3 tier (see requirements-aws3.txt).
venv-aws3: $(AWS3_VENV)/.installed

$(AWS3_VENV)/.installed: requirements-aws3.txt
	$(PYTHON) -m venv $(AWS3_VENV)
	$(AWS3_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements-aws3.txt
	touch $@

# BASE=debian:bookworm-slim@sha256:... builds on a base pinned by digest (docs/deploying.md).
image:
	docker build $(if $(BASE),--build-arg BASE=$(BASE)) -t $(IMAGE) .

# The image's SBOM (CycloneDX JSON, written during the build: docs/deploying.md), copied out of the
# built image IMAGE into sbom.cdx.json.
sbom:
	docker run --rm --network host --entrypoint cat $(IMAGE) /opt/sbom/sbom.cdx.json > sbom.cdx.json.tmp
	mv sbom.cdx.json.tmp sbom.cdx.json
	@echo "sbom.cdx.json: the SBOM of $(IMAGE)"

# Each requirements*.in resolved into its lock, requirements*.txt: every package pinned, with the
# hashes of all its files (so the lock serves x86_64 and arm64 alike). A package keeps the version
# its lock pins unless the input no longer allows it; to move one: make lock LOCK_ARGS="-P numpy".
# Python 3.11 on Linux, as the image's Debian has it; --system-certs trusts the system's CAs.
LOCK_ARGS ?=
LOCK := $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --system-certs --custom-compile-command "make lock" $(LOCK_ARGS)

lock: venv
	$(LOCK) requirements.in -o requirements.txt
	$(LOCK) requirements-dev.in -o requirements-dev.txt
	$(LOCK) requirements-aws.in -o requirements-aws.txt
	$(LOCK) requirements-aws3.in -o requirements-aws3.txt
	$(LOCK) requirements-sbom.in -o requirements-sbom.txt

lint: venv
	$(VENV)/bin/ruff check algo tests bench examples sbom
	shellcheck build_and_push.sh local_test/*.sh .ci/run

# What ruff can mend by itself (import order, unused imports), mended; what is left, listed.
fix: venv
	$(VENV)/bin/ruff check --fix algo tests bench examples sbom

clean:
	rm -rf $(VENV) $(AWS_VENV) local_test/test_dir/model/* local_test/test_dir/output/*
