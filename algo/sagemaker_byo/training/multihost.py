"""A training job on one host or several: `train(job, ALGORITHMS)`.

One host (resourceconfig.json lists one, or is absent): `fitting.train`, as always. Several
hosts: an algorithm that declares no `distributed` way is refused before any data is read;
otherwise every host joins a Dask cluster (training.distributed) and the leader trains:

- "data_parallel": each host reads its own files and keeps them; the leader learns their
  columns, categories and classes, fits the preprocessing on that summary, and the final
  estimator trains through its Dask twin (LightGBM's), each host on its own rows. The model
  saved is the plain estimator in the usual pipeline.
- "joblib": the leader gathers every host's rows (refused, with the figures, when they would not
  fit its memory) and fits with joblib's Dask backend, so a forest's trees are built on every
  host's cores.

Only the leader writes /opt/ml/model; a worker host exits 0 once the leader has succeeded.
"""

from __future__ import annotations

import logging
import operator
import time
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from .. import resources, settings
from ..errors import AlgorithmError, UserError
from . import cluster, evaluation, fitting, plan
from .algorithms import Algorithm
from .job import Job, save_model
from .job import metric as log_metric

log = logging.getLogger("train")

# The leader holds every host's rows for a "joblib" fit: refused when they need more than this
# share of its memory (a fit takes a few times the data's size).
GATHER_SHARE = 0.5
# Final estimators data_parallel can train, by class, with the Dask class that trains them.
DASK_TWINS = {
    "lightgbm.sklearn.LGBMClassifier": ("lightgbm.dask", "DaskLGBMClassifier"),
    "lightgbm.sklearn.LGBMRegressor": ("lightgbm.dask", "DaskLGBMRegressor"),
}
# Preprocessing data_parallel fits on the summary of every host's rows: steps whose fit needs only
# the columns and their categories (exact on the summary). A median or a scale is not.
SUMMARY_STEPS = (ColumnTransformer, Pipeline, OrdinalEncoder, OneHotEncoder)


def train(job: Job, catalogue: dict[str, Algorithm]) -> None:
    # What the job says about its data, decided and refused alike on one host and several.
    data = plan.decide(job, catalogue)
    hosts = cluster.plan(job.resource_config, group=data.params[cluster.GROUP_HYPERPARAMETER])
    if hosts.idle_reason:  # a heterogeneous cluster's host outside the group that trains
        log.info("%s; exiting 0", hosts.idle_reason)
        job.idle = hosts.idle_reason
        return
    plan.announce(data, job)
    if not hosts.several:
        fitting.train(job, catalogue, data_plan=data)
        return
    name = data.algorithm
    refuse_on_several_hosts(data, catalogue, hosts)
    cluster.check_input_modes(hosts, job.input_data_config)

    from . import distributed  # noqa: PLC0415 - Dask is loaded only by a job of several hosts

    distributed.quiet()
    config = settings.cluster()
    deadline = time.monotonic() + config.wait
    addresses = {host: cluster.resolve(host, max(1.0, deadline - time.monotonic())) for host in hosts.hosts}
    log.info("host %s of %s (leader %s); addresses: %s", hosts.current, ", ".join(hosts.hosts), hosts.leader,
             ", ".join(f"{h}={a}" for h, a in addresses.items()))
    sizes = distributed.Sizes.here()
    if not hosts.is_leader:
        distributed.serve(hosts, addresses[hosts.current], addresses[hosts.leader], config, sizes)
        job.leader = hosts.leader
        return
    leader = distributed.Leader(hosts, addresses[hosts.current], config, sizes)
    succeeded = False
    try:
        leader.start()
        leader.wait_for_workers()
        if catalogue[name].distributed == "joblib":
            gathered(job, catalogue, data, leader)
        else:
            data_parallel(job, catalogue[name], data, leader)
        succeeded = True
    finally:
        leader.finish(succeeded)


def refuse_on_several_hosts(data: plan.DataPlan, catalogue: dict[str, Algorithm], hosts: cluster.Plan) -> None:
    """What trains on one host only, refused before any host reads data or joins a cluster."""
    name = data.algorithm
    if data.several:
        raise UserError(f"several targets ({data.target_source()}) train on one host, and this job has "
                        f"{len(hosts.hosts)} ({', '.join(hosts.hosts)}); set instance_count=1")
    if data.unsupervised:
        raise UserError(f"algorithm '{name}' learns from features only, which trains on one instance; "
                        f"set the job's instance count to 1")
    refuse_unless_distributed(name, catalogue, hosts)


