"""Markdown tables of the committed bench results, as docs/performance.md shows them.

    python bench/summary.py [bench/results]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results"


def serving() -> str:
    data = json.loads((RESULTS / "serving.json").read_text())
    targets = data["targets"]
    ours, ceiling = targets["sagemaker-byo"], targets["flask-constant"]
    lines = ["| rows x connections | nginx `return 200` req/s | constant Flask req/s | sagemaker-byo req/s "
             "| share of constant Flask | sagemaker-byo p50 / p99 ms | gunicorn CPU per request, constant / ours |",
             "|---|---|---|---|---|---|---|"]

    def gunicorn_us(cell: dict) -> str:
        return f"{cell['cpu_us_per_request']['gunicorn']:,} µs" if "cpu_us_per_request" in cell else "-"

    for key, cell in ours["cells"].items():
        rows, connections = key.split("x")
        lines.append(
            f"| {int(rows):,} x {connections} | {targets['nginx-return-200']['cells'][key]['rps']:,.0f} "
            f"| {ceiling['cells'][key]['rps']:,.0f} | {cell['rps']:,.0f} "
            f"| {cell['rps'] / ceiling['cells'][key]['rps']:.0%} | {cell['p50_ms']:.2f} / {cell['p99_ms']:.2f} "
            f"| {gunicorn_us(ceiling['cells'][key])} / {gunicorn_us(cell)} |")
    lines.append("")
    lines.append(f"`serve` to the first 200 on `/ping`: {ours['startup_to_ping_s']:.2f} s (constant Flask "
                 f"{ceiling['startup_to_ping_s']:.2f} s); PSS of the whole server with 2 workers: "
                 f"{ours['pss_mb_at_rest']:.0f} MB at rest, {ours['pss_mb_after_load']:.0f} MB after the load.")
    return "\n".join(lines)


def training() -> str:
    path = RESULTS / "training.json"
    if not path.exists():
        return "(not measured yet)"
    data = json.loads(path.read_text())
    plain, ours = data["plain_pandas_sklearn"], data["algo_train"]
    return (f"{data['rows']:,} rows x {data['features']} features, {data['csv_mb']:.0f} MB of CSV, "
            f"{data['estimator']}: `algo/train` {ours['seconds']:.0f} s and {ours['peak_rss_mb']:,.0f} MB peak "
            f"RSS, plain pandas + fit {plain['seconds']:.0f} s and {plain['peak_rss_mb']:,.0f} MB")


if __name__ == "__main__":
    print(serving())
    print()
    print(training())
