"""Training across hosts: two and three real `algo/train` processes, each with its own /opt/ml and
resourceconfig.json, each in a network namespace of its own (see netns.py), form one Dask cluster;
the leader alone writes the model, which serves through the real `algo/serve` and scores close to
the one-host model. The namespaces are removed whatever the outcome.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
from netns import Network, can_make_namespaces

from support import host_env, plumbing_algo, require, run_train, wait_until

ROWS = 1200
TIMEOUT = 240  # seconds for a whole multi-host job on 2 shared cores
# Every host of these tests shares the machine's 2 cores: one OpenMP thread each, and threads
# that sleep while they wait (spinning ones starve the other hosts' LightGBM, which then waits on
# the network for them: a 1,200-row fit took minutes).
HOST_ENV = {"SAGEMAKER_CLUSTER_WAIT": "60", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def rows(count: int, seed: int) -> np.ndarray:
    """A classification table: class (0/1/2) from two numbers and a colour, with noise columns."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 4))
    colour = rng.choice(["red", "green", "blue"], size=count)
    score = x[:, 0] + 0.5 * x[:, 1] + np.where(colour == "red", 1.0, 0.0)
    label = np.digitize(score, [-0.5, 0.7])
    return np.column_stack([label.astype(str), np.round(x, 4).astype(str), colour])


def write_csv(path: Path, table: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(row) + "\n" for row in table))


def job_dir(root: Path, host: str, hosts: list[str], algorithm: str, files: dict[str, np.ndarray],
            sharded: bool, hyperparameters: dict | None = None) -> Path:
    ml = root / host
    config = ml / "input" / "config"
    config.mkdir(parents=True)
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": host, "hosts": hosts, "network_interface_name": "eth0"}))
    forest = {} if algorithm == "decision_tree" else {"n_estimators": "30"}
    (config / "hyperparameters.json").write_text(json.dumps({"algorithm": algorithm, **forest,
                                                             **(hyperparameters or {})}))
    (config / "inputdataconfig.json").write_text(json.dumps({"training": {
        "ContentType": "text/csv", "TrainingInputMode": "File",
        "S3DistributionType": "ShardedByS3Key" if sharded else "FullyReplicated"}}))
    for name, table in files.items():
        write_csv(ml / "input" / "data" / "training" / name, table)
    (ml / "model").mkdir()
    (ml / "output").mkdir()
    return ml


@pytest.fixture
def network():
    """Make `network(hosts)`; every namespace and /etc/netns folder is removed afterwards."""
    made: list[Network] = []
    ok, why = can_make_namespaces()
    require(ok, why)

    def make(hosts: list[str]) -> Network:
        net = Network(hosts)
        made.append(net)
        return net.create()

    yield make
    for net in made:
        net.remove()


class Hosts:
    def __init__(self, net: Network, dirs: dict[str, Path]) -> None:
        self.net, self.dirs, self.procs = net, dirs, {}

    def start(self, host: str, **env: str) -> None:
        log = open(self.dirs[host].parent / f"{host}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[host] = subprocess.Popen(
            self.net.command(host, [str(plumbing_algo() / "train")]),
            env=host_env(self.dirs[host], **{**HOST_ENV, **env}), stdout=log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = TIMEOUT) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        codes = {}
        for host, proc in self.procs.items():
            try:
                codes[host] = proc.wait(max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[host] = proc.wait()
                codes[host] = f"still running after {timeout}s"
        return codes

    def log(self, host: str) -> str:
        path = self.dirs[host].parent / f"{host}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {h}\n{self.log(h)[-4000:]}" for h in self.dirs)

    def failure(self, host: str) -> str | None:
        path = self.dirs[host] / "output" / "failure"
        return path.read_text() if path.exists() else None

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def cluster(network, tmp_path):
    """`cluster(n, algorithm, files_per_host, sharded)` -> Hosts, started; every process is killed afterwards."""
    made: list[Hosts] = []

    def make(count: int, algorithm: str, files: dict[str, dict[str, np.ndarray]], sharded: bool = True,
             start: bool = True, env: dict | None = None, hyperparameters: dict | None = None) -> Hosts:
        hosts = [f"algo-{i + 1}" for i in range(count)]
        net = network(hosts)
        dirs = {h: job_dir(tmp_path, h, hosts, algorithm, files[h], sharded, hyperparameters) for h in hosts}
        group = Hosts(net, dirs)
        made.append(group)
        if start:
            for host in hosts:
                group.start(host, **(env or {}))
        return group

    yield make
    for group in made:
        group.stop_all()


