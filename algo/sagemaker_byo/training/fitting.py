"""The training job around an algorithm of algo/algorithm.py: `train(job, ALGORITHMS)`.

What the job says about its data is decided first (training.plan: hyperparameters, target,
label_size, supervision, channels). Then it reads the `training` channel (and the held-out
`validation` and `test`, when given), splits off the target (none for an unsupervised algorithm,
or data declared `label_size=0`; several columns for `label_size=N` or a list of `target`
columns), settles the task, has
the algorithm build (or fit) its model, fits it, growing it with checkpoints where it can grow
and the job has a checkpoint folder, prints metrics for MetricDefinitions, and saves
`model.joblib`, `model.skops` where skops can save the model, and its description `model.json`
atomically (`model_files`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from threadpoolctl import threadpool_limits

from .. import contract, persistence, resources
from ..errors import AlgorithmError, UserError
from . import cache, channels, checkpoints, evaluation, plan
from .algorithms import Algorithm, text_columns
from .hyperparameters import IGNORED_PREFIXES, decode
from .job import Job, save_model
from .job import metric as log_metric
from .plan import check_task

log = logging.getLogger("train")

MODEL_FILE = "model.joblib"
METADATA_FILE = "model.json"
FORMAT_VERSION = 2
CLASSIFICATION, REGRESSION = evaluation.CLASSIFICATION, evaluation.REGRESSION
UNSUPERVISED = evaluation.UNSUPERVISED
MAX_CLASSES_INFERRED = 20  # an integer target with more distinct values is taken for regression


def given(raw: dict) -> set[str]:
    """The names the job set to a value (not null), leaving out SageMaker's own keys."""
    return {name for name, value in raw.items()
            if not name.startswith(IGNORED_PREFIXES) and str(decode(value)).strip().lower() not in ("null", "none", "")}


def for_task(name: str, algorithm: Algorithm, params: dict, raw: dict, task: str) -> dict:
    """The algorithm's own hyperparameters that apply to `task`, as `build`/`fit` get them: a
    parameter of the other task is dropped (refused when the job set it), a null one left out."""
    own = {}
    explicit = given(raw)
    for key, param in algorithm.hyperparameters.items():
        if not param.applies_to(task):
            if key in explicit:
                raise UserError(f"hyperparameter '{key}' of algorithm '{name}' applies to "
                                f"{' and '.join(param.tasks)} only, and this job's task is {task}")
            continue
        if params[key] is not None:
            own[key] = params[key]
    return own


def task_of(kind: str, distinct) -> str:
    """The task a target implies, from its dtype's kind and its distinct values (None where there
    are more than MAX_CLASSES_INFERRED): text is classes; a few whole numbers are classes; other
    numbers are a regression. One rule for one host and several (which know only these two)."""
    if kind not in "biuf":
        return CLASSIFICATION
    if distinct is None or len(distinct) > MAX_CLASSES_INFERRED:
        return REGRESSION
    whole = all(float(v) == round(float(v)) for v in distinct)
    return CLASSIFICATION if whole else REGRESSION


def distinct_values(values: pd.Series, limit: int = MAX_CLASSES_INFERRED) -> list | None:
    """A column's distinct values, or None where it has more than `limit`."""
    distinct = pd.unique(values.to_numpy())
    return distinct.tolist() if len(distinct) <= limit else None


def infer_task(target: pd.Series | pd.DataFrame) -> str:
    if isinstance(target, pd.DataFrame):
        return infer_tasks(target)
    return task_of(target.dtype.kind, distinct_values(target))


def infer_tasks(targets: pd.DataFrame) -> str:
    """Several targets: regression when every one is, classification when every one is."""
    tasks = {column: infer_task(targets[column]) for column in targets.columns}
    if len(set(tasks.values())) == 1:
        return next(iter(tasks.values()))
    kinds = "; ".join(f"{_shown(column)} {task}" for column, task in tasks.items())
    numeric = all(targets[column].dtype.kind in "biuf" for column in targets.columns)
    fix = "task=regression (every target is numeric)" if numeric else "task=classification (a target holds text)"
    raise UserError(f"the targets look like different tasks ({kinds}); one model learns one task for all its "
                    f"targets: set the hyperparameter {fix}, or train one model per kind of target")


