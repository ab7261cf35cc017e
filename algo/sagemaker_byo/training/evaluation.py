"""Metrics by task, printed for MetricDefinitions and saved as JSON, and an evaluation figure.

The figure is an SVG written here (a confusion matrix, or predicted against actual values), so
it needs no plotting library in the image. A model of several targets gets each figure averaged
over its targets (uniformly), the same per target, and no figure.
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from ..errors import AlgorithmError

CLASSIFICATION = "classification"
REGRESSION = "regression"
UNSUPERVISED = "unsupervised"  # no target: anomaly detection, clustering, embeddings


def predictions(model, features, target: np.ndarray, channel: str) -> np.ndarray:
    """The model's predict on a channel's rows, held to the shape of the job's target: one value
    per row, or one per target. A (rows, 1) answer to one target is that target's column."""
    predicted = np.asarray(model.predict(features))
    expected = np.shape(target)
    if len(expected) == 1 and predicted.ndim == 2 and predicted.shape[1:] == (1,):
        predicted = predicted[:, 0]
    if predicted.shape != expected:
        each = "one value per row" if len(expected) == 1 else f"{expected[1]} values per row, one per target"
        raise AlgorithmError(f"the model's predict gave an array of shape {predicted.shape} for the {expected[0]} rows "
                             f"of channel '{channel}'; this job expects shape {expected} ({each}): its predict must "
                             f"answer the job's target(s), one row per input row")
    return predicted


def scores(task: str, model, features, target: np.ndarray, names: list | None = None,
           channel: str = "train") -> dict[str, float]:
    """The task's metrics; for a target of several columns (`names`), see `several_scores`."""
    if np.ndim(target) == 2:
        return several_scores(task, model, features, target, names or list(range(np.shape(target)[1])), channel)
    predicted = predictions(model, features, target, channel)
    if task == REGRESSION:
        return {
            "rmse": float(math.sqrt(skm.mean_squared_error(target, predicted))),
            "mae": float(skm.mean_absolute_error(target, predicted)),
            "r2": float(skm.r2_score(target, predicted)) if len(target) > 1 else float("nan"),
        }
    result = {
        "accuracy": float(skm.accuracy_score(target, predicted)),
        "f1_macro": float(skm.f1_score(target, predicted, average="macro", zero_division=0)),
    }
    proba = getattr(model, "predict_proba", None)
    if proba is not None and hasattr(model, "classes_"):  # probabilities mean nothing without the classes' order
        probabilities = proba(features)
        classes = list(model.classes_)
        known = np.isin(target, classes)
        if known.all():
            result["log_loss"] = float(skm.log_loss(target, probabilities, labels=classes))
            present = set(np.unique(target))
            if len(present) == len(classes) and len(classes) >= 2:  # AUC needs every class present
                if len(classes) == 2:
                    result["roc_auc"] = float(skm.roc_auc_score(target == classes[1], probabilities[:, 1]))
                else:
                    result["roc_auc"] = float(skm.roc_auc_score(target, probabilities, multi_class="ovr",
                                                                labels=classes))
    return result


def metric_suffix(name) -> str:
    """A target's name as a part of a metric's name (`rmse_<target>`): the characters a
    MetricDefinitions regex and a metric name take (letters, digits, `_`, `-`, `.`)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name).strip()) or "_"


def several_scores(task: str, model, features, target: np.ndarray, names: list,
                   channel: str = "train") -> dict[str, float]:
    """Several targets: regression's rmse, mae and r2 are the uniform means of each target's;
    classification's accuracy and f1_macro are too, and subset_accuracy counts the rows whose
    every target is right. Each target's own figures follow, named `<metric>_<target>`."""
    predicted = predictions(model, features, target, channel)
    each: dict[str, list[float]] = {}
    for position in range(target.shape[1]):
        one = target[:, position], predicted[:, position]
        if task == REGRESSION:
            actual, guess = (np.asarray(v, dtype=float) for v in one)
            figures = {"rmse": math.sqrt(skm.mean_squared_error(actual, guess)),
                       "mae": skm.mean_absolute_error(actual, guess),
                       "r2": skm.r2_score(actual, guess) if len(actual) > 1 else float("nan")}
        else:
            actual, guess = (np.asarray(v).astype(str) for v in one)  # one column's classes, as text
            figures = {"accuracy": skm.accuracy_score(actual, guess),
                       "f1_macro": skm.f1_score(actual, guess, average="macro", zero_division=0)}
        for metric, value in figures.items():
            each.setdefault(metric, []).append(float(value))
    result = {metric: float(np.mean(values)) for metric, values in each.items()}
    if task != REGRESSION:
        result["subset_accuracy"] = float(np.mean(np.all(target.astype(str) == predicted.astype(str), axis=1)))
    suffixes = [metric_suffix(n) for n in names]
    if len(set(suffixes)) < len(suffixes):  # names that differ only in other characters: their positions
        suffixes = [str(position) for position in range(len(names))]
    for metric, values in each.items():
        for suffix, value in zip(suffixes, values, strict=True):
            result[f"{metric}_{suffix}"] = value
    return result


