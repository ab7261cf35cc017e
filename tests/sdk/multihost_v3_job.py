"""A user of the SageMaker Python SDK version 3 training on two instances, in local mode.

Run by tests/sdk/test_local_mode_multihost.py under v3's own Python, as

    python multihost_v3_job.py WORKDIR

WORKDIR holds `training/` (CSV files) and `request.json` (the image, the hyperparameters, the
environment). ModelTrainer(compute=Compute(instance_count=2)) trains; this script writes where
the model went to WORKDIR/result.json. Hosting the model is v3's one-host path, which
test_local_mode_v3.py covers.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import host_network_v3
from local_mode_v3_job import record_containers
from sagemaker.train.configs import Compute, InputData
from sagemaker.train.model_trainer import Mode, ModelTrainer


def main(workdir: Path) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"  # the IAM role check is AWS's
    request = json.loads((workdir / "request.json").read_text())
    record_containers(workdir / "containers.txt")
    host_network_v3.no_registry_pulls()
    if host_network_v3.wanted():
        host_network_v3.use_host_network()

    root = Path(tempfile.mkdtemp(prefix="trainer-", dir=workdir))  # the compose project's own name
    ModelTrainer(
        training_image=request["image"],
        training_mode=Mode.LOCAL_CONTAINER,
        compute=Compute(instance_type="local_cpu", instance_count=2),
        hyperparameters=request["hyperparameters"],
        environment=request["environment"],
        input_data_config=[InputData(channel_name="training", data_source=str(workdir / "training"))],
        base_job_name="sagemaker-byo-two-hosts",
        local_container_root=str(root),
    ).train()
    (workdir / "result.json").write_text(json.dumps({
        "model_dir": str(root / "artifacts" / "model"),
        "model_data": str(root / "compressed_artifacts" / "model.tar.gz"),
    }, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
