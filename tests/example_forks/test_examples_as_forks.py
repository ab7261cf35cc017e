"""CI's proof that a fork's edits cannot break the plumbing's tests: each example in examples/ is
applied to a copy of the repository as its README says (`python3 examples/apply.py NAME`, which
follows the example's fork.json), and the plumbing tiers (`tiers` in fork.json; by default
tests/unit, tests/integration and tests/reliability) run in that copy and must pass there.

An example added later is picked up by its fork.json alone. The copy holds the files git knows
(committed or not, ignored ones left out), so what is tested is what a fork's clone would hold.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from support import PORT_BLOCK_VARIABLE, PORT_BLOCKS, REPO

EXAMPLES = sorted(path.parent.name for path in (REPO / "examples").glob("*/fork.json"))
TIMEOUT = 3600  # one example's tiers; CI's whole run has 90 minutes
JOBS = os.cpu_count() or 1  # copies tested at once


def repository_files() -> list[str]:
    """The repository's files as a clone holds them: tracked and untracked, not ignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (REPO / name).is_file()})


def copy_repository(destination: Path) -> Path:
    for name in repository_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)  # keeps the executable bits of train, serve and scripts
    return destination


def apply(fork: Path, example: str, *options: str) -> str:
    """examples/apply.py, as the example's README says, run in the copy."""
    result = subprocess.run([sys.executable, "examples/apply.py", example, *options], cwd=fork,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def summary(output: str) -> str:
    """pytest's short summary and its last line, or the end of the output."""
    marker = output.rfind("short test summary info")
    return output[output.rfind("\n", 0, marker) + 1:] if marker != -1 else output[-4000:]


def test_every_example_has_a_fork_description():
    assert EXAMPLES, "no examples/*/fork.json found"
    folders = sorted(path.name for path in (REPO / "examples").iterdir()
                     if path.is_dir() and not path.name.startswith(("_", ".")))
    assert folders == EXAMPLES, f"examples without fork.json: {sorted(set(folders) - set(EXAMPLES))}"


@pytest.mark.parametrize("example", EXAMPLES)
def test_each_examples_readme_applies_it_as_ci_does(example):
    assert f"python3 examples/apply.py {example}" in (REPO / "examples" / example / "README.md").read_text()


def run_in_a_fork(example: str, root: Path) -> tuple[list[str], subprocess.CompletedProcess]:
    """The repository copied to `root`, the example applied, its tiers run there."""
    fork = copy_repository(root / "fork")
    tiers = apply(fork, example, "--tiers").split()
    apply(fork, example)
    # Copies run side by side: each its own block of ports and its own temporary folder (pytest's
    # numbered folders are shared, and a run's clean-up could remove another's).
    block = 1 + EXAMPLES.index(example) % (PORT_BLOCKS - 1)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", PORT_BLOCK_VARIABLE: str(block)}
    result = subprocess.run([sys.executable, "-m", "pytest", *tiers, "-q", "-p", "no:cacheprovider",
                             "--basetemp", str(root / "tmp")],
                            cwd=fork, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    return tiers, result


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory) -> dict[str, Future]:
    """The selected examples' runs, JOBS at a time: each is mostly one core's work (one pytest and
    the servers it starts in turn), so on CI's 2 cores two copies take about the time of one."""
    selected = [item.callspec.params["example"] for item in request.session.items
                if item.originalname == "test_the_plumbing_tiers_pass_in_a_fork_made_of_the_example"]
    pool = ThreadPoolExecutor(max_workers=JOBS)
    futures = {example: pool.submit(run_in_a_fork, example, tmp_path_factory.mktemp(example))
               for example in selected}
    yield futures
    pool.shutdown(wait=True)


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_plumbing_tiers_pass_in_a_fork_made_of_the_example(example, runs):
    tiers, result = runs[example].result()
    assert result.returncode == 0, (f"examples/{example} applied, {' '.join(tiers)}:\n" + summary(result.stdout)
                                    + result.stderr[-2000:])