def prepare_target(target: pd.Series | pd.DataFrame, task: str) -> np.ndarray:
    """A target as the estimator takes it: one column's values, or (rows, targets) for several."""
    if isinstance(target, pd.DataFrame):
        columns = [prepare_target(target[column], task) for column in target.columns]
        if len({c.dtype for c in columns}) == 1:
            return np.column_stack(columns)
        # Text classes in one target and numbers in another: scikit-learn sorts every class of a
        # multi-output target together, so every class is text (the model then answers "1", not 1).
        return np.column_stack([c.astype(str) for c in columns]).astype(object)
    if task == REGRESSION:
        if target.dtype.kind not in "biuf":
            bad = pd.to_numeric(target, errors="coerce").isna().to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise UserError(f"task 'regression' needs a numeric target, but data row {row + 1} has "
                                f"{target.iloc[row]!r}")
        return target.to_numpy(dtype=np.float64)
    if target.dtype.kind == "f" and np.all(target.to_numpy() == np.round(target.to_numpy())):
        return target.to_numpy().astype(np.int64)
    if not pd.api.types.is_numeric_dtype(target.dtype):
        return target.astype(str).to_numpy(dtype=object)
    return target.to_numpy()


def name_columns(features: pd.DataFrame) -> pd.DataFrame:
    """Headerless columns are named by their CSV position (`column_2`, ...), so a pipeline and the
    server can refer to them."""
    if all(isinstance(c, str) for c in features.columns):
        return features
    return features.set_axis([f"column_{c + 1}" for c in features.columns], axis=1)


def fits_on_array(features: pd.DataFrame, algorithm: Algorithm) -> bool:
    """The plumbing fits on a float32 array when every column is numeric (the server's fast path,
    and no feature-name warnings), else on the DataFrame; `fit` always gets the DataFrame."""
    return algorithm.build is not None and not algorithm.frame and not text_columns(features)


def model_input(features: pd.DataFrame, array: bool):
    return features.to_numpy(dtype=np.float32) if array else features


def final_step(model):
    return model[-1] if isinstance(model, Pipeline) else model


@contextmanager
def refusals_as_user_errors(name: str, task: str, params: dict) -> Iterator[None]:
    """Around building and fitting an algorithm's model (on one host or several): scikit-learn's
    refusal of a hyperparameter, or a build that does not take one, becomes a UserError naming
    the algorithm, its task and the hyperparameters it takes."""
    try:
        yield
    except InvalidParameterError as error:
        raise UserError(f"algorithm '{name}' ({task}) refused a hyperparameter: {error}") from error
    except TypeError as error:
        if "unexpected keyword argument" not in str(error):
            raise
        takes = ", ".join(sorted(params)) or "none"
        raise UserError(f"algorithm '{name}' ({task}) could not be built: {error}; "
                        f"its hyperparameters for {task}: {takes}") from error


ONE_TARGET_REFUSALS = ("1d array", "1-d array", "column-vector y", "bad input shape")


def takes_one_target(model, error: Exception) -> bool:
    """Whether a fit's ValueError on a 2-D target is the estimator refusing several targets: its
    message says it wants a 1-d y, or its scikit-learn tags say it is not multi-output."""
    if any(phrase in str(error) for phrase in ONE_TARGET_REFUSALS):
        return True
    tags = getattr(model, "__sklearn_tags__", None)
    try:
        return tags is not None and not tags().target_tags.multi_output
    except Exception:  # noqa: BLE001 - a model's own tags may be anything: no evidence either way
        return False


@contextmanager
def several_targets_refused(name: str, current: Callable[[], Any], target: np.ndarray | None,
                            names: list | None) -> Iterator[None]:
    """Around a fit on several targets: an estimator that takes one target only becomes a
    UserError naming the algorithm, instead of a bug in the training code. `current` gives the
    model being fitted (None before `build` returns one)."""
    try:
        yield
    except InvalidParameterError:
        raise
    except ValueError as error:
        model = current()
        if target is None or np.ndim(target) < 2 or not takes_one_target(model, error):
            raise
        estimator = "" if model is None else f" ({type(final_step(model)).__name__})"
        shown = ", ".join(_shown(n) for n in names or [])
        raise UserError(f"algorithm '{name}'{estimator} takes one target, and this job has {np.shape(target)[1]} "
                        f"({shown}); train one model per target, or use an algorithm whose estimator takes several "
                        f"(scikit-learn's multi-output ones: decision trees, forests, extra trees, k-nearest "
                        f"neighbours, Ridge); its error: {error}") from error


