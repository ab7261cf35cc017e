"""The container's share of the machine: CPUs from affinity and the cgroup quota, memory from the
cgroup limit, over cgroup trees laid out as Docker and SageMaker lay them (v2 and v1)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sagemaker_byo import resources, settings

AFFINITY = len(os.sched_getaffinity(0))
MACHINE = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cgroup_tree(root: Path, proc: str, files: dict[str, str]) -> dict[str, str]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    (root / "proc_self_cgroup").write_text(proc)
    return {resources.CGROUP_ROOT: str(root / "fs"), resources.PROC_SELF_CGROUP: str(root / "proc_self_cgroup")}


def v2(tmp_path: Path, cpu_max: str | None = None, memory_max: str | None = None, path: str = "/") -> dict[str, str]:
    folder = "fs" + ("" if path == "/" else path)
    files = {}
    if cpu_max is not None:
        files[f"{folder}/cpu.max"] = cpu_max
    if memory_max is not None:
        files[f"{folder}/memory.max"] = memory_max
    (tmp_path / "fs").mkdir(parents=True, exist_ok=True)
    return cgroup_tree(tmp_path, f"0::{path}\n", files)


def v1(tmp_path: Path, quota: str, period: str = "100000", memory: str | None = None) -> dict[str, str]:
    # Docker on cgroup v1: the container's own cgroup is mounted at the hierarchy's root, while
    # /proc/self/cgroup names its path on the host (which does not exist inside the container).
    files = {"fs/cpu,cpuacct/cpu.cfs_quota_us": quota, "fs/cpu,cpuacct/cpu.cfs_period_us": period}
    if memory is not None:
        files["fs/memory/memory.limit_in_bytes"] = memory
    proc = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n"
    return cgroup_tree(tmp_path, proc, files)


def test_cpus_without_a_quota_are_the_affinity_mask(tmp_path):
    figure = resources.cpus(v2(tmp_path, cpu_max="max 100000"))
    assert figure.value == AFFINITY
    assert "affinity" in figure.source


@pytest.mark.parametrize(("cpu_max", "expected"), [("100000 100000", 1), ("50000 100000", 1), ("150000 100000", 2)])
def test_a_cgroup_v2_quota_caps_the_cpus_rounded_up(tmp_path, cpu_max, expected):
    figure = resources.cpus(v2(tmp_path, cpu_max=cpu_max))
    assert figure.value == min(expected, AFFINITY)
    if expected < AFFINITY:
        assert "cpu.max" in figure.source


def test_a_cgroup_v1_quota_caps_the_cpus(tmp_path):
    figure = resources.cpus(v1(tmp_path, quota="100000"))
    assert figure.value == 1
    assert "cfs_quota_us" in figure.source


def test_a_cgroup_v1_quota_of_minus_one_is_no_limit(tmp_path):
    assert resources.cpus(v1(tmp_path, quota="-1")).value == AFFINITY


def test_the_smallest_quota_along_the_cgroup_path_wins(tmp_path):
    env = v2(tmp_path, cpu_max="100000 100000", path="/outer/inner")
    (tmp_path / "fs/outer/cpu.max").write_text("300000 100000\n")
    assert resources.cpus(env).value == 1


def test_a_quota_above_the_affinity_mask_changes_nothing(tmp_path):
    figure = resources.cpus(v2(tmp_path, cpu_max=f"{(AFFINITY + 8) * 100000} 100000"))
    assert figure.value == AFFINITY


def test_memory_is_the_cgroup_v2_limit(tmp_path):
    figure = resources.memory(v2(tmp_path, memory_max=str(512 * 1024 * 1024)))
    assert figure.value == 512 * 1024 * 1024
    assert "memory.max" in figure.source


def test_memory_without_a_limit_is_the_machines(tmp_path):
    assert resources.memory(v2(tmp_path, memory_max="max")).value == MACHINE
    assert resources.memory(v1(tmp_path, quota="-1", memory="9223372036854771712")).value == MACHINE


def test_memory_is_the_cgroup_v1_limit(tmp_path):
    figure = resources.memory(v1(tmp_path, quota="-1", memory=str(2 * 1024 ** 3)))
    assert figure.value == 2 * 1024 ** 3
    assert "limit_in_bytes" in figure.source


def test_missing_cgroup_files_mean_no_limit(tmp_path):
    env = {resources.CGROUP_ROOT: str(tmp_path / "none"), resources.PROC_SELF_CGROUP: str(tmp_path / "none")}
    assert resources.cpus(env).value == AFFINITY
    assert resources.memory(env).value == MACHINE


def test_workers_default_to_the_quota_and_threads_fill_the_cpus(tmp_path):
    env = v2(tmp_path, cpu_max="100000 100000")
    config = settings.serving(env)
    assert (config.workers, config.threads) == (1, 1)
    config = settings.serving({**env, "MODEL_SERVER_WORKERS": "3"})
    assert (config.workers, config.threads) == (3, 1)


@pytest.mark.parametrize(("cpus", "workers", "threads"), [(8, 8, 1), (8, 2, 4), (8, 3, 2), (2, 4, 1), (1, 1, 1)])
def test_workers_times_threads_never_exceeds_the_cpus_unless_workers_do(cpus, workers, threads):
    assert resources.threads_per_worker(cpus, workers) == threads


def test_server_environment_sizes_the_native_thread_pools_unless_the_user_did():
    env = settings.server_environment({}, threads=3)
    assert {env[name] for name in resources.THREAD_VARIABLES} == {"3"}
    assert settings.server_environment({"OMP_NUM_THREADS": "7"}, threads=3)["OMP_NUM_THREADS"] == "7"


def test_n_jobs_of_every_step_is_lowered_to_the_workers_share_and_can_be_put_back():
    model = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=3, n_jobs=-1))
    model.fit(np.eye(4), [0, 1, 0, 1])
    replaced = resources.limit_n_jobs(model, 2)
    assert replaced == {"randomforestclassifier__n_jobs": -1}
    assert model[-1].n_jobs == 2
    model.set_params(**replaced)
    assert model[-1].n_jobs == -1


def test_n_jobs_within_the_share_and_objects_without_params_are_left_alone():
    forest = RandomForestClassifier(n_jobs=1)
    assert resources.limit_n_jobs(forest, 2) == {}

    class Plain:
        n_jobs = -1

        def predict(self, rows):
            return rows
    assert resources.limit_n_jobs(Plain(), 2) == {}