def refuse_unless_distributed(name: str, catalogue: dict[str, Algorithm], plan: cluster.Plan) -> None:
    if catalogue[name].distributed is not None:
        return
    able = [n for n, a in catalogue.items() if a.distributed is not None]
    raise UserError(f"algorithm '{name}' trains on one host, and this job has {len(plan.hosts)} "
                    f"({', '.join(plan.hosts)}); set instance_count=1, or use an algorithm that trains on several "
                    f"hosts: {', '.join(able) or 'none in this catalogue'}")


def _on_every_host(leader, function, *args, hosts=None) -> dict[str, Any]:
    """Futures of `function(*args)` run on each host's worker, by host."""
    return {host: leader.client.submit(function, *args, workers=[address], allow_other_workers=False, pure=False)
            for host, address in leader.workers.items() if hosts is None or host in hosts}


def _each(leader, function, futures: dict[str, Any], *args) -> dict[str, Any]:
    """`function(part, *args)` on the host that holds each part, gathered to the leader."""
    results = {host: leader.client.submit(function, future, *args, workers=[leader.workers[host]],
                                          allow_other_workers=False, pure=False)
               for host, future in futures.items()}
    return dict(zip(results, leader.client.gather(list(results.values())), strict=True))


def _check_columns(summaries: dict, channel: str) -> None:
    first = next(iter(summaries.values()))
    for summary in summaries.values():
        if summary.columns != first.columns:
            raise UserError(f"channel '{channel}': host {summary.host}'s files have the columns "
                            f"{summary.columns[:5]}... but host {first.host}'s have {first.columns[:5]}...; "
                            f"every file needs the same columns")


# -- "joblib": the leader gathers the rows, the fit's joblib work runs on every host -----------------


def gathered(job: Job, catalogue: dict[str, Algorithm], data: plan.DataPlan, leader) -> None:
    from . import distributed  # noqa: PLC0415

    name = data.algorithm

    memory = resources.memory().value

    def reader(channel: str, header: bool, target) -> tuple[pd.DataFrame, pd.Series]:
        parts = _on_every_host(leader, distributed.read_share, channel, header, target, leader.plan.group)
        summaries = {h: s for h, s in _each(leader, distributed.summarise, parts, 0).items() if s is not None}
        if not summaries:
            raise UserError(f"channel '{channel}' has no data rows on any of the hosts {', '.join(leader.workers)}")
        _check_columns(summaries, channel)
        total = sum(s.nbytes for s in summaries.values())
        if total > GATHER_SHARE * memory:
            each = ", ".join(f"{h}: {s.nbytes / resources.GIB:.2f}" for h, s in summaries.items())
            raise UserError(
                f"algorithm '{name}' fits on the leader, which holds every host's rows: channel '{channel}' holds "
                f"{total / resources.GIB:.2f} GiB ({each} GiB) and the leader may use {GATHER_SHARE:.0%} of its "
                f"{memory / resources.GIB:.2f} GiB; use an "
                f"instance type with more memory, or algorithm 'lightgbm', which keeps each host's rows on that host")
        pieces = _each(leader, distributed.gather_rows, {h: parts[h] for h in summaries})
        leader.client.cancel(list(parts.values()))
        features = pd.concat([p[0] for p in pieces.values()], ignore_index=True)
        target_values = pd.concat([p[1] for p in pieces.values()], ignore_index=True)
        log.info("channel %s: gathered %d rows from %s", channel, len(features),
                 ", ".join(f"{h} ({s.rows})" for h, s in summaries.items()))
        return features, target_values

    threads = sum(w["nthreads"] for w in leader.client.scheduler_info(n_workers=-1)["workers"].values())
    log.info("fitting on every host's cores through joblib's Dask backend: %d threads", threads)
    # A host that leaves fails the job, whenever it leaves. The fit could sometimes go on (Dask runs
    # a lost task again elsewhere), but joblib's Dask backend scatters each large argument (the
    # rows) to one host without a copy: whether that host was the one lost is a matter of timing.
    hosts, what, why = list(leader.workers), f"the {name} fit", "the rows and the work Dask had placed on them"
    watch = leader.watch(job, hosts, what, why)
    try:
        fitting.train(job, catalogue, reader=reader, data_plan=data,
                      backend=(threads, lambda: joblib.parallel_config(backend="dask", client=leader.client)))
    except Exception as error:
        gone = leader.departed(hosts)  # Dask's own error (a lost future) may come before the watch's
        if gone:
            raise leader.left(gone, what, why) from error
        raise
    finally:
        watch.set()


# -- "data_parallel": each host keeps its rows -----------------------------------------------------