def _target_names(y) -> list | Any:
    """A target's name, or the list of names of several."""
    return list(y.columns) if isinstance(y, pd.DataFrame) else y.name


def check_classes(target_name, values: np.ndarray) -> None:
    """A classifier needs at least two classes in each target."""
    if values.ndim == 1:
        if len(np.unique(values)) < 2:
            raise UserError(f"the target column {_shown(target_name)} holds one class only; "
                            f"a classifier needs at least two")
        return
    for position, column in enumerate(target_name):
        if len(pd.unique(values[:, position])) < 2:
            raise UserError(f"the target column {_shown(column)} holds one class only; "
                            f"a classifier needs at least two in each target")


def fit(job: Job, model, data, target: np.ndarray | None, grows: str | None, steps: int, fingerprint: str):
    """Fit, growing step by step with checkpoints where the model can grow and the job has a
    checkpoint folder; returns the fitted model."""
    started = time.monotonic()
    folder = checkpoints.directory(job.paths)
    if grows is None or folder is None:
        log.info("fit started: %s on %d rows", model, len(data))
        model.fit(data, target)
    else:
        model = grow(job, model, data, target, grows, steps, fingerprint, folder, started)
    log.info("fit finished in %.1fs", time.monotonic() - started)
    job.check_stop()
    return model


def grow(job: Job, model, data, target, grows: str, steps: int, fingerprint: str, folder, started: float):
    """A Pipeline's preprocessing is fitted once; its last step (or the bare estimator) grows."""
    if isinstance(model, Pipeline):
        preprocessing, (last, estimator) = model[:-1], model.steps[-1]
    else:
        preprocessing, last, estimator = None, None, model
    store = checkpoints.Store(folder, fingerprint)
    total = estimator.get_params()[grows]
    step = math.ceil(total / steps)
    done = 0
    saved = store.latest()
    if saved is not None:
        preprocessing, estimator = saved.state
        done = saved.step
        log.info("resuming from checkpoint %s: %d of %d %s done", saved.path.name, done, total, grows)
    elif preprocessing is not None:
        preprocessing.fit(data, target)
    matrix = preprocessing.transform(data) if preprocessing is not None else data
    estimator.set_params(warm_start=True)
    log.info("fit started: %s on %d rows, checkpoints every %d %s in %s", estimator, len(data), step, grows, folder)
    while done < total:
        job.check_stop()
        done = min(done + step, total)
        estimator.set_params(**{grows: done})
        estimator.fit(matrix, target)
        path = store.save(done, (preprocessing, estimator))
        job.resume_note = (f"checkpoint {path.name} ({done} of {total} {grows}) is in {folder}; a job with the "
                           f"same hyperparameters, data and checkpoint configuration resumes from it")
        log.info("grew to %d of %d %s (%.1fs)", done, total, grows, time.monotonic() - started)
    estimator.set_params(warm_start=False)
    if preprocessing is None:
        return estimator
    return Pipeline([*preprocessing.steps, (last, estimator)])


def set_n_jobs(model, jobs: int) -> dict:
    """Every `n_jobs` of a scikit-learn model set to `jobs` (the threads of every host); returns
    the values it replaced, to be put back before saving."""
    params = model.get_params(deep=True) if hasattr(model, "get_params") else {}
    replaced = {name: value for name, value in params.items() if name == "n_jobs" or name.endswith("__n_jobs")}
    if replaced:
        model.set_params(**dict.fromkeys(replaced, jobs))
    return replaced


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _shown(column) -> str:
    """A column as the user wrote it: a header name quoted, a position as a plain number."""
    column = _plain(column)
    return repr(column) if isinstance(column, str) else str(column)


def describe(model, name: str, task: str, params: dict, features: pd.DataFrame, target_name, rows: int,
             metrics: dict, header: bool, dtype: str | None = None) -> dict:
    """model.json: what the model is, and its input contract measured on `features` handed to it
    in the numeric `dtype` the fit got (None: the features' own)."""
    classes = getattr(model, "classes_", None)
    if isinstance(classes, list):  # several targets: each its own classes
        classes = [[_plain(c) for c in each] for each in classes]
    elif classes is not None:
        classes = [_plain(c) for c in classes]
    return {
        "format_version": FORMAT_VERSION,
        "model_file": MODEL_FILE,
        "algorithm": name,
        "estimator": type(final_step(model)).__name__,
        "task": task,
        "n_features": int(features.shape[1]),
        "feature_names": [str(c) for c in features.columns],
        "feature_names_from_header": header,
        "categorical_features": [str(c) for c in text_columns(features)],
        "input": contract.measure(model, features, dtype=dtype).as_json(),
        "target": None if target_name is None else (
            [str(_plain(c)) for c in target_name] if isinstance(target_name, list) else str(target_name)),
        "classes": classes,
        "hyperparameters": params,
        "training_rows": rows,
        "metrics": metrics,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "joblib": joblib.__version__,
        },
    }


