"""What a training job says about its data, decided once, before any data is read or any host joins.

`decide(job, catalogue)` parses the hyperparameters, takes `label_size` from the channels'
ContentType and the hyperparameter, settles whether the model learns a target and which
column(s) it is, and which channels are read; a job that contradicts itself is refused here, with
one message whatever the number of hosts. One host (`fitting.train`) and several
(`multihost.train`) both start from its `DataPlan`; readers only read what it says.
"""

from __future__ import annotations

import ast
import json
import logging
from dataclasses import dataclass
from typing import Any

from ..errors import AlgorithmError, UserError
from . import channels
from .algorithms import Algorithm
from .cluster import GROUP_HYPERPARAMETER
from .evaluation import CLASSIFICATION, REGRESSION, UNSUPERVISED
from .hyperparameters import Param, Schema
from .job import Job

log = logging.getLogger("train")

TRAINING = "training"
HELD_OUT = ("validation", "test")  # scored like held-out data: metrics `<channel>:<metric>`
READ = (TRAINING, *HELD_OUT)


@dataclass(frozen=True)
class DataPlan:
    """The job's data as its configuration says it is."""

    algorithm: str
    params: dict[str, Any]  # every hyperparameter of the algorithm, typed, for either task
    header: bool
    target: str | list[str] | None  # the column(s) split off (None: the first), whether or not learned
    label_size: int | None  # target columns at the start of each row (0: features only); None: not said
    said: str  # where label_size was said ("" where it was not)
    unsupervised: bool  # the model learns from features alone
    labelled: bool  # the data holds target column(s): learned, or left out of the features
    held_out: tuple[str, ...]  # the held-out channels this job has, of HELD_OUT
    unused: tuple[str, ...]  # channels the job has that training does not read

    @property
    def task(self) -> str | None:
        """The task the job sets; None: inferred from the target once it is read."""
        return self.params["task"]

    @property
    def several(self) -> bool:
        return isinstance(self.target, list)

    def target_source(self) -> str:
        """Where the target columns were said, for messages."""
        if self.said:
            return self.said
        return f"hyperparameter target={json.dumps(self.params['target'])}"


