"""The spark engine in local mode against the pandas engine, on the same 1 million leads.

    .venv/bin/python benchmarks/spark_vs_pandas.py [--rows 1000000] [--workdir DIR]

Both run the whole command (start-up, model loading, reading, checks, scoring, writing) without
reasons, on the same snapshot Parquet file; Spark uses every core of this machine (local[*]). On a
machine of a few cores Spark is expected to be slower: its value is running the same model beyond
one machine, not speed here.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from common import CHAMPION, machine, measure, scoring_setup, write_repeated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, help="keep the model and inputs here between runs")
    args = parser.parse_args()
    workdir, env, features = scoring_setup(args.workdir, "leadscore-spark-")
    path = write_repeated(features, args.rows, workdir / f"leads_{args.rows}.parquet")
    seconds = {}
    for engine in ("pandas", "spark"):
        run = measure(["score", "--model", CHAMPION, "--input", path, "--output",
                       workdir / f"scores_{engine}.parquet", "--engine", engine, "--no-reasons"],
                      {**env, "LEADSCORE_SPARK_MASTER": "local[*]"})
        seconds[engine] = run.seconds
        print(f"{engine:>6} engine: {run.seconds:,.0f} s ({args.rows / run.seconds:,.0f} rows/s)")
    print(f"machine: {machine()}; {args.rows:,} leads; load average at the end {os.getloadavg()[0]:.1f}")
    print(f"spark / pandas time: {seconds['spark'] / seconds['pandas']:.2f}")


if __name__ == "__main__":
    main()