def model_files(model, description: dict) -> dict[str, Callable]:
    """The writers of a trained model's files, for save_model: model.joblib, model.skops where skops
    can save every object in the model, and model.json last, saying whether model.skops is there
    and which of its types skops does not trust by default."""
    skops_data, description["skops"] = persistence.skops_dump(model)
    files = {MODEL_FILE: lambda path: joblib.dump(model, path)}
    if skops_data is not None:
        files[persistence.SKOPS_FILE] = lambda path: path.write_bytes(skops_data)
    files[METADATA_FILE] = lambda path: path.write_text(json.dumps(description, indent=2) + "\n")
    return files


def check_same_columns(channel: str, columns, training) -> None:
    """A held-out channel holds the training channel's features, in its order."""
    if list(columns) != list(training):
        raise UserError(f"the {channel} channel has {len(columns)} features "
                        f"({', '.join(map(str, list(columns)[:5]))}...) but training has "
                        f"{len(training)} ({', '.join(map(str, list(training)[:5]))}...)")


def read(job: Job, name: str, header: bool, target,
         labelled: bool = True) -> tuple[pd.DataFrame, pd.Series | pd.DataFrame | None]:
    """A channel's features and target column (a DataFrame of several; None where the data is not
    `labelled`)."""
    mode = channels.input_mode(name, job.input_data_config)
    table = cache.read_table(name, job.channel(name), header=header, mode=mode, target=target,
                             labelled=labelled)
    if labelled:
        features, y = channels.split_target(table, target, name)
    else:
        features, y = table.frame, None
    features = name_columns(features)
    channels.check_features(features, table)
    return features, y


def extra_metrics(name: str, algorithm: Algorithm, model, inputs, target) -> dict[str, float]:
    """The figures the algorithm's own `metrics` gives, checked: names and finite-or-NaN numbers."""
    if algorithm.metrics is None:
        return {}
    figures = algorithm.metrics(model, inputs, target)
    if not isinstance(figures, dict):
        raise AlgorithmError(f"algorithm '{name}': metrics() must return a dict of name to number, "
                             f"not {type(figures).__name__}")
    checked = {}
    for key, value in figures.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise AlgorithmError(f"algorithm '{name}': metrics() gave {key!r}: {value!r}; "
                                 f"each metric is a name and a number")
        checked[key] = float(value)
    return checked


Reader = Callable[[str, bool, Any], tuple[pd.DataFrame, pd.Series | pd.DataFrame]]


