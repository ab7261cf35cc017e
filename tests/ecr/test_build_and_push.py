"""build_and_push.sh end to end without AWS: moto's server stands in for STS and ECR (the AWS CLI
reaches it through AWS_ENDPOINT_URL), Debian's docker-registry on loopback stands in for the
account's registry (ECR_REGISTRY), and the image pushed is pulled back and serves.

The AWS CLI and moto live in the AWS tools' virtual environment (AWS_VENV, default .venv-aws);
every request the CLI makes that is not to 127.0.0.1 goes to a closed loopback proxy, and the
Docker credentials `docker login` writes go to a temporary DOCKER_CONFIG.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import joblib
import numpy as np
import pytest
import requests

from support import FIXTURE_FORK, PAYLOAD, REPO, free_port, require, wait_until

IMAGE = os.environ.get("TEST_IMAGE", "sagemaker-byo:test")
AWS_VENV = Path(os.environ.get("AWS_VENV", REPO / ".venv-aws"))
SCRIPT = REPO / "build_and_push.sh"
BASH = shutil.which("bash") or "/bin/bash"
REPOSITORY = "sagemaker-byo-ecr-test"
ACCOUNT = "123456789012"  # moto's account
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def aws_tool(name: str) -> Path:
    tool = AWS_VENV / "bin" / name
    require(tool.exists(), f"{tool} is missing: the AWS tools' virtual environment is not installed "
                           f"(python3 -m venv .venv-aws && .venv-aws/bin/pip install -r requirements-aws.txt)")
    return tool


def aws_env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    """Dummy credentials, no user AWS or Docker configuration, no way out but loopback."""
    script_settings = ("AWS_", "ECR_", "PLATFORM", "MULTI_ARCH", "BASE", "SCAN_ON_PUSH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(script_settings)}
    (tmp_path / "docker-config").mkdir(exist_ok=True)
    env.update({
        "PATH": f"{AWS_VENV / 'bin'}:{os.environ['PATH']}",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": endpoint,
        "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
    })
    env.update(extra)
    return env


def run_script(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([BASH, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


class Service:
    """A server of ours on a free loopback port, stopped at the end of the test module."""

    def __init__(self, command: list[str], port: int, ready_url: str, log_path: Path):
        self.port, self.ready_url = port, ready_url
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"{command[0]} exited with {self.process.returncode}:\n{self.log()}")
            try:
                return requests.get(ready_url, timeout=2).status_code == 200
            except requests.ConnectionError:
                return False
        wait_until(ready, 60, interval=0.1, what=f"{command[0]} on port {port}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """moto's server: STS and ECR (and every other service) at one loopback endpoint."""
    server = aws_tool("moto_server")
    port = free_port()
    service = Service([str(server), "-H", "127.0.0.1", "-p", str(port)], port,
                      f"http://127.0.0.1:{port}/moto-api/", tmp_path_factory.mktemp("moto") / "moto.log")
    yield f"http://127.0.0.1:{port}"
    service.stop()


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Debian's docker-registry on loopback (Docker pushes to 127.0.0.0/8 over plain HTTP)."""
    binary = shutil.which("docker-registry")
    require(binary is not None, "docker-registry is not installed (apt-get install docker-registry)")
    folder = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = folder / "config.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(folder / "storage")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    service = Service([binary, "serve", str(config)], port, f"http://127.0.0.1:{port}/v2/", folder / "registry.log")
    yield f"127.0.0.1:{port}"
    service.stop()


