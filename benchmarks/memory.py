"""Peak memory of `leadscore score` at 1 million and 10 million leads: flat, and under 1.5 GB.

    .venv/bin/python benchmarks/memory.py [--rows 1000000 10000000] [--workdir DIR]

Each job runs in its own process; its peak resident memory is what the kernel reports for that
process (`os.wait4`). Inputs are snapshot Parquet files built as `common.py` describes; the job is
the default one (chunks of 100,000 rows) without reasons, as in the throughput benchmark.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from common import CHAMPION, machine, measure, scoring_setup, write_repeated

LIMIT_MB = 1536
SAME_WITHIN = 0.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workdir", type=Path, help="keep the model and inputs here between runs")
    args = parser.parse_args()
    workdir, env, features = scoring_setup(args.workdir, "leadscore-memory-")
    print(f"machine: {machine()}")
    peaks = []
    for rows in args.rows:
        path = write_repeated(features, rows, workdir / f"leads_{rows}.parquet")
        run = measure(["score", "--model", CHAMPION, "--input", path, "--output", workdir / f"scores_{rows}.parquet",
                       "--no-reasons"], env)
        peaks.append(run.max_rss_mb)
        print(f"{rows:>12,} leads: peak {run.max_rss_mb:,.0f} MB, {run.seconds:,.0f} s "
              f"({rows / run.seconds:,.0f} rows/s end to end)")
    spread = max(peaks) / min(peaks) - 1
    print(f"largest / smallest peak: {1 + spread:.2f} (target: within {SAME_WITHIN:.0%}: "
          f"{'met' if spread <= SAME_WITHIN else 'NOT met'}); all under {LIMIT_MB} MB: "
          f"{'met' if max(peaks) < LIMIT_MB else 'NOT met'}; load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
