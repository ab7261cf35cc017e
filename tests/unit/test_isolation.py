"""The plumbing's tests cannot see what a fork changes: only tests/sample/ reads the bundled
sample (local_test/'s job and payload, algo/algorithm.py, algo/predictor.py) or runs algo/'s own
train, serve or start, which load them; every other test runs the tests' own fork
(tests/fixture_fork/, support.plumbing_algo())."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
SAMPLE_ONLY = re.compile(r"\b(SAMPLE_JOB|SAMPLE_PAYLOAD|import_sample)\b|local_test/test_dir|local_test/payload"
                         r"|ALGO\s*/\s*\"(algorithm|predictor)\.py\"|^\s*import (algorithm|predictor)\b"
                         r"|str\(ALGO\s*/\s*\"(train|serve|start)\"\)", re.M)
PLUMBING = sorted(path for path in TESTS.rglob("*.py")
                  if not path.is_relative_to(TESTS / "sample") and not path.is_relative_to(TESTS / "fixture_fork")
                  and path.name not in ("support.py", "test_isolation.py"))


@pytest.mark.parametrize("path", PLUMBING, ids=lambda p: str(p.relative_to(TESTS)))
def test_a_plumbing_test_reads_nothing_a_fork_changes(path):
    assert not SAMPLE_ONLY.findall(path.read_text()), "use support.JOB, PAYLOAD and plumbing_algo() instead"
