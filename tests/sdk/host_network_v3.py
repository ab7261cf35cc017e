"""host_network.py for the SageMaker Python SDK version 3, whose local mode lives in other modules.

Imported by `local_mode_v3_job.py`, under v3's Python. v3 runs local containers three ways:
ModelTrainer's training job (sagemaker.train.local) and the batch transform's serving container
(sagemaker.core.local, a port of v2's local mode) through docker compose files on the bridge
network `sagemaker-local`; ModelBuilder's endpoint through the Docker API, already on the host
network on Linux. Where the engine has no bridge (SM_LOCAL_HOST_NETWORK=1), `use_host_network`
rewrites both kinds of compose file as host_network.py does for v2: no networks and no published
ports, `network_mode: host`, and the serving port handed to the container as
SAGEMAKER_BIND_TO_PORT, and every host's name mapped to 127.0.0.1 (`extra_hosts`, for a job of
several hosts). Every module that asks where the Docker host is gets 127.0.0.1.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path

import docker.errors
import docker.models.images
import urllib3
import yaml
from sagemaker.core.common_utils import get_config_value
from sagemaker.core.local import entities, image, local_session
from sagemaker.core.local import utils as local_utils
from sagemaker.train.local import local_container

DEFAULT_SERVING_PORT = 8080  # the SDK's own default for local.serving_port
LOOPBACK = "127.0.0.1"

log = logging.getLogger("host_network_v3")


def wanted() -> bool:
    return os.environ.get("SM_LOCAL_HOST_NETWORK") == "1"


def _on_host_network(content: dict, port: int | None) -> dict:
    content.pop("networks", None)
    names = [f"{name}:{LOOPBACK}" for name in content["services"]]  # a job's hosts find each other by name
    for service in content["services"].values():
        service.pop("networks", None)
        service.pop("ports", None)
        service["network_mode"] = "host"
        service["extra_hosts"] = [*service.get("extra_hosts", []), *names]
        if port is not None:
            service["environment"] = [*service.get("environment", []), f"SAGEMAKER_BIND_TO_PORT={port}"]
    return content


def _serving_port(container) -> int:
    return get_config_value("local.serving_port", container.sagemaker_session.config) or DEFAULT_SERVING_PORT


def _rewrite(path: Path, content: dict) -> None:
    path.write_text(yaml.dump(content, default_flow_style=False))
    log.info("compose file rewritten for the host network: %s", path)


def use_host_network() -> None:
    """Rewrite every compose file v3's local mode generates for the host network; talk to 127.0.0.1."""
    serving = image._SageMakerContainer._generate_compose_file

    @functools.wraps(serving)
    def generate_serving(self, command, additional_volumes=None, additional_env_vars=None):
        content = _on_host_network(serving(self, command, additional_volumes, additional_env_vars),
                                   _serving_port(self) if command == "serve" else None)
        _rewrite(Path(self.container_root) / image.DOCKER_COMPOSE_FILENAME, content)
        return content

    training = local_container._LocalContainer._generate_compose_file

    @functools.wraps(training)
    def generate_training(self, environment, volumes):
        content = _on_host_network(training(self, environment, volumes), None)
        _rewrite(Path(self.container_root) / local_container.DOCKER_COMPOSE_FILENAME, content)
        return content

    image._SageMakerContainer._generate_compose_file = generate_serving
    local_container._LocalContainer._generate_compose_file = generate_training
    # Each module imported the function by name, so each name is replaced.
    loopback = lambda: LOOPBACK  # noqa: E731
    entities.get_docker_host = local_session.get_docker_host = local_utils.get_docker_host = loopback
    _replace_in_serve_modules(loopback)


def _replace_in_serve_modules(loopback) -> None:
    """ModelBuilder's model servers import get_docker_host by name too (it answers `localhost`)."""
    import sys

    for name, module in list(sys.modules.items()):
        if name.startswith("sagemaker.serve.") and getattr(module, "get_docker_host", None) is not None:
            module.get_docker_host = loopback


def no_registry_pulls() -> None:
    """ModelBuilder.deploy_local() pulls its image from the registry every time, even one that
    exists only on this engine (v2 and ModelTrainer pull only a missing ECR image). Here a pull of
    an image the engine has answers with that image, as a pull from a registry holding the same
    image would; any other pull fails at once. No registry is ever asked."""

    def pull(self, repository, tag=None, **kwargs):
        name = repository if tag is None or ":" in repository.rsplit("/", 1)[-1] else f"{repository}:{tag}"
        try:
            found = self.get(name)
        except docker.errors.ImageNotFound as error:
            raise docker.errors.NotFound(f"{name} is not on this Docker engine, and this test pulls "
                                         f"from no registry") from error
        log.info("pull of %s answered with the local image %s (no registry asked)", name, found.short_id)
        return found

    docker.models.images.ImageCollection.pull = pull


def poll_readiness_quickly(timeout: float = 120, interval: float = 0.2) -> None:
    """Poll /ping every `interval` seconds instead of the SDK's every 5 seconds; same contract."""

    def wait_for_serving_container(serving_port, timeout=timeout):
        url = f"http://{entities.get_docker_host()}:{serving_port}/ping"
        http = urllib3.PoolManager(retries=False, timeout=2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if http.request("GET", url).status == 200:
                    return
            except urllib3.exceptions.HTTPError:
                pass  # not listening yet
            time.sleep(interval)
        raise RuntimeError(f"Giving up, endpoint didn't launch correctly: no 200 from {url} in {timeout}s")

    entities._wait_for_serving_container = wait_for_serving_container
