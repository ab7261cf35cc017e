"""The algorithms `train` offers, in this fork: one, a TF-IDF text classifier.

Copy this file over algo/algorithm.py. The training CSV has a header (`header=true`), and the
column named by `text_column` holds free text; TF-IDF turns its words into features and a
logistic regression classifies them. A request sends only that text, one review per row: a CSV
line of one (quoted if it holds commas) cell, a JSON list of strings, or JSON Lines of strings.
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sagemaker_byo import Algorithm, Param, UserError


def tfidf(params, task, features):
    column = params["text_column"]
    if column not in features.columns:
        raise UserError(f"hyperparameter 'text_column' is {column!r}, but the training data's feature "
                        f"columns are {', '.join(map(str, features.columns))}")
    return make_pipeline(
        ColumnTransformer([("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), column)]),
        LogisticRegression(C=params["C"], max_iter=1000),
    )


ALGORITHMS = {
    "tfidf": Algorithm(
        {
            "text_column": Param(str, "review"),
            "C": Param(float, 10.0, low=1e-9),
        },
        build=tfidf,
        tasks=("classification",),
    ),
}
