"""The fork's own code imports only the public face (`from sagemaker_byo import ...`), so the
plumbing can move inside its package without breaking it, and passes ruff (`make lint`; ruff's
`--fix` mends most of what it finds). A fork keeps these tests as they are."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import ALGO, REPO, require

SUBMODULE_IMPORT = re.compile(r"^\s*(?:from\s+sagemaker_byo\.\w|import\s+sagemaker_byo\b)", re.M)


@pytest.mark.parametrize("name", ["algorithm.py", "predictor.py"])
def test_the_forks_code_imports_only_the_public_face(name):
    assert not SUBMODULE_IMPORT.findall((ALGO / name).read_text())


def test_the_forks_code_passes_ruff():
    beside = Path(sys.executable).parent / "ruff"
    ruff = str(beside) if beside.exists() else shutil.which("ruff")
    require(ruff is not None, "ruff is not installed (requirements-dev.txt)")
    result = subprocess.run([ruff, "check", "--no-cache", "algo/algorithm.py", "algo/predictor.py", "tests/sample"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_forks_run_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck")
    require(shellcheck is not None, "shellcheck is not installed (apt-get install shellcheck)")
    scripts = sorted(str(path) for path in (REPO / "local_test").glob("*.sh"))
    assert scripts, "no local_test/*.sh"
    result = subprocess.run([shellcheck, "--external-sources", *scripts], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
