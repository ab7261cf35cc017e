"""Shared fixtures: a temporary /opt/ml with the tests' own job, a model trained on it by the
tests' own fork, and the real `serve` of that fork as a subprocess. The helpers behind them are
in support.py.

Tiers that need nginx or a Docker engine skip with a clear message when those are absent, and
fail instead when REQUIRE_ALL_TIERS=1 (CI sets it), so nothing is silently skipped there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support import Server, copy_test_dir, have_nginx, require, run_train


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    return copy_test_dir(tmp_path / "ml")


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory) -> Path:
    """A /opt/ml whose model/ holds the tests' own model, whatever a fork bundles: the default of
    tests/fixture_fork/algorithm.py, a scikit-learn decision tree (max_leaf_nodes=5), trained on
    tests/fixture_fork/job's iris rows. Tests rely on its behaviour: 4 numeric features, the
    labels setosa/versicolor/virginica, infinities refused by its own predict."""
    base = copy_test_dir(tmp_path_factory.mktemp("trained") / "ml")
    result = run_train(base)
    assert result.returncode == 0, result.stderr
    return base


@pytest.fixture
def serve(trained_dir: Path):
    """Start servers with `serve(base_dir=..., nginx=..., env={...})`; all are stopped afterwards."""
    started: list[Server] = []

    def start(base_dir: Path = trained_dir, nginx: bool = True, wait_ready: bool = True,
              env: dict[str, str] | None = None) -> Server:
        if nginx:
            require(have_nginx(), "nginx is not installed (apt-get install nginx)")
        server = Server(base_dir, nginx=nginx, env=dict(env or {}))
        started.append(server)
        return server.start(wait_ready=wait_ready)

    yield start
    for server in started:
        server.stop()