def shards(count: int, files_each: int = 2) -> dict[str, dict[str, np.ndarray]]:
    table = rows(ROWS, seed=1)
    pieces = np.array_split(table, count * files_each)
    return {f"algo-{h + 1}": {f"part-{h}-{i}.csv": pieces[h * files_each + i] for i in range(files_each)}
            for h in range(count)}


def one_host_accuracy(tmp_path: Path, algorithm: str) -> float:
    ml = job_dir(tmp_path / "single", "algo-1", ["algo-1"], algorithm, {"all.csv": rows(ROWS, seed=1)}, True)
    result = run_train(ml, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    return accuracy(ml)


def accuracy(ml: Path) -> float:
    test = rows(400, seed=2)
    model = joblib.load(ml / "model" / "model.joblib")
    import pandas as pd

    frame = pd.DataFrame(test[:, 1:]).apply(lambda c: pd.to_numeric(c) if c.name < 4 else c)
    frame.columns = [f"column_{i + 2}" for i in range(5)]
    features = frame.astype({f"column_{i + 2}": np.float32 for i in range(4)})
    predicted = model.predict(features)
    return float(np.mean(np.asarray(predicted).astype(str) == test[:, 0].astype(str)))


@pytest.mark.parametrize("count", [2, 3])
def test_lightgbm_trains_across_hosts_each_on_its_own_shard_and_only_the_leader_writes_the_model(
        cluster, tmp_path, count):
    group = cluster(count, "lightgbm", shards(count))
    codes = group.wait()
    assert codes == {h: 0 for h in group.dirs}, group.logs()
    leader, *workers = group.dirs
    assert sorted(p.name for p in (group.dirs[leader] / "model").iterdir()) == [
        "model.joblib", "model.json", "model.skops"]
    for host in workers:
        assert list((group.dirs[host] / "model").iterdir()) == []
        assert group.failure(host) is None
    description = json.loads((group.dirs[leader] / "model" / "model.json").read_text())
    assert description["estimator"] == "LGBMClassifier"
    assert description["training_rows"] == ROWS
    assert set(description["hosts"]) == set(group.dirs)
    assert "tcp://" in group.log(leader) and "kept where they were read" in group.log(leader)


def test_lightgbm_across_two_hosts_scores_within_five_points_of_one_host(cluster, tmp_path):
    single = one_host_accuracy(tmp_path, "lightgbm")
    group = cluster(2, "lightgbm", shards(2))
    assert group.wait() == {"algo-1": 0, "algo-2": 0}, group.logs()
    assert accuracy(group.dirs["algo-1"]) == pytest.approx(single, abs=0.05)


def test_random_forest_across_three_hosts_builds_its_trees_on_every_host(cluster, tmp_path):
    single = one_host_accuracy(tmp_path, "random_forest")
    group = cluster(3, "random_forest", shards(3))
    assert group.wait() == {"algo-1": 0, "algo-2": 0, "algo-3": 0}, group.logs()
    assert accuracy(group.dirs["algo-1"]) == pytest.approx(single, abs=0.05)
    assert "joblib's Dask backend" in group.log("algo-1")


def test_fully_replicated_files_are_shared_out_and_a_host_without_files_does_not_fail(cluster):
    table = rows(ROWS, seed=1)
    files = {"a.csv": table[:700], "b.csv": table[700:]}  # two files, three hosts
    group = cluster(3, "lightgbm", {h: files for h in ("algo-1", "algo-2", "algo-3")}, sharded=False)
    assert group.wait() == {"algo-1": 0, "algo-2": 0, "algo-3": 0}, group.logs()
    description = json.loads((group.dirs["algo-1"] / "model" / "model.json").read_text())
    assert description["training_rows"] == ROWS
    assert sorted(description["hosts"].values()) == [500, 700]


def test_an_algorithm_that_declares_no_distribution_is_refused_on_every_host_before_reading(cluster):
    group = cluster(2, "decision_tree", shards(2))
    codes = group.wait(60)
    assert codes == {"algo-1": 1, "algo-2": 1}, group.logs()
    for host in group.dirs:
        assert "set instance_count=1" in group.failure(host)
        assert "lightgbm" in group.failure(host) and "random_forest" in group.failure(host)


def test_a_host_that_never_starts_fails_the_leader_within_the_wait_naming_it(cluster):
    group = cluster(2, "lightgbm", shards(2), start=False)
    group.start("algo-1", SAGEMAKER_CLUSTER_WAIT="10")
    codes = group.wait(90)
    codes.pop("algo-2", None)
    assert codes == {"algo-1": 1}, group.logs()
    assert "algo-2 did not join the cluster within 10s" in group.failure("algo-1")
    assert "security group" in group.failure("algo-1")
    assert not (group.dirs["algo-1"] / "model" / "model.joblib").exists()


def test_a_worker_killed_during_the_lightgbm_fit_fails_the_job_with_a_failure_file(cluster):
    big = rows(200_000, seed=3)
    halves = np.array_split(big, 2)
    group = cluster(2, "lightgbm", {"algo-1": {"a.csv": halves[0]}, "algo-2": {"b.csv": halves[1]}})
    wait_until(lambda: "fit started" in group.log("algo-1"), TIMEOUT, interval=0.2, what="the fit to start")
    group.procs["algo-2"].send_signal(signal.SIGKILL)
    codes = group.wait(120)
    assert codes["algo-1"] not in (0, None), group.logs()
    assert "algo-2 left the cluster" in group.failure("algo-1"), group.logs()
    assert not (group.dirs["algo-1"] / "model" / "model.joblib").exists()


def test_a_worker_killed_during_the_forest_fit_fails_the_job_cleanly_naming_it(cluster):
    """Dask would run the dead host's batches of trees again elsewhere, but joblib's Dask backend
    scatters the rows to one host without a copy: when that host dies the rows are lost
    ("FutureCancelledError" from Dask, the first time this test ran). Survival would depend on
    timing, so a host that leaves fails the job, as in the LightGBM fit: a UserError naming it."""
    big = rows(90_000, seed=3)
    thirds = np.array_split(big, 3)
    group = cluster(3, "random_forest", {f"algo-{i + 1}": {f"p{i}.csv": thirds[i]} for i in range(3)},
                    hyperparameters={"n_estimators": "60"})
    wait_until(lambda: "fit started" in group.log("algo-1"), TIMEOUT, interval=0.2, what="the fit to start")
    group.procs["algo-2"].send_signal(signal.SIGKILL)
    codes = group.wait(120)
    assert codes["algo-1"] == 1, group.logs()
    failure = group.failure("algo-1")
    assert failure.startswith("UserError: host(s) algo-2 left the cluster during the random_forest fit"), failure
    assert "security group" in failure
    assert not (group.dirs["algo-1"] / "model" / "model.joblib").exists()
    assert codes["algo-3"] == 1 and "closed the cluster before the job succeeded" in group.failure("algo-3")


def test_the_leader_killed_ends_the_workers_on_their_own(cluster):
    group = cluster(3, "lightgbm", shards(3))
    wait_until(lambda: "every host joined" in group.log("algo-1"), TIMEOUT, interval=0.2, what="the cluster")
    group.procs["algo-1"].send_signal(signal.SIGKILL)
    codes = group.wait(90)
    for host in ("algo-2", "algo-3"):
        assert codes[host] == 1, group.logs()
        assert "closed the cluster before the job succeeded" in group.failure(host)


def test_sigterm_to_every_host_ends_them_all_with_the_leaders_failure_file(cluster):
    group = cluster(2, "lightgbm", shards(2))
    wait_until(lambda: "every host joined" in group.log("algo-1"), TIMEOUT, interval=0.2, what="the cluster")
    for proc in group.procs.values():
        proc.send_signal(signal.SIGTERM)
    codes = group.wait(120)
    assert codes["algo-1"] == 143, group.logs()
    assert "stopped by SIGTERM" in group.failure("algo-1")
    assert codes["algo-2"] != 0


def test_the_leaders_model_serves_with_the_same_input_contract(cluster, serve):
    group = cluster(2, "lightgbm", shards(2))
    assert group.wait() == {"algo-1": 0, "algo-2": 0}, group.logs()
    server = serve(base_dir=group.dirs["algo-1"])
    body = "".join(",".join(row[1:]) + "\n" for row in rows(5, seed=4))
    answer = server.invoke(body)
    assert answer.status_code == 200, answer.text
    assert len(answer.text.strip().splitlines()) == 5


def lacking_shards() -> dict[str, dict[str, np.ndarray]]:
    """Two hosts' shards as a partitioned export leaves them: algo-1 holds no row of class 2,
    algo-2 none of class 0."""
    table = rows(ROWS, seed=1)
    labels = table[:, 0]
    one = table[labels != "2"][: ROWS // 2]
    two = table[labels != "0"][: ROWS // 2]
    return {"algo-1": {"a.csv": one}, "algo-2": {"b.csv": two}}


def test_lightgbm_across_hosts_trains_when_each_hosts_shard_lacks_a_class_and_knows_every_class(cluster, serve):
    group = cluster(2, "lightgbm", lacking_shards())
    assert group.wait() == {"algo-1": 0, "algo-2": 0}, group.logs()
    leader = group.dirs["algo-1"]
    description = json.loads((leader / "model" / "model.json").read_text())
    assert description["classes"] == [0, 1, 2]
    assert list(joblib.load(leader / "model" / "model.joblib").classes_) == [0, 1, 2]
    assert "algo-1 lacks 2" in group.log("algo-1") and "algo-2 lacks 0" in group.log("algo-1")
    server = serve(base_dir=leader)
    table = rows(300, seed=5)
    answer = server.invoke("".join(",".join(row[1:]) + "\n" for row in table))
    assert answer.status_code == 200, answer.text
    predicted = [float(line) for line in answer.text.split()]
    assert len(predicted) == 300 and set(predicted) == {0.0, 1.0, 2.0}
    assert np.mean(np.array(predicted) == table[:, 0].astype(float)) > 0.7


def test_a_regression_across_hosts_trains_when_each_shard_lacks_a_category(cluster):
    table = rows(ROWS, seed=1)
    target = np.round(table[:, 1].astype(float) * 3 + 1.5, 3).astype(str)  # many distinct values
    table = np.column_stack([target, table[:, 2:]])
    colour = table[:, -1]
    files = {"algo-1": {"a.csv": table[colour != "red"]}, "algo-2": {"b.csv": table[colour != "blue"]}}
    group = cluster(2, "lightgbm", files)
    assert group.wait() == {"algo-1": 0, "algo-2": 0}, group.logs()
    description = json.loads((group.dirs["algo-1"] / "model" / "model.json").read_text())
    assert description["task"] == "regression" and description["categorical_features"] == ["column_5"]


def test_a_successful_job_on_two_hosts_logs_no_traceback_and_no_dask_chatter(cluster):
    group = cluster(2, "lightgbm", shards(2))
    assert group.wait() == {"algo-1": 0, "algo-2": 0}, group.logs()
    for host in group.dirs:
        log = group.log(host)
        assert "Traceback" not in log, log[-4000:]
        for chatter in ("jupyter-server-proxy", "dashboard at", "Scheduler at", "Start worker", "Registered to"):
            assert chatter not in log, log[-4000:]


def test_features_only_data_is_refused_on_two_hosts_as_on_one(cluster, tmp_path):
    shares = shards(2)
    features_only = {h: {n: t[:, 1:] for n, t in files.items()} for h, files in shares.items()}
    single = job_dir(tmp_path / "single", "algo-1", ["algo-1"], "lightgbm", features_only["algo-1"], True,
                     {"label_size": "0"})
    result = run_train(single, timeout=TIMEOUT)
    assert result.returncode == 1, result.stderr[-3000:]
    one_host = (single / "output" / "failure").read_text()
    group = cluster(2, "lightgbm", features_only, hyperparameters={"label_size": "0"})
    assert group.wait(90) == {"algo-1": 1, "algo-2": 1}, group.logs()
    for host in group.dirs:
        assert group.failure(host) == one_host
        assert not (group.dirs[host] / "model" / "model.joblib").exists()


def test_a_test_channel_is_scored_across_hosts_like_validation(cluster):
    group = cluster(2, "lightgbm", shards(2), start=False)
    for host, ml in group.dirs.items():
        write_csv(ml / "input" / "data" / "test" / f"{host}.csv", rows(100, seed=7))
        write_csv(ml / "input" / "data" / "extra" / "notes.csv", rows(3, seed=8))
        group.start(host)
    assert group.wait() == {"algo-1": 0, "algo-2": 0}, group.logs()
    metrics = json.loads((group.dirs["algo-1"] / "output" / "data" / "metrics.json").read_text())
    assert set(metrics) == {"train", "test"} and 0.5 < metrics["test"]["accuracy"] <= 1
    assert "test:accuracy=" in group.log("algo-1")
    assert "channel 'extra' is not used" in group.log("algo-1")


def test_a_heterogeneous_cluster_trains_on_its_named_group_and_the_other_group_exits_0(network, tmp_path):
    hosts = ["algo-1", "algo-2", "algo-3"]
    net = network(hosts)
    table = rows(ROWS, seed=1)
    halves = np.array_split(table, 2)
    files = {"algo-1": {"a.csv": halves[0]}, "algo-2": {}, "algo-3": {"b.csv": halves[1]}}
    dirs = {h: job_dir(tmp_path, h, hosts, "lightgbm", files[h], True, {"instance_group": "train"}) for h in hosts}
    for host, ml in dirs.items():
        group = "train" if host != "algo-2" else "prepare"
        (ml / "input" / "config" / "resourceconfig.json").write_text(json.dumps({
            "current_host": host, "current_instance_type": "ml.m5.xlarge", "current_group_name": group,
            "hosts": hosts, "network_interface_name": "eth0",
            "instance_groups": [  # as SageMaker writes them: a group's hosts are not in host order
                {"instance_group_name": "prepare", "instance_type": "ml.c5.xlarge", "hosts": ["algo-2"]},
                {"instance_group_name": "train", "instance_type": "ml.m5.xlarge", "hosts": ["algo-3", "algo-1"]},
            ]}))
    group = Hosts(net, dirs)
    try:
        for host in hosts:
            group.start(host)
        assert group.wait() == {"algo-1": 0, "algo-2": 0, "algo-3": 0}, group.logs()
    finally:
        group.stop_all()
    description = json.loads((dirs["algo-1"] / "model" / "model.json").read_text())
    assert description["hosts"] == {"algo-1": len(halves[0]), "algo-3": len(halves[1])}
    assert "host algo-2 is in instance group 'prepare'" in group.log("algo-2")
    assert "does not train" in group.log("algo-2") and group.failure("algo-2") is None
    assert list((dirs["algo-2"] / "model").iterdir()) == []


def test_lightgbm_across_two_hosts_trains_on_each_hosts_own_parquet_files(cluster):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    group = cluster(2, "lightgbm", {"algo-1": {}, "algo-2": {}}, start=False,
                    hyperparameters={"target": "label"})
    table = rows(ROWS, seed=1)
    numbers = {f"x{i}": table[:, i + 1].astype(float) for i in range(4)}
    frame = pd.DataFrame({"label": table[:, 0].astype(int), **numbers, "colour": table[:, 5]})
    for (host, ml), part in zip(group.dirs.items(), np.array_split(np.arange(ROWS), 2), strict=True):
        (ml / "input" / "config" / "inputdataconfig.json").write_text(json.dumps({"training": {
            "ContentType": "application/x-parquet", "TrainingInputMode": "File",
            "S3DistributionType": "ShardedByS3Key"}}))
        folder = ml / "input" / "data" / "training" / f"day={host[-1]}"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame.iloc[part], preserve_index=False), folder / "part-0.parquet")
        group.start(host)
    assert group.wait() == {"algo-1": 0, "algo-2": 0}, group.logs()
    description = json.loads((group.dirs["algo-1"] / "model" / "model.json").read_text())
    assert description["hosts"] == {"algo-1": ROWS // 2, "algo-2": ROWS // 2}
    assert description["classes"] == [0, 1, 2] and "day" in description["feature_names"]