def partial(task: str, model, features, target: np.ndarray, classes: list | None, channel: str = "train") -> dict:
    """Sums over one host's rows from which `combine` gives the metrics of every host's rows
    exactly (but ROC AUC, which does not add up: left out across hosts)."""
    predicted = predictions(model, features, target, channel)
    if task == REGRESSION:
        target, predicted = np.asarray(target, dtype=float), np.asarray(predicted, dtype=float)
        error = predicted - target
        return {"n": len(target), "sse": float(error @ error), "sae": float(np.abs(error).sum()),
                "sum": float(target.sum()), "sum2": float(target @ target)}
    result = {"confusion": skm.confusion_matrix(target, predicted, labels=classes), "n": len(target)}
    proba = getattr(model, "predict_proba", None)
    if proba is not None and list(getattr(model, "classes_", [])) == list(classes):
        probabilities = np.clip(proba(features), np.finfo(float).eps, 1.0)
        rows = np.searchsorted(np.asarray(classes), target) if np.asarray(classes).dtype.kind != "O" else \
            np.array([classes.index(t) for t in target])
        result["log_loss_sum"] = float(-np.log(probabilities[np.arange(len(target)), rows]).sum())
    return result


def combine(task: str, parts: list[dict]) -> dict[str, float]:
    if task == REGRESSION:
        n = sum(p["n"] for p in parts)
        sse, sae = sum(p["sse"] for p in parts), sum(p["sae"] for p in parts)
        total, total2 = sum(p["sum"] for p in parts), sum(p["sum2"] for p in parts)
        spread = total2 - total * total / n
        return {"rmse": math.sqrt(sse / n), "mae": sae / n,
                "r2": 1 - sse / spread if n > 1 and spread > 0 else float("nan")}
    confusion = sum(p["confusion"] for p in parts)
    n = int(confusion.sum())
    true_positive = np.diag(confusion).astype(float)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    denominator = predicted + actual
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    seen = denominator > 0  # as scikit-learn: the classes in the target or the predictions
    result = {"accuracy": float(true_positive.sum() / n), "f1_macro": float(f1[seen].mean())}
    if all("log_loss_sum" in p for p in parts):
        result["log_loss"] = sum(p["log_loss_sum"] for p in parts) / n
    return result


def write_metrics(path: Path, metrics: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {channel: {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in m.items()}
             for channel, m in metrics.items()}
    path.write_text(json.dumps(clean, indent=2) + "\n")


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="12">\n<title>{html.escape(title)}</title>\n'
            f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n")


def confusion_matrix_svg(target, predicted, classes: list, title: str) -> str:
    matrix = skm.confusion_matrix(target, predicted, labels=classes)
    n = len(classes)
    cell = max(24, min(60, 480 // max(n, 1)))
    left, top = 120, 60
    size = left + cell * n + 20
    peak = matrix.max() or 1
    body = [f'<text x="{size / 2}" y="20" text-anchor="middle" font-size="14">{html.escape(title)}</text>',
            f'<text x="{left + cell * n / 2}" y="{top - 24}" text-anchor="middle">predicted</text>',
            f'<text x="14" y="{top + cell * n / 2}" transform="rotate(-90 14 {top + cell * n / 2})" '
            f'text-anchor="middle">actual</text>']
    for i, name in enumerate(classes):
        label = html.escape(str(name))[:14]
        body.append(f'<text x="{left - 6}" y="{top + cell * i + cell / 2 + 4}" text-anchor="end">{label}</text>')
        body.append(f'<text x="{left + cell * i + cell / 2}" y="{top - 6}" text-anchor="middle">{label}</text>')
        for j in range(n):
            value = int(matrix[i, j])
            shade = int(255 - 200 * value / peak)
            color = f"rgb({shade},{shade},255)"
            ink = "white" if value / peak > 0.6 else "black"
            x, y = left + cell * j, top + cell * i
            body.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{color}" stroke="#888"/>')
            body.append(f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" '
                        f'fill="{ink}">{value}</text>')
    return _svg(size, top + cell * n + 20, body, title)


def predicted_vs_actual_svg(target, predicted, title: str, limit: int = 5000) -> str:
    target, predicted = np.asarray(target, dtype=float), np.asarray(predicted, dtype=float)
    if len(target) > limit:  # a sample keeps the picture small and readable
        keep = np.random.default_rng(0).choice(len(target), limit, replace=False)
        target, predicted = target[keep], predicted[keep]
    low = float(min(target.min(), predicted.min()))
    high = float(max(target.max(), predicted.max()))
    span = (high - low) or 1.0
    size, margin = 420, 50

    def scale(v):
        return margin + (v - low) / span * (size - 2 * margin)

    body = [f'<text x="{size / 2}" y="20" text-anchor="middle" font-size="14">{html.escape(title)}</text>',
            f'<line x1="{margin}" y1="{size - margin}" x2="{size - margin}" y2="{margin}" stroke="#c33"/>',
            f'<rect x="{margin}" y="{margin}" width="{size - 2 * margin}" height="{size - 2 * margin}" '
            f'fill="none" stroke="#888"/>',
            f'<text x="{size / 2}" y="{size - 12}" text-anchor="middle">actual ({low:.3g} to {high:.3g})</text>',
            f'<text x="14" y="{size / 2}" transform="rotate(-90 14 {size / 2})" text-anchor="middle">predicted</text>']
    for a, p in zip(target, predicted, strict=True):
        body.append(f'<circle cx="{scale(a):.1f}" cy="{size - scale(p):.1f}" r="2" fill="#36c" fill-opacity="0.5"/>')
    return _svg(size, size, body, title)


def write_figure(path: Path, task: str, model, features, target, channel: str) -> None:
    predicted = model.predict(features)
    if task == REGRESSION:
        text = predicted_vs_actual_svg(target, predicted, f"{channel}: predicted against actual")
    else:
        # A model without classes_ (not scikit-learn's): the classes seen, in sorted order.
        classes = list(model.classes_) if hasattr(model, "classes_") else sorted(set(target) | set(predicted))
        text = confusion_matrix_svg(target, predicted, classes, f"{channel}: confusion matrix")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
