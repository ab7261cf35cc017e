"""The cluster plan from resourceconfig.json: leader, hosts, name look-ups, file shares, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sagemaker_byo import settings
from sagemaker_byo.errors import UserError
from sagemaker_byo.training import cluster
from sagemaker_byo.training.job import load_job


def written(tmp_path: Path, config: dict) -> dict:
    """resourceconfig.json written as SageMaker writes it, and read back the way `train` reads it."""
    folder = tmp_path / "input" / "config"
    folder.mkdir(parents=True)
    (folder / "resourceconfig.json").write_text(json.dumps(config))
    return load_job(settings.Paths(tmp_path)).resource_config


LOCAL_MODE = {"current_host": "algo-2-x7k2q", "hosts": ["algo-1-x7k2q", "algo-2-x7k2q", "algo-3-x7k2q"],
              "network_interface_name": "eth0", "current_instance_type": "local"}


def test_the_leader_is_the_first_host_listed_whatever_its_name(tmp_path):
    plan = cluster.plan(written(tmp_path, LOCAL_MODE))
    assert plan.leader == "algo-1-x7k2q"
    assert not plan.is_leader
    assert plan.rank == 1
    assert plan.several
    assert plan.interface == "eth0"


def test_the_leader_follows_the_order_of_hosts_not_the_name_algo_1(tmp_path):
    plan = cluster.plan(written(tmp_path, {"current_host": "b", "hosts": ["b", "algo-1"]}))
    assert plan.leader == "b" and plan.is_leader


def test_without_resourceconfig_json_the_job_is_one_host(tmp_path):
    plan = cluster.plan(load_job(settings.Paths(tmp_path)).resource_config)
    assert plan.hosts == (cluster.SINGLE_HOST,) and plan.is_leader and not plan.several


@pytest.mark.parametrize(("config", "says"), [
    ({"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]}, "current_host 'algo-3' is not one of hosts"),
    ({"current_host": "algo-1", "hosts": []}, "non-empty list"),
    ({"current_host": "algo-1", "hosts": "algo-1"}, "non-empty list"),
    ({"current_host": "algo-1", "hosts": ["algo-1", ""]}, "non-empty list"),
    ({"current_host": "algo-1", "hosts": ["algo-1", "algo-1"]}, "names a host twice"),
])
def test_a_resourceconfig_that_makes_no_cluster_is_refused_naming_the_problem(tmp_path, config, says):
    with pytest.raises(UserError, match=says):
        cluster.plan(written(tmp_path, config))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def test_a_name_that_resolves_late_is_looked_up_again_with_growing_pauses():
    clock = Clock()
    answers = iter([OSError("Name or service not known")] * 4 + ["198.18.0.2"])

    def lookup(name: str) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert cluster.resolve("algo-2", 60, lookup, clock.sleep, clock) == "198.18.0.2"
    assert clock.pauses == [0.1, 0.2, 0.4, 0.8]


def test_a_name_that_never_resolves_fails_within_the_wait_naming_the_host():
    clock = Clock()

    def lookup(name: str) -> str:
        raise OSError("Name or service not known")

    with pytest.raises(UserError, match=r"host name 'algo-9' did not resolve within 30s"):
        cluster.resolve("algo-9", 30, lookup, clock.sleep, clock)
    assert clock.now == pytest.approx(30)
    assert max(clock.pauses) == cluster.LONGEST_RETRY


SIZES = {"a.csv": 50, "b.csv": 40, "c.csv": 30, "d.csv": 20, "e.csv": 10}


def shares(hosts: int, sizes: dict[str, int] = SIZES) -> list[list[str]]:
    files = [Path(name) for name in sizes]
    return [[p.name for p in cluster.share(files, hosts, rank, lambda p: sizes[p.name])] for rank in range(hosts)]


def test_replicated_files_are_shared_out_by_size_each_file_to_exactly_one_host():
    split = shares(2)
    assert sorted(sum(split, [])) == sorted(SIZES)
    assert split == [["a.csv", "d.csv", "e.csv"], ["b.csv", "c.csv"]]  # 80 and 70 bytes


def test_every_host_computes_the_same_split_whatever_order_it_lists_the_files_in():
    files = [Path(name) for name in SIZES]
    for rank in range(3):
        forward = cluster.share(files, 3, rank, lambda p: SIZES[p.name])
        backward = cluster.share(files[::-1], 3, rank, lambda p: SIZES[p.name])
        assert forward == backward


def test_more_hosts_than_files_leaves_some_hosts_without_a_share():
    split = shares(3, {"a.csv": 5, "b.csv": 5})
    assert split == [["a.csv"], ["b.csv"], []]


@pytest.mark.parametrize(("config", "expected"), [
    ({"training": {"S3DistributionType": "ShardedByS3Key"}}, cluster.SHARDED),
    ({"training": {"S3DistributionType": "FullyReplicated"}}, cluster.REPLICATED),
    ({"training": {}}, cluster.REPLICATED),
    ({}, cluster.REPLICATED),
])
def test_the_distribution_type_defaults_to_fully_replicated(config, expected):
    assert cluster.distribution("training", config) == expected


def test_an_unknown_distribution_type_is_refused():
    with pytest.raises(UserError, match="S3DistributionType 'Shuffled'"):
        cluster.distribution("training", {"training": {"S3DistributionType": "Shuffled"}})


def test_pipe_mode_on_several_hosts_is_refused_before_training_with_the_way_out():
    plan = cluster.plan({"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]})
    with pytest.raises(UserError, match=r"training use Pipe mode.*input_mode='File'"):
        cluster.check_input_modes(plan, {"training": {"TrainingInputMode": "Pipe"}})


def test_pipe_mode_on_one_host_is_left_alone():
    cluster.check_input_modes(cluster.plan({}), {"training": {"TrainingInputMode": "Pipe"}})
