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


# -- heterogeneous clusters: instance_groups ------------------------------------------------------

JOB_DIR = Path(__file__).parents[2] / "fixture_fork" / "job"


def heterogeneous(current: str, group: str, kind: str) -> dict:
    """A heterogeneous job's resourceconfig.json as SageMaker writes it: `hosts` sorted, every
    group's hosts in no particular order."""
    return {
        "current_host": current,
        "current_instance_type": kind,
        "current_group_name": group,
        "hosts": ["algo-1", "algo-2", "algo-3", "algo-4", "algo-5"],
        "instance_groups": [
            {"instance_group_name": "train", "instance_type": "ml.m5.2xlarge", "hosts": ["algo-4", "algo-2"]},
            {"instance_group_name": "data", "instance_type": "ml.c5.xlarge", "hosts": ["algo-5", "algo-3", "algo-1"]},
        ],
        "network_interface_name": "eth0",
    }


def test_the_first_group_listed_trains_by_default_its_hosts_in_sagemakers_order(tmp_path):
    plan = cluster.plan(written(tmp_path, heterogeneous("algo-4", "train", "ml.m5.2xlarge")))
    assert plan.hosts == ("algo-2", "algo-4")
    assert plan.idle_reason is None
    assert plan.group == "train"
    assert plan.leader == "algo-2" and plan.rank == 1 and plan.several


def test_a_host_of_another_group_does_not_train_and_says_why(tmp_path):
    plan = cluster.plan(written(tmp_path, heterogeneous("algo-1", "data", "ml.c5.xlarge")))
    assert plan.hosts == ("algo-2", "algo-4")
    assert plan.idle_reason == (
        "host algo-1 is in instance group 'data' (ml.c5.xlarge); the job trains on instance group 'train' "
        "(algo-2, algo-4), the first group listed; hyperparameter instance_group names another: "
        "this host does not train")
    assert not plan.is_leader


@pytest.mark.parametrize(("current", "trains"), [("algo-1", True), ("algo-3", True), ("algo-5", True),
                                                 ("algo-2", False), ("algo-4", False)])
def test_the_instance_group_hyperparameter_chooses_the_group_that_trains(tmp_path, current, trains):
    own = "data" if trains else "train"
    plan = cluster.plan(written(tmp_path, heterogeneous(current, own, "ml.c5.xlarge")), group="data")
    assert plan.hosts == ("algo-1", "algo-3", "algo-5")
    assert plan.leader == "algo-1"
    assert (plan.idle_reason is None) == trains
    if not trains:
        assert "trains on instance group 'data' (algo-1, algo-3, algo-5), named by hyperparameter instance_group" \
            in plan.idle_reason


def test_a_group_of_one_host_trains_on_that_host_alone(tmp_path):
    config = heterogeneous("algo-3", "data", "ml.c5.xlarge")
    config["instance_groups"] = [{"instance_group_name": "solo", "instance_type": "ml.m5.xlarge", "hosts": ["algo-3"]},
                                 {"instance_group_name": "rest", "instance_type": "ml.c5.xlarge",
                                  "hosts": ["algo-2", "algo-5", "algo-1", "algo-4"]}]
    del config["current_group_name"]  # older writers leave it out: membership decides
    plan = cluster.plan(written(tmp_path, config))
    assert plan.hosts == ("algo-3",) and plan.is_leader and not plan.several and plan.idle_reason is None


def test_a_plain_job_as_sagemaker_writes_it_is_one_group_of_every_host(tmp_path):
    config = json.loads((JOB_DIR / "input" / "config" / "resourceconfig.json").read_text())
    assert config["instance_groups"][0]["instance_group_name"] == "homogeneousCluster"
    plan = cluster.plan(written(tmp_path, config))
    assert plan.hosts == ("algo-1",) and plan.is_leader and plan.idle_reason is None
    assert cluster.plan(config, group="homogeneousCluster") == plan


def test_without_instance_groups_the_group_hyperparameter_names_nothing(tmp_path):
    assert cluster.plan(written(tmp_path, LOCAL_MODE), group="train") == cluster.plan(LOCAL_MODE)


def test_a_group_the_job_does_not_have_is_refused_naming_its_groups(tmp_path):
    with pytest.raises(UserError, match="hyperparameter instance_group='gpu' names no instance group of this job; "
                                        "its groups are 'train', 'data'"):
        cluster.plan(written(tmp_path, heterogeneous("algo-1", "data", "ml.c5.xlarge")), group="gpu")


def with_groups(groups: list, current_group: str = "train") -> dict:
    return {**heterogeneous("algo-1", current_group, "ml.m5.xlarge"), "instance_groups": groups}


@pytest.mark.parametrize(("config", "says"), [
    (with_groups("train"), "'instance_groups' must be a list of objects"),
    (with_groups([{"instance_group_name": "train"}]), "one entry is"),
    (with_groups([{"instance_group_name": "train", "hosts": ["algo-1", "algo-2", "algo-3"]},
                  {"instance_group_name": "train", "hosts": ["algo-4", "algo-5"]}]), "'train' is listed twice"),
    (with_groups([{"instance_group_name": "train", "hosts": ["algo-1", "algo-2", "algo-3"]},
                  {"instance_group_name": "data", "hosts": ["algo-3", "algo-4", "algo-5"]}]),
     "host 'algo-3' is in instance groups 'train' and 'data'"),
    (with_groups([{"instance_group_name": "train", "hosts": ["algo-1", "algo-9"]},
                  {"instance_group_name": "data", "hosts": ["algo-2", "algo-3", "algo-4", "algo-5"]}]),
     "lists 'algo-9', which is not one of hosts"),
    (with_groups([{"instance_group_name": "train", "hosts": ["algo-1", "algo-2"]}]),
     r"host\(s\) algo-3, algo-4, algo-5 are in no instance group"),
    (heterogeneous("algo-1", "train", "ml.c5.xlarge"),
     "current_group_name is 'train', but instance_groups lists current_host 'algo-1' in group 'data'"),
])
def test_instance_groups_that_do_not_describe_the_hosts_are_refused_naming_the_problem(tmp_path, config, says):
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
