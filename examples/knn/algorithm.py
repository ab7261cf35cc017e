"""The algorithms `train` offers, in this fork: one, a k-nearest-neighbours classifier.

Copy this file over algo/algorithm.py. The features are standardised first (KNN measures
distances, so a feature in centimetres must not outweigh one in metres). The pipeline takes no
missing values: a request with an empty cell is refused with a 400 naming its row and column.
"""

from __future__ import annotations

from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sagemaker_byo import Algorithm, Param


def knn(params, task, features):
    return make_pipeline(StandardScaler(), KNeighborsClassifier(**params))


ALGORITHMS = {
    "knn": Algorithm(
        {
            "n_neighbors": Param(int, 5, low=1),
            "weights": Param(str, "uniform", choices=("uniform", "distance")),
        },
        build=knn,
        tasks=("classification",),
    ),
}
