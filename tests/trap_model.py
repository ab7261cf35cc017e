"""A model whose loading runs code: the artifact a server must refuse to load in skops mode.

Unpickled (model.joblib), it calls `spring`, which writes a marker file; built by skops, its
`__setstate__` would write it too. The marker existing is the proof that loading ran code. The
server imports this module as `trap_model` (PYTHONPATH), as an attacker's artifact would name a
module the image has.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def spring(marker: str) -> Trap:
    Path(marker).write_text("loading this model ran code\n")
    return Trap(marker)


class Trap:
    def __init__(self, marker: str | Path) -> None:
        self.marker = str(marker)

    def predict(self, rows):
        return np.zeros(len(rows))

    def __reduce__(self):
        return spring, (self.marker,)

    def __getstate__(self) -> dict:
        return dict(self.__dict__)

    def __setstate__(self, state: dict) -> None:
        spring(state["marker"])
        self.__dict__.update(state)
