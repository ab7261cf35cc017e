"""The real `algo/train` under a real cgroup memory limit: a fit that grows past the limit is killed
by the kernel (SIGKILL, which no handler sees), and the job still leaves a failure file naming the
limit and exits non-zero. The cgroup is made here (v1 or v2, as the machine has it; we are root)
and removed after the job.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from forks import GREEDY, make_fork
from support import host_env, require

LIMIT_MIB = 400  # the job's imports (pandas, scikit-learn) take about half of it
CGROUP = Path("/sys/fs/cgroup")



def _own_cgroup(controller: str) -> tuple[int, Path] | None:
    """(version, folder) of this process's cgroup for `controller`, as the kernel mounts it here."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") and (CGROUP / controller).is_dir():
            return 1, CGROUP / controller / path.lstrip("/")
        if hierarchy == "0" and not controllers and controller in _read(CGROUP / "cgroup.controllers").split():
            return 2, CGROUP  # v2: a child of the root, whose subtree may enable the controller
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@pytest.fixture
def memory_cgroup() -> Iterator[tuple[Path, str]]:
    """A cgroup of its own limited to LIMIT_MIB; (its cgroup.procs, the limit file's name)."""
    found = _own_cgroup("memory")
    require(found is not None, "no cgroup memory controller to limit a process with")
    version, parent = found
    folder = parent / f"byo-test-{uuid.uuid4().hex[:8]}"
    limit_file = "memory.limit_in_bytes" if version == 1 else "memory.max"
    try:
        if version == 2 and "memory" not in _read(parent / "cgroup.subtree_control").split():
            (parent / "cgroup.subtree_control").write_text("+memory")
        folder.mkdir()
        (folder / limit_file).write_text(str(LIMIT_MIB * 2**20))
        if version == 2:
            (folder / "memory.swap.max").write_text("0")
    except OSError as error:
        folder.exists() and folder.rmdir()
        require(False, f"cannot make a memory cgroup under {parent}: {error}")
    try:
        yield folder / "cgroup.procs", f"cgroup v{version} {limit_file}"
    finally:
        deadline = time.monotonic() + 10
        while folder.exists():  # the kernel lets go of a cgroup a moment after its last process
            try:
                folder.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def test_a_fit_killed_for_memory_leaves_a_failure_file_naming_the_limit(tmp_path, base_dir, memory_cgroup):
    procs, source = memory_cgroup
    fork = make_fork(tmp_path / "algo", GREEDY)
    (base_dir / "input/config/hyperparameters.json").write_text(json.dumps({"algorithm": "greedy"}))
    # The job's first process joins the cgroup, then becomes `train`: its process and the one it
    # forks for the job are both under the limit, as in a container.
    result = subprocess.run(["sh", "-c", 'echo $$ > "$1" && exec "$2"', "sh", str(procs), str(fork / "train")],
                            env=host_env(base_dir), capture_output=True, text=True, timeout=180)
    assert result.returncode == 137, result.stderr[-3000:]
    failure = (base_dir / "output" / "failure").read_text()
    assert failure.startswith(f"UserError: the training process was killed for using more memory than the "
                              f"container's limit of {LIMIT_MIB} MiB ({source})"), failure
    assert "instance type with more memory" in failure
    assert failure.count("\n") == 1
    assert [p.name for p in (base_dir / "model").iterdir()] == []
    assert "killed for using more memory" in result.stderr  # the log says it too