def channel_names(job: Job) -> list[str]:
    """The channels of the job: those its inputdataconfig.json names, and the folders under
    /opt/ml/input/data (a run by hand has no config); in that order, each once."""
    names = list(job.input_data_config)
    data = job.paths.data
    if data.is_dir():
        names += sorted(p.name for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
    return list(dict.fromkeys(names))


def decide(job: Job, catalogue: dict[str, Algorithm]) -> DataPlan:
    """The job's `DataPlan`, or a UserError naming what contradicts what."""
    check_catalogue(catalogue)
    params = parse_hyperparameters(job.hyperparameters, catalogue)
    present = channel_names(job)
    held_out = tuple(name for name in HELD_OUT if job.has_channel(name))
    size, said = label_size(job, params, (TRAINING, *held_out))
    name, header = params["algorithm"], params["header"]
    algorithm = catalogue[name]
    if params["task"] is not None:
        check_task(name, algorithm, params["task"])
    unsupervised, labelled = supervision(name, algorithm, params, size, said)
    target = target_spec(params, size, said)
    named = header or channels.names_columns(TRAINING, job.channel(TRAINING), job.input_data_config)
    for column in target if isinstance(target, list) else [target]:
        if column is not None and not column.lstrip("-").isdigit() and not named:
            raise UserError(f"target {column!r} is a column name, which needs header=true; "
                            f"or give the column's 0-based index")
    return DataPlan(
        algorithm=name, params=params, header=header, target=target, label_size=size, said=said,
        unsupervised=unsupervised, labelled=labelled, held_out=held_out,
        unused=tuple(n for n in present if n not in READ),
    )


# -- each part of the decision ----------------------------------------------------------------


def common(catalogue: dict[str, Algorithm]) -> dict[str, Param]:
    """The hyperparameters every algorithm takes; `algorithm` defaults to the catalogue's first."""
    return {
        "algorithm": Param(str, next(iter(catalogue)), choices=tuple(catalogue)),
        "task": Param(str, None, choices=(CLASSIFICATION, REGRESSION, UNSUPERVISED), nullable=True),
        "header": Param(bool, False),
        # A column (header name or 0-based index), or a JSON list of them: several targets.
        "target": Param(str, None, nullable=True),
        # SageMaker's ContentType parameter, for tools that cannot set a channel's ContentType:
        # 0 the data is features only, N its first N columns are targets; null: as the channel says.
        "label_size": Param(int, None, low=0, nullable=True),
        "checkpoint_steps": Param(int, 10, low=1, high=1000),
        # A heterogeneous cluster's instance group that trains (default: the first listed).
        GROUP_HYPERPARAMETER: Param(str, None, nullable=True),
    }


def check_catalogue(catalogue: Any) -> None:
    if not isinstance(catalogue, dict) or not catalogue:
        raise AlgorithmError("algorithm.py's ALGORITHMS must be a non-empty dict of name to Algorithm")
    names = set(common({"": None}))
    for name, algorithm in catalogue.items():
        if not isinstance(algorithm, Algorithm):
            raise AlgorithmError(f"ALGORITHMS[{name!r}] is a {type(algorithm).__name__}, not an Algorithm")
        clash = sorted(names & set(algorithm.hyperparameters))
        if clash:
            raise AlgorithmError(f"algorithm {name!r} declares {', '.join(clash)}, which every algorithm takes")


def parse_hyperparameters(raw: dict, catalogue: dict[str, Algorithm]) -> dict:
    """Every hyperparameter of the chosen algorithm, typed, with defaults (for either task)."""
    schema = common(catalogue)
    if not isinstance(raw, dict):
        raise UserError("hyperparameters.json must hold a JSON object of name-value pairs")
    name = schema["algorithm"].coerce("algorithm", raw.get("algorithm", schema["algorithm"].default))
    several = target_list(raw.get("target"))
    if several is not None:  # checked here: the string parameter would refuse a list
        raw = {key: value for key, value in raw.items() if key != "target"}
    params = Schema({**schema, **catalogue[name].hyperparameters}).parse(raw, context=f"algorithm '{name}'")
    if several is not None:
        params["target"] = several[0] if len(several) == 1 else several
    return params


def target_list(raw: Any) -> list[str] | None:
    """The hyperparameter target as a list of columns when it is a list: JSON (`["a", "b"]`, also
    JSON-encoded once more by the SDK) or Python's spelling (`['a', 'b']`, what `str()` of a list
    gives); None for a single column or none."""
    value = raw
    for _ in range(2):
        if not isinstance(value, str):
            break
        text = value.strip()
        try:
            value = json.loads(text)
        except ValueError:
            if not text.startswith("["):
                break
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise UserError(f"hyperparameter 'target' must be a column (a header name or a 0-based index) or "
                                f"a JSON list of them, such as [\"a\", \"b\"]; got {raw!r}") from None
    if not isinstance(value, (list, tuple)):
        return None
    if not value or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise UserError(f"hyperparameter 'target' as a list must name one or more columns (header names or 0-based "
                        f"indices), such as [\"a\", \"b\"]; got {raw!r}")
    return [str(v).strip() for v in value]



def check_task(name: str, algorithm: Algorithm, task: str, inferred_from: str | None = None) -> None:
    if task in algorithm.tasks:
        return
    message = f"algorithm '{name}' has no {task} variant; it supports: {', '.join(algorithm.tasks)}"
    if inferred_from is not None:
        message += (f" (the task was inferred from the target column {inferred_from}; set the hyperparameter "
                    f"task to {' or '.join(algorithm.tasks)} if that is what it is)")
    raise UserError(message)



def target_spec(params: dict, size: int | None, source: str) -> str | list[str] | None:
    """The column(s) to split off as the target: the hyperparameter target (a column, or a list
    of several), or the first `size` columns where label_size says more than one; both said must
    agree."""
    target = params["target"]
    if isinstance(target, list):
        if size is not None and size != len(target):
            raise UserError(f"{source} but the hyperparameter target names {len(target)} columns "
                            f"({', '.join(map(repr, target))}): they disagree; set label_size={len(target)}, "
                            f"or name {size} target column(s)")
        return target
    if size is not None and size > 1:
        if target is not None:
            raise UserError(f"{source} (the first {size} columns are targets) but the hyperparameter target names "
                            f"one column, {target!r}: they disagree; name all {size} as a JSON list "
                            f"(target=[\"a\", \"b\"]), or leave target out to take the first {size} columns")
        return [str(position) for position in range(size)]
    return target



def label_size(job: Job, params: dict, names: tuple[str, ...] = ("training", "validation")
               ) -> tuple[int | None, str]:
    """How many target columns the data holds at its start (0: features only; None: not said),
    from the hyperparameter label_size and the ContentType of the channels `names`, and where
    that was said."""
    said = {}
    for channel in names:
        size = channels.check_content_type(channel, job.input_data_config)
        if size is not None:
            said[f"channel '{channel}' ContentType label_size={size}"] = size
    if params["label_size"] is not None:
        said[f"hyperparameter label_size={params['label_size']}"] = params["label_size"]
    if len(set(said.values())) > 1:
        groups = {size: " and ".join(where for where, value in said.items() if value == size) for size in said.values()}
        raise UserError(f"{' but '.join(groups.values())}: they disagree; say whether the data holds a target column "
                        f"(label_size=1), several (label_size=N) or features only (label_size=0) in one way")
    if not said:
        return None, ""
    return next(iter(said.values())), next(iter(said))


def supervision(name: str, algorithm: Algorithm, params: dict, size: int | None, source: str) -> tuple[bool, bool]:
    """(whether the model learns from features alone, whether the data holds a target column)."""
    task = params["task"]
    if task is not None:
        unsupervised = task == UNSUPERVISED
    elif UNSUPERVISED not in algorithm.tasks:
        unsupervised = False
    else:
        unsupervised = size == 0 or not algorithm.supervised
    if unsupervised:
        check_task(name, algorithm, UNSUPERVISED)
        # A target column the job names (or declares) is left out: it is no feature.
        return True, (size is not None and size > 0) or (size is None and params["target"] is not None)
    if size == 0:
        raise UserError(
            f"the data is features only ({source}), but algorithm '{name}' learns a target "
            f"({' or '.join(t for t in algorithm.tasks if t != UNSUPERVISED)}); give data with its target column "
            f"(the first, or the one the hyperparameter target names) and label_size=1, or choose an algorithm "
            f"with tasks=(\"unsupervised\",)")
    return False, True


def announce(plan: DataPlan, job: Job) -> None:
    """Say in the log which channels are read and which are not (never silently ignored)."""
    for name in plan.unused:
        log.warning("channel '%s' is not used: training reads '%s' and scores %s; an algorithm that needs it "
                    "reads %s itself", name, TRAINING, " and ".join(f"'{c}'" for c in HELD_OUT),
                    job.channel(name))
    if plan.held_out:
        log.info("held-out channel(s) scored after the fit: %s", ", ".join(plan.held_out))