def train(job: Job, catalogue: dict[str, Algorithm], reader: Reader | None = None,
          backend: tuple[int, Callable[[], AbstractContextManager]] | None = None,
          data_plan: plan.DataPlan | None = None) -> None:
    """Train on this host. A job across hosts (training.multihost) passes the `data_plan` it
    decided, the `reader` of a channel's rows from every host, and the `backend` the fit's
    joblib work runs on: its parallelism (n_jobs) and a context that selects it."""
    data_plan = data_plan or plan.decide(job, catalogue)
    plan.announce(data_plan, job)
    params, name, header, target = data_plan.params, data_plan.algorithm, data_plan.header, data_plan.target
    size, source = data_plan.label_size, data_plan.said
    unsupervised, labelled = data_plan.unsupervised, data_plan.labelled
    algorithm = catalogue[name]
    reader = reader or (lambda channel, header, target: read(job, channel, header, target, labelled))

    started = time.monotonic()
    features, y = reader("training", header, target)
    rows = len(features)
    target_name = None if unsupervised else _target_names(y)
    log.info("read %d training rows with %d features in %.1fs", rows, features.shape[1],
             time.monotonic() - started)
    if unsupervised:
        task = UNSUPERVISED
        if labelled:
            names = _target_names(y)
            log.info("algorithm %s takes no target: column %s is left out (%s)", name,
                     ", ".join(str(_plain(n)) for n in names) if isinstance(names, list) else _plain(names),
                     source or f"hyperparameter target={target}")
        else:
            log.info("no target: algorithm %s learns from all %d columns%s", name, features.shape[1],
                     "" if size == 0 else " (if one is a label, set label_size=1 and target to leave it out)")
    else:
        if size is None and target is None:
            log.info("target: the first column (SageMaker's convention); for data without one, "
                     "set label_size=0 with an unsupervised algorithm")
        task = params["task"] or infer_task(y)
        inferred = ", ".join(repr(str(_plain(n))) for n in (target_name if isinstance(target_name, list)
                                                             else [target_name]))
        check_task(name, algorithm, task, inferred_from=None if params["task"] else inferred)
        if isinstance(target_name, list):
            log.info("%d targets: %s (%s)", len(target_name), ", ".join(str(_plain(n)) for n in target_name), task)
    own = for_task(name, algorithm, params, job.hyperparameters, task)
    params = {key: value for key, value in params.items()  # as model.json records them: for this task
              if key not in algorithm.hyperparameters or algorithm.hyperparameters[key].applies_to(task)}
    target_values = None if unsupervised else prepare_target(y, task)
    if task == CLASSIFICATION:
        check_classes(target_name, target_values)

    held_out = {}
    for channel in data_plan.held_out:
        h_features, h_y = reader(channel, header, target)
        check_same_columns(channel, h_features.columns, features.columns)
        held_out[channel] = (h_features, None if unsupervised else prepare_target(h_y, task))

    array = fits_on_array(features, algorithm)
    data = model_input(features, array)
    cpus = resources.cpus()
    log.info("CPUs: %s; memory: %s", cpus, resources.describe_memory(resources.memory()))
    jobs, parallel = backend or (cpus.value, contextlib.nullcontext)
    # n_jobs=-1 and the native thread pools (OpenMP, BLAS) use the CPUs this container may use.
    several = target_name if isinstance(target_name, list) else None
    model = None
    with (refusals_as_user_errors(name, task, own), threadpool_limits(cpus.value), parallel(),
          several_targets_refused(name, lambda: model, target_values, several)):
        if algorithm.fit is not None:
            log.info("fit started: algorithm %s on %d rows", name, rows)
            fit_started = time.monotonic()
            model = algorithm.fit(dict(own), task, features, target_values)
            log.info("fit finished in %.1fs", time.monotonic() - fit_started)
            job.check_stop()
        else:
            model = algorithm.build(dict(own), task, features)
            replaced = resources.limit_n_jobs(model, jobs) if backend is None else set_n_jobs(model, jobs)
            if replaced:
                log.info("fitting with %s=%d", ", ".join(replaced), jobs)
            fingerprint = checkpoints.fingerprint(
                params=params, task=task, rows=rows, columns=list(map(str, features)),
                sample=pd.util.hash_pandas_object(features.head(1000)).sum())
            model = fit(job, model, data, target_values, algorithm.grows, params["checkpoint_steps"], fingerprint)
            if replaced:
                model.set_params(**replaced)  # saved as given: the server sizes it to its own CPUs

    evaluated = {"train": (data, target_values)}
    for channel, (h_features, h_values) in held_out.items():
        evaluated[channel] = (model_input(h_features, array), h_values)
    metrics = {}
    for channel, (inputs, values) in evaluated.items():
        metrics[channel] = {} if unsupervised else evaluation.scores(
            task, model, inputs, values, several, plan.TRAINING if channel == "train" else channel)
        metrics[channel].update(extra_metrics(name, algorithm, model, inputs, values))
        for metric, value in metrics[channel].items():
            log_metric(channel, metric, value)
    output = job.paths.output_data
    evaluation.write_metrics(output / "metrics.json", metrics)
    if several:
        log.info("no evaluation.svg: it draws one target, and this model has %d", len(several))
    elif not unsupervised:  # the figures compare predictions with the target
        channel = next(iter(held_out), "train")  # the figure of held-out data, if any
        inputs, values = evaluated[channel]
        evaluation.write_figure(output / "evaluation.svg", task, model, inputs, values, channel)

    description = describe(model, name, task, params, features, target_name, rows, metrics, header,
                           dtype=data.dtype.name if isinstance(data, np.ndarray) else None)
    save_model(job.paths.model, model_files(model, description))
    job.saved.set()