@pytest.fixture(scope="module")
def built_image() -> str:
    """The image, built with the host network, so the script's own build finds every layer cached."""
    require(docker_available(), "no Docker engine answers (`docker info` failed)")
    build = subprocess.run(["docker", "build", "--network", "host", "--platform", "linux/amd64", "-t", IMAGE,
                            str(REPO)], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return IMAGE


@pytest.fixture(scope="module")
def pushed(built_image, moto, registry, tmp_path_factory):
    """build_and_push.sh run once against the stand-ins; its result and the names it pushed."""
    aws_tool("aws")
    tmp_path = tmp_path_factory.mktemp("push")
    tag = f"test-{uuid.uuid4().hex[:8]}"
    env = aws_env(tmp_path, moto, ECR_REGISTRY=registry)
    result = run_script(["--platform", "linux/amd64", REPOSITORY, tag], env)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    names = [f"{registry}/{REPOSITORY}:{tag}"] + ([f"{registry}/{REPOSITORY}:{commit}"] if commit else [])
    yield {"result": result, "env": env, "tag": tag, "commit": commit, "names": names, "registry": registry}
    for name in names:
        docker("rmi", name, check=False)


def manifest_digest(registry: str, reference: str, repository: str = REPOSITORY) -> str:
    answer = requests.head(f"http://{registry}/v2/{repository}/manifests/{reference}",
                           headers={"Accept": DOCKER_MANIFEST}, timeout=10)
    assert answer.status_code == 200, (repository, reference, answer.status_code)
    return answer.headers["Docker-Content-Digest"]


def test_push_creates_the_ecr_repository_and_pushes_tag_and_commit(pushed, moto):
    result = pushed["result"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"creating ECR repository {REPOSITORY} in us-east-1" in result.stdout
    assert "Login Succeeded" in result.stdout
    described = subprocess.run([str(aws_tool("aws")), "ecr", "describe-repositories", "--repository-names",
                                REPOSITORY, "--output", "json"], env=pushed["env"], capture_output=True, text=True,
                               timeout=60)
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["repositories"][0]["registryId"] == ACCOUNT

    tags = requests.get(f"http://{pushed['registry']}/v2/{REPOSITORY}/tags/list", timeout=10).json()["tags"]
    assert pushed["tag"] in tags
    assert pushed["commit"] and pushed["commit"] in tags
    # The commit tag is the same image, not a second build.
    assert manifest_digest(pushed["registry"], pushed["tag"]) == manifest_digest(pushed["registry"], pushed["commit"])


def test_pushed_image_pulls_back_by_tag_and_by_digest_and_serves(pushed, trained_dir, tmp_path):
    assert pushed["result"].returncode == 0, pushed["result"].stderr[-3000:]
    registry, by_tag = pushed["registry"], pushed["names"][0]
    by_digest = f"{registry}/{REPOSITORY}@{manifest_digest(registry, pushed['tag'])}"
    for name in pushed["names"]:
        docker("rmi", name, check=False)  # pull from the registry, not from the local tag
    docker("pull", by_tag, timeout=300)
    docker("pull", by_digest, timeout=300)
    assert docker("inspect", "--format", "{{.Os}}/{{.Architecture}}", by_digest).stdout.strip() == "linux/amd64"

    port = free_port()
    name = f"byo-ecr-test-{uuid.uuid4().hex[:10]}"
    # The pushed image is the fork's; it serves the tests' model with the tests' hooks, whatever the
    # fork's predictor.py answers.
    docker("run", "-d", "--network", "host", "--name", name, "-e", f"SAGEMAKER_BIND_TO_PORT={port}",
           "-v", f"{trained_dir / 'model'}:/opt/ml/model:ro",
           "-v", f"{FIXTURE_FORK / 'predictor.py'}:/opt/program/predictor.py:ro", by_digest, "serve")
    try:
        url = f"http://127.0.0.1:{port}"

        def ready():
            assert docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true", \
                docker("logs", name, check=False).stderr
            try:
                return requests.get(f"{url}/ping", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False
        wait_until(ready, 60, interval=0.1, what="/ping 200 from the pulled image")
        answer = requests.post(f"{url}/invocations", data=PAYLOAD.read_bytes(),
                               headers={"Content-Type": "text/csv"}, timeout=30)
        assert answer.status_code == 200, answer.text
        model = joblib.load(trained_dir / "model" / "model.joblib")
        assert answer.text.splitlines() == list(model.predict(np.loadtxt(PAYLOAD, delimiter=",", ndmin=2)))
    finally:
        docker("rm", "-f", name, check=False)
        docker("rmi", by_digest, check=False)


def pushed_labels(registry: str, reference: str, repository: str = REPOSITORY) -> dict[str, str]:
    """The labels of the image the registry holds (its config blob), whatever is left locally."""
    manifest = requests.get(f"http://{registry}/v2/{repository}/manifests/{reference}",
                            headers={"Accept": DOCKER_MANIFEST}, timeout=10)
    assert manifest.status_code == 200, (reference, manifest.status_code)
    config = requests.get(f"http://{registry}/v2/{repository}/blobs/{manifest.json()['config']['digest']}",
                          timeout=30)
    assert config.status_code == 200, config.status_code
    return config.json()["config"]["Labels"]


def local_digest(repository: str, tag: str) -> str:
    """What the script records for a base: the digest its repository gave it, else its image id
    (CI's base is built locally, and has no registry digest)."""
    found = json.loads(docker("image", "inspect", "--format", "{{json .}}", f"{repository}:{tag}").stdout)
    given = [entry.split("@")[1] for entry in found["RepoDigests"] or [] if entry.split("@")[0] == repository]
    return (given or [found["Id"]])[-1]


def test_pushed_image_is_labelled_with_its_base_and_its_commit(pushed):
    assert pushed["result"].returncode == 0, pushed["result"].stderr[-3000:]
    revision = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    labels = pushed_labels(pushed["registry"], pushed["tag"])
    assert labels["org.opencontainers.image.base.name"] == "debian:bookworm-slim"
    assert labels["org.opencontainers.image.base.digest"] == local_digest("debian", "bookworm-slim")
    assert labels["org.opencontainers.image.revision"] == revision
    assert revision.startswith(pushed["commit"])
    # The capability labels of the Dockerfile stay beside them.
    assert labels["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"


@pytest.fixture(scope="module")
def served_base(pushed):
    """The base pushed to the local registry, as a registry serves a base: its tag and its digest.
    The local base keeps no name or digest of this registry's afterwards (other tests read them)."""
    registry = pushed["registry"]
    served = f"{registry}/debian:bookworm-slim"
    docker("tag", "debian:bookworm-slim", served)
    digest = ""
    try:
        docker("push", served, timeout=300)
        digest = manifest_digest(registry, "bookworm-slim", repository="debian")
        yield served, digest
    finally:
        docker("rmi", served, *([f"{registry}/debian@{digest}"] if digest else []), check=False)


def push_on_base(pushed, base: str) -> tuple[dict[str, str], list[str]]:
    """build_and_push.sh --base BASE; the pushed image's labels and its layers."""
    assert pushed["result"].returncode == 0, pushed["result"].stderr[-3000:]
    tag = f"test-{uuid.uuid4().hex[:8]}"
    name = f"{pushed['registry']}/{REPOSITORY}:{tag}"
    try:
        result = run_script(["--base", base, REPOSITORY, tag], pushed["env"], timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        layers = json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", name).stdout)
        return pushed_labels(pushed["registry"], tag), layers
    finally:
        docker("rmi", name, check=False)


def base_layers(name: str) -> list[str]:
    return json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", name).stdout)


def test_a_base_pinned_by_digest_is_built_on_and_recorded(pushed, served_base):
    """--base NAME@sha256:...: the build takes the base by that digest, and the labels record it."""
    served, digest = served_base
    pinned = f"{served.rsplit(':', 1)[0]}@{digest}"
    labels, layers = push_on_base(pushed, pinned)
    assert labels["org.opencontainers.image.base.name"] == pinned
    assert labels["org.opencontainers.image.base.digest"] == digest
    assert layers[:len(base_layers(pinned))] == base_layers(pinned)


def test_a_base_named_by_tag_is_recorded_with_the_digest_its_registry_gave_it(pushed, served_base):
    served, digest = served_base
    labels, layers = push_on_base(pushed, served)
    assert labels["org.opencontainers.image.base.name"] == served
    assert labels["org.opencontainers.image.base.digest"] == digest
    assert layers[:len(base_layers(served))] == base_layers(served)


def test_a_base_that_cannot_be_had_is_named_before_anything_is_created(tmp_path):
    require(docker_available(), "no Docker engine answers (`docker info` failed)")
    env = aws_env(tmp_path, "http://127.0.0.1:9", BASE="127.0.0.1:9/no-such-base:1")
    result = run_script([REPOSITORY], env, timeout=120)
    assert result.returncode != 0
    assert "the base image 127.0.0.1:9/no-such-base:1 is not here and could not be pulled" in result.stderr
    assert "creating ECR repository" not in result.stdout



# Vulnerability scanning: --scan-on-push (ECR's basic scanning) on a new and on an existing
# repository, and the enhanced-scanning commands docs/deploying.md gives, against moto's ECR.

def aws_json(env: dict[str, str], *args: str) -> dict:
    result = subprocess.run([str(aws_tool("aws")), *args, "--output", "json"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout or "{}")


def scans_on_push(env: dict[str, str], repository: str) -> bool:
    found = aws_json(env, "ecr", "describe-repositories", "--repository-names", repository)
    return found["repositories"][0]["imageScanningConfiguration"]["scanOnPush"]


def push_to(pushed, repository: str, *args: str, **extra: str) -> subprocess.CompletedProcess:
    """build_and_push.sh ARGS REPOSITORY TAG against the stand-ins; its pushed tags removed afterwards."""
    assert pushed["result"].returncode == 0, pushed["result"].stderr[-3000:]
    tag = f"test-{uuid.uuid4().hex[:8]}"
    try:
        result = run_script([*args, repository, tag], {**pushed["env"], **extra}, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result
    finally:
        for name in (tag, pushed["commit"]):
            docker("rmi", f"{pushed['registry']}/{repository}:{name}", check=False)


def test_a_push_without_scan_on_push_leaves_basic_scanning_off(pushed):
    assert pushed["result"].returncode == 0, pushed["result"].stderr[-3000:]
    assert scans_on_push(pushed["env"], REPOSITORY) is False
    assert "scanOnPush" not in pushed["result"].stdout


def test_scan_on_push_creates_the_repository_with_basic_scanning_on(pushed):
    repository = f"{REPOSITORY}-scan-{uuid.uuid4().hex[:6]}"
    result = push_to(pushed, repository, "--scan-on-push")
    assert f"creating ECR repository {repository}" in result.stdout
    assert f"ECR repository {repository} scans every image pushed (scanOnPush=true)" in result.stdout
    assert scans_on_push(pushed["env"], repository) is True


def test_scan_on_push_turns_basic_scanning_on_for_an_existing_repository(pushed):
    repository = f"{REPOSITORY}-existing-{uuid.uuid4().hex[:6]}"
    aws_json(pushed["env"], "ecr", "create-repository", "--repository-name", repository)
    assert scans_on_push(pushed["env"], repository) is False
    result = push_to(pushed, repository, SCAN_ON_PUSH="1")  # the variable, as the option
    assert "creating ECR repository" not in result.stdout
    assert scans_on_push(pushed["env"], repository) is True


DEPLOYING = REPO / "docs" / "deploying.md"


def documented_commands(section: str) -> list[str]:
    """The `aws ...` commands of a section's sh blocks, continuation lines joined."""
    text = DEPLOYING.read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    return [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()
            if line.strip().startswith("aws ")]


def test_the_documented_enhanced_scanning_commands_turn_on_inspector_for_the_repository(pushed, moto):
    commands = documented_commands("The SBOM and vulnerability scanning")
    wanted = ("aws inspector2 enable ", "aws ecr put-registry-scanning-configuration ")
    runnable = [command for command in commands if command.startswith(wanted)]
    assert len(runnable) == 2, commands
    for command in runnable:
        if command.startswith("aws inspector2 enable "):
            # AWS defaults the accounts to the caller's; moto's Enable needs them named.
            command += f" --account-ids {ACCOUNT}"
        result = subprocess.run([BASH, "-c", command], env=pushed["env"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (command, result.stderr)
    found = aws_json(pushed["env"], "ecr", "get-registry-scanning-configuration")["scanningConfiguration"]
    assert found["scanType"] == "ENHANCED"
    assert {"filter": "sagemaker-byo", "filterType": "WILDCARD"} in found["rules"][0]["repositoryFilters"]
    status = aws_json(pushed["env"], "inspector2", "batch-get-account-status", "--account-ids", ACCOUNT)
    assert status["accounts"][0]["resourceState"]["ecr"]["status"] == "ENABLED"


# Failures before anything is created: each a clear message and a non-zero exit.

def tool_dir(tmp_path: Path, *, aws: bool = True, docker_cli: str | None = "real") -> Path:
    """A PATH of only the tools the script needs, with `aws` or `docker` left out, or a `docker`
    without buildx."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "mktemp", "rm", "cat", "git"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    if aws:
        aws_cli = AWS_VENV / "bin" / "aws"
        if aws_cli.exists():
            (bin_dir / "aws").symlink_to(aws_cli)
        else:  # enough for the checks that stop before any AWS call
            (bin_dir / "aws").write_text("#!/bin/sh\nexit 1\n")
            (bin_dir / "aws").chmod(0o755)
    real_docker = shutil.which("docker")
    if docker_cli == "real" and real_docker:
        (bin_dir / "docker").symlink_to(real_docker)
    elif docker_cli == "no-buildx" and real_docker:
        (bin_dir / "docker").write_text(
            "#!/bin/sh\n"
            "if [ \"$1\" = buildx ]; then echo \"docker: 'buildx' is not a docker command.\" >&2; exit 1; fi\n"
            f"exec {real_docker} \"$@\"\n")
        (bin_dir / "docker").chmod(0o755)
    return bin_dir


def test_missing_aws_cli_is_named(tmp_path):
    env = aws_env(tmp_path, "http://127.0.0.1:9", PATH=str(tool_dir(tmp_path, aws=False)))
    result = run_script([REPOSITORY], env, timeout=60)
    assert result.returncode != 0
    assert "the AWS CLI is not installed" in result.stderr


def test_missing_docker_is_named(tmp_path):
    env = aws_env(tmp_path, "http://127.0.0.1:9", PATH=str(tool_dir(tmp_path, docker_cli=None)))
    result = run_script([REPOSITORY], env, timeout=60)
    assert result.returncode != 0
    assert "docker is not installed" in result.stderr


def test_multi_arch_without_buildx_says_so(tmp_path):
    require(docker_available(), "no Docker engine answers (`docker info` failed)")
    env = aws_env(tmp_path, "http://127.0.0.1:9", PATH=str(tool_dir(tmp_path, docker_cli="no-buildx")))
    for args in (["--multi-arch", REPOSITORY], [REPOSITORY]):
        result = run_script(args, {**env, "MULTI_ARCH": "1"} if args == [REPOSITORY] else env, timeout=60)
        assert result.returncode != 0
        assert "needs docker buildx, which this Docker does not have" in result.stderr


def test_missing_region_is_an_error_not_a_default(tmp_path):
    require(docker_available(), "no Docker engine answers (`docker info` failed)")
    aws_tool("aws")
    env = aws_env(tmp_path, "http://127.0.0.1:9")
    del env["AWS_DEFAULT_REGION"]
    result = run_script([REPOSITORY], env, timeout=60)
    assert result.returncode != 0
    assert "no AWS region" in result.stderr and "AWS_REGION" in result.stderr


def test_missing_credentials_are_named(tmp_path):
    require(docker_available(), "no Docker engine answers (`docker info` failed)")
    aws_tool("aws")
    env = aws_env(tmp_path, "http://127.0.0.1:9")
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    result = run_script([REPOSITORY], env, timeout=60)
    assert result.returncode != 0
    assert "no usable AWS credentials" in result.stderr
    assert "Unable to locate credentials" in result.stderr  # the CLI's own reason, passed on