def _task(data: plan.DataPlan, summaries: dict) -> str:
    """The job's task, or the one every host's target implies together (fitting.task_of)."""
    if data.task is not None:
        return data.task
    kinds = {s.target_kind for s in summaries.values()}
    kind = next(iter(kinds)) if len(kinds) == 1 else "O"  # text on one host, numbers on another: classes
    values = [s.target_values for s in summaries.values()]
    distinct = None if any(v is None for v in values) else list(set().union(*map(set, values)))
    return fitting.task_of(kind, distinct)


def _summary_frame(summaries: dict) -> pd.DataFrame:
    """Rows of every host, and rows that carry every category seen on any host: what the
    preprocessing is fitted on, and the model's input contract measured on."""
    frame = pd.concat([s.sample for s in summaries.values()], ignore_index=True)
    categories: dict[str, set] = {}
    for summary in summaries.values():
        for column, values in summary.categories.items():
            categories.setdefault(column, set()).update(values)
    longest = max((len(v) for v in categories.values()), default=0)
    if longest:
        extra = pd.DataFrame([frame.iloc[0].to_dict()] * longest)
        for column, values in categories.items():
            ordered = sorted(values)
            extra[column] = [ordered[i % len(ordered)] for i in range(longest)]
        frame = pd.concat([frame, extra.astype(frame.dtypes.to_dict())], ignore_index=True)
    return frame


def _check_summary_steps(preprocessing) -> None:
    stack = [preprocessing]
    while stack:
        step = stack.pop()
        if isinstance(step, str) or step is None:
            continue
        if isinstance(step, SimpleImputer) and step.strategy == "constant":
            continue
        if not isinstance(step, SUMMARY_STEPS):
            raise AlgorithmError(f"a data_parallel algorithm's preprocessing is fitted on what every host's rows hold "
                                 f"(columns, categories); {type(step).__name__} needs the rows themselves")
        if isinstance(step, Pipeline):
            stack.extend(s for _, s in step.steps)
        elif isinstance(step, ColumnTransformer):
            stack.extend(t for _, t, _ in step.transformers)


def _twin(estimator, client):
    import importlib  # noqa: PLC0415

    kind = f"{type(estimator).__module__}.{type(estimator).__qualname__}"
    if kind not in DASK_TWINS:
        raise AlgorithmError(f"a data_parallel algorithm's final estimator must be one of {', '.join(DASK_TWINS)}; "
                             f"this one is {kind}")
    module, name = DASK_TWINS[kind]
    # No n_jobs: the Dask twin gives each host's LightGBM its worker's threads whatever it says.
    params = {k: v for k, v in estimator.get_params().items() if k != "n_jobs"}
    return getattr(importlib.import_module(module), name)(client=client, **params)


