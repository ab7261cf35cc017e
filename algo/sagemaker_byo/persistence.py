"""model.skops: the model saved so that loading it runs no code (MODEL_SERVER_MODEL_FORMAT=skops).

model.joblib is a pickle: unpickling runs whatever code the file names. skops writes a schema of
types and values instead, and loads only the types a caller trusts. Training saves model.skops
beside model.joblib when skops can save every object in the model (`skops_dump`); a server in
skops mode loads only model.skops (`load_skops`), trusting skops' own defaults (scikit-learn's
estimators, numpy's and scipy's functions and scalar types, Python's plain types), the types
`image_trusted_types` lists, and the fork's own classes that its predictor.py declares in
TRUSTED_TYPES. The list is this image's, never one read from the artifact.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SKOPS_FILE = "model.skops"
WHERE_TO_DECLARE = "TRUSTED_TYPES in predictor.py, docs/serving.md"


class UntrustedTypes(TypeError):
    """model.skops holds a type the image does not trust: it is not loaded."""


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"  # as skops names a type in its schema


def image_trusted_types() -> list[str]:
    """The types this image trusts beyond skops' defaults, named from the classes installed (so a
    rename in a library shows here, not as a refused model)."""
    import collections

    import numpy as np
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    trusted = [
        np.dtype,  # the dtype of every fitted array (classes_, thresholds)
        collections.OrderedDict,  # LightGBM's parameters
        # The node stores of trees, forests and histogram gradient boosting. skops leaves them out
        # of its defaults because scikit-learn does not bounds-check their node indices: a crafted
        # file loads, then can crash a worker at predict. They run no code when loaded, and the
        # catalogue's models are made of them.
        Tree,
        TreePredictor,
    ]
    try:
        import lightgbm
    except ImportError:  # a fork that dropped LightGBM from its image
        pass
    else:
        trusted += [lightgbm.LGBMModel, lightgbm.LGBMClassifier, lightgbm.LGBMRegressor, lightgbm.LGBMRanker,
                    lightgbm.Booster]
    return sorted({_type_name(cls) for cls in trusted})


def skops_dump(model: Any) -> tuple[bytes | None, dict]:
    """model.skops's bytes, or None where skops cannot save a type in the model; and what
    model.json says of it: the file, or why there is none, and the types skops does not trust
    by default."""
    try:
        import skops.io as sio

        data = sio.dumps(model)
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as error:  # noqa: BLE001 - model.joblib is still saved; skops mode needs this file
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        log.warning("no %s: skops cannot save this model (%s); model.joblib is saved, and "
                    "MODEL_SERVER_MODEL_FORMAT=skops cannot serve it", SKOPS_FILE, reason)
        return None, {"file": None, "reason": reason}
    return data, {"file": SKOPS_FILE, "untrusted_types": untrusted}


def load_skops(model_dir: str | Path, fork_trusted: Iterable[str] = ()) -> Any:
    """model.skops of `model_dir`, refused (UntrustedTypes) if it holds a type neither skops'
    defaults, the image, nor the fork's `fork_trusted` trust; nothing in the file runs."""
    import skops.io as sio

    path = Path(model_dir) / SKOPS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not there (MODEL_SERVER_MODEL_FORMAT=skops serves only "
                                f"{SKOPS_FILE}; model.json says why training saved none)")
    trusted = set(image_trusted_types()) | {str(name) for name in fork_trusted}
    refused = sorted(set(sio.get_untrusted_types(file=path)) - trusted)
    if refused:
        # The fix first, then the names: a multi-model answer cuts a long reason short (the log has it all).
        raise UntrustedTypes(f"{SKOPS_FILE} holds {'a type' if len(refused) == 1 else 'types'} this image does "
                             f"not trust (a class of the fork's own: declare it in {WHERE_TO_DECLARE}): "
                             f"{', '.join(refused)}")
    return sio.load(path, trusted=sorted(trusted))
