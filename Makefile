# The two commands of the README: `make demo` (the main job) and `make test` (every test).
IMAGE ?= sagemaker-byo:local
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test venv image lint clean

demo:
	local_test/demo.sh $(IMAGE)

test: venv
	$(PY) -m pytest

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

image:
	docker build -t $(IMAGE) .

lint: venv
	$(VENV)/bin/ruff check algo tests bench
	shellcheck build_and_push.sh local_test/*.sh .ci/run

clean:
	rm -rf $(VENV) local_test/test_dir/model/* local_test/test_dir/output/*
