"""The SDK's local mode on a Docker engine without a bridge network, and a record of its containers.

Imported by `local_mode_job.py`, under the SageMaker SDK's Python. Local mode puts its containers
on a bridge network, `sagemaker-local`, and publishes the serving port. Where the engine has no
bridge (SM_LOCAL_HOST_NETWORK=1, as CI sets), `use_host_network` rewrites each compose file the
SDK generates: no networks and no published ports, `network_mode: host`, and the serving port
handed to the container as SAGEMAKER_BIND_TO_PORT, which the image listens on, and every host's
name mapped to 127.0.0.1 (`extra_hosts`: a job of several hosts finds its hosts by name). The SDK
is then pointed at 127.0.0.1 (`localhost` may resolve to ::1 first). Elsewhere the SDK runs
unchanged.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path

import urllib3
import yaml
from sagemaker.local import entities, image, local_session
from sagemaker.utils import get_config_value

DEFAULT_SERVING_PORT = 8080  # the SDK's own default for local.serving_port
LOOPBACK = "127.0.0.1"

log = logging.getLogger("host_network")


def wanted() -> bool:
    return os.environ.get("SM_LOCAL_HOST_NETWORK") == "1"


def _serving_port(container) -> int:
    return get_config_value("local.serving_port", container.sagemaker_session.config) or DEFAULT_SERVING_PORT


def _on_host_network(content: dict, port: int) -> dict:
    """On the bridge each host's name (`algo-1-xxxxx`, the service's name) is its alias; on the
    host network every container shares the host's loopback, so every name maps to 127.0.0.1
    (a job of several hosts: the leader's scheduler listens on its one fixed port there, and
    every other port the hosts open, Dask's and LightGBM's, is a free one the system picks)."""
    content.pop("networks", None)
    names = [f"{name}:{LOOPBACK}" for name in content["services"]]
    for service in content["services"].values():
        service.pop("networks", None)
        service.pop("ports", None)
        service["network_mode"] = "host"
        service["extra_hosts"] = [*service.get("extra_hosts", []), *names]
        service["environment"] = [*service.get("environment", []), f"SAGEMAKER_BIND_TO_PORT={port}"]
    return content


def use_host_network() -> None:
    """Rewrite every compose file local mode generates for the host network, and talk to 127.0.0.1."""
    original = image._SageMakerContainer._generate_compose_file

    @functools.wraps(original)
    def generate(self, command, additional_volumes=None, additional_env_vars=None):
        content = _on_host_network(original(self, command, additional_volumes, additional_env_vars),
                                   _serving_port(self))
        path = Path(self.container_root) / image.DOCKER_COMPOSE_FILENAME
        path.write_text(yaml.dump(content, default_flow_style=False))
        log.info("compose file rewritten for the host network: %s, port %d", path, _serving_port(self))
        return content

    image._SageMakerContainer._generate_compose_file = generate
    # Both modules imported the function by name, so both names are replaced.
    entities.get_docker_host = local_session.get_docker_host = lambda: LOOPBACK


def record_containers(names_file: Path) -> None:
    """Append the name of every container local mode creates to `names_file`, so the test can
    remove them even if this process dies (local mode stops its containers but never removes them)."""
    original = image._SageMakerContainer._generate_compose_file

    @functools.wraps(original)
    def generate(self, command, additional_volumes=None, additional_env_vars=None):
        content = original(self, command, additional_volumes, additional_env_vars)
        with names_file.open("a") as names:
            for service in content["services"].values():
                names.write(f"{command} {service['container_name']}\n")
        return content

    image._SageMakerContainer._generate_compose_file = generate


def poll_readiness_quickly(timeout: float = 120, interval: float = 0.2) -> None:
    """Poll /ping every `interval` seconds instead of the SDK's every 5 seconds; same contract."""

    def wait_for_serving_container(serving_port):
        url = f"http://{local_session.get_docker_host()}:{serving_port}/ping"
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
