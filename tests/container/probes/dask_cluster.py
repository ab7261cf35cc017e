"""Run inside the image by test_image.py: Dask's dataframe and distributed, and LightGBM's Dask
estimator, with the image's pyarrow, across processes as training on several hosts uses them.
Prints what it computed as JSON."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
from distributed import Client, LocalCluster
from lightgbm.dask import DaskLGBMRegressor


def arrow_table() -> pa.Table:
    return pa.table({"x": [1, 2]})


if __name__ == "__main__":
    root = Path(tempfile.mkdtemp())
    frame = pd.DataFrame({"color": ["red", "blue", "red", "green"] * 25, "x": range(100)})
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        dd.from_pandas(frame, npartitions=4).to_parquet(root / "parts")
        back = dd.read_parquet(root / "parts")
        sums = back.groupby("color")["x"].sum().compute().sort_index().to_dict()
        table = client.submit(arrow_table).result()  # an Arrow table back from the worker process
        x = da.from_array(np.arange(200.0).reshape(100, 2), chunks=(50, 2))
        y = da.from_array(np.arange(100.0), chunks=50)
        model = DaskLGBMRegressor(n_estimators=2, verbose=-1, client=client).fit(x, y)
        predicted = model.predict(x).compute()
        found = {"sums": sums, "color_dtype": str(back["color"].dtype), "table": table.to_pylist(),
                 "predictions": len(predicted), "workers": len(client.scheduler_info()["workers"])}
    print(json.dumps(found))
