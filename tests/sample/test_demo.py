"""The README's main command, `make demo`, in its host mode (no Docker engine): train on the
bundled iris data, serve, predict local_test/payload.csv, print the predictions, stop."""

from __future__ import annotations

import os
import subprocess

from support import REPO, SAMPLE_PAYLOAD, free_port, have_nginx, require


def test_demo_on_the_host_prints_a_prediction_for_every_payload_row():
    require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    env = {**os.environ, "DEMO_MODE": "host", "PORT": str(free_port())}
    result = subprocess.run(["make", "-s", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "running train and serve on this host" in result.stdout
    printed = result.stdout.split("predictions for local_test/payload.csv:\n", 1)[1].splitlines()
    labels = printed[: len(SAMPLE_PAYLOAD.read_text().splitlines())]
    assert labels and set(labels) <= {"setosa", "versicolor", "virginica"}
    assert "train:accuracy=" in result.stdout
