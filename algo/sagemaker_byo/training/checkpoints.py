"""Checkpoints for Spot training: progress saved as it is made, resumed from on the next start.

SageMaker syncs the checkpoint folder (CheckpointConfig.LocalPath, default /opt/ml/checkpoints)
with S3: files there when a job starts come from the interrupted run. Each checkpoint is one
file, written to a temporary name and renamed, so a run stopped mid-write leaves the previous
checkpoint whole. A checkpoint belongs to one job set-up (a fingerprint of the hyperparameters
and the data's shape); one from another set-up, or one that cannot be read, is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib

from .. import settings

log = logging.getLogger(__name__)

PREFIX = "checkpoint-"
SUFFIX = ".joblib"
KEEP = 2  # the newest two: the newest may be the one a stop interrupted


def directory(paths: settings.Paths) -> Path | None:
    """The checkpoint folder when checkpointing is on: named by checkpointconfig.json, or
    /opt/ml/checkpoints when it exists."""
    config = paths.checkpoint_config
    if config.exists():
        try:
            local = json.loads(config.read_text()).get("LocalPath")
        except (ValueError, AttributeError, UnicodeDecodeError):
            local = None
        path = Path(local) if local else paths.checkpoints
        path.mkdir(parents=True, exist_ok=True)
        return path
    return paths.checkpoints if paths.checkpoints.is_dir() else None


def fingerprint(**parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Checkpoint:
    step: int
    state: Any
    path: Path


class Store:
    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.folder = folder
        self.fingerprint = fingerprint

    def _files(self) -> list[Path]:
        return sorted(self.folder.glob(f"{PREFIX}*{SUFFIX}"), reverse=True)

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint of this job set-up that loads; broken or foreign ones are skipped."""
        for path in self._files():
            try:
                saved = joblib.load(path)
                if saved.get("fingerprint") != self.fingerprint:
                    log.info("ignoring checkpoint %s: it belongs to another job set-up", path.name)
                    continue
                return Checkpoint(int(saved["step"]), saved["state"], path)
            except Exception as error:  # noqa: BLE001 - a damaged file is skipped, not fatal
                log.warning("ignoring checkpoint %s: it cannot be read (%s)", path.name, error)
        return None

    def save(self, step: int, state: Any) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{PREFIX}{step:09d}{SUFFIX}"
        tmp = self.folder / f".{path.name}.tmp"
        joblib.dump({"fingerprint": self.fingerprint, "step": step, "state": state}, tmp)
        os.replace(tmp, path)
        for old in self._files()[KEEP:]:
            old.unlink(missing_ok=True)
        return path
