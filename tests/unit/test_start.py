"""`start`, what the image runs with no command: train where a training job's configuration is,
serve otherwise, saying which and why, and keeping its PID (exec)."""

from __future__ import annotations

import subprocess
import sys
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

import pytest

from sagemaker_byo import settings
from support import host_env, plumbing_algo

loader = SourceFileLoader("start", str(plumbing_algo() / "start"))
start = module_from_spec(spec_from_loader("start", loader))
loader.exec_module(start)


@pytest.mark.parametrize("name", ["resourceconfig.json", "inputdataconfig.json", "hyperparameters.json"])
def test_any_training_job_configuration_file_means_train(tmp_path, name):
    (tmp_path / "input" / "config").mkdir(parents=True)
    (tmp_path / "input" / "config" / name).write_text("{}")
    program, reason = start.choose(settings.paths({"SAGEMAKER_BASE_DIR": str(tmp_path)}))
    assert program == "train"
    assert name in reason


@pytest.mark.parametrize("layout", ["nothing", "a model only", "an empty config folder"])
def test_without_a_training_configuration_it_serves(tmp_path, layout):
    if layout == "a model only":
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "model.joblib").write_bytes(b"")
    if layout == "an empty config folder":
        (tmp_path / "input" / "config").mkdir(parents=True)
    program, reason = start.choose(settings.paths({"SAGEMAKER_BASE_DIR": str(tmp_path)}))
    assert program == "serve"
    assert "endpoint" in reason


def test_start_runs_the_chosen_program_says_why_first_and_passes_its_exit_code_on(tmp_path):
    # A training job whose algorithm is unknown fails at once: enough to see train ran, as this PID.
    (tmp_path / "input" / "config").mkdir(parents=True)
    (tmp_path / "input" / "config" / "hyperparameters.json").write_text('{"algorithm": "no-such-algorithm"}')
    # The tests' own fork: the fork's algorithm.py may need a library this environment lacks.
    result = subprocess.run([sys.executable, str(plumbing_algo() / "start")], env=host_env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    first_line = result.stderr.splitlines()[0]
    assert first_line.startswith("start: no command given;")
    assert "hyperparameters.json exists, so this is a training job: running train" in first_line
    assert result.returncode == 1  # train's exit code for a user error, passed through unchanged
    assert "no-such-algorithm" in (Path(tmp_path) / "output" / "failure").read_text()
