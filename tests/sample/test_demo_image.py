"""The README's main command, `make demo`, with a Docker engine: build the image, train in it,
serve from it, predict local_test/payload.csv, print the predictions, stop."""

from __future__ import annotations

import os
import subprocess

from support import REPO, SAMPLE_PAYLOAD, free_port, have_docker, require


def test_demo_with_docker_prints_a_prediction_for_every_payload_row():
    require(have_docker(), "no Docker engine answers (`docker info` failed)")
    env = {**os.environ, "PORT": str(free_port())}
    result = subprocess.run(["make", "-s", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "training in the container" in result.stdout
    printed = result.stdout.split("predictions for local_test/payload.csv:\n", 1)[1].splitlines()
    labels = printed[: len(SAMPLE_PAYLOAD.read_text().splitlines())]
    assert len(labels) == len(SAMPLE_PAYLOAD.read_text().splitlines())
    assert set(labels) <= {"setosa", "versicolor", "virginica"}
