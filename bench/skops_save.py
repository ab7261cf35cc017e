"""What model.skops costs beside model.joblib: save and load times and file sizes, for models of
the catalogue's kinds (a decision tree, a 100-tree forest, histogram gradient boosting, LightGBM)
fitted on synthetic rows. Training pays the save (`persistence.skops_dump`) on every job; a
server in skops mode pays the load (`persistence.load_skops`, with its check of the types).

    python bench/skops_save.py [--rows 20000] [--out bench/results/skops.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "algo"))
from sagemaker_byo import persistence  # noqa: E402


def models():
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    return {
        "decision_tree": DecisionTreeClassifier(random_state=0),
        "random_forest_100": RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=-1),
        "hist_gradient_boosting": HistGradientBoostingClassifier(random_state=0),
        "lightgbm": LGBMClassifier(verbose=-1, random_state=0),
    }


def timed(action, *args) -> tuple[float, object]:
    started = time.perf_counter()
    value = action(*args)
    return time.perf_counter() - started, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(args.rows, 10))
    labels = (features[:, 0] + rng.normal(scale=0.5, size=args.rows) > 0).astype(int)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name, model in models().items():
            model.fit(features, labels)
            joblib_save, _ = timed(joblib.dump, model, folder / "model.joblib")
            skops_save, (data, _record) = timed(persistence.skops_dump, model)
            (folder / persistence.SKOPS_FILE).write_bytes(data)
            joblib_load, _ = timed(joblib.load, folder / "model.joblib")
            skops_load, loaded = timed(persistence.load_skops, folder)
            assert (loaded.predict(features[:100]) == model.predict(features[:100])).all()
            results[name] = {
                "joblib_bytes": (folder / "model.joblib").stat().st_size, "skops_bytes": len(data),
                "joblib_save_s": round(joblib_save, 4), "skops_save_s": round(skops_save, 4),
                "joblib_load_s": round(joblib_load, 4), "skops_load_s": round(skops_load, 4),
            }
            print(name, results[name], flush=True)
    if args.out:
        command = "python bench/skops_save.py " + " ".join(sys.argv[1:])
        args.out.write_text(json.dumps({"command": command, "rows": args.rows, "models": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