def data_parallel(job: Job, algorithm: Algorithm, data: plan.DataPlan, leader) -> None:
    import dask.array as da  # noqa: PLC0415

    from . import distributed  # noqa: PLC0415

    client = leader.client
    name, header, target, params = data.algorithm, data.header, data.target, data.params
    started = time.monotonic()
    parts = _on_every_host(leader, distributed.read_share, "training", header, target, leader.plan.group)
    summaries = {h: s for h, s in _each(leader, distributed.summarise, parts, fitting.MAX_CLASSES_INFERRED).items()
                 if s is not None}
    if not summaries:
        raise UserError(f"channel 'training' has no data rows on any of the hosts {', '.join(leader.workers)}")
    _check_columns(summaries, "training")
    rows = sum(s.rows for s in summaries.values())
    log.info("read %d training rows in %.1fs, kept where they were read: %s", rows, time.monotonic() - started,
             ", ".join(f"{h} {s.rows} rows ({s.nbytes / 2**20:.1f} MiB)" for h, s in summaries.items()))
    target_name = next(iter(summaries.values())).target_name
    task = _task(data, summaries)
    check_inferred = None if data.task else repr(str(target_name))
    fitting.check_task(name, algorithm, task, inferred_from=check_inferred)
    own = fitting.for_task(name, algorithm, params, job.hyperparameters, task)
    params = {key: value for key, value in params.items()
              if key not in algorithm.hyperparameters or algorithm.hyperparameters[key].applies_to(task)}
    classes, lacking = None, {}
    if task == fitting.CLASSIFICATION:
        # The classes are agreed across hosts before the fit: a host whose rows lack some class
        # gets one row of it with weight 0 (a copy of one of its own rows), so every host's
        # LightGBM encodes the same classes and the model knows every class of every host.
        classes = _sorted(set().union(*(set(s.target_values or []) for s in summaries.values())))
        fitting.check_classes(target_name, np.asarray(classes, dtype=object))
        agreed = _prepared_classes(classes, task)
        for host, summary in summaries.items():
            held = set(_prepared_classes(summary.target_values or [], task))
            lacking[host] = [c for c in agreed if c not in held]
        if any(lacking.values()):
            log.info("classes agreed across hosts: %s; rows of weight 0 stand in for the classes a host lacks: %s",
                     ", ".join(map(str, agreed)),
                     "; ".join(f"{h} lacks {', '.join(map(str, c))}" for h, c in lacking.items() if c))

    summary = _summary_frame(summaries)
    with fitting.refusals_as_user_errors(name, task, own):
        model = algorithm.build(dict(own), task, summary)
        if isinstance(model, Pipeline):
            preprocessing, (last, estimator) = model[:-1], model.steps[-1]
            _check_summary_steps(preprocessing)
            preprocessing.fit(summary)
        else:
            preprocessing, last, estimator = None, None, model
        twin = _twin(estimator, client)
        width = preprocessing.transform(summary.head(1)).shape[1] if preprocessing is not None else summary.shape[1]
        prepared = {host: client.submit(distributed.prepare, parts[host], task, preprocessing, lacking.get(host),
                                        workers=[leader.workers[host]], allow_other_workers=False, pure=False)
                    for host in summaries}
        # The rows as read are not needed again (the training metrics are computed on the prepared
        # rows): Dask frees them once prepared, so a host does not hold both through the fit.
        for future in parts.values():
            future.release()
        sizes = {h: summaries[h].rows + len(lacking.get(h, [])) for h in prepared}

        def column(position: int, shape, dtype):
            return da.concatenate([
                da.from_delayed(client.submit(operator.getitem, f, position, workers=[leader.workers[h]]),
                                shape=shape(h), dtype=dtype) for h, f in prepared.items()])

        features = column(0, lambda h: (sizes[h], width), np.float32)
        labels = column(1, lambda h: (sizes[h],), _label_dtype(task, classes))
        weights = column(2, lambda h: (sizes[h],), np.float32)
        log.info("fit started: %s on %d rows across %s", twin, rows, ", ".join(summaries))
        hosts, what, why = list(summaries), f"the {name} fit", "their rows"
        watch = leader.watch(job, hosts, what, why)
        fit_started = time.monotonic()
        try:
            twin.fit(features, labels, sample_weight=weights)
        except Exception as error:
            # LightGBM's own sockets see a host die before the scheduler does.
            gone = leader.departed(hosts)
            if gone:
                raise leader.left(gone, what, why) from error
            raise
        finally:
            watch.set()
        log.info("fit finished in %.1fs", time.monotonic() - fit_started)
        job.check_stop()
        estimator = twin.to_local()
        # The final estimator on the prepared rows predicts what the whole model does on the rows.
        metrics = {"train": _scores(leader, prepared, estimator, task, classes, distributed.prepared_scores,
                                    "training")}
        client.cancel(list(prepared.values()))
    model = estimator if preprocessing is None else Pipeline([*preprocessing.steps, (last, estimator)])

    for channel in data.held_out:
        held_out = _on_every_host(leader, distributed.read_share, channel, header, target, leader.plan.group)
        columns = {h: c for h, c in _each(leader, distributed.columns_of, held_out).items() if c is not None}
        for host_columns in columns.values():
            fitting.check_same_columns(channel, host_columns, summary.columns)
        metrics[channel] = _scores(leader, held_out, model, task, classes, distributed.partial_scores, channel)
    for channel, values in metrics.items():
        for metric, value in values.items():
            log_metric(channel, metric, value)
    evaluation.write_metrics(job.paths.output_data / "metrics.json", metrics)
    description = fitting.describe(model, name, task, params, summary, target_name, rows, metrics, header)
    description["hosts"] = {h: s.rows for h, s in summaries.items()}
    save_model(job.paths.model, fitting.model_files(model, description))
    job.saved.set()


def _prepared_classes(values: list, task: str) -> list:
    """Target values as the estimator gets them (fitting.prepare_target), distinct and sorted."""
    if not values:
        return []
    return _sorted(set(fitting.prepare_target(pd.Series(values), task).tolist()))


def _sorted(values: set) -> list:
    try:
        return sorted(values)
    except TypeError:  # numbers and text mixed: the target is read as text
        return sorted(values, key=str)


def _label_dtype(task: str, classes):
    if task == fitting.REGRESSION:
        return np.float64
    return np.asarray(classes).dtype if np.asarray(classes).dtype.kind in "biuf" else object


def _scores(leader, parts: dict, model, task: str, classes, partial_scores, channel: str) -> dict[str, float]:
    partial = [p for p in _each(leader, partial_scores, parts, model, task, classes, channel).values() if p]
    if not partial:
        raise UserError(f"channel '{channel}' has no data rows on any of the hosts {', '.join(leader.workers)}")
    return evaluation.combine(task, partial)
